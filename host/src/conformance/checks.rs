//! The checks. Each has a stable ID (never reused; a changed meaning gets a new ID), a level, a
//! one-line statement, and the actions it needs: a check whose actions the CPI declares
//! unsupported is skipped with the reason, never passed.

use serde::Serialize;
use serde_json::{json, Value};

use super::{names, Ctx, Failure, Resource};
use crate::contract::catalogue::CpiKind;
use crate::contract::error::ErrorKind;
use crate::contract::options::CallOptions;
use crate::contract::plan::Outcome;
use crate::cpi::Cpi;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Must,
    Should,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckInfo {
    pub id: &'static str,
    pub level: Level,
    pub kind: CpiKind,
    pub statement: &'static str,
    pub needs: &'static [&'static str],
}

const LEAK_CHECK: &str = "C-LEAK-01";
const DIRECTOR_LEAK_CHECK: &str = "D-LEAK-01";

/// The leak checks run last, after every other check has cleaned up.
pub(crate) fn is_leak_check(id: &str) -> bool {
    id == LEAK_CHECK || id == DIRECTOR_LEAK_CHECK
}

const GREETING: &str = "omni-conformance-hello";

/// Every check, in the order they run.
pub fn catalogue() -> &'static [CheckInfo] {
    use CpiKind::{Container as C, Director as D};
    use Level::{Must, Should};
    const CATALOGUE: &[CheckInfo] = &[
        CheckInfo { id: "C-CREATE-01", level: Must, kind: C, statement: "create makes a container that inspect shows by its name and list includes", needs: &["create_container", "inspect_container", "list_containers", "delete_container"] },
        CheckInfo { id: "C-STATE-01", level: Must, kind: C, statement: "start → running; stop → stopped; stop again succeeds; restart → running", needs: &["create_container", "start_container", "stop_container", "restart_container", "inspect_container"] },
        CheckInfo { id: "C-EXEC-01", level: Must, kind: C, statement: "exec reports exit code 0 and a non-zero code exactly, with stdout and stderr", needs: &["create_container", "start_container", "exec"] },
        CheckInfo { id: "C-EXEC-02", level: Must, kind: C, statement: "exec in a stopped container is typed invalid_state, not a failure or an exit status", needs: &["create_container", "start_container", "stop_container", "exec", "delete_container"] },
        CheckInfo { id: "C-LOGS-01", level: Must, kind: C, statement: "logs contain what the container printed, also after it stopped", needs: &["create_container", "start_container", "stop_container", "logs"] },
        CheckInfo { id: "C-DELETE-01", level: Must, kind: C, statement: "delete works from created, running and stopped; then inspect is not_found and list omits it", needs: &["create_container", "start_container", "stop_container", "delete_container", "inspect_container", "list_containers"] },
        CheckInfo { id: "C-DELETE-02", level: Must, kind: C, statement: "deleting a missing container succeeds or is typed not_found, never an untyped error", needs: &["delete_container"] },
        CheckInfo { id: "C-NOTFOUND-01", level: Must, kind: C, statement: "inspect, start, logs and exec of an unknown container are typed not_found", needs: &["inspect_container", "start_container", "logs", "exec"] },
        CheckInfo { id: "C-EXISTS-01", level: Must, kind: C, statement: "creating a name that exists is typed already_exists", needs: &["create_container", "delete_container"] },
        CheckInfo { id: "C-FAILCREATE-01", level: Must, kind: C, statement: "a create that fails (unknown image) is an error and leaves nothing behind", needs: &["create_container", "list_containers", "inspect_container"] },
        CheckInfo { id: "C-VOLUME-01", level: Should, kind: C, statement: "a volume attached to a container keeps data written by exec for the next container; delete, delete again succeeds or not_found", needs: &["create_volume", "delete_volume", "create_container", "start_container", "exec"] },
        CheckInfo { id: "C-VOLUME-02", level: Should, kind: C, statement: "attaching a volume again succeeds or is already_exists; a missing volume, or container, is not_found; the container starts with it", needs: &["create_volume", "delete_volume", "attach_volume", "create_container", "start_container", "exec", "delete_container"] },
        CheckInfo { id: "C-VOLUME-03", level: Should, kind: C, statement: "detach_volume of a stopped container succeeds, and again; once started, the volume is gone from it and can be deleted", needs: &["create_volume", "delete_volume", "attach_volume", "detach_volume", "create_container", "start_container", "stop_container", "exec"] },
        CheckInfo { id: "C-VOLUME-04", level: Should, kind: C, statement: "deleting a volume a created, running or stopped container uses is typed in_use; once the container is gone, delete succeeds", needs: &["create_volume", "delete_volume", "create_container", "start_container", "stop_container", "delete_container"] },
        CheckInfo { id: "C-VOLUME-05", level: Should, kind: C, statement: "creating a container with a volume that does not exist is typed not_found and leaves no container and no volume", needs: &["create_volume", "delete_volume", "create_container", "list_containers", "inspect_container"] },
        CheckInfo { id: "C-NETWORK-01", level: Should, kind: C, statement: "network: create → connect → start → stop → disconnect → disconnect again succeeds → delete", needs: &["create_network", "delete_network", "connect_network", "disconnect_network", "create_container", "start_container", "stop_container"] },
        CheckInfo { id: "C-NETWORK-02", level: Should, kind: C, statement: "deleting a network a running container uses is typed in_use; once the container is gone, delete succeeds", needs: &["create_network", "delete_network", "connect_network", "disconnect_network", "create_container", "start_container", "delete_container"] },
        CheckInfo { id: "C-NETWORK-03", level: Should, kind: C, statement: "disconnecting a running container succeeds, and again; the network is then free (delete succeeds) while it runs", needs: &["create_network", "delete_network", "connect_network", "disconnect_network", "create_container", "start_container"] },
        CheckInfo { id: "C-ROBUST-01", level: Should, kind: C, statement: "the lifecycle works N times in a row on the same name (--repeat)", needs: &["create_container", "start_container", "exec", "stop_container", "delete_container"] },
        CheckInfo { id: "C-ROBUST-02", level: Should, kind: C, statement: "N lifecycles in parallel on distinct names all succeed (--parallel)", needs: &["create_container", "start_container", "exec", "delete_container"] },
        CheckInfo { id: LEAK_CHECK, level: Must, kind: C, statement: "after the run, no container with the run's prefix remains", needs: &["list_containers"] },
        CheckInfo { id: "D-VM-01", level: Must, kind: D, statement: "create_vm → has_vm true → inspect → list includes it → set metadata → reboot → still there", needs: &["create_vm", "has_vm", "inspect_vm", "list_vms", "set_vm_metadata", "reboot_vm", "delete_vm"] },
        CheckInfo { id: "D-VM-02", level: Must, kind: D, statement: "stop_vm and start_vm succeed and the VM remains", needs: &["create_vm", "stop_vm", "start_vm", "has_vm", "delete_vm"] },
        CheckInfo { id: "D-VM-03", level: Must, kind: D, statement: "delete_vm → has_vm false; deleting again succeeds or is typed not_found", needs: &["create_vm", "delete_vm", "has_vm"] },
        CheckInfo { id: "D-VM-04", level: Must, kind: D, statement: "has_vm of a bogus id is false, not an error", needs: &["has_vm"] },
        CheckInfo { id: "D-VM-05", level: Must, kind: D, statement: "create_vm with a bogus image is a typed error and leaves no VM", needs: &["create_vm", "list_vms"] },
        CheckInfo { id: "D-DISK-01", level: Should, kind: D, statement: "disk: create → has → attach → listed on the VM → detach → attach again → survives its VM → delete → has false", needs: &["create_vm", "delete_vm", "create_disk", "has_disk", "attach_disk", "detach_disk", "list_disks", "delete_disk"] },
        CheckInfo { id: "D-DISK-02", level: Should, kind: D, statement: "deleting a disk attached to a VM is typed in_use and keeps the disk; once detached, delete succeeds", needs: &["create_vm", "delete_vm", "create_disk", "has_disk", "attach_disk", "detach_disk", "delete_disk"] },
        CheckInfo { id: "D-DISK-03", level: Should, kind: D, statement: "attaching a disk already attached to the VM succeeds or is already_exists; it stays attached once (one detach undoes it)", needs: &["create_vm", "delete_vm", "create_disk", "attach_disk", "detach_disk", "list_disks", "delete_disk"] },
        CheckInfo { id: "D-DISK-04", level: Should, kind: D, statement: "detaching a disk twice succeeds; list_disks of the VM then omits it, and it can be deleted", needs: &["create_vm", "delete_vm", "create_disk", "attach_disk", "detach_disk", "list_disks", "delete_disk"] },
        CheckInfo { id: "D-SNAP-01", level: Should, kind: D, statement: "snapshot_disk returns an id", needs: &["create_disk", "delete_disk", "snapshot_disk"] },
        CheckInfo { id: DIRECTOR_LEAK_CHECK, level: Must, kind: D, statement: "after the run, no VM with the run's prefix remains", needs: &["list_vms"] },
    ];
    CATALOGUE
}

