//! What `describe` returns: the 16 director actions with their parameters (named as in the JSON
//! CPIs), the fixed settings, and exactly the capabilities the plugin needs.

use omni_cpi_sdk::prelude::*;

use crate::store::{BOOT_DISK, QMP_SOCKET};
use crate::validate::{MAX_CPUS, MAX_DISK_MB, MAX_MEMORY_MB, MAX_NAME};
use crate::{qemu, ACCEL, IMAGE_ROOT, STATE_ROOT, STOP_WAIT_SECS};

fn param(name: &str, required: bool, description: &str) -> ParamInfo {
    ParamInfo { name: name.into(), required, description: description.into() }
}

fn action(name: &str, params: Vec<ParamInfo>) -> ActionInfo {
    ActionInfo { name: name.into(), params, unsupported: None }
}

pub fn info() -> PluginInfo {
    let rule =
        format!("letters, digits, `_`, `.`, `-`, starting with a letter or digit; at most {MAX_NAME} characters");
    let vm = |description: &str| param("vm", true, &format!("The VM's id (its name). {description}"));
    let disk = |description: &str| param("disk", true, &format!("The disk's id (its name). {description}"));
    let actions = vec![
        action(
            "create_vm",
            vec![
                param("name", true, &format!("The new VM's name, also its id ({rule})")),
                param("image", true, &format!("A base image: the file {IMAGE_ROOT}/IMAGE.qcow2, never a path; the VM boots a copy-on-write overlay of it ({rule})")),
                param("cpus", false, &format!("Virtual CPUs, 1 to {MAX_CPUS}")),
                param("memory_mb", false, &format!("Memory in MiB, 1 to {MAX_MEMORY_MB}")),
                param("metadata", false, "KEY: VALUE pairs kept with the VM (keys: letters, digits, _ . : @ -, not starting with .; values without control characters)"),
            ],
        ),
        action("delete_vm", vec![vm("Stopped (QMP quit), then its directory is removed; its disks stay, free to attach elsewhere")]),
        action("start_vm", vec![vm("Started with its attached disks; starting a running VM succeeds")]),
        action("stop_vm", vec![vm(&format!("Powered off with QMP quit (QEMU flushes its disks), waiting up to {STOP_WAIT_SECS} s for it to exit; stopping a stopped VM succeeds"))]),
        action("reboot_vm", vec![vm("Hard reset (QMP system_reset); invalid_state when it does not run")]),
        action("has_vm", vec![vm("true or false")]),
        action("inspect_vm", vec![vm("State from QMP query-status (stopped when no QEMU answers), metadata, disks; details: image, cpus, memory_mb, pid, qmp_status, scsi_targets, dir, console_log")]),
        action("list_vms", vec![]),
        action(
            "set_vm_metadata",
            vec![vm("The VM"), param("metadata", true, "KEY: VALUE pairs merged into the VM's metadata; an empty value removes the key")],
        ),
        action(
            "create_disk",
            vec![
                param("name", true, &format!("The new disk's name, also its id ({rule})")),
                param("size_mb", true, &format!("Size in MiB, 1 to {MAX_DISK_MB}")),
            ],
        ),
        action("delete_disk", vec![disk("Removed with its snapshots; in_use while attached to a VM (running or not)")]),
        action(
            "attach_disk",
            vec![
                vm("A running VM gets the disk at once (QMP blockdev-add + device_add scsi-hd), a stopped one at its next start"),
                disk("already_exists if attached to this VM, in_use if attached to another"),
            ],
        ),
        action(
            "detach_disk",
            vec![vm("A running VM loses the disk at once (QMP device_del + blockdev-del)"), disk("Detaching a disk that is not attached succeeds")],
        ),
        action("has_disk", vec![disk("true or false")]),
        action("list_disks", vec![param("vm", false, "Only the disks attached to this VM (not_found for an unknown VM); all disks without it")]),
        action(
            "snapshot_disk",
            vec![
                disk("Copied in full with qemu-img convert; a disk attached to a running VM is copied while the VM is paused"),
                param("snapshot", true, &format!("The snapshot's name, also the id returned; unique across disks ({rule}). Snapshots are deleted with their disk: the interface has no delete_snapshot")),
            ],
        ),
    ];

    let settings = [
        ("state_root", STATE_ROOT.to_string()),
        ("image_root", IMAGE_ROOT.to_string()),
        ("machine", format!("q35,accel={ACCEL} (no network, {BOOT_DISK} on virtio, disks as scsi-hd on virtio-scsi)")),
        ("qmp_socket", format!("{STATE_ROOT}/vms/VM/{QMP_SOCKET}")),
        ("stop_wait_secs", STOP_WAIT_SECS.to_string()),
        // What the conformance kit passes to every call (the host reads `conformance.*`).
        ("conformance.image", "empty".to_string()),
        ("conformance.cpus", "1".to_string()),
        ("conformance.memory_mb", "64".to_string()),
    ];

    PluginInfo {
        name: "qemu_wasm_cpi".into(),
        kind: CpiKind::Director,
        version: env!("CARGO_PKG_VERSION").into(),
        actions,
        default_settings: settings.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        capabilities: Capabilities {
            exec: qemu::exec_requests(),
            dirs: vec![
                DirRequest {
                    guest_path: STATE_ROOT.into(),
                    writable: true,
                    description: "VMs (records, boot overlays, QMP sockets, console logs), disks and snapshots; \
                                  must be granted at the same host path, where QEMU and qemu-img work"
                        .into(),
                },
                DirRequest {
                    guest_path: IMAGE_ROOT.into(),
                    writable: false,
                    description: "base images IMAGE.qcow2, to check that an image exists; must be granted at the \
                                  same host path, which boot overlays record"
                        .into(),
                },
            ],
            env: Vec::new(),
        },
    }
}
