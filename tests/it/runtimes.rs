//! Full container lifecycles through the shipped specs against real runtimes: podman, the docker
//! CLI against podman's Docker-compatible socket, and LXC. No fakes: each test drives the real
//! program and checks what the runtime reports.

use crate::support;

use std::process::{Command, Stdio};
use std::time::Duration;

use omni_cpi::{json::spec, CallOptions, Cpi, CpiError, ErrorKind, JsonCpi, Outcome, Params};
use serde_json::{json, Value};
use support::unique_name;

const IMAGE: &str = "localhost/busybox:latest";
const GREETING: &str = "hello-from-container";

/// How volumes reach a container on a runtime.
#[derive(Clone, Copy, PartialEq)]
enum Volumes {
    /// Given to create_container as `volumes: ["VOLUME:/path"]` (podman, docker).
    AtCreate,
    /// attach_volume (volume `name`, `container`, `target`) before the first start (LXC).
    Attach,
    /// The CPI declares the volume actions unsupported.
    Unsupported,
}

struct Runtime {
    label: &'static str,
    cpi: Cpi,
    image: &'static str,
    /// Parameters every call gets (e.g. a zero stop timeout, since sh as PID 1 ignores SIGTERM).
    common: Value,
    /// The container's state as the CPI's inspect reports it, lower-cased.
    state_of: fn(&Outcome) -> String,
    running: &'static str,
    stopped: &'static [&'static str],
    exec_when_stopped: ErrorKind,
    volumes: Volumes,
    networks: bool,
    /// Whether inspect shows the container connected to the network.
    connected: fn(&Outcome, &str) -> bool,
    /// Removes a container by force outside the CPI, for cleanup after a failed assertion.
    force_remove: fn(&str),
}

fn params(runtime: &Runtime, extra: Value) -> Params {
    let mut p = match runtime.common.clone() {
        Value::Object(map) => map,
        _ => Params::new(),
    };
    if let Value::Object(extra) = extra {
        p.extend(extra);
    }
    p
}

impl Runtime {
    async fn call(&self, action: &str, extra: Value) -> Result<Outcome, CpiError> {
        self.cpi.call(action, &params(self, extra), &CallOptions::default()).await
    }

    async fn ok(&self, action: &str, extra: Value) -> Outcome {
        match self.call(action, extra.clone()).await {
            Ok(outcome) => outcome,
            Err(e) => panic!("{}: {action} {extra} failed: {e:?}", self.label),
        }
    }

    async fn fails(&self, action: &str, extra: Value, kind: ErrorKind) {
        match self.call(action, extra.clone()).await {
            Ok(outcome) => panic!("{}: {action} {extra} succeeded, expected {kind}: {outcome:?}", self.label),
            Err(e) => assert_eq!(e.kind, kind, "{}: {action} {extra}: {e:?}", self.label),
        }
    }

    async fn state(&self, name: &str) -> String {
        (self.state_of)(&self.ok("inspect_container", json!({ "name": name })).await)
    }

    async fn names(&self) -> Vec<String> {
        let listed = self.ok("list_containers", json!({})).await;
        listed
            .result
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    }

    async fn create(&self, name: &str, extra: Value) {
        let mut p = json!({
            "name": name,
            "image": self.image,
            "command": ["sh", "-c", format!("echo {GREETING}; exec sleep 3600")],
        });
        if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
            p.extend(extra);
        }
        self.ok("create_container", p).await;
    }

    /// Logs may trail the container's output by a moment.
    async fn logs_eventually_contain(&self, name: &str, needle: &str) {
        let mut last = String::new();
        for _ in 0..50 {
            let logs = self.ok("logs", json!({ "name": name })).await;
            last = format!("{}{}", logs.stdout, logs.stderr);
            if last.contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{}: logs of {name} never contained {needle:?}; last: {last:?}", self.label);
    }
}

