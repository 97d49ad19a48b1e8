//! From the uniform call (`action` + JSON parameters, as for JSON specs) to a typed WIT call and
//! back. Parameter names follow the shipped JSON specs (cpis/REFERENCE.md, "Conventions"), so a
//! caller cannot tell a component CPI from a JSON one. Parameters are checked here, before any
//! instance exists.

use serde_json::{json, Map, Value};
use wasmtime::Store;

use super::bindings::container::ContainerCpi;
use super::bindings::director::DirectorCpi;
use super::bindings::types;
use super::state::CallState;
use crate::error::{CpiError, ErrorKind};
use crate::json_cpi::Params;
use crate::spec::kinds;

/// A validated call of one world's function.
#[derive(Debug, Clone)]
pub enum Request {
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
    CreateNetwork(String),
    DeleteNetwork(String),
    ConnectNetwork { network: String, container: String },
    DisconnectNetwork { network: String, container: String },
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

struct Args<'a> {
    action: &'a str,
    params: &'a Params,
}

impl Args<'_> {
    fn invalid(&self, param: &str, message: String) -> CpiError {
        CpiError::for_param(ErrorKind::InvalidArgument, self.action, param, message)
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.params.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> Result<String, CpiError> {
        self.opt_string(name)?.ok_or_else(|| self.invalid(name, format!("missing required parameter `{name}`")))
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>, CpiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.invalid(name, format!("parameter `{name}` must be a string, got {other}"))),
        }
    }

    fn opt_u32(&self, name: &str) -> Result<Option<u32>, CpiError> {
        let bad = || self.invalid(name, format!("parameter `{name}` must be a whole number from 0 to 4294967295"));
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(bad),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    fn u32_or(&self, name: &str, default: u32) -> Result<u32, CpiError> {
        Ok(self.opt_u32(name)?.unwrap_or(default))
    }

    fn list(&self, name: &str) -> Result<Vec<String>, CpiError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(self.invalid(name, format!("parameter `{name}` must be a list of strings"))),
                })
                .collect(),
            Some(_) => Err(self.invalid(name, format!("parameter `{name}` must be a list (write {name}:='[...]')"))),
        }
    }

    fn required_list(&self, name: &str) -> Result<Vec<String>, CpiError> {
        let list = self.list(name)?;
        if self.get(name).is_none() {
            return Err(self.invalid(name, format!("missing required parameter `{name}`")));
        }
        Ok(list)
    }

    fn map(&self, name: &str) -> Result<Vec<(String, String)>, CpiError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                    _ => Err(self.invalid(name, format!("parameter `{name}` must map names to strings"))),
                })
                .collect(),
            Some(_) => Err(self.invalid(name, format!("parameter `{name}` must be a map (write {name}:='{{...}}')"))),
        }
    }
}

