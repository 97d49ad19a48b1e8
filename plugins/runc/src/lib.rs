//! runc_cpi: a container CPI for runc, as a WebAssembly component.
//!
//! A container is an OCI bundle under the state root whose root file system is an image
//! directory, used read-only. The plugin writes bundles and reads logs through WASI file access to
//! the directories it is granted, and runs `runc`, `setsid` and `ip` through the host's `process`
//! import. See README.md for the capabilities to grant and the design.

mod container;
mod describe;
mod network;
mod oci;
mod runc;
mod store;
mod validate;
mod volume;

use omni_cpi_sdk::prelude::*;

/// Bundles, logs, volumes and network registrations. Granted read-write at the same host path.
pub const STATE_ROOT: &str = "/var/lib/omni-cpi/runc";
/// Image directories (`IMAGE_ROOT/busybox`); granted read-only.
pub const IMAGE_ROOT: &str = "/var/lib/omni-cpi/images";
/// runc's state directory (`runc --root`), apart from the default one podman uses.
pub const RUNC_ROOT: &str = "/run/omni-cpi/runc";
/// cgroup of the containers: CGROUP_PARENT/NAME.
pub const CGROUP_PARENT: &str = "/omni-cpi-runc";
/// Where `ip netns` keeps namespaces, and the prefix of the plugin's.
pub const NETNS_DIR: &str = "/var/run/netns";
pub const NETNS_PREFIX: &str = "omni-runc-";
/// Seconds between SIGTERM and SIGKILL when the caller gives no timeout: by default none. The
/// operator may change it with this setting (`[plugins.runc.settings] stop_timeout = 5`).
pub const DEFAULT_STOP_TIMEOUT: u32 = 0;
pub const STOP_TIMEOUT_SETTING: &str = "stop_timeout";
/// Longer timeouts are cut to this, so that the SIGKILL still comes within the host's default wall
/// time per call (120 s).
pub const MAX_STOP_TIMEOUT: u32 = 90;

struct Runc;

impl Plugin for Runc {
    fn describe() -> PluginInfo {
        describe::info()
    }
}

impl Container for Runc {
    fn create_container(spec: ContainerSpec) -> Result<ContainerInfo, CpiError> {
        container::create(spec)
    }

    fn delete_container(name: String) -> Result<(), CpiError> {
        container::delete(&name)
    }

    fn start_container(name: String) -> Result<(), CpiError> {
        container::start(&name)
    }

    fn stop_container(name: String, timeout_secs: Option<u32>) -> Result<(), CpiError> {
        container::stop(&name, timeout_secs)
    }

    fn restart_container(name: String, timeout_secs: Option<u32>) -> Result<(), CpiError> {
        container::restart(&name, timeout_secs)
    }

    fn inspect_container(name: String) -> Result<ContainerInfo, CpiError> {
        container::inspect(&name)
    }

    fn list_containers() -> Result<Vec<String>, CpiError> {
        container::list()
    }

    fn logs(name: String) -> Result<String, CpiError> {
        container::logs(&name)
    }

    fn exec(name: String, cmd: Vec<String>) -> Result<ExecResult, CpiError> {
        container::exec(&name, cmd)
    }

    fn create_volume(name: String) -> Result<(), CpiError> {
        volume::create(&name)
    }

    fn delete_volume(name: String) -> Result<(), CpiError> {
        volume::delete(&name)
    }

    fn attach_volume(volume: String, container: String, target: String) -> Result<(), CpiError> {
        volume::attach(&volume, &container, &target)
    }

    fn detach_volume(volume: String, container: String) -> Result<(), CpiError> {
        volume::detach(&volume, &container)
    }

    fn list_volumes() -> Result<Vec<String>, CpiError> {
        volume::list()
    }

    fn create_network(name: String) -> Result<(), CpiError> {
        network::create(&name)
    }

    fn delete_network(name: String) -> Result<(), CpiError> {
        network::delete(&name)
    }

    fn connect_network(network: String, container: String) -> Result<(), CpiError> {
        network::connect(&network, &container)
    }

    fn disconnect_network(network: String, container: String) -> Result<(), CpiError> {
        network::disconnect(&network, &container)
    }

    fn list_networks() -> Result<Vec<String>, CpiError> {
        network::list()
    }
}

omni_cpi_sdk::export_container!(Runc);