/// Removes the container when a test ends, even by a failed assertion.
struct Cleanup<'a>(&'a Runtime, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        (self.0.force_remove)(&self.1);
    }
}

async fn container_lifecycle(rt: &Runtime) {
    let name = unique_name("life");
    let _cleanup = Cleanup(rt, name.clone());

    rt.create(&name, json!({})).await;
    rt.fails(
        "create_container",
        json!({"name": name, "image": rt.image, "command": ["true"]}),
        ErrorKind::AlreadyExists,
    )
    .await;
    assert!(rt.names().await.contains(&name), "{}: list includes the new container", rt.label);

    rt.ok("start_container", json!({ "name": name })).await;
    assert_eq!(rt.state(&name).await, rt.running, "{}: running after start", rt.label);

    let exec = rt.ok("exec", json!({"name": name, "cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]})).await;
    assert_eq!(exec.exit_code, Some(3), "{}: exec reports the inner exit code", rt.label);
    assert_eq!(exec.stdout, "out\n", "{}", rt.label);
    assert!(exec.stderr.contains("err"), "{}: exec stderr {:?}", rt.label, exec.stderr);
    let exec = rt.ok("exec", json!({"name": name, "cmd": ["echo", "a; b", "$(c)"]})).await;
    assert_eq!((exec.exit_code, exec.stdout.as_str()), (Some(0), "a; b $(c)\n"), "{}", rt.label);

    rt.logs_eventually_contain(&name, GREETING).await;

    rt.ok("stop_container", json!({ "name": name })).await;
    let stopped = rt.state(&name).await;
    assert!(rt.stopped.contains(&stopped.as_str()), "{}: state after stop is {stopped}", rt.label);
    rt.ok("stop_container", json!({ "name": name })).await;
    rt.logs_eventually_contain(&name, GREETING).await;
    rt.fails("exec", json!({"name": name, "cmd": ["true"]}), rt.exec_when_stopped).await;

    rt.ok("restart_container", json!({ "name": name })).await;
    assert_eq!(rt.state(&name).await, rt.running, "{}: running after restart", rt.label);

    rt.ok("delete_container", json!({ "name": name })).await;
    rt.fails("inspect_container", json!({ "name": name }), ErrorKind::NotFound).await;
    assert!(!rt.names().await.contains(&name), "{}: list omits the deleted container", rt.label);
    for action in ["delete_container", "start_container", "logs"] {
        rt.fails(action, json!({ "name": name }), ErrorKind::NotFound).await;
    }
    rt.fails("exec", json!({"name": name, "cmd": ["true"]}), ErrorKind::NotFound).await;
}

async fn delete_from_created_and_stopped(rt: &Runtime) {
    let created = unique_name("created");
    let _cleanup_created = Cleanup(rt, created.clone());
    rt.create(&created, json!({})).await;
    rt.ok("delete_container", json!({ "name": created })).await;
    rt.fails("inspect_container", json!({ "name": created }), ErrorKind::NotFound).await;

    let stopped = unique_name("stopped");
    let _cleanup_stopped = Cleanup(rt, stopped.clone());
    rt.create(&stopped, json!({})).await;
    rt.ok("start_container", json!({ "name": stopped })).await;
    rt.ok("stop_container", json!({ "name": stopped })).await;
    rt.ok("delete_container", json!({ "name": stopped })).await;
    rt.fails("inspect_container", json!({ "name": stopped }), ErrorKind::NotFound).await;
}

async fn volume_lifecycle(rt: &Runtime) {
    let volume = unique_name("vol");
    let name = unique_name("volc");
    let _cleanup = Cleanup(rt, name.clone());
    rt.ok("create_volume", json!({ "name": volume })).await;
    match rt.volumes {
        Volumes::Unsupported => unreachable!("run_all checks volume support first"),
        Volumes::AtCreate => rt.create(&name, json!({ "volumes": [format!("{volume}:/data")] })).await,
        Volumes::Attach => {
            rt.create(&name, json!({})).await;
            rt.ok("attach_volume", json!({"name": volume, "container": name, "target": "/data"})).await;
        }
    }
    rt.ok("start_container", json!({ "name": name })).await;
    let write = rt
        .ok("exec", json!({"name": name, "cmd": ["sh", "-c", "echo persisted > /data/file && cat /data/file"]}))
        .await;
    assert_eq!((write.exit_code, write.stdout.as_str()), (Some(0), "persisted\n"), "{}: {write:?}", rt.label);
    rt.ok("delete_container", json!({ "name": name })).await;

    // The data outlives the container: a second container sees it.
    let reader = unique_name("volr");
    let _cleanup_reader = Cleanup(rt, reader.clone());
    match rt.volumes {
        Volumes::Unsupported => unreachable!("run_all checks volume support first"),
        Volumes::AtCreate => rt.create(&reader, json!({ "volumes": [format!("{volume}:/data")] })).await,
        Volumes::Attach => {
            rt.create(&reader, json!({})).await;
            rt.ok("attach_volume", json!({"name": volume, "container": reader, "target": "/data"})).await;
        }
    }
    rt.ok("start_container", json!({ "name": reader })).await;
    let read = rt.ok("exec", json!({"name": reader, "cmd": ["cat", "/data/file"]})).await;
    assert_eq!(read.stdout, "persisted\n", "{}", rt.label);
    rt.ok("delete_container", json!({ "name": reader })).await;

    rt.ok("delete_volume", json!({ "name": volume })).await;
    rt.fails("delete_volume", json!({ "name": volume }), ErrorKind::NotFound).await;
}

/// Connects before starting and disconnects after stopping, which every runtime supports (runc
/// cannot change a running container's namespaces).
async fn network_lifecycle(rt: &Runtime) {
    let network = unique_name("net");
    let name = unique_name("netc");
    let _cleanup = Cleanup(rt, name.clone());
    rt.ok("create_network", json!({ "name": network })).await;
    rt.fails("create_network", json!({ "name": network }), ErrorKind::AlreadyExists).await;
    rt.create(&name, json!({})).await;
    rt.ok("connect_network", json!({"network": network, "container": name})).await;
    rt.ok("start_container", json!({ "name": name })).await;
    let inspect = rt.ok("inspect_container", json!({ "name": name })).await;
    assert!(
        (rt.connected)(&inspect, &network),
        "{}: {name} is not connected to {network}: {:?}",
        rt.label,
        inspect.result
    );
    rt.ok("stop_container", json!({ "name": name })).await;
    rt.ok("disconnect_network", json!({"network": network, "container": name})).await;
    rt.ok("disconnect_network", json!({"network": network, "container": name})).await;
    rt.ok("delete_container", json!({ "name": name })).await;
    rt.ok("delete_network", json!({ "name": network })).await;
    rt.fails("delete_network", json!({ "name": network }), ErrorKind::NotFound).await;
}

async fn run_all(rt: &Runtime) {
    container_lifecycle(rt).await;
    delete_from_created_and_stopped(rt).await;
    if rt.volumes == Volumes::Unsupported {
        for action in ["create_volume", "delete_volume", "attach_volume"] {
            rt.fails(action, json!({"name": "v", "volume": "v"}), ErrorKind::Unsupported).await;
        }
    } else {
        volume_lifecycle(rt).await;
    }
    if rt.networks {
        network_lifecycle(rt).await;
    } else {
        for action in ["create_network", "delete_network", "connect_network", "disconnect_network"] {
            rt.fails(action, json!({"name": "n", "network": "n", "container": "c"}), ErrorKind::Unsupported).await;
        }
    }
}

fn oci_state(outcome: &Outcome) -> String {
    outcome
        .result
        .as_ref()
        .and_then(|r| r.pointer("/0/State/Status"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

fn load(name: &str, host_env: impl Fn(&str) -> Option<String>) -> JsonCpi {
    let loaded = spec::load_file(&support::cpi_path(name)).unwrap_or_else(|e| panic!("cpis/{name}.json loads:\n{e}"));
    JsonCpi::unrestricted(loaded).with_host_env(host_env)
}

fn host_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn podman_force_remove(name: &str) {
    let _ =
        Command::new("podman").args(["rm", "-f", "-t", "0", name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

fn podman_image_ready() -> bool {
    support::runtime_available("podman with the busybox image", &["podman", "image", "exists", IMAGE])
}

/// podman and the docker CLI share a backend (podman's storage), so they report alike.
fn oci_runtime(label: &'static str, cpi: JsonCpi) -> Runtime {
    Runtime {
        label,
        cpi: Cpi::from(cpi),
        image: IMAGE,
        common: json!({"stop_timeout": 0}),
        state_of: oci_state,
        running: "running",
        stopped: &["exited", "stopped"],
        exec_when_stopped: ErrorKind::InvalidState,
        volumes: Volumes::AtCreate,
        networks: true,
        connected: |inspect, network| {
            inspect
                .result
                .as_ref()
                .and_then(|r| r.pointer("/0/NetworkSettings/Networks"))
                .is_some_and(|n| n.get(network).is_some())
        },
        force_remove: podman_force_remove,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_lifecycle_volumes_and_networks() {
    if !podman_image_ready() {
        return;
    }
    run_all(&oci_runtime("podman", load("podman", host_env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_cli_against_podman_socket_lifecycle_volumes_and_networks() {
    if !podman_image_ready() || !support::runtime_available("docker CLI", &["docker", "--version"]) {
        return;
    }
    let service = support::PodmanService::start();
    let docker_host = service.docker_host();
    let cpi = load("docker", move |var| if var == "DOCKER_HOST" { Some(docker_host.clone()) } else { host_env(var) });
    run_all(&oci_runtime("docker", cpi)).await;
    drop(service);
}

fn load_with_settings(name: &str, settings: Value, host_env: impl Fn(&str) -> Option<String>) -> JsonCpi {
    let mut loaded =
        spec::load_file(&support::cpi_path(name)).unwrap_or_else(|e| panic!("cpis/{name}.json loads:\n{e}"));
    if let Value::Object(settings) = settings {
        loaded.default_settings.extend(settings);
    }
    JsonCpi::unrestricted(loaded).with_host_env(host_env)
}

/// What a podman or docker container gets of the host: named volumes always; a host path only
/// inside a directory the operator lists in `host_volume_prefixes` (symlinks resolved); the host's
/// network only with `allow_host_network`. A refusal is `denied`, and no container is created.
async fn host_access(label: &'static str, cpi_with: impl Fn(Value) -> JsonCpi) {
    let prefix = tempfile::tempdir().expect("prefix");
    let shared = prefix.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::write(shared.join("file"), "from-the-host\n").expect("write");
    std::os::unix::fs::symlink("/etc", prefix.path().join("escape")).expect("symlink");

    let rt = oci_runtime(label, cpi_with(json!({ "host_volume_prefixes": [prefix.path()] })));
    let name = unique_name("hostpath");
    let _cleanup = Cleanup(&rt, name.clone());
    rt.create(&name, json!({ "volumes": [format!("{}:/data:ro", shared.display())] })).await;
    rt.ok("start_container", json!({ "name": name })).await;
    let read = rt.ok("exec", json!({"name": name, "cmd": ["cat", "/data/file"]})).await;
    assert_eq!(read.stdout, "from-the-host\n", "{label}: the allowed host path is mounted");
    rt.ok("delete_container", json!({ "name": name })).await;
    let refused_name = unique_name("refused");
    let _cleanup_refused = Cleanup(&rt, refused_name.clone());
    for volume in ["/:/host".to_string(), "/etc:/etc".to_string(), format!("{}/escape:/x", prefix.path().display())] {
        let p = json!({"name": refused_name, "image": rt.image, "volumes": ["named-ok:/ok", volume]});
        rt.fails("create_container", p, ErrorKind::Denied).await;
    }

    // The shipped settings: no host path at all, and not the host's network.
    let strict = oci_runtime(label, cpi_with(json!({})));
    let p = json!({"name": refused_name, "image": rt.image, "volumes": [format!("{}:/data", shared.display())]});
    strict.fails("create_container", p, ErrorKind::Denied).await;
    for network in ["host", "container:other"] {
        let p = json!({"name": refused_name, "image": rt.image, "network": network});
        strict.fails("create_container", p, ErrorKind::Denied).await;
    }
    assert!(!strict.names().await.contains(&refused_name), "{label}: a refused create left a container");

    // The operator allows the host's network.
    let open = oci_runtime(label, cpi_with(json!({"allow_host_network": true})));
    let hostnet = unique_name("hostnet");
    let _cleanup_hostnet = Cleanup(&open, hostnet.clone());
    open.create(&hostnet, json!({"network": "host"})).await;
    let inspect = open.ok("inspect_container", json!({ "name": hostnet })).await;
    let mode = inspect.result.as_ref().and_then(|r| r.pointer("/0/HostConfig/NetworkMode")).and_then(Value::as_str);
    assert_eq!(mode, Some("host"), "{label}: {:?}", inspect.result);
    open.ok("delete_container", json!({ "name": hostnet })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_host_paths_and_host_network_only_as_the_operator_allows() {
    if !podman_image_ready() {
        return;
    }
    host_access("podman", |settings| load_with_settings("podman", settings, host_env)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_host_paths_and_host_network_only_as_the_operator_allows() {
    if !podman_image_ready() || !support::runtime_available("docker CLI", &["docker", "--version"]) {
        return;
    }
    let service = support::PodmanService::start();
    let docker_host = service.docker_host();
    host_access("docker", |settings| {
        let docker_host = docker_host.clone();
        load_with_settings("docker", settings, move |var| {
            if var == "DOCKER_HOST" {
                Some(docker_host.clone())
            } else {
                host_env(var)
            }
        })
    })
    .await;
    drop(service);
}

/// The runtime-free CPI, keeping its containers under `state_dir`.
fn process_runtime(state_dir: &std::path::Path) -> Runtime {
    let mut cpi_spec = spec::load_file(&support::cpi_path("process")).expect("cpis/process.json loads");
    cpi_spec.default_settings.insert("state_dir".into(), json!(state_dir));
    Runtime {
        label: "process",
        cpi: Cpi::from(JsonCpi::unrestricted(cpi_spec).with_host_env(host_env)),
        image: "none",
        common: json!({"stop_timeout": 0}),
        state_of: |outcome| outcome.result.as_ref().and_then(|r| r["state"].as_str()).unwrap_or_default().to_string(),
        running: "running",
        stopped: &["exited"],
        exec_when_stopped: ErrorKind::InvalidState,
        volumes: Volumes::Unsupported,
        networks: false,
        connected: |_, _| false,
        force_remove: |_| {},
    }
}

/// The runtime-free CPI: needs nothing but sh and coreutils, so this test always runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_lifecycle() {
    let state_dir = support::private_tempdir();
    run_all(&process_runtime(state_dir.path())).await;
}

/// A process container that ended leaves its pid file behind, and the kernel may give that pid to
/// any other process. The CPI must recognise the stranger (by its start time) and never signal it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_cpi_never_signals_a_process_that_took_a_dead_containers_pid() {
    use std::os::unix::process::CommandExt;
    let state_dir = support::private_tempdir();
    let rt = process_runtime(state_dir.path());
    let name = unique_name("reused");
    rt.ok("create_container", json!({"name": name, "image": "none", "command": ["true"]})).await;
    rt.ok("start_container", json!({ "name": name })).await;
    for _ in 0..100 {
        if rt.state(&name).await == "exited" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rt.state(&name).await, "exited", "`true` ends at once");

    // The stranger leads its own group, as a shell or a container monitor does.
    let mut stranger = Command::new("sleep").arg("60").process_group(0).spawn().expect("spawn a stranger");
    let pid_file = state_dir.path().join(&name).join("pid");
    let stranger_pid = stranger.id().to_string();
    let pid_is_reused = || std::fs::write(&pid_file, &stranger_pid).expect("write the pid file");

    pid_is_reused();
    let inspected = rt.ok("inspect_container", json!({ "name": name })).await;
    let result = inspected.result.expect("inspect parses");
    assert_eq!((result["state"].as_str(), &result["pid"]), (Some("exited"), &Value::Null), "{result}");
    rt.fails("exec", json!({"name": name, "cmd": ["true"]}), ErrorKind::InvalidState).await;
    rt.ok("stop_container", json!({ "name": name })).await;
    let survived_stop = stranger.try_wait().expect("try_wait").is_none();
    pid_is_reused();
    rt.ok("delete_container", json!({ "name": name })).await;
    let survived_delete = stranger.try_wait().expect("try_wait").is_none();
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(survived_stop, "stop_container signaled a process the container did not start");
    assert!(survived_delete, "delete_container signaled a process the container did not start");
}

fn lxc_force_remove(name: &str) {
    let _ = Command::new("lxc-destroy").args(["-f", "-n", name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lxc_lifecycle_and_volumes() {
    let busybox_template = std::path::Path::new("/usr/share/lxc/templates/lxc-busybox");
    if !support::runtime_available("LXC", &["lxc-create", "--version"]) {
        return;
    }
    assert!(busybox_template.exists() || !support::runtimes_required(), "lxc-templates (busybox) is required");
    // Volumes live under a private root so parallel runs and the host's own stay apart.
    let volume_root = tempfile::tempdir().expect("volume root");
    let mut lxc = spec::load_file(&support::cpi_path("lxc")).expect("cpis/lxc.json loads");
    lxc.default_settings.insert("volume_root".into(), json!(volume_root.path()));
    let rt = Runtime {
        label: "lxc",
        cpi: Cpi::from(JsonCpi::unrestricted(lxc).with_host_env(host_env)),
        image: "busybox",
        common: json!({}),
        state_of: |outcome| {
            outcome.result.as_ref().and_then(|r| r["state"].as_str()).unwrap_or_default().to_lowercase()
        },
        running: "running",
        stopped: &["stopped"],
        exec_when_stopped: ErrorKind::InvalidState,
        volumes: Volumes::Attach,
        networks: false,
        connected: |_, _| false,
        force_remove: lxc_force_remove,
    };
    run_all(&rt).await;
}

fn runc_force_remove(name: &str) {
    let _ = Command::new("runc")
        .args(["--root", "/run/omni-cpi/runc", "delete", "-f", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(format!("/var/lib/omni-cpi/runc/containers/{name}"));
}

/// The runc CPI as a WebAssembly component, granted exactly what plugins/runc/policy.toml says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runc_component_lifecycle_volumes_and_networks() {
    if !support::runtime_available("runc", &["runc", "--version"]) {
        return;
    }
    let Some(_) = support::plugin_wasm("omni_cpi_runc") else { return };
    let policy_path = support::repo_root().join("plugins/runc/policy.toml");
    let policy = omni_cpi::policy::Policy::load(&policy_path).expect("plugins/runc/policy.toml loads");
    let source = policy.plugins["runc"].source.clone().expect("source");
    let cache = tempfile::tempdir().expect("cache dir");
    let loader = omni_cpi::Loader::new(policy, Some(cache.path().to_path_buf())).expect("loader");
    let cpi = loader.load(&source).await.unwrap_or_else(|e| panic!("the runc component loads: {e}"));
    let rt = Runtime {
        label: "runc",
        cpi,
        image: "busybox",
        common: json!({"stop_timeout": 0}),
        state_of: |outcome| outcome.result.as_ref().and_then(|r| r["state"].as_str()).unwrap_or_default().to_string(),
        running: "running",
        stopped: &["stopped"],
        exec_when_stopped: ErrorKind::InvalidState,
        volumes: Volumes::Attach,
        networks: true,
        connected: |inspect, network| {
            inspect.result.as_ref().and_then(|r| r.pointer("/details/network")).and_then(Value::as_str) == Some(network)
        },
        force_remove: runc_force_remove,
    };
    run_all(&rt).await;
    runc_parity_and_dry_runs(&rt).await;
}

/// What WIT omni:cpi@0.2.0 added, on a real runtime: `detach_volume`, `list_volumes`,
/// `list_networks`, and dry runs the plugin plans from what it knows (the dry-run flag) without
/// changing anything.
async fn runc_parity_and_dry_runs(rt: &Runtime) {
    let volume = unique_name("pvol");
    let network = unique_name("pnet");
    let name = unique_name("pc");
    let _cleanup = Cleanup(rt, name.clone());
    rt.ok("create_volume", json!({ "name": volume })).await;
    rt.ok("create_network", json!({ "name": network })).await;
    let names = |o: &Outcome| o.result.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
    assert!(names(&rt.ok("list_volumes", json!({})).await).contains(&json!(volume)), "list_volumes");
    assert!(names(&rt.ok("list_networks", json!({})).await).contains(&json!(network)), "list_networks");

    rt.create(&name, json!({})).await;
    rt.ok("attach_volume", json!({"name": volume, "container": name, "target": "/data"})).await;
    rt.fails("delete_volume", json!({ "name": volume }), ErrorKind::InUse).await;
    rt.ok("detach_volume", json!({"name": volume, "container": name})).await;
    rt.ok("detach_volume", json!({"name": volume, "container": name})).await;
    // A file in the volume (plugins/runc keeps volumes as directories under its state root).
    std::fs::write(format!("/var/lib/omni-cpi/runc/volumes/{volume}/marker"), "in the volume").expect("marker");
    rt.ok("start_container", json!({ "name": name })).await;
    let mounted = rt.ok("exec", json!({"name": name, "cmd": ["sh", "-c", "cat /data/marker || echo none"]}));
    assert_eq!(mounted.await.stdout, "none\n", "a detached volume is not mounted at the next start");

    // Dry runs: the plan lists the commands of the real call, and nothing changes.
    let plan = |action: &'static str, extra: Value| {
        let params = params(rt, extra);
        async move { rt.cpi.plan(action, &params, &CallOptions::default()).await }
    };
    let delete = plan("delete_container", json!({ "name": name })).await.expect("plans a delete");
    let argvs: Vec<String> = delete.steps().iter().map(|s| s.argv().join(" ")).collect();
    assert!(argvs.iter().any(|a| a.ends_with(&format!("delete -f {name}"))), "{argvs:?}");
    assert_eq!(rt.state(&name).await, "running", "a planned delete deleted nothing");
    let other = unique_name("pdry");
    let create = plan("create_container", json!({ "name": other, "image": rt.image })).await;
    assert!(create.is_ok(), "a dry-run create plans: {create:?}");
    rt.fails("inspect_container", json!({ "name": other }), ErrorKind::NotFound).await;
    let stop = plan("stop_container", json!({ "name": name })).await.expect("plans a stop");
    assert!(stop.steps().iter().any(|s| s.argv().join(" ").contains(&format!("delete -f {name}"))), "{stop:?}");

    rt.ok("delete_container", json!({ "name": name })).await;
    rt.ok("delete_volume", json!({ "name": volume })).await;
    rt.ok("delete_network", json!({ "name": network })).await;
    assert!(!names(&rt.ok("list_volumes", json!({})).await).contains(&json!(volume)), "list_volumes after delete");
}
