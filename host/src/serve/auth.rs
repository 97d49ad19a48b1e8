//! Who is calling. On the unix socket: the peer's credentials (`SO_PEERCRED`), checked against
//! the policy's `[serve]` lists before a byte of the request is read. Over TCP: a bearer token
//! from the operator's token file, compared in constant time.

use std::path::{Path, PathBuf};

use crate::policy::ServePolicy;

/// The caller of one request, as the audit log and the metrics name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A local user on the unix socket.
    Uid(u32),
    /// A TCP client that presented the token of this name.
    Token(String),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Uid(uid) => write!(f, "uid:{uid}"),
            Identity::Token(name) => write!(f, "token:{name}"),
        }
    }
}

/// Whether a local peer may use the socket: its uid or primary gid is listed, or it is the user
/// the server runs as. Deny by default: nothing else.
pub fn peer_allowed(serve: &ServePolicy, uid: u32, gid: u32) -> bool {
    serve.allow_uids.contains(&uid) || serve.allow_gids.contains(&gid) || uid == rustix::process::geteuid().as_raw()
}

/// Named bearer tokens, read from the operator's token file.
#[derive(Clone)]
pub struct Tokens {
    tokens: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("Tokens").field("names", &self.tokens.iter().map(|(n, _)| n).collect::<Vec<_>>()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the token file {path} can be read by other users (mode {mode:o}); make it private: chmod 600 {path}")]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error("{path}:{line}: {message}")]
    Invalid { path: PathBuf, line: usize, message: String },
}

/// Shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_BYTES: usize = 32;

impl Tokens {
    /// Reads `NAME TOKEN` lines (`#` starts a comment). The file must not be readable by group or
    /// others; names are unique; tokens are at least [`MIN_TOKEN_BYTES`] long and unique.
    pub fn load(path: &Path) -> Result<Tokens, TokenError> {
        use std::os::unix::fs::PermissionsExt;
        let read = |source| TokenError::Read { path: path.to_path_buf(), source };
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(TokenError::NotPrivate { path: path.to_path_buf(), mode: mode & 0o777 });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Tokens::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Tokens, TokenError> {
        let mut tokens: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let invalid = |message: String| TokenError::Invalid { path: path.to_path_buf(), line: i + 1, message };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(name), Some(token), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(invalid("expected `NAME TOKEN`".into()));
            };
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                return Err(invalid(format!("the name `{name}` may hold only letters, digits, `_`, `-` and `.`")));
            }
            if token.len() < MIN_TOKEN_BYTES {
                return Err(invalid(format!(
                    "the token of `{name}` is {} bytes; use at least {MIN_TOKEN_BYTES} (e.g. `openssl rand -hex 32`)",
                    token.len()
                )));
            }
            if tokens.iter().any(|(n, _)| n == name) {
                return Err(invalid(format!("the name `{name}` is given twice")));
            }
            if tokens.iter().any(|(_, t)| t == token.as_bytes()) {
                return Err(invalid(format!("the token of `{name}` is also another name's")));
            }
            tokens.push((name.to_string(), token.as_bytes().to_vec()));
        }
        if tokens.is_empty() {
            return Err(TokenError::Invalid { path: path.to_path_buf(), line: 0, message: "no tokens".into() });
        }
        Ok(Tokens { tokens })
    }

    /// The name of the token in an `Authorization: Bearer TOKEN` header value, if it is one of
    /// ours. Every token is compared in full, so the time taken says nothing about any of them.
    pub fn identify(&self, authorization: Option<&[u8]>) -> Option<Identity> {
        let presented = authorization?.strip_prefix(b"Bearer ")?;
        let mut found = None;
        for (name, token) in &self.tokens {
            if constant_time_eq(presented, token) {
                found = Some(Identity::Token(name.clone()));
            }
        }
        found
    }
}

/// Equal, in a time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn tokens_identify_their_holder_and_nobody_else() {
        let tokens = Tokens::parse(Path::new("t"), &format!("# agents\nagent {A}\ndirector {B}\n")).expect("parses");
        assert_eq!(tokens.identify(Some(format!("Bearer {B}").as_bytes())), Some(Identity::Token("director".into())));
        assert_eq!(tokens.identify(Some(A.as_bytes())), None, "the scheme is required");
        assert_eq!(tokens.identify(Some(format!("Bearer {A}x").as_bytes())), None);
        assert_eq!(tokens.identify(None), None);
        assert!(!format!("{tokens:?}").contains(A), "Debug never shows a token");
    }

    #[test]
    fn bad_token_files_are_refused_with_the_line() {
        let err = |text: &str| Tokens::parse(Path::new("t"), text).expect_err("refused").to_string();
        assert!(err("agent short\n").contains("t:1: the token of `agent` is 5 bytes"));
        assert!(err(&format!("a {A}\na {B}\n")).contains("t:2: the name `a` is given twice"));
        assert!(err(&format!("a {A}\nb {A}\n")).contains("also another name's"));
        assert!(err("").contains("no tokens"));
        assert!(err(&format!("a b {A}\n")).contains("expected `NAME TOKEN`"));
    }

    #[test]
    fn peers_are_denied_unless_listed() {
        let serve = ServePolicy { allow_uids: vec![1000], allow_gids: vec![50], ..ServePolicy::default() };
        assert!(peer_allowed(&serve, 1000, 1000));
        assert!(peer_allowed(&serve, 2000, 50));
        let me = rustix::process::geteuid().as_raw();
        assert!(peer_allowed(&ServePolicy::default(), me, 12345), "the server's own user");
        assert!(!peer_allowed(&ServePolicy::default(), me.wrapping_add(1), 12345));
    }
}
