//! Messages about a spec file that point at the offending text, rustc-style:
//!
//! ```text
//! error: cpis/bad.json:4:13: unknown key `comand` in action `start_container`
//!   |
//! 4 |             "comand": "podman start {name}",
//!   |             ^^^^^^^^
//!   = help: did you mean `command`?
//! ```
//!
//! The exact text is held by golden tests (`tests/golden/spec-errors`), so change it deliberately.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::json::spec::json::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// Where a diagnostic points: 1-based line and column (in characters), the line's text and how
/// many characters to underline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub line_text: String,
    #[serde(skip)]
    pub underline: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, message: message.into(), location: None, help: None }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(message) }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let Some(loc) = &self.location else {
            write!(f, "{label}: {}", self.message)?;
            if let Some(help) = &self.help {
                write!(f, "\n  = help: {help}")?;
            }
            return Ok(());
        };
        writeln!(f, "{label}: {}:{}:{}: {}", loc.file.display(), loc.line, loc.column, self.message)?;
        let gutter = " ".repeat(loc.line.to_string().len());
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{} | {}", loc.line, loc.line_text)?;
        let indent: String =
            loc.line_text.chars().take(loc.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        write!(f, "{gutter} | {indent}{}", "^".repeat(loc.underline.max(1)))?;
        if let Some(help) = &self.help {
            write!(f, "\n{gutter} = help: {help}")?;
        }
        Ok(())
    }
}

/// All the diagnostics from loading or validating one file; renders them one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A spec's text with an index of line starts, to turn byte spans into locations.
pub struct SourceFile {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        SourceFile { path: path.into(), text, line_starts }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn locate(&self, span: Span) -> Location {
        // A span from a byte-oriented parser may end (or start) inside a multi-byte character;
        // widen it to whole characters rather than slice through one.
        let floor = |mut i: usize| {
            i = i.min(self.text.len());
            while !self.text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let ceil = |mut i: usize| {
            i = i.min(self.text.len());
            while !self.text.is_char_boundary(i) {
                i += 1;
            }
            i
        };
        let span = Span::new(floor(span.start), ceil(span.end));
        let start = span.start;
        let line_index = self.line_starts.partition_point(|&s| s <= start) - 1;
        let line_start = self.line_starts[line_index];
        let line_end = self.text[line_start..].find('\n').map_or(self.text.len(), |i| line_start + i);
        let line_text = self.text[line_start..line_end].trim_end_matches('\r');
        let column = self.text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end.max(start));
        let underline = self.text[start..end].chars().count();
        Location { file: self.path.clone(), line: line_index + 1, column, line_text: line_text.to_string(), underline }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_inside_a_multi_byte_character_widen_to_it() {
        // Found by `cargo xtask fuzz` (compat_translate): a JSON error one byte into `ޛ`.
        let source = SourceFile::new("a.json", "{\u{79b}}".to_string());
        let at = source.locate(Span::new(2, 3));
        assert_eq!((at.line, at.column, at.underline), (1, 2, 1));
        assert_eq!(source.locate(Span::new(1, 2)).underline, 1);
    }

    #[test]
    fn renders_location_snippet_and_help() {
        let source = SourceFile::new("a.json", "{\n  \"comand\": 1\n}\n".to_string());
        let d = Diagnostic::error("unknown key `comand`")
            .at(source.locate(Span::new(4, 12)))
            .help("did you mean `command`?");
        assert_eq!(
            d.to_string(),
            "error: a.json:2:3: unknown key `comand`\n  |\n2 |   \"comand\": 1\n  |   ^^^^^^^^\n  = help: did you mean `command`?"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let source = SourceFile::new("a.json", "\"é{x}\"".to_string());
        assert_eq!(source.locate(Span::new(3, 6)).column, 3);
    }
}
