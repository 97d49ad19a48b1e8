//! The conformance kit: does a CPI honour the contract? (the checks: `omni-cpi conformance --list`)
//!
//! Checks have stable IDs and MUST/SHOULD levels; they run through the same [`Cpi`] API for JSON
//! specs and components. Every resource a run creates carries a run-unique prefix and is recorded,
//! and cleanup runs in reverse order after every check, even a failed one. Leftovers of earlier
//! runs of this CPI whose process has ended are swept first (never a run still going); anything of
//! this run that remains at the end is a failure.

mod checks;
pub mod report;
pub mod statics;

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::contract::error::{CpiError, ErrorKind};
use crate::contract::options::CallOptions;
use crate::contract::params::Params;
use crate::contract::plan::Outcome;
use crate::cpi::Cpi;
use crate::json::spec::CpiKind;

pub use checks::{catalogue, CheckInfo, Level};

/// How a run is shaped, from the command line or a test.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run only these check IDs (all when empty).
    pub only: Vec<String>,
    pub skip: Vec<String>,
    /// How many times C-ROBUST-01 repeats a lifecycle.
    pub repeat: usize,
    /// How many lifecycles C-ROBUST-02 runs at once.
    pub parallel: usize,
    /// Parameters every call gets (image, stop_timeout, ...), over the kit's defaults.
    pub params: Params,
}

impl Default for Options {
    fn default() -> Self {
        Options { only: Vec::new(), skip: Vec::new(), repeat: 3, parallel: 3, params: Params::new() }
    }
}

/// The parameters the kit passes to every call of this CPI: what the CPI declares for it
/// ([`Cpi::conformance_params`]); `--param` overrides them.
pub fn defaults_for(cpi: &Cpi) -> Params {
    cpi.conformance_params()
}

/// One call the kit made, for failure reports: the action, its parameters, and what ran.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub action: String,
    pub params: Value,
    /// argv of every process the call ran (hooks and command, or a component's host execs).
    pub processes: Vec<Vec<String>>,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub expected: String,
    pub got: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallRecord>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed(Failure),
    Skipped { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: &'static str,
    pub level: Level,
    pub statement: &'static str,
    #[serde(flatten)]
    pub verdict: Verdict,
    #[serde(serialize_with = "as_millis", rename = "duration_ms")]
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cpi: String,
    pub kind: CpiKind,
    pub prefix: String,
    pub results: Vec<CheckResult>,
    #[serde(serialize_with = "as_millis", rename = "duration_ms")]
    pub duration: Duration,
}

impl Report {
    pub fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.verdict)).count()
    }

    /// Every MUST check passed (or was skipped for a declared unsupported action).
    pub fn conformant(&self) -> bool {
        !self.results.iter().any(|r| r.level == Level::Must && matches!(r.verdict, Verdict::Failed(_)))
    }
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Something a check created, to be removed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Container(String),
    Volume(String),
    Network(String),
    Vm(String),
    Disk(String),
    Snapshot(String),
}

/// The state of one check: the CPI, the parameters, the names it made and what to clean up.
pub(crate) struct Ctx<'a> {
    cpi: &'a Cpi,
    base: Params,
    prefix: String,
    counter: u32,
    created: Vec<Resource>,
    last_call: Option<CallRecord>,
    repeat: usize,
    parallel: usize,
}

impl<'a> Ctx<'a> {
    /// `named` is how many names the run has made so far: names stay unique across the checks of
    /// a run, so that what one check could not remove never collides with the next one's.
    fn new(cpi: &'a Cpi, base: Params, prefix: String, options: &Options, named: u32) -> Ctx<'a> {
        Ctx {
            cpi,
            base,
            prefix,
            counter: named,
            created: Vec::new(),
            last_call: None,
            repeat: options.repeat,
            parallel: options.parallel,
        }
    }

    /// A name unique to this run.
    fn name(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{}-{kind}{}", self.prefix, self.counter)
    }

    fn params(&self, extra: Value) -> Params {
        let mut params = self.base.clone();
        if let Value::Object(extra) = extra {
            params.extend(extra);
        }
        params
    }

    /// Calls an action with the base parameters plus `extra`, recording what ran.
    async fn call(&mut self, action: &str, extra: Value) -> Result<Outcome, CpiError> {
        let params = self.params(extra);
        let result = self.cpi.call(action, &params, &CallOptions::default()).await;
        let (processes, outcome) = match &result {
            Ok(o) => (
                o.steps.iter().map(|s| s.argv.clone()).collect(),
                format!(
                    "ok (exit code {:?}){}",
                    o.exit_code,
                    o.result.as_ref().map(|r| format!(", result {r}")).unwrap_or_default()
                ),
            ),
            Err(e) => {
                (e.failed_step.iter().map(|s| s.argv.clone()).collect(), format!("error[{}]: {}", e.kind, e.message))
            }
        };
        self.last_call =
            Some(CallRecord { action: action.to_string(), params: Value::Object(params), processes, outcome });
        result
    }

    fn failure(&self, expected: impl Into<String>, got: impl Into<String>) -> Failure {
        Failure { expected: expected.into(), got: got.into(), call: self.last_call.clone() }
    }

    /// The call must succeed.
    async fn ok(&mut self, action: &str, extra: Value) -> Result<Outcome, Failure> {
        match self.call(action, extra).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => Err(self.failure(format!("{action} succeeds"), got(&e))),
        }
    }