/// Why the CPI cannot do `action` (absent, or declared unsupported), if it cannot.
fn action_unsupported(cpi: &Cpi, action: &str) -> Option<String> {
    cpi.support(action).reason()
}

/// The reason to skip `check` if the CPI lacks or declares unsupported an action it needs.
pub(crate) fn unsupported_needs(cpi: &Cpi, check: &CheckInfo) -> Option<String> {
    check
        .needs
        .iter()
        .find_map(|action| action_unsupported(cpi, action).map(|reason| format!("`{action}` is unsupported: {reason}")))
}

fn supported(cpi: &Cpi, action: &str) -> bool {
    action_unsupported(cpi, action).is_none()
}

pub(crate) async fn run(id: &str, ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    match id {
        "C-CREATE-01" => create(ctx).await,
        "C-STATE-01" => states(ctx).await,
        "C-EXEC-01" => exec(ctx).await,
        "C-EXEC-02" => exec_stopped(ctx).await,
        "C-LOGS-01" => logs(ctx).await,
        "C-DELETE-01" => delete_from_every_state(ctx).await,
        "C-DELETE-02" => delete_missing(ctx).await,
        "C-NOTFOUND-01" => not_found(ctx).await,
        "C-EXISTS-01" => already_exists(ctx).await,
        "C-FAILCREATE-01" => failed_create(ctx).await,
        "C-VOLUME-01" => volume(ctx).await,
        "C-VOLUME-02" => attach_volume(ctx).await,
        "C-VOLUME-03" => detach_volume(ctx).await,
        "C-VOLUME-04" => volume_in_use(ctx).await,
        "C-VOLUME-05" => missing_volume(ctx).await,
        "C-NETWORK-01" => network(ctx).await,
        "C-NETWORK-02" => network_in_use(ctx).await,
        "C-NETWORK-03" => disconnect_running(ctx).await,
        "C-ROBUST-01" => repeated(ctx).await,
        "C-ROBUST-02" => parallel(ctx).await,
        "D-VM-01" => vm_lifecycle(ctx).await,
        "D-VM-02" => vm_power(ctx).await,
        "D-VM-03" => vm_delete(ctx).await,
        "D-VM-04" => vm_bogus(ctx).await,
        "D-VM-05" => vm_bad_image(ctx).await,
        "D-DISK-01" => disk_lifecycle(ctx).await,
        "D-DISK-02" => disk_in_use(ctx).await,
        "D-DISK-03" => disk_attach_again(ctx).await,
        "D-DISK-04" => disk_detach_again(ctx).await,
        "D-SNAP-01" => snapshot(ctx).await,
        other => Err(Failure { expected: format!("a check named {other}"), got: "no such check".into(), call: None }),
    }
}

