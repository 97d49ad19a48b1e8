//! The bare-metal director CPI (`cpis/baremetal.json`) against real BMCs: OpenIPMI's `ipmi_sim`
//! listening for IPMI 2.0 (RMCP+) on 127.0.0.1, driven by `ipmitool -I lanplus`.
//!
//! `ipmi_sim` runs two ways here. [`Chassis::Full`] gives it the external chassis-control program
//! `tests/fixtures/ipmi/chassis-control`, the interface OpenIPMI documents for a BMC that drives real
//! hardware: power on, off, reset, cycle, soft-off and the boot device all work, and the simulated
//! machine keeps its state in files the tests read. [`Chassis::StartcmdOnly`] uses `startcmd` (a
//! `sleep` process is the machine) through the VM serial codec: ipmi_sim 2.0.33 can then power on and
//! off, but answers "Invalid data field" to reset, soft-off and the boot device, so it stands for a
//! BMC that cannot set boot devices.

use crate::support;

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use omni_cpi::conformance::{self, Options, Verdict};
use omni_cpi::{json::spec, CallOptions, Cpi, CpiError, ErrorKind, JsonCpi, Outcome, Params};
use serde_json::{json, Value};

const USER: &str = "admin";

/// How the simulated BMC drives its machine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Chassis {
    /// `chassis_control` program: every power operation and the boot device.
    Full,
    /// `startcmd` only: power on and off start and kill a `sleep` process; nothing else.
    StartcmdOnly,
}

/// Both programs the tests need; under CI a missing one fails the test.
fn ipmi_available() -> bool {
    support::runtime_available("ipmitool", &["ipmitool", "-V"])
        && support::runtime_available("ipmi_sim (OpenIPMI)", &["sh", "-c", "command -v ipmi_sim"])
}

/// A password no other test uses (IPMI 1.5 passwords, which ipmi_sim's user table holds, are at
/// most 16 bytes).
fn unique_password() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("pw{:08x}{:04x}", nanos ^ std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff)
}

/// One `ipmi_sim` BMC on a free UDP port of 127.0.0.1, with its configuration, persistent state and
/// (for [`Chassis::Full`]) its machine's state in a private directory. Killed by PID on drop, together
/// with any process it started.
struct Bmc {
    child: Child,
    port: u16,
    password: String,
    chassis: Chassis,
    dir: tempfile::TempDir,
}

impl Bmc {
    /// Starts a BMC on a free port; a port another socket took in the meantime means a new try.
    fn start(chassis: Chassis, password: &str) -> Bmc {
        let mut errors = Vec::new();
        for _ in 0..5 {
            match Bmc::launch(chassis, password) {
                Ok(bmc) => return bmc,
                Err(e) => errors.push(e),
            }
        }
        panic!("ipmi_sim did not come up on 127.0.0.1:\n{}", errors.join("\n"));
    }

