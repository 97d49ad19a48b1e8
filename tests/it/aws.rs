//! AWS EC2 for real: `cpis/aws-ec2.json` drives the `aws` CLI against the EC2 emulator of moto
//! (`moto_server`), both from the virtualenv `cargo xtask test` creates at /var/lib/omni-cpi/venv
//! (`pip install 'moto[server,ec2]' awscli`). Every test starts its own moto on a free loopback
//! port and stops it by PID. The CPI gets the venv first on its PATH and dummy credentials through
//! the host-environment closure of `JsonCpi::with_host_env`; this process's environment is never
//! changed. moto runs with MOTO_ENABLE_AMI_VALIDATION=true so that run-instances refuses unknown
//! AMIs as EC2 does (moto accepts any image id otherwise).

use crate::support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omni_cpi::conformance::{self, catalogue, Options, Verdict};
use omni_cpi::json::spec::{self, CpiKind};
use omni_cpi::{CallOptions, Cpi, CpiError, ErrorKind, JsonCpi, Outcome, Params};
use serde_json::{json, Value};

const VENV_BIN: &str = "/var/lib/omni-cpi/venv/bin";
/// One of the default AMIs moto serves in every region (Amazon Linux, x86_64, HVM).
const AMI: &str = "ami-760aaa0f";
/// Dummy credentials: the CPI must get them from the environment and never put them in an argv.
const KEY_ID: &str = "AKIAOMNICPITEST00001";
const SECRET: &str = "omni-cpi-test-secret-do-not-print";

fn venv(program: &str) -> String {
    format!("{VENV_BIN}/{program}")
}

/// moto_server and the aws CLI from the venv; under CI or `cargo xtask test` their absence fails.
fn available() -> bool {
    support::runtime_available("moto's EC2 emulator (venv moto_server)", &[&venv("moto_server"), "--help"])
        && support::runtime_available("the aws CLI (venv)", &[&venv("aws"), "--version"])
}

/// `moto_server -H 127.0.0.1 -p PORT`, started from the venv and killed by PID on drop.
struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    fn start() -> Moto {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("moto.log");
        let port = free_port();
        let out = std::fs::File::create(&log).expect("moto log");
        let err = out.try_clone().expect("moto log");
        let child = Command::new(venv("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_clear()
            .env("PATH", format!("{VENV_BIN}:/usr/bin:/bin"))
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("moto_server starts");
        let mut moto = Moto { child, port, log, _dir: dir };
        moto.wait_ready();
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Until moto's own API answers HTTP 200 on the port.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited ({status}) before answering:\n{}", self.log_text());
            }
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reply = String::new();
                let answered = stream
                    .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    .and_then(|_| stream.read_to_string(&mut reply))
                    .is_ok();
                if answered && reply.starts_with("HTTP/1.") && reply.split(' ').nth(1) == Some("200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not answer on 127.0.0.1:{} within 30 s:\n{}", self.port, self.log_text());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        support::stop_child(&mut self.child);
    }
}

/// A port nothing listens on right now (the kernel's choice for port 0).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("a free port").port()
}

/// The environment the CPI's processes may inherit from: the venv first on PATH, the dummy
/// credentials, config files that do not exist, no instance metadata. Nothing else of the host.
fn host_env(name: &str) -> Option<String> {
    match name {
        "PATH" => Some(format!(
            "{VENV_BIN}:{}",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string())
        )),
        "AWS_ACCESS_KEY_ID" => Some(KEY_ID.to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET.to_string()),
        "AWS_CONFIG_FILE" | "AWS_SHARED_CREDENTIALS_FILE" => Some("/nonexistent/omni-cpi-aws-test".to_string()),
        "AWS_EC2_METADATA_DISABLED" => Some("true".to_string()),
        _ => None,
    }
}

