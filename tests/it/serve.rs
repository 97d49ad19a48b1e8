//! `omni-cpi serve` as a client sees it: the real binary on a unix socket in a temporary
//! directory (and on 127.0.0.1), called with curl and with raw HTTP/1.1, serving the shipped
//! process CPI under a copy of the example policy `cpis/omni-cpi.toml`. Every server is stopped by
//! PID when its test ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;

const TOKEN: &str = "0123456789abcdef0123456789abcdef-agent";
/// The soft descriptor limit servers start with (below any hard limit, so raising it shows).
const SOFT_DESCRIPTOR_LIMIT: u64 = 1000;

/// A running server and the files it uses.
struct Served {
    dir: tempfile::TempDir,
    child: Child,
    socket: PathBuf,
    tcp: Option<String>,
    /// The server's stdout and stderr lines after "ready".
    said: std::sync::mpsc::Receiver<String>,
}

impl Served {
    /// The example policy, with its paths made absolute, its audit log and the process CPI's
    /// state in the test's directory, and `extra` appended.
    fn policy_text(dir: &Path, extra: &str) -> String {
        Served::policy_text_with(dir, "", extra)
    }

    /// The same, with `serve_keys` added to its `[serve]` table.
    fn policy_text_with(dir: &Path, serve_keys: &str, extra: &str) -> String {
        let example = std::fs::read_to_string(support::repo_root().join("cpis/omni-cpi.toml")).expect("example");
        let example = example
            .replace(
                "audit_log = \"/var/log/omni-cpi/audit.jsonl\"",
                &format!("audit_log = \"{}/audit.jsonl\"", dir.display()),
            )
            .replace("source = \"process.json\"", &format!("source = \"{}\"", support::cpi_path("process").display()));
        assert!(example.contains(&dir.display().to_string()), "the example policy's audit_log line changed");
        assert!(example.contains("[serve]\n"), "the example policy has no [serve] table");
        let example = example.replace("[serve]\n", &format!("[serve]\n{serve_keys}"));
        format!(
            "{example}\n[plugins.process.settings]\nstate_dir = \"{}/state\"\nstop_timeout = 1\n{extra}",
            dir.display()
        )
    }

    fn start(extra_policy: &str, tcp: bool, grace: &str) -> Served {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut network = Vec::new();
        let mut address = None;
        if tcp {
            let port = free_port();
            address = Some(format!("127.0.0.1:{port}"));
            network = vec!["--listen".to_string(), format!("tcp:127.0.0.1:{port}"), "--token-file".into()];
            network.push(write_tokens(dir.path(), &[("agent", TOKEN)]).display().to_string());
        }
        Served::start_in(dir, extra_policy, "", &network, grace, address)
    }

    /// A server with its files in `dir`, on a unix socket there and on `network` listeners.
    fn start_in(
        dir: tempfile::TempDir,
        extra_policy: &str,
        serve_keys: &str,
        network: &[String],
        grace: &str,
        address: Option<String>,
    ) -> Served {
        std::fs::create_dir(dir.path().join("state")).expect("state");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("state"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let policy = dir.path().join("omni-cpi.toml");
        std::fs::write(&policy, Served::policy_text_with(dir.path(), serve_keys, extra_policy)).expect("policy");
        let socket = dir.path().join("run/omni-cpi.sock");
        let mut args = vec![
            "--policy".to_string(),
            policy.display().to_string(),
            "serve".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--shutdown-grace".into(),
            grace.into(),
        ];
        args.extend(network.iter().cloned());
        let mut command = Command::new(env!("CARGO_BIN_EXE_omni-cpi"));
        // SAFETY: setrlimit is async-signal-safe and touches only the child being started.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                limit.rlim_cur = SOFT_DESCRIPTOR_LIMIT.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
        let mut child = command
            .args(&args)
            .env("OMNI_CPI_CACHE_DIR", dir.path().join("cache"))
            .env("OMNI_CPI_LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("omni-cpi serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line.starts_with("omni-cpi serve: ready") => {}
            other => {
                let _ = child.kill();
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                panic!("the server did not get ready: {other:?}\n{stderr}");
            }
        }
        // Keep reading its output, so the server never blocks on a full pipe and tests can wait
        // for what it says.
        let (say, said) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        for output in [Box::new(lines) as Box<dyn Iterator<Item = std::io::Result<String>> + Send>, Box::new(stderr)] {
            let say = say.clone();
            std::thread::spawn(move || {
                for line in output.map_while(Result::ok) {
                    let _ = say.send(line);
                }
            });
        }
        Served { dir, child, socket, tcp: address, said }
    }

    /// Waits for the server to print a line containing `text`.
    fn wait_for_output(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.said.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("the server did not say `{text}` within {within:?}");
    }

    fn curl(&self, args: &[&str]) -> Output {
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "--unix-socket"])
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("curl runs")
    }

    /// `curl -w status` over the socket: (status, JSON body).
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut args = vec!["-X", method, "-w", "\n%{http_code}"];
        let body_text = body.map(|b| b.to_string());
        if let Some(text) = &body_text {
            args.extend(["-H", "Content-Type: application/json", "--data-binary", text.as_str()]);
        }
        let url = format!("http://omni{path}");
        args.push(&url);
        let out = self.curl(&args);
        assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
        parse_status_and_body(&out.stdout)
    }

    fn signal(&self, signal: i32) {
        // SAFETY: a plain signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap_or_default()
    }

    /// Waits for the server to exit; its status.
    fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn parse_status_and_body(stdout: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(stdout);
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), serde_json::from_str(body).unwrap_or(Value::String(body.to_string())))
}