    fn launch(chassis: Chassis, password: &str) -> Result<Bmc, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let machine = dir.path().join("machine");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&machine).expect("machine dir");
        std::fs::create_dir_all(&state).expect("state dir");
        let fixture = support::repo_root().join("tests/fixtures/ipmi/chassis-control");
        for path in [&fixture, &machine] {
            // ipmi_sim runs the chassis-control command line through a shell.
            assert!(!path.to_string_lossy().contains(char::is_whitespace), "{} has whitespace", path.display());
        }
        let port = free_udp_port();
        let machine_control = match chassis {
            Chassis::Full => format!("  chassis_control \"/bin/sh {} {}\"\n", fixture.display(), machine.display()),
            Chassis::StartcmdOnly => format!(
                "  serial 15 127.0.0.1 {} codec VM\n  startcmd \"sleep 600\"\n  startnow false\n  poweroff_wait 1\n  kill_wait 1\n",
                free_tcp_port()
            ),
        };
        let config = format!(
            "name \"omni-bmc\"\n\
             set_working_mc 0x20\n\
             \x20 startlan 1\n\
             \x20   addr 127.0.0.1 {port}\n\
             \x20   priv_limit admin\n\
             \x20   allowed_auths_callback md5\n\
             \x20   allowed_auths_user md5\n\
             \x20   allowed_auths_operator md5\n\
             \x20   allowed_auths_admin md5\n\
             \x20   guid a123456789abcdefa123456789abcdef\n\
             \x20 endlan\n\
             {machine_control}\
             \x20 user 2 true \"{USER}\" \"{password}\" admin 10 md5\n"
        );
        std::fs::write(dir.path().join("lan.conf"), config).expect("lan.conf");
        std::fs::write(
            dir.path().join("sim.emu"),
            "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n",
        )
        .expect("emu file");
        let log = std::fs::File::create(dir.path().join("ipmi_sim.log")).expect("log file");
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(dir.path().join("lan.conf"))
            .arg("-f")
            .arg(dir.path().join("sim.emu"))
            .arg("-s")
            .arg(&state)
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("ipmi_sim starts");
        // From here on, dropping `bmc` stops ipmi_sim.
        let mut bmc = Bmc { child, port, password: password.to_string(), chassis, dir };
        bmc.wait_ready()?;
        Ok(bmc)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("ipmi_sim exited ({status}): {}", self.log()));
            }
            // ipmi_sim binds with SO_REUSEADDR, so a second socket on the port would not make it
            // fail: make sure this one is alone there.
            if udp_sockets_on(self.port) > 1 {
                return Err(format!("another socket shares UDP port {}", self.port));
            }
            let out = self.ipmitool_raw(&["chassis", "power", "status"]);
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ipmitool got no answer within 15 s: {}; ipmi_sim log: {}",
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ipmi_sim.log")).unwrap_or_default()
    }

    /// What the CPI's inventory says about this BMC.
    fn entry(&self) -> String {
        format!("{USER}@127.0.0.1:{}", self.port)
    }

    /// A direct ipmitool call, independent of the CPI (the password through the environment too).
    fn ipmitool_raw(&self, args: &[&str]) -> Output {
        Command::new("ipmitool")
            .args(["-I", "lanplus", "-C", "3", "-N", "1", "-R", "2", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", USER, "-E"])
            .args(args)
            .env("IPMI_PASSWORD", &self.password)
            .stdin(Stdio::null())
            .output()
            .expect("ipmitool runs")
    }

    fn ipmitool(&self, args: &[&str]) -> String {
        let out = self.ipmitool_raw(args);
        assert!(out.status.success(), "ipmitool {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The power state the BMC reports: "on" or "off".
    fn power(&self) -> &'static str {
        let out = self.ipmitool(&["chassis", "power", "status"]);
        if out.contains("Chassis Power is on") {
            "on"
        } else if out.contains("Chassis Power is off") {
            "off"
        } else {
            panic!("unexpected power status: {out}")
        }
    }

    /// A file of the simulated machine ([`Chassis::Full`]): power, boot, boots, last_boot, log.
    fn machine(&self, file: &str) -> String {
        assert_eq!(self.chassis, Chassis::Full, "only the chassis-control machine keeps files");
        std::fs::read_to_string(self.dir.path().join("machine").join(file)).unwrap_or_default().trim().to_string()
    }

    /// Processes ipmi_sim started (the `startcmd` machine).
    fn machine_processes(&self) -> Vec<u32> {
        children_of(self.child.id())
    }

    fn stop(&mut self) {
        for pid in self.machine_processes() {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
        support::stop_child(&mut self.child);
    }
}

impl Drop for Bmc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free UDP port").port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free TCP port").port()
}

/// Sockets bound to 127.0.0.1:PORT (UDP), from /proc/net/udp.
fn udp_sockets_on(port: u16) -> usize {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| t.lines().filter(|l| l.split_whitespace().nth(1) == Some(wanted.as_str())).count())
        .unwrap_or(0)
}