fn load_spec(endpoint: &str, region: &str) -> spec::Spec {
    let mut loaded =
        spec::load_file(&support::cpi_path("aws-ec2")).unwrap_or_else(|e| panic!("aws-ec2.json loads:\n{e}"));
    loaded.default_settings.insert("endpoint_url".into(), json!(endpoint));
    loaded.default_settings.insert("region".into(), json!(region));
    loaded.default_settings.insert("availability_zone".into(), json!(format!("{region}a")));
    loaded
}

fn aws_cpi(endpoint: &str, region: &str) -> Cpi {
    Cpi::from(JsonCpi::unrestricted(load_spec(endpoint, region)).with_host_env(host_env))
}

fn object(value: Value) -> Params {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("object literal"),
    }
}

async fn call(cpi: &Cpi, action: &str, params: Value) -> Result<Outcome, CpiError> {
    cpi.call(action, &object(params), &CallOptions::default()).await
}

async fn ok(cpi: &Cpi, action: &str, params: Value) -> Option<Value> {
    match call(cpi, action, params.clone()).await {
        Ok(outcome) => outcome.result,
        Err(e) => panic!("{action} {params} failed: error[{}]: {}", e.kind, e.message),
    }
}

async fn fails(cpi: &Cpi, action: &str, params: Value, kind: ErrorKind) -> CpiError {
    match call(cpi, action, params.clone()).await {
        Ok(outcome) => panic!("{action} {params} succeeded ({:?}); expected error[{kind}]", outcome.result),
        Err(e) => {
            assert_eq!(e.kind, kind, "{action} {params}: {}", e.message);
            e
        }
    }
}

fn strings(value: Option<Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        other => panic!("expected a JSON array of names, got {other:?}"),
    }
}

/// The Name tags of this account's snapshots, straight from the CLI (the spec has no list action).
fn snapshot_names(endpoint: &str, region: &str) -> Vec<String> {
    let output = Command::new(venv("aws"))
        .args(["--endpoint-url", endpoint, "--region", region, "ec2", "describe-snapshots", "--owner-ids", "self"])
        .args(["--query", "Snapshots[].Tags[?Key=='Name'] | [].Value", "--output", "json"])
        .env_clear()
        .env("PATH", format!("{VENV_BIN}:/usr/bin:/bin"))
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .stdin(Stdio::null())
        .output()
        .expect("aws runs");
    assert!(output.status.success(), "describe-snapshots: {}", String::from_utf8_lossy(&output.stderr));
    strings(Some(serde_json::from_slice(&output.stdout).expect("JSON from describe-snapshots")))
}

/// Every director check of the kit passes against moto; none is skipped; nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_ec2_cpi_passes_every_director_check_against_moto() {
    if !available() {
        return;
    }
    let moto = Moto::start();
    let cpi = aws_cpi(&moto.endpoint(), "us-east-1");
    let report = every_director_check_passes(&cpi, &moto, "aws-ec2").await;

    // Nothing of the run is left: VMs (D-LEAK-01 checked them too), volumes, snapshots.
    let vms = strings(ok(&cpi, "list_vms", json!({})).await);
    let disks = strings(ok(&cpi, "list_disks", json!({})).await);
    let snapshots = snapshot_names(&moto.endpoint(), "us-east-1");
    for (what, names) in [("VM", vms), ("disk", disks), ("snapshot", snapshots)] {
        let left: Vec<&String> = names.iter().filter(|n| n.starts_with(&report.prefix)).collect();
        assert!(left.is_empty(), "the kit left {what}s behind: {left:?}");
    }
}

