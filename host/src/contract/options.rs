//! Per-call settings chosen by the caller, not by the CPI.

use std::time::Duration;

use crate::process::exec;

/// How the caller wants one call run. Both forms honour every field: a spec's steps and a
/// component's execs take `timeout` in place of their own (a component never beyond the limits its
/// operator granted: a longer one is refused, see `ComponentCpi::check_options`).
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Overrides the CPI's timeouts for every step (every exec, for a component).
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when a step times out.
    pub kill_grace: Duration,
    /// Bytes of stdout and of stderr kept per step.
    pub output_limit: usize,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions { timeout: None, kill_grace: exec::DEFAULT_KILL_GRACE, output_limit: exec::DEFAULT_OUTPUT_LIMIT }
    }
}
