//! Every program the plugin runs, with exactly the argument shapes `describe` requests. runc always
//! gets `--root RUNC_ROOT`, so the plugin's containers live apart from podman's (which also uses
//! runc) and `runc list` shows only them.

use std::time::{Duration, Instant};

use omni_cpi_sdk::prelude::*;
use serde_json::Value;

use crate::{NETNS_PREFIX, RUNC_ROOT};

/// stderr of runc for an id it does not know (`runc state`, `delete`, `kill`, `exec`).
const NO_CONTAINER: &str = "container does not exist";

/// The exec requests of `describe`: each function below uses one of these shapes.
pub fn exec_requests() -> Vec<ExecRequest> {
    let runc = |args: &[&str]| {
        let mut all = vec!["--root", RUNC_ROOT];
        all.extend_from_slice(args);
        ExecRequest { program: "runc".into(), args: all.into_iter().map(String::from).collect() }
    };
    let other = |program: &str, args: &[&str]| ExecRequest {
        program: program.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
    };
    vec![
        runc(&["state", VALUE]),
        runc(&["kill", VALUE, "TERM"]),
        runc(&["delete", "-f", VALUE]),
        runc(&["exec", VALUE, REST]),
        other("setsid", &["-w", "runc", "--root", RUNC_ROOT, "run", "-d", "-b", VALUE, VALUE]),
        other("ip", &["netns", "add", VALUE]),
        other("ip", &["netns", "delete", VALUE]),
        other("ip", &["-n", VALUE, "link", "set", "lo", "up"]),
    ]
}

fn runc(args: &[&str]) -> CpiResult<Output> {
    let mut all = vec!["--root", RUNC_ROOT];
    all.extend_from_slice(args);
    exec("runc", &all)
}

/// The message of runc's last error line (`time=... level=error msg="..."`), else the line.
pub fn runc_message(stderr: &str) -> String {
    let line = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    match line.split_once("msg=\"") {
        Some((_, rest)) => {
            let rest = rest.strip_suffix('"').unwrap_or(rest);
            rest.replace("\\\"", "\"").replace("\\\\", "\\")
        }
        None => line.to_string(),
    }
}

/// A failed runc call as a CPI error: unknown id → `not-found`, timeout → `timeout`, else `failed`.
fn failure(what: &str, name: &str, out: &Output) -> CpiError {
    if out.timed_out {
        return CpiError::new(ErrorKind::Timeout, format!("runc {what} {name} timed out"));
    }
    let stderr = out.stderr_text();
    if stderr.contains(NO_CONTAINER) {
        return CpiError::new(ErrorKind::NotFound, format!("runc: no such container: {name}"));
    }
    let status = out.exit_code.map_or("a signal".to_string(), |c| format!("status {c}"));
    CpiError::new(ErrorKind::Failed, format!("runc {what} {name} exited with {status}: {}", runc_message(&stderr)))
}

/// What `runc state` says about a container runc knows.
#[derive(Clone, Debug)]
pub struct RuncState {
    /// created | running | paused | stopped
    pub status: String,
    pub pid: Option<u32>,
    /// The whole `runc state` document.
    pub raw: Value,
}

impl RuncState {
    /// Running or paused: the container's processes exist.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "running" | "paused")
    }
}

/// What a dry run takes `runc state` to say: nothing runs in a dry run, so the plan shows the
/// commands of the case the action is for (stop and exec: a running container; start and
/// changes to mounts or networks: one that does not run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InDryRun {
    Running,
    NotRunning,
}

/// `runc state NAME`: `None` when runc does not know the id (never started, or stopped and
/// deleted by `stop`). In a dry run, the command is planned and `assume` answers.
pub fn state(name: &str, assume: InDryRun) -> CpiResult<Option<RuncState>> {
    let out = runc(&["state", name])?;
    if dry_run() {
        return Ok((assume == InDryRun::Running).then(|| RuncState {
            status: "running".into(),
            pid: None,
            raw: Value::Null,
        }));
    }
    if !out.success() {
        if !out.timed_out && out.stderr_text().contains(NO_CONTAINER) {
            return Ok(None);
        }
        return Err(failure("state", name, &out));
    }
    let raw: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CpiError::new(ErrorKind::Failed, format!("runc state {name}: unexpected output ({e})")))?;
    let status = raw["status"].as_str().unwrap_or("unknown").to_string();
    let pid = raw["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).filter(|&p| p > 0);
    Ok(Some(RuncState { status, pid, raw }))
}

/// `runc delete -f NAME`: kills the container if it runs, waits for it, and makes runc forget it.
/// An id runc does not know is fine.
pub fn delete(name: &str) -> CpiResult<()> {
    let out = runc(&["delete", "-f", name])?;
    if out.success() || (!out.timed_out && out.stderr_text().contains(NO_CONTAINER)) {
        return Ok(());
    }
    Err(failure("delete -f", name, &out))
}

/// Stops the container runc knows as `name`, if at all, and makes runc forget it. With a timeout,
/// SIGTERM first and up to `timeout` for the container to exit; then (or at once) SIGKILL through
/// `runc delete -f`.
pub fn stop(name: &str, timeout: Duration) -> CpiResult<()> {
    let Some(current) = state(name, InDryRun::Running)? else { return Ok(()) };
    if current.status == "running" && !timeout.is_zero() {
        let out = runc(&["kill", name, "TERM"])?;
        if out.success() && !dry_run() {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                match state(name, InDryRun::Running)? {
                    Some(s) if s.status == "running" => {}
                    _ => break,
                }
            }
        }
        // A failed TERM (it exited meanwhile) is settled by the delete below.
    }
    delete(name)
}

