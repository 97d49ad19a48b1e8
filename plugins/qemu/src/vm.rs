//! The VM actions. Every action that changes a VM holds its lock.

use std::collections::BTreeMap;

use omni_cpi_sdk::prelude::*;
use serde_json::json;

use crate::qemu;
use crate::qmp::{self, Probe};
use crate::store::{self, VmRecord, CONSOLE_LOG};
use crate::validate;

/// The state a probe shows, and QEMU's own run state when it answers.
fn state(probe: &Probe) -> (VmState, Option<&str>) {
    match probe {
        Probe::Absent => (VmState::Stopped, None),
        Probe::Live(status) if status == "running" => (VmState::Running, Some(status)),
        // Started with -S and not yet continued: a start in progress (or one that did not finish).
        Probe::Live(status) if status == "prelaunch" => (VmState::Created, Some(status)),
        Probe::Live(status) => (VmState::Unknown, Some(status)),
        Probe::Silent => (VmState::Unknown, None),
    }
}

fn info(record: &VmRecord, probe: &Probe) -> CpiResult<VmInfo> {
    let dir = store::vm_dir(&record.name);
    let (state, qmp_status) = state(probe);
    let pid = if matches!(probe, Probe::Absent) { None } else { qemu::pid(&dir)? };
    let details = json!({
        "image": record.image,
        "cpus": record.cpus,
        "memory_mb": record.memory_mb,
        "pid": pid,
        "qmp_status": qmp_status,
        "scsi_targets": record.disks,
        "created": record.created,
        "dir": dir.to_string_lossy(),
        "console_log": dir.join(CONSOLE_LOG).to_string_lossy(),
    });
    Ok(VmInfo {
        id: record.name.clone(),
        name: record.name.clone(),
        state,
        metadata: record.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        disks: record.disks.keys().cloned().collect(),
        details: details.to_string(),
    })
}

/// Merges `pairs` into `metadata`; an empty value removes the key.
fn merge(metadata: &mut BTreeMap<String, String>, pairs: Vec<(String, String)>) {
    for (key, value) in pairs {
        if value.is_empty() {
            metadata.remove(&key);
        } else {
            metadata.insert(key, value);
        }
    }
}

