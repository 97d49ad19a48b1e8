//! What a call will do (a [`Plan`], the dry run) and what it did (an [`Outcome`]).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStage {
    Pre,
    Command,
    Post,
    /// Runs only when a post hook fails, to undo the command.
    Rollback,
}

/// One process the call will start (or the one HTTP request it sends), in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStep {
    /// `command` for the action itself (`request` for a request action), otherwise the hook's key
    /// (`pre_delete`).
    pub name: String,
    pub stage: StepStage,
    /// Empty for a request step.
    pub argv: Vec<String>,
    /// The HTTP request a request action sends, instead of a process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::request::HttpRequest>,
    /// A failure of this step is reported but does not stop the action.
    pub ignore_failure: bool,
    #[serde(serialize_with = "as_millis", rename = "timeout_ms")]
    pub timeout: Duration,
}

/// The full plan of one action call: every hook and the command, as argv arrays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub cpi: String,
    pub action: String,
    pub steps: Vec<PlannedStep>,
    /// Parameters the caller passed that the action does not declare; they reach no process.
    pub ignored_params: Vec<String>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    pub name: String,
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    /// The HTTP status of a request step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub timed_out: bool,
    /// It failed, and its `ignore_failure` let the action go on.
    pub failure_ignored: bool,
    #[serde(serialize_with = "as_millis", rename = "duration_ms")]
    pub duration: Duration,
}

/// The successful result of a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub cpi: String,
    pub action: String,
    /// Exit code of the action's command (for `exec`, the code of the command run inside).
    pub exit_code: Option<i32>,
    /// The response status of a request action; its body is `stdout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// stdout parsed as the spec's `output` says; absent when the action does not parse output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    pub steps: Vec<StepReport>,
    pub ignored_params: Vec<String>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}
