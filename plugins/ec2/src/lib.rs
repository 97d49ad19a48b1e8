//! ec2_http: a director CPI for AWS EC2 through its Query API, as a WebAssembly component whose
//! only capability is the network: it requests its configured endpoint (`network_requests`), and
//! its requests go through the host's wasi:http, which sends them only there when the operator
//! granted it (`[[plugins.NAME.network]]`) and to the addresses that grant allows, and are
//! signed here with SigV4 from credentials the operator grants as environment variables. It runs
//! no program at all.
//!
//! VMs are instances and disks are EBS volumes, identified by EC2's ids (`i-…`, `vol-…`). The CPI
//! manages only what it created: everything carries the tag `omni-cpi` with the setting `tag`,
//! the list actions show only that, and an instance or volume without it is `not_found` to every
//! action (an operator's other instances cannot be stopped or deleted through it).

mod clock;
mod model;
mod query;
mod sigv4;

use omni_cpi_sdk::http;
use omni_cpi_sdk::prelude::*;

use model::{Instance, Volume};
use query::Ec2;

struct Ec2Cpi;

/// The tag key that marks what this CPI created; its value is the setting `tag`.
const MANAGED: &str = "omni-cpi";
/// Device names offered to attached volumes, in order.
const DEVICES: &[&str] =
    &["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi", "/dev/sdj", "/dev/sdk", "/dev/sdl", "/dev/sdm", "/dev/sdn"];

impl Plugin for Ec2Cpi {
    fn describe() -> PluginInfo {
        Describe::director("ec2_http", env!("CARGO_PKG_VERSION"))
            .implements_all()
            .param("create_vm", "image", "an AMI id (ami-…) of the region")
            .param("create_vm", "cpus", "ignored: the setting instance_type decides")
            .param("create_vm", "memory_mb", "ignored: the setting instance_type decides")
            .param("create_vm", "metadata", "tags; `Name`, `omni-cpi` and `aws:` keys are refused")
            .param("create_disk", "size_mb", "rounded up to whole GiB (EBS sizes)")
            .env("AWS_ACCESS_KEY_ID")
            .env("AWS_SECRET_ACCESS_KEY")
            .env("AWS_SESSION_TOKEN")
            .setting("endpoint", "")
            .setting("region", "us-east-1")
            .setting("availability_zone", "us-east-1a")
            .setting("instance_type", "t3.micro")
            .setting("volume_type", "gp3")
            .setting("tag", "ec2_http")
            .conformance_param("image", "ami-760aaa0f")
            .build()
    }

    /// The endpoint it is configured with: the one host it talks to. A malformed endpoint
    /// requests nothing; every call then says what is wrong with it.
    fn network_requests() -> Vec<NetworkRequest> {
        http::network_request(&query::endpoint(), "the EC2 Query API").into_iter().collect()
    }
}

fn fail(kind: ErrorKind, message: impl ToString) -> CpiError {
    CpiError::new(kind, message)
}

fn tag_value() -> String {
    setting("tag").unwrap_or_else(|| "ec2_http".to_string())
}

