//! What `describe` returns: the 16 director actions with what their parameters mean here, the
//! setting the plugin reads, and exactly the capabilities it needs.

use omni_cpi_sdk::prelude::*;

use crate::store::{BOOT_DISK, QMP_SOCKET};
use crate::validate::{MAX_CPUS, MAX_DISK_MB, MAX_MEMORY_MB, MAX_NAME};
use crate::{qemu, ACCEL, IMAGE_ROOT, MAX_STOP_WAIT_SECS, STATE_ROOT, STOP_WAIT_SECS, STOP_WAIT_SETTING};

pub fn info() -> PluginInfo {
    let rule =
        format!("letters, digits, `_`, `.`, `-`, starting with a letter or digit; at most {MAX_NAME} characters");
    let vm = |description: &str| format!("The VM's id (its name). {description}");
    let disk = |description: &str| format!("The disk's id (its name). {description}");
    let mut describe = Describe::director("qemu_wasm_cpi", env!("CARGO_PKG_VERSION"))
        .implements_all()
        .setting(STOP_WAIT_SETTING, &STOP_WAIT_SECS.to_string())
        .conformance_param("image", "empty")
        .conformance_param("cpus", "1")
        .conformance_param("memory_mb", "64")
        .dir(
            STATE_ROOT,
            true,
            &format!(
                "VMs (records, boot overlays, QMP sockets VM/{QMP_SOCKET}, console logs), disks and snapshots; must \
                 be granted at the same host path, where QEMU and qemu-img work"
            ),
        )
        .dir(
            IMAGE_ROOT,
            false,
            "base images IMAGE.qcow2, to check that an image exists; must be granted at the same host path, which \
             boot overlays record",
        );
    for request in qemu::exec_requests() {
        let args: Vec<&str> = request.args.iter().map(String::as_str).collect();
        describe = describe.exec(&request.program, &args);
    }
    let params: &[(&str, &str, String)] = &[
        ("create_vm", "name", format!("The new VM's name, also its id ({rule})")),
        ("create_vm", "image", format!("A base image: the file {IMAGE_ROOT}/IMAGE.qcow2, never a path; the VM boots a copy-on-write overlay of it ({rule}). Machine: q35,accel={ACCEL}, no network, {BOOT_DISK} on virtio, disks as scsi-hd on virtio-scsi")),
        ("create_vm", "cpus", format!("Virtual CPUs, 1 to {MAX_CPUS}")),
        ("create_vm", "memory_mb", format!("Memory in MiB, 1 to {MAX_MEMORY_MB}")),
        ("create_vm", "metadata", "KEY: VALUE pairs kept with the VM (keys: letters, digits, _ . : @ -, not starting with .; values without control characters)".into()),
        ("delete_vm", "vm", vm("Stopped (QMP quit), then its directory is removed; its disks stay, free to attach elsewhere")),
        ("start_vm", "vm", vm("Started with its attached disks; starting a running VM succeeds")),
        ("stop_vm", "vm", vm(&format!("Powered off with QMP quit (QEMU flushes its disks), waiting for it to exit up to the `{STOP_WAIT_SETTING}` setting (default {STOP_WAIT_SECS} s, at most {MAX_STOP_WAIT_SECS}); stopping a stopped VM succeeds"))),
        ("reboot_vm", "vm", vm("Hard reset (QMP system_reset); invalid_state when it does not run")),
        ("has_vm", "vm", vm("true or false")),
        ("inspect_vm", "vm", vm("State from QMP query-status (stopped when no QEMU answers), metadata, disks; details: image, cpus, memory_mb, pid, qmp_status, scsi_targets, dir, console_log")),
        ("set_vm_metadata", "vm", vm("The VM")),
        ("set_vm_metadata", "metadata", "KEY: VALUE pairs merged into the VM's metadata; an empty value removes the key".into()),
        ("create_disk", "name", format!("The new disk's name, also its id ({rule})")),
        ("create_disk", "size_mb", format!("Size in MiB, 1 to {MAX_DISK_MB}")),
        ("delete_disk", "disk", disk("Removed with its snapshots; in_use while attached to a VM (running or not)")),
        ("attach_disk", "vm", vm("A running VM gets the disk at once (QMP blockdev-add + device_add scsi-hd), a stopped one at its next start")),
        ("attach_disk", "disk", disk("already_exists if attached to this VM, in_use if attached to another")),
        ("detach_disk", "vm", vm("A running VM loses the disk at once (QMP device_del + blockdev-del)")),
        ("detach_disk", "disk", disk("Detaching a disk that is not attached succeeds")),
        ("has_disk", "disk", disk("true or false")),
        ("list_disks", "vm", "Only the disks attached to this VM (not_found for an unknown VM); all disks without it".into()),
        ("snapshot_disk", "disk", disk("Copied in full with qemu-img convert; a disk attached to a running VM is copied while the VM is paused")),
        ("snapshot_disk", "snapshot", format!("The snapshot's name, also the id returned; unique across disks ({rule}). Snapshots are deleted with their disk: the interface has no delete_snapshot")),
    ];
    for (action, param, description) in params {
        describe = describe.param(action, param, description);
    }
    describe.build()
}
