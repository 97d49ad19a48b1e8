//! The plugin's state on disk, under the state root (a WASI directory the operator grants at the
//! same path on the host, so the paths the plugin computes are the paths QEMU and qemu-img see):
//!
//! ```text
//! STATE_ROOT/vms/VM/vm.json                  the VM's record: image, cpus, memory_mb, metadata, disks
//! STATE_ROOT/vms/VM/boot.qcow2               its boot disk: a qcow2 overlay of IMAGE_ROOT/IMAGE.qcow2
//! STATE_ROOT/vms/VM/pid                      QEMU's pidfile (QEMU removes it when it exits)
//! STATE_ROOT/vms/VM/omni-qemu-qmp.sock       QEMU's QMP socket
//! STATE_ROOT/vms/VM/console.log              the serial console
//! STATE_ROOT/vms/VM/lock                     held by the call working on the VM
//! STATE_ROOT/disks/DISK/disk.qcow2           a disk
//! STATE_ROOT/disks/DISK/attached             the VM the disk is attached to (claimed atomically)
//! STATE_ROOT/disks/DISK/snapshots/SNAP/snapshot.qcow2   a snapshot: a full copy of the disk
//! ```
//!
//! A VM exists while its directory does, a disk while its directory does.

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use omni_cpi_sdk::prelude::*;
use serde_json::{json, Value};

use crate::validate;
use crate::{IMAGE_ROOT, STATE_ROOT};

pub const RECORD: &str = "vm.json";
pub const BOOT_DISK: &str = "boot.qcow2";
pub const PIDFILE: &str = "pid";
/// Relative to the VM's directory, which is QEMU's working directory when it starts. QEMU
/// daemonizes into `/` and, when it exits, tries to unlink this name relative to `/`; a name no
/// host file has keeps that harmless (see README.md).
pub const QMP_SOCKET: &str = "omni-qemu-qmp.sock";
pub const CONSOLE_LOG: &str = "console.log";
pub const LOCK: &str = "lock";
pub const DISK_FILE: &str = "disk.qcow2";
pub const ATTACHED: &str = "attached";
pub const SNAPSHOT_FILE: &str = "snapshot.qcow2";

/// How long a call waits for another call's lock on the same VM.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// A lock older than this was left by a call that did not finish (the host ends every call within
/// its time limit, 120 s by default), and is broken.
const LOCK_STALE_SECS: u64 = 180;

pub fn vms_dir() -> PathBuf {
    Path::new(STATE_ROOT).join("vms")
}

pub fn vm_dir(vm: &str) -> PathBuf {
    vms_dir().join(vm)
}

pub fn disks_dir() -> PathBuf {
    Path::new(STATE_ROOT).join("disks")
}

pub fn disk_dir(disk: &str) -> PathBuf {
    disks_dir().join(disk)
}

pub fn snapshot_dir(disk: &str, snapshot: &str) -> PathBuf {
    disk_dir(disk).join("snapshots").join(snapshot)
}

pub fn image_file(image: &str) -> PathBuf {
    Path::new(IMAGE_ROOT).join(format!("{image}.qcow2"))
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub use omni_cpi_sdk::state::{
    claim_dir, create_new, exists, io_error, is_dir, read_text, remove_file, remove_tree, write_atomic, CreateNew,
};

/// Valid names of the subdirectories of `dir`, sorted; none when `dir` is missing.
pub fn list_names(dir: &Path) -> CpiResult<Vec<String>> {
    omni_cpi_sdk::state::list_names(dir, validate::is_name)
}

pub fn not_found(what: &str, name: &str) -> CpiError {
    CpiError::new(ErrorKind::NotFound, format!("qemu_wasm_cpi: no such {what}: {name}"))
}

/// What the plugin knows about a VM; QEMU itself knows only what runs.
#[derive(Clone, Debug, PartialEq)]
pub struct VmRecord {
    pub name: String,
    pub image: String,
    pub cpus: u32,
    pub memory_mb: u32,
    pub metadata: BTreeMap<String, String>,
    /// Attached disks and their SCSI targets (1-255): the QMP node `omni-dN`, device `omni-sdN`.
    pub disks: BTreeMap<String, u8>,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

impl VmRecord {
    pub fn path(vm: &str) -> PathBuf {
        vm_dir(vm).join(RECORD)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "image": self.image,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "metadata": self.metadata,
            "disks": self.disks,
            "created": self.created,
        })
    }

    pub fn from_json(v: &Value) -> Option<VmRecord> {
        let text = |v: &Value| v.as_str().map(str::to_string);
        let number = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
        Some(VmRecord {
            name: text(&v["name"])?,
            image: text(&v["image"])?,
            cpus: number(&v["cpus"])?,
            memory_mb: number(&v["memory_mb"])?,
            metadata: v["metadata"]
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), text(v)?)))
                .collect::<Option<BTreeMap<_, _>>>()?,
            disks: v["disks"]
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), u8::try_from(v.as_u64()?).ok()?)))
                .collect::<Option<BTreeMap<_, _>>>()?,
            created: v["created"].as_u64()?,
        })
    }

    /// The record of `vm`: `not-found` when the VM does not exist, `failed` when its directory
    /// has no readable record (a create that did not finish: delete_vm removes it).
    pub fn load(vm: &str) -> CpiResult<VmRecord> {
        if !is_dir(&vm_dir(vm))? {
            return Err(not_found("vm", vm));
        }
        let path = VmRecord::path(vm);
        let Some(text) = read_text(&path)? else {
            return Err(CpiError::new(
                ErrorKind::Failed,
                format!(
                    "qemu_wasm_cpi: vm {vm} has no record {} (a create that did not finish; delete it)",
                    path.display()
                ),
            ));
        };
        serde_json::from_str::<Value>(&text)
            .ok()
            .as_ref()
            .and_then(VmRecord::from_json)
            .filter(|r| r.name == vm)
            .ok_or_else(|| CpiError::new(ErrorKind::Failed, format!("qemu_wasm_cpi: {} is damaged", path.display())))
    }

    pub fn save(&self) -> CpiResult<()> {
        let text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        write_atomic(&VmRecord::path(&self.name), text.as_bytes())
    }

    /// The lowest SCSI target no attached disk uses.
    pub fn free_target(&self) -> Option<u8> {
        (1..=255u8).find(|n| !self.disks.values().any(|t| t == n))
    }
}

