//! The WIT's rule for resource names (containers, volumes, networks, VMs, disks, images): letters,
//! digits, `_`, `.`, `-`, starting with a letter or digit. Such a name is never `.`, `..`, a path
//! or an option, so a plugin may use it as a path component or a program's argument.

use crate::{CpiError, CpiResult, ErrorKind};

/// Whether `value` follows the rule and has at most `max_len` bytes.
pub fn is_name(value: &str, max_len: usize) -> bool {
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok && value.len() <= max_len && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `invalid_argument` naming `what` (e.g. "volume name") and the rule, unless `value` is a name.
pub fn check(what: &str, value: &str, max_len: usize) -> CpiResult<()> {
    if is_name(value, max_len) {
        return Ok(());
    }
    Err(CpiError::new(
        ErrorKind::InvalidArgument,
        format!(
            "invalid {what} {value:?}: use letters, digits, `_`, `.` and `-`, starting with a letter or digit, at \
             most {max_len} characters"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_never_paths_or_options() {
        for good in ["a", "web-1", "x.y_z", "9"] {
            assert!(is_name(good, 64), "{good}");
        }
        for bad in ["", ".", "..", "-rf", "a/b", "/etc", "a b", "é", &"a".repeat(65)] {
            assert!(!is_name(bad, 64), "{bad}");
        }
        let err = check("volume name", "../x", 64).expect_err("refused");
        assert!(err.message.contains("invalid volume name \"../x\""), "{}", err.message);
    }
}