fn looks_like(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn param(name: impl Into<String>, value: impl Into<String>) -> (String, String) {
    (name.into(), value.into())
}

/// `TagSpecification.1` for a new resource: its Name, the management tag, and `extra`.
fn tag_specification(resource: &str, name: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut params = vec![param("TagSpecification.1.ResourceType", resource)];
    let tags = [(String::from("Name"), name.to_string()), (MANAGED.to_string(), tag_value())];
    for (n, (key, value)) in tags.iter().chain(extra).enumerate() {
        params.push(param(format!("TagSpecification.1.Tag.{}.Key", n + 1), key.clone()));
        params.push(param(format!("TagSpecification.1.Tag.{}.Value", n + 1), value.clone()));
    }
    params
}

/// Metadata a caller may set as tags: never the CPI's own tags or AWS's.
fn checked_metadata(metadata: &[(String, String)]) -> CpiResult<()> {
    for (key, value) in metadata {
        if key.is_empty() || key.len() > 128 || value.len() > 256 {
            return Err(fail(
                ErrorKind::InvalidArgument,
                format!("metadata `{key}`: keys 1–128 characters, values ≤ 256"),
            ));
        }
        if key == "Name" || key == MANAGED || key.to_ascii_lowercase().starts_with("aws:") {
            return Err(fail(ErrorKind::InvalidArgument, format!("metadata `{key}` is reserved")));
        }
    }
    Ok(())
}

fn ours(tags: &[(String, String)]) -> bool {
    let value = tag_value();
    tags.iter().any(|(k, v)| k == MANAGED && *v == value)
}

/// The instance `id` if it exists and this CPI created it.
fn instance(ec2: &Ec2, id: &str) -> CpiResult<Option<Instance>> {
    let Some(xml) = describe_one(ec2, "DescribeInstances", "InstanceId.1", id, "i-")? else { return Ok(None) };
    Ok(model::instances(&xml)?.into_iter().find(|i| i.id == id && i.exists() && ours(&i.tags)))
}

/// EC2's answer about one resource, or `None` when `id` is not of its form (no request is sent)
/// or EC2 does not know it.
fn describe_one(ec2: &Ec2, action: &str, id_param: &str, id: &str, prefix: &str) -> CpiResult<Option<String>> {
    if !looks_like(id, prefix) {
        return Ok(None);
    }
    match ec2.call(action, &[param(id_param, id)]) {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        other => other.map(Some),
    }
}

/// The filter that selects what carries this CPI's tag.
fn managed_filter() -> [(String, String); 2] {
    [param("Filter.1.Name", format!("tag:{MANAGED}")), param("Filter.1.Value.1", tag_value())]
}

fn existing_instance(ec2: &Ec2, id: &str) -> CpiResult<Instance> {
    instance(ec2, id)?.ok_or_else(|| fail(ErrorKind::NotFound, format!("no VM {id} (of this CPI)")))
}

/// Every volume this CPI created.
fn managed_volumes(ec2: &Ec2) -> CpiResult<Vec<Volume>> {
    Ok(model::volumes(&ec2.call("DescribeVolumes", &managed_filter())?)?
        .into_iter()
        .filter(|v| ours(&v.tags))
        .collect())
}

fn volume(ec2: &Ec2, id: &str) -> CpiResult<Option<Volume>> {
    let Some(xml) = describe_one(ec2, "DescribeVolumes", "VolumeId.1", id, "vol-")? else { return Ok(None) };
    Ok(model::volumes(&xml)?.into_iter().find(|v| v.id == id && ours(&v.tags)))
}

fn existing_volume(ec2: &Ec2, id: &str) -> CpiResult<Volume> {
    volume(ec2, id)?.ok_or_else(|| fail(ErrorKind::NotFound, format!("no disk {id} (of this CPI)")))
}

fn vm_info(ec2: &Ec2, instance: &Instance) -> CpiResult<VmInfo> {
    let disks = managed_volumes(ec2)?.into_iter().filter(|v| v.attached_to.contains(&instance.id)).map(|v| v.id);
    let state = match instance.state.as_str() {
        "pending" => VmState::Created,
        "running" => VmState::Running,
        "stopping" | "stopped" => VmState::Stopped,
        _ => VmState::Unknown,
    };
    Ok(VmInfo {
        id: instance.id.clone(),
        name: instance.tag("Name").unwrap_or_default().to_string(),
        state,
        metadata: instance.tags.iter().filter(|(k, _)| k != "Name" && k != MANAGED).cloned().collect(),
        disks: disks.collect(),
        details: format!(
            "{{\"instance_type\":{:?},\"image\":{:?},\"state\":{:?}}}",
            instance.instance_type, instance.image, instance.state
        ),
    })
}

/// A dry run sends nothing (the host refuses every request in one): actions plan from what they know.
fn planning() -> bool {
    dry_run()
}

impl Director for Ec2Cpi {
    fn create_vm(spec: VmSpec) -> CpiResult<VmInfo> {
        checked_metadata(&spec.metadata)?;
        if !looks_like(&spec.image, "ami-") {
            return Err(fail(ErrorKind::NotFound, format!("no image {:?}: EC2 images are ami-…", spec.image)));
        }
        if spec.name.is_empty() || spec.name.len() > 256 {
            return Err(fail(ErrorKind::InvalidArgument, "name: 1–256 characters"));
        }
        if planning() {
            return Ok(VmInfo {
                id: String::new(),
                name: spec.name,
                state: VmState::Created,
                metadata: spec.metadata,
                disks: Vec::new(),
                details: String::new(),
            });
        }
        let ec2 = Ec2::from_settings()?;
        let mut params = vec![
            param("ImageId", spec.image.clone()),
            param("InstanceType", setting("instance_type").unwrap_or_default()),
            param("MinCount", "1"),
            param("MaxCount", "1"),
            param("Placement.AvailabilityZone", setting("availability_zone").unwrap_or_default()),
        ];
        params.extend(tag_specification("instance", &spec.name, &spec.metadata));
        let created = model::instances(&ec2.call("RunInstances", &params)?)?;
        let instance = created
            .into_iter()
            .next()
            .ok_or_else(|| fail(ErrorKind::Failed, "EC2 RunInstances answered no instance"))?;
        vm_info(&ec2, &instance)
    }

    fn delete_vm(id: String) -> CpiResult<()> {
        if planning() {
            return Ok(());
        }
        let ec2 = Ec2::from_settings()?;
        existing_instance(&ec2, &id)?;
        ec2.call("TerminateInstances", &[param("InstanceId.1", &id)]).map(drop)
    }

    fn start_vm(id: String) -> CpiResult<()> {
        power("StartInstances", id)
    }

    fn stop_vm(id: String) -> CpiResult<()> {
        power("StopInstances", id)
    }

    fn reboot_vm(id: String) -> CpiResult<()> {
        power("RebootInstances", id)
    }

    fn has_vm(id: String) -> CpiResult<bool> {
        if planning() {
            return Ok(true);
        }
        Ok(instance(&Ec2::from_settings()?, &id)?.is_some())
    }

    fn inspect_vm(id: String) -> CpiResult<VmInfo> {
        if planning() {
            let details = String::from("a dry run asks EC2 nothing");
            let (metadata, disks) = (Vec::new(), Vec::new());
            return Ok(VmInfo { id: id.clone(), name: id, state: VmState::Unknown, metadata, disks, details });
        }
        let ec2 = Ec2::from_settings()?;
        let instance = existing_instance(&ec2, &id)?;
        vm_info(&ec2, &instance)
    }

    fn list_vms() -> CpiResult<Vec<String>> {
        if planning() {
            return Ok(Vec::new());
        }
        let ec2 = Ec2::from_settings()?;
        let found = model::instances(&ec2.call("DescribeInstances", &managed_filter())?)?;
        Ok(found.into_iter().filter(|i| i.exists() && ours(&i.tags)).map(|i| i.id).collect())
    }

    fn set_vm_metadata(id: String, metadata: Vec<(String, String)>) -> CpiResult<()> {
        checked_metadata(&metadata)?;
        if planning() {
            return Ok(());
        }
        let ec2 = Ec2::from_settings()?;
        existing_instance(&ec2, &id)?;
        let mut params = vec![param("ResourceId.1", &id)];
        for (n, (key, value)) in metadata.iter().enumerate() {
            params.push(param(format!("Tag.{}.Key", n + 1), key.clone()));
            params.push(param(format!("Tag.{}.Value", n + 1), value.clone()));
        }
        ec2.call("CreateTags", &params).map(drop)
    }

    fn create_disk(spec: DiskSpec) -> CpiResult<DiskInfo> {
        if spec.name.is_empty() || spec.name.len() > 256 {
            return Err(fail(ErrorKind::InvalidArgument, "name: 1–256 characters"));
        }
        let size_gib = spec.size_mb.div_ceil(1024).max(1);
        if planning() {
            return Ok(DiskInfo { id: String::new(), size_mb: size_gib * 1024, attached_to: None });
        }
        let ec2 = Ec2::from_settings()?;
        let mut params = vec![
            param("AvailabilityZone", setting("availability_zone").unwrap_or_default()),
            param("Size", size_gib.to_string()),
            param("VolumeType", setting("volume_type").unwrap_or_default()),
        ];
        params.extend(tag_specification("volume", &spec.name, &[]));
        let id = model::first(&ec2.call("CreateVolume", &params)?, "volumeId")?;
        Ok(DiskInfo { id, size_mb: size_gib * 1024, attached_to: None })
    }

    fn delete_disk(id: String) -> CpiResult<()> {
        if planning() {
            return Ok(());
        }
        let ec2 = Ec2::from_settings()?;
        let volume = existing_volume(&ec2, &id)?;
        if let Some(vm) = volume.attached_to.first() {
            return Err(fail(ErrorKind::InUse, format!("disk {id} is attached to {vm}: detach it first")));
        }
        ec2.call("DeleteVolume", &[param("VolumeId", &id)]).map(drop)
    }

    fn attach_disk(vm: String, disk: String) -> CpiResult<()> {
        if planning() {
            return Ok(());
        }
        let ec2 = Ec2::from_settings()?;
        let instance = existing_instance(&ec2, &vm)?;
        let volume = existing_volume(&ec2, &disk)?;
        if volume.attached_to.contains(&vm) {
            return Ok(());
        }
        if let Some(other) = volume.attached_to.first() {
            return Err(fail(ErrorKind::InUse, format!("disk {disk} is attached to {other}")));
        }
        let device = DEVICES.iter().find(|d| !instance.devices.iter().any(|used| used == *d)).ok_or_else(|| {
            fail(ErrorKind::Unavailable, format!("VM {vm} has no free device name (in use: {:?})", instance.devices))
        })?;
        ec2.call("AttachVolume", &[param("VolumeId", &disk), param("InstanceId", &vm), param("Device", *device)])
            .map(drop)
    }

    fn detach_disk(vm: String, disk: String) -> CpiResult<()> {
        if planning() {
            return Ok(());
        }
        let ec2 = Ec2::from_settings()?;
        let volume = existing_volume(&ec2, &disk)?;
        if !volume.attached_to.contains(&vm) {
            return Ok(());
        }
        ec2.call("DetachVolume", &[param("VolumeId", &disk), param("InstanceId", &vm)]).map(drop)
    }

    fn has_disk(id: String) -> CpiResult<bool> {
        if planning() {
            return Ok(true);
        }
        Ok(volume(&Ec2::from_settings()?, &id)?.is_some())
    }

    fn list_disks(vm: Option<String>) -> CpiResult<Vec<String>> {
        if planning() {
            return Ok(Vec::new());
        }
        let volumes = managed_volumes(&Ec2::from_settings()?)?;
        Ok(volumes
            .into_iter()
            .filter(|v| vm.as_ref().is_none_or(|vm| v.attached_to.contains(vm)))
            .map(|v| v.id)
            .collect())
    }

    fn snapshot_disk(disk: String, name: String) -> CpiResult<String> {
        if planning() {
            return Ok(String::new());
        }
        let ec2 = Ec2::from_settings()?;
        existing_volume(&ec2, &disk)?;
        let mut params = vec![param("VolumeId", &disk), param("Description", &name)];
        params.extend(tag_specification("snapshot", &name, &[]));
        model::first(&ec2.call("CreateSnapshot", &params)?, "snapshotId")
    }
}

/// Start, stop or reboot an instance of this CPI.
fn power(action: &str, id: String) -> CpiResult<()> {
    if planning() {
        return Ok(());
    }
    let ec2 = Ec2::from_settings()?;
    existing_instance(&ec2, &id)?;
    ec2.call(action, &[param("InstanceId.1", &id)]).map(drop)
}

omni_cpi_sdk::export_director!(Ec2Cpi);