/// Checks everything, claims `vms/NAME`, writes the record, creates the boot overlay and starts
/// QEMU. If the overlay or the start fails, the VM is stopped and its directory removed.
pub fn create(spec: VmSpec) -> CpiResult<VmInfo> {
    validate::name("vm", &spec.name)?;
    validate::name("image", &spec.image)?;
    validate::cpus(spec.cpus)?;
    validate::memory_mb(spec.memory_mb)?;
    for (key, value) in &spec.metadata {
        validate::metadata(key, value)?;
    }
    let image = store::image_file(&spec.image);
    let image_is_file = match std::fs::metadata(&image) {
        Ok(m) => m.is_file(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(store::io_error("read", &image, e)),
    };
    if !image_is_file {
        return Err(CpiError::new(
            ErrorKind::NotFound,
            format!("qemu_wasm_cpi: no such image: {} (no file {})", spec.image, image.display()),
        ));
    }
    let dir = store::vm_dir(&spec.name);
    if !store::claim_dir(&dir)? {
        return Err(CpiError::new(ErrorKind::AlreadyExists, format!("qemu_wasm_cpi: vm {} already exists", spec.name)));
    }
    let _lock = store::lock_vm(&spec.name)?;
    let mut record = VmRecord {
        name: spec.name.clone(),
        image: spec.image.clone(),
        cpus: spec.cpus,
        memory_mb: spec.memory_mb,
        metadata: BTreeMap::new(),
        disks: BTreeMap::new(),
        created: store::now_secs(),
    };
    merge(&mut record.metadata, spec.metadata);
    let built = record
        .save()
        .and_then(|()| qemu::create_overlay(&spec.name, &dir, &spec.image))
        .and_then(|()| qemu::launch(&record));
    if let Err(mut e) = built {
        // The rollback: launch already stopped a QEMU it started; remove everything else.
        if let Err(cleanup) = store::remove_tree(&dir) {
            e.message = format!("{}; the rollback could not remove {}: {}", e.message, dir.display(), cleanup.message);
        }
        return Err(e);
    }
    info(&record, &Probe::Live("running".into()))
}

/// Stops the VM and removes its directory (boot overlay, record, console log). Its disks stay,
/// free to attach elsewhere.
pub fn delete(vm: &str) -> CpiResult<()> {
    validate::name("vm", vm)?;
    let dir = store::vm_dir(vm);
    let _lock = store::lock_vm(vm)?;
    qemu::stop(vm, &dir)?;
    // Release every disk this VM holds, including claims a failed attach left.
    for disk in store::list_names(&store::disks_dir())? {
        store::release_disk(&disk, vm)?;
    }
    store::remove_tree(&dir)
}

/// Starts a stopped VM with its attached disks. Starting a running VM succeeds.
pub fn start(vm: &str) -> CpiResult<()> {
    validate::name("vm", vm)?;
    let _lock = store::lock_vm(vm)?;
    let record = VmRecord::load(vm)?;
    let dir = store::vm_dir(vm);
    match qmp::probe(vm, &dir)? {
        Probe::Absent => {}
        // A start that did not finish: begin again.
        Probe::Live(status) if status == "prelaunch" => qemu::stop(vm, &dir)?,
        Probe::Live(_) => return Ok(()),
        Probe::Silent => {
            return Err(CpiError::new(
                ErrorKind::Failed,
                format!("qemu_wasm_cpi: vm {vm} has a QEMU that does not answer on its QMP socket"),
            ))
        }
    }
    qemu::launch(&record)
}

/// Powers the VM off; it keeps its disks and metadata. Stopping a stopped VM succeeds.
pub fn stop(vm: &str) -> CpiResult<()> {
    validate::name("vm", vm)?;
    let _lock = store::lock_vm(vm)?;
    qemu::stop(vm, &store::vm_dir(vm))
}

/// Hard reset (QMP `system_reset`); `invalid-state` when the VM does not run.
pub fn reboot(vm: &str) -> CpiResult<()> {
    validate::name("vm", vm)?;
    let _lock = store::lock_vm(vm)?;
    qmp::execute(vm, &store::vm_dir(vm), "system_reset", &[qmp::simple("system_reset")])?;
    Ok(())
}

/// `false` for an unknown id (and for one that cannot be a VM name).
pub fn has(vm: &str) -> CpiResult<bool> {
    if !validate::is_name(vm) {
        return Ok(false);
    }
    store::is_dir(&store::vm_dir(vm))
}

pub fn inspect(vm: &str) -> CpiResult<VmInfo> {
    validate::name("vm", vm)?;
    let record = VmRecord::load(vm)?;
    let probe = qmp::probe(vm, &store::vm_dir(vm))?;
    info(&record, &probe)
}

/// Every VM, running or not.
pub fn list() -> CpiResult<Vec<String>> {
    store::list_names(&store::vms_dir())
}

pub fn set_metadata(vm: &str, pairs: Vec<(String, String)>) -> CpiResult<()> {
    validate::name("vm", vm)?;
    for (key, value) in &pairs {
        validate::metadata(key, value)?;
    }
    let _lock = store::lock_vm(vm)?;
    let mut record = VmRecord::load(vm)?;
    merge(&mut record.metadata, pairs);
    record.save()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_merges_and_empty_values_remove() {
        let mut metadata = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
        merge(&mut metadata, vec![("a".into(), "".into()), ("c".into(), "3".into()), ("b".into(), "x".into())]);
        assert_eq!(metadata, BTreeMap::from([("b".to_string(), "x".to_string()), ("c".to_string(), "3".to_string())]));
    }

    #[test]
    fn states() {
        assert_eq!(state(&Probe::Absent), (VmState::Stopped, None));
        assert_eq!(state(&Probe::Live("running".into())).0, VmState::Running);
        assert_eq!(state(&Probe::Live("prelaunch".into())).0, VmState::Created);
        assert_eq!(state(&Probe::Live("paused".into())), (VmState::Unknown, Some("paused")));
        assert_eq!(state(&Probe::Silent).0, VmState::Unknown);
    }
}
