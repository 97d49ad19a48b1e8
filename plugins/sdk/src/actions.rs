//! Write only what your CPI supports. [`Container`] and [`Director`] have a default for every
//! action that answers `unsupported`; [`describe_actions`] describes every action of your kind
//! from the catalogue (the parameter names the host passes), marking the ones you did not list
//! as implemented unsupported. Export with [`crate::export_container!`] or
//! [`crate::export_director!`].
//!
//! The table here is the host's catalogue (`host/src/contract/catalogue.rs`, REFERENCE.md
//! "Standard actions") for WIT omni:cpi@0.3.0; the host checks at load that `describe()` uses
//! these names, and its tests check the shipped plugins that describe themselves with it.

use crate::{ActionInfo, CpiError, ErrorKind, ParamInfo};

/// One action of the WIT interface: its name and its parameters (name, required).
pub type CatalogueEntry = (&'static str, &'static [(&'static str, bool)]);

/// The container interface's actions, in the WIT's order.
pub const CONTAINER_ACTIONS: &[CatalogueEntry] = &[
    (
        "create_container",
        &[
            ("name", true),
            ("image", true),
            ("command", false),
            ("env", false),
            ("ports", false),
            ("volumes", false),
            ("network", false),
        ],
    ),
    ("delete_container", &[("name", true)]),
    ("start_container", &[("name", true)]),
    ("stop_container", &[("name", true), ("stop_timeout", false)]),
    ("restart_container", &[("name", true), ("stop_timeout", false)]),
    ("inspect_container", &[("name", true)]),
    ("list_containers", &[]),
    ("logs", &[("name", true)]),
    ("exec", &[("name", true), ("cmd", true)]),
    ("create_volume", &[("name", true)]),
    ("delete_volume", &[("name", true)]),
    ("attach_volume", &[("name", true), ("container", true), ("target", true)]),
    ("detach_volume", &[("name", true), ("container", true)]),
    ("list_volumes", &[]),
    ("create_network", &[("name", true)]),
    ("delete_network", &[("name", true)]),
    ("connect_network", &[("network", true), ("container", true)]),
    ("disconnect_network", &[("network", true), ("container", true)]),
    ("list_networks", &[]),
];

/// The director interface's actions, in the WIT's order.
pub const DIRECTOR_ACTIONS: &[CatalogueEntry] = &[
    ("create_vm", &[("name", true), ("image", true), ("cpus", false), ("memory_mb", false), ("metadata", false)]),
    ("delete_vm", &[("vm", true)]),
    ("start_vm", &[("vm", true)]),
    ("stop_vm", &[("vm", true)]),
    ("reboot_vm", &[("vm", true)]),
    ("has_vm", &[("vm", true)]),
    ("inspect_vm", &[("vm", true)]),
    ("list_vms", &[]),
    ("set_vm_metadata", &[("vm", true), ("metadata", true)]),
    ("create_disk", &[("name", true), ("size_mb", true)]),
    ("delete_disk", &[("disk", true)]),
    ("attach_disk", &[("vm", true), ("disk", true)]),
    ("detach_disk", &[("vm", true), ("disk", true)]),
    ("has_disk", &[("disk", true)]),
    ("list_disks", &[("vm", false)]),
    ("snapshot_disk", &[("disk", true), ("snapshot", true)]),
];

/// `describe()`'s actions for a CPI that implements `implemented` (catalogue names, `_` or `-`)
/// out of `catalogue` ([`CONTAINER_ACTIONS`] or [`DIRECTOR_ACTIONS`]); every other action is
/// declared unsupported with `why_not`. Parameters are the catalogue's.
pub fn describe_actions(catalogue: &[CatalogueEntry], implemented: &[&str], why_not: &str) -> Vec<ActionInfo> {
    let implements = |name: &str| implemented.iter().any(|i| i.replace('-', "_") == name);
    catalogue
        .iter()
        .map(|(name, params)| ActionInfo {
            name: name.to_string(),
            params: params
                .iter()
                .map(|(param, required)| ParamInfo {
                    name: param.to_string(),
                    required: *required,
                    description: String::new(),
                })
                .collect(),
            unsupported: (!implements(name)).then(|| why_not.to_string()),
        })
        .collect()
}

/// The answer of an action a CPI does not implement.
pub fn not_implemented<T>(action: &str) -> Result<T, CpiError> {
    Err(CpiError::new(ErrorKind::Unsupported, format!("this CPI does not implement {action}")))
}

/// A container CPI: implement the actions you support; the others answer `unsupported`.
#[cfg(feature = "container")]
#[allow(unused_variables)]
pub trait Container {
    fn create_container(spec: crate::ContainerSpec) -> Result<crate::ContainerInfo, CpiError> {
        not_implemented("create_container")
    }
    fn delete_container(name: String) -> Result<(), CpiError> {
        not_implemented("delete_container")
    }
    fn start_container(name: String) -> Result<(), CpiError> {
        not_implemented("start_container")
    }
    fn stop_container(name: String, timeout_secs: Option<u32>) -> Result<(), CpiError> {
        not_implemented("stop_container")
    }
    fn restart_container(name: String, timeout_secs: Option<u32>) -> Result<(), CpiError> {
        not_implemented("restart_container")
    }
    fn inspect_container(name: String) -> Result<crate::ContainerInfo, CpiError> {
        not_implemented("inspect_container")
    }
    fn list_containers() -> Result<Vec<String>, CpiError> {
        not_implemented("list_containers")
    }
    fn logs(name: String) -> Result<String, CpiError> {
        not_implemented("logs")
    }
    fn exec(name: String, cmd: Vec<String>) -> Result<crate::ExecResult, CpiError> {
        not_implemented("exec")
    }
    fn create_volume(name: String) -> Result<(), CpiError> {
        not_implemented("create_volume")
    }
    fn delete_volume(name: String) -> Result<(), CpiError> {
        not_implemented("delete_volume")
    }
    fn attach_volume(volume: String, container: String, target: String) -> Result<(), CpiError> {
        not_implemented("attach_volume")
    }
    fn detach_volume(volume: String, container: String) -> Result<(), CpiError> {
        not_implemented("detach_volume")
    }
    fn list_volumes() -> Result<Vec<String>, CpiError> {
        not_implemented("list_volumes")
    }
    fn create_network(name: String) -> Result<(), CpiError> {
        not_implemented("create_network")
    }
    fn delete_network(name: String) -> Result<(), CpiError> {
        not_implemented("delete_network")
    }
    fn connect_network(network: String, container: String) -> Result<(), CpiError> {
        not_implemented("connect_network")
    }
    fn disconnect_network(network: String, container: String) -> Result<(), CpiError> {
        not_implemented("disconnect_network")
    }
    fn list_networks() -> Result<Vec<String>, CpiError> {
        not_implemented("list_networks")
    }
}

/// A director CPI: implement the actions you support; the others answer `unsupported`.
#[cfg(feature = "director")]
#[allow(unused_variables)]
pub trait Director {
    fn create_vm(spec: crate::VmSpec) -> Result<crate::VmInfo, CpiError> {
        not_implemented("create_vm")
    }
    fn delete_vm(id: String) -> Result<(), CpiError> {
        not_implemented("delete_vm")
    }
    fn start_vm(id: String) -> Result<(), CpiError> {
        not_implemented("start_vm")
    }
    fn stop_vm(id: String) -> Result<(), CpiError> {
        not_implemented("stop_vm")
    }
    fn reboot_vm(id: String) -> Result<(), CpiError> {
        not_implemented("reboot_vm")
    }
    fn has_vm(id: String) -> Result<bool, CpiError> {
        not_implemented("has_vm")
    }
    fn inspect_vm(id: String) -> Result<crate::VmInfo, CpiError> {
        not_implemented("inspect_vm")
    }
    fn list_vms() -> Result<Vec<String>, CpiError> {
        not_implemented("list_vms")
    }
    fn set_vm_metadata(id: String, metadata: Vec<(String, String)>) -> Result<(), CpiError> {
        not_implemented("set_vm_metadata")
    }
    fn create_disk(spec: crate::DiskSpec) -> Result<crate::DiskInfo, CpiError> {
        not_implemented("create_disk")
    }
    fn delete_disk(id: String) -> Result<(), CpiError> {
        not_implemented("delete_disk")
    }
    fn attach_disk(vm: String, disk: String) -> Result<(), CpiError> {
        not_implemented("attach_disk")
    }
    fn detach_disk(vm: String, disk: String) -> Result<(), CpiError> {
        not_implemented("detach_disk")
    }
    fn has_disk(id: String) -> Result<bool, CpiError> {
        not_implemented("has_disk")
    }
    fn list_disks(vm: Option<String>) -> Result<Vec<String>, CpiError> {
        not_implemented("list_disks")
    }
    fn snapshot_disk(disk: String, name: String) -> Result<String, CpiError> {
        not_implemented("snapshot_disk")
    }
}

/// Exports `$t` (implementing [`crate::Plugin`] and [`Container`]) as a container CPI
/// component: the WIT functions call the trait's methods, the defaults included.
#[cfg(feature = "container")]
#[macro_export]
macro_rules! export_container {
    ($t:ident) => {
        impl $crate::bindings::container::exports::omni::cpi::plugin::Guest for $t {
            fn describe() -> $crate::PluginInfo {
                <$t as $crate::Plugin>::describe()
            }
            fn network_requests() -> Vec<$crate::NetworkRequest> {
                <$t as $crate::Plugin>::network_requests()
            }
        }
        impl $crate::bindings::container::exports::omni::cpi::container::Guest for $t {
            fn create_container(spec: $crate::ContainerSpec) -> Result<$crate::ContainerInfo, $crate::CpiError> {
                <$t as $crate::actions::Container>::create_container(spec)
            }
            fn delete_container(name: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::delete_container(name)
            }
            fn start_container(name: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::start_container(name)
            }
            fn stop_container(name: String, timeout_secs: Option<u32>) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::stop_container(name, timeout_secs)
            }
            fn restart_container(name: String, timeout_secs: Option<u32>) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::restart_container(name, timeout_secs)
            }
            fn inspect_container(name: String) -> Result<$crate::ContainerInfo, $crate::CpiError> {
                <$t as $crate::actions::Container>::inspect_container(name)
            }
            fn list_containers() -> Result<Vec<String>, $crate::CpiError> {
                <$t as $crate::actions::Container>::list_containers()
            }
            fn logs(name: String) -> Result<String, $crate::CpiError> {
                <$t as $crate::actions::Container>::logs(name)
            }
            fn exec(name: String, cmd: Vec<String>) -> Result<$crate::ExecResult, $crate::CpiError> {
                <$t as $crate::actions::Container>::exec(name, cmd)
            }
            fn create_volume(name: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::create_volume(name)
            }
            fn delete_volume(name: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::delete_volume(name)
            }
            fn attach_volume(volume: String, container: String, target: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::attach_volume(volume, container, target)
            }
            fn detach_volume(volume: String, container: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::detach_volume(volume, container)
            }
            fn list_volumes() -> Result<Vec<String>, $crate::CpiError> {
                <$t as $crate::actions::Container>::list_volumes()
            }
            fn create_network(name: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::create_network(name)
            }
            fn delete_network(name: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::delete_network(name)
            }
            fn connect_network(network: String, container: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::connect_network(network, container)
            }
            fn disconnect_network(network: String, container: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Container>::disconnect_network(network, container)
            }
            fn list_networks() -> Result<Vec<String>, $crate::CpiError> {
                <$t as $crate::actions::Container>::list_networks()
            }
        }
        $crate::bindings::container::export!($t with_types_in $crate::bindings::container);
    };
}

/// Exports `$t` (implementing [`crate::Plugin`] and [`Director`]) as a director CPI
/// component: the WIT functions call the trait's methods, the defaults included.
#[cfg(feature = "director")]
#[macro_export]
macro_rules! export_director {
    ($t:ident) => {
        impl $crate::bindings::director::exports::omni::cpi::plugin::Guest for $t {
            fn describe() -> $crate::PluginInfo {
                <$t as $crate::Plugin>::describe()
            }
            fn network_requests() -> Vec<$crate::NetworkRequest> {
                <$t as $crate::Plugin>::network_requests()
            }
        }
        impl $crate::bindings::director::exports::omni::cpi::director::Guest for $t {
            fn create_vm(spec: $crate::VmSpec) -> Result<$crate::VmInfo, $crate::CpiError> {
                <$t as $crate::actions::Director>::create_vm(spec)
            }
            fn delete_vm(id: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Director>::delete_vm(id)
            }
            fn start_vm(id: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Director>::start_vm(id)
            }
            fn stop_vm(id: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Director>::stop_vm(id)
            }
            fn reboot_vm(id: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Director>::reboot_vm(id)
            }
            fn has_vm(id: String) -> Result<bool, $crate::CpiError> {
                <$t as $crate::actions::Director>::has_vm(id)
            }
            fn inspect_vm(id: String) -> Result<$crate::VmInfo, $crate::CpiError> {
                <$t as $crate::actions::Director>::inspect_vm(id)
            }
            fn list_vms() -> Result<Vec<String>, $crate::CpiError> {
                <$t as $crate::actions::Director>::list_vms()
            }
            fn set_vm_metadata(id: String, metadata: Vec<(String, String)>) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Director>::set_vm_metadata(id, metadata)
            }
            fn create_disk(spec: $crate::DiskSpec) -> Result<$crate::DiskInfo, $crate::CpiError> {
                <$t as $crate::actions::Director>::create_disk(spec)
            }
            fn delete_disk(id: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Director>::delete_disk(id)
            }
            fn attach_disk(vm: String, disk: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Director>::attach_disk(vm, disk)
            }
            fn detach_disk(vm: String, disk: String) -> Result<(), $crate::CpiError> {
                <$t as $crate::actions::Director>::detach_disk(vm, disk)
            }
            fn has_disk(id: String) -> Result<bool, $crate::CpiError> {
                <$t as $crate::actions::Director>::has_disk(id)
            }
            fn list_disks(vm: Option<String>) -> Result<Vec<String>, $crate::CpiError> {
                <$t as $crate::actions::Director>::list_disks(vm)
            }
            fn snapshot_disk(disk: String, name: String) -> Result<String, $crate::CpiError> {
                <$t as $crate::actions::Director>::snapshot_disk(disk, name)
            }
        }
        $crate::bindings::director::export!($t with_types_in $crate::bindings::director);
    };
}