impl Request {
    /// Checks the parameters of a call of `action` on a plugin of the given kind.
    pub fn parse(director: bool, action: &str, params: &Params) -> Result<Request, CpiError> {
        let action = if director { kinds::canonical_action(crate::spec::CpiKind::Director, action) } else { action };
        let a = Args { action, params };
        let known = if director { kinds::DIRECTOR_ACTIONS } else { kinds::CONTAINER_ACTIONS };
        if !known.contains(&action) {
            let near = crate::suggest::closest(action, known.iter().copied())
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(CpiError::new(
                ErrorKind::Unsupported,
                action,
                format!(
                    "the {} interface has no action `{action}`{near}",
                    if director { "director" } else { "container" }
                ),
            ));
        }
        Ok(match action {
            "create_container" => Request::CreateContainer(types::ContainerSpec {
                name: a.string("name")?,
                image: a.string("image")?,
                command: a.list("command")?,
                env: a.map("env")?,
                ports: a.list("ports")?,
                volumes: a.list("volumes")?,
                network: a.opt_string("network")?,
            }),
            "delete_container" => Request::DeleteContainer(a.string("name")?),
            "start_container" => Request::StartContainer(a.string("name")?),
            "stop_container" => Request::StopContainer(a.string("name")?, a.opt_u32("stop_timeout")?),
            "restart_container" => Request::RestartContainer(a.string("name")?, a.opt_u32("stop_timeout")?),
            "inspect_container" => Request::InspectContainer(a.string("name")?),
            "list_containers" => Request::ListContainers,
            "logs" => Request::Logs(a.string("name")?),
            "exec" => Request::Exec(a.string("name")?, a.required_list("cmd")?),
            "create_volume" => Request::CreateVolume(a.string("name")?),
            "delete_volume" => Request::DeleteVolume(a.string("name")?),
            "attach_volume" => Request::AttachVolume {
                volume: a.string("name")?,
                container: a.string("container")?,
                target: a.string("target")?,
            },
            "create_network" => Request::CreateNetwork(a.string("name")?),
            "delete_network" => Request::DeleteNetwork(a.string("name")?),
            "connect_network" => {
                Request::ConnectNetwork { network: a.string("network")?, container: a.string("container")? }
            }
            "disconnect_network" => {
                Request::DisconnectNetwork { network: a.string("network")?, container: a.string("container")? }
            }
            "create_vm" => Request::CreateVm(types::VmSpec {
                name: a.string("name")?,
                image: a.string("image")?,
                cpus: a.u32_or("cpus", 1)?,
                memory_mb: a.u32_or("memory_mb", 512)?,
                metadata: a.map("metadata")?,
            }),
            "delete_vm" => Request::DeleteVm(a.string("vm")?),
            "start_vm" => Request::StartVm(a.string("vm")?),
            "stop_vm" => Request::StopVm(a.string("vm")?),
            "reboot_vm" => Request::RebootVm(a.string("vm")?),
            "has_vm" => Request::HasVm(a.string("vm")?),
            "inspect_vm" => Request::InspectVm(a.string("vm")?),
            "list_vms" => Request::ListVms,
            "set_vm_metadata" => Request::SetVmMetadata(a.string("vm")?, a.map("metadata")?),
            "create_disk" => {
                let size = a
                    .opt_u32("size_mb")?
                    .ok_or_else(|| a.invalid("size_mb", "missing required parameter `size_mb`".into()))?;
                Request::CreateDisk(types::DiskSpec { name: a.string("name")?, size_mb: size.into() })
            }
            "delete_disk" => Request::DeleteDisk(a.string("disk")?),
            "attach_disk" => Request::AttachDisk { vm: a.string("vm")?, disk: a.string("disk")? },
            "detach_disk" => Request::DetachDisk { vm: a.string("vm")?, disk: a.string("disk")? },
            "has_disk" => Request::HasDisk(a.string("disk")?),
            "list_disks" => Request::ListDisks(a.opt_string("vm")?),
            "snapshot_disk" => Request::SnapshotDisk { disk: a.string("disk")?, snapshot: a.string("snapshot")? },
            other => unreachable!("`{other}` is in the action list but has no mapping"),
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

/// Calls a container CPI's export for `request`.
pub async fn call_container(cpi: &ContainerCpi, store: &mut Store<CallState>, request: &Request) -> CallResult {
    let c = cpi.omni_cpi_container();
    let done = |r: Result<(), types::CpiError>| r.map(|()| Reply::done());
    Ok(match request {
        Request::CreateContainer(spec) => {
            c.call_create_container(&mut *store, spec).await?.map(|i| Reply::value(container_info(i)))
        }
        Request::DeleteContainer(name) => done(c.call_delete_container(&mut *store, name).await?),
        Request::StartContainer(name) => done(c.call_start_container(&mut *store, name).await?),
        Request::StopContainer(name, t) => done(c.call_stop_container(&mut *store, name, *t).await?),
        Request::RestartContainer(name, t) => done(c.call_restart_container(&mut *store, name, *t).await?),
        Request::InspectContainer(name) => {
            c.call_inspect_container(&mut *store, name).await?.map(|i| Reply::value(container_info(i)))
        }
        Request::ListContainers => c.call_list_containers(&mut *store).await?.map(|names| Reply::value(json!(names))),
        Request::Logs(name) => {
            c.call_logs(&mut *store, name).await?.map(|text| Reply { stdout: text, ..Reply::default() })
        }
        Request::Exec(name, cmd) => c.call_exec(&mut *store, name, cmd).await?.map(|r| Reply {
            result: None,
            stdout: r.stdout,
            stderr: r.stderr,
            exit_code: r.exit_code,
        }),
        Request::CreateVolume(name) => done(c.call_create_volume(&mut *store, name).await?),
        Request::DeleteVolume(name) => done(c.call_delete_volume(&mut *store, name).await?),
        Request::AttachVolume { volume, container, target } => {
            done(c.call_attach_volume(&mut *store, volume, container, target).await?)
        }
        Request::CreateNetwork(name) => done(c.call_create_network(&mut *store, name).await?),
        Request::DeleteNetwork(name) => done(c.call_delete_network(&mut *store, name).await?),
        Request::ConnectNetwork { network, container } => {
            done(c.call_connect_network(&mut *store, network, container).await?)
        }
        Request::DisconnectNetwork { network, container } => {
            done(c.call_disconnect_network(&mut *store, network, container).await?)
        }
        other => unreachable!("director request {other:?} on a container CPI"),
    })
}

/// Calls a director CPI's export for `request`.
pub async fn call_director(cpi: &DirectorCpi, store: &mut Store<CallState>, request: &Request) -> CallResult {
    let d = cpi.omni_cpi_director();
    let done = |r: Result<(), types::CpiError>| r.map(|()| Reply::done());
    Ok(match request {
        Request::CreateVm(spec) => d.call_create_vm(&mut *store, spec).await?.map(|i| Reply::value(vm_info(i))),
        Request::DeleteVm(id) => done(d.call_delete_vm(&mut *store, id).await?),
        Request::StartVm(id) => done(d.call_start_vm(&mut *store, id).await?),
        Request::StopVm(id) => done(d.call_stop_vm(&mut *store, id).await?),
        Request::RebootVm(id) => done(d.call_reboot_vm(&mut *store, id).await?),
        Request::HasVm(id) => d.call_has_vm(&mut *store, id).await?.map(|b| Reply::value(json!(b))),
        Request::InspectVm(id) => d.call_inspect_vm(&mut *store, id).await?.map(|i| Reply::value(vm_info(i))),
        Request::ListVms => d.call_list_vms(&mut *store).await?.map(|ids| Reply::value(json!(ids))),
        Request::SetVmMetadata(id, metadata) => done(d.call_set_vm_metadata(&mut *store, id, metadata).await?),
        Request::CreateDisk(spec) => d.call_create_disk(&mut *store, spec).await?.map(|i| Reply::value(disk_info(i))),
        Request::DeleteDisk(id) => done(d.call_delete_disk(&mut *store, id).await?),
        Request::AttachDisk { vm, disk } => done(d.call_attach_disk(&mut *store, vm, disk).await?),
        Request::DetachDisk { vm, disk } => done(d.call_detach_disk(&mut *store, vm, disk).await?),
        Request::HasDisk(id) => d.call_has_disk(&mut *store, id).await?.map(|b| Reply::value(json!(b))),
        Request::ListDisks(vm) => {
            d.call_list_disks(&mut *store, vm.as_deref()).await?.map(|ids| Reply::value(json!(ids)))
        }
        Request::SnapshotDisk { disk, snapshot } => {
            d.call_snapshot_disk(&mut *store, disk, snapshot).await?.map(|id| Reply::value(json!({ "id": id })))
        }
        other => unreachable!("container request {other:?} on a director CPI"),
    })
}
