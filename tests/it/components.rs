//! WebAssembly component CPIs in the sandbox: the plugin cases of the threat model (plugins/README.md),
//! one test each. Every misbehaviour must come back as the right typed error within its limit, and
//! a well-behaved call to the same plugin right after must still work.
//!
//! The adversary (plugins/adversarial) is built by `cargo xtask build-plugins`.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use omni_cpi::audit::AuditLog;
use omni_cpi::policy::Policy;
use omni_cpi::wasm::{ComponentCpi, ComponentHost, LoadError};
use omni_cpi::{CallOptions, ErrorKind, Params};
use serde_json::{json, Value};

/// The adversary with exactly what it requests granted, inside temporary directories.
struct Fixture {
    dir: tempfile::TempDir,
    host: ComponentHost,
    wasm: PathBuf,
}

const TIME_LIMIT_MS: u64 = 1500;

impl Fixture {
    fn new() -> Option<Fixture> {
        let wasm = support::plugin_wasm("omni_cpi_adversary")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let sandbox = dir.path().join("sandbox");
        std::fs::create_dir_all(&sandbox).expect("sandbox dir");
        std::fs::create_dir_all(dir.path().join("scratch")).expect("scratch dir");
        std::fs::write(sandbox.join("data.txt"), "granted data").expect("data file");
        std::fs::write(dir.path().join("outside.txt"), "secret outside the sandbox").expect("outside file");
        std::os::unix::fs::symlink("/etc", sandbox.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("../outside.txt", sandbox.join("sneaky.txt")).expect("symlink");
        let host = ComponentHost::new(Some(dir.path().join("cache"))).expect("engine");
        Some(Fixture { dir, host, wasm })
    }

    fn policy_text(&self, extra: &str) -> String {
        format!(
            r#"
            audit_log = "audit.jsonl"
            [plugins.adversary]
            source = "{wasm}"
            env = ["GRANTED_VAR"]
            {extra}
            [[plugins.adversary.exec]]
            program = "sh"
            args = ["-c", "echo granted"]
            [[plugins.adversary.exec]]
            program = "echo"
            args = ["**"]
            [[plugins.adversary.fs]]
            host = "sandbox"
            guest = "/sandbox"
            mode = "ro"
            [[plugins.adversary.fs]]
            host = "scratch"
            guest = "/scratch"
            mode = "rw"
            [plugins.adversary.limits]
            memory_mb = 32
            timeout_ms = {TIME_LIMIT_MS}
            output_bytes = 65536
            return_bytes = 1048576
            "#,
            wasm = self.wasm.display()
        )
    }

    fn policy(&self, extra: &str) -> Policy {
        let path = self.dir.path().join("omni-cpi.toml");
        Policy::parse(&path, &self.policy_text(extra), "/usr/local/bin:/usr/bin:/bin").expect("policy parses")
    }

    async fn load_with(&self, policy: &Policy, wasm: &Path) -> Result<ComponentCpi, LoadError> {
        let audit = AuditLog::open(policy.audit_log.as_deref().expect("audit log")).expect("audit log opens");
        let env = |name: &str| match name {
            "PATH" => Some("/usr/local/bin:/usr/bin:/bin".to_string()),
            "GRANTED_VAR" => Some("visible".to_string()),
            "SECRET_VAR" => Some("must not leak".to_string()),
            _ => None,
        };
        ComponentCpi::load(&self.host, wasm, policy.grants_for("adversary"), audit, &env).await
    }

    async fn load(&self) -> ComponentCpi {
        self.load_with(&self.policy(""), &self.wasm).await.expect("adversary loads")
    }

    fn audit_entries(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

fn params(v: Value) -> Params {
    match v {
        Value::Object(map) => map,
        _ => unreachable!("object literal"),
    }
}

async fn behave(cpi: &ComponentCpi, cmd: &[&str]) -> Result<omni_cpi::Outcome, omni_cpi::CpiError> {
    cpi.call("exec", &params(json!({"name": "x", "cmd": cmd})), &CallOptions::default()).await
}

/// The plugin still answers correctly after whatever the test did to it.
async fn still_works(cpi: &ComponentCpi) {
    let outcome = cpi
        .call("list_containers", &Params::new(), &CallOptions::default())
        .await
        .expect("a well-behaved call still works");
    assert_eq!(outcome.result, Some(json!(["still-working"])));
}

async fn expect_error(cpi: &ComponentCpi, cmd: &[&str], kind: ErrorKind, needle: &str) -> Duration {
    let started = Instant::now();
    let err = behave(cpi, cmd).await.expect_err("misbehaviour must fail");
    let took = started.elapsed();
    assert_eq!(err.kind, kind, "{cmd:?}: {err:?}");
    assert!(err.message.contains(needle), "{cmd:?}: message {:?} lacks {needle:?}", err.message);
    still_works(cpi).await;
    took
}

macro_rules! fixture {
    () => {
        match Fixture::new() {
            Some(f) => f,
            None => return,
        }
    };
}

#[tokio::test]
async fn well_behaved_calls_and_granted_exec_work_and_are_audited() {
    let f = fixture!();
    let cpi = f.load().await;
    still_works(&cpi).await;
    let out = behave(&cpi, &["exec-granted"]).await.expect("granted exec");
    assert_eq!(out.stdout, "granted\n");
    assert_eq!(out.steps.len(), 1);
    let entries = f.audit_entries();
    let allowed = entries.iter().find(|e| e["decision"] == "allowed").expect("an allowed entry");
    assert_eq!(allowed["plugin"], "adversary");
    assert_eq!(allowed["action"], "exec");
    assert_eq!(allowed["argv"], json!(["sh", "-c", "echo granted"]));
    assert_eq!(allowed["exit_code"], 0);
    assert!(allowed["duration_ms"].is_u64() && allowed["time_ms"].is_u64());
}

#[tokio::test]
async fn infinite_loop_times_out_within_the_limit() {
    let f = fixture!();
    let cpi = f.load().await;
    let took = expect_error(&cpi, &["loop"], ErrorKind::Timeout, "time limit").await;
    assert!(took < Duration::from_millis(TIME_LIMIT_MS + 1500), "took {took:?}");
}

#[tokio::test]
async fn unbounded_memory_hits_the_memory_limit() {
    let f = fixture!();
    let cpi = f.load().await;
    expect_error(&cpi, &["alloc"], ErrorKind::Internal, "memory limit of 32 MiB").await;
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack_safely() {
    let f = fixture!();
    let cpi = f.load().await;
    expect_error(&cpi, &["recurse"], ErrorKind::Internal, "stack").await;
}

#[tokio::test]
async fn a_panic_is_a_typed_error_with_its_message() {
    let f = fixture!();
    let cpi = f.load().await;
    expect_error(&cpi, &["panic"], ErrorKind::Internal, "deliberate panic from the adversary").await;
}

#[tokio::test]
async fn ungranted_program_is_denied_and_audited() {
    let f = fixture!();
    let cpi = f.load().await;
    expect_error(&cpi, &["exec-ungranted"], ErrorKind::Denied, "`cat`").await;
    let denied = f.audit_entries().into_iter().find(|e| e["decision"] == "denied").expect("a denied entry");
    assert_eq!(denied["argv"], json!(["cat", "/etc/shadow"]));
    // The plugin's own describe() is the gate that refused: every exec in its sandbox is also granted.
    assert!(denied["reason"].as_str().unwrap_or_default().contains("not requested by the plugin"), "{denied}");
}

#[tokio::test]
async fn granted_program_with_forbidden_arguments_is_denied() {
    let f = fixture!();
    let cpi = f.load().await;
    expect_error(&cpi, &["exec-forbidden-args"], ErrorKind::Denied, "not requested by the plugin").await;
}

#[tokio::test]
async fn exec_with_an_ungranted_environment_variable_is_denied() {
    let f = fixture!();
    let cpi = f.load().await;
    expect_error(&cpi, &["exec-env"], ErrorKind::Denied, "LD_PRELOAD").await;
}

#[tokio::test]
async fn dotdot_escapes_from_a_preopen_fail() {
    let f = fixture!();
    let cpi = f.load().await;
    assert_eq!(behave(&cpi, &["read", "/sandbox/data.txt"]).await.expect("granted read").stdout, "granted data");
    for path in
        ["/sandbox/../outside.txt", "/sandbox/../../etc/passwd", "/etc/passwd", "/scratch/../sandbox/../outside.txt"]
    {
        let err = behave(&cpi, &["read", path]).await.expect_err("escape must fail");
        assert_eq!(err.kind, ErrorKind::Denied, "{path}: {err:?}");
    }
    still_works(&cpi).await;
}

#[tokio::test]
async fn symlink_escapes_from_a_preopen_fail() {
    let f = fixture!();
    let cpi = f.load().await;
    for path in ["/sandbox/escape/passwd", "/sandbox/sneaky.txt", "/sandbox/escape/"] {
        let err = behave(&cpi, &["read", path]).await.expect_err("symlink escape must fail");
        assert_eq!(err.kind, ErrorKind::Denied, "{path}: {err:?}");
    }
    still_works(&cpi).await;
}

#[tokio::test]
async fn writes_to_a_read_only_grant_fail_and_to_a_writable_one_succeed() {
    let f = fixture!();
    let cpi = f.load().await;
    expect_error(&cpi, &["write", "/sandbox/new.txt"], ErrorKind::Denied, "/sandbox/new.txt").await;
    expect_error(&cpi, &["write", "/sandbox/data.txt"], ErrorKind::Denied, "/sandbox/data.txt").await;
    assert_eq!(std::fs::read_to_string(f.dir.path().join("sandbox/data.txt")).expect("data"), "granted data");
    assert!(!f.dir.path().join("sandbox/new.txt").exists());
    behave(&cpi, &["write", "/scratch/new.txt"]).await.expect("writable grant");
    assert_eq!(
        std::fs::read_to_string(f.dir.path().join("scratch/new.txt")).expect("written"),
        "written by the adversary"
    );
}

#[tokio::test]
async fn only_granted_environment_variables_are_visible() {
    let f = fixture!();
    let cpi = f.load().await;
    let out = behave(&cpi, &["env"]).await.expect("env");
    assert_eq!(out.stdout, "GRANTED_VAR=Some(\"visible\") SECRET_VAR=None vars=1");
}

#[tokio::test]
async fn the_network_is_closed() {
    let f = fixture!();
    let cpi = f.load().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let address = listener.local_addr().expect("address").to_string();
    let err = behave(&cpi, &["connect", &address]).await.expect_err("no sockets");
    assert_eq!(err.kind, ErrorKind::Denied, "{err:?}");
    assert!(listener.accept().is_err(), "nothing reached the listener");
    still_works(&cpi).await;
}

#[tokio::test]
async fn the_cli_serves_a_component_like_a_spec() {
    let f = fixture!();
    let network = "[plugins.adversary.settings]\nnetwork = \"127.0.0.1:8080\"\n\
                   [[plugins.adversary.network]]\nhost = \"127.0.0.1\"\nport = 8080\n";
    std::fs::write(f.dir.path().join("omni-cpi.toml"), f.policy_text(network)).expect("policy file");
    let omni = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .arg("--policy")
            .arg(f.dir.path().join("omni-cpi.toml"))
            .arg("--cache-dir")
            .arg(f.dir.path().join("cli-cache"))
            .args(args)
            .output()
            .expect("omni-cpi runs")
    };
    let out = omni(&["-o", "json", "info", "adversary"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(info["capabilities"]["requested"]["dirs"], json!([["/sandbox", false], ["/scratch", true]]));
    assert_eq!(info["capabilities"]["effective"]["dirs"][0]["guest"], "/sandbox");
    assert_eq!(info["limits"]["memory_bytes"], 32 << 20);
    assert_eq!(
        (info["interface"].as_str(), info["settings"]["greeting"].as_str()),
        (Some("omni:cpi@0.3.0"), Some("hello"))
    );
    assert_eq!(info["capabilities"]["granted"]["network"], json!([{"host": "127.0.0.1", "port": 8080}]));
    assert_eq!(
        info["capabilities"]["requested"]["network"],
        json!([{"host": "127.0.0.1", "port": 8080, "description": "a test asked for it"}])
    );
    assert_eq!(info["capabilities"]["effective"]["network"], json!([{"host": "127.0.0.1", "port": 8080}]));
    let out = omni(&["info", "adversary"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("network 127.0.0.1 port 8080 (a test asked for it) → granted (wasi:http)"), "{text}");
    // A refused request: the plugin gets `denied`; the operator's log says why, in plain text.
    let out = omni(&["call", "adversary", "exec", "name=x", "cmd:=[\"http\", \"GET\", \"http://127.0.0.1:8081/\"]"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error[denied]") && stderr.contains("not requested by the plugin: 127.0.0.1:8081"),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "colour codes in a log that is not a terminal: {stderr:?}");

    let out = omni(&["call", "adversary", "exec", "name=x", "cmd:=[\"exec-granted\"]"]);
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()), (Some(0), "granted\n"));
    // A program that exits without reading the stdin it was given must not take the host down.
    let out = omni(&["call", "adversary", "exec", "name=x", "cmd:=[\"exec-stdin-unread\"]"]);
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()), (Some(0), "unread\n"));
    let out = omni(&["-o", "json", "call", "adversary", "exec", "name=x", "cmd:=[\"exec-ungranted\"]"]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(error["error"]["kind"], "denied");
    let out = omni(&["call", "adversary", "exec", "name=x", "--dry-run", "cmd:=[\"exec-granted\"]"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[exec] sh -c 'echo granted'"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A dry run changes nothing: even a granted read-write directory is read-only during it.
    let out = omni(&["call", "adversary", "exec", "name=x", "--dry-run", "cmd:=[\"write\", \"/scratch/dry.txt\"]"]);
    assert_ne!(out.status.code(), Some(0), "the write was refused: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!f.dir.path().join("scratch/dry.txt").exists(), "a dry run wrote a file");
    let out = omni(&["call", "adversary", "exec", "name=x", "cmd:=[\"write\", \"/scratch/real.txt\"]"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(f.dir.path().join("scratch/real.txt").exists(), "the same call without --dry-run writes");
    let out = omni(&["call", "adversary", "exec", "name=x"]);
    assert_eq!(out.status.code(), Some(2), "missing parameter is a usage error");
    let out = omni(&["call", "adversary", "create_container", "name=x", "image=y"]);
    assert_eq!(out.status.code(), Some(2), "declared unsupported: refused before running");
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[unsupported]"));
    let out = omni(&["validate", f.wasm.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    // Configured to request a host no grant covers: `info` shows the request, what is missing and
    // the table to paste; the load (here `validate`) stops with the same table.
    let ungranted = "[plugins.adversary.settings]\nnetwork = \"127.0.0.1:9\"\n";
    std::fs::write(f.dir.path().join("omni-cpi.toml"), f.policy_text(ungranted)).expect("policy file");
    let out = omni(&["info", "adversary"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("network 127.0.0.1 port 9 (a test asked for it)"), "{text}");
    assert!(text.contains("- network host `127.0.0.1` port 9"), "{text}");
    let table = "[[plugins.adversary.network]]\nhost = \"127.0.0.1\"\nport = 9";
    assert!(text.contains(table), "{text}");
    let out = omni(&["validate", f.wasm.to_str().expect("utf-8")]);
    assert_ne!(out.status.code(), Some(0), "an ungranted network request loaded");
    let both = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(both.contains(table), "{both}");
}

/// Settings reach the component: the operator's value over the plugin's default, only for keys
/// the plugin declares (a typo is a load error naming the key it resembles).
#[tokio::test]
async fn a_component_reads_the_operators_settings_over_its_defaults() {
    let f = fixture!();
    let cpi = f.load().await;
    assert_eq!(behave(&cpi, &["setting", "greeting"]).await.expect("default").stdout, "hello");
    assert_eq!(behave(&cpi, &["setting", "other"]).await.expect("undeclared").stdout, "<none>");

    let policy = f.policy("[plugins.adversary.settings]\ngreeting = \"hi from the operator\"\n");
    let cpi = f.load_with(&policy, &f.wasm).await.expect("loads with a setting");
    assert_eq!(behave(&cpi, &["setting", "greeting"]).await.expect("set").stdout, "hi from the operator");
    assert_eq!(behave(&cpi, &["settings"]).await.expect("all").stdout, "greeting=hi from the operator\nnetwork=\n");

    let policy = f.policy("[plugins.adversary.settings]\ngreting = \"typo\"\n");
    match f.load_with(&policy, &f.wasm).await {
        Err(LoadError::Settings { message, .. }) => {
            assert!(message.contains("`greting`") && message.contains("did you mean `greeting`"), "{message}")
        }
        Err(other) => panic!("expected a settings error, got {other}"),
        Ok(_) => panic!("a setting the plugin does not declare was accepted"),
    }
}

/// A component can tell a dry run from a real call, so its plan lists what it would run.
#[tokio::test]
async fn a_component_knows_when_it_only_plans() {
    let f = fixture!();
    let cpi = f.load().await;
    let call = params(json!({"name": "x", "cmd": ["plan"]}));
    let plan = cpi.plan("exec", &call, &CallOptions::default()).await.expect("plans");
    let argv: Vec<Vec<String>> = plan.steps().iter().map(|s| s.argv().to_vec()).collect();
    assert_eq!(argv, vec![vec!["echo".to_string(), "planned".to_string()]]);
    let outcome = cpi.call("exec", &call, &CallOptions::default()).await.expect("runs");
    assert_eq!(outcome.stdout, "ran\n");
}

/// Components built against omni:cpi@0.1.0 (prebuilt fixtures, built from this repository before
/// 0.2.0) load and work unchanged; they cannot be given settings, and the calls 0.2.0 added are
/// `unsupported` for them.
#[tokio::test]
async fn components_built_against_0_1_0_still_load_and_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("vms")).expect("vms");
    let wasm = support::repo_root().join("tests/fixtures/components/testdirector-wit-0.1.0.wasm");
    let entry = |extra: &str| {
        format!(
            "[plugins.old]\nsource = \"{}\"\n{extra}\n[[plugins.old.fs]]\nhost = \"vms\"\nguest = \"/vms\"\nmode = \"rw\"\n",
            wasm.display()
        )
    };
    let policy = Policy::parse(&dir.path().join("p.toml"), &entry(""), "/usr/bin:/bin").expect("policy");
    let loader = omni_cpi::Loader::new(policy, None).expect("loader");
    let cpi = loader.load(&wasm).await.expect("a 0.1.0 component loads");
    assert_eq!(cpi.info().document["interface"], "omni:cpi@0.1.0");
    let options = CallOptions::default();
    let created = cpi.call("create_vm", &params(json!({"name": "old-vm", "image": "debian"})), &options).await;
    assert!(created.is_ok(), "{created:?}");
    let has = cpi.call("has_vm", &params(json!({"vm": "old-vm"})), &options).await.expect("has_vm");
    assert_eq!(has.result, Some(json!(true)));

    let policy =
        Policy::parse(&dir.path().join("p.toml"), &entry("[plugins.old.settings]\nx = \"1\"\n"), "/usr/bin:/bin")
            .expect("policy");
    let loader = omni_cpi::Loader::new(policy, None).expect("loader");
    let err = loader.load(&wasm).await.err().expect("settings for a 0.1.0 component are refused").to_string();
    assert!(err.contains("omni:cpi@0.1.0, which cannot read settings"), "{err}");

    let runc = support::repo_root().join("tests/fixtures/components/runc-wit-0.1.0.wasm");
    let host = ComponentHost::new(None).expect("engine");
    let (world, interface, description) = ComponentCpi::describe_file(&host, &runc).await.expect("describes");
    assert_eq!((world, interface), (omni_cpi::wasm::World::ContainerCpi, omni_cpi::wasm::Interface::V0_1));
    assert!(!description.actions.iter().any(|a| a.name == "detach_volume"), "0.1.0 has no detach-volume");
}

/// Components built against omni:cpi@0.2.0 (prebuilt fixtures, built from this repository before
/// 0.3.0) load and work unchanged, settings included; their network is the grants alone (the
/// adversary's 0.2.0 build shows that in `wasi_http_needs_both_the_request_and_the_grant`).
#[tokio::test]
async fn components_built_against_0_2_0_still_load_and_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("vms")).expect("vms");
    let wasm = support::repo_root().join("tests/fixtures/components/testdirector-wit-0.2.0.wasm");
    let entry = format!(
        "[plugins.old]\nsource = \"{}\"\n[plugins.old.settings]\n\"conformance.image\" = \"alpine\"\n\
         [[plugins.old.fs]]\nhost = \"vms\"\nguest = \"/vms\"\nmode = \"rw\"\n",
        wasm.display()
    );
    let policy = Policy::parse(&dir.path().join("p.toml"), &entry, "/usr/bin:/bin").expect("policy");
    let loader = omni_cpi::Loader::new(policy, None).expect("loader");
    let cpi = loader.load(&wasm).await.expect("a 0.2.0 component loads");
    let info = cpi.info().document;
    assert_eq!(info["interface"], "omni:cpi@0.2.0");
    assert_eq!(info["settings"]["conformance.image"], "alpine");
    assert_eq!(info["capabilities"]["requested"]["network"], Value::Null, "0.2.0 cannot request hosts");
    let options = CallOptions::default();
    let created = cpi.call("create_vm", &params(json!({"name": "old-vm", "image": "debian"})), &options).await;
    assert!(created.is_ok(), "{created:?}");
    let has = cpi.call("has_vm", &params(json!({"vm": "old-vm"})), &options).await.expect("has_vm");
    assert_eq!(has.result, Some(json!(true)));

    let runc = support::repo_root().join("tests/fixtures/components/runc-wit-0.2.0.wasm");
    let host = ComponentHost::new(None).expect("engine");
    let (world, interface, description) = ComponentCpi::describe_file(&host, &runc).await.expect("describes");
    assert_eq!((world, interface), (omni_cpi::wasm::World::ContainerCpi, omni_cpi::wasm::Interface::V0_2));
    assert!(description.actions.iter().any(|a| a.name == "detach_volume" && a.unsupported.is_none()));
}

#[tokio::test]
async fn a_gigabyte_on_stdout_hits_the_output_limit() {
    let f = fixture!();
    let cpi = f.load().await;
    let took = expect_error(&cpi, &["flood"], ErrorKind::Internal, "printed more than 65536 bytes").await;
    assert!(took < Duration::from_millis(TIME_LIMIT_MS + 1500), "took {took:?}");
}

#[tokio::test]
async fn a_huge_return_value_is_refused() {
    let f = fixture!();
    let cpi = f.load().await;
    expect_error(&cpi, &["huge-return", "8388608"], ErrorKind::Internal, "the limit is 1048576").await;
    assert_eq!(behave(&cpi, &["huge-return", "1000"]).await.expect("small return").stdout.len(), 1000);
}

#[tokio::test]
async fn components_of_the_wrong_world_or_version_are_refused() {
    let f = fixture!();
    let policy = f.policy("");
    let cases = [
        ("(component)", "exports no omni:cpi interface"),
        (
            r#"(component
                 (core module $m (func (export "d")))
                 (core instance $i (instantiate $m))
                 (func $d (canon lift (core func $i "d")))
                 (instance $p (export "describe" (func $d)))
                 (export "omni:cpi/plugin@1.0.0" (instance $p)))"#,
            "exports omni:cpi/plugin@1.0.0, but this host links omni:cpi@0.1.0, omni:cpi@0.2.0 and omni:cpi@0.3.0",
        ),
        (
            r#"(component
                 (core module $m (func (export "d")))
                 (core instance $i (instantiate $m))
                 (func $d (canon lift (core func $i "d")))
                 (instance $p (export "describe" (func $d)))
                 (export "omni:cpi/plugin@0.1.0" (instance $p)))"#,
            "exactly one of `container`",
        ),
        (
            r#"(component
                 (core module $m (func (export "d")))
                 (core instance $i (instantiate $m))
                 (func $d (canon lift (core func $i "d")))
                 (instance $p (export "describe" (func $d)))
                 (instance $c (export "logs" (func $d)))
                 (export "omni:cpi/plugin@0.1.0" (instance $p))
                 (export "omni:cpi/container@0.2.0" (instance $c)))"#,
            "exports interfaces of different versions",
        ),
    ];
    for (i, (wat, needle)) in cases.iter().enumerate() {
        let path = f.dir.path().join(format!("wrong-{i}.wasm"));
        std::fs::write(&path, wat::parse_str(wat).expect("valid WAT")).expect("write component");
        match f.load_with(&policy, &path).await {
            Err(LoadError::WrongWorld { message, .. }) => assert!(message.contains(needle), "{message}"),
            Err(other) => panic!("case {i}: expected a wrong-world error, got {other}"),
            Ok(_) => panic!("case {i}: loaded a component of the wrong world"),
        }
    }
}

#[tokio::test]
async fn truncated_or_corrupted_components_are_refused() {
    let f = fixture!();
    let policy = f.policy("");
    let bytes = std::fs::read(&f.wasm).expect("adversary bytes");
    let truncated = f.dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    for byte in &mut flipped[middle..middle + 64] {
        *byte ^= 0xA5;
    }
    let corrupted = f.dir.path().join("corrupted.wasm");
    std::fs::write(&corrupted, &flipped).expect("write");
    for path in [truncated, corrupted] {
        match f.load_with(&policy, &path).await {
            Err(LoadError::Invalid { message, .. }) => {
                assert!(message.contains("not a valid WebAssembly component"), "{message}")
            }
            Err(other) => panic!("{}: expected an invalid-component error, got {other}", path.display()),
            Ok(_) => panic!("{}: a corrupted component loaded", path.display()),
        }
    }
    // The host keeps serving: the intact plugin still loads and works.
    still_works(&f.load().await).await;
}

#[tokio::test]
async fn a_hash_that_does_not_match_the_pin_is_refused() {
    let f = fixture!();
    let pinned = f.policy(&format!("sha256 = \"{}\"", "0".repeat(64)));
    match f.load_with(&pinned, &f.wasm).await {
        Err(LoadError::HashMismatch { pinned, actual, .. }) => {
            assert_eq!(pinned, "0".repeat(64));
            assert_eq!(actual.len(), 64);
        }
        Err(other) => panic!("expected a hash mismatch, got {other}"),
        Ok(_) => panic!("loaded despite the pin"),
    }
    let actual = omni_cpi::wasm::engine::sha256_hex(&std::fs::read(&f.wasm).expect("bytes"));
    let correct = f.policy(&format!("sha256 = \"{actual}\""));
    assert!(f.load_with(&correct, &f.wasm).await.is_ok(), "the right pin loads");
}

#[tokio::test]
async fn requests_beyond_the_grants_fail_to_load_with_the_toml_to_add() {
    let f = fixture!();
    let text = f.policy_text("").replace("[[plugins.adversary.fs]]\n            host = \"scratch\"\n            guest = \"/scratch\"\n            mode = \"rw\"", "");
    let policy = Policy::parse(
        &f.dir.path().join("omni-cpi.toml"),
        &text.replace("env = [\"GRANTED_VAR\"]", ""),
        "/usr/bin:/bin",
    )
    .expect("policy parses");
    match f.load_with(&policy, &f.wasm).await {
        Err(LoadError::MissingGrants(missing)) => {
            assert_eq!(missing.missing, ["directory `/scratch` (rw)", "environment variable `GRANTED_VAR`"]);
            let message = missing.to_string();
            assert!(
                message.contains("[[plugins.adversary.fs]]\nhost = \"/scratch\"  # choose: the directory on this machine it sees as /scratch\nguest = \"/scratch\"\nmode = \"rw\""),
                "{message}"
            );
            assert!(
                message.contains("in the table `[plugins.adversary]`, set:\n\nenv = [\"GRANTED_VAR\"]"),
                "{message}"
            );
            // Following the message makes it load: the tables paste at the end of the policy that
            // already has the entry (TOML refuses a reopened table), and `env` goes in its table.
            let env = format!("env = {:?}\n", missing.env.clone().unwrap_or_default());
            // The operator chooses the host directory the message leaves to them.
            let tables = missing.tables.replace("host = \"/scratch\"", "host = \"scratch\"");
            let fixed = format!("{}\n{}", text.replace("env = [\"GRANTED_VAR\"]", &env), tables);
            let policy = Policy::parse(&f.dir.path().join("omni-cpi.toml"), &fixed, "/usr/bin:/bin")
                .unwrap_or_else(|e| panic!("the pasted policy parses: {e}\n{fixed}"));
            assert!(f.load_with(&policy, &f.wasm).await.is_ok(), "loads with what the message said:\n{fixed}");
        }
        Err(other) => panic!("expected missing grants, got {other}"),
        Ok(_) => panic!("loaded without its grants"),
    }
}

#[tokio::test]
async fn compiled_components_are_cached_and_a_damaged_cache_entry_is_ignored() {
    let f = fixture!();
    f.load().await;
    let cache = f.dir.path().join("cache");
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache).expect("cache dir").flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "one artifact: {entries:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).expect("meta").permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&entries[0]).expect("meta").permissions().mode() & 0o777, 0o600);
    std::fs::write(&entries[0], b"not an artifact").expect("damage the cache");
    still_works(&f.load().await).await;
}

/// The director world end to end: load, describe, typed calls and results, declared unsupported.
#[tokio::test]
async fn a_director_component_serves_the_director_interface() {
    let Some(wasm) = support::plugin_wasm("omni_cpi_testdirector") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("vms")).expect("vms dir");
    let policy = Policy::parse(
        &dir.path().join("omni-cpi.toml"),
        &format!(
            "[plugins.testdirector]\nsource = \"{}\"\n[[plugins.testdirector.fs]]\nhost = \"vms\"\nguest = \"/vms\"\nmode = \"rw\"\n",
            wasm.display()
        ),
        "/usr/bin:/bin",
    )
    .expect("policy");
    let host = ComponentHost::new(None).expect("engine");
    let env = |_: &str| None;
    let cpi = ComponentCpi::load(&host, &wasm, policy.grants_for("testdirector"), AuditLog::default(), &env)
        .await
        .expect("the director loads");
    assert_eq!(cpi.world, omni_cpi::wasm::World::DirectorCpi);
    assert_eq!(cpi.kind(), omni_cpi::json::spec::CpiKind::Director);
    let call = |action: &'static str, p: Value| {
        let cpi = &cpi;
        async move { cpi.call(action, &params(p), &CallOptions::default()).await }
    };
    let created =
        call("create_vm", json!({"name": "vm-1", "image": "debian", "cpus": 2, "metadata": {"role": "worker"}}))
            .await
            .expect("create_vm");
    assert_eq!(created.result.as_ref().map(|r| r["metadata"]["role"].clone()), Some(json!("worker")));
    assert_eq!(call("has_vm", json!({"vm": "vm-1"})).await.expect("has_vm").result, Some(json!(true)));
    assert_eq!(call("has_vm", json!({"vm": "bogus"})).await.expect("has_vm").result, Some(json!(false)));
    assert_eq!(call("list_vms", json!({})).await.expect("list").result, Some(json!(["vm-1"])));
    let alias = call("has_worker", json!({"vm": "vm-1"})).await.expect("OmniCloud's `has_worker` is `has_vm`");
    assert_eq!(alias.result, Some(json!(true)));
    call("set_vm_metadata", json!({"vm": "vm-1", "metadata": {"zone": "a"}})).await.expect("metadata");
    let inspected = call("inspect_vm", json!({"vm": "vm-1"})).await.expect("inspect");
    assert_eq!(inspected.result.as_ref().map(|r| r["metadata"]["zone"].clone()), Some(json!("a")));
    let duplicate = call("create_vm", json!({"name": "vm-1", "image": "debian"})).await.expect_err("dup");
    assert_eq!(duplicate.kind, ErrorKind::AlreadyExists);
    let unknown_image = call("create_vm", json!({"name": "vm-2", "image": "nope"})).await.expect_err("image");
    assert_eq!(unknown_image.kind, ErrorKind::NotFound);
    call("delete_vm", json!({"vm": "vm-1"})).await.expect("delete");
    assert_eq!(call("delete_vm", json!({"vm": "vm-1"})).await.expect_err("gone").kind, ErrorKind::NotFound);
    let err = call("snapshot_disk", json!({"disk": "d", "snapshot": "s"})).await.expect_err("unsupported");
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert_eq!(call("create_container", json!({})).await.expect_err("wrong interface").kind, ErrorKind::Unsupported);
}

/// The QEMU component (plugins/qemu) within its grants. Without the policy's qemu-img grants it
/// does not load, and the error names each grant to add. With its state directory granted from
/// another host directory, it keeps its files there, but the host refuses to run qemu-img in the
/// real state directory: create_disk and create_vm fail with a typed `denied`, the refusal is
/// audited, and nothing is created (a half-made VM is rolled back).
#[tokio::test]
async fn the_qemu_component_cannot_run_qemu_img_beyond_its_grants() {
    if !support::qemu_available() {
        return;
    }
    let Some(wasm) = support::plugin_wasm("omni_cpi_qemu") else { return };
    let policy_path = support::repo_root().join("plugins/qemu/policy.toml");
    let shipped = std::fs::read_to_string(&policy_path).expect("plugins/qemu/policy.toml");
    let dir = tempfile::tempdir().expect("temp dir");
    let elsewhere = dir.path().join("state");
    std::fs::create_dir_all(&elsewhere).expect("state dir");
    let audit = dir.path().join("audit.jsonl");
    // The state directory granted from `elsewhere`; everything else as shipped.
    let relocated = format!("audit_log = \"{}\"\n", audit.display())
        + &shipped
            .replace("host = \"/var/lib/omni-cpi/qemu-component\"", &format!("host = \"{}\"", elsewhere.display()));
    assert_ne!(relocated.len(), shipped.len(), "the policy grants the state directory");
    let host_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let env = |name: &str| (name == "PATH").then(|| host_path.clone());
    let host = ComponentHost::new(Some(dir.path().join("cache"))).expect("engine");
    let load = |text: String| {
        let policy = Policy::parse(&policy_path, &text, &host_path).expect("policy parses");
        let audit = AuditLog::open(&audit).expect("audit log opens");
        let (host, wasm, env) = (&host, &wasm, &env);
        async move { ComponentCpi::load(host, wasm, policy.grants_for("qemu"), audit, env).await }
    };

    // Every qemu-img grant removed (the blocks of the policy are separated by blank lines).
    let without_qemu_img: Vec<&str> =
        relocated.split("\n\n").filter(|block| !block.contains("program = \"qemu-img\"")).collect();
    match load(without_qemu_img.join("\n\n")).await {
        Err(LoadError::MissingGrants(missing)) => {
            assert_eq!(missing.missing.len(), 4, "{:?}", missing.missing);
            assert!(missing.missing.iter().all(|m| m.starts_with("exec `qemu-img`")), "{:?}", missing.missing);
            assert!(missing.tables.contains("program = \"qemu-img\""), "{}", missing.tables);
        }
        Err(other) => panic!("expected missing grants, got {other}"),
        Ok(_) => panic!("loaded without its qemu-img grants"),
    }

    let cpi = load(relocated).await.expect("the QEMU component loads with its state granted elsewhere");
    let disk = support::unique_name("disk");
    let err = cpi
        .call("create_disk", &params(json!({"name": disk, "size_mb": 16})), &CallOptions::default())
        .await
        .expect_err("denied");
    assert_eq!(err.kind, ErrorKind::Denied, "{err:?}");
    assert!(err.message.contains("outside the granted directories"), "{}", err.message);
    let vm = support::unique_name("vm");
    let err = cpi
        .call(
            "create_vm",
            &params(json!({"name": vm, "image": "empty", "cpus": 1, "memory_mb": 64})),
            &CallOptions::default(),
        )
        .await
        .expect_err("denied");
    assert_eq!(err.kind, ErrorKind::Denied, "{err:?}");

    for created in [format!("disks/{disk}"), format!("vms/{vm}")] {
        assert!(!elsewhere.join(&created).exists(), "{created} was left in the granted directory");
        assert!(!Path::new("/var/lib/omni-cpi/qemu-component").join(&created).exists(), "{created} was created");
    }
    let has = cpi.call("has_disk", &params(json!({ "disk": disk })), &CallOptions::default()).await.expect("has_disk");
    assert_eq!(has.result, Some(json!(false)));
    let listed = cpi.call("list_vms", &Params::new(), &CallOptions::default()).await.expect("list_vms");
    assert_eq!(listed.result, Some(json!([])));
    let denied: Vec<Value> = std::fs::read_to_string(&audit)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("audit line is JSON"))
        .filter(|e| e["decision"] == "denied")
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(denied.iter().all(|e| e["argv"][0] == "qemu-img"), "{denied:?}");
    assert!(
        denied.iter().all(|e| e["reason"].as_str().unwrap_or_default().contains("working directory")),
        "{denied:?}"
    );
}

/// A different file saved under the name of a granted plugin (`elsewhere/omni_cpi_adversary.wasm`,
/// or the same bytes copied anywhere) gets none of the entry's grants: the entry binds its
/// `source`, never a file name. The loader refuses it and says which entry it resembles.
#[tokio::test]
async fn a_squatting_copy_of_a_granted_component_does_not_load() {
    let Some(f) = Fixture::new() else { return };
    let policy = f.policy("");
    let elsewhere = f.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    let squatter = elsewhere.join(f.wasm.file_name().expect("file name"));
    std::fs::copy(&f.wasm, &squatter).expect("copy");
    let renamed = elsewhere.join("adversary.wasm");
    std::fs::copy(&f.wasm, &renamed).expect("copy");
    let loader = omni_cpi::Loader::new(policy, Some(f.dir.path().join("cache"))).expect("loader");
    for copy in [&squatter, &renamed] {
        match loader.load(copy).await {
            Err(omni_cpi::CpiLoadError::Unbound(unbound)) => {
                assert_eq!(unbound.resembles.as_ref().map(|(name, _)| name.as_str()), Some("adversary"));
                assert!(unbound.toml.contains("source = "), "{}", unbound.toml);
            }
            Err(other) => panic!("{}: wrong refusal: {other}", copy.display()),
            Ok(_) => panic!("{} loaded with another file's grants", copy.display()),
        }
    }
    assert!(f.audit_entries().is_empty(), "nothing ran");
    assert!(loader.load(&f.wasm).await.is_ok(), "the bound file itself loads");
}

/// `--timeout` reaches a component: it shortens the call (and every exec in it), and a timeout
/// beyond what the operator granted is refused before anything runs.
#[tokio::test]
async fn a_caller_timeout_shortens_a_component_call_and_cannot_lengthen_it() {
    let f = fixture!();
    let cpi = f.load().await;
    let short = CallOptions { timeout: Some(Duration::from_millis(300)), ..CallOptions::default() };
    let started = Instant::now();
    let err = cpi.call("exec", &params(json!({"name": "x", "cmd": ["loop"]})), &short).await.expect_err("loops");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(err.message.contains("300ms"), "{}", err.message);
    assert!(started.elapsed() < Duration::from_millis(TIME_LIMIT_MS), "took {:?}", started.elapsed());

    let long = CallOptions { timeout: Some(Duration::from_secs(60)), ..CallOptions::default() };
    let err = cpi.check("exec", &params(json!({"name": "x", "cmd": ["ok"]})), &long).expect_err("beyond the limit");
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err:?}");
    assert!(err.message.contains("1.5s") && err.message.contains("call_timeout"), "{}", err.message);
    still_works(&cpi).await;
}

/// Both forms check parameters with the same code: a component refuses a list where a string
/// goes and a NUL byte with the very message a seed-format spec gives, accepts a boolean as text
/// like a spec, and refuses a leading `-` in a name (it cannot see where the plugin puts it)
/// while `cmd`, an argv of its own, may carry options.
#[tokio::test]
async fn a_component_and_a_spec_refuse_bad_parameters_alike() {
    let f = fixture!();
    let component = f.load().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let spec_path = dir.path().join("seed.json");
    std::fs::write(
        &spec_path,
        r#"{"name": "seed", "type": "container", "validation": {"required_commands": ["echo"]},
            "actions": {"exec": {"command": "echo {name} {cmd}", "params": ["name", "cmd"]}}}"#,
    )
    .expect("spec");
    let spec = omni_cpi::JsonCpi::load_unrestricted(&spec_path).expect("seed spec loads");
    let options = CallOptions::default();
    for bad in [json!({"name": ["a", "b"], "cmd": ["ok"]}), json!({"name": "a\u{0}b", "cmd": ["ok"]})] {
        let from_spec = spec.plan("exec", &params(bad.clone()), &options).expect_err("spec refuses");
        let from_component = component.check("exec", &params(bad.clone()), &options).expect_err("component refuses");
        assert_eq!(from_spec.kind, ErrorKind::InvalidArgument);
        assert_eq!((from_spec.kind, &from_spec.message), (from_component.kind, &from_component.message), "{bad}");
    }
    assert!(component.check("exec", &params(json!({"name": true, "cmd": ["ok"]})), &options).is_ok());
    let dash = component.check("exec", &params(json!({"name": "--privileged", "cmd": ["ok"]})), &options);
    assert_eq!(dash.expect_err("a name is not an option").param.as_deref(), Some("name"));
    assert!(component.check("exec", &params(json!({"name": "x", "cmd": ["sh", "-c", "true"]})), &options).is_ok());
    // The adversary implements only exec; the WIT mapping checks every standard action.
    use omni_cpi::contract::catalogue::CpiKind;
    use omni_cpi::wasm::dispatch::WitCall;
    let err =
        WitCall::parse(CpiKind::Container, "stop_container", &params(json!({"name": "x", "stop_timeout": "soon"})));
    assert!(err.expect_err("an integer").message.contains("whole number"));
    assert!(WitCall::parse(CpiKind::Container, "stop_container", &params(json!({"name": "x", "stop_timeout": "5"})))
        .is_ok());
}