/// A token file (mode 0600) with these `(name, token)` lines; its path.
fn write_tokens(dir: &Path, tokens: &[(&str, &str)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("tokens");
    let lines: String = tokens.iter().map(|(name, token)| format!("{name} {token}\n")).collect();
    std::fs::write(&path, format!("# name token\n{lines}")).expect("tokens");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One raw HTTP/1.1 request over the unix socket: (status, body).
async fn raw(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::UnixStream::connect(socket).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: omni\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// What an Agent does: the API answers, and a full container lifecycle runs through it.
#[test]
fn a_client_runs_a_container_lifecycle_over_the_unix_socket() {
    let served = Served::start("", false, "5s");
    let (status, health) = served.request("GET", "/v1/health", None);
    assert_eq!((status, health["status"].as_str(), health["cpis"].as_u64()), (200, Some("ok"), Some(1)));
    let (status, cpis) = served.request("GET", "/v1/cpis", None);
    assert_eq!(status, 200);
    assert_eq!(cpis["cpis"][0]["name"], "process");
    assert_eq!(cpis["cpis"][0]["form"], "spec");
    assert!(cpis["cpis"][0]["actions"].as_array().expect("actions").contains(&json!("create_container")));
    let (status, info) = served.request("GET", "/v1/cpis/process", None);
    assert_eq!((status, info["name"].as_str()), (200, Some("process_cpi")), "{info}");

    let name = support::unique_name("served");
    let call =
        |action: &str, body: Value| served.request("POST", &format!("/v1/cpis/process/actions/{action}"), Some(body));
    let (status, plan) = served.request(
        "POST",
        "/v1/cpis/process/actions/create_container?dry_run=true",
        Some(json!({"name": name, "image": "none", "command": ["sleep", "60"]})),
    );
    assert_eq!(status, 200, "{plan}");
    assert!(plan["steps"].as_array().is_some_and(|s| !s.is_empty()), "{plan}");

    let (status, created) = call(
        "create_container",
        json!({"name": name, "image": "none", "command": ["sh", "-c", "echo hi; exec sleep 60"]}),
    );
    assert_eq!(status, 200, "{created}");
    let (status, again) = call("create_container", json!({"name": name, "image": "none", "command": ["true"]}));
    assert_eq!((status, again["error"]["kind"].as_str()), (409, Some("already_exists")), "{again}");
    assert_eq!(call("start_container", json!({"name": name})).0, 200);
    let (status, exec) = call("exec", json!({"name": name, "cmd": ["echo", "inside"]}));
    assert_eq!((status, exec["stdout"].as_str()), (200, Some("inside\n")), "{exec}");
    // The server raised its own descriptor limit (started at SOFT_DESCRIPTOR_LIMIT); the programs
    // it runs get the original back.
    let (status, limit) = call("exec", json!({"name": name, "cmd": ["sh", "-c", "ulimit -n"]}));
    assert_eq!((status, limit["stdout"].as_str()), (200, Some(format!("{SOFT_DESCRIPTOR_LIMIT}\n").as_str())));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", served.child.id())).expect("limits");
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).expect("open files line");
    assert!(!open_files.contains(&format!(" {SOFT_DESCRIPTOR_LIMIT} ")), "not raised: {open_files}");
    assert_eq!(call("stop_container", json!({"name": name})).0, 200);
    assert_eq!(call("delete_container", json!({"name": name})).0, 200);
    let (status, gone) = call("inspect_container", json!({"name": name}));
    assert_eq!((status, gone["error"]["kind"].as_str()), (404, Some("not_found")), "{gone}");

    // Errors are typed, with a status by kind.
    let (status, missing) = call("create_container", json!({"image": "none", "command": ["true"]}));
    assert_eq!(
        (status, missing["error"]["kind"].as_str(), missing["error"]["param"].as_str()),
        (400, Some("invalid_argument"), Some("name"))
    );
    let (status, _) = served.request("POST", "/v1/cpis/nope/actions/list_containers", Some(json!({})));
    assert_eq!(status, 404);
    let out = served.curl(&[
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "--data-binary",
        "[1]",
        "http://omni/v1/cpis/process/actions/list_containers",
    ]);
    assert_eq!(parse_status_and_body(&out.stdout).0, 400, "a body that is not an object");

    let (status, unknown) = call("no_such_action_7f3a", json!({}));
    assert_eq!((status, unknown["error"]["kind"].as_str()), (501, Some("unsupported")), "{unknown}");
    let (status, _) = served.request("POST", "/v1/cpis/process/actions/list_containers?timeout=2h", Some(json!({})));
    assert_eq!(status, 400, "a caller cannot lengthen a call beyond the server's bound");

    // Every audit line names the caller.
    let audit = served.audit();
    let me = rustix::process::geteuid().as_raw();
    assert!(!audit.is_empty());
    for line in audit.lines() {
        assert!(line.contains(&format!("\"caller\":\"uid:{me}\"")), "{line}");
    }
    let (status, metrics) = served.request("GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert_eq!(status, 200);
    assert!(
        metrics
            .contains("omni_cpi_calls_total{cpi=\"process\",action=\"create_container\",outcome=\"already_exists\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("omni_cpi_calls_in_flight 0"), "{metrics}");
    assert!(!metrics.contains("no_such_action_7f3a"), "a caller's action name never becomes a metric label");
    assert!(metrics.contains("action=\"unknown\",outcome=\"unsupported\"} 1"), "{metrics}");

    // The server's log (OMNI_CPI_LOG_FORMAT=json): one JSON object per call, with its caller.
    let logged = served.wait_for_output("\"outcome\":\"already_exists\"", Duration::from_secs(5));
    let logged: Value = serde_json::from_str(&logged).expect("a JSON log line");
    assert_eq!(logged["caller"], format!("uid:{me}"));
    assert_eq!((logged["cpi"].as_str(), logged["action"].as_str()), (Some("process"), Some("create_container")));
    assert_eq!(logged["level"], "INFO");
}

/// A local user the policy does not list is disconnected before its request is read, even when
/// the socket's mode would let it connect.
#[test]
fn a_peer_the_policy_does_not_allow_is_refused() {
    let served = Served::start("", false, "5s");
    use std::os::unix::fs::PermissionsExt;
    for dir in [served.dir.path().to_path_buf(), served.socket.parent().expect("dir").to_path_buf()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    }
    std::fs::set_permissions(&served.socket, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "curl", "-sS", "--unix-socket"])
        .arg(&served.socket)
        .arg("http://omni/v1/health")
        .output()
        .expect("setpriv runs");
    assert!(!out.status.success(), "nobody got an answer: {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty(), "not a byte of an answer: {}", String::from_utf8_lossy(&out.stdout));
    let (_, metrics) = served.request("GET", "/metrics", None);
    assert!(metrics.as_str().unwrap_or_default().contains("omni_cpi_refused_connections_total 1"), "{metrics}");
    // The server's own user is served.
    assert_eq!(served.request("GET", "/v1/health", None).0, 200);
}

/// Over TCP a request needs a valid bearer token; the token's name is the caller.
#[test]
fn tcp_requires_a_bearer_token() {
    let served = Served::start("", true, "5s");
    let address = served.tcp.clone().expect("tcp");
    let curl = |auth: Option<&str>| {
        let mut command = Command::new("curl");
        command.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", "{}"]);
        if let Some(token) = auth {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out =
            command.arg(format!("http://{address}/v1/cpis/process/actions/list_containers")).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(curl(None), "401");
    assert_eq!(curl(Some("0123456789abcdef0123456789abcdef-agenT")), "401");
    assert_eq!(curl(Some(TOKEN)), "200");
    assert!(served.audit().contains("\"caller\":\"token:agent\""), "{}", served.audit());
}

#[test]
fn network_listeners_without_tokens_or_certificates_or_with_readable_secrets_do_not_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, Served::policy_text(dir.path(), "")).expect("policy");
    let serve = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .args(["--policy", policy.to_str().expect("utf-8"), "serve"])
            .args(args)
            .output()
            .expect("runs")
    };
    let out = serve(&["--listen", "tcp:127.0.0.1:1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --token-file"), "{out:?}");
    let out = serve(&["--listen", "tcp:0.0.0.0:8480"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls:0.0.0.0:8480"), "{out:?}");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("agent {TOKEN}\n")).expect("tokens");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = serve(&["--listen", "tcp:127.0.0.1:1", "--token-file", tokens.to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"), "{out:?}");
    assert_eq!(out.status.code(), Some(2));
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let tokens = tokens.to_str().expect("utf-8");

    // TLS: a certificate is needed; a certificate for clear-text listeners only is refused (its
    // operator believes them encrypted); the key must be private.
    let out = serve(&["--listen", "tls:127.0.0.1:1", "--token-file", tokens]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --tls-cert and --tls-key"), "{out:?}");
    let pki = Pki::issue(dir.path(), "start");
    let (cert, key) = (pki.cert.to_str().expect("utf-8"), pki.key.to_str().expect("utf-8"));
    let out = serve(&["--listen", "tcp:127.0.0.1:1", "--token-file", tokens, "--tls-cert", cert, "--tls-key", key]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("a tcp: listener stays clear text"), "{out:?}");
    let out = serve(&["--listen", "tls:127.0.0.1:1", "--tls-cert", cert, "--tls-key", key]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --token-file"), "{out:?}");
    std::fs::set_permissions(&pki.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = serve(&["--listen", "tls:127.0.0.1:1", "--token-file", tokens, "--tls-cert", cert, "--tls-key", key]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"), "{out:?}");
    assert_eq!(out.status.code(), Some(2));
}

/// 1000 concurrent dry runs, then 100 concurrent real lifecycles: all answered, nothing leaked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_all_succeed_and_leave_nothing_behind() {
    let served = Served::start("", false, "5s");
    let socket = served.socket.clone();
    let dry_runs: Vec<_> = (0..1000)
        .map(|i| {
            let socket = socket.clone();
            tokio::spawn(async move {
                let body = json!({"name": format!("dry{i}"), "image": "none", "command": ["true"]}).to_string();
                raw(&socket, "POST", "/v1/cpis/process/actions/create_container?dry_run=true", &body).await
            })
        })
        .collect();
    for call in dry_runs {
        let (status, body) = call.await.expect("task");
        assert_eq!(status, 200, "{body}");
    }

    let prefix = support::unique_name("many");
    let lifecycles: Vec<_> = (0..100)
        .map(|i| {
            let socket = socket.clone();
            let name = format!("{prefix}-{i}");
            tokio::spawn(async move {
                for (action, body) in [
                    ("create_container", json!({"name": name, "image": "none", "command": ["sleep", "60"]})),
                    ("start_container", json!({"name": name})),
                    ("exec", json!({"name": name, "cmd": ["true"]})),
                    ("delete_container", json!({"name": name})),
                ] {
                    let (status, text) =
                        raw(&socket, "POST", &format!("/v1/cpis/process/actions/{action}"), &body.to_string()).await;
                    assert_eq!(status, 200, "{action} {name}: {text}");
                }
            })
        })
        .collect();
    for lifecycle in lifecycles {
        lifecycle.await.expect("lifecycle");
    }
    let (status, listed) = raw(&socket, "POST", "/v1/cpis/process/actions/list_containers", "{}").await;
    assert_eq!(status, 200);
    assert!(!listed.contains(&prefix), "a container of the run is left: {listed}");
}

/// A CPI whose create checks then acts (a window of 300 ms): without the server's per-resource
/// lock, two concurrent creates of one name both pass the check and one fails untyped.
const RACY_SPEC: &str = r#"{"name": "racy", "type": "container",
  "validation": {"required_commands": ["sh"]},
  "default_settings": {"dir": ""},
  "actions": {"create_container": {
    "command": "sh -c 'test -e \"$1/$2\" && exit 17; sleep 0.3; mkdir \"$1/$2\"' sh {dir} {name}",
    "params": [{"name": "name", "pattern": "[a-z0-9-]+"}],
    "errors": [{"kind": "already_exists", "exit_code": 17}]}}}"#;

/// A server with `RACY_SPEC` bound as `racy` (beside the example policy's process CPI); the
/// directory it creates in is kept with it.
fn serve_racy_spec() -> (tempfile::TempDir, Served) {
    let racy = tempfile::tempdir().expect("temp dir");
    let spec = racy.path().join("racy.json");
    std::fs::write(&spec, RACY_SPEC).expect("spec");
    std::fs::create_dir(racy.path().join("made")).expect("dir");
    let served = Served::start(
        &format!(
            "[plugins.racy]\nsource = \"{}\"\n[plugins.racy.settings]\ndir = \"{}\"\n[[plugins.racy.exec]]\nprogram = \"sh\"\nargs = [\"-c\", \"*\", \"sh\", \"**\"]\n",
            spec.display(),
            racy.path().join("made").display()
        ),
        false,
        "5s",
    );
    (racy, served)
}

/// Two concurrent creates of one name on one CPI: exactly one succeeds, the other is typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_the_same_resource_are_serialized() {
    let (_made_in, served) = serve_racy_spec();
    for round in 0..3 {
        let body = json!({ "name": format!("r{round}") }).to_string();
        let path = "/v1/cpis/racy/actions/create_container";
        let (a, b) = tokio::join!(raw(&served.socket, "POST", path, &body), raw(&served.socket, "POST", path, &body));
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    }
}

/// SIGHUP swaps the policy in whole while calls flow: none is lost; a broken policy is refused
/// and the old one keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_call() {
    let mut served = Served::start("", false, "5s");
    let socket = served.socket.clone();
    let load: Vec<_> = (0..300)
        .map(|i| {
            let socket = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i % 100)).await;
                raw(&socket, "POST", "/v1/cpis/process/actions/list_containers?dry_run=true", "{}").await
            })
        })
        .collect();
    let policy = served.dir.path().join("omni-cpi.toml");
    let text = std::fs::read_to_string(&policy).expect("policy");
    std::fs::write(&policy, text.replace("allow_uids = [0]", "allow_uids = [0, 1]")).expect("rewrite");
    served.signal(libc::SIGHUP);
    for call in load {
        let (status, body) = call.await.expect("task");
        assert_eq!(status, 200, "{body}");
    }
    std::fs::write(&policy, "this is not TOML").expect("break the policy");
    served.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(raw(&socket, "GET", "/v1/health", "").await.0, 200, "the old policy still serves");
    assert!(served.wait(Duration::ZERO).is_none(), "the server is still running");
}

