//! A CPI defined by a JSON spec: plans an action call from its templates and runs the plan.
//!
//! A call takes three steps, each cheap because loading already did the parsing:
//! 1. check the caller's parameters against the action's declarations (required, type, pattern);
//! 2. render every hook and the command into argv arrays: the [`Plan`] (what `--dry-run` shows);
//! 3. run the steps in order through [`crate::process::exec`], then map the result to an [`Outcome`] or a
//!    typed [`CpiError`] using the spec's error rules.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::contract::error::{CpiError, ErrorKind, FailedStep};
use crate::contract::options::CallOptions;
use crate::contract::params::Params;
use crate::contract::plan::{Outcome, Plan, PlannedStep, StepReport, StepStage};
use crate::diagnostic::Diagnostics;
use crate::json::http::HttpRequest;
use crate::json::output;
use crate::json::spec::{self, ActionBody, CommandAction, ErrorRule, ParamDecl, RequestAction, Spec};
use crate::json::template::{Binding, Bindings, Template};
use crate::process::exec::{self, ExecOutput, Invocation};
use crate::secrets::Secrets;
use crate::suggest;

/// Timeout of an action whose spec sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// `PATH` given to processes when the host has none.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How much of stderr an error report keeps (its end, where runtimes put the reason).
const STDERR_TAIL: usize = 2048;

#[derive(Debug, Clone)]
pub struct JsonCpi {
    spec: Arc<Spec>,
    /// The complete environment of every process this CPI starts, fixed at load.
    env: Arc<Vec<(String, String)>>,
    gate: Arc<ExecGate>,
    /// Tells this CPI's plans from another's.
    id: u64,
}

/// Every process and request of a JSON spec passes here: the operator's exec and network grants
/// of the policy entry that binds the spec's file, and the audit log. There is no gate-less CPI:
/// without a policy, [`ExecGate::allow_all`] says so by name.
#[derive(Debug)]
pub struct ExecGate {
    /// The name the audit log records (the policy entry's, or the spec's without a policy).
    plugin: String,
    /// `None` only through [`ExecGate::allow_all`].
    grants: Option<Vec<crate::policy::ExecGrant>>,
    /// Hosts request actions may reach. There is no default: without a grant, nothing is sent.
    network: Vec<crate::policy::NetworkGrant>,
    audit: crate::audit::AuditLog,
}

impl ExecGate {
    /// Lets every process run (local development, no policy). Requests still need a host grant.
    pub fn allow_all(plugin: &str, audit: crate::audit::AuditLog) -> ExecGate {
        ExecGate { plugin: plugin.to_string(), grants: None, network: Vec::new(), audit }
    }

    /// Restricts processes and requests to what a policy entry grants.
    pub fn granting(grants: &crate::policy::PluginGrants, audit: crate::audit::AuditLog) -> ExecGate {
        ExecGate {
            plugin: grants.name.clone(),
            grants: Some(grants.exec.clone()),
            network: grants.network.clone(),
            audit,
        }
    }

    /// Also lets request actions reach these hosts (the CLI's `--allow-host`).
    pub fn with_hosts(mut self, hosts: impl IntoIterator<Item = crate::policy::NetworkGrant>) -> ExecGate {
        self.network.extend(hosts);
        self
    }