/// Live processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...; comm may contain spaces, so read after the last ')'.
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            fields.first().is_some_and(|state| *state != "Z") && fields.get(1) == Some(&parent.to_string().as_str())
        })
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The shipped spec with its state under `state`, this pool of machines, cipher suite 3 (the
/// strongest ipmi_sim 2.0.33 offers) and `password` as the only IPMI_PASSWORD its processes see.
fn baremetal_spec(state: &Path, machines: &[(&str, String)], extra: Value) -> spec::Spec {
    let path = support::cpi_path("baremetal");
    let mut loaded = spec::load_file(&path).unwrap_or_else(|e| panic!("{} loads:\n{e}", path.display()));
    let pool: serde_json::Map<String, Value> =
        machines.iter().map(|(name, entry)| (name.to_string(), Value::String(entry.clone()))).collect();
    loaded.default_settings.insert("state_dir".into(), json!(state));
    loaded.default_settings.insert("machines".into(), Value::Object(pool));
    loaded.default_settings.insert("cipher_suite".into(), json!(3));
    if let Value::Object(extra) = extra {
        loaded.default_settings.extend(extra);
    }
    loaded
}

fn baremetal(state: &Path, machines: &[(&str, String)], password: Option<&str>) -> JsonCpi {
    with_password(baremetal_spec(state, machines, json!({})), password)
}

fn with_password(loaded: spec::Spec, password: Option<&str>) -> JsonCpi {
    let password = password.map(str::to_string);
    JsonCpi::unrestricted(loaded).with_host_env(move |name| match name {
        "IPMI_PASSWORD" => password.clone(),
        other => std::env::var(other).ok(),
    })
}

fn params(value: Value) -> Params {
    match value {
        Value::Object(map) => map,
        other => panic!("parameters are an object, got {other}"),
    }
}

async fn call(cpi: &JsonCpi, action: &str, p: Value) -> Result<Outcome, CpiError> {
    cpi.call(action, &params(p), &CallOptions::default()).await
}

async fn ok(cpi: &JsonCpi, action: &str, p: Value) -> Outcome {
    call(cpi, action, p.clone()).await.unwrap_or_else(|e| panic!("{action} {p} fails: {e}"))
}

async fn fails(cpi: &JsonCpi, action: &str, p: Value, kind: ErrorKind) -> CpiError {
    match call(cpi, action, p.clone()).await {
        Ok(o) => panic!("{action} {p} succeeded, expected {kind}: {:?}", o.result),
        Err(e) => {
            assert_eq!(e.kind, kind, "{action} {p}: {e}");
            e
        }
    }
}

async fn listed(cpi: &JsonCpi) -> Vec<String> {
    let out = ok(cpi, "list_vms", json!({})).await;
    out.result
        .and_then(|r| r.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Names in a directory of the CPI's state (claims/ or machines/).
fn entries(state: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state.join(sub))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_kit_passes_against_ipmi_sim() {
    if !ipmi_available() {
        return;
    }
    let bmc = Bmc::start(Chassis::Full, &unique_password());
    let state = tempfile::tempdir().expect("state dir");
    let cpi = Cpi::from(baremetal(state.path(), &[("node1", bmc.entry())], Some(&bmc.password)));

    let started = Instant::now();
    let mut progress = |r: &conformance::CheckResult| eprintln!("{}", conformance::report::progress_line(r));
    let report = conformance::run(&cpi, &Options::default(), &mut progress).await;
    eprintln!("the director kit took {:.1} s against ipmi_sim", started.elapsed().as_secs_f64());

    let mut passed = Vec::new();
    for result in &report.results {
        match (&result.verdict, result.id) {
            (Verdict::Skipped { reason }, "D-DISK-01" | "D-DISK-02" | "D-DISK-03" | "D-DISK-04" | "D-SNAP-01") => {
                assert!(reason.contains("BMC"), "{} is skipped for the CPI's reason, got {reason}", result.id)
            }
            (Verdict::Passed, id) => passed.push(id),
            (verdict, id) => panic!("{id}: {verdict:?}"),
        }
    }
    assert_eq!(passed, ["D-VM-01", "D-VM-02", "D-VM-03", "D-VM-04", "D-VM-05", "D-LEAK-01"]);
    assert!(report.conformant());

    // Nothing left behind: no claim, no taken machine, the machine powered off.
    assert_eq!(entries(state.path(), "claims"), Vec::<String>::new());
    assert_eq!(entries(state.path(), "machines"), Vec::<String>::new());
    assert_eq!(bmc.power(), "off");
    // The kit went through the BMC: boot device, power on, reset, soft-off, power off.
    let log = bmc.machine("log");
    for request in ["set boot pxe", "set power 1", "set reset 1", "set shutdown 1", "set power 0"] {
        assert!(log.contains(request), "the machine never got `{request}`:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_and_boot_device_really_change_in_the_bmc() {
    if !ipmi_available() {
        return;
    }
    let password = unique_password();
    let (bmc1, bmc2) = (Bmc::start(Chassis::Full, &password), Bmc::start(Chassis::Full, &password));
    let state = tempfile::tempdir().expect("state dir");
    let cpi = baremetal(state.path(), &[("node1", bmc1.entry()), ("node2", bmc2.entry())], Some(&password));

    // create_vm claims the first free machine, sets its boot device and powers it on.
    let created = ok(&cpi, "create_vm", json!({"name": "w1", "image": "pxe", "metadata": {"role": "worker"}})).await;
    let result = created.result.expect("create_vm returns the VM");
    assert_eq!((result["id"].as_str(), result["machine"].as_str()), (Some("w1"), Some("node1")));
    assert_eq!(result["bmc"].as_str(), Some(bmc1.entry().as_str()));
    assert_eq!(bmc1.power(), "on");
    assert_eq!(bmc2.power(), "off", "the other machine is untouched");
    assert_eq!((bmc1.machine("boot").as_str(), bmc1.machine("boots").as_str()), ("pxe", "1"));
    assert_eq!(bmc1.machine("last_boot"), "pxe", "the machine booted from the network");
    assert!(bmc1.ipmitool(&["chassis", "bootparam", "get", "5"]).contains("Force PXE"));

    let created = ok(
        &cpi,
        "create_vm",
        json!({"name": "w2", "image": "disk", "boot_mode": "uefi", "boot_persistence": "persistent"}),
    )
    .await;
    assert_eq!(created.result.as_ref().and_then(|r| r["machine"].as_str()), Some("node2"));
    assert_eq!(bmc2.power(), "on");
    assert_eq!(bmc2.machine("boot"), "default", "ipmi_sim names the hard disk `default`");

    // The pool is exhausted: a typed error, and nothing is claimed.
    let err = fails(&cpi, "create_vm", json!({"name": "w3", "image": "pxe"}), ErrorKind::InUse).await;
    assert!(err.message.contains("every machine"), "{err}");
    fails(&cpi, "create_vm", json!({"name": "w3", "image": "pxe", "machine": "node1"}), ErrorKind::InUse).await;
    fails(&cpi, "create_vm", json!({"name": "w1", "image": "pxe"}), ErrorKind::AlreadyExists).await;
    assert_eq!(listed(&cpi).await, ["w1", "w2"]);
    assert_eq!(entries(state.path(), "machines"), ["node1", "node2"]);

    let inspected = ok(&cpi, "inspect_vm", json!({"vm": "w1"})).await.result.expect("inspect_vm returns JSON");
    assert_eq!((inspected["state"].as_str(), inspected["power"].as_str()), (Some("running"), Some("on")));
    assert_eq!(inspected["metadata"], json!({"role": "worker"}));

    // stop_vm: ACPI soft-off, and the BMC says off.
    ok(&cpi, "stop_vm", json!({"vm": "w1"})).await;
    assert_eq!(bmc1.power(), "off");
    assert!(bmc1.machine("log").contains("set shutdown 1"));
    let inspected = ok(&cpi, "inspect_vm", json!({"vm": "w1"})).await.result.expect("inspect_vm returns JSON");
    assert_eq!((inspected["state"].as_str(), inspected["power"].as_str()), (Some("stopped"), Some("off")));
    ok(&cpi, "stop_vm", json!({"vm": "w1"})).await;
    fails(&cpi, "reboot_vm", json!({"vm": "w1"}), ErrorKind::InvalidState).await;

    // start_vm boots it again; reboot_vm resets it; a cycle turns it off and on.
    ok(&cpi, "start_vm", json!({"vm": "w1"})).await;
    assert_eq!((bmc1.power(), bmc1.machine("boots").as_str()), ("on", "2"));
    ok(&cpi, "reboot_vm", json!({"vm": "w1"})).await;
    assert_eq!(bmc1.machine("boots"), "3");
    assert!(bmc1.machine("log").ends_with("set reset 1\nget power"), "{}", bmc1.machine("log"));
    ok(&cpi, "reboot_vm", json!({"vm": "w1", "reboot_method": "cycle"})).await;
    wait_until("the power cycle completes", || bmc1.machine("boots") == "4");
    assert_eq!(bmc1.power(), "on");

    // stop_timeout 0: a hard power off, without asking the OS.
    let soft_before = bmc2.machine("log").matches("set shutdown").count();
    ok(&cpi, "stop_vm", json!({"vm": "w2", "stop_timeout": 0})).await;
    assert_eq!(bmc2.power(), "off");
    assert_eq!(bmc2.machine("log").matches("set shutdown").count(), soft_before);

    // delete_vm powers off and releases: the next claim gets that machine.
    ok(&cpi, "delete_vm", json!({"vm": "w1"})).await;
    assert_eq!(bmc1.power(), "off");
    assert_eq!(entries(state.path(), "machines"), ["node2"]);
    let created = ok(&cpi, "create_vm", json!({"name": "w3", "image": "cdrom"})).await;
    assert_eq!(created.result.as_ref().and_then(|r| r["machine"].as_str()), Some("node1"));
    assert_eq!((bmc1.power(), bmc1.machine("last_boot").as_str()), ("on", "cdrom"));

    for vm in ["w3", "w2"] {
        ok(&cpi, "delete_vm", json!({ "vm": vm })).await;
    }
    fails(&cpi, "delete_vm", json!({"vm": "w2"}), ErrorKind::NotFound).await;
    assert_eq!((bmc1.power(), bmc2.power()), ("off", "off"));
    assert_eq!(entries(state.path(), "claims"), Vec::<String>::new());
    assert_eq!(entries(state.path(), "machines"), Vec::<String>::new());
}

/// The operator's path: the CLI with a policy and its audit log, the password only in the
/// environment of the omni-cpi process.
fn omni(args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omni-cpi"));
    command.args(args).env_remove("IPMI_PASSWORD").stdin(Stdio::null());
    if let Some(password) = password {
        command.env("IPMI_PASSWORD", password);
    }
    command.output().expect("omni-cpi runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_reaches_an_argv_and_its_absence_is_denied() {
    if !ipmi_available() {
        return;
    }
    let bmc = Bmc::start(Chassis::Full, &unique_password());
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let spec_path = dir.path().join("baremetal.json");
    let mut spec_json: Value =
        serde_json::from_str(&std::fs::read_to_string(support::cpi_path("baremetal")).expect("spec")).expect("JSON");
    spec_json["default_settings"]["state_dir"] = json!(state);
    spec_json["default_settings"]["machines"] = json!({"node1": bmc.entry()});
    spec_json["default_settings"]["cipher_suite"] = json!(3);
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec_json).expect("JSON")).expect("spec copy");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "audit_log = \"audit.jsonl\"\n\n[plugins.baremetal]\nsource = \"baremetal.json\"\nenv = [\"IPMI_PASSWORD\", \"LC_ALL\"]\nexec = [{ program = \"sh\", args = [\"**\"] }]\n",
    )
    .expect("policy");
    let (spec_arg, policy_arg) = (spec_path.to_string_lossy().into_owned(), policy.to_string_lossy().into_owned());
    let pw = Some(bmc.password.as_str());
    let run = |args: &[&str], password: Option<&str>| {
        let mut full = vec!["--policy", policy_arg.as_str(), "--output", "json", "call", spec_arg.as_str()];
        full.extend_from_slice(args);
        omni(&full, password)
    };

    let mut outputs = Vec::new();
    for args in [
        ["create_vm", "name=w1", "image=pxe", "metadata:={\"role\": \"db\"}"].as_slice(),
        &["inspect_vm", "vm=w1"],
        &["set_vm_metadata", "vm=w1", "metadata:={\"zone\": \"a\"}"],
        &["reboot_vm", "vm=w1"],
        &["stop_vm", "vm=w1"],
        &["start_vm", "vm=w1"],
        &["delete_vm", "vm=w1", "--dry-run"],
        &["delete_vm", "vm=w1"],
    ] {
        let out = run(args, pw);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push(out);
    }
    assert_eq!(bmc.power(), "off");
    assert_eq!(bmc.machine("boots"), "3", "create, reboot and start each booted the machine");

    // Every process the calls ran is in the audit log, and no argv holds the password.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    let entries: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert!(entries.len() >= 8, "one entry per step: {audit}");
    assert!(entries.iter().all(|e| e["decision"] == "allowed"), "{audit}");
    assert!(!audit.contains(&bmc.password), "the audit log holds the password:\n{audit}");
    for out in &outputs {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains(&bmc.password), "output holds the password:\n{text}");
    }
    let plan: Value = serde_json::from_slice(&outputs[6].stdout).expect("the dry run is JSON");
    assert!(plan.to_string().contains("ipmitool -v -I lanplus"), "the plan shows the ipmitool call: {plan}");

    // Without IPMI_PASSWORD: denied before anything is claimed or sent to the BMC.
    let requests_before = bmc.machine("log");
    let out = run(&["create_vm", "name=w2", "image=pxe"], None);
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stdout).expect("the error is JSON");
    let err = &err["error"];
    assert_eq!(err["kind"], "denied", "{err}");
    assert!(err["message"].as_str().is_some_and(|m| m.contains("IPMI_PASSWORD is not set")), "{err}");
    assert_eq!(bmc.machine("log"), requests_before, "nothing reached the BMC");
    assert_eq!(bmc.power(), "off");
    let listed = run(&["list_vms"], None);
    assert_eq!(serde_json::from_slice::<Value>(&listed.stdout).ok().map(|o| o["result"].clone()), Some(json!([])));

    // A claim made with the password cannot be driven without it.
    let out = run(&["create_vm", "name=w3", "image=disk"], pw);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for action in ["start_vm", "stop_vm", "reboot_vm", "inspect_vm", "delete_vm"] {
        let out = run(&[action, "vm=w3"], None);
        let err: Value = serde_json::from_slice(&out.stdout).expect("the error is JSON");
        assert_eq!(err["error"]["kind"], "denied", "{action}: {err}");
    }
    assert_eq!(bmc.power(), "on", "the machine was left alone");
    assert_eq!(run(&["delete_vm", "vm=w3"], pw).status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_an_unreachable_bmc_is_typed_and_claims_nothing() {
    if !ipmi_available() {
        return;
    }
    let bmc = Bmc::start(Chassis::Full, &unique_password());
    let state = tempfile::tempdir().expect("state dir");

    let cpi = baremetal(state.path(), &[("node1", bmc.entry())], Some("not-the-password"));
    let err = fails(&cpi, "create_vm", json!({"name": "w1", "image": "pxe"}), ErrorKind::Denied).await;
    assert!(err.message.contains("refused user admin"), "{err}");
    assert!(!err.message.contains("not-the-password"), "the error holds the password: {err}");
    assert!(err.message.contains("rolled back"), "{err}");
    assert_eq!(listed(&cpi).await, Vec::<String>::new());
    assert_eq!(entries(state.path(), "machines"), Vec::<String>::new());
    assert_eq!(bmc.power(), "off");

    // A port nothing listens on; short ipmitool timeouts keep the test quick.
    let silent = format!("{USER}@127.0.0.1:{}", free_udp_port());
    let quick = json!({"ipmi_timeout": 1, "ipmi_retries": 1});
    let cpi = with_password(baremetal_spec(state.path(), &[("node1", silent)], quick), Some("whatever"));
    let err = fails(&cpi, "create_vm", json!({"name": "w1", "image": "pxe"}), ErrorKind::Unavailable).await;
    assert!(err.message.contains("cannot reach the BMC of machine node1"), "{err}");
    assert_eq!(listed(&cpi).await, Vec::<String>::new());
    assert_eq!(entries(state.path(), "machines"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_that_cannot_set_the_boot_device_is_a_typed_failure() {
    if !ipmi_available() {
        return;
    }
    let bmc = Bmc::start(Chassis::StartcmdOnly, &unique_password());

    // ipmi_sim's startcmd is the machine: power on starts it, power off kills it.
    assert_eq!(bmc.power(), "off");
    assert!(bmc.machine_processes().is_empty());
    bmc.ipmitool(&["chassis", "power", "on"]);
    wait_until("the startcmd machine runs", || !bmc.machine_processes().is_empty());
    assert_eq!(bmc.power(), "on");
    bmc.ipmitool(&["chassis", "power", "off"]);
    wait_until("the startcmd machine is gone", || bmc.machine_processes().is_empty());
    assert_eq!(bmc.power(), "off");

    // ipmitool exits 0 when the BMC refuses the boot device; the CPI still sees the refusal.
    let direct = bmc.ipmitool_raw(&["chassis", "bootdev", "pxe"]);
    assert!(String::from_utf8_lossy(&direct.stderr).contains("failed"));
    let state = tempfile::tempdir().expect("state dir");
    let cpi = baremetal(state.path(), &[("node1", bmc.entry())], Some(&bmc.password));
    let err = fails(&cpi, "create_vm", json!({"name": "w1", "image": "pxe"}), ErrorKind::Failed).await;
    assert!(err.message.contains("refused boot device pxe"), "{err}");
    assert_eq!(listed(&cpi).await, Vec::<String>::new());
    assert_eq!(entries(state.path(), "machines"), Vec::<String>::new());
    assert_eq!(bmc.power(), "off", "the machine was never powered on");
    assert!(bmc.machine_processes().is_empty());
}

/// Mistakes found before any BMC is asked: no ipmi_sim needed.
#[tokio::test]
async fn bad_images_machines_and_inventories_are_typed_errors() {
    if !support::runtime_available("flock", &["flock", "--version"]) {
        return;
    }
    let state = tempfile::tempdir().expect("state dir");
    let good = [("node1", "admin@127.0.0.1:1623".to_string())];
    let cpi = baremetal(state.path(), &good, Some("pw"));

    // D-VM-05's case: the image is a boot target, checked by the spec's pattern before anything runs.
    let err =
        fails(&cpi, "create_vm", json!({"name": "w1", "image": "ubuntu-22.04"}), ErrorKind::InvalidArgument).await;
    assert_eq!(err.param.as_deref(), Some("image"));
    assert!(err.failed_step.is_none(), "nothing ran");
    fails(&cpi, "create_vm", json!({"name": "w1", "image": "pxe", "machine": "nope"}), ErrorKind::NotFound).await;
    fails(&cpi, "create_vm", json!({"name": "../w1", "image": "pxe"}), ErrorKind::InvalidArgument).await;
    fails(
        &cpi,
        "create_vm",
        json!({"name": "w1", "image": "pxe", "metadata": {".hidden": "x"}}),
        ErrorKind::InvalidArgument,
    )
    .await;
    for action in ["inspect_vm", "start_vm", "stop_vm", "reboot_vm", "delete_vm", "set_vm_metadata"] {
        fails(&cpi, action, json!({"vm": "nosuch", "metadata": {"a": "b"}}), ErrorKind::NotFound).await;
    }
    assert_eq!(ok(&cpi, "has_vm", json!({"vm": "nosuch"})).await.result, Some(json!(false)));
    for action in ["create_disk", "attach_disk", "snapshot_disk"] {
        fails(&cpi, action, json!({"name": "d", "vm": "w1", "disk": "d", "size_mb": 1}), ErrorKind::Unsupported).await;
    }

    let empty = baremetal(state.path(), &[], Some("pw"));
    let err = fails(&empty, "create_vm", json!({"name": "w1", "image": "pxe"}), ErrorKind::Unavailable).await;
    assert!(err.message.contains("inventory is empty"), "{err}");
    for bad in ["admin@127.0.0.1", "-oProxy@127.0.0.1:623", "admin@host;reboot:623", "admin@127.0.0.1:99999"] {
        let cpi = baremetal(state.path(), &[("node1", bad.to_string())], Some("pw"));
        let err = fails(&cpi, "create_vm", json!({"name": "w1", "image": "pxe"}), ErrorKind::Failed).await;
        assert!(err.message.contains("inventory entry node1"), "{bad}: {err}");
    }
    assert_eq!(entries(state.path(), "claims"), Vec::<String>::new());
    assert_eq!(entries(state.path(), "machines"), Vec::<String>::new());
}
