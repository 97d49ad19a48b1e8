//! Container lifecycle. States, from the outside:
//!
//! - created: the bundle exists and was never started (runc does not know the id);
//! - running / paused: as `runc state` says;
//! - stopped: runc says stopped (the command exited by itself), or the container ran before and
//!   runc has forgotten it (`stop` deletes it from runc so that it can be run again).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use omni_cpi_sdk::prelude::*;
use serde_json::json;

use crate::runc::{self, InDryRun, RuncState};
use crate::store::{self, Mount, Record};
use crate::validate;

fn invalid_state(message: String) -> CpiError {
    CpiError::new(ErrorKind::InvalidState, message)
}

fn not_found(what: &str, name: &str) -> CpiError {
    CpiError::new(ErrorKind::NotFound, format!("runc: no such {what}: {name}"))
}

/// The record of an existing container, after checking the name.
pub fn existing(name: &str) -> CpiResult<Record> {
    validate::name("container name", name)?;
    Record::load(name)
}

/// Fails with `not-found` unless the volume exists.
pub fn require_volume(volume: &str) -> CpiResult<()> {
    if store::is_dir(&store::volume_dir(volume))? {
        Ok(())
    } else {
        Err(not_found("volume", volume))
    }
}

/// Fails with `not-found` unless the network exists.
pub fn require_network(network: &str) -> CpiResult<()> {
    if store::is_dir(&store::network_dir(network))? {
        Ok(())
    } else {
        Err(not_found("network", network))
    }
}

/// Fails with `not-found` unless the image directory exists, and with `invalid-argument` if it is
/// a symlink (runc refuses a symlinked root) or has no /bin/sh, which runs the container's command
/// (see `oci::LOG_WRAPPER`): refused at create rather than at start. A /bin/sh behind a symlink
/// the sandbox cannot follow (an absolute one such as /bin -> /usr/bin) is left for runc to judge.
fn require_image(image: &str) -> CpiResult<()> {
    let dir = store::image_dir(image);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(CpiError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "runc: image {image} is a symlink, and runc needs a real directory as root ({})",
                    dir.display()
                ),
            ))
        }
        Ok(_) => return Err(not_found("image", image)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CpiError::new(
                ErrorKind::NotFound,
                format!("runc: no such image: {image} (no directory {})", dir.display()),
            ))
        }
        Err(e) => return Err(store::io_error("read", &dir, e)),
    }
    let sh = dir.join("bin/sh");
    match std::fs::symlink_metadata(&sh) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CpiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "runc: image {image} has no /bin/sh, which runs the container's command ({} is missing)",
                sh.display()
            ),
        )),
        _ => Ok(()),
    }
}

fn state_of(record: &Record, runc: Option<&RuncState>) -> ContainerState {
    match runc.map(|s| s.status.as_str()) {
        Some("running") => ContainerState::Running,
        Some("paused") => ContainerState::Paused,
        Some("stopped") => ContainerState::Stopped,
        Some("created") => ContainerState::Created,
        Some(_) => ContainerState::Unknown,
        None if record.started => ContainerState::Stopped,
        None => ContainerState::Created,
    }
}

fn state_word(state: ContainerState) -> &'static str {
    match state {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Stopped => "stopped",
        ContainerState::Unknown => "unknown",
    }
}

fn info(record: &Record, runc: Option<&RuncState>) -> ContainerInfo {
    let state = state_of(record, runc);
    let details = json!({
        "state": state_word(state),
        "image": record.image,
        "rootfs": store::image_dir(&record.image).to_string_lossy(),
        "bundle": store::bundle_dir(&record.name).to_string_lossy(),
        "log": store::meta_dir(&record.name).join("log").to_string_lossy(),
        "command": record.command,
        "env": record.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "volumes": record.mounts.iter().map(|m| json!({"volume": m.volume, "target": m.target})).collect::<Vec<_>>(),
        "network": record.network,
        "created": record.created,
        "runc": runc.map(|s| s.raw.clone()),
    });
    ContainerInfo {
        name: record.name.clone(),
        id: record.name.clone(),
        image: record.image.clone(),
        state,
        pid: runc.filter(|s| s.is_live()).and_then(|s| s.pid),
        details: details.to_string(),
    }
}

pub fn create(spec: ContainerSpec) -> CpiResult<ContainerInfo> {
    validate::name("container name", &spec.name)?;
    validate::name("image name", &spec.image)?;
    for arg in &spec.command {
        validate::no_nul("command argument", arg)?;
    }
    for (key, value) in &spec.env {
        validate::env(key, value)?;
    }
    if !spec.ports.is_empty() {
        return unsupported(
            "runc_cpi: ports are not supported: runc has no port mapping (a container has its own network \
             namespace with only a loopback interface)",
        );
    }
    let mut mounts: Vec<Mount> = Vec::new();
    for item in &spec.volumes {
        let (volume, target) = validate::volume_spec(item)?;
        if mounts.iter().any(|m| m.target == target) {
            return Err(CpiError::new(ErrorKind::InvalidArgument, format!("two volumes at {target}")));
        }
        mounts.push(Mount { volume, target });
    }
    if let Some(network) = &spec.network {
        validate::name("network name", network)?;
    }

    require_image(&spec.image)?;
    for m in &mounts {
        require_volume(&m.volume)?;
    }
    if let Some(network) = &spec.network {
        require_network(network)?;
    }

    let bundle = store::bundle_dir(&spec.name);
    if !store::claim_dir(&bundle)? {
        return Err(CpiError::new(ErrorKind::AlreadyExists, format!("runc: container {} already exists", spec.name)));
    }
    let record = Record {
        name: spec.name.clone(),
        image: spec.image,
        command: spec.command,
        env: spec.env,
        mounts,
        network: spec.network,
        created: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        started: false,
    };
    let made = (|| {
        let meta = store::meta_dir(&record.name);
        store::create_dir_all(&meta)?;
        record.write_config()?;
        // A leftover runc container of that id (from a delete interrupted between forgetting it in
        // runc and removing its bundle) would pass for this one.
        if runc::state(&record.name, InDryRun::NotRunning)?.is_some() {
            runc::delete(&record.name)?;
        }
        record.save()
    })();
    if let Err(e) = made {
        let _ = store::remove_tree(&bundle);
        return Err(e);
    }
    log(Level::Info, &format!("runc_cpi: created container {} from image {}", record.name, record.image));
    Ok(info(&record, None))
}