/// The state a container's inspect reports, lower-cased: `state` or `State`/`Status` (podman,
/// docker) anywhere at the top of the result (the first element of an array).
pub(crate) fn state_of(result: &Value) -> Option<String> {
    match result {
        Value::Array(items) => items.first().and_then(state_of),
        Value::Object(map) => ["state", "State", "status", "Status"].iter().find_map(|k| match map.get(*k) {
            Some(Value::String(s)) => Some(s.to_lowercase()),
            Some(nested @ Value::Object(_)) => state_of(nested),
            _ => None,
        }),
        _ => None,
    }
}

fn is_running(state: &str) -> bool {
    state == "running" || state.starts_with("up")
}

/// Whether `needle` appears as (or at the end of) a string anywhere in `value`.
fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s == needle || s.trim_start_matches('/') == needle,
        Value::Array(items) => items.iter().any(|v| mentions(v, needle)),
        Value::Object(map) => map.values().any(|v| mentions(v, needle)),
        _ => false,
    }
}

impl Ctx<'_> {
    async fn new_container(&mut self, extra: Value) -> Result<String, Failure> {
        let name = self.name("c");
        let mut params = json!({"name": name, "command": ["sh", "-c", format!("echo {GREETING}; exec sleep 3600")]});
        if let (Some(p), Value::Object(extra)) = (params.as_object_mut(), extra) {
            p.extend(extra);
        }
        self.ok("create_container", params).await?;
        self.created(Resource::Container(name.clone()));
        Ok(name)
    }

    async fn state(&mut self, name: &str) -> Result<String, Failure> {
        let outcome = self.ok("inspect_container", json!({ "name": name })).await?;
        let result = outcome.result.clone().unwrap_or(Value::Null);
        state_of(&result)
            .ok_or_else(|| self.failure("inspect reports the container's state", format!("no state in {result}")))
    }

    async fn expect_state(&mut self, name: &str, running: bool, when: &str) -> Result<(), Failure> {
        let state = self.state(name).await?;
        if is_running(&state) != running {
            let expected = if running { "running" } else { "not running (stopped, exited or created)" };
            return Err(self.failure(format!("{when}: inspect says {expected}"), format!("state {state:?}")));
        }
        Ok(())
    }

    async fn listed(&mut self, name: &str) -> Result<bool, Failure> {
        let outcome = self.ok("list_containers", json!({})).await?;
        Ok(names(&outcome).iter().any(|n| n == name))
    }

    /// Logs may trail the container's output by a moment.
    async fn logs_contain(&mut self, name: &str, needle: &str) -> Result<(), Failure> {
        let mut last = String::new();
        for _ in 0..40 {
            let outcome = self.ok("logs", json!({ "name": name })).await?;
            last = format!("{}{}", outcome.stdout, outcome.stderr);
            if last.contains(needle) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(self.failure(format!("logs contain {needle:?}"), format!("logs: {last:?}")))
    }

    async fn delete_container(&mut self, name: &str) -> Result<(), Failure> {
        self.ok("delete_container", json!({ "name": name })).await?;
        self.forget(&Resource::Container(name.to_string()));
        Ok(())
    }
}

async fn create(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.new_container(json!({})).await?;
    let outcome = ctx.ok("inspect_container", json!({ "name": name })).await?;
    let result = outcome.result.clone().unwrap_or_else(|| Value::String(outcome.stdout.clone()));
    if !mentions(&result, &name) {
        return Err(ctx.failure(format!("inspect shows the name {name}"), format!("result {result}")));
    }
    if !ctx.listed(&name).await? {
        return Err(ctx.failure(format!("list includes {name}"), "it is missing"));
    }
    Ok(())
}

async fn states(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.new_container(json!({})).await?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.expect_state(&name, true, "after start").await?;
    ctx.ok("stop_container", json!({ "name": name })).await?;
    ctx.expect_state(&name, false, "after stop").await?;
    ctx.ok("stop_container", json!({ "name": name })).await?;
    ctx.ok("restart_container", json!({ "name": name })).await?;
    ctx.expect_state(&name, true, "after restart").await
}

