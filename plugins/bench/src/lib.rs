//! The component side of `cargo xtask bench` (BENCHMARKS.md): `has-vm` does nothing (the cost of
//! instantiating and calling a component), `start-vm` runs `true start ID` through the host's
//! `process` import (the same argv as the JSON action it is compared with), and `stop-vm` runs
//! `sleep 1`, which keeps an instance alive long enough to measure its memory. Everything else is
//! declared unsupported.

use omni_cpi_sdk::prelude::*;

struct Bench;

const NOT_BENCHED: &str = "the benchmark component implements only has-vm, start-vm and stop-vm";

impl Plugin for Bench {
    fn describe() -> PluginInfo {
        let action = |name: &str| ActionInfo {
            name: name.into(),
            params: vec![],
            unsupported: (!matches!(name, "has-vm" | "start-vm" | "stop-vm")).then(|| NOT_BENCHED.into()),
        };
        PluginInfo {
            name: "bench".into(),
            kind: CpiKind::Director,
            version: "0.1.0".into(),
            actions: [
                "create-vm",
                "delete-vm",
                "start-vm",
                "stop-vm",
                "reboot-vm",
                "has-vm",
                "inspect-vm",
                "list-vms",
                "set-vm-metadata",
                "create-disk",
                "delete-disk",
                "attach-disk",
                "detach-disk",
                "has-disk",
                "list-disks",
                "snapshot-disk",
            ]
            .into_iter()
            .map(action)
            .collect(),
            default_settings: vec![],
            capabilities: Capabilities {
                exec: vec![
                    ExecRequest { program: "true".into(), args: vec!["start".into(), VALUE.into()] },
                    ExecRequest { program: "sleep".into(), args: vec!["1".into()] },
                ],
                dirs: vec![],
                env: vec![],
            },
        }
    }
}

impl Director for Bench {
    fn start_vm(id: String) -> CpiResult<()> {
        exec("true", &["start", &id]).map(|_| ())
    }
    fn has_vm(_id: String) -> CpiResult<bool> {
        Ok(false)
    }
    fn create_vm(_spec: VmSpec) -> CpiResult<VmInfo> {
        unsupported(NOT_BENCHED)
    }
    fn delete_vm(_id: String) -> CpiResult<()> {
        unsupported(NOT_BENCHED)
    }
    fn stop_vm(_id: String) -> CpiResult<()> {
        exec("sleep", &["1"]).map(|_| ())
    }
    fn reboot_vm(_id: String) -> CpiResult<()> {
        unsupported(NOT_BENCHED)
    }
    fn inspect_vm(_id: String) -> CpiResult<VmInfo> {
        unsupported(NOT_BENCHED)
    }
    fn list_vms() -> CpiResult<Vec<String>> {
        unsupported(NOT_BENCHED)
    }
    fn set_vm_metadata(_id: String, _metadata: Vec<(String, String)>) -> CpiResult<()> {
        unsupported(NOT_BENCHED)
    }
    fn create_disk(_spec: DiskSpec) -> CpiResult<DiskInfo> {
        unsupported(NOT_BENCHED)
    }
    fn delete_disk(_id: String) -> CpiResult<()> {
        unsupported(NOT_BENCHED)
    }
    fn attach_disk(_vm: String, _disk: String) -> CpiResult<()> {
        unsupported(NOT_BENCHED)
    }
    fn detach_disk(_vm: String, _disk: String) -> CpiResult<()> {
        unsupported(NOT_BENCHED)
    }
    fn has_disk(_id: String) -> CpiResult<bool> {
        unsupported(NOT_BENCHED)
    }
    fn list_disks(_vm: Option<String>) -> CpiResult<Vec<String>> {
        unsupported(NOT_BENCHED)
    }
    fn snapshot_disk(_disk: String, _name: String) -> CpiResult<String> {
        unsupported(NOT_BENCHED)
    }
}

omni_cpi_sdk::export_director!(Bench);
