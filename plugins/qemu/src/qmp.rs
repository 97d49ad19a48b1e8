//! QMP, QEMU's control protocol, spoken through `socat` (the plugin has no sockets): the messages
//! go to socat's stdin, the replies come back on its stdout. socat always runs in the VM's
//! directory and connects to the relative name of the socket, so its arguments are fixed.
//!
//! Liveness without /proc: a VM runs when its QMP socket answers. A refused connection (or no
//! socket) means no QEMU; a connection that closes without QEMU's greeting means a QEMU that is
//! exiting.

use std::path::Path;

use omni_cpi_sdk::prelude::*;
use serde_json::{json, Value};

use crate::store::{self, QMP_SOCKET};

/// socat's arguments: `-T 5` ends an idle session after 5 s, `-t 5` waits up to 5 s for QEMU's
/// replies after the messages are sent.
pub fn socat_args() -> Vec<String> {
    ["-T", "5", "-t", "5", "-", &format!("UNIX-CONNECT:{QMP_SOCKET}")].iter().map(|s| s.to_string()).collect()
}

/// Bounds one socat run (each session is a handful of messages; socat's own timeouts are 5 s).
const SOCAT_TIMEOUT_MS: u32 = 20_000;

/// One reply per command: its `return` value, or QEMU's error as `Class: description`.
pub type Reply = Result<Value, String>;

#[derive(Debug, Clone, PartialEq)]
pub enum Session {
    /// No QEMU listens: the socket is missing or refuses connections.
    Refused,
    /// The connection closed without QEMU's greeting: a QEMU that is exiting (or hung).
    Silent,
    /// QEMU answered; one reply per command, in order.
    Replies(Vec<Reply>),
}

/// What a VM's QMP socket says about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// No QEMU runs.
    Absent,
    /// QEMU answers; its run state (`running`, `paused`, `prelaunch`, ...).
    Live(String),
    /// Something holds the socket but does not answer.
    Silent,
}

/// The text socat gets: capability negotiation, then each command with an `id` to match replies.
pub fn input(commands: &[Value]) -> String {
    let mut text = json!({"execute": "qmp_capabilities", "id": "omni-cap"}).to_string();
    text.push('\n');
    for (i, command) in commands.iter().enumerate() {
        let mut command = command.clone();
        command["id"] = json!(format!("omni-{i}"));
        text.push_str(&command.to_string());
        text.push('\n');
    }
    text
}

/// Reads socat's stdout: `None` without QEMU's greeting, else one reply per command.
pub fn parse(stdout: &str, commands: usize) -> Option<Vec<Reply>> {
    let mut greeted = false;
    let mut replies: Vec<Reply> = vec![Err("no reply (the connection closed)".to_string()); commands];
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else { continue };
        if message.get("QMP").is_some() {
            greeted = true;
            continue;
        }
        let Some(index) =
            message["id"].as_str().and_then(|id| id.strip_prefix("omni-")).and_then(|n| n.parse::<usize>().ok())
        else {
            continue; // events, the capabilities reply
        };
        let Some(slot) = replies.get_mut(index) else { continue };
        *slot = match (message.get("return"), message.get("error")) {
            (Some(value), _) => Ok(value.clone()),
            (None, Some(error)) => Err(format!(
                "{}: {}",
                error["class"].as_str().unwrap_or("Error"),
                error["desc"].as_str().unwrap_or("(no description)")
            )),
            (None, None) => Err(format!("unexpected reply {message}")),
        };
    }
    greeted.then_some(replies)
}

/// Sends `commands` to the QEMU of the VM whose directory is `dir`.
///
/// A first socat run without input checks that QEMU listens: socat exits at once on a refused
/// connection, before reading its stdin, and the host writing messages into that closed pipe can
/// be hit by SIGPIPE (the `omni-cpi` CLI restores its default action, which ends the process).
/// A stale socket (QEMU killed, or the host rebooted) is therefore probed with nothing to write.
pub fn session(vm: &str, dir: &Path, commands: &[Value]) -> CpiResult<Session> {
    if !store::exists(&dir.join(QMP_SOCKET))? {
        return Ok(Session::Refused);
    }
    match socat(vm, dir, None, 0)? {
        Session::Replies(_) => socat(vm, dir, Some(input(commands).into_bytes()), commands.len()),
        other => Ok(other),
    }
}

/// One socat run: `input` to QEMU, its replies to `commands` commands back.
fn socat(vm: &str, dir: &Path, input: Option<Vec<u8>>, commands: usize) -> CpiResult<Session> {
    let out = run(&Command {
        program: "socat".into(),
        args: socat_args(),
        env: Vec::new(),
        cwd: Some(dir.to_string_lossy().into_owned()),
        stdin: input,
        timeout_ms: Some(SOCAT_TIMEOUT_MS),
    })?;
    if dry_run() {
        // Nothing ran: plan as if QEMU answered and every command succeeded.
        return Ok(Session::Replies(vec![Ok(json!({})); commands]));
    }
    if out.timed_out {
        return Err(CpiError::new(
            ErrorKind::Timeout,
            format!("qemu_wasm_cpi: the QMP socket of vm {vm} did not answer"),
        ));
    }
    let replies = || match parse(&out.stdout_text(), commands) {
        Some(replies) => Session::Replies(replies),
        None => Session::Silent,
    };
    if out.success() {
        return Ok(replies());
    }
    let stderr = out.stderr_text();
    if stderr.contains("Connection refused") || stderr.contains("No such file or directory") {
        return Ok(Session::Refused);
    }
    // QEMU closed the connection while socat still wrote or read (it is exiting, e.g. after
    // `quit`): what it answered before counts.
    if stderr.contains("Connection reset by peer") || stderr.contains("Broken pipe") {
        return Ok(replies());
    }
    let what = format!("socat (the QMP socket of vm {vm})");
    Err(out.ok_or_failed(&what).err().unwrap_or_else(|| CpiError::new(ErrorKind::Failed, what)))
}

