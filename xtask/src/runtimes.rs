//! Installs and prepares the real runtimes the tests use (the list is in README, "Set-up"):
//! podman (with runc, cgroupfs and a local busybox image, since no registry is reachable), the
//! docker CLI (talks to podman's Docker-compatible socket, started by the tests themselves), and
//! LXC with its busybox template. Idempotent: it only does what is missing.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{in_ci, run_command};

pub const BUSYBOX_IMAGE: &str = "localhost/busybox:latest";
/// The busybox root filesystem: the runc plugin's image `busybox`, and what the podman image is
/// imported from.
pub const BUSYBOX_ROOTFS: &str = "/var/lib/omni-cpi/images/busybox";

/// Program → Debian package that provides it.
const PROGRAMS: &[(&str, &str)] = &[
    ("podman", "podman"),
    ("runc", "runc"),
    ("lxc-create", "lxc"),
    ("docker", "docker.io"),
    // Bare metal: an IPMI client and a simulated BMC.
    ("ipmitool", "ipmitool"),
    ("ipmi_sim", "openipmi"),
    // `omni-cpi serve`'s tests: a real HTTP client, a caller of another uid, process lookups.
    ("curl", "curl"),
    ("setpriv", "util-linux"),
    ("pgrep", "procps"),
];

/// Files that must exist → Debian package that provides them.
const FILES: &[(&str, &str)] = &[
    ("/bin/busybox", "busybox-static"),
    ("/usr/share/lxc/templates/lxc-busybox", "lxc-templates"),
    ("/usr/bin/newuidmap", "uidmap"),
];

/// podman's defaults fail here (crun cannot use hybrid cgroups; the default ulimits exceed the
/// hard limit), so the tests' podman uses runc, cgroupfs and lower limits.
const CONTAINERS_CONF: &str = r#"# Written by `cargo xtask test` for omni-cpi's tests (see xtask/src/runtimes.rs).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
"#;

pub fn ensure(_root: &Path) -> Result<()> {
    println!("== checking runtimes ==");
    install_missing_packages()?;
    install_qemu()?;
    write_containers_conf()?;
    prepare_busybox_rootfs()?;
    // The runc plugin's state root, granted at the same path (plugins/runc/policy.toml).
    std::fs::create_dir_all("/var/lib/omni-cpi/runc").context("creating /var/lib/omni-cpi/runc")?;
    import_busybox_image()?;
    prepare_qemu_images()?;
    crate::iaas::ensure()?;
    println!(
        "runtimes ready: podman, runc, docker CLI, LXC, QEMU, govc + vcsim, moto + aws CLI, ipmitool + ipmi_sim, \
         image {BUSYBOX_IMAGE}"
    );
    Ok(())
}

fn on_path(program: &str) -> bool {
    Command::new("sh").args(["-c", "command -v \"$1\" >/dev/null", "sh", program]).status().is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn install_missing_packages() -> Result<()> {
    let mut missing: Vec<&str> = PROGRAMS.iter().filter(|(p, _)| !on_path(p)).map(|(_, pkg)| *pkg).collect();
    missing.extend(FILES.iter().filter(|(f, _)| !Path::new(f).exists()).map(|(_, pkg)| *pkg));
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        let message = format!("missing packages {missing:?}, and installing them needs root (apt-get)");
        if in_ci() {
            bail!("{message}");
        }
        println!("warning: {message}; tests that need them will fail");
        return Ok(());
    }
    println!("installing {}", missing.join(" "));
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get").args(["install", "-y", "-qq"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get could not install the runtimes the tests need")
}

fn write_containers_conf() -> Result<()> {
    let path = Path::new("/etc/containers/containers.conf");
    if path.exists() {
        return Ok(());
    }
    if !is_root() {
        bail!("{} is missing and writing it needs root", path.display());
    }
    std::fs::create_dir_all("/etc/containers")?;
    std::fs::write(path, CONTAINERS_CONF).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// A root filesystem of busybox and its applets; no registry is reachable, so images are made here.
fn prepare_busybox_rootfs() -> Result<()> {
    let rootfs = Path::new(BUSYBOX_ROOTFS);
    if rootfs.join("bin/sh").exists() {
        return Ok(());
    }
    for dir in ["bin", "tmp", "etc", "proc", "sys", "dev", "root", "data"] {
        std::fs::create_dir_all(rootfs.join(dir)).with_context(|| format!("creating {}", rootfs.display()))?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("copying /bin/busybox")?;
    let applets = Command::new("/bin/busybox").arg("--list").output().context("busybox --list")?;
    for applet in String::from_utf8_lossy(&applets.stdout).lines().filter(|a| *a != "busybox") {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link)?;
        }
    }
    println!("prepared {BUSYBOX_ROOTFS}");
    Ok(())
}

/// The podman image is the same root filesystem, imported.
fn import_busybox_image() -> Result<()> {
    let exists = Command::new("podman")
        .args(["image", "exists", BUSYBOX_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return Ok(());
    }
    let tar = std::env::temp_dir().join(format!("omni-cpi-busybox-{}.tar", std::process::id()));
    run_command(Command::new("tar").arg("-C").arg(BUSYBOX_ROOTFS).arg("-cf").arg(&tar).arg("."))?;
    run_command(Command::new("podman").arg("import").arg(&tar).arg(BUSYBOX_IMAGE).stdout(Stdio::null()))?;
    std::fs::remove_file(&tar)?;
    println!("imported {BUSYBOX_IMAGE}");
    Ok(())
}

/// QEMU for the director CPIs. Debian's bookworm qemu-system-x86 (7.2) conflicts with a newer
/// qemu-utils from bookworm-backports (preinstalled on some machines), so on that conflict the
/// system emulator comes from backports too.
fn install_qemu() -> Result<()> {
    if on_path("qemu-system-x86_64") && on_path("qemu-img") && on_path("socat") {
        return Ok(());
    }
    if !is_root() {
        let message = "QEMU (qemu-system-x86, qemu-utils, socat) is missing and installing it needs root";
        if in_ci() {
            bail!("{message}");
        }
        println!("warning: {message}; the QEMU tests will fail");
        return Ok(());
    }
    println!("installing QEMU");
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    let plain = Command::new("apt-get")
        .args(["install", "-y", "-qq", "qemu-system-x86", "qemu-utils", "socat"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if plain {
        return Ok(());
    }
    let codename = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_string))
        .unwrap_or_default();
    if codename.is_empty() {
        bail!("cannot install qemu-system-x86 and cannot tell the Debian release to use its backports");
    }
    let backports = format!("{codename}-backports");
    std::fs::write(
        "/etc/apt/sources.list.d/omni-cpi-backports.list",
        format!("deb http://deb.debian.org/debian {backports} main\n"),
    )?;
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "-t", &backports, "qemu-system-x86", "qemu-utils", "socat"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("installing QEMU from backports")
}

/// The QEMU CPIs' base image `empty`: a blank 64 MiB disk (a VM boots into its firmware and idles).
fn prepare_qemu_images() -> Result<()> {
    // The QEMU component's state directory, granted by plugins/qemu/policy.toml.
    std::fs::create_dir_all("/var/lib/omni-cpi/qemu-component").context("creating /var/lib/omni-cpi/qemu-component")?;
    let images = Path::new("/var/lib/omni-cpi/qemu/images");
    let empty = images.join("empty.qcow2");
    if empty.exists() || !on_path("qemu-img") {
        return Ok(());
    }
    std::fs::create_dir_all(images)?;
    run_command(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&empty).arg("64M"))
}
