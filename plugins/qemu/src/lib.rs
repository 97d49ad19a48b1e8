//! qemu_wasm_cpi: a director CPI for QEMU, as a WebAssembly component.
//!
//! A VM is a daemonized `qemu-system-x86_64` (q35, TCG, no network) booting a copy-on-write
//! overlay of a base image, with a virtio-scsi controller for disks, controlled over its QMP socket
//! with `socat`. Disks are qcow2 files made with `qemu-img` and hot-plugged as `scsi-hd` over QMP;
//! snapshots are full copies. The plugin keeps its records through WASI file access to the one
//! directory it is granted (plus the base images, read-only) and runs `qemu-system-x86_64`,
//! `qemu-img` and `socat` through the host's `process` import, each with fixed argument shapes:
//! every path those programs see is relative to a working directory inside the granted directory.
//! See README.md for the grants and the design.

mod describe;
mod disk;
mod qemu;
mod qmp;
mod store;
mod validate;
mod vm;

use omni_cpi_sdk::prelude::*;

/// VMs, disks and snapshots. Granted read-write at the same host path (QEMU and qemu-img run in
/// its subdirectories, and the disks' absolute paths go to QEMU over QMP).
pub const STATE_ROOT: &str = "/var/lib/omni-cpi/qemu-component";
/// Base images (`IMAGE_ROOT/IMAGE.qcow2`), shared with the JSON spec `cpis/qemu.json`; granted
/// read-only at the same host path, since the overlay records the absolute path of its base.
pub const IMAGE_ROOT: &str = "/var/lib/omni-cpi/qemu/images";
/// The accelerator: software emulation, which works everywhere (no /dev/kvm needed).
pub const ACCEL: &str = "tcg";
/// Seconds a stopping VM gets to exit after QMP `quit` before the stop fails.
pub const STOP_WAIT_SECS: u64 = 10;
/// The setting that changes it (`[plugins.qemu.settings] stop_wait_secs = 30`), up to a bound that
/// keeps a stop within the host's default wall time per call (120 s).
pub const STOP_WAIT_SETTING: &str = "stop_wait_secs";
pub const MAX_STOP_WAIT_SECS: u64 = 90;

struct Qemu;

impl Plugin for Qemu {
    fn describe() -> PluginInfo {
        describe::info()
    }
}

impl Director for Qemu {
    fn create_vm(spec: VmSpec) -> CpiResult<VmInfo> {
        vm::create(spec)
    }

    fn delete_vm(id: String) -> CpiResult<()> {
        vm::delete(&id)
    }

    fn start_vm(id: String) -> CpiResult<()> {
        vm::start(&id)
    }

    fn stop_vm(id: String) -> CpiResult<()> {
        vm::stop(&id)
    }

    fn reboot_vm(id: String) -> CpiResult<()> {
        vm::reboot(&id)
    }

    fn has_vm(id: String) -> CpiResult<bool> {
        vm::has(&id)
    }

    fn inspect_vm(id: String) -> CpiResult<VmInfo> {
        vm::inspect(&id)
    }

    fn list_vms() -> CpiResult<Vec<String>> {
        vm::list()
    }

    fn set_vm_metadata(id: String, metadata: Vec<(String, String)>) -> CpiResult<()> {
        vm::set_metadata(&id, metadata)
    }

    fn create_disk(spec: DiskSpec) -> CpiResult<DiskInfo> {
        disk::create(&spec.name, spec.size_mb)
    }

    fn delete_disk(id: String) -> CpiResult<()> {
        disk::delete(&id)
    }

    fn attach_disk(vm: String, disk: String) -> CpiResult<()> {
        disk::attach(&vm, &disk)
    }

    fn detach_disk(vm: String, disk: String) -> CpiResult<()> {
        disk::detach(&vm, &disk)
    }

    fn has_disk(id: String) -> CpiResult<bool> {
        disk::has(&id)
    }

    fn list_disks(vm: Option<String>) -> CpiResult<Vec<String>> {
        disk::list(vm.as_deref())
    }

    fn snapshot_disk(disk: String, name: String) -> CpiResult<String> {
        disk::snapshot(&disk, &name)
    }
}

omni_cpi_sdk::export_director!(Qemu);
