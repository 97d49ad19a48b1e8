//! `request` actions against a real HTTP server on 127.0.0.1 that this test starts: nothing is
//! sent without a network grant, every value arrives escaped for where it landed, statuses become
//! typed errors, redirects are not followed. Also the OmniCloud corpus's `Endpoint` actions
//! through `--compat omnicloud`.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omni_cpi::policy::NetworkGrant;
use omni_cpi::policy::Policy;
use omni_cpi::{CallOptions, Cpi, ErrorKind, Loader, Params};
use serde_json::{json, Value};

/// One request as the server read it off the socket.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the server answers: status, extra headers, body.
type Reply = (u16, Vec<(String, String)>, String);

/// A minimal HTTP/1.1 server on 127.0.0.1 (a free port), answering each request with `route`.
/// Its thread ends with the test process; it only ever listens on loopback.
struct TestServer {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl TestServer {
    fn start(route: impl Fn(&Received) -> Reply + Send + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(request) = read_request(&stream) {
                    let reply = route(&request);
                    log.lock().expect("log").push(request);
                    write_reply(stream, reply);
                }
            }
        });
        TestServer { port, received }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received { method, target, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn write_reply(mut stream: TcpStream, (status, headers, body): Reply) {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

const SPEC: &str = r#"{
  "name": "http_director",
  "type": "director",
  "default_settings": {"api_url": "http://127.0.0.1:1/v1"},
  "actions": {
    "create_vm": {
      "request": {
        "method": "post",
        "url": "{api_url}/projects/{project}/vms?zone={zone}&dry={dry_run}",
        "headers": {"Authorization": "Bearer {token}", "X-Label": "{label}"},
        "body": {"name": "{name}", "description": "vm {name} of {project}", "disks": "{disks}", "cpus": "{cpus}"}
      },
      "params": ["project", "name", "token"],
      "optional_params": ["api_url", "zone", "dry_run", "label", {"name": "disks", "type": "list"}, "cpus"],
      "output": "json",
      "errors": [{"kind": "in_use", "status": 409, "body": "still attached"}]
    },
    "delete_vm": {
      "request": {"method": "DELETE", "url": "{api_url}/projects/{project}/vms/{name}"},
      "params": ["project", "name"],
      "optional_params": ["api_url"],
      "success_when": [{"status": 404}]
    },
    "has_vm": {
      "request": {"url": "{api_url}/projects/{project}/vms/{name}"},
      "params": ["project", "name"],
      "optional_params": ["api_url"],
      "timeout": "1s"
    }
  }
}"#;

fn write_spec(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("http_director.json");
    std::fs::write(&path, SPEC).expect("write spec");
    path
}

async fn load(spec: &Path, policy: Policy, allowed: Vec<NetworkGrant>) -> Cpi {
    let mut loader = Loader::new(policy, None).expect("loader");
    loader.allowed_hosts = allowed;
    loader.load(spec).await.unwrap_or_else(|e| panic!("spec loads: {e}"))
}

fn params(value: Value) -> Params {
    match value {
        Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

fn grant(server: &TestServer) -> Vec<NetworkGrant> {
    vec![NetworkGrant::parse(&format!("127.0.0.1:{}", server.port)).expect("grant")]
}

#[tokio::test]
async fn nothing_is_sent_without_a_network_grant() {
    let server = TestServer::start(|_| (200, vec![], "{}".into()));
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = write_spec(dir.path());
    let call = json!({"api_url": server.base(), "project": "p", "name": "vm1", "token": "t"});

    let ungranted = load(&spec, Policy::default(), vec![]).await;
    let err = ungranted.call("create_vm", &params(call.clone()), &CallOptions::default()).await.expect_err("denied");
    assert_eq!(err.kind, ErrorKind::Denied, "{err}");
    assert!(
        err.message.contains("--allow-host 127.0.0.1") && err.message.contains("[[plugins.http_director.network]]"),
        "the error says how to grant it: {}",
        err.message
    );

    // A grant for another port of the same host does not cover this one.
    let other_port = vec![NetworkGrant::parse(&format!("127.0.0.1:{}", server.port + 1)).expect("grant")];
    let err = load(&spec, Policy::default(), other_port)
        .await
        .call("create_vm", &params(call), &CallOptions::default())
        .await
        .expect_err("denied");
    assert_eq!(err.kind, ErrorKind::Denied);
    assert!(server.received().is_empty(), "the server saw no request: {:?}", server.received());
}

#[tokio::test]
async fn granted_requests_arrive_with_every_value_escaped_for_its_place() {
    let server = TestServer::start(|_| (201, vec![], r#"{"id": 7}"#.into()));
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = write_spec(dir.path());
    let cpi = load(&spec, Policy::default(), grant(&server)).await;
    let hostile = "a\",\"admin\":true,\"x\":\"/../b?c=d&e#f";
    let outcome = cpi
        .call(
            "create_vm",
            &params(json!({
                "api_url": server.base(),
                "project": "team/../other",
                "name": hostile,
                "token": "secret-token",
                "zone": "eu&zone=us",
                "disks": ["d1", "d2"],
                "cpus": 2
            })),
            &CallOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("create_vm: {e}"));
    assert_eq!(outcome.http_status, Some(201));
    assert_eq!(outcome.result, Some(json!({"id": 7})), "the response body parsed as the spec's output says");

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.target, "/projects/team%2F..%2Fother/vms?zone=eu%26zone%3Dus",
        "path and query encoded; absent dry_run dropped"
    );
    assert_eq!(request.header("Authorization"), Some("Bearer secret-token"));
    assert_eq!(request.header("X-Label"), None, "an absent optional drops its header");
    assert_eq!(request.header("Content-Type"), Some("application/json"));
    let body: Value = serde_json::from_str(&request.body).expect("the body is valid JSON");
    assert_eq!(
        body,
        json!({"name": hostile, "description": format!("vm {hostile} of team/../other"), "disks": ["d1", "d2"], "cpus": 2}),
        "values stayed values: no `admin` member appeared"
    );
}

#[tokio::test]
async fn statuses_become_typed_errors_and_rules_come_first() {
    let server = TestServer::start(|r| match (r.method.as_str(), r.target.as_str()) {
        ("POST", t) if t.ends_with("/vms") && r.body.contains("busy") => (409, vec![], "disk still attached".into()),
        ("POST", _) => (409, vec![], "name taken".into()),
        ("DELETE", t) if t.ends_with("/gone") => (404, vec![], "no such vm".into()),
        ("DELETE", _) => (500, vec![], "backend exploded\n".into()),
        ("GET", t) if t.ends_with("/slow") => {
            std::thread::sleep(Duration::from_secs(3));
            (200, vec![], String::new())
        }
        ("GET", _) => (404, vec![], "{\"error\": \"not found\"}".into()),
        _ => (400, vec![], String::new()),
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let cpi = load(&write_spec(dir.path()), Policy::default(), grant(&server)).await;
    let base = server.base();
    let call = |action: &'static str, extra: Value| {
        let mut p = params(json!({"api_url": base, "project": "p", "token": "t"}));
        p.extend(params(extra));
        let cpi = &cpi;
        async move { cpi.call(action, &p, &CallOptions::default()).await }
    };
    let kind = |r: Result<omni_cpi::Outcome, omni_cpi::CpiError>| r.map(|o| o.http_status).map_err(|e| e.kind);

    assert_eq!(kind(call("create_vm", json!({"name": "busy"})).await), Err(ErrorKind::InUse), "the spec's rule");
    assert_eq!(kind(call("create_vm", json!({"name": "x"})).await), Err(ErrorKind::AlreadyExists), "409 on POST");
    assert_eq!(kind(call("delete_vm", json!({"name": "gone"})).await), Ok(Some(404)), "success_when: deleting twice");
    assert_eq!(kind(call("has_vm", json!({"name": "x"})).await), Err(ErrorKind::NotFound));
    assert_eq!(kind(call("has_vm", json!({"name": "slow"})).await), Err(ErrorKind::Timeout), "the action's 1s timeout");
    let err = call("delete_vm", json!({"name": "x"})).await.expect_err("500");
    assert_eq!(err.kind, ErrorKind::Failed);
    assert!(err.message.contains("500") && err.message.contains("backend exploded"), "{}", err.message);
    let step = err.failed_step.expect("the failed request is reported");
    assert_eq!(step.http_status, Some(500));
    assert_eq!(step.argv[0], "DELETE");
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let elsewhere = TestServer::start(|_| (200, vec![], "{}".into()));
    let target = format!("{}/stolen", elsewhere.base());
    let server = TestServer::start(move |_| (302, vec![("Location".into(), target.clone())], String::new()));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut both = grant(&server);
    both.extend(grant(&elsewhere));
    let cpi = load(&write_spec(dir.path()), Policy::default(), both).await;
    let err = cpi
        .call(
            "has_vm",
            &params(json!({"api_url": server.base(), "project": "p", "name": "x"})),
            &CallOptions::default(),
        )
        .await
        .expect_err("a 302 is not success");
    assert_eq!(err.failed_step.and_then(|s| s.http_status), Some(302));
    assert!(elsewhere.received().is_empty(), "the redirect was not followed");
}

fn omni(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
        .args(args)
        .current_dir(support::repo_root())
        .env_remove("OMNI_CPI_POLICY")
        .output()
        .expect("omni-cpi runs")
}

#[test]
fn the_cli_shows_the_request_and_sends_it_only_with_a_grant_leaving_tokens_out_of_the_audit_log() {
    let server = TestServer::start(|_| (200, vec![], "{\"id\": 1}".into()));
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = write_spec(dir.path());
    let spec = spec.to_str().expect("utf-8");
    let api = format!("api_url={}", server.base());
    let args = ["call", spec, "create_vm", &api, "project=p", "name=vm 1", "token=secret-token", "cpus:=2"];

    let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
    let out = omni(&dry);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("POST {}/projects/p/vms", server.base())), "{text}");
    assert!(text.contains("Authorization: Bearer secret-token"), "{text}");
    assert!(text.contains(r#"{"name":"vm 1","description":"vm vm 1 of p","cpus":2}"#), "{text}");

    let out = omni(&args);
    assert_eq!(out.status.code(), Some(1), "denied without a grant");
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[denied]"));
    assert!(server.received().is_empty());

    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "audit_log = \"audit.jsonl\"\n[plugins.api]\nsource = {:?}\n[[plugins.api.network]]\nhost = \"127.0.0.1\"\nport = {}\n",
            spec,
            server.port
        ),
    )
    .expect("policy");
    let mut granted = vec!["--policy", policy.to_str().expect("utf-8"), "-o", "json"];
    granted.extend(args);
    let out = omni(&granted);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome: Value = serde_json::from_slice(&out.stdout).expect("JSON outcome");
    assert_eq!(outcome["http_status"], 200);
    assert_eq!(outcome["result"], json!({"id": 1}));
    assert_eq!(server.received().len(), 1);

    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    let entries: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["program"], "http");
    assert_eq!(entries[0]["argv"], json!(["POST", format!("{}/projects/p/vms", server.base())]));
    assert_eq!(entries[0]["http_status"], 200);
    assert!(!audit.contains("secret-token"), "headers stay out of the audit log");
}

/// A grant of a *name* reaches the public addresses it resolves to, never loopback: `localhost`
/// granted by name is refused at its address and audited; granting the address works.
#[test]
fn a_granted_name_that_resolves_to_loopback_is_refused() {
    let server = TestServer::start(|_| (200, vec![], "{\"id\": 1}".into()));
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = write_spec(dir.path());
    let spec = spec.to_str().expect("utf-8");
    let api = format!("api_url=http://localhost:{}", server.port);
    let args = ["call", spec, "create_vm", &api, "project=p", "name=vm1", "token=t", "cpus:=2"];
    let run = |host: &str| {
        let policy = dir.path().join(format!("policy-{host}.toml"));
        std::fs::write(
            &policy,
            format!(
                "audit_log = \"audit.jsonl\"\n[plugins.api]\nsource = {spec:?}\n[[plugins.api.network]]\nhost = \"{host}\"\nport = {}\n",
                server.port
            ),
        )
        .expect("policy");
        let mut granted = vec!["--policy", policy.to_str().expect("utf-8")];
        granted.extend(args);
        omni(&granted)
    };
    let out = run("localhost");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[denied]") && stderr.contains("grants the address itself"), "{stderr}");
    assert!(server.received().is_empty(), "a name grant reached a loopback address");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    assert!(audit.contains("\"decision\":\"denied\"") && audit.contains("localhost resolves to"), "{audit}");
}

#[test]
fn policy_network_grants_name_bare_hosts() {
    let bad = Policy::parse(Path::new("p.toml"), "[[plugins.x.network]]\nhost = \"127.0.0.1:80\"\n", "/bin");
    assert!(bad.is_err(), "the port goes in `port`");
    let bad = Policy::parse(Path::new("p.toml"), "[[plugins.x.network]]\nhost = \"http://h/\"\n", "/bin");
    assert!(bad.is_err());
    let good = Policy::parse(
        Path::new("p.toml"),
        "[plugins.x]\nsource = \"x.json\"\n[[plugins.x.network]]\nhost = \"API.example.com\"\nport = 443\n",
        "/bin",
    )
    .expect("valid");
    assert_eq!(good.plugins["x"].network, vec![NetworkGrant { host: "api.example.com".into(), port: Some(443) }]);
}

/// OmniCloud's own TrueNAS CPI pasted values into its JSON bodies and URLs raw; translated, the
/// same action sends the hostile value as data.
#[tokio::test]
async fn omnicloud_endpoint_actions_run_with_values_escaped() {
    let corpus = support::repo_root().parent().map(|p| p.join("shared/compat/omnicloud/v2/cpi-truenas.json"));
    let Some(file) = corpus.filter(|f| f.is_file()) else {
        assert!(!support::runtimes_required(), "the OmniCloud corpus must be beside the clone");
        eprintln!("SKIPPED: the OmniCloud corpus is not beside the clone");
        return;
    };
    let server = TestServer::start(|_| (200, vec![], "{\"id\": \"tank/data\"}".into()));
    let mut loader = Loader::new(Policy::default(), None).expect("loader");
    loader.compat = Some(omni_cpi::json::spec::compat::Compat::OmniCloud);
    loader.allowed_hosts = grant(&server);
    let cpi = loader.load(&file).await.unwrap_or_else(|e| panic!("loads: {e}"));
    let hostile = "pool\",\"topology\":{},\"x\":\"";
    let outcome = cpi
        .call(
            "create_dataset",
            &params(json!({"api_url": format!("{}/api/v2.0", server.base()), "api_key": "k", "name": hostile, "size_gb": 5, "comments": "c"})),
            &CallOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("create_dataset: {e}"));
    let received = server.received();
    let body: Value = serde_json::from_str(&received[0].body).expect("valid JSON");
    assert_eq!(received[0].target, "/api/v2.0/pool/dataset");
    assert!(body.to_string().contains(&serde_json::to_string(hostile).expect("json")), "{body}");
    assert_eq!(body.get("x"), None, "the value did not add members");
    assert_eq!(body["volsize"], 5, "a placeholder outside quotes in the original is the value's JSON");
    assert_eq!(outcome.result, Some(json!({"id": "tank/data"})), "parse_rules applied to the response body");

    let err = cpi
        .call(
            "delete_dataset",
            &params(json!({"api_url": server.base(), "api_key": "k", "dataset_id": ".."})),
            &CallOptions::default(),
        )
        .await
        .expect_err("`..` is refused in a path");
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert_eq!(err.param.as_deref(), Some("dataset_id"));
}