pub fn start(name: &str) -> CpiResult<()> {
    let mut record = existing(name)?;
    match runc::state(name, InDryRun::NotRunning)? {
        Some(s) if s.is_live() => return Ok(()),
        // The command exited by itself (stopped), or an earlier run broke off (created).
        Some(_) => runc::delete(name)?,
        None => {}
    }
    for m in &record.mounts {
        require_volume(&m.volume)?;
    }
    if let Some(network) = &record.network {
        // The namespace is gone after a reboot (/run is a tmpfs): make it again.
        require_network(network)?;
        runc::netns_add(network)?;
    }
    let meta = store::meta_dir(name);
    store::create_dir_all(&meta)?;
    record.write_config()?;
    runc::run(name, &store::bundle_dir(name).to_string_lossy())?;
    if !record.started {
        record.started = true;
        record.save()?;
    }
    log(Level::Info, &format!("runc_cpi: started container {name}"));
    Ok(())
}

pub fn stop(name: &str, timeout_secs: Option<u32>) -> CpiResult<()> {
    existing(name)?;
    let secs = match timeout_secs {
        Some(secs) => secs,
        None => default_stop_timeout()?,
    }
    .min(crate::MAX_STOP_TIMEOUT);
    let timeout = Duration::from_secs(u64::from(secs));
    runc::stop(name, timeout)
}

pub fn restart(name: &str, timeout_secs: Option<u32>) -> CpiResult<()> {
    stop(name, timeout_secs)?;
    start(name)
}

pub fn delete(name: &str) -> CpiResult<()> {
    validate::name("container name", name)?;
    let bundle = store::bundle_dir(name);
    if !store::is_dir(&bundle)? {
        return Err(not_found("container", name));
    }
    runc::delete(name)?;
    store::remove_tree(&bundle)?;
    log(Level::Info, &format!("runc_cpi: deleted container {name}"));
    Ok(())
}

pub fn inspect(name: &str) -> CpiResult<ContainerInfo> {
    let record = existing(name)?;
    let runc = runc::state(name, InDryRun::NotRunning)?;
    Ok(info(&record, runc.as_ref()))
}

pub fn list() -> CpiResult<Vec<String>> {
    let names = store::list_names(&store::containers_dir())?;
    Ok(names.into_iter().filter(|n| Record::path(n).is_file()).collect())
}

pub fn logs(name: &str) -> CpiResult<String> {
    existing(name)?;
    store::read_log(name)
}

pub fn exec(name: &str, cmd: Vec<String>) -> CpiResult<ExecResult> {
    existing(name)?;
    if cmd.is_empty() {
        return Err(CpiError::new(ErrorKind::InvalidArgument, "exec needs a command"));
    }
    for arg in &cmd {
        validate::no_nul("command argument", arg)?;
    }
    match runc::state(name, InDryRun::Running)? {
        Some(s) if s.status == "running" => runc::exec_in(name, &cmd),
        Some(s) => Err(invalid_state(format!("runc: container {name} is {}, not running", s.status))),
        None => Err(invalid_state(format!("runc: container {name} is not running"))),
    }
}

/// Fails with `invalid-state` while the container's processes exist: its mounts and network
/// namespace are fixed when it starts.
pub fn require_not_live(name: &str, change: &str) -> CpiResult<()> {
    match runc::state(name, InDryRun::NotRunning)? {
        Some(s) if s.is_live() => Err(invalid_state(format!(
            "runc: container {name} is {}: {change} only while it is created or stopped (runc fixes mounts and \
             namespaces at start); stop it, {change}, then start it",
            s.status
        ))),
        _ => Ok(()),
    }
}

/// The operator's `stop_timeout` setting, or the plugin's default (the host passes only keys the
/// plugin declared, with the operator's value over the default).
fn default_stop_timeout() -> CpiResult<u32> {
    let Some(text) = setting(crate::STOP_TIMEOUT_SETTING) else { return Ok(crate::DEFAULT_STOP_TIMEOUT) };
    text.trim().parse().map_err(|_| {
        CpiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "runc: setting `{}` is {text:?}, not a whole number of seconds; fix it in the policy's \
                 [plugins.NAME.settings]",
                crate::STOP_TIMEOUT_SETTING
            ),
        )
    })
}