    /// The call must fail with one of `kinds`.
    async fn fails(&mut self, action: &str, extra: Value, kinds: &[ErrorKind]) -> Result<CpiError, Failure> {
        let expected =
            format!("{action} fails with {}", kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" or "));
        match self.call(action, extra).await {
            Ok(outcome) => Err(self.failure(expected, format!("success (exit code {:?})", outcome.exit_code))),
            Err(e) if kinds.contains(&e.kind) => Ok(e),
            Err(e) => Err(self.failure(expected, got(&e))),
        }
    }

    /// The call must succeed, or fail with one of `kinds` (an idempotent repeat).
    async fn ok_or(&mut self, action: &str, extra: Value, kinds: &[ErrorKind]) -> Result<(), Failure> {
        match self.call(action, extra).await {
            Ok(_) => Ok(()),
            Err(e) if kinds.contains(&e.kind) => Ok(()),
            Err(e) => Err(self.failure(
                format!(
                    "{action} succeeds or fails with {}",
                    kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" or ")
                ),
                got(&e),
            )),
        }
    }

    fn created(&mut self, resource: Resource) {
        self.created.push(resource);
    }

    fn forget(&mut self, resource: &Resource) {
        self.created.retain(|r| r != resource);
    }

    /// Removes what the check created, newest first, whatever the check did. Returns what could
    /// not be removed.
    async fn cleanup(&mut self) -> Vec<String> {
        let mut leaked = Vec::new();
        while let Some(resource) = self.created.pop() {
            let (action, params, label) = match &resource {
                Resource::Container(n) => ("delete_container", json!({ "name": n }), format!("container {n}")),
                Resource::Volume(n) => ("delete_volume", json!({ "name": n }), format!("volume {n}")),
                Resource::Network(n) => ("delete_network", json!({ "name": n }), format!("network {n}")),
                Resource::Vm(id) => ("delete_vm", json!({ "vm": id }), format!("VM {id}")),
                Resource::Disk(id) => ("delete_disk", json!({ "disk": id }), format!("disk {id}")),
                Resource::Snapshot(id) => ("delete_snapshot", json!({ "snapshot": id }), format!("snapshot {id}")),
            };
            match self.call(action, params).await {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => leaked.push(format!("{label} ({}: {})", e.kind, e.message)),
            }
        }
        leaked
    }
}

/// Names a list action returns (for sweeps and leak checks).
pub(crate) fn names(outcome: &Outcome) -> Vec<String> {
    match &outcome.result {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s.trim_start_matches('/').to_string()),
                Value::Object(o) => {
                    ["Names", "name", "Name", "id", "Id"].iter().find_map(|k| o.get(*k)).and_then(|v| {
                        v.as_str().map(str::to_string).or_else(|| v.get(0).and_then(Value::as_str).map(str::to_string))
                    })
                }
                _ => None,
            })
            .collect(),
        _ => outcome.stdout.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}p{:05x}", std::process::id(), nanos & 0xfffff)
}

