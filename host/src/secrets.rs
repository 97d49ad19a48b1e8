//! Values that must not be shown: a parameter declared `"secret": true` (or, for components and
//! `--compat`, named like a credential). The processes get the values; everything omni-cpi
//! prints, returns for display or writes down (plans, dry runs, errors, `-o json`, tracing, the
//! audit log) gets `***` in their place.
//!
//! A value is looked for as written and in the forms the request renderer gives it (percent
//! encoded in a URL, JSON-escaped in a body), so a token does not survive redaction by being
//! encoded. A value shorter than [`SHORT`] characters is replaced only where it stands alone
//! (not next to a letter or digit): a one-letter "secret" must not turn `tank/data` into
//! `tan***/data`.

use serde_json::Value;

use crate::contract::error::CpiError;
use crate::contract::plan::Outcome;
use crate::json::http::HttpRequest;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Secrets shorter than this are replaced only where they stand alone.
pub const SHORT: usize = 4;

/// The secret values of one call, in every form they may take, longest first (so a secret that
/// contains another is replaced whole).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} forms)", self.0.len())
    }
}

impl Secrets {
    /// The secrets among `values` (strings, numbers, and the items of lists and maps).
    pub fn of<'v>(values: impl IntoIterator<Item = &'v Value>) -> Secrets {
        let mut texts = Vec::new();
        for value in values {
            collect(value, &mut texts);
        }
        let mut forms = Vec::new();
        for text in texts.into_iter().filter(|t| !t.is_empty()) {
            let encoded = crate::json::http::encode(&text);
            let escaped = serde_json::to_string(&text).unwrap_or_default();
            let escaped = escaped.trim_matches('"').to_string();
            // Error messages quote values with Rust's `{:?}`.
            let debug = format!("{text:?}").trim_matches('"').to_string();
            forms.extend([text, encoded, escaped, debug]);
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Secrets(forms)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn appears_in(&self, text: &str) -> bool {
        self.0.iter().any(|s| !occurrences(text, s).is_empty())
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            let found = occurrences(&out, secret);
            if found.is_empty() {
                continue;
            }
            let mut replaced = String::with_capacity(out.len());
            let mut last = 0;
            for start in found {
                replaced.push_str(&out[last..start]);
                replaced.push_str(MASK);
                last = start + secret.len();
            }
            replaced.push_str(&out[last..]);
            out = replaced;
        }
        out
    }

    pub fn redact_all(&self, texts: &[String]) -> Vec<String> {
        texts.iter().map(|t| self.redact(t)).collect()
    }

    /// Every string inside `value` redacted.
    pub fn redact_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact_value(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (self.redact(k), self.redact_value(v))).collect())
            }
            other => other.clone(),
        }
    }

    pub fn appears_in_request(&self, request: &HttpRequest) -> bool {
        self.appears_in(&request.url)
            || request.headers.iter().any(|(_, v)| self.appears_in(v))
            || request.body.as_deref().is_some_and(|b| self.appears_in(b))
    }

    pub fn redact_request(&self, request: &HttpRequest) -> HttpRequest {
        HttpRequest {
            method: request.method.clone(),
            url: self.redact(&request.url),
            headers: request.headers.iter().map(|(k, v)| (k.clone(), self.redact(v))).collect(),
            body: request.body.as_deref().map(|b| self.redact(b)),
        }
    }
}

impl Secrets {
    /// An error with every secret replaced: its message, the failed step's argv and stderr (a
    /// program may echo a value back).
    pub fn redact_error(&self, mut error: CpiError) -> CpiError {
        if self.is_empty() {
            return error;
        }
        error.message = self.redact(&error.message);
        if let Some(step) = &mut error.failed_step {
            step.argv = self.redact_all(&step.argv);
            step.stderr = self.redact(&step.stderr);
        }
        error
    }

    /// An outcome with every secret replaced, in the steps and in what the program printed (it
    /// was parsed before, so `result` is computed from the real output).
    pub fn redact_outcome(&self, mut outcome: Outcome) -> Outcome {
        if self.is_empty() {
            return outcome;
        }
        outcome.stdout = self.redact(&outcome.stdout);
        outcome.stderr = self.redact(&outcome.stderr);
        outcome.result = outcome.result.map(|r| self.redact_value(&r));
        for step in &mut outcome.steps {
            step.argv = self.redact_all(&step.argv);
        }
        outcome
    }
}

/// Where `secret` occurs in `text`, without overlaps; a short secret only where it stands alone.
fn occurrences(text: &str, secret: &str) -> Vec<usize> {
    let alone = |start: usize| {
        let before = text[..start].chars().next_back();
        let after = text[start + secret.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    };
    let short = secret.chars().count() < SHORT;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(secret) {
        let start = from + at;
        if !short || alone(start) {
            found.push(start);
            from = start + secret.len();
        } else {
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

fn collect(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect(v, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Whether a parameter's name says it carries a credential: the rule for components (whose
/// `describe` has no secret flag in WIT 0.1) and for `--compat` files.
pub fn looks_like_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "access_key",
        "accesskey",
        "private_key",
        "privatekey",
        "credential",
    ];
    WORDS.iter().any(|w| name.contains(w)) || name == "pass" || name == "pw" || name.ends_with("_pass")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_plain_encoded_and_escaped_forms_longest_first() {
        let secrets = Secrets::of([&json!("s3cr et/\"x"), &json!(["ab", "abc"]), &json!({"k": 1234})]);
        assert_eq!(secrets.redact("--password=s3cr et/\"x"), "--password=***");
        assert_eq!(secrets.redact("https://h/v?t=s3cr%20et%2F%22x"), "https://h/v?t=***");
        assert_eq!(secrets.redact(r#"{"p":"s3cr et/\"x"}"#), r#"{"p":"***"}"#);
        assert_eq!(secrets.redact("abc ab 1234"), "*** *** ***");
        assert_eq!(secrets.redact_value(&json!({"out": ["abc"]})), json!({"out": ["***"]}));
        assert!(!format!("{secrets:?}").contains("s3cr"));
    }

    #[test]
    fn short_secrets_are_replaced_only_where_they_stand_alone() {
        let secrets = Secrets::of([&json!("k"), &json!("42")]);
        assert_eq!(secrets.redact("tank/data"), "tank/data");
        assert_eq!(secrets.redact("Bearer k"), "Bearer ***");
        assert_eq!(secrets.redact("--key=k --n=42 x421"), "--key=*** --n=*** x421");
        assert_eq!(secrets.redact("k"), "***");
    }

    #[test]
    fn credential_names() {
        for name in ["password", "DB_PASSWORD", "api_key", "token", "auth_token", "ipmi_pass", "client_secret"] {
            assert!(looks_like_credential(name), "{name}");
        }
        for name in ["name", "image", "ports", "passthrough_devices"] {
            assert!(!looks_like_credential(name), "{name}");
        }
    }
}