/// Runs the kit (two rounds, two at once) and fails unless every director check ran and passed.
async fn every_director_check_passes(cpi: &Cpi, moto: &Moto, what: &str) -> conformance::Report {
    let options = Options { repeat: 2, parallel: 2, ..Options::default() };
    let mut progress = |r: &conformance::CheckResult| eprintln!("{}", conformance::report::progress_line(r));
    let started = Instant::now();
    let report = conformance::run(cpi, &options, &mut progress).await;
    eprintln!("{what} against moto: the kit took {:.1} s", started.elapsed().as_secs_f64());
    let director: Vec<&str> = catalogue().iter().filter(|c| c.kind == CpiKind::Director).map(|c| c.id).collect();
    assert!(director.len() >= 8, "the kit has the director checks");
    for id in &director {
        let result = report.results.iter().find(|r| r.id == *id).unwrap_or_else(|| panic!("{id} did not run"));
        match &result.verdict {
            Verdict::Passed => {}
            Verdict::Failed(f) => panic!(
                "{what}: {id} failed: expected {}, got {}\ncall: {}\nmoto log:\n{}",
                f.expected,
                f.got,
                serde_json::to_string_pretty(&f.call).unwrap_or_default(),
                moto.log_text()
            ),
            Verdict::Skipped { reason } => panic!("{what}: {id} was skipped ({reason}); EC2 supports every check"),
        }
    }
    report
}

