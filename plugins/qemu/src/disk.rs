//! The disk actions: qcow2 files made with qemu-img, hot-plugged into running VMs as `scsi-hd` on
//! their virtio-scsi controller, copied into snapshots.

use std::time::{Duration, Instant};

use omni_cpi_sdk::prelude::*;

use crate::qemu;
use crate::qmp::{self, Probe, Session};
use crate::store::{self, VmRecord, DISK_FILE};
use crate::validate;

/// How long detach waits for QEMU to release a disk after `device_del` (a SCSI disk is released
/// at once, without the guest's help).
const RELEASE_WAIT: Duration = Duration::from_secs(10);

fn disk_exists(disk: &str) -> CpiResult<bool> {
    store::is_dir(&store::disk_dir(disk))
}

/// Claims `disks/NAME` and creates its qcow2 file; a failure removes the directory again.
pub fn create(disk: &str, size_mb: u64) -> CpiResult<DiskInfo> {
    validate::name("disk", disk)?;
    validate::size_mb(size_mb)?;
    let dir = store::disk_dir(disk);
    if !store::claim_dir(&dir)? {
        return Err(CpiError::new(ErrorKind::AlreadyExists, format!("qemu_wasm_cpi: disk {disk} already exists")));
    }
    if let Err(mut e) = qemu::create_disk_file(disk, &dir, size_mb) {
        if let Err(cleanup) = store::remove_tree(&dir) {
            e.message = format!("{}; could not remove {}: {}", e.message, dir.display(), cleanup.message);
        }
        return Err(e);
    }
    Ok(DiskInfo { id: disk.to_string(), size_mb, attached_to: None })
}

/// Deletes a disk and its snapshots; `in-use` while a VM (running or not) has it attached.
pub fn delete(disk: &str) -> CpiResult<()> {
    validate::name("disk", disk)?;
    if !disk_exists(disk)? {
        return Err(store::not_found("disk", disk));
    }
    if let Some(owner) = store::disk_owner(disk)? {
        return Err(CpiError::new(
            ErrorKind::InUse,
            format!("qemu_wasm_cpi: disk {disk} is in use by vm {owner}: detach it first"),
        ));
    }
    store::remove_tree(&store::disk_dir(disk))
}

pub fn has(disk: &str) -> CpiResult<bool> {
    if !validate::is_name(disk) {
        return Ok(false);
    }
    disk_exists(disk)
}

/// The disks attached to `vm` (`not-found` for an unknown VM), or every disk.
pub fn list(vm: Option<&str>) -> CpiResult<Vec<String>> {
    match vm {
        Some(vm) => {
            validate::name("vm", vm)?;
            Ok(VmRecord::load(vm)?.disks.into_keys().collect())
        }
        None => store::list_names(&store::disks_dir()),
    }
}

/// Attaches at the lowest free SCSI target: at once over QMP when the VM runs, at its next start
/// otherwise. `already-exists` when attached to this VM, `in-use` when attached to another.
pub fn attach(vm: &str, disk: &str) -> CpiResult<()> {
    validate::name("vm", vm)?;
    validate::name("disk", disk)?;
    let _lock = store::lock_vm(vm)?;
    let mut record = VmRecord::load(vm)?;
    if !disk_exists(disk)? {
        return Err(store::not_found("disk", disk));
    }
    if record.disks.contains_key(disk) {
        return Err(CpiError::new(
            ErrorKind::AlreadyExists,
            format!("qemu_wasm_cpi: disk {disk} is already attached to vm {vm}"),
        ));
    }
    let Some(target) = record.free_target() else {
        return Err(CpiError::new(ErrorKind::Failed, format!("qemu_wasm_cpi: vm {vm} has no free SCSI target")));
    };
    store::claim_disk(disk, vm)?;
    let attached = hot_plug(vm, disk, target).and_then(|()| {
        record.disks.insert(disk.to_string(), target);
        record.save()
    });
    if let Err(e) = attached {
        let _ = store::release_disk(disk, vm);
        return Err(e);
    }
    Ok(())
}

/// Plugs the disk into the VM's QEMU if one runs: blockdev-add of a qcow2 node over the file,
/// then device_add of a scsi-hd; a failed device_add removes the node again.
fn hot_plug(vm: &str, disk: &str, target: u8) -> CpiResult<()> {
    let dir = store::vm_dir(vm);
    let file = store::disk_dir(disk).join(DISK_FILE);
    let replies = match qmp::session(vm, &dir, &[qmp::blockdev_add(target, &file), qmp::device_add(target)])? {
        Session::Refused => return Ok(()), // stopped: plugged in at the next start
        Session::Silent => {
            return Err(CpiError::new(
                ErrorKind::Failed,
                format!("qemu_wasm_cpi: vm {vm} does not answer on its QMP socket"),
            ))
        }
        Session::Replies(replies) => replies,
    };
    match (&replies[0], &replies[1]) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(e), _) => Err(CpiError::new(
            ErrorKind::Failed,
            format!("qemu_wasm_cpi: QMP blockdev-add of disk {disk} failed in vm {vm}: {e}"),
        )),
        (Ok(_), Err(e)) => {
            let _ = qmp::session(vm, &dir, &[qmp::blockdev_del(target)]);
            Err(CpiError::new(
                ErrorKind::Failed,
                format!("qemu_wasm_cpi: QMP device_add of disk {disk} failed in vm {vm}: {e}"),
            ))
        }
    }
}

