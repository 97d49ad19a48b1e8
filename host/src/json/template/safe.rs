//! The one character set a value may use where text is read again (a shell script's word, a
//! remote command, a pattern, a structured string): letters, digits, `_`, `.`, `/` and `-`. Such
//! a value is a single word in every shell, holds no quote, expansion, glob, separator, space or
//! newline, and stays literal text in the pattern and data languages the context table lists.
//! (`/` would end a sed expression, which is why sed and awk program text is refused outright.)
//!
//! A parameter may stand in such a context only when its `pattern` admits nothing else, which
//! [`pattern_is_restrictive`] decides on the pattern's syntax tree (sound: every literal and
//! class in it must lie inside the set). Rendering checks each value again
//! ([`value_is_safe`]), so a mistake in either check alone is not enough.

use regex_syntax::hir::{Class, Hir, HirKind};

/// The characters of a value that is safe where text is read again.
pub fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

pub const SAFE_SET: &str = "[A-Za-z0-9_./-]";

/// An example pattern to suggest, and the one `--compat` infers for names.
pub const SAFE_EXAMPLE: &str = "[A-Za-z0-9][A-Za-z0-9_.-]*";

/// The pattern `--compat` infers for a parameter named like a path, directory or file.
pub const SAFE_PATH_EXAMPLE: &str = "[A-Za-z0-9_./][A-Za-z0-9_./-]*";

pub fn value_is_safe(value: &str) -> bool {
    value.chars().all(is_safe_char)
}

/// Whether every string `pattern` can match consists of safe characters only. `pattern` is the
/// anchored form the loader compiles (`^(?:…)$`).
pub fn pattern_is_restrictive(pattern: &str) -> bool {
    match regex_syntax::Parser::new().parse(pattern) {
        Ok(hir) => hir_is_safe(&hir),
        Err(_) => false,
    }
}

fn hir_is_safe(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(literal) => std::str::from_utf8(&literal.0).is_ok_and(|s| s.chars().all(is_safe_char)),
        HirKind::Class(Class::Unicode(class)) => {
            class.ranges().iter().all(|r| (r.start()..=r.end()).all(is_safe_char_in_range(r.start(), r.end())))
        }
        HirKind::Class(Class::Bytes(class)) => {
            class.ranges().iter().all(|r| (r.start()..=r.end()).all(|b| b.is_ascii() && is_safe_char(b as char)))
        }
        HirKind::Repetition(rep) => hir_is_safe(&rep.sub),
        HirKind::Capture(cap) => hir_is_safe(&cap.sub),
        HirKind::Concat(items) | HirKind::Alternation(items) => items.iter().all(hir_is_safe),
    }
}

/// A range of chars is safe only if it is small and every char in it is; huge ranges (`.`,
/// `\w` with Unicode) are never safe, and are rejected without walking them.
fn is_safe_char_in_range(start: char, end: char) -> impl Fn(char) -> bool {
    let small = (end as u32).saturating_sub(start as u32) < 128;
    move |c| small && is_safe_char(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchored(p: &str) -> String {
        format!("^(?:{p})$")
    }

    #[test]
    fn restrictive_patterns_admit_only_safe_characters() {
        for p in ["[0-9]+", "[0-9]{1,4}", "[A-Za-z0-9][A-Za-z0-9_.-]*", "none|[a-z]+", "(ro|rw)", "v[0-9]+\\.[0-9]+"] {
            assert!(pattern_is_restrictive(&anchored(p)), "{p}");
        }
        for p in [".*", "[^/]+", "\\w+", "\\S+", "[a-z ]+", "[a-z:]+", "a|b;c", "[0-9]+|\\$", "(?s).", "[[:print:]]+"] {
            assert!(!pattern_is_restrictive(&anchored(p)), "{p}");
        }
    }

    #[test]
    fn values_are_checked_by_character() {
        assert!(value_is_safe("web-1.example_2"));
        assert!(value_is_safe("/var/lib/x.img"));
        for v in ["a b", "a;b", "$x", "a:b", "a\nb", "`x`", "é", "a'b"] {
            assert!(!value_is_safe(v), "{v:?}");
        }
    }
}
