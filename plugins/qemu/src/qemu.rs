//! Every program the plugin runs, with exactly the argument shapes `describe` requests. Each runs
//! in a working directory inside the state root (a VM's, a disk's or a snapshot's directory), so
//! the files it touches are fixed relative names and its arguments are fixed except for a few
//! values: the VM's memory, CPUs and name, a disk's size and the base image of a boot overlay.

use std::path::Path;
use std::time::{Duration, Instant};

use omni_cpi_sdk::prelude::*;

use crate::qmp::{self, Probe};
use crate::store::{self, VmRecord, BOOT_DISK, CONSOLE_LOG, DISK_FILE, PIDFILE, QMP_SOCKET, SNAPSHOT_FILE};
use crate::{ACCEL, MAX_STOP_WAIT_SECS, STOP_WAIT_SECS, STOP_WAIT_SETTING};

/// Arguments of `qemu-system-x86_64` for a VM: q35 under TCG, no defaults, no display, no network;
/// the boot overlay as a virtio disk; a virtio-scsi controller for disks; pidfile, QMP socket and
/// serial console in the working directory. `-S` keeps it paused until the attached disks are
/// plugged in over QMP; `-daemonize` detaches it into a session of its own, so it outlives the
/// call (the host ends the process group of every exec).
pub fn launch_shape(memory_mb: &str, cpus: &str, name: &str) -> Vec<String> {
    let machine = format!("q35,accel={ACCEL}");
    let qmp = format!("unix:{QMP_SOCKET},server=on,wait=off");
    let serial = format!("file:{CONSOLE_LOG}");
    let drive = format!("file={BOOT_DISK},format=qcow2,if=virtio,id=boot");
    [
        "-machine",
        &machine,
        "-m",
        memory_mb,
        "-smp",
        cpus,
        "-nodefaults",
        "-display",
        "none",
        "-nic",
        "none",
        "-name",
        name,
        "-pidfile",
        PIDFILE,
        "-qmp",
        &qmp,
        "-serial",
        &serial,
        "-drive",
        &drive,
        "-device",
        "virtio-scsi-pci,id=omni-scsi",
        "-S",
        "-daemonize",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `qemu-img` creating a VM's boot disk: a qcow2 overlay over the base image (an absolute path).
pub fn overlay_shape(base: &str) -> Vec<String> {
    strings(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, BOOT_DISK])
}

/// `qemu-img` creating an empty disk; `--` keeps the size from being read as an option.
pub fn disk_shape(size: &str) -> Vec<String> {
    strings(&["create", "-q", "-f", "qcow2", "--", DISK_FILE, size])
}

/// `qemu-img` copying a disk into a snapshot, run in the snapshot's directory
/// (`disks/DISK/snapshots/SNAP`). `-U` (no lock) only for a disk a live VM holds, which is paused.
pub fn convert_shape(force_share: bool) -> Vec<String> {
    let source = format!("../../{DISK_FILE}");
    let mut args = vec!["convert", "-q"];
    if force_share {
        args.push("-U");
    }
    args.extend(["-f", "qcow2", "-O", "qcow2", &source, SNAPSHOT_FILE]);
    strings(&args)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The exec requests of `describe`: each function here uses one of these shapes.
pub fn exec_requests() -> Vec<ExecRequest> {
    let request = |program: &str, args: Vec<String>| ExecRequest { program: program.into(), args };
    vec![
        request("qemu-system-x86_64", launch_shape(VALUE, VALUE, VALUE)),
        request("qemu-img", overlay_shape(VALUE)),
        request("qemu-img", disk_shape(VALUE)),
        request("qemu-img", convert_shape(false)),
        request("qemu-img", convert_shape(true)),
        request("socat", qmp::socat_args()),
    ]
}

fn program(program: &str, args: Vec<String>, cwd: &Path, timeout_ms: Option<u32>) -> CpiResult<Output> {
    run(&Command {
        program: program.into(),
        args,
        env: Vec::new(),
        cwd: Some(cwd.to_string_lossy().into_owned()),
        stdin: None,
        timeout_ms,
    })
}

/// A failed program as a CPI error: its stderr lines, `timeout` when it timed out, `in-use` when
/// an image is locked by another process.
fn failure(what: &str, out: &Output) -> CpiError {
    if out.timed_out {
        return CpiError::new(ErrorKind::Timeout, format!("qemu_wasm_cpi: {what}: timed out"));
    }
    let stderr = out.stderr_text();
    let mut reason: String = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .take(600)
        .collect();
    if reason.is_empty() {
        reason = out.exit_code.map_or("killed by a signal".to_string(), |c| format!("exit status {c}"));
    }
    let kind =
        if stderr.contains("Failed to get") && stderr.contains("lock") { ErrorKind::InUse } else { ErrorKind::Failed };
    CpiError::new(kind, format!("qemu_wasm_cpi: {what}: {reason}"))
}

/// Runs qemu-img in `dir`, which must then hold `file`. The check catches a run that reported
/// success without creating it (a dry run answers every exec with an empty success: the caller
/// then rolls back what it prepared, so a dry run leaves nothing behind).
fn qemu_img(what: &str, args: Vec<String>, dir: &Path, file: &str) -> CpiResult<()> {
    let out = program("qemu-img", args, dir, None)?;
    if !out.success() {
        return Err(failure(what, &out));
    }
    if !store::exists(&dir.join(file))? {
        return Err(CpiError::new(
            ErrorKind::Failed,
            format!("qemu_wasm_cpi: {what}: qemu-img succeeded but {} does not exist", dir.join(file).display()),
        ));
    }
    Ok(())
}

/// Creates the boot overlay of a VM in its directory.
pub fn create_overlay(vm: &str, dir: &Path, image: &str) -> CpiResult<()> {
    let base = store::image_file(image);
    let what = format!("cannot create the boot disk of vm {vm}");
    qemu_img(&what, overlay_shape(&base.to_string_lossy()), dir, BOOT_DISK)
}

/// Creates an empty disk of `size_mb` MiB in the disk's directory.
pub fn create_disk_file(disk: &str, dir: &Path, size_mb: u64) -> CpiResult<()> {
    qemu_img(&format!("cannot create disk {disk}"), disk_shape(&format!("{size_mb}M")), dir, DISK_FILE)
}

/// Copies a disk into the snapshot directory `dir`.
pub fn convert(disk: &str, dir: &Path, force_share: bool) -> CpiResult<()> {
    qemu_img(&format!("cannot copy disk {disk}"), convert_shape(force_share), dir, SNAPSHOT_FILE)
}

/// Starts the VM of `record`, which must not run: QEMU daemonizes paused, its attached disks are
/// plugged in over QMP, then it runs. Whatever fails, no QEMU is left behind.
pub fn launch(record: &VmRecord) -> CpiResult<()> {
    let vm = &record.name;
    let dir = store::vm_dir(vm);
    clear_runtime_files(&dir)?;
    let args = launch_shape(&record.memory_mb.to_string(), &record.cpus.to_string(), vm);
    let out = program("qemu-system-x86_64", args, &dir, Some(30_000))?;
    if !out.success() {
        // A QEMU that got far enough to daemonize is stopped (it may hold the pidfile).
        let _ = stop(vm, &dir);
        return Err(failure(&format!("cannot start vm {vm}"), &out));
    }
    let mut plug = Vec::new();
    for (disk, target) in &record.disks {
        plug.push(qmp::blockdev_add(*target, &store::disk_dir(disk).join(DISK_FILE)));
        plug.push(qmp::device_add(*target));
    }
    let setup = || -> CpiResult<()> {
        if !plug.is_empty() {
            qmp::execute(vm, &dir, "plugging in the attached disks", &plug)?;
        }
        qmp::execute(vm, &dir, "cont", &[qmp::simple("cont")])?;
        Ok(())
    };
    if let Err(mut e) = setup() {
        if e.kind == ErrorKind::InvalidState {
            e = CpiError::new(ErrorKind::Failed, format!("qemu_wasm_cpi: vm {vm} exited right after it started"));
        }
        if let Err(stop_error) = stop(vm, &dir) {
            e.message = format!("{}; and it could not be stopped: {}", e.message, stop_error.message);
        }
        return Err(e);
    }
    Ok(())
}

/// Powers the VM off: QMP `quit` (QEMU flushes and closes its disks, then exits), then waits
/// until it is gone. Stopping a VM that does not run succeeds.
pub fn stop(vm: &str, dir: &Path) -> CpiResult<()> {
    if qmp::probe(vm, dir)? != Probe::Absent {
        // Whatever the reply (none when it is exiting already), wait for the process to end.
        qmp::session(vm, dir, &[qmp::simple("quit")])?;
        wait_gone(vm, dir)?;
    }
    clear_runtime_files(dir)
}

/// Waits until the VM's QEMU has exited. QEMU removes its pidfile as the last thing it does,
/// after closing its disks (releasing their locks) and sockets, so a vanished pidfile is the
/// signal; watching it costs no exec. Past the deadline the QMP socket decides (it refuses
/// connections once QEMU is gone, e.g. killed without removing its pidfile). Without `kill` (not
/// granted), a QEMU that does not exit is reported with its pid.
fn wait_gone(vm: &str, dir: &Path) -> CpiResult<()> {
    if dry_run() {
        return Ok(());
    }
    let wait_secs = stop_wait_secs()?;
    let deadline = Instant::now() + Duration::from_secs(wait_secs);
    while Instant::now() < deadline {
        if !store::exists(&dir.join(PIDFILE))? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if qmp::probe(vm, dir)? == Probe::Absent {
        return Ok(());
    }
    let pid = pid(dir)?.map_or("unknown".to_string(), |p| p.to_string());
    Err(CpiError::new(
        ErrorKind::Failed,
        format!(
            "qemu_wasm_cpi: vm {vm} still runs {wait_secs} s after QMP quit (QEMU pid {pid}); \
             end it with `kill -KILL {pid}`, then retry"
        ),
    ))
}

/// Seconds `stop_vm` waits for QEMU to exit: the operator's `stop_wait_secs` setting or the default.
pub fn stop_wait_secs() -> CpiResult<u64> {
    let Some(text) = setting(STOP_WAIT_SETTING) else { return Ok(STOP_WAIT_SECS) };
    match text.trim().parse::<u64>() {
        Ok(secs) if (1..=MAX_STOP_WAIT_SECS).contains(&secs) => Ok(secs),
        _ => Err(CpiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "qemu_wasm_cpi: setting `{STOP_WAIT_SETTING}` is {text:?}, not a whole number of seconds from 1 to \
                 {MAX_STOP_WAIT_SECS}; fix it in the policy's [plugins.NAME.settings]"
            ),
        )),
    }
}

/// Removes the pidfile and socket a QEMU that no longer runs left behind.
fn clear_runtime_files(dir: &Path) -> CpiResult<()> {
    store::remove_file(&dir.join(PIDFILE))?;
    store::remove_file(&dir.join(QMP_SOCKET))
}

/// QEMU's pid from its pidfile, if there is one.
pub fn pid(dir: &Path) -> CpiResult<Option<u32>> {
    Ok(store::read_text(&dir.join(PIDFILE))?.and_then(|t| t.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fill_only_their_values() {
        let args = launch_shape("64", "1", "vm1");
        let pattern = launch_shape(VALUE, VALUE, VALUE);
        assert_eq!(args.len(), pattern.len());
        let differing: Vec<(&String, &String)> = args.iter().zip(&pattern).filter(|(a, p)| a != p).collect();
        assert_eq!(differing.len(), 3, "{differing:?}");
        assert!(differing.iter().all(|(_, p)| *p == VALUE));
        assert_eq!(args.last().map(String::as_str), Some("-daemonize"));
        assert!(args.contains(&"unix:omni-qemu-qmp.sock,server=on,wait=off".to_string()));
        assert_eq!(disk_shape("16M")[4], "--");
        assert_eq!(convert_shape(true)[2], "-U");
        assert!(!convert_shape(false).contains(&"-U".to_string()));
        assert_eq!(exec_requests().len(), 6);
    }
}