async fn exec(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.new_container(json!({})).await?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    let ok = ctx.ok("exec", json!({"name": name, "cmd": ["sh", "-c", "echo to-stdout; echo to-stderr >&2"]})).await?;
    if ok.exit_code != Some(0) || ok.stdout != "to-stdout\n" || !ok.stderr.contains("to-stderr") {
        return Err(ctx.failure(
            "exit code 0, stdout \"to-stdout\\n\", stderr containing \"to-stderr\"",
            format!("exit code {:?}, stdout {:?}, stderr {:?}", ok.exit_code, ok.stdout, ok.stderr),
        ));
    }
    let failed = ctx.ok("exec", json!({"name": name, "cmd": ["sh", "-c", "echo partial; exit 3"]})).await?;
    if failed.exit_code != Some(3) || failed.stdout != "partial\n" {
        return Err(ctx.failure(
            "exit code 3 with stdout \"partial\\n\"",
            format!("exit code {:?}, stdout {:?}", failed.exit_code, failed.stdout),
        ));
    }
    Ok(())
}

/// A command cannot run in a stopped container: the caller must learn that from the kind, not
/// from an exit status it would take for the command's.
async fn exec_stopped(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.new_container(json!({})).await?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.ok("stop_container", json!({ "name": name })).await?;
    ctx.fails("exec", json!({"name": name, "cmd": ["sh", "-c", "exit 0"]}), &[ErrorKind::InvalidState]).await?;
    Ok(())
}

async fn logs(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.new_container(json!({})).await?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.logs_contain(&name, GREETING).await?;
    ctx.ok("stop_container", json!({ "name": name })).await?;
    ctx.logs_contain(&name, GREETING).await
}

async fn gone(ctx: &mut Ctx<'_>, name: &str, from: &str) -> Result<(), Failure> {
    ctx.fails("inspect_container", json!({ "name": name }), &[ErrorKind::NotFound]).await.map_err(|mut f| {
        f.expected = format!("after deleting a {from} container: {}", f.expected);
        f
    })?;
    if ctx.listed(name).await? {
        return Err(ctx.failure(format!("after deleting a {from} container: list omits {name}"), "it is still listed"));
    }
    Ok(())
}

async fn delete_from_every_state(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let created = ctx.new_container(json!({})).await?;
    ctx.delete_container(&created).await?;
    gone(ctx, &created, "created").await?;

    let running = ctx.new_container(json!({})).await?;
    ctx.ok("start_container", json!({ "name": running })).await?;
    ctx.delete_container(&running).await?;
    gone(ctx, &running, "running").await?;

    let stopped = ctx.new_container(json!({})).await?;
    ctx.ok("start_container", json!({ "name": stopped })).await?;
    ctx.ok("stop_container", json!({ "name": stopped })).await?;
    ctx.delete_container(&stopped).await?;
    gone(ctx, &stopped, "stopped").await
}

async fn delete_missing(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.name("missing");
    ctx.ok_or("delete_container", json!({ "name": name }), &[ErrorKind::NotFound]).await
}

async fn not_found(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.name("missing");
    for action in ["inspect_container", "start_container", "logs"] {
        ctx.fails(action, json!({ "name": name }), &[ErrorKind::NotFound]).await?;
    }
    ctx.fails("exec", json!({"name": name, "cmd": ["true"]}), &[ErrorKind::NotFound]).await?;
    Ok(())
}

async fn already_exists(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.new_container(json!({})).await?;
    ctx.fails("create_container", json!({"name": name, "command": ["true"]}), &[ErrorKind::AlreadyExists]).await?;
    Ok(())
}

async fn failed_create(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.name("badimage");
    // Registered first, so a create that wrongly succeeds is still cleaned up.
    ctx.created(Resource::Container(name.clone()));
    let image = "omni-conformance-no-such-image";
    if ctx.call("create_container", json!({"name": name, "image": image, "command": ["true"]})).await.is_ok() {
        return Err(ctx.failure(format!("create with the unknown image {image:?} fails"), "it succeeded"));
    }
    if ctx.listed(&name).await? {
        return Err(ctx.failure("a failed create leaves nothing behind", format!("{name} is listed")));
    }
    ctx.fails("inspect_container", json!({ "name": name }), &[ErrorKind::NotFound]).await?;
    Ok(())
}