/// A whole lifecycle by hand, with the typed error of every wrong move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_and_typed_errors_against_moto() {
    if !available() {
        return;
    }
    let mut moto = Moto::start();
    let cpi = aws_cpi(&moto.endpoint(), "us-east-1");
    let vm = support::unique_name("vm");
    let other = support::unique_name("vm");
    let disk = support::unique_name("d");
    let snap = support::unique_name("s");

    // Nothing exists yet.
    assert_eq!(ok(&cpi, "has_vm", json!({ "vm": vm })).await, Some(json!(false)));
    for action in ["inspect_vm", "delete_vm", "start_vm", "stop_vm", "reboot_vm"] {
        fails(&cpi, action, json!({ "vm": vm }), ErrorKind::NotFound).await;
    }
    fails(&cpi, "list_disks", json!({ "vm": vm }), ErrorKind::NotFound).await;
    fails(&cpi, "delete_disk", json!({ "disk": disk }), ErrorKind::NotFound).await;
    fails(&cpi, "delete_snapshot", json!({ "snapshot": snap }), ErrorKind::NotFound).await;
    fails(&cpi, "snapshot_disk", json!({"disk": disk, "snapshot": snap}), ErrorKind::NotFound).await;

    // Unknown AMIs launch nothing: malformed is invalid_argument, well-formed but absent not_found.
    fails(&cpi, "create_vm", json!({"name": vm, "image": "omni-no-such-image"}), ErrorKind::InvalidArgument).await;
    fails(&cpi, "create_vm", json!({"name": vm, "image": "ami-12345678"}), ErrorKind::NotFound).await;
    assert!(!strings(ok(&cpi, "list_vms", json!({})).await).contains(&vm), "a failed create leaves no VM");
    // A bad metadata key is refused before anything is launched.
    fails(&cpi, "create_vm", json!({"name": vm, "image": AMI, "metadata": {"Name": "x"}}), ErrorKind::InvalidArgument)
        .await;
    assert_eq!(ok(&cpi, "has_vm", json!({ "vm": vm })).await, Some(json!(false)));

    // Create with metadata that JSON and the CLI's shorthand would both mangle if it were spliced.
    let tricky = r#"a "quoted", back\slash, Key=x,Value=y ]} $(id)"#;
    let created = ok(&cpi, "create_vm", json!({"name": vm, "image": AMI, "metadata": {"role": tricky}})).await;
    let created = created.expect("create_vm returns the VM");
    assert_eq!((created["id"].as_str(), created["state"].as_str()), (Some(vm.as_str()), Some("running")));
    assert_eq!(created["image"], json!(AMI));
    assert_eq!(created["metadata"], json!([{"Key": "role", "Value": tricky}]));
    fails(&cpi, "create_vm", json!({"name": vm, "image": AMI}), ErrorKind::AlreadyExists).await;
    assert_eq!(ok(&cpi, "has_vm", json!({ "vm": vm })).await, Some(json!(true)));
    assert!(strings(ok(&cpi, "list_vms", json!({})).await).contains(&vm));

    // Metadata: merge, remove with an empty value; Name is the id and cannot be set.
    ok(&cpi, "set_vm_metadata", json!({"vm": vm, "metadata": {"role": "", "zone": "a"}})).await;
    let inspected = ok(&cpi, "inspect_vm", json!({ "vm": vm })).await.expect("inspect_vm returns the VM");
    assert_eq!(inspected["metadata"], json!([{"Key": "zone", "Value": "a"}]));
    fails(&cpi, "set_vm_metadata", json!({"vm": vm, "metadata": {"Name": "renamed"}}), ErrorKind::InvalidArgument)
        .await;
    fails(&cpi, "set_vm_metadata", json!({"vm": other, "metadata": {"k": "v"}}), ErrorKind::NotFound).await;

    // Power: stop (twice), reboot a stopped VM is invalid_state, start (twice), reboot.
    ok(&cpi, "stop_vm", json!({ "vm": vm })).await;
    ok(&cpi, "stop_vm", json!({ "vm": vm })).await;
    let state = ok(&cpi, "inspect_vm", json!({ "vm": vm })).await.expect("inspect")["state"].clone();
    assert_eq!(state, json!("stopped"));
    fails(&cpi, "reboot_vm", json!({ "vm": vm }), ErrorKind::InvalidState).await;
    ok(&cpi, "start_vm", json!({ "vm": vm })).await;
    ok(&cpi, "start_vm", json!({ "vm": vm })).await;
    let state = ok(&cpi, "inspect_vm", json!({ "vm": vm })).await.expect("inspect")["state"].clone();
    assert_eq!(state, json!("running"));
    ok(&cpi, "reboot_vm", json!({ "vm": vm })).await;

    // Disks: create, attach (not to a missing VM, not a missing disk, not twice, not to two VMs).
    let d = ok(&cpi, "create_disk", json!({"name": disk, "size_mb": 1500})).await.expect("create_disk returns it");
    assert_eq!((d["id"].as_str(), d["size_gb"].as_u64()), (Some(disk.as_str()), Some(2)), "MiB round up to GiB");
    fails(&cpi, "create_disk", json!({"name": disk, "size_mb": 16}), ErrorKind::AlreadyExists).await;
    assert_eq!(ok(&cpi, "has_disk", json!({ "disk": disk })).await, Some(json!(true)));
    fails(&cpi, "attach_disk", json!({"vm": other, "disk": disk}), ErrorKind::NotFound).await;
    fails(&cpi, "attach_disk", json!({"vm": vm, "disk": format!("{disk}x")}), ErrorKind::NotFound).await;
    ok(&cpi, "attach_disk", json!({"vm": vm, "disk": disk})).await;
    assert_eq!(strings(ok(&cpi, "list_disks", json!({ "vm": vm })).await), vec![disk.clone()]);
    let devices = ok(&cpi, "inspect_vm", json!({ "vm": vm })).await.expect("inspect")["block_devices"].clone();
    assert!(
        devices.as_array().is_some_and(|b| b.iter().any(|d| d["device"] == json!("/dev/sdf"))),
        "the first free device is /dev/sdf: {devices}"
    );
    fails(&cpi, "attach_disk", json!({"vm": vm, "disk": disk}), ErrorKind::AlreadyExists).await;
    ok(&cpi, "create_vm", json!({"name": other, "image": AMI, "instance_type": "t2.micro"})).await;
    fails(&cpi, "attach_disk", json!({"vm": other, "disk": disk}), ErrorKind::InUse).await;
    fails(&cpi, "delete_disk", json!({ "disk": disk }), ErrorKind::InUse).await;

    // Snapshots of an attached disk; names are unique.
    let s = ok(&cpi, "snapshot_disk", json!({"disk": disk, "snapshot": snap})).await.expect("snapshot_disk returns it");
    assert_eq!(s["id"], json!(snap));
    assert!(s["snapshot_id"].as_str().is_some_and(|id| id.starts_with("snap-")), "{s}");
    fails(&cpi, "snapshot_disk", json!({"disk": disk, "snapshot": snap}), ErrorKind::AlreadyExists).await;

    // Detach (twice: the second is a no-op), the disk moves to the other VM, survives its deletion.
    ok(&cpi, "detach_disk", json!({"vm": vm, "disk": disk})).await;
    ok(&cpi, "detach_disk", json!({"vm": vm, "disk": disk})).await;
    assert_eq!(strings(ok(&cpi, "list_disks", json!({ "vm": vm })).await), Vec::<String>::new());
    ok(&cpi, "attach_disk", json!({"vm": other, "disk": disk})).await;
    ok(&cpi, "delete_vm", json!({ "vm": other })).await;
    assert_eq!(ok(&cpi, "has_disk", json!({ "disk": disk })).await, Some(json!(true)));

    // Deletes, then every one again is not_found: terminated instances are gone.
    ok(&cpi, "delete_vm", json!({ "vm": vm })).await;
    fails(&cpi, "delete_vm", json!({ "vm": vm }), ErrorKind::NotFound).await;
    fails(&cpi, "inspect_vm", json!({ "vm": vm }), ErrorKind::NotFound).await;
    fails(&cpi, "start_vm", json!({ "vm": vm }), ErrorKind::NotFound).await;
    assert_eq!(ok(&cpi, "has_vm", json!({ "vm": vm })).await, Some(json!(false)));
    assert!(!strings(ok(&cpi, "list_vms", json!({})).await).contains(&vm));
    ok(&cpi, "delete_snapshot", json!({ "snapshot": snap })).await;
    fails(&cpi, "delete_snapshot", json!({ "snapshot": snap }), ErrorKind::NotFound).await;
    ok(&cpi, "delete_disk", json!({ "disk": disk })).await;
    fails(&cpi, "delete_disk", json!({ "disk": disk }), ErrorKind::NotFound).await;
    assert_eq!(ok(&cpi, "has_disk", json!({ "disk": disk })).await, Some(json!(false)));
    assert!(!strings(ok(&cpi, "list_disks", json!({})).await).contains(&disk));

    // With the endpoint gone the CLI cannot connect: unavailable, not an untyped failure.
    support::stop_child(&mut moto.child);
    let e = fails(&cpi, "has_vm", json!({ "vm": vm }), ErrorKind::Unavailable).await;
    assert!(e.message.contains("Could not connect"), "{}", e.message);
}