    pub fn is_unrestricted(&self) -> bool {
        self.grants.is_none()
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The absolute program and the grant's `detach`, or why the argv is refused.
    fn check(&self, argv: &[String], path: &str) -> Result<(std::path::PathBuf, bool), String> {
        let program = argv.first().and_then(|p| exec::resolve_program(p, path)).ok_or("the program is not on PATH")?;
        let Some(grants) = &self.grants else { return Ok((program, false)) };
        let args = &argv[1..];
        if let Some(grant) = grants.iter().find(|g| g.program == program && crate::policy::args_match(&g.args, args)) {
            return Ok((program, grant.detach));
        }
        // Say which grants exist for this program, and the entry that would allow this argv.
        let granted: Vec<String> = grants
            .iter()
            .filter(|g| g.program == program)
            .map(|g| format!("{:?}", g.args.iter().cloned().map(String::from).collect::<Vec<_>>()))
            .collect();
        let what = if granted.is_empty() {
            format!("grants no exec of `{}`", program.display())
        } else {
            format!("grants `{}` only with the arguments {}", program.display(), granted.join(" or "))
        };
        let literal: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        Err(format!(
            "not granted by the operator: the policy entry `{}` {what}; to allow this exact call, add \
             [[plugins.{}.exec]] program = {:?} args = [{}] (or a pattern with `<value>` where values vary)",
            self.plugin,
            self.plugin,
            program.display().to_string(),
            literal.join(", ")
        ))
    }
}

/// Numbers CPI instances, so a plan is run only by the CPI that rendered it.
static NEXT_CPI_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl JsonCpi {
    /// Loads a spec that will run without a policy: every process it names may run. The name
    /// says what it is; the CLI uses this only when no policy is in force.
    pub fn load_unrestricted(path: &Path) -> Result<JsonCpi, Diagnostics> {
        spec::load_file(path).map(JsonCpi::unrestricted)
    }

    /// A CPI whose processes may be anything its spec renders ([`ExecGate::allow_all`]); they
    /// inherit what its spec names from this process's environment.
    pub fn unrestricted(spec: Spec) -> JsonCpi {
        let gate = ExecGate::allow_all(&spec.name, crate::audit::AuditLog::default());
        JsonCpi::gated(spec, gate)
    }

    /// A CPI behind the operator's gate and audit log.
    pub fn gated(spec: Spec, gate: ExecGate) -> JsonCpi {
        let env = process_env(&spec, |name| std::env::var(name).ok());
        JsonCpi {
            spec: Arc::new(spec),
            env: Arc::new(env),
            gate: Arc::new(gate),
            id: NEXT_CPI_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Takes the inherited variables from `host_env` instead of this process's environment:
    /// embedders and tests pass the environment explicitly rather than mutating their own.
    pub fn with_host_env(mut self, host_env: impl Fn(&str) -> Option<String>) -> JsonCpi {
        self.env = Arc::new(process_env(&self.spec, host_env));
        self
    }

    pub fn gate(&self) -> &ExecGate {
        &self.gate
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The body of an action that does something: a command or a request.
    fn runnable(&self, action: &str) -> Result<&ActionBody, CpiError> {
        match self.spec.action(action).map(|a| &a.body) {
            Some(body @ (ActionBody::Command(_) | ActionBody::Request(_))) => Ok(body),
            Some(ActionBody::Unsupported { reason }) => Err(CpiError::new(
                ErrorKind::Unsupported,
                action,
                format!("CPI `{}` declares this action unsupported: {reason}", self.spec.name),
            )),
            None => {
                let near = suggest::closest(action, self.spec.actions.iter().map(|a| a.name.as_str()))
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                Err(CpiError::new(
                    ErrorKind::Unsupported,
                    action,
                    format!("CPI `{}` has no action `{action}`{near}", self.spec.name),
                ))
            }
        }
    }

    /// Renders every step of a call without running anything (the dry run). Only a plan made
    /// here can be run, and only by this CPI.
    pub fn plan(&self, action_name: &str, params: &Params, options: &CallOptions) -> Result<Plan, CpiError> {
        let body = self.runnable(action_name)?;
        let secrets = self.secrets_of(body.params(), params);
        self.plan_checked(action_name, body, params, options, &secrets).map_err(|e| secrets.redact_error(e))
    }

    /// The values of this call's secret parameters (and of secret defaults).
    fn secrets_of(&self, declared: &[ParamDecl], params: &Params) -> Secrets {
        let bindings = ActionBindings { declared, params, defaults: &self.spec.default_settings };
        Secrets::of(declared.iter().filter(|d| d.secret).filter_map(|d| bindings.get(&d.name)).map(|b| b.value))
    }

    fn plan_checked(
        &self,
        action_name: &str,
        body: &ActionBody,
        params: &Params,
        options: &CallOptions,
        secrets: &Secrets,
    ) -> Result<Plan, CpiError> {
        self.check_params(action_name, body.params(), params)?;
        let action = match body {
            ActionBody::Command(command) => command,
            ActionBody::Request(request) => return self.plan_request(action_name, request, params, options, secrets),
            ActionBody::Unsupported { .. } => unreachable!("runnable() returns commands and requests"),
        };
        let bindings = ActionBindings { declared: &action.params, params, defaults: &self.spec.default_settings };
        let render = |template: &Template| {
            template
                .render_parts(&bindings)
                .map_err(|e| CpiError::for_param(ErrorKind::InvalidArgument, action_name, &e.param, e.to_string()))
        };
        let timeout_of = |own: Option<Duration>| {
            options.timeout.or(own).or(action.timeout).or(self.spec.timeout).unwrap_or(DEFAULT_TIMEOUT)
        };

        let hook_step = |hook: &crate::json::spec::Hook, stage: StepStage| -> Result<PlannedStep, CpiError> {
            let mut step =
                PlannedStep::new(&hook.name, stage, render(&hook.command)?.into_argv(), timeout_of(hook.timeout));
            step.ignore_failure = hook.ignore_failure;
            step.detach = hook.detach;
            Ok(step)
        };
        let mut steps = Vec::with_capacity(action.hooks.len() + 1);
        for hook in action.pre_hooks() {
            steps.push(hook_step(hook, StepStage::Pre)?);
        }
        let mut command = render(&action.command)?;
        for param in &action.params {
            let (Some(fragment), Some(binding)) = (&param.fragment, bindings.get(&param.name)) else {
                continue;
            };
            if binding.value != &Value::Bool(false) {
                fragment.render_onto(&mut command, &bindings).map_err(|e| {
                    CpiError::for_param(ErrorKind::InvalidArgument, action_name, &e.param, e.to_string())
                })?;
            }
        }
        let mut command_step = PlannedStep::new("command", StepStage::Command, command.into_argv(), timeout_of(None));
        command_step.detach = action.detach;
        if let Some(stdin) = &action.stdin {
            command_step.stdin = stdin.render_plain(&bindings).map_err(|e| {
                CpiError::for_param(ErrorKind::InvalidArgument, action_name, &e.param, format!("stdin: {}", e.message))
            })?;
        }
        steps.push(command_step);
        for hook in action.post_hooks() {
            steps.push(hook_step(hook, StepStage::Post)?);
        }
        for hook in action.rollback_hooks() {
            steps.push(hook_step(hook, StepStage::Rollback)?);
        }
        for step in &mut steps {
            step.redact_with(secrets);
        }
        Ok(Plan {
            cpi: self.spec.name.clone(),
            action: action_name.to_string(),
            steps,
            ignored_params: ignored(&action.params, params),
            secrets: secrets.clone(),
            issuer: self.id,
        })
    }

    /// A request action's plan: one step, the rendered request.
    fn plan_request(
        &self,
        action_name: &str,
        action: &RequestAction,
        params: &Params,
        options: &CallOptions,
        secrets: &Secrets,
    ) -> Result<Plan, CpiError> {
        let bindings = ActionBindings { declared: &action.params, params, defaults: &self.spec.default_settings };
        let request = action
            .request
            .render(&bindings)
            .map_err(|e| CpiError::for_param(ErrorKind::InvalidArgument, action_name, &e.param, e.to_string()))?;
        let timeout = options.timeout.or(action.timeout).or(self.spec.timeout).unwrap_or(DEFAULT_TIMEOUT);
        let mut step = PlannedStep::new("request", StepStage::Command, Vec::new(), timeout);
        step.request = Some(request);
        step.redact_with(secrets);
        Ok(Plan {
            cpi: self.spec.name.clone(),
            action: action_name.to_string(),
            steps: vec![step],
            ignored_params: ignored(&action.params, params),
            secrets: secrets.clone(),
            issuer: self.id,
        })
    }

    fn check_params(&self, action_name: &str, declared: &[ParamDecl], params: &Params) -> Result<(), CpiError> {
        let defaults = &self.spec.default_settings;
        crate::contract::params::check(action_name, declared.iter().map(|d| d.rule(defaults)), params)
    }

    /// Plans and runs an action.
    pub async fn call(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Outcome, CpiError> {
        let plan = self.plan(action, params, options)?;
        self.execute(&plan, options).await
    }

    /// Runs a plan this CPI made with [`JsonCpi::plan`]: pre hooks, the command, post hooks; and
    /// the rollback steps if a post hook fails after the command took effect.
    pub async fn execute(&self, plan: &Plan, options: &CallOptions) -> Result<Outcome, CpiError> {
        if plan.issuer != self.id {
            return Err(CpiError::new(
                ErrorKind::InvalidArgument,
                &plan.action,
                format!("this plan was made by another CPI, not by `{}`; plan the call with this CPI", self.spec.name),
            ));
        }
        let outcome = self.execute_checked(plan, options).await;
        match outcome {
            Ok(outcome) => Ok(plan.secrets.redact_outcome(outcome)),
            Err(e) => Err(plan.secrets.redact_error(e)),
        }
    }

    async fn execute_checked(&self, plan: &Plan, options: &CallOptions) -> Result<Outcome, CpiError> {
        let action = match self.runnable(&plan.action)? {
            ActionBody::Command(command) => command,
            ActionBody::Request(request) => return self.execute_request(plan, request, options).await,
            ActionBody::Unsupported { .. } => unreachable!("runnable() returns commands and requests"),
        };
        let mut reports = Vec::with_capacity(plan.steps.len());
        let mut main: Option<ExecOutput> = None;
        for step in plan.steps.iter().filter(|s| s.stage != StepStage::Rollback) {
            let attempt = match self.run_step(&plan.action, step, options).await {
                Ok(run) => {
                    let failure = self.classify(action, step, &run);
                    reports.push(StepReport {
                        name: step.name.clone(),
                        argv: step.argv().to_vec(),
                        exit_code: run.exit_code,
                        http_status: None,
                        timed_out: run.timed_out,
                        failure_ignored: failure.is_some() && step.ignore_failure,
                        duration: run.duration,
                    });
                    tracing::debug!(action = %plan.action, step = %step.name, exit_code = ?run.exit_code, duration = ?run.duration, "step finished");
                    match failure {
                        Some((kind, message)) if !step.ignore_failure => {
                            Err(self.step_error(&plan.action, step, &run, kind, message))
                        }
                        _ => Ok(run),
                    }
                }
                Err(e) if step.ignore_failure => {
                    tracing::debug!(action = %plan.action, step = %step.name, error = %plan.secrets.redact(&e.to_string()), "ignored step failure");
                    continue;
                }
                Err(e) => Err(e),
            };
            match attempt {
                Ok(run) if step.stage == StepStage::Command => main = Some(run),
                Ok(_) => {}
                Err(mut error) => {
                    if step.stage == StepStage::Post {
                        error.message.push_str(&self.roll_back(plan, options).await);
                    }
                    return Err(error);
                }
            }
        }
        let main =
            main.ok_or_else(|| CpiError::new(ErrorKind::Internal, &plan.action, "the plan has no command step"))?;
        let stdout = main.stdout.text();
        let result = parse_output(&action.output, &stdout, &plan.action, "output")?;
        Ok(Outcome {
            cpi: plan.cpi.clone(),
            action: plan.action.clone(),
            exit_code: main.exit_code,
            http_status: None,
            stdout_truncated: main.stdout.truncated(),
            stderr_truncated: main.stderr.truncated(),
            stdout,
            stderr: main.stderr.text(),
            result,
            steps: reports,
            ignored_params: plan.ignored_params.clone(),
        })
    }

    /// Sends a request action's request, if the operator's network grants name its host.
    async fn execute_request(
        &self,
        plan: &Plan,
        action: &RequestAction,
        options: &CallOptions,
    ) -> Result<Outcome, CpiError> {
        let (step, request) = match plan.steps.as_slice() {
            [step @ PlannedStep { request: Some(request), .. }] => (step, request),
            _ => return Err(CpiError::new(ErrorKind::Internal, &plan.action, "a request plan has one request step")),
        };
        let shown = step.request().unwrap_or(request);
        let failed_step = |status: Option<u16>, body: &str| {
            Box::new(FailedStep {
                step: step.name.clone(),
                argv: vec![shown.method.clone(), shown.url.clone()],
                exit_code: None,
                http_status: status,
                stderr: tail(body, STDERR_TAIL),
            })
        };
        if let Err(reason) = crate::json::http::check_grants(&request.url, &self.gate.network, &self.gate.plugin) {
            self.audit_request(&plan.action, shown, crate::audit::Decision::Denied, Some(reason.clone()), None);
            let mut err = CpiError::new(ErrorKind::Denied, &plan.action, format!("request: {reason}"));
            err.failed_step = Some(failed_step(None, ""));
            return Err(err);
        }
        let sent = crate::json::http::send(request, &self.gate.network, step.timeout, options.output_limit).await;
        let response = match sent {
            Ok(response) => response,
            Err(crate::json::http::SendError::AddressRefused(reason)) => {
                self.audit_request(&plan.action, shown, crate::audit::Decision::Denied, Some(reason.clone()), None);
                let mut err = CpiError::new(ErrorKind::Denied, &plan.action, format!("request: {reason}"));
                err.failed_step = Some(failed_step(None, ""));
                return Err(err);
            }
            Err(e) => {
                self.audit_request(&plan.action, shown, crate::audit::Decision::Allowed, Some(e.to_string()), None);
                let kind = match e {
                    crate::json::http::SendError::Timeout(_) => ErrorKind::Timeout,
                    crate::json::http::SendError::Unreachable { .. } => ErrorKind::Unavailable,
                    crate::json::http::SendError::Failed(_) | crate::json::http::SendError::AddressRefused(_) => {
                        ErrorKind::Failed
                    }
                };
                let mut err = CpiError::new(kind, &plan.action, format!("{} {}: {e}", shown.method, shown.url));
                err.failed_step = Some(failed_step(None, ""));
                return Err(err);
            }
        };
        self.audit_request(
            &plan.action,
            shown,
            crate::audit::Decision::Allowed,
            None,
            Some((response.status, response.duration)),
        );
        let body = response.body.text();
        if let Some(kind) = self.classify_response(action, request, response.status, &body) {
            let reason = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            let mut err = CpiError::new(
                kind,
                &plan.action,
                format!("{} {} answered {}: {}", shown.method, shown.url, response.status, tail(reason, 512)),
            );
            err.failed_step = Some(failed_step(Some(response.status), &body));
            return Err(err);
        }
        let result = parse_output(&action.output, &body, &plan.action, "response")?;
        Ok(Outcome {
            cpi: plan.cpi.clone(),
            action: plan.action.clone(),
            exit_code: None,
            http_status: Some(response.status),
            stdout_truncated: response.body.truncated(),
            stderr_truncated: false,
            stdout: body,
            stderr: String::new(),
            result,
            steps: vec![StepReport {
                name: step.name.clone(),
                argv: Vec::new(),
                exit_code: None,
                http_status: Some(response.status),
                timed_out: false,
                failure_ignored: false,
                duration: response.duration,
            }],
            ignored_params: plan.ignored_params.clone(),
        })
    }

    /// `None` for a successful response; otherwise its error kind: the spec's rules first, then
    /// the meaning HTTP gives the status.
    fn classify_response(
        &self,
        action: &RequestAction,
        request: &HttpRequest,
        status: u16,
        body: &str,
    ) -> Option<ErrorKind> {
        let succeeded = (200..300).contains(&status);
        if !succeeded && action.success_when.iter().any(|c| c.matches_response(status, body)) {
            return None;
        }
        let applies = |rule: &&ErrorRule| {
            (!succeeded || rule.when.statuses.is_some()) && rule.when.matches_response(status, body)
        };
        if let Some(rule) = action.errors.iter().chain(&self.spec.errors).find(applies) {
            return Some(rule.kind);
        }
        (!succeeded).then_some(match status {
            400 | 422 => ErrorKind::InvalidArgument,
            401 | 403 => ErrorKind::Denied,
            404 | 410 => ErrorKind::NotFound,
            // A conflict on a create is a name already taken; elsewhere the resource is busy.
            409 if matches!(request.method.as_str(), "POST" | "PUT") => ErrorKind::AlreadyExists,
            409 | 412 | 423 => ErrorKind::InvalidState,
            408 | 504 => ErrorKind::Timeout,
            429 | 502 | 503 => ErrorKind::Unavailable,
            _ => ErrorKind::Failed,
        })
    }

    /// Records a request decision; `shown` is the request with secrets replaced.
    fn audit_request(
        &self,
        action: &str,
        shown: &HttpRequest,
        decision: crate::audit::Decision,
        reason: Option<String>,
        finished: Option<(u16, Duration)>,
    ) {
        self.gate.audit.record(&crate::audit::AuditEntry::request(
            &self.gate.plugin,
            action,
            shown,
            decision,
            reason,
            finished,
        ));
    }

    /// Runs every rollback step, whatever each one does; returns a note for the error message.
    async fn roll_back(&self, plan: &Plan, options: &CallOptions) -> String {
        let steps: Vec<&PlannedStep> = plan.steps.iter().filter(|s| s.stage == StepStage::Rollback).collect();
        if steps.is_empty() {
            return String::new();
        }
        let mut failed = Vec::new();
        for step in &steps {
            let ok = match self.run_step(&plan.action, step, options).await {
                Ok(run) => !run.timed_out && run.exit_code == Some(0),
                Err(_) => false,
            };
            if !ok {
                failed.push(step.name.as_str());
            }
        }
        if failed.is_empty() {
            format!("; rolled back ({} step(s))", steps.len())
        } else {
            format!("; rollback FAILED at {}: the command's effect may remain", failed.join(", "))
        }
    }

    async fn run_step(&self, action: &str, step: &PlannedStep, options: &CallOptions) -> Result<ExecOutput, CpiError> {
        let process = GatedProcess {
            action,
            step: &step.name,
            argv: &step.argv,
            shown_argv: step.argv(),
            timeout: step.timeout,
            detach: step.detach,
            stdin: step.stdin.as_deref(),
            kill_grace: options.kill_grace,
            output_limit: options.output_limit,
        };
        self.run_gated(&process).await
    }

    /// Starts one process through the gate, and records it in the audit log: every process a
    /// JSON spec causes (steps, hooks, version checks) comes through here.
    pub(crate) async fn run_gated(&self, process: &GatedProcess<'_>) -> Result<ExecOutput, CpiError> {
        let failed_step = || {
            Some(Box::new(FailedStep {
                step: process.step.to_string(),
                argv: process.shown_argv.to_vec(),
                exit_code: None,
                http_status: None,
                stderr: String::new(),
            }))
        };
        let path = self.env.iter().find(|(k, _)| k == "PATH").map_or("", |(_, v)| v.as_str());
        let (program, granted_detach) = match self.gate.check(process.argv, path) {
            Ok(checked) => checked,
            Err(reason) => {
                self.audit_exec(process, crate::audit::Decision::Denied, Some(reason.clone()), None);
                let mut err = CpiError::new(ErrorKind::Denied, process.action, format!("{}: {reason}", process.step));
                err.failed_step = failed_step();
                return Err(err);
            }
        };
        // The program the gate checked is the one started: not looked up again.
        let mut argv = process.argv.to_vec();
        argv[0] = program.to_string_lossy().into_owned();
        let invocation = Invocation {
            argv,
            env: self.env.as_ref().clone(),
            cwd: self.spec.working_dir.clone(),
            timeout: process.timeout,
            kill_grace: process.kill_grace,
            output_limit: process.output_limit,
            stdin: process.stdin.map(|s| s.as_bytes().to_vec()),
            detach: process.detach || granted_detach,
        };
        let result = exec::run(&invocation).await;
        match &result {
            Ok(run) => self.audit_exec(process, crate::audit::Decision::Allowed, None, Some(run)),
            Err(e) => {
                self.audit_exec(process, crate::audit::Decision::Allowed, Some(format!("could not start: {e}")), None)
            }
        }
        result.map_err(|e| {
            let kind = match e {
                exec::ExecError::NotFound { .. } => ErrorKind::Unavailable,
                _ => ErrorKind::Failed,
            };
            let mut err = CpiError::new(kind, process.action, format!("{}: {e}", process.step));
            err.failed_step = failed_step();
            err
        })
    }

    fn audit_exec(
        &self,
        process: &GatedProcess<'_>,
        decision: crate::audit::Decision,
        reason: Option<String>,
        run: Option<&ExecOutput>,
    ) {
        let finished = run.map(|r| (r.exit_code, r.duration));
        let mut entry = crate::audit::AuditEntry::exec(
            &self.gate.plugin,
            process.action,
            process.shown_argv,
            decision,
            reason,
            finished,
        );
        entry.detach = process.detach;
        self.gate.audit.record(&entry);
    }

    /// `None` when the step succeeded; otherwise the error kind and a message.
    fn classify(&self, action: &CommandAction, step: &PlannedStep, run: &ExecOutput) -> Option<(ErrorKind, String)> {
        if run.timed_out {
            return Some((
                ErrorKind::Timeout,
                format!("{} did not finish within {:?} and was killed", step.name, step.timeout),
            ));
        }
        let succeeded = run.exit_code.is_some_and(|code| match step.stage {
            StepStage::Command => action.success_exit_codes.accepts(code),
            StepStage::Pre | StepStage::Post | StepStage::Rollback => code == 0,
        });
        let stdout = run.stdout.text();
        let stderr = run.stderr.text();
        // `success_when` is the most specific statement a spec makes ("this failure is the
        // idempotent repeat"), so it wins over the general error rules.
        if !succeeded
            && step.stage == StepStage::Command
            && action.success_when.iter().any(|c| c.matches(run.exit_code, &stdout, &stderr))
        {
            return None;
        }
        // A rule that names an exit code applies whatever the status (it can turn a "successful"
        // empty answer into not_found); a rule without one applies only to failed runs.
        let applies = |rule: &&ErrorRule| {
            (!succeeded || rule.when.exit_codes.is_some()) && rule.when.matches(run.exit_code, &stdout, &stderr)
        };
        if let Some(rule) = action.errors.iter().chain(&self.spec.errors).find(applies) {
            return Some((rule.kind, failure_message(step, run)));
        }
        (!succeeded).then(|| (ErrorKind::Failed, failure_message(step, run)))
    }

    fn step_error(
        &self,
        action: &str,
        step: &PlannedStep,
        run: &ExecOutput,
        kind: ErrorKind,
        message: String,
    ) -> CpiError {
        let mut err = CpiError::new(kind, action, message);
        err.failed_step = Some(Box::new(FailedStep {
            step: step.name.clone(),
            argv: step.argv.clone(),
            exit_code: run.exit_code,
            http_status: None,
            stderr: tail(&run.stderr.text(), STDERR_TAIL),
        }));
        err
    }
}

/// `text` (a command's stdout or a response body: `what`) parsed as the action's output format.
fn parse_output(format: &spec::OutputFormat, text: &str, action: &str, what: &str) -> Result<Option<Value>, CpiError> {
    output::parse(format, text).map_err(|message| {
        CpiError::new(ErrorKind::Failed, action, format!("cannot parse the {what} of `{action}`: {message}"))
    })
}

fn failure_message(step: &PlannedStep, run: &ExecOutput) -> String {
    let status = match (run.exit_code, run.signal) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended without a status".to_string(),
    };
    // The reason is usually the last line; Go CLIs (docker) may append a bare "exit status N".
    let stderr = run.stderr.text();
    let reason = stderr
        .lines()
        .map(str::trim)
        .rev()
        .find(|line| !line.is_empty() && !line.starts_with("exit status "))
        .unwrap_or("");
    let program = step.argv.first().map_or("", String::as_str);
    if reason.is_empty() {
        format!("{} (`{program}`) {status}", step.name)
    } else {
        format!("{} (`{program}`) {status}: {reason}", step.name)
    }
}

fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// One process a JSON spec starts, as the gate and the audit log see it.
pub(crate) struct GatedProcess<'a> {
    pub action: &'a str,
    pub step: &'a str,
    pub argv: &'a [String],
    /// `argv` with secrets replaced: what the audit log and errors show.
    pub shown_argv: &'a [String],
    pub timeout: Duration,
    pub detach: bool,
    /// Standard input (never recorded anywhere).
    pub stdin: Option<&'a str>,
    pub kill_grace: Duration,
    pub output_limit: usize,
}

/// The environment of a spec's processes: `PATH`, the inherited names that are set on the host,
/// then the fixed values. Nothing else from the host leaks through.
fn process_env(spec: &Spec, host: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut env = vec![("PATH".to_string(), host("PATH").unwrap_or_else(|| FALLBACK_PATH.to_string()))];
    for name in &spec.env.inherit {
        if let Some(value) = host(name) {
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), value));
        }
    }
    for (name, value) in &spec.env.set {
        env.retain(|(k, _)| k != name);
        env.push((name.clone(), value.clone()));
    }
    env
}

