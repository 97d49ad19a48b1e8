//! The OCI runtime config (config.json) of a container, modelled on `runc spec` (runc 1.1) with:
//! the image directory as a read-only root (never copied), a tmpfs at /tmp, the container's log
//! directory at /.omni-cpi, volumes as bind mounts, a network namespace shared through
//! `ip netns` when the container is connected to a network, and the command wrapped so that its
//! output goes to the log file.

use serde_json::{json, Value};

use crate::store::{self, Record};
use crate::{CGROUP_PARENT, NETNS_DIR, NETNS_PREFIX};

/// Where the container's log directory is mounted inside it.
pub const META_TARGET: &str = "/.omni-cpi";

/// The container's init: redirects its output to the log (appended on every start) and stdin from
/// /dev/null, then execs the caller's command, which arrives as "$@": no caller value is ever part
/// of this script. (`exec --` for a command that starts with `-`, which `exec` would take for an
/// option; as in the LXC spec's run script.)
pub const LOG_WRAPPER: &str =
    "exec >>/.omni-cpi/log 2>&1 </dev/null; case $1 in -*) exec -- \"$@\" ;; esac; exec \"$@\"";

/// The command of a container created without one: an image directory has no metadata, so the
/// default is the shell, as for the busybox image of Docker Hub.
pub const DEFAULT_COMMAND: &str = "/bin/sh";

/// PATH unless the caller's env sets it (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set: enough for ordinary programs (chown, setuid, binding low
/// ports), without CAP_SYS_ADMIN, CAP_NET_ADMIN or CAP_SYS_PTRACE.
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The argv of the container's process: the wrapper, then the command.
pub fn process_args(record: &Record) -> Vec<String> {
    let mut args = vec!["/bin/sh".to_string(), "-c".to_string(), LOG_WRAPPER.to_string(), "sh".to_string()];
    if record.command.is_empty() {
        args.push(DEFAULT_COMMAND.to_string());
    } else {
        args.extend(record.command.iter().cloned());
    }
    args
}

/// `NAME=VALUE` items: PATH first (the caller's if given), then the caller's variables in order.
pub fn process_env(record: &Record) -> Vec<String> {
    let mut env = Vec::new();
    if !record.env.iter().any(|(k, _)| k == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.extend(record.env.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// The network namespace file of network `name` (made by `ip netns add`).
pub fn netns_path(network: &str) -> String {
    format!("{NETNS_DIR}/{NETNS_PREFIX}{network}")
}

pub fn config(record: &Record) -> Value {
    let caps = CAPABILITIES;
    // The UTS hostname is limited to 64 bytes; names are ASCII.
    let hostname: String = record.name.chars().take(63).collect();

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": META_TARGET, "type": "bind",
               "source": store::meta_dir(&record.name).to_string_lossy(),
               "options": ["bind", "rw", "nosuid", "nodev", "noexec"]}),
    ];
    for m in &record.mounts {
        mounts.push(json!({"destination": m.target, "type": "bind",
                           "source": store::volume_dir(&m.volume).to_string_lossy(),
                           "options": ["rbind", "rw"]}));
    }

    let network = match &record.network {
        Some(net) => json!({"type": "network", "path": netns_path(net)}),
        None => json!({"type": "network"}),
    };

    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": process_args(record),
            "env": process_env(record),
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": store::image_dir(&record.image).to_string_lossy(), "readonly": true},
        "hostname": hostname,
        "mounts": mounts,
        "annotations": {
            "org.omnicloud.cpi": "runc_cpi",
            "org.omnicloud.cpi.image": record.image
        },
        "linux": {
            "cgroupsPath": format!("{CGROUP_PARENT}/{}", record.name),
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, network, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mount;

    fn record() -> Record {
        Record {
            name: "web".into(),
            image: "busybox".into(),
            command: vec!["sh".into(), "-c".into(), "echo '$(x)'; exit 3".into()],
            env: vec![("MODE".into(), "a b".into())],
            mounts: vec![Mount { volume: "v1".into(), target: "/data".into() }],
            network: None,
            created: 0,
            started: false,
        }
    }

    #[test]
    fn caller_values_stay_arguments() {
        let args = process_args(&record());
        assert_eq!(&args[..4], &["/bin/sh", "-c", LOG_WRAPPER, "sh"]);
        assert_eq!(&args[4..], &record().command[..]);
        let empty = Record { command: vec![], ..record() };
        assert_eq!(process_args(&empty)[4..], [DEFAULT_COMMAND.to_string()]);
    }

    #[test]
    fn env_has_path_once() {
        assert_eq!(process_env(&record()), vec![format!("PATH={DEFAULT_PATH}"), "MODE=a b".to_string()]);
        let own = Record { env: vec![("PATH".into(), "/bin".into())], ..record() };
        assert_eq!(process_env(&own), vec!["PATH=/bin".to_string()]);
    }

    #[test]
    fn config_shape() {
        let c = config(&record());
        assert_eq!(c["root"]["path"], "/var/lib/omni-cpi/images/busybox");
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["process"]["terminal"], false);
        let mounts = c["mounts"].as_array().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/data" && m["source"] == "/var/lib/omni-cpi/runc/volumes/v1"));
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == META_TARGET && m["source"] == "/var/lib/omni-cpi/runc/containers/web/meta"));
        assert_eq!(c["linux"]["namespaces"][1], json!({"type": "network"}));
        let joined = config(&Record { network: Some("n1".into()), ..record() });
        assert_eq!(joined["linux"]["namespaces"][1]["path"], "/var/run/netns/omni-runc-n1");
    }
}
