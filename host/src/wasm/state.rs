//! The data of one `Store`: one call of one plugin. Built fresh per call from the plugin's
//! sandbox, so nothing a call does (files opened, memory grown, a trap) reaches the next one.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{types, v0_1, v0_2, v0_3};
use super::http::{HttpGate, RequestLog};
use super::sandbox::Sandbox;
use crate::audit::{AuditEntry, Decision};
use crate::process::exec::{self, Invocation};

/// One exec the plugin made during a call (for the outcome's steps and dry-run plans).
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
}

pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
    /// Every `wasi:http` request passes it (see `http`).
    http_gate: HttpGate,
    pub limits: CallLimiter,
    sandbox: Arc<Sandbox>,
    action: String,
    /// In a dry run, execs are recorded and answered with an empty success instead of run.
    dry_run: bool,
    /// Values the audit log must not show.
    secrets: crate::secrets::Secrets,
    pub execs: Vec<ExecRecord>,
    /// The plugin's own stdout and stderr, bounded.
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
}

/// A growth the limiter refused: the trap it raises carries this, so the host reports the memory
/// limit by type rather than by wasmtime's message text.
#[derive(Debug, thiserror::Error)]
#[error("the plugin asked for {desired} bytes of memory; its limit is {limit}")]
pub struct MemoryLimitExceeded {
    pub desired: usize,
    pub limit: usize,
}

/// The store's resource limiter: linear memory up to the plugin's limit (all memories together is
/// what `memory_bytes` means; components here have one or few), a few instances, tables and
/// memories, and a trap rather than a failed `memory.grow` when the limit is hit (a guest that
/// ignored the failure would run on with a wrong picture of its memory).
pub struct CallLimiter {
    memory_bytes: usize,
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(MemoryLimitExceeded { desired, limit: self.memory_bytes }.into());
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

impl CallState {
    pub fn new(
        sandbox: Arc<Sandbox>,
        action: &str,
        dry_run: bool,
        secrets: crate::secrets::Secrets,
    ) -> wasmtime::Result<CallState> {
        let limits = sandbox.limits;
        let stdout = MemoryOutputPipe::new(limits.output_bytes);
        let stderr = MemoryOutputPipe::new(limits.output_bytes);
        // WasiCtxBuilder starts from nothing: no env, no args, no preopens, closed stdin, and no
        // network (sockets deny every address, name lookup is off). Only grants are added.
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        wasi.envs(&sandbox.env);
        for dir in &sandbox.dirs {
            // A dry run must change nothing: its directories are read-only, like its execs are
            // recorded instead of run.
            let perms = if dir.writable && !dry_run { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)?;
        }
        let http_gate = HttpGate {
            log: Arc::new(RequestLog {
                plugin: sandbox.plugin.clone(),
                action: action.to_string(),
                audit: sandbox.audit.clone(),
                secrets: secrets.clone(),
            }),
            grants: sandbox.network.clone(),
            gates: sandbox.network_gates(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(super::http::MAX_REQUESTS_IN_FLIGHT)),
            body_limit: limits.output_bytes,
            // A request waits like an exec does, and never past the call's own deadline.
            timeout: limits.exec_timeout.min(limits.call_timeout),
            dry_run,
        };
        Ok(CallState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_gate,
            limits: CallLimiter { memory_bytes: limits.memory_bytes },
            sandbox,
            action: action.to_string(),
            dry_run,
            secrets,
            execs: Vec::new(),
            stdout,
            stderr,
        })
    }

    fn audit(&self, argv: &[String], decision: Decision, reason: Option<String>, run: Option<&ExecRecord>) {
        self.audit_detached(argv, decision, reason, run, false);
    }

