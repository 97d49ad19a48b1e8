//! Volumes: directories under STATE_ROOT/volumes, bind-mounted into containers. A mount is part of
//! the container's config, so it applies when the container (re)starts.

use omni_cpi_sdk::prelude::*;

use crate::container;
use crate::store::{self, Mount};
use crate::validate;

pub fn create(name: &str) -> CpiResult<()> {
    validate::name("volume name", name)?;
    if !store::claim_dir(&store::volume_dir(name))? {
        return Err(CpiError::new(ErrorKind::AlreadyExists, format!("runc: volume {name} already exists")));
    }
    Ok(())
}

/// Removes the volume and its data. A volume that any container mounts (in any state) is `in-use`:
/// delete those containers first.
pub fn delete(name: &str) -> CpiResult<()> {
    validate::name("volume name", name)?;
    container::require_volume(name)?;
    let users: Vec<String> = store::all_records()?
        .into_iter()
        .filter(|r| r.mounts.iter().any(|m| m.volume == name))
        .map(|r| r.name)
        .collect();
    if !users.is_empty() {
        return Err(CpiError::new(
            ErrorKind::InUse,
            format!("runc: volume {name} is in use by container(s) {}", users.join(", ")),
        ));
    }
    store::remove_tree(&store::volume_dir(name))
}

pub fn attach(volume: &str, container_name: &str, target: &str) -> CpiResult<()> {
    validate::name("volume name", volume)?;
    validate::target(target)?;
    let mut record = container::existing(container_name)?;
    container::require_volume(volume)?;
    if record.mounts.iter().any(|m| m.volume == volume) {
        return Err(CpiError::new(
            ErrorKind::AlreadyExists,
            format!("runc: volume {volume} is already attached to {container_name}"),
        ));
    }
    if let Some(other) = record.mounts.iter().find(|m| m.target == target) {
        return Err(CpiError::new(
            ErrorKind::AlreadyExists,
            format!("runc: {target} in {container_name} is already the mount point of volume {}", other.volume),
        ));
    }
    container::require_not_live(container_name, "attach a volume")?;
    record.mounts.push(Mount { volume: volume.to_string(), target: target.to_string() });
    record.write_config()?;
    record.save()
}

/// Undoes `attach`; a volume that is not attached to the container is already detached. Like
/// attaching, it changes the container's config, so the container must not be running.
pub fn detach(volume: &str, container_name: &str) -> CpiResult<()> {
    validate::name("volume name", volume)?;
    let mut record = container::existing(container_name)?;
    container::require_volume(volume)?;
    if !record.mounts.iter().any(|m| m.volume == volume) {
        return Ok(());
    }
    container::require_not_live(container_name, "detach a volume")?;
    record.mounts.retain(|m| m.volume != volume);
    record.write_config()?;
    record.save()
}

pub fn list() -> CpiResult<Vec<String>> {
    store::list_names(&store::volumes_dir())
}