/// Sends `commands` and requires every one to succeed: `invalid-state` when no QEMU runs, `failed`
/// with QEMU's error otherwise. Returns the `return` values.
pub fn execute(vm: &str, dir: &Path, what: &str, commands: &[Value]) -> CpiResult<Vec<Value>> {
    match session(vm, dir, commands)? {
        Session::Refused => {
            Err(CpiError::new(ErrorKind::InvalidState, format!("qemu_wasm_cpi: vm {vm} is not running ({what})")))
        }
        Session::Silent => Err(CpiError::new(
            ErrorKind::Failed,
            format!("qemu_wasm_cpi: vm {vm} does not answer on its QMP socket ({what})"),
        )),
        Session::Replies(replies) => replies
            .into_iter()
            .map(|r| {
                r.map_err(|e| {
                    CpiError::new(ErrorKind::Failed, format!("qemu_wasm_cpi: QMP {what} failed in vm {vm}: {e}"))
                })
            })
            .collect(),
    }
}

/// Asks the VM's QEMU for its run state.
pub fn probe(vm: &str, dir: &Path) -> CpiResult<Probe> {
    Ok(match session(vm, dir, &[json!({"execute": "query-status"})])? {
        Session::Refused => Probe::Absent,
        Session::Silent => Probe::Silent,
        Session::Replies(replies) => match replies.into_iter().next() {
            Some(Ok(status)) => Probe::Live(status["status"].as_str().unwrap_or("unknown").to_string()),
            _ => Probe::Live("unknown".to_string()),
        },
    })
}

pub fn blockdev_add(target: u8, file: &Path) -> Value {
    json!({"execute": "blockdev-add", "arguments": {
        "driver": "qcow2", "node-name": format!("omni-d{target}"),
        "file": {"driver": "file", "filename": file.to_string_lossy()}}})
}

pub fn device_add(target: u8) -> Value {
    json!({"execute": "device_add", "arguments": {
        "driver": "scsi-hd", "drive": format!("omni-d{target}"), "id": format!("omni-sd{target}"),
        "bus": "omni-scsi.0", "channel": 0, "scsi-id": target, "lun": 0}})
}

pub fn device_del(target: u8) -> Value {
    json!({"execute": "device_del", "arguments": {"id": format!("omni-sd{target}")}})
}

pub fn blockdev_del(target: u8) -> Value {
    json!({"execute": "blockdev-del", "arguments": {"node-name": format!("omni-d{target}")}})
}

pub fn simple(command: &str) -> Value {
    json!({ "execute": command })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_numbers_commands_after_the_capabilities() {
        let text = input(&[simple("query-status"), device_del(3)]);
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], json!({"execute": "qmp_capabilities", "id": "omni-cap"}));
        assert_eq!(lines[1], json!({"execute": "query-status", "id": "omni-0"}));
        assert_eq!(lines[2]["arguments"]["id"], "omni-sd3");
        assert_eq!(lines[2]["id"], "omni-1");
    }

    #[test]
    fn replies_are_matched_by_id_among_events() {
        let stdout = r#"{"QMP": {"version": {}, "capabilities": ["oob"]}}
{"return": {}, "id": "omni-cap"}
{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}
{"error": {"class": "DeviceNotFound", "desc": "Device 'omni-sd1' not found"}, "id": "omni-1"}
{"return": {"status": "running", "running": true}, "id": "omni-0"}
"#;
        let replies = parse(stdout, 3).expect("greeted");
        assert_eq!(replies[0], Ok(json!({"status": "running", "running": true})));
        assert_eq!(replies[1], Err("DeviceNotFound: Device 'omni-sd1' not found".to_string()));
        assert!(replies[2].is_err(), "a command without a reply is an error");
        assert_eq!(parse("", 1), None, "no greeting: QEMU is exiting");
        assert_eq!(parse("garbage\n", 1), None);
    }

    #[test]
    fn hot_plug_messages() {
        let add = blockdev_add(2, Path::new("/s/disks/d/disk.qcow2"));
        assert_eq!(add["arguments"]["node-name"], "omni-d2");
        assert_eq!(add["arguments"]["file"]["filename"], "/s/disks/d/disk.qcow2");
        let dev = device_add(2);
        assert_eq!(dev["arguments"]["scsi-id"], 2);
        assert_eq!(dev["arguments"]["bus"], "omni-scsi.0");
        assert_eq!(blockdev_del(2)["arguments"]["node-name"], "omni-d2");
    }
}
