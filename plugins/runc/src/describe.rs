//! What `describe` returns: the actions with their parameters (named as in the JSON CPIs), the
//! defaults, and the exact capabilities the plugin needs.

use omni_cpi_sdk::prelude::*;

use crate::{runc, validate};
use crate::{
    CGROUP_PARENT, DEFAULT_STOP_TIMEOUT, IMAGE_ROOT, MAX_STOP_TIMEOUT, NETNS_DIR, NETNS_PREFIX, RUNC_ROOT, STATE_ROOT,
};

fn param(name: &str, required: bool, description: &str) -> ParamInfo {
    ParamInfo { name: name.into(), required, description: description.into() }
}

fn action(name: &str, params: Vec<ParamInfo>) -> ActionInfo {
    ActionInfo { name: name.into(), params, unsupported: None }
}

pub fn info() -> PluginInfo {
    let name_rule = format!(
        "letters, digits, `_`, `.`, `-`, starting with a letter or digit; at most {} characters",
        validate::MAX_NAME
    );
    let container = |description: &str| param("name", true, &format!("{description} ({name_rule})"));
    let stop_timeout = || {
        param(
            "stop_timeout",
            false,
            &format!(
                "seconds between SIGTERM and SIGKILL, at most {MAX_STOP_TIMEOUT}; 0 (the default) kills at once \
                 (a shell as PID 1 ignores SIGTERM)"
            ),
        )
    };
    let actions = vec![
        action(
            "create_container",
            vec![
                container("The container"),
                param("image", true, &format!("A directory under {IMAGE_ROOT} holding a root file system, used read-only and never copied; it must contain /bin/sh. A name ({name_rule}), never a path")),
                param("command", false, "Program and arguments run in the container; its output goes to the log. Default: /bin/sh"),
                param("env", false, "Variables for the command and for exec (NAME without `=`); PATH defaults to /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                param("ports", false, "Refused (unsupported) when not empty: runc has no port mapping"),
                param("volumes", false, "VOLUME:/path bind mounts of volumes made by create_volume"),
                param("network", false, "A network made by create_network, joined at start"),
            ],
        ),
        action("delete_container", vec![container("The container; killed (SIGKILL) if it runs, its bundle and log removed; volumes are kept")]),
        action("start_container", vec![container("The container; starting a running one succeeds")]),
        action("stop_container", vec![container("The container; stopping a stopped or created one succeeds"), stop_timeout()]),
        action("restart_container", vec![container("The container; stopped if it runs, then started (applies attached volumes and networks)"), stop_timeout()]),
        action("inspect_container", vec![container("The container; details are JSON with the runc state, bundle, volumes and network")]),
        action("list_containers", vec![]),
        action("logs", vec![container("The container; its stdout and stderr, kept after stop and appended on every start (the last MiB)")]),
        action(
            "exec",
            vec![
                container("A running container"),
                param("cmd", true, "Program and arguments; the exit code is the result (127: not found, 126: cannot run)"),
            ],
        ),
        action("create_volume", vec![param("name", true, &format!("The volume: a directory under {STATE_ROOT}/volumes ({name_rule})"))]),
        action("delete_volume", vec![param("name", true, "The volume and its data; in_use while any container mounts it")]),
        action(
            "attach_volume",
            vec![
                param("name", true, "The volume"),
                param("container", true, "A created or stopped container (invalid_state while it runs); the mount applies at its next start"),
                param("target", true, "Absolute path in the container, e.g. /data; created in the image directory if missing"),
            ],
        ),
        action("create_network", vec![param("name", true, &format!("The network: network namespace {NETNS_PREFIX}NAME with loopback only; containers in it share it ({name_rule})"))]),
        action("delete_network", vec![param("name", true, "The network; in_use while any container is connected")]),
        action(
            "connect_network",
            vec![
                param("network", true, "The network"),
                param("container", true, "A created or stopped container (invalid_state while it runs); joins the network at its next start; one network per container"),
            ],
        ),
        action(
            "disconnect_network",
            vec![
                param("network", true, "The network"),
                param("container", true, "A created or stopped container; disconnecting one that is not connected succeeds"),
            ],
        ),
    ];

    let settings = [
        ("state_root", STATE_ROOT.to_string()),
        ("image_root", IMAGE_ROOT.to_string()),
        ("runc_root", RUNC_ROOT.to_string()),
        ("cgroup_parent", CGROUP_PARENT.to_string()),
        ("netns", format!("{NETNS_DIR}/{NETNS_PREFIX}NAME")),
        ("stop_timeout", DEFAULT_STOP_TIMEOUT.to_string()),
        // What the conformance kit passes to every call (the host reads `conformance.*`).
        ("conformance.image", "busybox".to_string()),
        ("conformance.stop_timeout", "0".to_string()),
    ];

    PluginInfo {
        name: "runc_cpi".into(),
        kind: CpiKind::Container,
        version: env!("CARGO_PKG_VERSION").into(),
        actions,
        default_settings: settings.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        capabilities: Capabilities {
            exec: runc::exec_requests(),
            dirs: vec![
                DirRequest {
                    guest_path: STATE_ROOT.into(),
                    writable: true,
                    description: "container bundles (config.json, logs), volumes and network registrations; \
                                  must be granted at the same host path, which runc reads"
                        .into(),
                },
                DirRequest {
                    guest_path: IMAGE_ROOT.into(),
                    writable: false,
                    description: "image directories (root file systems), to check that an image exists".into(),
                },
            ],
            env: Vec::new(),
        },
    }
}
