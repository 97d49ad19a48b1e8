//! Files under a directory the operator granted: the small set of operations a plugin's state
//! needs, each with "missing" as an answer rather than an error, and every other failure as a
//! typed [`CpiError`] naming the path (`denied` when the sandbox refused, `failed` otherwise).
//!
//! In a dry run (see [`crate::dry_run`]) the host grants every directory read-only, and the
//! helpers that write change nothing and answer as if they had: `claim_dir` says whether the
//! claim would succeed, the others succeed. So an action that keeps its state with them plans
//! through to the commands it would run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{CpiError, CpiResult, ErrorKind};

/// `cannot VERB PATH: ERROR`, typed `denied` for a permission error (a grant that is read-only or
/// missing), `failed` for anything else.
pub fn io_error(verb: &str, path: &Path, e: io::Error) -> CpiError {
    let kind = match e.kind() {
        io::ErrorKind::PermissionDenied => ErrorKind::Denied,
        _ => ErrorKind::Failed,
    };
    CpiError::new(kind, format!("cannot {verb} {}: {e}", path.display()))
}

/// Whether `path` is a directory (not a symlink to one).
pub fn is_dir(path: &Path) -> CpiResult<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// Whether `path` exists (as anything, symlinks not followed).
pub fn exists(path: &Path) -> CpiResult<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// Creates `path` (creating its parents): `Ok(false)` when it already existed, which is how names
/// are claimed atomically.
pub fn claim_dir(path: &Path) -> CpiResult<bool> {
    if crate::dry_run() {
        return Ok(!exists(path)?);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error("create", path, e)),
    }
}

/// What [`create_new`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateNew {
    /// The file did not exist and now holds the bytes: the claim is the caller's.
    Created,
    /// It existed already (someone else holds the claim); nothing was written.
    Exists,
    /// Its directory does not exist.
    NoDirectory,
}

/// Creates the file `path` holding `bytes` only if no file of that name exists: how a lock or a
/// claim is taken atomically.
pub fn create_new(path: &Path, bytes: &[u8]) -> CpiResult<CreateNew> {
    use std::io::Write as _;
    if crate::dry_run() {
        return Ok(if exists(path)? {
            CreateNew::Exists
        } else if path.parent().map_or(Ok(true), is_dir)? {
            CreateNew::Created
        } else {
            CreateNew::NoDirectory
        });
    }
    match fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut file) => {
            file.write_all(bytes).map_err(|e| io_error("write", path, e))?;
            Ok(CreateNew::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(CreateNew::Exists),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CreateNew::NoDirectory),
        Err(e) => Err(io_error("create", path, e)),
    }
}

/// Creates the directory `path` and its parents; an existing one is fine.
pub fn create_dir_all(path: &Path) -> CpiResult<()> {
    if crate::dry_run() {
        return Ok(());
    }
    fs::create_dir_all(path).map_err(|e| io_error("create", path, e))
}

/// Removes a directory and everything in it; a missing one is already removed.
pub fn remove_tree(path: &Path) -> CpiResult<()> {
    if crate::dry_run() {
        return Ok(());
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", path, e)),
    }
}

/// Removes a file; a missing one is already removed.
pub fn remove_file(path: &Path) -> CpiResult<()> {
    if crate::dry_run() {
        return Ok(());
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", path, e)),
    }
}

/// A file's text, `None` when it does not exist.
pub fn read_text(path: &Path) -> CpiResult<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// Writes a file through a temporary name and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> CpiResult<()> {
    if crate::dry_run() {
        return Ok(());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(|e| io_error("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_error("write", path, e))
}

/// The names of the subdirectories of `dir` that `is_name` accepts, sorted; none when `dir` is
/// missing. Entries with other names (a temporary file, something an operator left) are skipped.
pub fn list_names(dir: &Path, is_name: impl Fn(&str) -> bool) -> CpiResult<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list", dir, e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
            if is_name(name) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}