/// Detaches: a running VM loses the device at once (device_del, then blockdev-del once QEMU has
/// released the node). Detaching a disk that is not attached succeeds.
pub fn detach(vm: &str, disk: &str) -> CpiResult<()> {
    validate::name("vm", vm)?;
    validate::name("disk", disk)?;
    let _lock = store::lock_vm(vm)?;
    let mut record = VmRecord::load(vm)?;
    let Some(&target) = record.disks.get(disk) else {
        if !disk_exists(disk)? {
            return Err(store::not_found("disk", disk));
        }
        // Not attached; a claim a failed attach left is released.
        return store::release_disk(disk, vm);
    };
    unplug(vm, disk, target)?;
    record.disks.remove(disk);
    record.save()?;
    store::release_disk(disk, vm)
}

fn unplug(vm: &str, disk: &str, target: u8) -> CpiResult<()> {
    let dir = store::vm_dir(vm);
    let failed = |what: &str, e: &str| {
        CpiError::new(ErrorKind::Failed, format!("qemu_wasm_cpi: QMP {what} of disk {disk} failed in vm {vm}: {e}"))
    };
    match qmp::session(vm, &dir, &[qmp::device_del(target)])? {
        Session::Refused => return Ok(()), // stopped: nothing is plugged in
        Session::Silent => return Err(failed("device_del", "no answer")),
        Session::Replies(replies) => {
            if let Err(e) = &replies[0] {
                // Gone already, or being removed: fine either way.
                if !e.starts_with("DeviceNotFound") && !e.contains("process of unplug") {
                    return Err(failed("device_del", e));
                }
            }
        }
    }
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match qmp::session(vm, &dir, &[qmp::blockdev_del(target)])? {
            Session::Refused => return Ok(()),
            Session::Replies(replies) => match &replies[0] {
                Ok(_) => return Ok(()),
                Err(e) if e.contains("Failed to find node") => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(failed("blockdev-del", e)),
                Err(_) => {}
            },
            Session::Silent if Instant::now() >= deadline => return Err(failed("blockdev-del", "no answer")),
            Session::Silent => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Copies the disk into `disks/DISK/snapshots/NAME/snapshot.qcow2` (a full, independent qcow2) and
/// returns NAME. A disk attached to a running VM is copied while the VM is paused (QMP `stop`
/// flushes its disks), so the copy is consistent. Snapshot names are unique across disks.
pub fn snapshot(disk: &str, name: &str) -> CpiResult<String> {
    validate::name("disk", disk)?;
    validate::name("snapshot", name)?;
    if !disk_exists(disk)? {
        return Err(store::not_found("disk", disk));
    }
    let exists = || CpiError::new(ErrorKind::AlreadyExists, format!("qemu_wasm_cpi: snapshot {name} already exists"));
    for other in store::list_names(&store::disks_dir())? {
        if store::exists(&store::snapshot_dir(&other, name))? {
            return Err(exists());
        }
    }
    let dir = store::snapshot_dir(disk, name);
    if !store::claim_dir(&dir)? {
        return Err(exists());
    }
    let copied = copy(disk, &dir);
    if let Err(mut e) = copied {
        if let Err(cleanup) = store::remove_tree(&dir) {
            e.message = format!("{}; could not remove {}: {}", e.message, dir.display(), cleanup.message);
        }
        return Err(e);
    }
    Ok(name.to_string())
}

/// The copy itself, holding the lock of the VM the disk is attached to (if any), which is paused
/// while it runs and resumed whatever happened.
fn copy(disk: &str, dir: &std::path::Path) -> CpiResult<()> {
    let Some(vm) = store::disk_owner(disk)? else {
        return qemu::convert(disk, dir, false);
    };
    if !validate::is_name(&vm) {
        return Err(CpiError::new(
            ErrorKind::InUse,
            format!("qemu_wasm_cpi: disk {disk} is being attached by another call"),
        ));
    }
    let _lock = store::lock_vm(&vm)?;
    let vm_dir = store::vm_dir(&vm);
    let paused = match qmp::probe(&vm, &vm_dir)? {
        Probe::Absent => return qemu::convert(disk, dir, false),
        Probe::Live(status) if status == "running" => {
            qmp::execute(&vm, &vm_dir, "stop", &[qmp::simple("stop")])?;
            true
        }
        // Live but not running (paused, prelaunch) or not answering: QEMU holds the disk open.
        _ => false,
    };
    let copied = qemu::convert(disk, dir, true);
    if paused {
        if let Err(e) = qmp::execute(&vm, &vm_dir, "cont", &[qmp::simple("cont")]) {
            let message = format!("{}; vm {vm} stays paused", e.message);
            return Err(CpiError::new(ErrorKind::Failed, message));
        }
    }
    copied
}
