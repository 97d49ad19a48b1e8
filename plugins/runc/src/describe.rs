//! What `describe` returns: every container action with what its parameters mean here, the one
//! setting the plugin reads, and exactly the capabilities it needs.

use omni_cpi_sdk::prelude::*;

use crate::{runc, validate};
use crate::{DEFAULT_STOP_TIMEOUT, IMAGE_ROOT, MAX_STOP_TIMEOUT, NETNS_PREFIX, STATE_ROOT, STOP_TIMEOUT_SETTING};

pub fn info() -> PluginInfo {
    let name_rule = format!(
        "letters, digits, `_`, `.`, `-`, starting with a letter or digit; at most {} characters",
        validate::MAX_NAME
    );
    let container = |description: &str| format!("{description} ({name_rule})");
    let stop_timeout = format!(
        "seconds between SIGTERM and SIGKILL, at most {MAX_STOP_TIMEOUT}; default: the `{STOP_TIMEOUT_SETTING}` setting \
         ({DEFAULT_STOP_TIMEOUT}: kill at once, as a shell as PID 1 ignores SIGTERM)"
    );
    let mut describe = Describe::container("runc_cpi", env!("CARGO_PKG_VERSION"))
        .implements_all()
        .setting(STOP_TIMEOUT_SETTING, &DEFAULT_STOP_TIMEOUT.to_string())
        .conformance_param("image", "busybox")
        .conformance_param("stop_timeout", "0")
        .dir(
            STATE_ROOT,
            true,
            "container bundles (config.json, logs), volumes and network registrations; must be granted at the \
             same host path, which runc reads",
        )
        .dir(IMAGE_ROOT, false, "image directories (root file systems), to check that an image exists");
    for request in runc::exec_requests() {
        let args: Vec<&str> = request.args.iter().map(String::as_str).collect();
        describe = describe.exec(&request.program, &args);
    }
    let params: &[(&str, &str, String)] = &[
        ("create_container", "name", container("The container")),
        ("create_container", "image", format!("A directory under {IMAGE_ROOT} holding a root file system, used read-only and never copied; it must contain /bin/sh. A name ({name_rule}), never a path")),
        ("create_container", "command", "Program and arguments run in the container; its output goes to the log. Default: /bin/sh".into()),
        ("create_container", "env", "Variables for the command and for exec (NAME without `=`); PATH defaults to /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("create_container", "ports", "Refused (unsupported) when not empty: runc has no port mapping".into()),
        ("create_container", "volumes", "VOLUME:/path bind mounts of volumes made by create_volume (not_found for a missing one)".into()),
        ("create_container", "network", "A network made by create_network, joined at start".into()),
        ("delete_container", "name", container("The container; killed (SIGKILL) if it runs, its bundle and log removed; volumes are kept")),
        ("start_container", "name", container("The container; starting a running one succeeds")),
        ("stop_container", "name", container("The container; stopping a stopped or created one succeeds")),
        ("stop_container", "stop_timeout", stop_timeout.clone()),
        ("restart_container", "name", container("The container; stopped if it runs, then started (applies attached volumes and networks)")),
        ("restart_container", "stop_timeout", stop_timeout),
        ("inspect_container", "name", container("The container; details are JSON with the runc state, bundle, volumes and network")),
        ("logs", "name", container("The container; its stdout and stderr, kept after stop and appended on every start (the last MiB)")),
        ("exec", "name", container("A running container (invalid_state otherwise)")),
        ("exec", "cmd", "Program and arguments; the exit code is the result (127: not found, 126: cannot run)".into()),
        ("create_volume", "name", format!("The volume: a directory under {STATE_ROOT}/volumes ({name_rule})")),
        ("delete_volume", "name", "The volume and its data; in_use while any container mounts it".into()),
        ("attach_volume", "name", "The volume".into()),
        ("attach_volume", "container", "A created or stopped container (invalid_state while it runs); the mount applies at its next start".into()),
        ("attach_volume", "target", "Absolute path in the container, e.g. /data; created in the image directory if missing".into()),
        ("detach_volume", "name", "The volume".into()),
        ("detach_volume", "container", "A created or stopped container (invalid_state while it runs); detaching a volume that is not attached succeeds".into()),
        ("create_network", "name", format!("The network: network namespace {NETNS_PREFIX}NAME with loopback only; containers in it share it ({name_rule})")),
        ("delete_network", "name", "The network; in_use while any container is connected".into()),
        ("connect_network", "network", "The network".into()),
        ("connect_network", "container", "A created or stopped container (invalid_state while it runs); joins the network at its next start; one network per container".into()),
        ("disconnect_network", "network", "The network".into()),
        ("disconnect_network", "container", "A created or stopped container (invalid_state while it runs); disconnecting one that is not connected succeeds".into()),
    ];
    for (action, param, description) in params {
        describe = describe.param(action, param, description);
    }
    describe.build()
}
