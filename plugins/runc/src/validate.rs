//! Checks on caller values, before anything touches the file system or runs. Names become path
//! components, runc ids and network namespace names, so they are never paths.

use omni_cpi_sdk::prelude::*;

/// Longest accepted name. Keeps `omni-runc-NAME` (network namespace file) and the bundle path well
/// inside file-name limits.
pub const MAX_NAME: usize = 128;

/// Paths inside the container that a volume may not cover: the plugin's log mount and the
/// kernel file systems runc mounts.
const RESERVED_TARGETS: &[&str] = &["/.omni-cpi", "/proc", "/sys", "/dev"];

fn invalid(message: String) -> CpiError {
    CpiError::new(ErrorKind::InvalidArgument, message)
}

/// A container, volume, network or image name (the WIT's rule, see `omni_cpi_sdk::names`), at
/// most [`MAX_NAME`] bytes.
pub fn name(what: &str, value: &str) -> CpiResult<()> {
    omni_cpi_sdk::names::check(what, value, MAX_NAME)
}

/// An absolute path in the container made of plain components (`/data`, `/srv/.cache`): no `.`
/// or `..`, no empty component, no trailing `/`; not `/` itself and not under a reserved path.
pub fn target(value: &str) -> CpiResult<()> {
    let bad = || {
        invalid(format!(
            "invalid target {value:?}: an absolute path of components made of letters, digits, `_`, `.` and `-` \
             (no `.` or `..` components), e.g. /data"
        ))
    };
    let rest = value.strip_prefix('/').ok_or_else(bad)?;
    for component in rest.split('/') {
        let body = component.strip_prefix('.').unwrap_or(component);
        let mut chars = body.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err(bad());
        }
    }
    if value.len() > 4096 {
        return Err(bad());
    }
    for reserved in RESERVED_TARGETS {
        if value == *reserved || value.strip_prefix(reserved).is_some_and(|r| r.starts_with('/')) {
            return Err(invalid(format!("invalid target {value}: {reserved} is managed by the runtime")));
        }
    }
    Ok(())
}

/// `VOLUME:/path` from `ContainerSpec.volumes`.
pub fn volume_spec(value: &str) -> CpiResult<(String, String)> {
    let (volume, path) =
        value.split_once(':').ok_or_else(|| invalid(format!("invalid volume {value:?}: expected VOLUME:/path")))?;
    name("volume name", volume)?;
    target(path)?;
    Ok((volume.to_string(), path.to_string()))
}

/// A string that goes into config.json or an argv: NUL cannot be passed to the kernel.
pub fn no_nul(what: &str, value: &str) -> CpiResult<()> {
    if value.contains('\0') {
        return Err(invalid(format!("invalid {what}: contains a NUL character")));
    }
    Ok(())
}

/// An environment variable: a non-empty name without `=`; neither part with NUL.
pub fn env(key: &str, value: &str) -> CpiResult<()> {
    if key.is_empty() || key.contains('=') {
        return Err(invalid(format!("invalid environment variable name {key:?}: empty or contains `=`")));
    }
    no_nul("environment variable name", key)?;
    no_nul(&format!("value of environment variable {key}"), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "web-1", "A_b.c", "0"] {
            assert!(name("n", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "_a", "a/b", "a b", "..", "a\0", "é"] {
            assert!(name("n", bad).is_err(), "{bad}");
        }
        assert!(name("n", &"a".repeat(MAX_NAME)).is_ok());
        assert!(name("n", &"a".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn targets() {
        for ok in ["/data", "/srv/.cache", "/a/b-c/d_e.f", "/devices", "/procfs"] {
            assert!(target(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "data",
            "/data/",
            "//data",
            "/a/../b",
            "/a/./b",
            "/..",
            "/.",
            "/proc",
            "/proc/x",
            "/dev",
            "/.omni-cpi/x",
            "/a b",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volume_specs() {
        assert_eq!(volume_spec("v1:/data").ok(), Some(("v1".into(), "/data".into())));
        for bad in ["v1", "v1:data", ":/data", "../v:/data", "v:/data:ro"] {
            assert!(volume_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_vars() {
        assert!(env("MODE", "a b=c").is_ok());
        assert!(env("", "x").is_err());
        assert!(env("A=B", "x").is_err());
        assert!(env("A", "x\0").is_err());
    }
}