/// Whether a resource named by an earlier run (`FAMILY-PIDpHEX-…`) may be swept: its run is over
/// when its process is gone. A run of this process (another test, a concurrent kit) or of a
/// living process is left alone, so two kits on one CPI never delete each other's resources.
/// Names of another shape (older runs) are swept.
fn leftover_of_a_finished_run(name: &str, family: &str) -> bool {
    let Some(rest) = name.strip_prefix(family).and_then(|r| r.strip_prefix('-')) else { return false };
    let Some((pid, _)) = rest.split_once('p') else { return true };
    let Ok(pid) = pid.parse::<u32>() else { return true };
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The prefix shared by every run against this CPI; the run prefix adds a unique suffix.
pub fn kit_prefix(cpi: &Cpi) -> String {
    let short: String =
        cpi.name().trim_end_matches("_cpi").chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    format!("omni-conf-{short}")
}

/// Runs the kit against a CPI. `progress` is told about each result as soon as it exists.
pub async fn run(cpi: &Cpi, options: &Options, progress: &mut dyn FnMut(&CheckResult)) -> Report {
    let started = Instant::now();
    let kind = cpi.kind();
    let family = kit_prefix(cpi);
    let prefix = format!("{family}-{}", unique_suffix());
    let mut base = defaults_for(cpi);
    base.extend(options.params.clone());

    sweep(cpi, &base, &family).await;

    let mut results = Vec::new();
    let mut named = 0;
    for info in catalogue().iter().filter(|c| c.kind == kind) {
        let selected = (options.only.is_empty() || options.only.iter().any(|o| o == info.id))
            && !options.skip.iter().any(|s| s == info.id);
        if !selected || checks::is_leak_check(info.id) {
            continue;
        }
        let check_started = Instant::now();
        let verdict = match checks::unsupported_needs(cpi, info) {
            Some(reason) => Verdict::Skipped { reason },
            None => {
                let mut ctx = Ctx::new(cpi, base.clone(), prefix.clone(), options, named);
                let outcome = checks::run(info.id, &mut ctx).await;
                let leaked = ctx.cleanup().await;
                named = ctx.counter;
                match (outcome, leaked.is_empty()) {
                    (Err(failure), _) => Verdict::Failed(failure),
                    (Ok(()), true) => Verdict::Passed,
                    (Ok(()), false) => Verdict::Failed(Failure {
                        expected: "cleanup removes everything the check created".into(),
                        got: format!("could not remove: {}", leaked.join("; ")),
                        call: ctx.last_call.clone(),
                    }),
                }
            }
        };
        record(info, verdict, check_started, progress, &mut results);
    }

    if let Some(info) = catalogue().iter().find(|c| checks::is_leak_check(c.id) && c.kind == kind) {
        let check_started = Instant::now();
        let mut ctx = Ctx::new(cpi, base.clone(), prefix.clone(), options, named);
        let verdict = match checks::leftovers(&mut ctx, &prefix).await {
            Ok(()) => Verdict::Passed,
            Err(failure) => Verdict::Failed(failure),
        };
        record(info, verdict, check_started, progress, &mut results);
    }
    sweep(cpi, &base, &prefix).await;
    Report { cpi: cpi.name().to_string(), kind, prefix, results, duration: started.elapsed() }
}

/// Reports a finished check as it happens and keeps it for the report.
fn record(
    info: &CheckInfo,
    verdict: Verdict,
    started: Instant,
    progress: &mut dyn FnMut(&CheckResult),
    results: &mut Vec<CheckResult>,
) {
    let result =
        CheckResult { id: info.id, level: info.level, statement: info.statement, verdict, duration: started.elapsed() };
    progress(&result);
    results.push(result);
}

/// Deletes containers (or VMs) whose names start with `prefix`: leftovers of earlier runs before
/// the run, and anything this run leaked after it.
async fn sweep(cpi: &Cpi, base: &Params, prefix: &str) {
    let options = CallOptions::default();
    let (list, delete, key) = match cpi.kind() {
        CpiKind::Container => ("list_containers", "delete_container", "name"),
        CpiKind::Director => ("list_vms", "delete_vm", "vm"),
    };
    let Ok(listed) = cpi.call(list, base, &options).await else { return };
    for name in names(&listed).into_iter().filter(|n| leftover_of_a_finished_run(n, prefix)) {
        let mut params = base.clone();
        params.insert(key.into(), Value::String(name.clone()));
        if let Err(e) = cpi.call(delete, &params, &options).await {
            tracing::warn!(%name, error = %e, "could not sweep a leftover");
        }
    }
}

/// An error as a failure reports it; a parameter the kit did not pass says how to pass it.
fn got(e: &CpiError) -> String {
    let mut text = format!("error[{}]: {}", e.kind, e.message);
    if let (ErrorKind::InvalidArgument, Some(param)) = (e.kind, &e.param) {
        if e.message.starts_with("missing required parameter") {
            text.push_str(&format!(
                "; the kit passes no `{param}`: pass --param {param}=VALUE, or declare it in the CPI's \
                 conformance parameters (a spec's \"conformance\": {{\"params\": ...}}, a component's \
                 `conformance.{param}` default setting)"
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_leftovers_of_finished_runs_are_swept() {
        let family = "omni-conf-podman";
        let ours = format!("{family}-{}-c1", super::unique_suffix());
        assert!(!super::leftover_of_a_finished_run(&ours, family), "a run of this process");
        assert!(!super::leftover_of_a_finished_run(&format!("{family}-1p00001-c1"), family), "pid 1 is alive");
        assert!(super::leftover_of_a_finished_run(&format!("{family}-{}p00001-c1", u32::MAX - 1), family));
        assert!(super::leftover_of_a_finished_run(&format!("{family}-1234500001-c1"), family), "older names");
        assert!(!super::leftover_of_a_finished_run("omni-conf-podmanx-1p1-c1", family), "another family");
    }
}