/// `setsid -w runc run -d -b BUNDLE NAME`: starts the container detached. setsid puts runc (and so
/// the container) in a session of its own, outside the process group the host kills when the call
/// returns; `-w` waits for runc and returns its status.
pub fn run(name: &str, bundle: &str) -> CpiResult<()> {
    let out = exec("setsid", &["-w", "runc", "--root", RUNC_ROOT, "run", "-d", "-b", bundle, name])?;
    if out.success() {
        return Ok(());
    }
    if !out.timed_out && out.stderr_text().contains("container with given ID already exists") {
        // A concurrent start won: the container runs (or is being made), which is what was asked.
        return Ok(());
    }
    // runc may leave a half-made container behind; forget it so the next start is clean. Only a
    // dead one: never kill what a concurrent start made.
    if let Ok(Some(left)) = state(name, InDryRun::NotRunning) {
        if !left.is_live() {
            let _ = delete(name);
        }
    }
    Err(failure("run", name, &out))
}

/// `runc exec NAME CMD...` (runc stops reading its own options at the id, so CMD is passed as is).
/// The command's exit code is a result; runc's own failures are errors, except a command that
/// cannot be executed, which is reported like a shell (and podman) does: 127 when it is not found,
/// 126 when it cannot run.
pub fn exec_in(name: &str, cmd: &[String]) -> CpiResult<ExecResult> {
    let mut args = vec!["--root", RUNC_ROOT, "exec", name];
    args.extend(cmd.iter().map(String::as_str));
    let out = exec("runc", &args)?;
    if out.timed_out {
        return Err(CpiError::new(ErrorKind::Timeout, format!("exec in {name} timed out")));
    }
    let stderr = out.stderr_text();
    let Some(code) = out.exit_code else {
        let signal = out.signal.map_or("a signal".to_string(), |s| format!("signal {s}"));
        return Err(CpiError::new(ErrorKind::Failed, format!("runc exec {name} was killed by {signal}")));
    };
    // runc exits 255 when it could not exec the command; its message is then the last line.
    let message = runc_message(&stderr);
    if code == 255 && stderr.contains("level=error") && message.starts_with("exec failed:") {
        if message.contains(NO_CONTAINER) {
            return Err(CpiError::new(ErrorKind::NotFound, format!("runc: no such container: {name}")));
        }
        if message.contains("cannot exec in a stopped") || message.contains("paused") {
            return Err(CpiError::new(ErrorKind::InvalidState, format!("runc: {name} is not running: {message}")));
        }
        if message.contains("unable to start container process: exec:") {
            let missing = message.contains("not found") || message.contains("no such file or directory");
            let exit_code = if missing { 127 } else { 126 };
            return Ok(ExecResult { exit_code, stdout: out.stdout_text(), stderr: format!("runc: {message}\n") });
        }
    }
    if out.stdout_truncated || out.stderr_truncated {
        log(Level::Warn, &format!("runc_cpi: exec in {name}: output cut at the host's output limit"));
    }
    Ok(ExecResult { exit_code: code, stdout: out.stdout_text(), stderr })
}

pub fn netns_name(network: &str) -> String {
    format!("{NETNS_PREFIX}{network}")
}

/// Creates the network namespace of `network` with its loopback up. `Ok(false)` when it already
/// existed (it is kept as it is).
pub fn netns_add(network: &str) -> CpiResult<bool> {
    let ns = netns_name(network);
    let out = exec("ip", &["netns", "add", &ns])?;
    if !out.success() {
        if !out.timed_out && out.stderr_text().contains("File exists") {
            return Ok(false);
        }
        return Err(ip_failure(&format!("ip netns add {ns}"), &out));
    }
    let up = exec("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
    if !up.success() {
        let _ = netns_delete(network);
        return Err(ip_failure(&format!("ip -n {ns} link set lo up"), &up));
    }
    Ok(true)
}

/// Removes the network namespace of `network`; a missing one is fine.
pub fn netns_delete(network: &str) -> CpiResult<()> {
    let ns = netns_name(network);
    let out = exec("ip", &["netns", "delete", &ns])?;
    if out.success() || (!out.timed_out && out.stderr_text().contains("No such file or directory")) {
        return Ok(());
    }
    Err(ip_failure(&format!("ip netns delete {ns}"), &out))
}

fn ip_failure(what: &str, out: &Output) -> CpiError {
    if out.timed_out {
        return CpiError::new(ErrorKind::Timeout, format!("{what} timed out"));
    }
    let stderr = out.stderr_text();
    let line = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let status = out.exit_code.map_or("a signal".to_string(), |c| format!("status {c}"));
    CpiError::new(ErrorKind::Failed, format!("{what} exited with {status}: {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            runc_message("time=\"2026-11-22T02:45:56Z\" level=error msg=\"container does not exist\"\n"),
            "container does not exist"
        );
        assert_eq!(
            runc_message(
                "time=\"x\" level=error msg=\"exec failed: exec: \\\"nosuch\\\": executable file not found in $PATH\""
            ),
            "exec failed: exec: \"nosuch\": executable file not found in $PATH"
        );
        assert_eq!(runc_message("plain\n\n"), "plain");
    }
}