/// Volumes and networks: what every volume and network check starts from, and how it ends.
impl Ctx<'_> {
    async fn new_volume(&mut self) -> Result<String, Failure> {
        let volume = self.name("v");
        self.ok("create_volume", json!({ "name": volume })).await?;
        self.created(Resource::Volume(volume.clone()));
        Ok(volume)
    }

    /// A created container with `volume` at `/data`: attached by `attach_volume` when the CPI
    /// has it, else mounted at creation (`volumes`), the only way for podman and docker.
    async fn container_with_volume(&mut self, volume: &str) -> Result<String, Failure> {
        if supported(self.cpi, "attach_volume") {
            let name = self.new_container(json!({})).await?;
            self.ok("attach_volume", json!({"name": volume, "container": name, "target": "/data"})).await?;
            Ok(name)
        } else {
            self.new_container(json!({ "volumes": [format!("{volume}:/data")] })).await
        }
    }

    async fn delete_volume(&mut self, volume: &str) -> Result<(), Failure> {
        self.ok("delete_volume", json!({ "name": volume })).await?;
        self.forget(&Resource::Volume(volume.to_string()));
        Ok(())
    }

    /// Runs `script` in the container with `sh -c`; it must exit 0 and print `stdout`.
    async fn exec_prints(&mut self, name: &str, script: &str, stdout: &str, what: &str) -> Result<(), Failure> {
        let out = self.ok("exec", json!({"name": name, "cmd": ["sh", "-c", script]})).await?;
        if out.exit_code != Some(0) || out.stdout != stdout {
            return Err(self.failure(
                format!("{what}: exec of {script:?} exits 0 and prints {stdout:?}"),
                format!("exit code {:?}, stdout {:?}, stderr {:?}", out.exit_code, out.stdout, out.stderr),
            ));
        }
        Ok(())
    }

    /// A network and a created container connected to it.
    async fn connected_container(&mut self) -> Result<(String, String), Failure> {
        let network = self.name("n");
        self.ok("create_network", json!({ "name": network })).await?;
        self.created(Resource::Network(network.clone()));
        let name = self.new_container(json!({})).await?;
        self.ok("connect_network", json!({"network": network, "container": name})).await?;
        Ok((network, name))
    }

    /// Disconnects twice: the second finds nothing to do, and succeeds.
    async fn disconnect_twice(&mut self, network: &str, name: &str, when: &str) -> Result<(), Failure> {
        let params = json!({"network": network, "container": name});
        self.ok("disconnect_network", params.clone()).await.map_err(|f| f.when(format!("{when}, the first time")))?;
        self.ok("disconnect_network", params).await.map_err(|f| f.when(format!("{when}, again")))?;
        Ok(())
    }

    async fn delete_network(&mut self, network: &str) -> Result<(), Failure> {
        self.ok("delete_network", json!({ "name": network })).await?;
        self.forget(&Resource::Network(network.to_string()));
        Ok(())
    }
}

impl Failure {
    /// Says when in the check the expectation failed.
    fn when(self, when: impl std::fmt::Display) -> Failure {
        Failure { expected: format!("{when}: {}", self.expected), ..self }
    }
}

async fn volume(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let volume = ctx.new_volume().await?;
    let writer = ctx.container_with_volume(&volume).await?;
    ctx.ok("start_container", json!({ "name": writer })).await?;
    ctx.exec_prints(&writer, "echo kept > /data/conformance && cat /data/conformance", "kept\n", "the first container")
        .await?;
    ctx.delete_container(&writer).await?;

    let reader = ctx.container_with_volume(&volume).await?;
    ctx.ok("start_container", json!({ "name": reader })).await?;
    ctx.exec_prints(&reader, "cat /data/conformance", "kept\n", "a second container reads what the first wrote")
        .await?;
    ctx.delete_container(&reader).await?;
    ctx.delete_volume(&volume).await?;
    ctx.ok_or("delete_volume", json!({ "name": volume }), &[ErrorKind::NotFound]).await
}

/// Attaching is idempotent or says it was done already, and a missing volume or container is
/// named by the kind. The container then starts with the volume where it was asked to be.
async fn attach_volume(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let volume = ctx.new_volume().await?;
    // Registered before the container, so that a volume a faulty attach creates is removed after it.
    let missing_volume = ctx.name("nosuchvolume");
    ctx.created(Resource::Volume(missing_volume.clone()));
    let name = ctx.new_container(json!({})).await?;
    let attach = |volume: &str, container: &str| json!({"name": volume, "container": container, "target": "/data"});
    ctx.ok("attach_volume", attach(&volume, &name)).await?;
    ctx.ok_or("attach_volume", attach(&volume, &name), &[ErrorKind::AlreadyExists])
        .await
        .map_err(|f| f.when("attaching the same volume again"))?;
    ctx.fails("attach_volume", attach(&missing_volume, &name), &[ErrorKind::NotFound])
        .await
        .map_err(|f| f.when("attaching a volume that does not exist"))?;
    let missing_container = ctx.name("nosuchcontainer");
    ctx.fails("attach_volume", attach(&volume, &missing_container), &[ErrorKind::NotFound])
        .await
        .map_err(|f| f.when("attaching to a container that does not exist"))?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.exec_prints(&name, "echo attached > /data/conformance && cat /data/conformance", "attached\n", "after start")
        .await
}

/// A detached volume leaves the container when it next starts, and is no longer in use.
async fn detach_volume(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let volume = ctx.new_volume().await?;
    let name = ctx.new_container(json!({})).await?;
    ctx.ok("attach_volume", json!({"name": volume, "container": name, "target": "/data"})).await?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.exec_prints(
        &name,
        "echo attached > /data/conformance && cat /data/conformance",
        "attached\n",
        "while attached",
    )
    .await?;
    ctx.ok("stop_container", json!({ "name": name })).await?;
    let detach = json!({"name": volume, "container": name});
    ctx.ok("detach_volume", detach.clone()).await?;
    ctx.ok("detach_volume", detach).await.map_err(|f| f.when("detaching again"))?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.exec_prints(
        &name,
        "if [ -e /data/conformance ]; then echo present; else echo absent; fi",
        "absent\n",
        "after detach and start, the volume's file is gone from /data",
    )
    .await?;
    ctx.delete_volume(&volume).await.map_err(|f| f.when("after detach, with the container still there"))
}