/// Parameters the caller passed that the action does not declare, sorted.
fn ignored(declared: &[ParamDecl], params: &Params) -> Vec<String> {
    crate::contract::params::ignored(declared.iter().map(|d| d.name.as_str()), params)
}

/// Resolves placeholders for one call: a declared parameter the caller gave, else a default
/// setting, else absent. Undeclared caller parameters are never consulted.
struct ActionBindings<'a> {
    declared: &'a [ParamDecl],
    params: &'a Params,
    defaults: &'a serde_json::Map<String, Value>,
}

impl Bindings for ActionBindings<'_> {
    fn get(&self, name: &str) -> Option<Binding<'_>> {
        let decl = self.declared.iter().find(|d| d.name == name);
        if let Some(value) = decl.and_then(|_| self.params.get(name)).filter(|v| !v.is_null()) {
            return Some(Binding { value, allow_dash: decl.is_some_and(|d| d.allow_dash) });
        }
        // Default settings are written by the spec's author, not the caller.
        self.defaults.get(name).map(|value| Binding { value, allow_dash: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cpi(actions: &str) -> JsonCpi {
        let text = format!(
            r#"{{"name": "t", "type": "container", "validation": {{"required_commands": ["sh", "echo", "true", "false", "sleep"]}},
               "default_settings": {{"stop_timeout": 2, "log_opts": {{"max-size": "1m"}}}},
               "actions": {actions}}}"#
        );
        JsonCpi::unrestricted(spec::load_str("t.json", text).expect("spec loads"))
    }

    fn params(v: Value) -> Params {
        match v {
            Value::Object(map) => map,
            _ => panic!("object"),
        }
    }

    fn argvs(plan: &Plan) -> Vec<Vec<&str>> {
        plan.steps.iter().map(|s| s.argv.iter().map(String::as_str).collect()).collect()
    }

    #[test]
    fn plans_hooks_command_and_ignored_params() {
        let cpi = cpi(r#"{"delete_container": {"command": "echo rm {name}", "params": ["name"],
            "pre_delete": {"command": "echo stop -t {stop_timeout} {name}", "ignore_failure": true}, "post_delete": "true"}}"#);
        let plan = cpi
            .plan(
                "delete_container",
                &params(json!({"name": "c1", "image": "x", "stop_timeout": 99})),
                &CallOptions::default(),
            )
            .expect("plans");
        assert_eq!(argvs(&plan), [vec!["echo", "stop", "-t", "2", "c1"], vec!["echo", "rm", "c1"], vec!["true"]]);
        assert!(plan.steps[0].ignore_failure);
        assert_eq!(plan.ignored_params, ["image", "stop_timeout"], "undeclared values never reach a process");
    }

    #[test]
    fn missing_required_parameter_names_action_and_parameter() {
        let cpi = cpi(r#"{"start_container": {"command": "echo {name}", "params": ["name"]}}"#);
        let err = cpi.plan("start_container", &Params::new(), &CallOptions::default()).expect_err("missing");
        assert_eq!(
            (err.kind, err.action.as_str(), err.param.as_deref()),
            (ErrorKind::InvalidArgument, "start_container", Some("name"))
        );
        assert!(err.message.contains("missing required parameter `name`"));
    }

    #[test]
    fn parameter_types_and_patterns_are_enforced() {
        let cpi = cpi(
            r#"{"create_container": {"command": "echo {name} -e {env}", "params": [{"name": "name", "pattern": "[a-z0-9-]+"}],
             "optional_params": [{"name": "env", "type": "map"}]}}"#,
        );
        let plan = |v| cpi.plan("create_container", &params(v), &CallOptions::default());
        assert_eq!(plan(json!({"name": ["a", "b"]})).expect_err("list for a string").kind, ErrorKind::InvalidArgument);
        assert!(plan(json!({"name": "../etc"})).expect_err("pattern").message.contains("does not match"));
        assert!(plan(json!({"name": "a", "env": ["x"]})).is_err());
        let ok = plan(json!({"name": "a", "env": {"K": "v"}})).expect("plans");
        assert_eq!(argvs(&ok), [vec!["echo", "a", "-e", "K=v"]]);
    }

    #[test]
    fn fragments_appear_only_when_given() {
        let cpi = cpi(r#"{"create_vm": {"command": "echo create {name}", "params": ["name"],
            "optional_params": {"memory": "--memory {memory}", "encrypted": "--encrypted"}}}"#);
        let plan = |v| cpi.plan("create_vm", &params(v), &CallOptions::default()).expect("plans");
        assert_eq!(argvs(&plan(json!({"name": "a"}))), [vec!["echo", "create", "a"]]);
        assert_eq!(
            argvs(&plan(json!({"name": "a", "memory": 512, "encrypted": true}))),
            [vec!["echo", "create", "a", "--memory", "512", "--encrypted"]]
        );
        assert_eq!(argvs(&plan(json!({"name": "a", "encrypted": false}))), [vec!["echo", "create", "a"]]);
    }

    #[test]
    fn unsupported_and_unknown_actions_are_typed() {
        let cpi = cpi(r#"{"attach_volume": {"unsupported": "volumes are given at create time"}}"#);
        let err = cpi.plan("attach_volume", &Params::new(), &CallOptions::default()).expect_err("unsupported");
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert!(err.message.contains("volumes are given at create time"));
        let err = cpi.plan("atach_volume", &Params::new(), &CallOptions::default()).expect_err("unknown");
        assert!(err.message.contains("did you mean `attach_volume`"), "{}", err.message);
    }

    #[tokio::test]
    async fn maps_failures_to_typed_errors_and_parses_output() {
        // The test's spec runs the caller's script on purpose, visibly (`eval "$1"`): a value
        // never becomes a script on its own, only where the spec's own code says so.
        let cpi = cpi(r#"{
            "inspect_container": {"command": "sh -c 'eval \"$1\"' sh {script}", "params": [{"name": "script", "allow_dash": true}],
                "output": "json",
                "errors": [{"kind": "not_found", "exit_code": 1, "stderr": "(?i)no such container"},
                           {"kind": "not_found", "exit_code": 0, "stdout": "^\\s*\\[\\]\\s*$"}]},
            "exec": {"command": "sh -c 'eval \"$1\"' sh {script}", "params": ["script"], "success_exit_codes": "any"}}"#);
        let call = |action: &'static str, script: &'static str| {
            let cpi = cpi.clone();
            async move { cpi.call(action, &params(json!({"script": script})), &CallOptions::default()).await }
        };
        let ok = call("inspect_container", "echo '[{\"State\": \"running\"}]'").await.expect("ok");
        assert_eq!(ok.result, Some(json!([{"State": "running"}])));
        let missing =
            call("inspect_container", "echo 'Error: no such container x' >&2; exit 1").await.expect_err("missing");
        assert_eq!(missing.kind, ErrorKind::NotFound);
        assert_eq!(missing.failed_step.as_ref().map(|s| s.exit_code), Some(Some(1)));
        assert_eq!(call("inspect_container", "echo '[]'").await.expect_err("empty").kind, ErrorKind::NotFound);
        let other = call("inspect_container", "echo boom >&2; exit 2").await.expect_err("failed");
        assert_eq!(other.kind, ErrorKind::Failed);
        assert!(other.message.contains("exited with status 2: boom"), "{}", other.message);
        assert_eq!(call("inspect_container", "echo nope").await.expect_err("bad json").kind, ErrorKind::Failed);
        let exec = call("exec", "echo hi; exit 3").await.expect("any exit code is a result");
        assert_eq!((exec.exit_code, exec.stdout.as_str()), (Some(3), "hi\n"));
    }

    #[tokio::test]
    async fn success_when_makes_a_repeat_idempotent_but_nothing_else() {
        let cpi = cpi(r#"{"disconnect_network": {"command": "sh -c 'eval \"$1\"' sh {script}", "params": ["script"],
            "success_when": [{"exit_code": 125, "stderr": "is not connected"}]}}"#);
        let call = |script: &'static str| {
            let cpi = cpi.clone();
            async move {
                cpi.call("disconnect_network", &params(json!({ "script": script })), &CallOptions::default()).await
            }
        };
        assert!(call("echo 'c is not connected to network n' >&2; exit 125").await.is_ok());
        let other = call("echo 'network not found' >&2; exit 125").await.expect_err("other failures stay failures");
        assert_eq!(other.kind, ErrorKind::Failed);
    }

    #[tokio::test]
    async fn failing_pre_hook_aborts_unless_ignored() {
        let cpi = cpi(r#"{
            "delete_container": {"command": "echo deleted", "pre_stop": {"command": "false", "ignore_failure": true}},
            "stop_container": {"command": "echo stopped", "pre_check": "false"}}"#);
        let ok = cpi.call("delete_container", &Params::new(), &CallOptions::default()).await.expect("ignored failure");
        assert_eq!(ok.stdout, "deleted\n");
        assert!(ok.steps[0].failure_ignored);
        let err = cpi.call("stop_container", &Params::new(), &CallOptions::default()).await.expect_err("aborts");
        assert_eq!(err.failed_step.map(|s| s.step), Some("pre_check".to_string()));
    }

    #[tokio::test]
    async fn failing_post_hook_rolls_the_command_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let marker = dir.path().join("created");
        let cpi = cpi(r#"{"create_container": {"command": "sh -c 'touch \"$1\"' sh {path}", "params": ["path"],
                "post_configure": "false",
                "rollback": "sh -c 'rm \"$1\"' sh {path}"}}"#);
        let err = cpi
            .call("create_container", &params(json!({"path": marker})), &CallOptions::default())
            .await
            .expect_err("post hook fails");
        assert_eq!(err.failed_step.map(|s| s.step), Some("post_configure".to_string()));
        assert!(err.message.ends_with("; rolled back (1 step(s))"), "{}", err.message);
        assert!(!marker.exists(), "rollback removed what the command created");
        let plan = cpi.plan("create_container", &params(json!({"path": "x"})), &CallOptions::default()).expect("plans");
        assert_eq!(plan.steps.last().map(|s| s.stage), Some(StepStage::Rollback));
    }

    #[tokio::test]
    async fn processes_run_in_the_spec_working_directory() {
        let text = r#"{"name": "t", "type": "container", "working_dir": "/tmp", "validation": {"required_commands": ["pwd"]},
            "actions": {"logs": {"command": "pwd", "output": "text"}}}"#;
        let cpi = JsonCpi::unrestricted(spec::load_str("t.json", text.into()).expect("loads"));
        let out = cpi.call("logs", &Params::new(), &CallOptions::default()).await.expect("runs");
        assert_eq!(out.result, Some(json!("/tmp")));
    }

    /// A plan runs only on the CPI that rendered it: another CPI (even of the same spec, under
    /// other grants) refuses it, so no argv reaches a gate that did not render it.
    #[tokio::test]
    async fn a_plan_runs_only_on_the_cpi_that_made_it() {
        let actions = r#"{"logs": {"command": "echo {name}", "params": ["name"], "output": "text"}}"#;
        let (one, other) = (cpi(actions), cpi(actions));
        let plan = one.plan("logs", &params(json!({"name": "x"})), &CallOptions::default()).expect("plans");
        let err = other.execute(&plan, &CallOptions::default()).await.expect_err("foreign plan");
        assert!(err.message.contains("made by another CPI"), "{}", err.message);
        let clone = one.clone();
        assert!(clone.execute(&plan, &CallOptions::default()).await.is_ok(), "a clone is the same CPI");
    }

    /// A secret parameter's value is in the argv that runs but in no view of the plan, its Debug
    /// or its JSON, nor in the outcome.
    #[tokio::test]
    async fn secrets_are_redacted_in_every_view_of_a_plan_and_outcome() {
        let cpi = cpi(r#"{"logs": {"command": "echo token={token}", "output": "text",
                           "params": [{"name": "token", "secret": true}]}}"#);
        let plan = cpi.plan("logs", &params(json!({"token": "s3cr3t"})), &CallOptions::default()).expect("plans");
        assert_eq!(plan.steps[0].argv, ["echo", "token=s3cr3t"], "what runs");
        assert_eq!(plan.steps()[0].argv(), ["echo", "token=***"]);
        assert!(!format!("{plan:?}").contains("s3cr3t"));
        assert!(!serde_json::to_string(&plan).expect("json").contains("s3cr3t"));
        let outcome = cpi.execute(&plan, &CallOptions::default()).await.expect("runs");
        assert_eq!(outcome.result, Some(json!("token=***")));
        assert!(!serde_json::to_string(&outcome).expect("json").contains("s3cr3t"));
    }

    #[tokio::test]
    async fn timeout_is_a_typed_error() {
        let cpi = cpi(r#"{"logs": {"command": "sleep 30", "timeout": "200ms"}}"#);
        let err = cpi.call("logs", &Params::new(), &CallOptions::default()).await.expect_err("times out");
        assert_eq!(err.kind, ErrorKind::Timeout);
    }

    #[tokio::test]
    async fn the_policy_restricts_a_spec_further_and_every_decision_is_audited() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = crate::policy::Policy::parse(
            &dir.path().join("p.toml"),
            "audit_log = \"audit.jsonl\"\n[plugins.t]\nsource = \"t.json\"\n[[plugins.t.exec]]\nprogram = \"echo\"\nargs = [\"allowed\"]\n",
            "/usr/bin:/bin",
        )
        .expect("policy");
        let audit = crate::audit::AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit");
        let gate = ExecGate::granting(&policy.grants_for("t"), audit);
        let spec = cpi(r#"{"logs": {"command": "echo {name}", "params": ["name"]}}"#).spec().clone();
        let cpi = JsonCpi::gated(spec, gate);
        let ok = cpi.call("logs", &params(json!({"name": "allowed"})), &CallOptions::default()).await.expect("granted");
        assert_eq!(ok.stdout, "allowed\n");
        let err = cpi
            .call("logs", &params(json!({"name": "other"})), &CallOptions::default())
            .await
            .expect_err("not granted");
        assert_eq!(err.kind, ErrorKind::Denied);
        let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
        let decisions: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(decisions.len(), 2);
        assert_eq!((decisions[0]["decision"].as_str(), decisions[0]["exit_code"].as_i64()), (Some("allowed"), Some(0)));
        assert_eq!(
            (decisions[1]["decision"].as_str(), decisions[1]["argv"][1].as_str()),
            (Some("denied"), Some("other"))
        );
    }

    #[test]
    fn process_env_is_path_plus_what_the_spec_names() {
        let spec = spec::load_str(
            "t.json",
            r#"{"name": "t", "type": "container", "env": {"inherit": ["DOCKER_HOST", "UNSET"], "set": {"LC_ALL": "C"}}, "actions": {}}"#.into(),
        )
        .expect("loads");
        let host = |name: &str| match name {
            "PATH" => Some("/bin".to_string()),
            "DOCKER_HOST" => Some("unix:///x.sock".to_string()),
            "SECRET" => Some("no".to_string()),
            _ => None,
        };
        let env = process_env(&spec, host);
        assert_eq!(
            env,
            [
                ("PATH".into(), "/bin".into()),
                ("DOCKER_HOST".into(), "unix:///x.sock".into()),
                ("LC_ALL".into(), "C".into())
            ]
        );
    }
}
