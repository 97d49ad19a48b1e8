//! cpis/vsphere.json through the real govc against vcsim, govmomi's vCenter simulator, on a
//! private loopback port: the conformance kit's director checks (clones of a template and empty
//! VMs), then typed errors, hardware and metadata as vSphere reports them, and disks. The
//! connection reaches the spec's processes only through the GOVC_* variables the test hands to
//! `JsonCpi::with_host_env`; this process's environment is left alone.

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use omni_cpi::conformance::{self, Options, Report, Verdict};
use omni_cpi::{json::spec, CallOptions, Cpi, CpiError, ErrorKind, JsonCpi, Outcome, Params};
use serde_json::{json, Value};

const USER: &str = "omni";
const PASSWORD: &str = "pass word; $(not run)";

/// A vcsim process (its default model: datacenter DC0, cluster DC0_C0, datastore LocalDS_0, the
/// template-like VMs DC0_H0_VM0, ...). Stopped by PID on drop.
struct Vcsim {
    child: Child,
    /// host:port it listens on.
    address: String,
    _dir: tempfile::TempDir,
}

impl Vcsim {
    fn start() -> Vcsim {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("vcsim.log");
        let mut child = Command::new("vcsim")
            .args(["-l", "127.0.0.1:0", "-username", USER, "-password", PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("vcsim log"))
            .spawn()
            .expect("vcsim starts");
        // vcsim prints `export GOVC_URL=https://USER:PASS@127.0.0.1:PORT/sdk GOVC_SIM_PID=N` once
        // it listens; port 0 lets the kernel pick a free port.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let address = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("GOVC_URL="))
            .and_then(|url| url.rsplit('@').next())
            .map(|rest| rest.trim_start_matches("https://").trim_end_matches("/sdk").to_string());
        match address {
            Some(address) if address.starts_with("127.0.0.1:") => Vcsim { child, address, _dir: dir },
            _ => {
                support::stop_child(&mut child);
                panic!(
                    "vcsim did not report its URL within 30 s (stdout: {line:?}); its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    }

    /// The GOVC_* environment of an operator who points govc at this simulator.
    fn env(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("GOVC_URL", format!("https://{}/sdk", self.address)),
            ("GOVC_USERNAME", USER.to_string()),
            ("GOVC_PASSWORD", PASSWORD.to_string()),
            ("GOVC_INSECURE", "1".to_string()),
            ("GOVC_DATACENTER", "DC0".to_string()),
            ("GOVC_DATASTORE", "LocalDS_0".to_string()),
            // The model has a standalone host and a cluster: two resource pools to choose from.
            ("GOVC_RESOURCE_POOL", "/DC0/host/DC0_C0/Resources".to_string()),
            ("GOVC_NETWORK", "VM Network".to_string()),
        ])
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        support::stop_child(&mut self.child);
    }
}

fn vsphere_available() -> bool {
    support::runtime_available("govc", &["govc", "version"])
        && support::runtime_available("vcsim (govmomi's vCenter simulator)", &["sh", "-c", "command -v vcsim"])
}

/// The shipped spec with `env` as the host environment (PATH from this process, nothing else).
fn vsphere_cpi(env: BTreeMap<&'static str, String>) -> Cpi {
    let path: PathBuf = support::cpi_path("vsphere");
    let loaded = spec::load_file(&path).unwrap_or_else(|e| panic!("cpis/vsphere.json loads:\n{e}"));
    Cpi::from(JsonCpi::unrestricted(loaded).with_host_env(move |var| {
        if var == "PATH" {
            std::env::var(var).ok()
        } else {
            env.get(var).cloned()
        }
    }))
}

fn object(value: Value) -> Params {
    match value {
        Value::Object(map) => map,
        _ => Params::new(),
    }
}

async fn kit(cpi: &Cpi, params: Value) -> Report {
    let options = Options { repeat: 2, parallel: 2, params: object(params), ..Options::default() };
    let mut progress = |r: &conformance::CheckResult| eprintln!("{}", conformance::report::progress_line(r));
    conformance::run(cpi, &options, &mut progress).await
}

/// Every director check ran and passed: vSphere supports them all.
fn assert_all_passed(report: &Report) {
    let failed: Vec<String> = report
        .results
        .iter()
        .filter_map(|r| match &r.verdict {
            Verdict::Failed(f) => Some(format!(
                "{}: expected {}, got {}\n  call: {}",
                r.id,
                f.expected,
                f.got,
                f.call.as_ref().map(|c| format!("{} {} -> {:?}", c.action, c.params, c.processes)).unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    assert!(failed.is_empty(), "{} failed checks:\n{}", report.cpi, failed.join("\n"));
    let ids: Vec<&str> = report.results.iter().map(|r| r.id).collect();
    for id in [
        "D-VM-01",
        "D-VM-02",
        "D-VM-03",
        "D-VM-04",
        "D-VM-05",
        "D-DISK-01",
        "D-DISK-02",
        "D-DISK-03",
        "D-DISK-04",
        "D-SNAP-01",
        "D-LEAK-01",
    ] {
        assert!(ids.contains(&id), "{id} did not run: {ids:?}");
    }
    assert_eq!(report.count(|v| matches!(v, Verdict::Skipped { .. })), 0, "vSphere supports every director check");
}

/// Names govc lists in the simulator, to prove the kit left nothing behind.
fn govc_find(env: &BTreeMap<&'static str, String>, args: &[&str]) -> String {
    let out = Command::new("govc")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // Like the spec: no session file (without HOME, govc would write .govmomi/ here).
        .env("GOVC_PERSIST_SESSION", "false")
        .stdin(Stdio::null())
        .output()
        .expect("govc runs");
    assert!(out.status.success(), "govc {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsphere_cpi_passes_the_director_checks_with_template_clones() {
    if !vsphere_available() {
        return;
    }
    let vcsim = Vcsim::start();
    let cpi = vsphere_cpi(vcsim.env());
    // The kit's default image for vsphere_cpi is the simulator's DC0_H0_VM0, cloned per VM.
    let report = kit(&cpi, json!({})).await;
    assert_all_passed(&report);
    let vms = govc_find(&vcsim.env(), &["find", "/DC0/vm", "-type", "m", "-name", "omni-conf-*"]);
    assert!(vms.trim().is_empty(), "VMs left behind: {vms}");
    let disks = govc_find(&vcsim.env(), &["datastore.ls", "omni-cpi-disks"]);
    assert!(!disks.contains("omni-conf-"), "disks left behind: {disks}");
    let snapshots = govc_find(&vcsim.env(), &["datastore.ls", "omni-cpi-snapshots"]);
    assert!(!snapshots.contains("omni-conf-"), "snapshots left behind: {snapshots}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsphere_cpi_passes_the_director_checks_with_empty_vms() {
    if !vsphere_available() {
        return;
    }
    let vcsim = Vcsim::start();
    let cpi = vsphere_cpi(vcsim.env());
    // No image: create_vm builds an empty VM (vm.create) on GOVC_NETWORK.
    assert_all_passed(&kit(&cpi, json!({ "image": null })).await);
}

async fn call(cpi: &Cpi, action: &str, params: Value) -> Result<Outcome, CpiError> {
    cpi.call(action, &object(params), &CallOptions::default()).await
}

async fn ok(cpi: &Cpi, action: &str, params: Value) -> Outcome {
    let shown = params.to_string();
    call(cpi, action, params).await.unwrap_or_else(|e| panic!("{action} {shown} fails: {e:?}"))
}

async fn fails(cpi: &Cpi, action: &str, params: Value, kind: ErrorKind) {
    let shown = params.to_string();
    match call(cpi, action, params).await {
        Ok(outcome) => panic!("{action} {shown} succeeded ({outcome:?}); expected {kind}"),
        Err(e) => assert_eq!(e.kind, kind, "{action} {shown}: {e:?}"),
    }
}

/// The member of an object whatever its case: govc's JSON used Go field names (`Config`,
/// `NumCPU`) before 0.31 and vSphere's (`config`, `numCPU`) after.
fn member<'a>(value: &'a Value, name: &str) -> &'a Value {
    value
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
        .unwrap_or(&Value::Null)
}

fn path<'a>(value: &'a Value, names: &[&str]) -> &'a Value {
    names.iter().fold(value, |v, name| member(v, name))
}

/// The one VM `inspect_vm` reports.
async fn inspect(cpi: &Cpi, vm: &str) -> Value {
    let outcome = ok(cpi, "inspect_vm", json!({ "vm": vm })).await;
    let result = outcome.result.unwrap_or(Value::Null);
    let vms = member(&result, "virtualMachines").as_array().cloned().unwrap_or_default();
    assert_eq!(vms.len(), 1, "inspect_vm {vm} reports one VM: {result}");
    vms[0].clone()
}

/// Values of the VM's extraConfig entries with this key.
fn extra_config(vm: &Value, key: &str) -> Vec<String> {
    path(vm, &["config", "extraConfig"])
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| member(e, "key").as_str() == Some(key))
                .filter_map(|e| member(e, "value").as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn power_state(vm: &Value) -> String {
    path(vm, &["runtime", "powerState"]).as_str().unwrap_or_default().to_string()
}

fn unique(kind: &str) -> String {
    support::unique_name(&format!("vs{kind}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsphere_cpi_reports_hardware_metadata_disks_and_typed_errors() {
    if !vsphere_available() {
        return;
    }
    let vcsim = Vcsim::start();
    let cpi = vsphere_cpi(vcsim.env());
    let vm = unique("vm");
    let canary = tempfile::tempdir().expect("temp dir");
    let pwned = canary.path().join("pwned");
    let hostile = format!("w x; $(touch {0}) `touch {0}` 'q\"", pwned.display());

    // A clone of the template with CPUs, memory and metadata applied by the post hooks, powered on.
    let created = ok(
        &cpi,
        "create_vm",
        json!({"name": vm, "image": "DC0_H0_VM0", "cpus": 2, "memory_mb": 256, "metadata": {"role": hostile}}),
    )
    .await;
    assert_eq!(created.result, Some(json!({ "id": vm })));
    let info = inspect(&cpi, &vm).await;
    assert_eq!(member(&info, "name").as_str(), Some(vm.as_str()));
    assert_eq!(path(&info, &["config", "hardware", "numCPU"]), &json!(2));
    assert_eq!(path(&info, &["config", "hardware", "memoryMB"]), &json!(256));
    assert_eq!(extra_config(&info, "guestinfo.omni.role"), vec![hostile.clone()], "metadata stays one value");
    assert_eq!(power_state(&info), "poweredOn");
    assert!(!pwned.exists(), "a metadata value ran as a command");

    ok(&cpi, "set_vm_metadata", json!({"vm": vm, "metadata": {"zone": "a", "tier": "web"}})).await;
    let info = inspect(&cpi, &vm).await;
    assert_eq!(extra_config(&info, "guestinfo.omni.zone"), vec!["a".to_string()]);
    assert_eq!(extra_config(&info, "guestinfo.omni.tier"), vec!["web".to_string()]);
    assert_eq!(ok(&cpi, "has_vm", json!({ "vm": vm })).await.result, Some(json!(true)));
    let listed = ok(&cpi, "list_vms", json!({})).await.result.unwrap_or(Value::Null);
    assert!(listed.as_array().is_some_and(|a| a.contains(&json!(vm))), "list_vms includes {vm}: {listed}");
    assert!(listed.as_array().is_some_and(|a| a.contains(&json!("DC0_H0_VM0"))), "names, not paths: {listed}");

    // Power: idempotent start and stop, reboot only when running.
    ok(&cpi, "start_vm", json!({ "vm": vm })).await;
    ok(&cpi, "stop_vm", json!({ "vm": vm })).await;
    assert_eq!(power_state(&inspect(&cpi, &vm).await), "poweredOff");
    ok(&cpi, "stop_vm", json!({ "vm": vm })).await;
    fails(&cpi, "reboot_vm", json!({ "vm": vm }), ErrorKind::InvalidState).await;
    ok(&cpi, "start_vm", json!({ "vm": vm })).await;
    ok(&cpi, "reboot_vm", json!({ "vm": vm })).await;
    assert_eq!(power_state(&inspect(&cpi, &vm).await), "poweredOn");

    // Names are ids: a second VM of the same name, cloned or empty, already exists.
    fails(&cpi, "create_vm", json!({"name": vm, "image": "DC0_H0_VM0"}), ErrorKind::AlreadyExists).await;
    fails(&cpi, "create_vm", json!({ "name": vm }), ErrorKind::AlreadyExists).await;

    // Unknown VMs are typed not_found everywhere; has_vm says false.
    let ghost = unique("ghost");
    assert_eq!(ok(&cpi, "has_vm", json!({ "vm": ghost })).await.result, Some(json!(false)));
    fails(&cpi, "inspect_vm", json!({ "vm": ghost }), ErrorKind::NotFound).await;
    for action in ["start_vm", "stop_vm", "reboot_vm", "delete_vm"] {
        fails(&cpi, action, json!({ "vm": ghost }), ErrorKind::NotFound).await;
    }
    fails(&cpi, "set_vm_metadata", json!({"vm": ghost, "metadata": {"a": "b"}}), ErrorKind::NotFound).await;
    fails(&cpi, "create_vm", json!({"name": unique("vm"), "image": ghost}), ErrorKind::NotFound).await;

    // Disks: typed errors around a real attachment.
    let disk = unique("d");
    assert_eq!(ok(&cpi, "create_disk", json!({"name": disk, "size_mb": 16})).await.result, Some(json!({ "id": disk })));
    fails(&cpi, "create_disk", json!({"name": disk, "size_mb": 16}), ErrorKind::AlreadyExists).await;
    assert_eq!(ok(&cpi, "has_disk", json!({ "disk": disk })).await.result, Some(json!(true)));
    ok(&cpi, "attach_disk", json!({"vm": vm, "disk": disk})).await;
    fails(&cpi, "attach_disk", json!({"vm": vm, "disk": disk}), ErrorKind::AlreadyExists).await;
    fails(&cpi, "attach_disk", json!({"vm": vm, "disk": unique("nodisk")}), ErrorKind::NotFound).await;
    fails(&cpi, "attach_disk", json!({"vm": ghost, "disk": disk}), ErrorKind::NotFound).await;
    let on_vm = ok(&cpi, "list_disks", json!({ "vm": vm })).await.result;
    assert_eq!(on_vm, Some(json!([disk])), "the template's own disk is not one of ours");
    let all = ok(&cpi, "list_disks", json!({})).await.result.unwrap_or(Value::Null);
    assert!(all.as_array().is_some_and(|a| a.contains(&json!(disk))), "list_disks includes {disk}: {all}");

    let snapshot = unique("snap");
    let snap = ok(&cpi, "snapshot_disk", json!({"disk": disk, "snapshot": snapshot})).await;
    assert_eq!(snap.result, Some(json!({ "id": snapshot })));
    fails(&cpi, "snapshot_disk", json!({"disk": disk, "snapshot": snapshot}), ErrorKind::AlreadyExists).await;
    fails(&cpi, "snapshot_disk", json!({"disk": unique("nodisk"), "snapshot": unique("snap")}), ErrorKind::NotFound)
        .await;
    ok(&cpi, "delete_snapshot", json!({ "snapshot": snapshot })).await;
    fails(&cpi, "delete_snapshot", json!({ "snapshot": snapshot }), ErrorKind::NotFound).await;

    // Deleting the VM detaches our disk first, so the disk survives it.
    ok(&cpi, "delete_vm", json!({ "vm": vm })).await;
    assert_eq!(ok(&cpi, "has_vm", json!({ "vm": vm })).await.result, Some(json!(false)));
    assert_eq!(ok(&cpi, "has_disk", json!({ "disk": disk })).await.result, Some(json!(true)));
    ok(&cpi, "delete_disk", json!({ "disk": disk })).await;
    fails(&cpi, "delete_disk", json!({ "disk": disk }), ErrorKind::NotFound).await;
    assert_eq!(ok(&cpi, "has_disk", json!({ "disk": disk })).await.result, Some(json!(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_unset_vcenter_is_unavailable() {
    if !vsphere_available() {
        return;
    }
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let mut env = BTreeMap::from([("GOVC_INSECURE", "1".to_string())]);
    env.insert("GOVC_URL", format!("https://127.0.0.1:{port}/sdk"));
    let cpi = vsphere_cpi(env);
    fails(&cpi, "has_vm", json!({"vm": "any"}), ErrorKind::Unavailable).await;
    fails(&cpi, "list_vms", json!({}), ErrorKind::Unavailable).await;
    // No GOVC_URL at all: govc asks for one.
    let cpi = vsphere_cpi(BTreeMap::new());
    fails(&cpi, "inspect_vm", json!({"vm": "any"}), ErrorKind::Unavailable).await;
}