/// SIGTERM during a long call: the server waits the grace period, then kills the call's processes
/// and exits; nothing of the call is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_call_neither_hangs_nor_leaves_processes() {
    let mut served = Served::start("", false, "1s");
    let name = support::unique_name("term");
    let marker = format!("sleep 97.{}", std::process::id());
    let body = json!({"name": name, "image": "none", "command": ["sleep", "60"]}).to_string();
    assert_eq!(raw(&served.socket, "POST", "/v1/cpis/process/actions/create_container", &body).await.0, 200);
    assert_eq!(
        raw(&served.socket, "POST", "/v1/cpis/process/actions/start_container", &json!({"name": name}).to_string())
            .await
            .0,
        200
    );
    let socket = served.socket.clone();
    let exec = json!({"name": name, "cmd": ["sh", "-c", marker]}).to_string();
    let long = tokio::spawn(async move { raw(&socket, "POST", "/v1/cpis/process/actions/exec", &exec).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = |m: &str| Command::new("pgrep").args(["-f", m]).output().is_ok_and(|o| o.status.success());
    assert!(running(&marker), "the call's process runs");
    let started = Instant::now();
    served.signal(libc::SIGTERM);
    let status = served.wait(Duration::from_secs(15)).expect("the server exits after the grace period");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(status.success(), "{status:?}");
    let _ = long.await;
    std::thread::sleep(Duration::from_millis(300));
    assert!(!running(&marker), "the call's process outlived the server");
    // The container itself is the process CPI's, not the call's: remove it as a client would.
    let policy = served.dir.path().join("omni-cpi.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
        .args([
            "--policy",
            policy.to_str().expect("utf-8"),
            "call",
            "process",
            "delete_container",
            &format!("name={name}"),
        ])
        .output()
        .expect("omni-cpi call");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The OpenAPI document lists every route the server answers and the status of every error kind.
#[test]
fn the_openapi_document_matches_the_server() {
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo_root().join("openapi.json")).expect("openapi.json"),
    )
    .expect("JSON");
    let served = Served::start("", false, "5s");
    for (path, methods) in document["paths"].as_object().expect("paths") {
        for method in methods.as_object().expect("methods").keys() {
            let concrete = path.replace("{cpi}", "process").replace("{action}", "list_containers");
            let (status, body) =
                served.request(&method.to_uppercase(), &concrete, (method == "post").then(|| json!({})));
            assert_eq!(status, 200, "{method} {path}: {body}");
        }
    }
    let (status, _) = served.request("GET", "/v1/nothing", None);
    assert_eq!(status, 404);
    let statuses = document["x-error-statuses"].as_object().expect("x-error-statuses");
    for kind in omni_cpi::ErrorKind::ALL {
        assert_eq!(
            statuses.get(kind.as_str()).and_then(Value::as_u64),
            Some(u64::from(omni_cpi::serve::status_of(kind).as_u16())),
            "{kind}"
        );
    }
    assert_eq!(statuses.len(), omni_cpi::ErrorKind::ALL.len());
}

/// The CLI as a client: the same commands against the server, and the conformance kit certifies
/// the process CPI as served.
#[test]
fn the_cli_calls_a_server_and_the_kit_certifies_a_served_cpi() {
    let served = Served::start("", false, "5s");
    let remote = format!("unix:{}", served.socket.display());
    let omni = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_omni-cpi")).arg("--remote").arg(&remote).args(args).output().expect("runs")
    };
    let out = omni(&["-o", "json", "call", "process", "list_containers"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((outcome["cpi"].as_str(), outcome["action"].as_str()), (Some("process_cpi"), Some("list_containers")));

    let out =
        omni(&["call", "process", "create_container", "name=x", "--dry-run", "image=none", "command:=[\"true\"]"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing was run"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = omni(&["call", "process", "create_container", "image=none", "command:=[\"true\"]"]);
    assert_eq!(out.status.code(), Some(2), "a call missing a parameter is a usage error, as locally");
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[invalid_argument]"));
    let out = omni(&["info", "nope"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("serves no CPI `nope`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = omni(&["list"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("process "), "{}", String::from_utf8_lossy(&out.stdout));
    let out = omni(&["validate", "cpis/process.json"]);
    assert_eq!(out.status.code(), Some(2), "validate runs locally only");

    let out = omni(&["conformance", "process"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the kit over the server:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("C-CREATE-01"));
    // Every call of the kit went through the server, as its audit log shows.
    assert!(served.audit().lines().count() > 20);
}

/// A server takes components' instances from a pool, which reserves address space up front; a
/// host limited by `ulimit -v` still serves them, allocating per call, and its log says so.
#[test]
fn a_server_without_address_space_for_the_instance_pool_still_serves_components() {
    let Some(_) = support::plugin_wasm("omni_cpi_bench") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("s.sock");
    let policy = support::repo_root().join("plugins/bench/policy.toml");
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -v 8000000; exec \"$@\"", "sh", env!("CARGO_BIN_EXE_omni-cpi")])
        .args(["--policy", policy.to_str().expect("utf-8"), "serve", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .env("RUST_LOG", "warn")
        .env("OMNI_CPI_CACHE_DIR", dir.path().join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut ready).expect("ready");
    let out = Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(&socket)
        .args(["-X", "POST", "-d", r#"{"vm": "x"}"#, "http://omni/v1/cpis/bench/actions/has_vm"])
        .output()
        .expect("curl");
    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr);
    assert!(ready.starts_with("omni-cpi serve: ready"), "{ready}{stderr}");
    let outcome: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(outcome["result"], json!(false), "{outcome}");
    assert!(stderr.contains("no instance pool"), "{stderr}");
}

/// A client that connects and sends nothing is disconnected once the header timeout passes, so
/// idle connections cannot pile up; the server keeps answering others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let served = Served::start("", false, "5s");
    let mut idle = tokio::net::UnixStream::connect(&served.socket).await.expect("connect");
    assert_eq!(raw(&served.socket, "GET", "/v1/health", "").await.0, 200, "others are served meanwhile");
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), idle.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the idle connection was still open after 20 s");
    assert!(started.elapsed() >= Duration::from_secs(5), "closed after {:?}, before any timeout", started.elapsed());
}

/// `[serve]` limits: a body over `max_body_bytes` is refused unread (413), and with
/// `max_in_flight = 1` two calls run one after the other, the second waiting for a slot rather
/// than failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_size_and_calls_in_flight_are_bounded() {
    let (_made_in, served) = serve_racy_spec();
    let policy = served.dir.path().join("omni-cpi.toml");
    let text = std::fs::read_to_string(&policy).expect("policy");
    std::fs::write(&policy, text.replace("[serve]\n", "[serve]\nmax_body_bytes = 1024\nmax_in_flight = 1\n"))
        .expect("limits");
    served.signal(libc::SIGHUP);
    served.wait_for_output("reloaded", Duration::from_secs(20));

    let big = json!({ "name": "x".repeat(4096) }).to_string();
    assert_eq!(raw(&served.socket, "POST", "/v1/cpis/racy/actions/create_container", &big).await.0, 413);

    let path = "/v1/cpis/racy/actions/create_container";
    let started = Instant::now();
    let (one, two) = (json!({"name": "one"}).to_string(), json!({"name": "two"}).to_string());
    let (a, b) = tokio::join!(raw(&served.socket, "POST", path, &one), raw(&served.socket, "POST", path, &two));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    // Each create takes 300 ms; on distinct names only the global limit orders them.
    assert!(started.elapsed() >= Duration::from_millis(600), "ran together: {:?}", started.elapsed());
}

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// Writes `ca.pem`, `cert.pem` and `key.pem` (0600) into `dir`, replacing what is there.
    fn issue(dir: &Path, ca_name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("omni-cpi test CA {ca_name}"));
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params")
            .signed_by(&key, &*ca)
            .expect("cert");
        use std::os::unix::fs::PermissionsExt;
        let pki = Pki { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
        std::fs::write(&pki.ca, ca.pem()).expect("ca");
        std::fs::write(&pki.cert, cert.pem()).expect("cert");
        std::fs::write(&pki.key, key.serialize_pem()).expect("key");
        std::fs::set_permissions(&pki.key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        pki
    }

    /// A copy of the CA certificate under `name`, so it outlives the next `issue`.
    fn keep_ca(&self, name: &str) -> PathBuf {
        let kept = self.ca.with_file_name(name);
        std::fs::copy(&self.ca, &kept).expect("copy");
        kept
    }
}

/// `curl https://…` with `--cacert ca` (if any) and the token (if any): (curl's exit code, status).
fn curl_https(url: &str, ca: Option<&Path>, token: Option<&str>) -> (i32, String) {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"]);
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = command.arg(url).output().expect("curl runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string())
}

/// A `tls:` listener may take a non-loopback address: TLS with the operator's certificate, and a
/// bearer token on every request. Clients that do not trust the certificate, or speak clear text
/// to it, get nothing; the CLI as a client verifies the server against `--remote-ca`.
#[test]
fn tls_serves_any_address_with_the_operators_certificate_and_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::issue(dir.path(), "one");
    let tokens = write_tokens(dir.path(), &[("agent", TOKEN)]);
    let port = free_port();
    let network: Vec<String> = vec![
        "--listen".into(),
        // Every address of the machine; the test's own traffic stays on 127.0.0.1.
        format!("tls:0.0.0.0:{port}"),
        "--token-file".into(),
        tokens.display().to_string(),
        "--tls-cert".into(),
        pki.cert.display().to_string(),
        "--tls-key".into(),
        pki.key.display().to_string(),
    ];
    let served = Served::start_in(dir, "", "", &network, "5s", None);
    let url = format!("https://127.0.0.1:{port}/v1/cpis");

    assert_eq!(curl_https(&url, Some(&pki.ca), Some(TOKEN)), (0, "200".into()));
    assert_eq!(curl_https(&url, Some(&pki.ca), None), (0, "401".into()));
    // curl's 60: the certificate does not verify against the system's roots.
    assert_eq!(curl_https(&url, None, Some(TOKEN)).0, 60);
    let (code, status) = curl_https(&format!("http://127.0.0.1:{port}/v1/cpis"), None, Some(TOKEN));
    assert!(code != 0 && status == "000", "clear text to a TLS listener got an answer: {code} {status}");

    let cli = |ca: &Path| {
        Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .args(["--remote", &format!("tls:localhost:{port}"), "--remote-ca"])
            .arg(ca)
            .args(["-o", "json", "call", "process", "list_containers"])
            .env("OMNI_CPI_TOKEN", TOKEN)
            .output()
            .expect("omni-cpi runs")
    };
    let out = cli(&pki.ca);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(outcome["result"].is_object() || outcome["result"].is_array(), "{outcome}");
    assert!(served.audit().contains("\"caller\":\"token:agent\""), "{}", served.audit());

    let stranger = Pki::issue(&tempfile::tempdir().expect("temp dir").keep(), "stranger");
    let out = cli(&stranger.ca);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("certificate"),
        "a server the CA did not sign was trusted: {stderr}"
    );
}

/// One request on a kept-alive connection: its status.
async fn keep_alive_request(stream: &mut tokio::net::TcpStream, path: &str, token: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: omni\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.expect("read");
        assert!(read > 0, "the server closed the connection");
        buffer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                return head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
            }
        }
    }
}

/// SIGHUP reads the tokens and the certificate again with the policy: a renewed certificate is
/// served to new connections, a removed token is refused even on a connection opened before, and
/// a certificate that does not load keeps the old set. A client that connects and never
/// handshakes holds up no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_renews_the_certificate_and_revokes_tokens() {
    const OLD_TOKEN: &str = "fedcba9876543210fedcba9876543210-retired";
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Pki::issue(dir.path(), "first");
    let first_ca = first.keep_ca("first-ca.pem");
    let tokens = write_tokens(dir.path(), &[("agent", TOKEN), ("retired", OLD_TOKEN)]);
    let (tls_port, tcp_port) = (free_port(), free_port());
    let network: Vec<String> = vec![
        "--listen".into(),
        format!("tls:127.0.0.1:{tls_port}"),
        "--listen".into(),
        format!("tcp:127.0.0.1:{tcp_port}"),
        "--token-file".into(),
        tokens.display().to_string(),
        "--tls-cert".into(),
        first.cert.display().to_string(),
        "--tls-key".into(),
        first.key.display().to_string(),
    ];
    let served = Served::start_in(dir, "", "", &network, "5s", None);
    let url = format!("https://127.0.0.1:{tls_port}/v1/health");

    // Connected, silent: no handshake ever comes. Others are served meanwhile.
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", tls_port)).await.expect("connect");
    let check = url.clone();
    let answered = tokio::task::spawn_blocking(move || curl_https(&check, Some(&first_ca), Some(TOKEN)));
    assert_eq!(answered.await.expect("curl"), (0, "200".into()));

    let mut kept_alive = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port)).await.expect("connect");
    assert_eq!(keep_alive_request(&mut kept_alive, "/v1/health", OLD_TOKEN).await, 200);

    let dir = served.dir.path();
    write_tokens(dir, &[("agent", TOKEN)]);
    let second = Pki::issue(dir, "second");
    served.signal(libc::SIGHUP);
    served.wait_for_output("reloaded", Duration::from_secs(20));

    assert_eq!(keep_alive_request(&mut kept_alive, "/v1/health", OLD_TOKEN).await, 401, "a revoked token still works");
    assert_eq!(keep_alive_request(&mut kept_alive, "/v1/health", TOKEN).await, 200);
    let first_ca = dir.join("first-ca.pem");
    let (url2, second_ca) = (url.clone(), second.ca.clone());
    let (renewed, old) = tokio::task::spawn_blocking(move || {
        (curl_https(&url2, Some(&second_ca), Some(TOKEN)), curl_https(&url2, Some(&first_ca), Some(TOKEN)))
    })
    .await
    .expect("curl");
    assert_eq!(renewed, (0, "200".into()), "the renewed certificate is not served");
    assert_eq!(old.0, 60, "the replaced certificate is still served");

    // A broken certificate: the reload is refused and the renewed certificate still serves.
    std::fs::write(&second.cert, "not a certificate").expect("break");
    served.signal(libc::SIGHUP);
    let refused = served.wait_for_output("reload refused", Duration::from_secs(20));
    assert!(refused.contains("cert.pem"), "{refused}");
    std::fs::write(&second.cert, "").expect("empty");
    let (url3, second_ca) = (url.clone(), second.ca.clone());
    let still =
        tokio::task::spawn_blocking(move || curl_https(&url3, Some(&second_ca), Some(TOKEN))).await.expect("curl");
    assert_eq!(still, (0, "200".into()));
}

/// Each listener has its own bound on open connections: clients that connect to the network
/// listener and send nothing fill its slots (a new one is closed at once), while local callers on
/// the unix socket are still served. A freed slot takes a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_network_connections_does_not_lock_out_local_callers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = write_tokens(dir.path(), &[("agent", TOKEN)]);
    let port = free_port();
    let network: Vec<String> =
        vec!["--listen".into(), format!("tcp:127.0.0.1:{port}"), "--token-file".into(), tokens.display().to_string()];
    let served = Served::start_in(dir, "", "max_connections = 4\n", &network, "5s", None);

    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fifth = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let _ = fifth.write_all(b"GET /v1/health HTTP/1.1\r\nHost: omni\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), fifth.read_to_end(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a connection past the limit was served: {read:?} {answer:?}");

    assert_eq!(raw(&served.socket, "GET", "/v1/health", "").await.0, 200, "the unix socket is locked out");

    drop(silent);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    assert_eq!(keep_alive_request(&mut again, "/v1/health", TOKEN).await, 200, "a freed slot is not reused");
}
