//! From the uniform call (`action` + JSON parameters, as for JSON specs) to a typed WIT call and
//! back. Parameter names follow the shipped JSON specs (cpis/REFERENCE.md, "Conventions"), so a
//! caller cannot tell a component CPI from a JSON one. Parameters are checked here, before any
//! instance exists.

use serde_json::{json, Map, Value};
use wasmtime::Store;

use super::bindings::{types, v0_1, v0_2, v0_3};
use super::state::CallState;
use crate::contract::catalogue::{self, CpiKind, StandardParam};
use crate::contract::error::{CpiError, ErrorKind};
use crate::contract::params::{self, ParamRule, Params};

/// A validated call of one world's function.
#[derive(Debug, Clone)]
pub enum WitCall {
    CreateContainer(types::ContainerSpec),
    DeleteContainer(String),
    StartContainer(String),
    StopContainer(String, Option<u32>),
    RestartContainer(String, Option<u32>),
    InspectContainer(String),
    ListContainers,
    Logs(String),
    Exec(String, Vec<String>),
    CreateVolume(String),
    DeleteVolume(String),
    AttachVolume { volume: String, container: String, target: String },
    DetachVolume { volume: String, container: String },
    ListVolumes,
    CreateNetwork(String),
    DeleteNetwork(String),
    ConnectNetwork { network: String, container: String },
    DisconnectNetwork { network: String, container: String },
    ListNetworks,
    CreateVm(types::VmSpec),
    DeleteVm(String),
    StartVm(String),
    StopVm(String),
    RebootVm(String),
    HasVm(String),
    InspectVm(String),
    ListVms,
    SetVmMetadata(String, Vec<(String, String)>),
    CreateDisk(types::DiskSpec),
    DeleteDisk(String),
    AttachDisk { vm: String, disk: String },
    DetachDisk { vm: String, disk: String },
    HasDisk(String),
    ListDisks(Option<String>),
    SnapshotDisk { disk: String, snapshot: String },
}

/// What a call produced, in the shape of a JSON spec call's outcome.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub result: Option<Value>,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

impl Reply {
    fn value(v: Value) -> Reply {
        Reply { result: Some(v), ..Reply::default() }
    }

    fn done() -> Reply {
        Reply::default()
    }

    /// Bytes the plugin returned, for the return-size limit.
    pub fn size(&self) -> usize {
        self.result.as_ref().map_or(0, |v| v.to_string().len()) + self.stdout.len() + self.stderr.len()
    }
}

/// A call's parameters after [`params::check`]: every value has its catalogue type, so reading
/// one cannot fail except for a number beyond the WIT type's range.
struct Args<'a> {
    action: &'a str,
    params: &'a Params,
}

impl Args<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.params.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> String {
        self.get(name).map(params::scalar_text).unwrap_or_default()
    }

    fn opt_string(&self, name: &str) -> Option<String> {
        self.get(name).map(params::scalar_text)
    }

    fn opt_u32(&self, name: &str) -> Result<Option<u32>, CpiError> {
        let Some(value) = self.get(name) else { return Ok(None) };
        params::scalar_text(value).parse::<u32>().map(Some).map_err(|_| {
            CpiError::for_param(
                ErrorKind::InvalidArgument,
                self.action,
                name,
                format!("parameter `{name}` must be a whole number from 0 to 4294967295"),
            )
        })
    }

    fn list(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Value::Array(items)) => items.iter().map(params::scalar_text).collect(),
            _ => Vec::new(),
        }
    }

    fn map(&self, name: &str) -> Vec<(String, String)> {
        match self.get(name) {
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), params::scalar_text(v))).collect(),
            _ => Vec::new(),
        }
    }
}