/// While a container uses a volume, in any state, the volume cannot go: the caller must learn
/// that from the kind. Once the container is gone, it can.
async fn volume_in_use(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let volume = ctx.new_volume().await?;
    let name = ctx.container_with_volume(&volume).await?;
    let in_use = json!({ "name": volume });
    ctx.fails("delete_volume", in_use.clone(), &[ErrorKind::InUse]).await.map_err(|f| f.when("container created"))?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.fails("delete_volume", in_use.clone(), &[ErrorKind::InUse]).await.map_err(|f| f.when("container running"))?;
    ctx.ok("stop_container", json!({ "name": name })).await?;
    ctx.fails("delete_volume", in_use, &[ErrorKind::InUse]).await.map_err(|f| f.when("container stopped"))?;
    ctx.delete_container(&name).await?;
    ctx.delete_volume(&volume).await.map_err(|f| f.when("once the container is gone"))
}

/// A container cannot be made with a volume that is not there (runtimes that would create it
/// silently must not), and nothing is left of the attempt: no container, no volume.
async fn missing_volume(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let volume = ctx.name("nosuchvolume");
    let name = ctx.name("c");
    // Registered first, so that what a faulty create makes is still removed, container first.
    ctx.created(Resource::Volume(volume.clone()));
    ctx.created(Resource::Container(name.clone()));
    let params =
        json!({"name": name, "command": ["sh", "-c", "exec sleep 3600"], "volumes": [format!("{volume}:/data")]});
    ctx.fails("create_container", params, &[ErrorKind::NotFound]).await?;
    if ctx.listed(&name).await? {
        return Err(ctx.failure("a create that failed leaves no container", format!("{name} is listed")));
    }
    ctx.fails("inspect_container", json!({ "name": name }), &[ErrorKind::NotFound])
        .await
        .map_err(|f| f.when("after the failed create"))?;
    if supported(ctx.cpi, "list_volumes") {
        let listed = ctx.ok("list_volumes", json!({})).await?;
        if names(&listed).contains(&volume) {
            return Err(ctx.failure("a create that failed leaves no volume", format!("{volume} is listed")));
        }
    }
    Ok(())
}

async fn network(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let (network, name) = ctx.connected_container().await?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.ok("stop_container", json!({ "name": name })).await?;
    ctx.disconnect_twice(&network, &name, "container stopped").await?;
    ctx.delete_container(&name).await?;
    ctx.delete_network(&network).await
}

/// While a running container is connected, its network cannot go: the caller must learn that
/// from the kind.
async fn network_in_use(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let (network, name) = ctx.connected_container().await?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.fails("delete_network", json!({ "name": network }), &[ErrorKind::InUse]).await?;
    ctx.delete_container(&name).await?;
    ctx.delete_network(&network).await.map_err(|f| f.when("once the container is gone"))
}

/// A running container can leave a network, and a repeated disconnect is not an error; the
/// network is then free while the container goes on running. (A runtime that fixes a
/// container's namespaces at start, like runc, answers invalid_state and fails this SHOULD.)
async fn disconnect_running(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let (network, name) = ctx.connected_container().await?;
    ctx.ok("start_container", json!({ "name": name })).await?;
    ctx.disconnect_twice(&network, &name, "container running").await?;
    ctx.delete_network(&network).await.map_err(|f| f.when("after disconnecting, with the container running"))
}

async fn repeated(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.name("rep");
    for round in 1..=ctx.repeat.max(1) {
        let step = |f: Failure| Failure { expected: format!("round {round}: {}", f.expected), ..f };
        ctx.ok("create_container", json!({"name": name, "command": ["sh", "-c", "exec sleep 3600"]}))
            .await
            .map_err(step)?;
        ctx.created(Resource::Container(name.clone()));
        ctx.ok("start_container", json!({ "name": name })).await.map_err(step)?;
        let out = ctx.ok("exec", json!({"name": name, "cmd": ["echo", round.to_string()]})).await.map_err(step)?;
        if out.stdout.trim() != round.to_string() {
            return Err(step(ctx.failure(format!("exec prints {round}"), format!("{:?}", out.stdout))));
        }
        ctx.ok("stop_container", json!({ "name": name })).await.map_err(step)?;
        ctx.delete_container(&name).await.map_err(step)?;
    }
    Ok(())
}

async fn parallel(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..ctx.parallel.max(1) {
        let name = ctx.name("par");
        ctx.created(Resource::Container(name.clone()));
        let cpi = ctx.cpi.clone();
        let base = ctx.base.clone();
        tasks.spawn(async move {
            let options = CallOptions::default();
            let call = |action: &'static str, extra: Value| {
                let mut params = base.clone();
                if let Value::Object(extra) = extra {
                    params.extend(extra);
                }
                let cpi = cpi.clone();
                let options = options.clone();
                async move {
                    cpi.call(action, &params, &options)
                        .await
                        .map_err(|e| format!("{action}: error[{}]: {}", e.kind, e.message))
                }
            };
            call("create_container", json!({"name": name, "command": ["sh", "-c", "exec sleep 3600"]})).await?;
            call("start_container", json!({ "name": name })).await?;
            let out: Outcome = call("exec", json!({"name": name, "cmd": ["echo", name]})).await?;
            if out.stdout.trim() != name {
                return Err(format!("exec in {name} printed {:?}", out.stdout));
            }
            call("delete_container", json!({ "name": name })).await?;
            Ok::<(), String>(())
        });
    }
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("task failed: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ctx.failure(format!("{} parallel lifecycles succeed", ctx.parallel), errors.join("; ")))
    }
}