/// An operator can see what an unknown plugin asks for before granting it anything: `info` on a
/// component no policy entry binds (or whose entry lacks grants) shows its requests, what is
/// missing and one TOML document that would grant it; nothing runs but `describe()`.
#[tokio::test]
async fn info_shows_an_ungranted_component_with_the_toml_that_would_grant_it() {
    let f = fixture!();
    let omni = |policy: Option<&Path>, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_omni-cpi"));
        command.env_remove("OMNI_CPI_POLICY").arg("--cache-dir").arg(f.dir.path().join("cli-cache"));
        if let Some(policy) = policy {
            command.arg("--policy").arg(policy);
        }
        command.args(args).output().expect("omni-cpi runs")
    };
    let wasm = f.wasm.to_str().expect("utf-8");
    let out = omni(None, &["-o", "json", "info", wasm]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((info["loads"].as_bool(), info["bound"].as_bool()), (Some(false), Some(false)), "{info}");
    assert_eq!(info["capabilities"]["requested"]["dirs"], json!([["/sandbox", false], ["/scratch", true]]));
    let toml_text = info["toml"].as_str().expect("toml");
    let parsed: toml::Table = toml_text.parse().unwrap_or_else(|e| panic!("one TOML document: {e}\n{toml_text}"));
    let entry = parsed["plugins"].as_table().and_then(|p| p.values().next()).expect("one entry");
    assert!(entry.get("source").is_some() && entry.get("sha256").is_some(), "{toml_text}");
    assert_eq!(entry["fs"].as_array().map(Vec::len), Some(2), "{toml_text}");
    assert_eq!(entry["env"].as_array().map(Vec::len), Some(1), "{toml_text}");
    assert!(f.audit_entries().is_empty(), "nothing ran");

    // Bound, but without the scratch directory: the missing grant, and the tables to paste.
    let text = f.policy_text("").replace("[[plugins.adversary.fs]]\n            host = \"scratch\"\n            guest = \"/scratch\"\n            mode = \"rw\"", "");
    let policy = f.dir.path().join("partial.toml");
    std::fs::write(&policy, text).expect("policy");
    let out = omni(Some(&policy), &["info", "adversary"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("policy entry `adversary` lacks") && said.contains("directory `/scratch` (rw)"), "{said}");
    assert!(said.contains("[[plugins.adversary.fs]]\nhost = \"/scratch\""), "{said}");
    let out = omni(Some(&policy), &["-o", "json", "info", "adversary"]);
    let info: Value = serde_json::from_slice(&out.stdout).expect("json");
    let tables = info["toml"].as_str().expect("toml");
    assert!(tables.starts_with("[[plugins.adversary.fs]]"), "only what pastes after the entry: {tables}");
    assert!(tables.parse::<toml::Table>().is_ok(), "{tables}");
}

/// The SDK's `describe_actions` is the catalogue: the adversary (container) and the test director
/// describe themselves with it, listing every action of their kind with exactly the catalogue's
/// parameters, and what they did not implement is declared unsupported (the SDK's defaults answer).
#[tokio::test]
async fn the_sdk_describes_actions_from_the_catalogue() {
    use omni_cpi::contract::catalogue;
    let Some(adversary) = support::plugin_wasm("omni_cpi_adversary") else { return };
    let Some(director) = support::plugin_wasm("omni_cpi_testdirector") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let host = ComponentHost::new(Some(dir.path().join("cache"))).expect("engine");
    for (wasm, implemented) in [
        (adversary, vec!["exec", "list_containers"]),
        (
            director,
            vec![
                "create_vm",
                "delete_vm",
                "start_vm",
                "stop_vm",
                "reboot_vm",
                "has_vm",
                "inspect_vm",
                "list_vms",
                "set_vm_metadata",
            ],
        ),
    ] {
        let (_, _, description) = ComponentCpi::describe_file(&host, &wasm).await.expect("describes itself");
        let wit_actions: Vec<&str> = catalogue::wit_actions(description.kind).collect();
        let described: Vec<&str> = description.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(described, wit_actions, "{}: every action of its kind", wasm.display());
        for action in &description.actions {
            let params: Vec<(&str, bool)> = action.params.iter().map(|(n, r, _)| (n.as_str(), *r)).collect();
            let standard: Vec<(&str, bool)> = catalogue::standard_params(description.kind, &action.name)
                .iter()
                .map(|p| (p.name, p.required))
                .collect();
            assert_eq!(params, standard, "{}: parameters of `{}`", wasm.display(), action.name);
            assert_eq!(action.unsupported.is_none(), implemented.contains(&action.name.as_str()), "{}", action.name);
        }
    }
}

/// A small HTTP/1.1 server on 127.0.0.1 for the `wasi:http` tests, counting the connections it
/// takes: `/ok` answers `hello`, `/big` 200 kB, `/slow` nothing for 10 s, `/redirect` a 302 to
/// `location`.
struct Upstream {
    address: std::net::SocketAddr,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(location: &str) -> Upstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (count, location) = (connections.clone(), location.to_string());
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let location = location.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.is_ok_and(|n| n == 1) {
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let (status, extra, body) = match path.split('?').next().unwrap_or("/") {
                        "/ok" => ("200 OK", String::new(), "hello".to_string()),
                        "/big" => ("200 OK", String::new(), "b".repeat(200_000)),
                        "/slow" => {
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            ("200 OK", String::new(), "late".to_string())
                        }
                        "/redirect" => ("302 Found", format!("Location: {location}\r\n"), String::new()),
                        _ => ("404 Not Found", String::new(), String::new()),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Upstream { address, connections, server }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Two gates, as for programs: a component of omni:cpi@0.3.0 reaches only a host and port its
/// `network-requests()` asked for AND the operator granted. Granted but not requested: refused,
/// nothing sent. Requested but not granted (or on another port): the load stops, naming the grant
/// to paste. A request that is not a bare host and real port stops the load too. At load the
/// plugin can run nothing and reach nothing. A component built against 0.2.0 (a prebuilt
/// fixture) cannot request: the grants alone apply to it, as before.
#[tokio::test]
async fn wasi_http_needs_both_the_request_and_the_grant() {
    let f = fixture!();
    let upstream = Upstream::start("http://127.0.0.1:9/").await;
    let port = upstream.address.port();
    let url = format!("http://127.0.0.1:{port}/ok");
    let grant = format!("[[plugins.adversary.network]]\nhost = \"127.0.0.1\"\nport = {port}\n");
    let requesting = |hosts: &str| format!("[plugins.adversary.settings]\nnetwork = \"{hosts}\"\n");

    let unrequested = f.load_with(&f.policy(&grant), &f.wasm).await.expect("a grant alone loads");
    assert!(unrequested.sandbox().network.is_empty(), "{:?}", unrequested.sandbox().network);
    let err = behave(&unrequested, &["http", "GET", &url]).await.expect_err("granted, not requested");
    assert_eq!(err.kind, ErrorKind::Denied, "{err:?}");
    assert_eq!(upstream.connections(), 0, "a request the plugin did not ask for reached the server");
    let audited: Vec<Value> = f.audit_entries().into_iter().filter(|e| e["program"] == "http").collect();
    let reason = audited.last().and_then(|e| e["reason"].as_str()).unwrap_or_default().to_string();
    assert!(
        reason.contains("not requested by the plugin") && reason.contains(&format!("127.0.0.1:{port}")),
        "{reason}"
    );

    let other_port = if port == u16::MAX { port - 1 } else { port + 1 };
    let ungranted = [
        (requesting(&format!("127.0.0.1:{port}")), port),
        (requesting(&format!("127.0.0.1:{other_port}")) + &grant, other_port),
    ];
    for (policy, wanted) in ungranted {
        let err = f.load_with(&f.policy(&policy), &f.wasm).await.err().expect("requested, not granted");
        let LoadError::MissingGrants(missing) = &err else { panic!("not a missing grant: {err}") };
        assert_eq!(missing.missing, [format!("network host `127.0.0.1` port {wanted} (a test asked for it)")]);
        let table = format!("[[plugins.adversary.network]]\nhost = \"127.0.0.1\"\nport = {wanted}\n");
        assert!(missing.tables.contains(&table), "{}", missing.tables);
    }

    for (bad, named) in
        [("evil.example/x:80", "host `evil.example/x` port 80"), ("api.example:0", "port 0"), ("a@b:80", "`a@b`")]
    {
        let err = f.load_with(&f.policy(&requesting(bad)), &f.wasm).await.err().expect("a malformed request");
        assert!(matches!(err, LoadError::NetworkRequests { .. }), "{err}");
        assert!(err.to_string().contains("network-requests() asks for") && err.to_string().contains(named), "{err}");
        assert!(err.to_string().contains("as written in a policy"), "{err}");
    }

    // At load, network-requests() reads settings and nothing else: its exec and its request are
    // refused and audited under its own name, and nothing is sent.
    let audited_before = f.audit_entries().len();
    f.load_with(&f.policy(&(requesting("act-at-load") + &grant)), &f.wasm).await.expect("loads");
    let at_load: Vec<Value> = f.audit_entries().into_iter().skip(audited_before).collect();
    let decisions: Vec<(&str, &str, &str)> = at_load
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default();
            (field("action"), field("program"), field("decision"))
        })
        .collect();
    assert_eq!(
        decisions,
        [("network-requests", "sh", "denied"), ("network-requests", "http", "denied")],
        "{at_load:?}"
    );
    let reasons: Vec<&str> = at_load.iter().map(|e| e["reason"].as_str().unwrap_or_default()).collect();
    assert!(reasons[0].contains("runs nothing while it is loaded"), "{reasons:?}");
    assert!(reasons[1].contains("sends nothing while it is loaded"), "{reasons:?}");
    assert_eq!(upstream.connections(), 0);

    let older = support::repo_root().join("tests/fixtures/components/adversary-wit-0.2.0.wasm");
    let cpi = f.load_with(&f.policy(&grant), &older).await.expect("a 0.2.0 component loads");
    assert_eq!(cpi.interface, omni_cpi::wasm::Interface::V0_2);
    assert_eq!(cpi.description.requests.network, None, "0.2.0 cannot request hosts");
    let out = behave(&cpi, &["http", "GET", &url]).await.expect("0.2.0 reaches what is granted");
    assert_eq!(out.stdout, "200\nhello");
    assert_eq!(upstream.connections(), 1);
    let err =
        behave(&cpi, &["http", "GET", &format!("http://127.0.0.1:{other_port}/")]).await.expect_err("and nothing else");
    assert_eq!(err.kind, ErrorKind::Denied, "{err:?}");
    let audited = f.audit_entries();
    let reason = audited.last().and_then(|e| e["reason"].as_str()).unwrap_or_default();
    assert!(reason.contains(&format!("no network grant names 127.0.0.1:{other_port}")), "{reason}");
}

/// `wasi:http` under the network grants: deny by default; a grant of 127.0.0.1:PORT reaches that
/// port only; a granted *name* that resolves to a loopback address is refused (the rebinding
/// rule); bodies and waits are bounded; a redirect is the plugin's to see, not followed; a dry run
/// sends nothing. Each request is one audit line without its query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_http_reaches_only_granted_hosts_and_addresses() {
    let f = fixture!();
    let elsewhere = Upstream::start("http://127.0.0.1:9/").await;
    let upstream = Upstream::start(&format!("http://{}/ok", elsewhere.address)).await;
    let port = upstream.address.port();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    // No grant: refused before anything is sent.
    let denied = f.load().await;
    let err = behave(&denied, &["http", "GET", &url("/ok?token=s3cret")]).await.expect_err("no grant");
    assert_eq!(err.kind, ErrorKind::Denied, "{err:?}");
    assert_eq!(upstream.connections(), 0, "a request without a grant reached the server");

    let grant = format!(
        "[plugins.adversary.settings]\nnetwork = \"127.0.0.1:{port}\"\n\
         [[plugins.adversary.network]]\nhost = \"127.0.0.1\"\nport = {port}\n"
    );
    // Each wait for an answer is bounded like an exec: 400 ms, within the call's 1500 ms.
    let text = f.policy_text(&grant).replace("timeout_ms = 1500", "timeout_ms = 1500\nexec_timeout_ms = 400");
    let policy =
        Policy::parse(&f.dir.path().join("omni-cpi.toml"), &text, "/usr/local/bin:/usr/bin:/bin").expect("policy");
    let granted = f.load_with(&policy, &f.wasm).await.expect("loads");
    let out = behave(&granted, &["http", "GET", &url("/ok?token=s3cret")]).await.expect("granted");
    assert_eq!(out.stdout, "200\nhello");
    let out = behave(&granted, &["http", "POST", &url("/redirect"), "{\"a\": 1}"]).await.expect("redirect");
    assert!(out.stdout.starts_with("302"), "{}", out.stdout);
    assert_eq!(elsewhere.connections(), 0, "the host followed a redirect");
    let err = behave(&granted, &["http", "GET", &format!("http://{}/ok", elsewhere.address)]).await.expect_err("port");
    assert_eq!(err.kind, ErrorKind::Denied, "another port of a granted host: {err:?}");
    let err = behave(&granted, &["http", "GET", &url("/big")]).await.expect_err("too big");
    assert!(err.message.contains("body size exceeds limit: 65536"), "{err:?}");
    let err = behave(&granted, &["http", "GET", &url("/slow")]).await.expect_err("slow");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    // The request's own bound, not the call's ("did not finish within").
    assert!(err.message.contains("HttpResponseTimeout"), "{err:?}");
    // A flood: one call may have 32 requests in flight; the rest are refused at once, unsent.
    let before = upstream.connections();
    let out = behave(&granted, &["http-flood", "40", &url("/slow")]).await.expect("flood");
    assert_eq!(out.stdout, "answered=32 refused=8");
    assert_eq!(upstream.connections() - before, 32, "refused requests reached the server");
    let plan = granted
        .plan("exec", &params(json!({"name": "x", "cmd": ["http", "GET", url("/ok")]})), &CallOptions::default())
        .await;
    assert!(plan.is_err(), "a dry run's request was answered: {plan:?}");
    assert_eq!(elsewhere.connections(), 0);
    let sent = upstream.connections();

    // A granted name that resolves to a loopback address: refused, nothing sent.
    let by_name = format!(
        "[plugins.adversary.settings]\nnetwork = \"localhost:{port}\"\n\
         [[plugins.adversary.network]]\nhost = \"localhost\"\nport = {port}\n"
    );
    let named = f.load_with(&f.policy(&by_name), &f.wasm).await.expect("loads");
    let err = behave(&named, &["http", "GET", &format!("http://localhost:{port}/ok")]).await.expect_err("rebinding");
    assert_eq!(err.kind, ErrorKind::Denied, "{err:?}");
    assert_eq!(upstream.connections(), sent, "a name granted for public addresses reached loopback");
    still_works(&named).await;

    let requests: Vec<Value> = f.audit_entries().into_iter().filter(|e| e["program"] == "http").collect();
    let text = serde_json::to_string(&requests).expect("JSON");
    assert!(!text.contains("s3cret"), "the audit log shows a query: {text}");
    let decisions: Vec<(&str, Option<u64>)> =
        requests.iter().map(|e| (e["decision"].as_str().unwrap_or(""), e["http_status"].as_u64())).collect();
    assert_eq!(decisions[0], ("denied", None), "{text}");
    assert_eq!(decisions[1], ("allowed", Some(200)), "{text}");
    assert_eq!(requests[1]["argv"], json!(["GET", url("/ok")]), "{text}");
    assert!(decisions.contains(&("allowed", Some(302))), "{text}");
    assert!(text.contains("a dry run sends nothing"), "{text}");
    assert!(text.contains("localhost resolves to") && text.contains("grants the address itself"), "{text}");
}