    fn audit_detached(
        &self,
        argv: &[String],
        decision: Decision,
        reason: Option<String>,
        run: Option<&ExecRecord>,
        detach: bool,
    ) {
        let finished = run.map(|r| (r.exit_code, r.duration));
        let mut entry = AuditEntry::exec(
            &self.sandbox.plugin,
            &self.action,
            &self.secrets.redact_all(argv),
            decision,
            reason.map(|r| self.secrets.redact(&r)),
            finished,
        );
        entry.detach = detach;
        self.sandbox.audit.record(&entry);
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl CallState {
    /// Makes the settings readable for the next call on the same instance at load
    /// (`network-requests()` after `describe()`, which saw none); nothing else is granted.
    pub fn reveal_settings(&mut self, action: &str, settings: Vec<(String, String)>) {
        self.sandbox = Arc::new(Sandbox { settings, ..(*self.sandbox).clone() });
        self.action = action.to_string();
        // A request it tries is refused (no host is reachable at load) and audited under this name.
        self.http_gate.log = Arc::new(RequestLog { action: action.to_string(), ..(*self.http_gate.log).clone() });
    }
}

impl wasmtime_wasi_http::WasiHttpView for CallState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_gate }
    }
}

impl types::Host for CallState {}

impl v0_3::log::Host for CallState {
    async fn log(&mut self, level: v0_3::log::Level, message: String) -> wasmtime::Result<()> {
        use v0_3::log::Level;
        let plugin = &self.sandbox.plugin;
        let message: String = message.chars().take(4096).collect();
        match level {
            Level::Trace => tracing::trace!(%plugin, "{message}"),
            Level::Debug => tracing::debug!(%plugin, "{message}"),
            Level::Info => tracing::info!(%plugin, "{message}"),
            Level::Warn => tracing::warn!(%plugin, "{message}"),
            Level::Error => tracing::error!(%plugin, "{message}"),
        }
        Ok(())
    }
}

impl v0_3::settings::Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.sandbox.settings.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()))
    }

    async fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.sandbox.settings.clone())
    }
}

fn cpi_error(kind: types::ErrorKind, message: String) -> types::CpiError {
    types::CpiError { kind, message }
}

impl v0_3::process::Host for CallState {
    async fn run(
        &mut self,
        cmd: v0_3::process::Command,
    ) -> wasmtime::Result<Result<v0_3::process::Output, types::CpiError>> {
        Ok(self.run_command(cmd).await)
    }

    async fn dry_run(&mut self) -> wasmtime::Result<bool> {
        Ok(self.dry_run)
    }
}

// The older versions: the same host behind their records (`types` is shared; the `process` and
// `log` records are field-for-field the same as 0.3.0's, so conversion is a move).

/// `log` and `process.run` of an older version, converted to and from 0.3.0's.
macro_rules! older_version_host {
    ($version:ident, $run:ident) => {
        impl $version::log::Host for CallState {
            async fn log(&mut self, level: $version::log::Level, message: String) -> wasmtime::Result<()> {
                use v0_3::log::Level as New;
                use $version::log::Level as Old;
                let level = match level {
                    Old::Trace => New::Trace,
                    Old::Debug => New::Debug,
                    Old::Info => New::Info,
                    Old::Warn => New::Warn,
                    Old::Error => New::Error,
                };
                v0_3::log::Host::log(self, level, message).await
            }
        }

        impl CallState {
            async fn $run(
                &mut self,
                cmd: $version::process::Command,
            ) -> Result<$version::process::Output, types::CpiError> {
                let cmd = v0_3::process::Command {
                    program: cmd.program,
                    args: cmd.args,
                    env: cmd.env,
                    cwd: cmd.cwd,
                    stdin: cmd.stdin,
                    timeout_ms: cmd.timeout_ms,
                };
                self.run_command(cmd).await.map(|out| $version::process::Output {
                    exit_code: out.exit_code,
                    signal: out.signal,
                    stdout: out.stdout,
                    stderr: out.stderr,
                    stdout_truncated: out.stdout_truncated,
                    stderr_truncated: out.stderr_truncated,
                    timed_out: out.timed_out,
                })
            }
        }
    };
}

older_version_host!(v0_2, run_v0_2);
older_version_host!(v0_1, run_v0_1);

