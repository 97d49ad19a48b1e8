//! Networks: a network is a named network namespace (`ip netns add omni-runc-NAME`, loopback up).
//! Containers connected to it join that namespace when they start, so they share its interfaces
//! and reach each other on 127.0.0.1, like the containers of a pod. There is no bridge, address or
//! route to the outside. A container is in at most one network; unconnected, it gets a private
//! namespace with only its loopback. Connecting changes the container's config, so it is allowed
//! while the container is created or stopped.

use omni_cpi_sdk::prelude::*;

use crate::container;
use crate::runc;
use crate::store;
use crate::validate;

pub fn create(name: &str) -> CpiResult<()> {
    validate::name("network name", name)?;
    let registration = store::network_dir(name);
    if !store::claim_dir(&registration)? {
        return Err(CpiError::new(ErrorKind::AlreadyExists, format!("runc: network {name} already exists")));
    }
    if let Err(e) = runc::netns_add(name) {
        let _ = store::remove_tree(&registration);
        return Err(e);
    }
    log(Level::Info, &format!("runc_cpi: created network {name} (network namespace {})", runc::netns_name(name)));
    Ok(())
}

/// Removes the network. One that any container is connected to (in any state) is `in-use`.
pub fn delete(name: &str) -> CpiResult<()> {
    validate::name("network name", name)?;
    container::require_network(name)?;
    let users: Vec<String> =
        store::all_records()?.into_iter().filter(|r| r.network.as_deref() == Some(name)).map(|r| r.name).collect();
    if !users.is_empty() {
        return Err(CpiError::new(
            ErrorKind::InUse,
            format!("runc: network {name} is in use by container(s) {}", users.join(", ")),
        ));
    }
    runc::netns_delete(name)?;
    store::remove_tree(&store::network_dir(name))
}

pub fn connect(network: &str, container_name: &str) -> CpiResult<()> {
    validate::name("network name", network)?;
    let mut record = container::existing(container_name)?;
    container::require_network(network)?;
    match record.network.as_deref() {
        Some(current) if current == network => {
            return Err(CpiError::new(
                ErrorKind::AlreadyExists,
                format!("runc: container {container_name} is already connected to network {network}"),
            ))
        }
        Some(current) => {
            return Err(CpiError::new(
                ErrorKind::InvalidState,
                format!(
                    "runc: container {container_name} is connected to network {current}; a container is in at most \
                     one network: disconnect it first"
                ),
            ))
        }
        None => {}
    }
    container::require_not_live(container_name, "connect a network")?;
    record.network = Some(network.to_string());
    record.write_config()?;
    record.save()
}

/// Disconnecting a container that is not connected to `network` succeeds.
pub fn disconnect(network: &str, container_name: &str) -> CpiResult<()> {
    validate::name("network name", network)?;
    let mut record = container::existing(container_name)?;
    container::require_network(network)?;
    if record.network.as_deref() != Some(network) {
        return Ok(());
    }
    container::require_not_live(container_name, "disconnect a network")?;
    record.network = None;
    record.write_config()?;
    record.save()
}

pub fn list() -> CpiResult<Vec<String>> {
    store::list_names(&store::networks_dir())
}
