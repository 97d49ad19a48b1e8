//! A container CPI that misbehaves on request, for the host's sandbox tests (tests/it/components.rs).
//! `exec` with `cmd = [BEHAVIOUR, ...]` does one bad (or good) thing; `list_containers` is always
//! well-behaved, so a test can check that the plugin still works right after.
//!
//! It requests: `sh -c "echo granted"` and `echo` with any arguments; `/sandbox` read-only and
//! `/scratch` read-write; the variable `GRANTED_VAR`. Tests grant exactly that. It declares the
//! settings `greeting` (default `hello`) and `network`: the hosts it requests for wasi:http, as
//! `HOST:PORT` separated by commas (default none), taken as written, so a test can also make it
//! request what no policy could grant; `act-at-load` instead makes `network_requests` try to run
//! a program and send a request, which the host must refuse at load.

use std::hint::black_box;

use omni_cpi_sdk::prelude::*;

struct Adversary;

impl Plugin for Adversary {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "adversary".into(),
            kind: CpiKind::Container,
            version: "0.1.0".into(),
            actions: describe_actions(
                CONTAINER_ACTIONS,
                &["exec", "list_containers"],
                "the adversary only misbehaves through exec",
            ),
            default_settings: vec![("greeting".into(), "hello".into()), ("network".into(), String::new())],
            capabilities: Capabilities {
                exec: vec![
                    ExecRequest { program: "sh".into(), args: vec!["-c".into(), "echo granted".into()] },
                    ExecRequest { program: "echo".into(), args: vec!["**".into()] },
                ],
                dirs: vec![
                    DirRequest { guest_path: "/sandbox".into(), writable: false, description: "read-only data".into() },
                    DirRequest { guest_path: "/scratch".into(), writable: true, description: "scratch space".into() },
                ],
                env: vec!["GRANTED_VAR".into()],
            },
        }
    }

    fn network_requests() -> Vec<NetworkRequest> {
        let hosts = setting("network").unwrap_or_default();
        if hosts == "act-at-load" {
            // What a load-time call must not be able to do: run a (granted) program, send a request.
            let _ = exec("sh", &["-c", "echo granted"]);
            let _ = omni_cpi_sdk::http::Request::get("http://127.0.0.1:9/").send();
            return Vec::new();
        }
        hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                let (host, port) = h.rsplit_once(':').unwrap_or((h, "80"));
                NetworkRequest {
                    host: host.to_string(),
                    port: port.parse().unwrap_or(0),
                    description: "a test asked for it".to_string(),
                }
            })
            .collect()
    }
}

fn text(s: impl Into<String>) -> CpiResult<ExecResult> {
    Ok(ExecResult { exit_code: 0, stdout: s.into(), stderr: String::new() })
}

fn io(what: &str, e: std::io::Error) -> CpiError {
    CpiError::new(ErrorKind::Denied, format!("{what}: {e}"))
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))) + 1
}

fn misbehave(cmd: &[String]) -> CpiResult<ExecResult> {
    let arg = |i: usize| cmd.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "ok" => text("fine"),
        "loop" => loop {
            black_box(0);
        },
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        "recurse" => text(recurse(0).to_string()),
        "panic" => panic!("deliberate panic from the adversary"),
        "exec-granted" => {
            let out = exec("sh", &["-c", "echo granted"])?;
            text(out.stdout_text())
        }
        "exec-ungranted" => {
            let out = exec("cat", &["/etc/shadow"])?;
            text(out.stdout_text())
        }
        "exec-forbidden-args" => {
            let out = exec("sh", &["-c", "cat /etc/shadow"])?;
            text(out.stdout_text())
        }
        "exec-env" => {
            let out = run(&Command {
                program: "echo".into(),
                args: vec!["x".into()],
                env: vec![("LD_PRELOAD".into(), "/tmp/evil.so".into())],
                cwd: None,
                stdin: None,
                timeout_ms: None,
            })?;
            text(out.stdout_text())
        }
        // 4 MiB of stdin for a program that never reads it: the host's write fails with EPIPE,
        // which must be an ordinary result, not the death of the host by SIGPIPE.
        "exec-stdin-unread" => {
            let out = run(&Command {
                program: "echo".into(),
                args: vec!["unread".into()],
                env: vec![],
                cwd: None,
                stdin: Some(vec![b'x'; 4 << 20]),
                timeout_ms: None,
            })?;
            text(out.stdout_text())
        }
        "read" => std::fs::read_to_string(arg(1)).map_err(|e| io(&arg(1), e)).and_then(text),
        "write" => {
            std::fs::write(arg(1), b"written by the adversary").map_err(|e| io(&arg(1), e)).and_then(|()| text("wrote"))
        }
        "env" => text(format!(
            "GRANTED_VAR={:?} SECRET_VAR={:?} vars={}",
            std::env::var("GRANTED_VAR").ok(),
            std::env::var("SECRET_VAR").ok(),
            std::env::vars().count()
        )),
        "flood" => {
            let chunk = "x".repeat(1 << 20);
            for _ in 0..1024 {
                print!("{chunk}");
            }
            text("flooded")
        }
        "connect" => std::net::TcpStream::connect(arg(1).as_str())
            .map_err(|e| io(&format!("connect {}", arg(1)), e))
            .and_then(|_| text("connected")),
        "setting" => text(setting(&arg(1)).unwrap_or_else(|| "<none>".into())),
        "settings" => text(settings().iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>()),
        // What a plugin does with the dry-run flag: plan the command it would run.
        "plan" => {
            let out = exec("echo", &[if dry_run() { "planned" } else { "ran" }])?;
            text(out.stdout_text())
        }
        "huge-return" => text("y".repeat(arg(1).parse().unwrap_or(8 << 20))),
        // `http-flood N URL`: N GETs at once (wasi:http hands out a future per request), then
        // waits for all: answers `answered=A refused=R`.
        "http-flood" => text(flood(arg(1).parse().unwrap_or(100), &arg(2))),
        // `http METHOD URL [BODY]` through the SDK's wasi:http client: answers `STATUS\nBODY`.
        "http" => {
            let answer = omni_cpi_sdk::http::Request::new(&arg(1), &arg(2)).body(arg(3)).send()?;
            text(format!("{}\n{}", answer.status, answer.text()))
        }
        other => Err(CpiError::new(ErrorKind::InvalidArgument, format!("unknown behaviour `{other}`"))),
    }
}

/// Opens `count` requests to `url` (`http://AUTHORITY/PATH`) before waiting for any.
fn flood(count: usize, url: &str) -> String {
    use wasi::http::types::{Fields, OutgoingRequest, Scheme};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let mut pending = Vec::new();
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(path));
        if let Ok(future) = wasi::http::outgoing_handler::handle(request, None) {
            pending.push(future);
        }
    }
    let (mut answered, mut refused) = (0, 0);
    for future in pending {
        future.subscribe().block();
        match future.get() {
            Some(Ok(Err(wasi::http::types::ErrorCode::ConnectionLimitReached))) => refused += 1,
            _ => answered += 1,
        }
    }
    format!("answered={answered} refused={refused}")
}

// Only what it does: every other action answers `unsupported` (the SDK's defaults).
impl Container for Adversary {
    fn exec(_name: String, cmd: Vec<String>) -> CpiResult<ExecResult> {
        misbehave(&cmd)
    }

    fn list_containers() -> CpiResult<Vec<String>> {
        Ok(vec!["still-working".into()])
    }
}

omni_cpi_sdk::export_container!(Adversary);