impl v0_2::process::Host for CallState {
    async fn run(
        &mut self,
        cmd: v0_2::process::Command,
    ) -> wasmtime::Result<Result<v0_2::process::Output, types::CpiError>> {
        Ok(self.run_v0_2(cmd).await)
    }

    async fn dry_run(&mut self) -> wasmtime::Result<bool> {
        Ok(self.dry_run)
    }
}

impl v0_2::settings::Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        v0_3::settings::Host::get(self, key).await
    }

    async fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        v0_3::settings::Host::all(self).await
    }
}

impl v0_1::process::Host for CallState {
    async fn run(
        &mut self,
        cmd: v0_1::process::Command,
    ) -> wasmtime::Result<Result<v0_1::process::Output, types::CpiError>> {
        Ok(self.run_v0_1(cmd).await)
    }
}

impl CallState {
    /// The `process.run` import of every version: the two gates, then the program (or, in a dry
    /// run, a record of it).
    async fn run_command(&mut self, cmd: v0_3::process::Command) -> Result<v0_3::process::Output, types::CpiError> {
        use v0_3::process;
        let mut argv = Vec::with_capacity(cmd.args.len() + 1);
        argv.push(cmd.program.clone());
        argv.extend(cmd.args.iter().cloned());
        let authorized = match self.sandbox.authorize(&cmd.program, &cmd.args, &cmd.env, cmd.cwd.as_deref()) {
            Ok(authorized) => authorized,
            Err(reason) => {
                self.audit(&argv, Decision::Denied, Some(reason.clone()), None);
                return Err(cpi_error(types::ErrorKind::Denied, reason));
            }
        };
        if argv.iter().any(|a| a.contains('\0')) {
            let reason = "an argument contains a NUL byte".to_string();
            self.audit(&argv, Decision::Denied, Some(reason.clone()), None);
            return Err(cpi_error(types::ErrorKind::InvalidArgument, reason));
        }
        let limits = self.sandbox.limits;
        if self.dry_run {
            let record = ExecRecord { argv, exit_code: Some(0), timed_out: false, duration: Duration::ZERO };
            self.execs.push(record);
            return Ok(process::Output {
                exit_code: Some(0),
                signal: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                timed_out: false,
            });
        }
        let detach = authorized.detach;
        let timeout =
            cmd.timeout_ms.map_or(limits.exec_timeout, |ms| Duration::from_millis(ms.into())).min(limits.exec_timeout);
        let mut env = vec![("PATH".to_string(), self.sandbox.path.clone())];
        env.extend(cmd.env.iter().cloned());
        let invocation = Invocation {
            argv: std::iter::once(authorized.program.to_string_lossy().into_owned())
                .chain(cmd.args.iter().cloned())
                .collect(),
            env,
            cwd: authorized.cwd.unwrap_or_else(|| "/".into()),
            timeout,
            kill_grace: exec::DEFAULT_KILL_GRACE,
            output_limit: limits.output_bytes,
            stdin: cmd.stdin,
            detach: authorized.detach,
        };
        match exec::run(&invocation).await {
            Ok(out) => {
                let record = ExecRecord {
                    argv: argv.clone(),
                    exit_code: out.exit_code,
                    timed_out: out.timed_out,
                    duration: out.duration,
                };
                self.audit_detached(&argv, Decision::Allowed, None, Some(&record), detach);
                self.execs.push(record);
                Ok(process::Output {
                    exit_code: out.exit_code,
                    signal: out.signal,
                    stdout_truncated: out.stdout.truncated(),
                    stderr_truncated: out.stderr.truncated(),
                    stdout: out.stdout.bytes,
                    stderr: out.stderr.bytes,
                    timed_out: out.timed_out,
                })
            }
            Err(e) => {
                self.audit(&argv, Decision::Allowed, Some(format!("could not start: {e}")), None);
                // The same kinds a JSON spec's step gets for the same failure.
                let kind = match e {
                    exec::ExecError::NotFound { .. } => types::ErrorKind::Unavailable,
                    _ => types::ErrorKind::Failed,
                };
                Err(cpi_error(kind, e.to_string()))
            }
        }
    }
}