/// Held by the call working on a VM: calls on one VM run one after the other. Removed when
/// dropped; a lock left by a call the host ended is broken after [`LOCK_STALE_SECS`].
pub struct VmLock {
    path: PathBuf,
}

impl Drop for VmLock {
    fn drop(&mut self) {
        let _ = remove_file(&self.path);
    }
}

/// Takes the lock of `vm`, waiting up to [`LOCK_WAIT`] for another call: `not-found` when the VM
/// does not exist (or stops existing meanwhile), `invalid-state` when it stays busy.
pub fn lock_vm(vm: &str) -> CpiResult<VmLock> {
    let path = vm_dir(vm).join(LOCK);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        if !is_dir(&vm_dir(vm))? {
            return Err(not_found("vm", vm));
        }
        match create_new(&path, now_secs().to_string().as_bytes())? {
            CreateNew::Created => return Ok(VmLock { path }),
            CreateNew::Exists => {}
            CreateNew::NoDirectory => return Err(not_found("vm", vm)),
        }
        // Held by someone: broken when stale (its content is the time it was taken).
        let taken = read_text(&path)?.and_then(|t| t.trim().parse::<u64>().ok());
        if taken.is_some_and(|t| now_secs().saturating_sub(t) > LOCK_STALE_SECS) {
            omni_cpi_sdk::log(Level::Warn, &format!("qemu_wasm_cpi: breaking the stale lock {}", path.display()));
            remove_file(&path)?;
            continue;
        }
        if Instant::now() >= deadline {
            return Err(CpiError::new(
                ErrorKind::InvalidState,
                format!(
                    "qemu_wasm_cpi: vm {vm} is busy: another call holds {} for more than {} s",
                    path.display(),
                    LOCK_WAIT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The VM a disk is attached to according to its claim file: `None` when it is free. A claim
/// naming a VM that no longer exists (a delete that did not finish) counts as free.
pub fn disk_owner(disk: &str) -> CpiResult<Option<String>> {
    let Some(owner) = read_text(&disk_dir(disk).join(ATTACHED))? else { return Ok(None) };
    let owner = owner.trim().to_string();
    if validate::is_name(&owner) && !is_dir(&vm_dir(&owner))? {
        return Ok(None);
    }
    Ok(Some(owner))
}

/// Claims `disk` for `vm` (the atomic part of attaching): `in-use` when another VM holds it,
/// `not-found` when the disk does not exist. Claiming a disk `vm` already holds succeeds.
pub fn claim_disk(disk: &str, vm: &str) -> CpiResult<()> {
    let path = disk_dir(disk).join(ATTACHED);
    for _ in 0..2 {
        match create_new(&path, vm.as_bytes())? {
            CreateNew::Created => return Ok(()),
            CreateNew::NoDirectory => return Err(not_found("disk", disk)),
            CreateNew::Exists => {}
        }
        match disk_owner(disk)? {
            Some(owner) if owner == vm => return Ok(()),
            Some(owner) if owner.is_empty() => {
                return Err(CpiError::new(
                    ErrorKind::InUse,
                    format!("qemu_wasm_cpi: disk {disk} is in use: another call is attaching it"),
                ))
            }
            Some(owner) => {
                return Err(CpiError::new(
                    ErrorKind::InUse,
                    format!("qemu_wasm_cpi: disk {disk} is in use by vm {owner}"),
                ))
            }
            // The claim of a deleted VM: released, then claimed again.
            None => remove_file(&path)?,
        }
    }
    Err(CpiError::new(ErrorKind::InUse, format!("qemu_wasm_cpi: disk {disk} is in use: its claim keeps changing")))
}

/// Releases `vm`'s claim of `disk`, if it holds it.
pub fn release_disk(disk: &str, vm: &str) -> CpiResult<()> {
    let path = disk_dir(disk).join(ATTACHED);
    if read_text(&path)?.is_some_and(|owner| owner.trim() == vm) {
        remove_file(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_targets() {
        let mut record = VmRecord {
            name: "vm1".into(),
            image: "empty".into(),
            cpus: 2,
            memory_mb: 64,
            metadata: BTreeMap::from([("role".to_string(), "worker \"1\"".to_string())]),
            disks: BTreeMap::from([("d1".to_string(), 1u8), ("d3".to_string(), 3u8)]),
            created: 7,
        };
        assert_eq!(VmRecord::from_json(&record.to_json()), Some(record.clone()));
        assert_eq!(record.free_target(), Some(2));
        record.disks = (1..=255u8).map(|n| (format!("d{n}"), n)).collect();
        assert_eq!(record.free_target(), None);
        assert_eq!(VmRecord::from_json(&json!({"name": "x"})), None);
    }
}
