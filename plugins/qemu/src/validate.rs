//! Checks on caller values, before anything touches the file system or runs. VM, disk, snapshot
//! and image names become path components (never paths), so they are checked strictly.

use omni_cpi_sdk::prelude::*;

/// Longest accepted name (as in cpis/qemu.json): keeps every path well inside file-name limits.
pub const MAX_NAME: usize = 64;
pub const MAX_CPUS: u32 = 255;
/// 1 TiB.
pub const MAX_MEMORY_MB: u32 = 1 << 20;
/// 16 TiB.
pub const MAX_DISK_MB: u64 = 16 << 20;
pub const MAX_KEY: usize = 128;
pub const MAX_VALUE: usize = 4096;

fn invalid(message: String) -> CpiError {
    CpiError::new(ErrorKind::InvalidArgument, format!("qemu_wasm_cpi: invalid {message}"))
}

/// Whether `value` is a valid name (the WIT's rule, see `omni_cpi_sdk::names`), at most
/// [`MAX_NAME`] bytes.
pub fn is_name(value: &str) -> bool {
    omni_cpi_sdk::names::is_name(value, MAX_NAME)
}

/// A VM, disk, snapshot or image name (see [`is_name`]).
pub fn name(what: &str, value: &str) -> CpiResult<()> {
    omni_cpi_sdk::names::check(&format!("{what} name"), value, MAX_NAME)
        .map_err(|e| CpiError::new(e.kind, format!("qemu_wasm_cpi: {}", e.message)))
}

pub fn cpus(value: u32) -> CpiResult<()> {
    if (1..=MAX_CPUS).contains(&value) {
        return Ok(());
    }
    Err(invalid(format!("cpus {value}: from 1 to {MAX_CPUS}")))
}

pub fn memory_mb(value: u32) -> CpiResult<()> {
    if (1..=MAX_MEMORY_MB).contains(&value) {
        return Ok(());
    }
    Err(invalid(format!("memory_mb {value}: from 1 to {MAX_MEMORY_MB}")))
}

pub fn size_mb(value: u64) -> CpiResult<()> {
    if (1..=MAX_DISK_MB).contains(&value) {
        return Ok(());
    }
    Err(invalid(format!("size_mb {value}: from 1 to {MAX_DISK_MB}")))
}

/// A metadata pair: the key made of letters, digits, `_ . : @ -`, not starting with `.` (the rule
/// of cpis/qemu.json), the value without control characters.
pub fn metadata(key: &str, value: &str) -> CpiResult<()> {
    let key_ok = !key.is_empty()
        && key.len() <= MAX_KEY
        && !key.starts_with('.')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-'));
    if !key_ok {
        return Err(invalid(format!(
            "metadata key {key:?}: use letters, digits and _ . : @ -, not starting with ., at most {MAX_KEY} characters"
        )));
    }
    if value.len() > MAX_VALUE || value.chars().any(|c| c.is_control()) {
        return Err(invalid(format!("metadata value of {key}: no control characters, at most {MAX_VALUE} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["vm1", "a", "web-1.b_c", &"x".repeat(MAX_NAME)] {
            assert!(is_name(good), "{good}");
        }
        for bad in ["", ".", "..", "-x", "_x", ".x", "a/b", "../a", "a b", "a\0", &"x".repeat(MAX_NAME + 1), "é"] {
            assert!(!is_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn metadata_rules() {
        assert!(metadata("role", "worker 1").is_ok());
        assert!(metadata("a.b:c@d-e_f", "").is_ok());
        assert!(metadata(".hidden", "x").is_err());
        assert!(metadata("", "x").is_err());
        assert!(metadata("a/b", "x").is_err());
        assert!(metadata("k", "line\nbreak").is_err());
        assert!(metadata("k", "tab\t").is_err());
    }

    #[test]
    fn numbers() {
        assert!(cpus(0).is_err() && cpus(1).is_ok() && cpus(MAX_CPUS + 1).is_err());
        assert!(memory_mb(0).is_err() && memory_mb(64).is_ok());
        assert!(size_mb(0).is_err() && size_mb(16).is_ok() && size_mb(MAX_DISK_MB + 1).is_err());
    }
}
