//! Helpers shared by the integration tests: where things are, which runtimes must be present,
//! unique resource names, and a podman API service for the docker CLI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

pub fn cpi_path(name: &str) -> PathBuf {
    repo_root().join("cpis").join(format!("{name}.json"))
}

/// A plugin component built by `cargo xtask build-plugins`, or `None` (after a loud notice) when
/// it was not built and runtimes are not required.
pub fn plugin_wasm(crate_name: &str) -> Option<PathBuf> {
    let path = repo_root().join("plugins/target/wasm32-wasip2/release").join(format!("{crate_name}.wasm"));
    if path.is_file() {
        return Some(path);
    }
    if runtimes_required() {
        panic!("{} is missing: `cargo xtask test` builds it (cargo xtask build-plugins)", path.display());
    }
    eprintln!("SKIPPED: {} is not built; run `cargo xtask build-plugins`", path.display());
    None
}

/// An example plugin of a guest kit (`plugins/podman-py`, `plugins/docker-js`), built once per
/// test process with `omni-cpi build DIR`, as its author builds it; `None` (after a loud notice)
/// when the kit's build tool is not installed and runtimes are not required.
pub fn example_component(dir: &str) -> Option<PathBuf> {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let tool = guest_build_tool(dir);
    if !tool.is_file() {
        if runtimes_required() {
            panic!("{} is missing: `cargo xtask test` installs it", tool.display());
        }
        eprintln!("SKIPPED: {} is not installed; run `cargo xtask build-plugins`", tool.display());
        return None;
    }
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, path)) = built.iter().find(|(d, _)| d == dir) {
        return Some(path.clone());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
        .arg("build")
        .arg(repo_root().join(dir))
        .output()
        .expect("omni-cpi runs");
    assert!(out.status.success(), "omni-cpi build {dir}: {}", String::from_utf8_lossy(&out.stderr));
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    built.push((dir.to_string(), path.clone()));
    Some(path)
}

/// What a guest kit's project needs installed to build (`cargo xtask build-plugins` installs it).
pub fn guest_build_tool(project: &str) -> PathBuf {
    if project.ends_with("-js") || project.ends_with("_js") {
        repo_root().join("plugins/sdk-js/node_modules/@bytecodealliance/componentize-js/package.json")
    } else {
        repo_root().join("plugins/sdk-py/.venv/bin/componentize-py")
    }
}

/// True when a missing runtime must fail the test instead of skipping it: always under CI and
/// under `cargo xtask test`, which installs the runtimes first.
pub fn runtimes_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") || std::env::var_os("OMNI_CPI_REQUIRE_RUNTIMES").is_some()
}

/// Whether `program` is on PATH and, if a probe is given, that it succeeds. When it is missing
/// and runtimes are required, panics; otherwise prints a loud skip notice and returns false.
pub fn runtime_available(label: &str, probe: &[&str]) -> bool {
    let ok = Command::new(probe[0])
        .args(&probe[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if runtimes_required() {
        panic!("{label} is required (CI=true or OMNI_CPI_REQUIRE_RUNTIMES) but `{}` failed; run `cargo xtask test`, which installs it", probe.join(" "));
    }
    eprintln!("SKIPPED: {label} is not available (`{}` failed); `cargo xtask test` installs it", probe.join(" "));
    false
}

/// QEMU, qemu-img, socat and the `empty` base image that `cargo xtask test` prepares.
pub fn qemu_available() -> bool {
    runtime_available("QEMU", &["qemu-system-x86_64", "--version"])
        && runtime_available("qemu-img", &["qemu-img", "--version"])
        && runtime_available("socat", &["socat", "-V"])
        && runtime_available("the empty QEMU base image", &["test", "-f", "/var/lib/omni-cpi/qemu/images/empty.qcow2"])
}

/// A temporary directory only this user may enter (mode 0700), as the process CPI requires of its
/// state directory: `tempfile` creates directories with the umask's mode, usually 0755.
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    dir
}

/// A name no other test run or test in this run uses, so runs can share a runtime.
pub fn unique_name(kind: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("omni-test-{}-{kind}{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `podman system service` on a private unix socket, for the docker CLI. Stopped by PID on drop.
pub struct PodmanService {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl PodmanService {
    pub fn start() -> PodmanService {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("podman.sock");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service starts");
        let service = PodmanService { child, socket, _dir: dir };
        service.wait_ready();
        service
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ready = Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .env("DOCKER_HOST", self.docker_host())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("podman's Docker-compatible API did not answer on {} within 20 s", self.socket.display());
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// Stops a server a test started: SIGTERM by its PID, SIGKILL if it is still there after 5 s, then
/// reaps it. The PID cannot have been reused: the child is ours and unreaped until the end.
pub fn stop_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