/// How the shared check holds a component's parameter: the catalogue's type and presence, and no
/// leading `-` unless the value is an argv of its own (the host cannot see where the plugin puts it).
fn rule(param: &StandardParam) -> ParamRule<'_> {
    ParamRule {
        name: param.name,
        ty: param.ty,
        required: param.required,
        has_default: false,
        pattern: None,
        refuse_leading_dash: !param.allow_dash,
        secret: crate::secrets::looks_like_credential(param.name),
    }
}

impl WitCall {
    /// Checks the parameters of a call of `action` on a plugin of the given kind, with the same
    /// check as JSON specs, then builds the typed WIT call.
    pub fn parse(kind: CpiKind, action: &str, params: &Params) -> Result<WitCall, CpiError> {
        let action = catalogue::canonical_action(kind, action);
        let interface = kind.as_str();
        let Some(standard) = catalogue::action(kind, action) else {
            let near = crate::suggest::closest(action, catalogue::known_actions(kind))
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(CpiError::new(
                ErrorKind::Unsupported,
                action,
                format!("the {interface} interface has no action `{action}`{near}"),
            ));
        };
        params::check(action, standard.params.iter().map(rule), params)?;
        let a = Args { action, params };
        Ok(match action {
            "create_container" => WitCall::CreateContainer(types::ContainerSpec {
                name: a.string("name"),
                image: a.string("image"),
                command: a.list("command"),
                env: a.map("env"),
                ports: a.list("ports"),
                volumes: a.list("volumes"),
                network: a.opt_string("network"),
            }),
            "delete_container" => WitCall::DeleteContainer(a.string("name")),
            "start_container" => WitCall::StartContainer(a.string("name")),
            "stop_container" => WitCall::StopContainer(a.string("name"), a.opt_u32("stop_timeout")?),
            "restart_container" => WitCall::RestartContainer(a.string("name"), a.opt_u32("stop_timeout")?),
            "inspect_container" => WitCall::InspectContainer(a.string("name")),
            "list_containers" => WitCall::ListContainers,
            "logs" => WitCall::Logs(a.string("name")),
            "exec" => WitCall::Exec(a.string("name"), a.list("cmd")),
            "create_volume" => WitCall::CreateVolume(a.string("name")),
            "delete_volume" => WitCall::DeleteVolume(a.string("name")),
            "attach_volume" => WitCall::AttachVolume {
                volume: a.string("name"),
                container: a.string("container"),
                target: a.string("target"),
            },
            "detach_volume" => WitCall::DetachVolume { volume: a.string("name"), container: a.string("container") },
            "list_volumes" => WitCall::ListVolumes,
            "create_network" => WitCall::CreateNetwork(a.string("name")),
            "delete_network" => WitCall::DeleteNetwork(a.string("name")),
            "connect_network" => {
                WitCall::ConnectNetwork { network: a.string("network"), container: a.string("container") }
            }
            "disconnect_network" => {
                WitCall::DisconnectNetwork { network: a.string("network"), container: a.string("container") }
            }
            "list_networks" => WitCall::ListNetworks,
            "create_vm" => WitCall::CreateVm(types::VmSpec {
                name: a.string("name"),
                image: a.string("image"),
                cpus: a.opt_u32("cpus")?.unwrap_or(1),
                memory_mb: a.opt_u32("memory_mb")?.unwrap_or(512),
                metadata: a.map("metadata"),
            }),
            "delete_vm" => WitCall::DeleteVm(a.string("vm")),
            "start_vm" => WitCall::StartVm(a.string("vm")),
            "stop_vm" => WitCall::StopVm(a.string("vm")),
            "reboot_vm" => WitCall::RebootVm(a.string("vm")),
            "has_vm" => WitCall::HasVm(a.string("vm")),
            "inspect_vm" => WitCall::InspectVm(a.string("vm")),
            "list_vms" => WitCall::ListVms,
            "set_vm_metadata" => WitCall::SetVmMetadata(a.string("vm"), a.map("metadata")),
            "create_disk" => WitCall::CreateDisk(types::DiskSpec {
                name: a.string("name"),
                size_mb: a.opt_u32("size_mb")?.unwrap_or_default().into(),
            }),
            "delete_disk" => WitCall::DeleteDisk(a.string("disk")),
            "attach_disk" => WitCall::AttachDisk { vm: a.string("vm"), disk: a.string("disk") },
            "detach_disk" => WitCall::DetachDisk { vm: a.string("vm"), disk: a.string("disk") },
            "has_disk" => WitCall::HasDisk(a.string("disk")),
            "list_disks" => WitCall::ListDisks(a.opt_string("vm")),
            "snapshot_disk" => WitCall::SnapshotDisk { disk: a.string("disk"), snapshot: a.string("snapshot") },
            // In the catalogue, but not in the WIT interface.
            other => {
                return Err(CpiError::new(
                    ErrorKind::Unsupported,
                    other,
                    format!(
                        "the {interface} interface of WIT omni:cpi@{} has no `{other}` (a JSON spec can provide it)",
                        super::component::INTERFACE_VERSION
                    ),
                ))
            }
        })
    }
}

