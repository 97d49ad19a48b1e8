//! Errors a CPI call can return. The kinds are the contract between a CPI and its callers (and map
//! one to one onto the WIT `error-kind`), so callers match on the kind, never on message text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The resource named by the call does not exist.
    NotFound,
    /// A resource with that name already exists.
    AlreadyExists,
    /// The call itself is wrong: a missing or malformed parameter, an unsafe value.
    InvalidArgument,
    /// The resource exists but is in the wrong state for the action (exec on a stopped container).
    InvalidState,
    /// The resource is still used by another (a volume mounted by a container).
    InUse,
    /// The CPI does not implement the action, or declares it unsupported.
    Unsupported,
    /// A capability the action needs was not granted.
    Denied,
    /// The action ran out of time; its processes were killed.
    Timeout,
    /// The runtime is not reachable or not installed.
    Unavailable,
    /// The runtime command failed for a reason the CPI does not classify.
    Failed,
    /// omni-cpi or the plugin itself broke; a bug to report.
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::InvalidArgument,
        ErrorKind::InvalidState,
        ErrorKind::InUse,
        ErrorKind::Unsupported,
        ErrorKind::Denied,
        ErrorKind::Timeout,
        ErrorKind::Unavailable,
        ErrorKind::Failed,
        ErrorKind::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::InUse => "in_use",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Denied => "denied",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Failed => "failed",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// The step of an action that failed, for the error report: what ran and what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStep {
    /// `command` for the action's own command, otherwise the hook's name (`pre_delete`).
    pub step: String,
    /// For a request step: the method and URL.
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The last part of stderr (bounded), which is where runtimes put the reason; for a request
    /// step, of the response body.
    pub stderr: String,
}

/// A typed failure of one CPI call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{action}: {message}")]
pub struct CpiError {
    pub kind: ErrorKind,
    pub action: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<Box<FailedStep>>,
}

impl CpiError {
    pub fn new(kind: ErrorKind, action: &str, message: impl Into<String>) -> Self {
        CpiError { kind, action: action.to_string(), message: message.into(), param: None, failed_step: None }
    }

    pub fn for_param(kind: ErrorKind, action: &str, param: &str, message: impl Into<String>) -> Self {
        CpiError { param: Some(param.to_string()), ..CpiError::new(kind, action, message) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(kind.as_str().parse::<ErrorKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).expect("serializes"), kind.as_str());
        }
        assert!("nope".parse::<ErrorKind>().is_err());
    }
}
