//! The audit log: one JSON line per exec (or HTTP request) decision a plugin caused, allowed or denied, so an
//! operator can see exactly what third-party code ran on the node.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    Denied,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u128,
    pub plugin: String,
    pub action: String,
    pub program: String,
    pub argv: Vec<String>,
    pub decision: Decision,
    /// Why it was denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The status of an HTTP request (`program` is then `http`, `argv` the method and URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The step or grant is declared `detach`: what it starts in its own session may outlive a
    /// timeout.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub detach: bool,
    /// Who asked for the call, when a server runs it (`uid:0`, `token:agent`); see [`as_caller`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

tokio::task_local! {
    static CALLER: String;
}

/// Runs `call` with `caller` named in every audit line it causes: `omni-cpi serve` wraps each
/// request's call in it, so the log says who asked, not only which plugin ran what.
pub async fn as_caller<F: std::future::Future>(caller: String, call: F) -> F::Output {
    CALLER.scope(caller, call).await
}

fn current_caller() -> Option<String> {
    CALLER.try_with(Clone::clone).ok()
}

impl AuditEntry {
    /// An entry for one exec decision, stamped now.
    pub fn exec(
        plugin: &str,
        action: &str,
        argv: &[String],
        decision: Decision,
        reason: Option<String>,
        finished: Option<(Option<i32>, std::time::Duration)>,
    ) -> AuditEntry {
        AuditEntry {
            time_ms: now_ms(),
            plugin: plugin.to_string(),
            action: action.to_string(),
            program: argv.first().cloned().unwrap_or_default(),
            argv: argv.to_vec(),
            decision,
            reason,
            exit_code: finished.and_then(|(code, _)| code),
            http_status: None,
            duration_ms: finished.map(|(_, d)| d.as_millis() as u64),
            detach: false,
            caller: current_caller(),
        }
    }

    /// An entry for one HTTP request decision. Headers and body are left out: they carry tokens;
    /// so is a password in the URL's user information. The caller passes the request with the
    /// call's secrets already replaced.
    pub fn request(
        plugin: &str,
        action: &str,
        request: &crate::json::http::HttpRequest,
        decision: Decision,
        reason: Option<String>,
        finished: Option<(u16, std::time::Duration)>,
    ) -> AuditEntry {
        AuditEntry {
            time_ms: now_ms(),
            plugin: plugin.to_string(),
            action: action.to_string(),
            program: "http".into(),
            argv: vec![request.method.clone(), without_password(&request.url)],
            decision,
            reason,
            exit_code: None,
            http_status: finished.map(|(status, _)| status),
            duration_ms: finished.map(|(_, d)| d.as_millis() as u64),
            detach: false,
            caller: current_caller(),
        }
    }
}

/// `url` with the password of its user information replaced by `***`.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(crate::secrets::MASK));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

pub fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Appends entries to a file (shared by every plugin of a host); without a file, entries go to
/// tracing only.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    file: Option<Arc<Mutex<File>>>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog { file: Some(Arc::new(Mutex::new(file))) })
    }

    pub fn record(&self, entry: &AuditEntry) {
        tracing::info!(plugin = %entry.plugin, action = %entry.action, program = %entry.program, decision = ?entry.decision, reason = ?entry.reason, "exec");
        let Some(file) = &self.file else { return };
        let Ok(mut line) = serde_json::to_vec(entry) else { return };
        line.push(b'\n');
        // One write per line: appends of a whole line do not interleave between writers.
        if let Ok(mut file) = file.lock() {
            if let Err(e) = file.write_all(&line) {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
    }
}
