//! What a call will do (a [`Plan`], the dry run) and what it did (an [`Outcome`]).
//!
//! A plan is what the host runs, so only the host makes one: its fields are private, it has no
//! public constructor and no `Deserialize`, and it remembers which CPI rendered it (a plan from
//! one CPI is refused by another). What a plan shows, through its accessors, `Debug` and
//! `Serialize`, has every secret parameter's value replaced by `***`; the processes still get the
//! values.

use std::time::Duration;

use serde::{Deserialize, Serialize};
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
#[derive(Clone, PartialEq, Eq)]
pub struct PlannedStep {
    /// `command` for the action itself (`request` for a request action), otherwise the hook's key
    /// (`pre_delete`).
    pub(crate) name: String,
    pub(crate) stage: StepStage,
    /// What runs. Empty for a request step.
    pub(crate) argv: Vec<String>,
    /// The HTTP request a request action sends, instead of a process.
    pub(crate) request: Option<crate::json::http::HttpRequest>,
    /// A failure of this step is reported but does not stop the action.
    pub(crate) ignore_failure: bool,
    pub(crate) timeout: Duration,
    /// What `argv` may outlive a timeout in its own session (`detach` on the hook, or a grant's).
    pub(crate) detach: bool,
    /// Written to the process's standard input (the action's `stdin`).
    pub(crate) stdin: Option<String>,
    /// `argv`, `request` and `stdin` with secrets replaced, when a secret appears in them.
    pub(crate) shown: Option<Shown>,
}

/// A step as it may be shown.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    argv: Vec<String>,
    request: Option<crate::json::http::HttpRequest>,
    stdin: Option<String>,
}

impl PlannedStep {
    pub(crate) fn new(name: &str, stage: StepStage, argv: Vec<String>, timeout: Duration) -> PlannedStep {
        PlannedStep {
            name: name.to_string(),
            stage,
            argv,
            request: None,
            ignore_failure: false,
            timeout,
            detach: false,
            stdin: None,
            shown: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stage(&self) -> StepStage {
        self.stage
    }

    /// The argv, secrets shown as `***`.
    pub fn argv(&self) -> &[String] {
        self.shown.as_ref().map_or(&self.argv, |shown| &shown.argv)
    }

    /// The HTTP request, secrets shown as `***`.
    pub fn request(&self) -> Option<&crate::json::http::HttpRequest> {
        match &self.shown {
            Some(shown) => shown.request.as_ref(),
            None => self.request.as_ref(),
        }
    }

    /// What the process reads on standard input, secrets shown as `***`.
    pub fn stdin(&self) -> Option<&str> {
        match &self.shown {
            Some(shown) => shown.stdin.as_deref(),
            None => self.stdin.as_deref(),
        }
    }

    pub fn ignore_failure(&self) -> bool {
        self.ignore_failure
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn detach(&self) -> bool {
        self.detach
    }

    /// Fills `shown` when a secret appears in the step.
    pub(crate) fn redact_with(&mut self, secrets: &crate::secrets::Secrets) {
        if secrets.is_empty() {
            return;
        }
        let argv_leaks = self.argv.iter().any(|a| secrets.appears_in(a));
        let request_leaks = self.request.as_ref().is_some_and(|r| secrets.appears_in_request(r));
        let stdin_leaks = self.stdin.as_deref().is_some_and(|s| secrets.appears_in(s));
        if argv_leaks || request_leaks || stdin_leaks {
            self.shown = Some(Shown {
                argv: secrets.redact_all(&self.argv),
                request: self.request.as_ref().map(|r| secrets.redact_request(r)),
                stdin: self.stdin.as_deref().map(|s| secrets.redact(s)),
            });
        }
    }
}

impl std::fmt::Debug for PlannedStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedStep")
            .field("name", &self.name)
            .field("stage", &self.stage)
            .field("argv", &self.argv())
            .field("request", &self.request())
            .field("ignore_failure", &self.ignore_failure)
            .field("timeout", &self.timeout)
            .field("detach", &self.detach)
            .field("stdin", &self.stdin())
            .finish()
    }
}

impl Serialize for PlannedStep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("PlannedStep", 8)?;
        out.serialize_field("name", &self.name)?;
        out.serialize_field("stage", &self.stage)?;
        out.serialize_field("argv", self.argv())?;
        if let Some(request) = self.request() {
            out.serialize_field("request", request)?;
        }
        out.serialize_field("ignore_failure", &self.ignore_failure)?;
        out.serialize_field("timeout_ms", &(self.timeout.as_millis() as u64))?;
        if self.detach {
            out.serialize_field("detach", &true)?;
        }
        if let Some(stdin) = self.stdin() {
            out.serialize_field("stdin", stdin)?;
        }
        out.end()
    }
}

/// The full plan of one action call: every hook and the command, as argv arrays. Made only by
/// the host (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub(crate) cpi: String,
    pub(crate) action: String,
    pub(crate) steps: Vec<PlannedStep>,
    /// Parameters the caller passed that the action does not declare; they reach no process.
    pub(crate) ignored_params: Vec<String>,
    /// The values this call must not show.
    #[serde(skip)]
    pub(crate) secrets: crate::secrets::Secrets,
    /// Which CPI instance rendered it ([`crate::JsonCpi`] refuses another's plan).
    #[serde(skip)]
    pub(crate) issuer: u64,
}

impl Plan {
    pub fn cpi(&self) -> &str {
        &self.cpi
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    pub fn steps(&self) -> &[PlannedStep] {
        &self.steps
    }

    pub fn ignored_params(&self) -> &[String] {
        &self.ignored_params
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    /// The HTTP status of a request step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub timed_out: bool,
    /// It failed, and its `ignore_failure` let the action go on.
    pub failure_ignored: bool,
    #[serde(serialize_with = "as_millis", deserialize_with = "from_millis", rename = "duration_ms")]
    pub duration: Duration,
}

/// The successful result of a call (also as a server's client reads it back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub cpi: String,
    pub action: String,
    /// Exit code of the action's command (for `exec`, the code of the command run inside).
    pub exit_code: Option<i32>,
    /// The response status of a request action; its body is `stdout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// stdout parsed as the spec's `output` says; absent when the action does not parse output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    pub steps: Vec<StepReport>,
    pub ignored_params: Vec<String>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn from_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
}