/// Endpoint and region come from the settings, credentials only from the environment: the plan
/// of every action carries the settings and no credential; the processes get the credentials
/// as environment variables; without them the CLI has none (denied); the region really selects
/// the region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_and_region_from_settings_credentials_from_the_environment() {
    let shipped = spec::load_file(&support::cpi_path("aws-ec2")).expect("aws-ec2.json loads");
    assert_eq!(shipped.default_settings["endpoint_url"], json!(""), "the shipped spec talks to real AWS");
    assert_eq!(shipped.default_settings["region"], json!("us-east-1"));
    let secretish =
        |k: &str| ["secret", "access_key", "key_id", "token", "password"].iter().any(|w| k.to_lowercase().contains(w));
    assert!(!shipped.default_settings.keys().any(|k| secretish(k)), "no credential among the settings");
    assert!(!shipped.env.set.iter().any(|(k, _)| k.starts_with("AWS_")), "the spec sets no AWS_* variable");
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
        assert!(shipped.env.inherit.iter().any(|n| n == name), "{name} is inherited");
    }

    let endpoint = "http://127.0.0.1:9";
    let cpi = JsonCpi::unrestricted(load_spec(endpoint, "eu-west-3")).with_host_env(host_env);
    let env: Vec<(&str, &str)> = cpi.env().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(
        env.contains(&("AWS_ACCESS_KEY_ID", KEY_ID)) && env.contains(&("AWS_SECRET_ACCESS_KEY", SECRET)),
        "{env:?}"
    );
    assert!(env.iter().any(|(k, v)| *k == "PATH" && v.starts_with(VENV_BIN)), "the venv comes first on PATH");
    let params = object(json!({
        "name": "omni-vm1", "vm": "omni-vm1", "image": AMI, "disk": "omni-d1", "size_mb": 16,
        "snapshot": "omni-s1", "metadata": {"role": "worker"}
    }));
    let mut actions = 0;
    for action in &cpi.spec().actions {
        let plan =
            cpi.plan(&action.name, &params, &CallOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", action.name));
        for step in plan.steps() {
            let argv = step.argv();
            assert_eq!(argv.first().map(String::as_str), Some("sh"), "{}: {argv:?}", action.name);
            assert_eq!(
                (argv[4].as_str(), argv[5].as_str()),
                ("eu-west-3", endpoint),
                "{}: region and endpoint",
                action.name
            );
            assert!(
                argv[2].contains(r#"--endpoint-url "$ep""#) && argv[2].contains(r#"--region "$rg""#),
                "{}",
                action.name
            );
            assert!(
                !argv.iter().any(|a| a.contains(KEY_ID) || a.contains(SECRET)),
                "{}: a credential in argv",
                action.name
            );
        }
        actions += 1;
    }
    assert_eq!(actions, 17, "every director action and delete_snapshot");

    if !available() {
        return;
    }
    let moto = Moto::start();
    let eu = aws_cpi(&moto.endpoint(), "eu-west-1");
    let us = aws_cpi(&moto.endpoint(), "us-east-1");
    let disk = support::unique_name("d");
    let created = ok(&eu, "create_disk", json!({"name": disk, "size_mb": 16})).await.expect("create_disk returns it");
    assert_eq!(created["availability_zone"], json!("eu-west-1a"));
    assert!(strings(ok(&eu, "list_disks", json!({})).await).contains(&disk));
    assert!(!strings(ok(&us, "list_disks", json!({})).await).contains(&disk), "regions are separate");
    ok(&eu, "delete_disk", json!({ "disk": disk })).await;

    // The same CPI without credentials in its environment: the CLI finds none anywhere.
    let bare =
        Cpi::from(JsonCpi::unrestricted(load_spec(&moto.endpoint(), "us-east-1")).with_host_env(|name| match name {
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => None,
            other => host_env(other),
        }));
    let e = fails(&bare, "list_vms", json!({}), ErrorKind::Denied).await;
    assert!(e.message.contains("Unable to locate credentials"), "{}", e.message);
}

/// The EC2 director as a component (plugins/ec2): the Query API over the host's wasi:http, signed
/// with SigV4 in the guest from credentials granted as environment variables. Its policy grants
/// one network host and no program, no directory. Every director check passes against moto; the
/// audit log has one `http` line per request and never the secret; nothing is left behind. It
/// requests exactly its configured endpoint: granted another port, it does not load; configured
/// with and granted a name (`localhost`) that resolves to the loopback address, it sends nothing
/// and is `denied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ec2_component_passes_every_director_check_with_network_as_its_only_capability() {
    if !available() {
        return;
    }
    let Some(wasm) = support::plugin_wasm("omni_cpi_ec2") else { return };
    let moto = Moto::start();
    let policy_path = support::repo_root().join("plugins/ec2/policy.toml");
    let policy = omni_cpi::policy::Policy::load(&policy_path).expect("plugins/ec2/policy.toml loads");
    let mut grants = policy.plugins["ec2_http"].clone();
    assert!(grants.exec.is_empty() && grants.fs.is_empty(), "the shipped policy grants no program and no directory");
    grants.settings.insert("endpoint".into(), moto.endpoint());
    let grant = |host: &str| {
        vec![omni_cpi::policy::NetworkGrant::parse(&format!("{host}:{}", moto.port)).expect("a network grant")]
    };
    grants.network = grant("127.0.0.1");
    let audit_file = tempfile::NamedTempFile::new().expect("audit log");
    let audit = omni_cpi::audit::AuditLog::open(audit_file.path()).expect("audit log opens");
    let host = omni_cpi::wasm::ComponentHost::new(None).expect("engine");
    let load = |grants: omni_cpi::policy::PluginGrants| {
        let (host, wasm, audit) = (&host, wasm.clone(), audit.clone());
        async move {
            let loaded = omni_cpi::wasm::ComponentCpi::load(host, &wasm, grants, audit, &host_env).await;
            Cpi::from(loaded.unwrap_or_else(|e| panic!("ec2_http loads: {e}")))
        }
    };
    let cpi = load(grants.clone()).await;
    every_director_check_passes(&cpi, &moto, "the ec2 component").await;
    // An image id of the right form that EC2 does not know: EC2's own error code, typed.
    let e =
        fails(&cpi, "create_vm", json!({"name": "ghost", "image": "ami-0000000000000000f"}), ErrorKind::NotFound).await;
    assert!(e.message.contains("InvalidAMIID"), "{}", e.message);
    assert_eq!(strings(ok(&cpi, "list_vms", json!({})).await), Vec::<String>::new(), "no VM is left");
    assert_eq!(strings(ok(&cpi, "list_disks", json!({})).await), Vec::<String>::new(), "no disk is left");

    let log = std::fs::read_to_string(audit_file.path()).expect("audit");
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).expect("an audit line is JSON")).collect();
    let requests = lines.iter().filter(|l| l["program"] == "http").count();
    assert!(requests > 20, "every EC2 request is audited ({requests} lines)");
    assert!(lines.iter().all(|l| l.get("program").is_none_or(|p| p == "http")), "no program ran");
    assert!(!log.contains(SECRET), "the secret never reaches the audit log");
    assert!(log.contains(&format!("http://127.0.0.1:{}/", moto.port)), "lines name the endpoint");

    // It requests the endpoint it is configured with, and nothing else.
    let loaded = omni_cpi::wasm::ComponentCpi::load(&host, &wasm, grants.clone(), audit.clone(), &host_env)
        .await
        .expect("loads");
    let requested = loaded.description.requests.network.clone().expect("omni:cpi@0.3.0 requests its hosts");
    assert_eq!(
        requested.iter().map(|r| (r.host.as_str(), r.port, r.description.as_str())).collect::<Vec<_>>(),
        [("127.0.0.1", moto.port, "the EC2 Query API")]
    );

    // Granted another port than the endpoint's: the load stops, naming the grant to add.
    let before = moto.log_text().lines().count();
    let mut elsewhere = grants.clone();
    elsewhere.network =
        vec![omni_cpi::policy::NetworkGrant::parse(&format!("127.0.0.1:{}", moto.port + 1)).expect("a network grant")];
    let refused = omni_cpi::wasm::ComponentCpi::load(&host, &wasm, elsewhere, audit.clone(), &host_env).await;
    let Err(omni_cpi::wasm::LoadError::MissingGrants(missing)) = refused else {
        panic!("an ungranted endpoint loaded, or failed otherwise")
    };
    assert!(missing.tables.contains(&format!("host = \"127.0.0.1\"\nport = {}", moto.port)), "{}", missing.tables);
    // Configured with a name that resolves to loopback, and granted that name: the address rule
    // refuses every request, so nothing is sent.
    let mut by_name = grants.clone();
    by_name.settings.insert("endpoint".into(), format!("http://localhost:{}", moto.port));
    by_name.network = grant("localhost");
    let refused = load(by_name).await;
    fails(&refused, "list_vms", json!({}), ErrorKind::Denied).await;
    assert_eq!(moto.log_text().lines().count(), before, "moto received nothing");
}