/// Nothing of this run remains: containers (or VMs) with the run's prefix.
pub(crate) async fn leftovers(ctx: &mut Ctx<'_>, prefix: &str) -> Result<(), Failure> {
    let list = match ctx.cpi.kind() {
        CpiKind::Container => "list_containers",
        CpiKind::Director => "list_vms",
    };
    let outcome = ctx.ok(list, json!({})).await?;
    let leaked: Vec<String> = names(&outcome).into_iter().filter(|n| n.starts_with(prefix)).collect();
    if leaked.is_empty() {
        Ok(())
    } else {
        Err(ctx.failure(format!("nothing named {prefix}* remains"), format!("leaked: {}", leaked.join(", "))))
    }
}

impl Ctx<'_> {
    async fn new_vm(&mut self) -> Result<String, Failure> {
        let name = self.name("vm");
        let outcome = self.ok("create_vm", json!({"name": name, "cpus": 1, "memory_mb": 64})).await?;
        let id = outcome.result.as_ref().and_then(|r| r["id"].as_str()).unwrap_or(&name).to_string();
        self.created(Resource::Vm(id.clone()));
        Ok(id)
    }

    async fn has(&mut self, action: &str, key: &str, id: &str, expected: bool) -> Result<(), Failure> {
        let outcome = self.ok(action, json!({ key: id })).await?;
        let got = outcome.result.clone().unwrap_or(Value::Null);
        if got != Value::Bool(expected) {
            return Err(self.failure(format!("{action} {id} is {expected}"), format!("{got}")));
        }
        Ok(())
    }
}

async fn vm_lifecycle(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let id = ctx.new_vm().await?;
    ctx.has("has_vm", "vm", &id, true).await?;
    let inspected = ctx.ok("inspect_vm", json!({ "vm": id })).await?;
    if !inspected.result.as_ref().is_some_and(|r| mentions(r, &id)) {
        return Err(ctx.failure(format!("inspect_vm shows {id}"), format!("{:?}", inspected.result)));
    }
    let listed = ctx.ok("list_vms", json!({})).await?;
    if !names(&listed).contains(&id) {
        return Err(ctx.failure(format!("list_vms includes {id}"), format!("{:?}", listed.result)));
    }
    ctx.ok("set_vm_metadata", json!({"vm": id, "metadata": {"omni-conformance": "yes"}})).await?;
    ctx.ok("reboot_vm", json!({ "vm": id })).await?;
    ctx.has("has_vm", "vm", &id, true).await
}

async fn vm_power(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let id = ctx.new_vm().await?;
    ctx.ok("stop_vm", json!({ "vm": id })).await?;
    ctx.ok("start_vm", json!({ "vm": id })).await?;
    ctx.has("has_vm", "vm", &id, true).await
}

async fn vm_delete(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let id = ctx.new_vm().await?;
    ctx.ok("delete_vm", json!({ "vm": id })).await?;
    ctx.forget(&Resource::Vm(id.clone()));
    ctx.has("has_vm", "vm", &id, false).await?;
    ctx.ok_or("delete_vm", json!({ "vm": id }), &[ErrorKind::NotFound]).await
}

async fn vm_bogus(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let id = ctx.name("nosuchvm");
    ctx.has("has_vm", "vm", &id, false).await
}

async fn vm_bad_image(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let name = ctx.name("badvm");
    ctx.created(Resource::Vm(name.clone()));
    let err = ctx
        .fails(
            "create_vm",
            json!({"name": name, "image": "omni-conformance-no-such-image"}),
            &[ErrorKind::NotFound, ErrorKind::InvalidArgument, ErrorKind::Failed, ErrorKind::Unavailable],
        )
        .await?;
    let _ = err;
    let listed = ctx.ok("list_vms", json!({})).await?;
    if names(&listed).iter().any(|n| n == &name) {
        return Err(ctx.failure("a failed create_vm leaves no VM", format!("{name} is listed")));
    }
    Ok(())
}

/// Disks: what every disk check starts from.
impl Ctx<'_> {
    /// A new disk named `KIND<n>` under the run prefix; its id (the result's `id`, else the name).
    /// Checks create a disk before the VM it is attached to: cleanup runs newest first, and
    /// deleting the VM frees the disk, which then can go too, whatever step the check failed at.
    async fn new_disk(&mut self, kind: &str) -> Result<String, Failure> {
        let name = self.name(kind);
        let created = self.ok("create_disk", json!({"name": name, "size_mb": 16})).await?;
        let disk = created.result.as_ref().and_then(|r| r["id"].as_str()).unwrap_or(&name).to_string();
        self.created(Resource::Disk(disk.clone()));
        Ok(disk)
    }

    /// How many times `list_disks` of the VM names the disk.
    async fn times_listed(&mut self, vm: &str, disk: &str) -> Result<usize, Failure> {
        let listed = self.ok("list_disks", json!({ "vm": vm })).await?;
        Ok(names(&listed).iter().filter(|n| *n == disk).count())
    }

    async fn delete_disk(&mut self, disk: &str) -> Result<(), Failure> {
        self.ok("delete_disk", json!({ "disk": disk })).await?;
        self.forget(&Resource::Disk(disk.to_string()));
        Ok(())
    }
}