pub fn error_kind(kind: types::ErrorKind) -> ErrorKind {
    use types::ErrorKind as W;
    match kind {
        W::NotFound => ErrorKind::NotFound,
        W::AlreadyExists => ErrorKind::AlreadyExists,
        W::InvalidArgument => ErrorKind::InvalidArgument,
        W::InvalidState => ErrorKind::InvalidState,
        W::InUse => ErrorKind::InUse,
        W::Unsupported => ErrorKind::Unsupported,
        W::Denied => ErrorKind::Denied,
        W::Timeout => ErrorKind::Timeout,
        W::Unavailable => ErrorKind::Unavailable,
        W::Failed => ErrorKind::Failed,
        W::Internal => ErrorKind::Internal,
    }
}

fn state_name(state: types::ContainerState) -> &'static str {
    match state {
        types::ContainerState::Created => "created",
        types::ContainerState::Running => "running",
        types::ContainerState::Paused => "paused",
        types::ContainerState::Stopped => "stopped",
        types::ContainerState::Unknown => "unknown",
    }
}

/// Details are JSON text when the plugin gives JSON, otherwise a string.
fn details(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn pairs(list: &[(String, String)]) -> Value {
    Value::Object(list.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>())
}

fn container_info(info: types::ContainerInfo) -> Value {
    json!({"name": info.name, "id": info.id, "image": info.image, "state": state_name(info.state),
           "pid": info.pid, "details": details(&info.details)})
}

fn vm_info(info: types::VmInfo) -> Value {
    let state = match info.state {
        types::VmState::Created => "created",
        types::VmState::Running => "running",
        types::VmState::Stopped => "stopped",
        types::VmState::Unknown => "unknown",
    };
    json!({"id": info.id, "name": info.name, "state": state, "metadata": pairs(&info.metadata),
           "disks": info.disks, "details": details(&info.details)})
}

fn disk_info(info: types::DiskInfo) -> Value {
    json!({"id": info.id, "size_mb": info.size_mb, "attached_to": info.attached_to})
}

type CallResult = wasmtime::Result<Result<Reply, types::CpiError>>;

/// The container calls every interface version has, as match arms over `$call` calling the
/// exports `$c` in `$store`; `$newer` are the arms of the calls only some versions have.
macro_rules! container_calls {
    ($c:ident, $store:ident, $call:ident, $($newer:tt)*) => {{
        let done = |r: Result<(), types::CpiError>| r.map(|()| Reply::done());
        Ok(match $call {
            WitCall::CreateContainer(spec) => {
                $c.call_create_container(&mut *$store, spec).await?.map(|i| Reply::value(container_info(i)))
            }
            WitCall::DeleteContainer(name) => done($c.call_delete_container(&mut *$store, name).await?),
            WitCall::StartContainer(name) => done($c.call_start_container(&mut *$store, name).await?),
            WitCall::StopContainer(name, t) => done($c.call_stop_container(&mut *$store, name, *t).await?),
            WitCall::RestartContainer(name, t) => done($c.call_restart_container(&mut *$store, name, *t).await?),
            WitCall::InspectContainer(name) => {
                $c.call_inspect_container(&mut *$store, name).await?.map(|i| Reply::value(container_info(i)))
            }
            WitCall::ListContainers => {
                $c.call_list_containers(&mut *$store).await?.map(|names| Reply::value(json!(names)))
            }
            WitCall::Logs(name) => {
                $c.call_logs(&mut *$store, name).await?.map(|text| Reply { stdout: text, ..Reply::default() })
            }
            WitCall::Exec(name, cmd) => $c.call_exec(&mut *$store, name, cmd).await?.map(|r| Reply {
                result: None,
                stdout: r.stdout,
                stderr: r.stderr,
                exit_code: r.exit_code,
            }),
            WitCall::CreateVolume(name) => done($c.call_create_volume(&mut *$store, name).await?),
            WitCall::DeleteVolume(name) => done($c.call_delete_volume(&mut *$store, name).await?),
            WitCall::AttachVolume { volume, container, target } => {
                done($c.call_attach_volume(&mut *$store, volume, container, target).await?)
            }
            WitCall::CreateNetwork(name) => done($c.call_create_network(&mut *$store, name).await?),
            WitCall::DeleteNetwork(name) => done($c.call_delete_network(&mut *$store, name).await?),
            WitCall::ConnectNetwork { network, container } => {
                done($c.call_connect_network(&mut *$store, network, container).await?)
            }
            WitCall::DisconnectNetwork { network, container } => {
                done($c.call_disconnect_network(&mut *$store, network, container).await?)
            }
            $($newer)*
            other => unreachable!("director call {other:?} on a container CPI"),
        })
    }};
}

/// The container calls of 0.2.0 and later, in which every function of the catalogue exists.
macro_rules! complete_container_calls {
    ($cpi:ident, $store:ident, $call:ident) => {{
        let c = $cpi.omni_cpi_container();
        container_calls!(c, $store, $call,
            WitCall::DetachVolume { volume, container } => {
                c.call_detach_volume(&mut *$store, volume, container).await?.map(|()| Reply::done())
            }
            WitCall::ListVolumes => c.call_list_volumes(&mut *$store).await?.map(|names| Reply::value(json!(names))),
            WitCall::ListNetworks => c.call_list_networks(&mut *$store).await?.map(|names| Reply::value(json!(names))),
        )
    }};
}

/// Calls a container CPI's export for `call` (omni:cpi@0.3.0).
pub async fn call_container(
    cpi: &v0_3::container::ContainerCpi,
    store: &mut Store<CallState>,
    call: &WitCall,
) -> CallResult {
    complete_container_calls!(cpi, store, call)
}

/// Calls a container CPI built against omni:cpi@0.2.0 (the same calls as 0.3.0).
pub async fn call_container_v0_2(
    cpi: &v0_2::container::ContainerCpi,
    store: &mut Store<CallState>,
    call: &WitCall,
) -> CallResult {
    complete_container_calls!(cpi, store, call)
}

/// Calls a container CPI built against omni:cpi@0.1.0, which lacks the calls 0.2.0 added.
pub async fn call_container_v0_1(
    cpi: &v0_1::container::ContainerCpi,
    store: &mut Store<CallState>,
    call: &WitCall,
) -> CallResult {
    let c = cpi.omni_cpi_container();
    container_calls!(c, store, call,
        WitCall::DetachVolume { .. } => Err(not_in_v0_1("detach-volume")),
        WitCall::ListVolumes => Err(not_in_v0_1("list-volumes")),
        WitCall::ListNetworks => Err(not_in_v0_1("list-networks")),
    )
}

fn not_in_v0_1(function: &str) -> types::CpiError {
    types::CpiError {
        kind: types::ErrorKind::Unsupported,
        message: format!(
            "the plugin is built against omni:cpi@0.1.0, which has no `{function}`; rebuilt against omni:cpi@{} (the current SDK) it can provide it",
            super::component::INTERFACE_VERSION
        ),
    }
}

/// The director calls, the same in every interface version.
macro_rules! director_calls {
    ($d:ident, $store:ident, $call:ident) => {{
        let done = |r: Result<(), types::CpiError>| r.map(|()| Reply::done());
        Ok(match $call {
            WitCall::CreateVm(spec) => $d.call_create_vm(&mut *$store, spec).await?.map(|i| Reply::value(vm_info(i))),
            WitCall::DeleteVm(id) => done($d.call_delete_vm(&mut *$store, id).await?),
            WitCall::StartVm(id) => done($d.call_start_vm(&mut *$store, id).await?),
            WitCall::StopVm(id) => done($d.call_stop_vm(&mut *$store, id).await?),
            WitCall::RebootVm(id) => done($d.call_reboot_vm(&mut *$store, id).await?),
            WitCall::HasVm(id) => $d.call_has_vm(&mut *$store, id).await?.map(|b| Reply::value(json!(b))),
            WitCall::InspectVm(id) => $d.call_inspect_vm(&mut *$store, id).await?.map(|i| Reply::value(vm_info(i))),
            WitCall::ListVms => $d.call_list_vms(&mut *$store).await?.map(|ids| Reply::value(json!(ids))),
            WitCall::SetVmMetadata(id, metadata) => {
                done($d.call_set_vm_metadata(&mut *$store, id, metadata).await?)
            }
            WitCall::CreateDisk(spec) => {
                $d.call_create_disk(&mut *$store, spec).await?.map(|i| Reply::value(disk_info(i)))
            }
            WitCall::DeleteDisk(id) => done($d.call_delete_disk(&mut *$store, id).await?),
            WitCall::AttachDisk { vm, disk } => done($d.call_attach_disk(&mut *$store, vm, disk).await?),
            WitCall::DetachDisk { vm, disk } => done($d.call_detach_disk(&mut *$store, vm, disk).await?),
            WitCall::HasDisk(id) => $d.call_has_disk(&mut *$store, id).await?.map(|b| Reply::value(json!(b))),
            WitCall::ListDisks(vm) => {
                $d.call_list_disks(&mut *$store, vm.as_deref()).await?.map(|ids| Reply::value(json!(ids)))
            }
            WitCall::SnapshotDisk { disk, snapshot } => $d
                .call_snapshot_disk(&mut *$store, disk, snapshot)
                .await?
                .map(|id| Reply::value(json!({ "id": id }))),
            other => unreachable!("container call {other:?} on a director CPI"),
        })
    }};
}

/// Calls a director CPI's export for `call` (omni:cpi@0.3.0).
pub async fn call_director(
    cpi: &v0_3::director::DirectorCpi,
    store: &mut Store<CallState>,
    call: &WitCall,
) -> CallResult {
    let d = cpi.omni_cpi_director();
    director_calls!(d, store, call)
}

/// Calls a director CPI built against omni:cpi@0.2.0.
pub async fn call_director_v0_2(
    cpi: &v0_2::director::DirectorCpi,
    store: &mut Store<CallState>,
    call: &WitCall,
) -> CallResult {
    let d = cpi.omni_cpi_director();
    director_calls!(d, store, call)
}

/// Calls a director CPI built against omni:cpi@0.1.0.
pub async fn call_director_v0_1(
    cpi: &v0_1::director::DirectorCpi,
    store: &mut Store<CallState>,
    call: &WitCall,
) -> CallResult {
    let d = cpi.omni_cpi_director();
    director_calls!(d, store, call)
}
