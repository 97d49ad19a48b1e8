//! A small JSON parser that keeps the byte span of every key and value.
//!
//! serde_json's `Value` forgets positions and silently keeps the last of two duplicate keys; spec
//! errors must point at the offending text (including a duplicate action), so the spec loader walks
//! this tree instead. Input is bounded by the loader (file size) and here (nesting depth).

use std::fmt;

/// Deepest nesting of arrays and objects a spec may use; real specs need fewer than 10 levels.
pub const MAX_DEPTH: usize = 64;

/// A half-open byte range in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Json,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

#[derive(Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    /// Members in document order, duplicates included: callers decide what a duplicate means.
    Object(Vec<Member>),
}

impl Json {
    /// The JSON type name used in error messages ("expected a string, found an array").
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl Node {
    /// Converts to serde_json's value (for default settings and parameter defaults).
    pub fn to_value(&self) -> serde_json::Value {
        match &self.value {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => serde_json::Value::Bool(*b),
            Json::Number(n) => serde_json::Value::Number(n.clone()),
            Json::String(s) => serde_json::Value::String(s.clone()),
            Json::Array(items) => serde_json::Value::Array(items.iter().map(Node::to_value).collect()),
            Json::Object(members) => {
                serde_json::Value::Object(members.iter().map(|m| (m.key.clone(), m.value.to_value())).collect())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// Parses a complete JSON document.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut parser = Parser { text, bytes: text.as_bytes(), pos: 0 };
    parser.skip_whitespace();
    let node = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error("unexpected text after the end of the document"));
    }
    Ok(node)
}

/// Maps a byte offset inside a decoded string back to the byte offset in the source, given the
/// span of the string literal (quotes included). Escapes make the two differ.
pub fn source_offset_in_string(text: &str, literal: Span, decoded_offset: usize) -> usize {
    let bytes = text.as_bytes();
    let mut src = literal.start + 1;
    let mut decoded = 0;
    while src < literal.end.saturating_sub(1) && decoded < decoded_offset {
        if bytes[src] == b'\\' {
            let (consumed, produced) = escape_lengths(&bytes[src..]);
            src += consumed;
            decoded += produced;
        } else {
            let len = utf8_len(bytes[src]);
            src += len;
            decoded += len;
        }
    }
    src
}

/// (source bytes consumed, decoded bytes produced) for the escape at the start of `rest`.
fn escape_lengths(rest: &[u8]) -> (usize, usize) {
    if rest.get(1) != Some(&b'u') {
        return (2, 1);
    }
    let hex = |at: usize| {
        rest.get(at..at + 4).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    match hex(2) {
        Some(0xD800..=0xDBFF) if rest.get(6..8) == Some(b"\\u") => (12, 4),
        Some(code) => (6, char::from_u32(code).map_or(3, char::len_utf8)),
        None => (2, 1),
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError { offset: self.pos, message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let start = self.pos;
        let value = match self.peek() {
            None => return Err(self.error("unexpected end of file, expected a value")),
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Json::String(self.string()?),
            Some(b't') => self.keyword("true", Json::Bool(true))?,
            Some(b'f') => self.keyword("false", Json::Bool(false))?,
            Some(b'n') => self.keyword("null", Json::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.error("expected a value (string, number, object, array, true, false or null)")),
        };
        Ok(Node { value, span: Span::new(start, self.pos) })
    }

    fn enter(&self, depth: usize) -> Result<usize, SyntaxError> {
        if depth >= MAX_DEPTH {
            Err(self.error(format!("nesting deeper than {MAX_DEPTH} levels")))
        } else {
            Ok(depth + 1)
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key in double quotes"));
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_span = Span::new(key_start, self.pos);
            self.skip_whitespace();
            self.expect(b':', "`:` after the key")?;
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push(Member { key, key_span, value });
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.error("expected `,` or `}` after an object member")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]` after an array item")),
            }
        }
    }

    fn keyword(&mut self, word: &str, value: Json) -> Result<Json, SyntaxError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value (string, number, object, array, true, false or null)"))
        }
    }

    fn number(&mut self) -> Result<Json, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')) {
            self.pos += 1;
        }
        let raw = &self.text[start..self.pos];
        serde_json::from_str::<serde_json::Number>(raw)
            .map(Json::Number)
            .map_err(|_| SyntaxError { offset: start, message: format!("invalid number `{raw}`") })
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => out.push(self.escape()?),
                Some(_) => {
                    return Err(self.error("control character in a string: write newlines as \\n and tabs as \\t"))
                }
            }
        }
    }

    fn escape(&mut self) -> Result<char, SyntaxError> {
        self.pos += 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let high = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&high) {
                    if !self.bytes[self.pos..].starts_with(b"\\u") {
                        return Err(self.error("unpaired surrogate in \\u escape"));
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.error("invalid low surrogate in \\u escape"));
                    }
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                return char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"));
            }
            _ => return Err(self.error("invalid escape: use \\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX")),
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("expected four hex digits after \\u"))?;
        let code = u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.pos += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object_keys(node: &Node) -> Vec<&str> {
        match &node.value {
            Json::Object(members) => members.iter().map(|m| m.key.as_str()).collect(),
            other => panic!("expected object, got {other:?}"),
        }
    }

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let node = parse(r#"{"a": 1, "b": 2, "a": 3}"#).expect("valid JSON");
        assert_eq!(object_keys(&node), ["a", "b", "a"]);
    }

    #[test]
    fn spans_cover_keys_and_values() {
        let text = r#"{ "name" : "x\ty" }"#;
        let node = parse(text).expect("valid JSON");
        let Json::Object(members) = &node.value else { panic!() };
        assert_eq!(&text[members[0].key_span.start..members[0].key_span.end], "\"name\"");
        assert_eq!(&text[members[0].value.span.start..members[0].value.span.end], r#""x\ty""#);
    }

    #[test]
    fn maps_decoded_offsets_back_through_escapes() {
        let text = r#""a\"b\u00e9{x}""#;
        let node = parse(text).expect("valid JSON");
        let Json::String(decoded) = &node.value else { panic!() };
        let brace = decoded.find('{').expect("brace");
        assert_eq!(&text[source_offset_in_string(text, node.span, brace)..][..3], "{x}");
    }

    #[test]
    fn rejects_deep_nesting() {
        let text = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let err = parse(&text).expect_err("too deep");
        assert!(err.message.contains("nesting deeper"), "{err}");
    }

    #[test]
    fn reports_syntax_error_offsets() {
        let err = parse("{\"a\": 1,}").expect_err("trailing comma");
        assert_eq!(err.offset, 8);
        assert!(err.message.contains("expected a key"));
    }

    #[test]
    fn rejects_trailing_text_and_raw_control_characters() {
        assert!(parse("{} x").is_err());
        assert!(parse("\"a\nb\"").is_err());
    }
}