async fn disk_lifecycle(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let disk = ctx.new_disk("d").await?;
    let vm = ctx.new_vm().await?;
    ctx.has("has_disk", "disk", &disk, true).await?;
    ctx.ok("attach_disk", json!({"vm": vm, "disk": disk})).await?;
    if ctx.times_listed(&vm, &disk).await? == 0 {
        return Err(ctx.failure(format!("list_disks of {vm} includes {disk}"), "it is missing"));
    }
    ctx.ok("detach_disk", json!({"vm": vm, "disk": disk})).await?;
    ctx.ok("attach_disk", json!({"vm": vm, "disk": disk})).await?;
    ctx.ok("delete_vm", json!({ "vm": vm })).await?;
    ctx.forget(&Resource::Vm(vm.clone()));
    ctx.has("has_disk", "disk", &disk, true).await?;
    ctx.delete_disk(&disk).await?;
    ctx.has("has_disk", "disk", &disk, false).await
}

/// An attached disk cannot be deleted from under its VM: the caller learns it from the kind, and
/// the disk is still there. Once detached, it can be.
async fn disk_in_use(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let disk = ctx.new_disk("d").await?;
    let vm = ctx.new_vm().await?;
    ctx.ok("attach_disk", json!({"vm": vm, "disk": disk})).await?;
    ctx.fails("delete_disk", json!({ "disk": disk }), &[ErrorKind::InUse]).await?;
    ctx.has("has_disk", "disk", &disk, true).await.map_err(|f| f.when("after the refused delete"))?;
    ctx.ok("detach_disk", json!({"vm": vm, "disk": disk})).await?;
    ctx.delete_disk(&disk).await.map_err(|f| f.when("once detached"))?;
    ctx.has("has_disk", "disk", &disk, false).await
}

/// The Director retries an attach whose answer it lost (BOSH's attach_disk): a second attach to
/// the same VM is done already, either as a success or as already_exists, never a second
/// attachment or an untyped error.
async fn disk_attach_again(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let disk = ctx.new_disk("d").await?;
    let vm = ctx.new_vm().await?;
    let attach = json!({"vm": vm, "disk": disk});
    ctx.ok("attach_disk", attach.clone()).await?;
    ctx.ok_or("attach_disk", attach.clone(), &[ErrorKind::AlreadyExists])
        .await
        .map_err(|f| f.when("attaching the disk to the same VM again"))?;
    let times = ctx.times_listed(&vm, &disk).await?;
    if times != 1 {
        return Err(
            ctx.failure(format!("after two attaches, list_disks of {vm} names {disk} once"), format!("{times} times"))
        );
    }
    ctx.ok("detach_disk", attach).await?;
    let times = ctx.times_listed(&vm, &disk).await?;
    if times != 0 {
        return Err(ctx.failure(
            format!("one detach undoes both attaches: list_disks of {vm} omits {disk}"),
            format!("it is listed {times} times"),
        ));
    }
    Ok(())
}

/// Detach, like every removal, is idempotent: the second finds nothing to do, and succeeds.
async fn disk_detach_again(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let disk = ctx.new_disk("d").await?;
    let vm = ctx.new_vm().await?;
    let params = json!({"vm": vm, "disk": disk});
    ctx.ok("attach_disk", params.clone()).await?;
    ctx.ok("detach_disk", params.clone()).await?;
    ctx.ok("detach_disk", params).await.map_err(|f| f.when("detaching the disk again"))?;
    let times = ctx.times_listed(&vm, &disk).await?;
    if times != 0 {
        return Err(
            ctx.failure(format!("after detach, list_disks of {vm} omits {disk}"), format!("listed {times} times"))
        );
    }
    ctx.delete_disk(&disk).await.map_err(|f| f.when("once detached"))
}

async fn snapshot(ctx: &mut Ctx<'_>) -> Result<(), Failure> {
    let disk = ctx.new_disk("sd").await?;
    let snapshot_name = ctx.name("snap");
    let outcome = ctx.ok("snapshot_disk", json!({"disk": disk, "snapshot": snapshot_name})).await?;
    let id = outcome.result.as_ref().and_then(|r| r["id"].as_str()).map(str::to_string);
    // A CPI that can delete snapshots gets its snapshot removed like every other resource.
    if supported(ctx.cpi, "delete_snapshot") {
        ctx.created(Resource::Snapshot(id.clone().unwrap_or_else(|| snapshot_name.clone())));
    }
    let has_id = id.is_some_and(|s| !s.is_empty()) || !outcome.stdout.trim().is_empty();
    if !has_id {
        return Err(ctx.failure("snapshot_disk returns an id", format!("{:?}", outcome.result)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids_are_unique_and_levels_stated() {
        let mut ids: Vec<&str> = catalogue().iter().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), catalogue().len());
        assert!(catalogue().iter().all(|c| !c.statement.is_empty() && !c.needs.is_empty()));
    }

    #[test]
    fn reads_states_of_every_shipped_runtime() {
        assert_eq!(state_of(&json!([{"State": {"Status": "running"}}])), Some("running".into()));
        assert_eq!(state_of(&json!({"name": "x", "state": "STOPPED"})), Some("stopped".into()));
        assert_eq!(state_of(&json!({"State": "exited"})), Some("exited".into()));
        assert_eq!(state_of(&json!({"name": "x"})), None);
    }
}
