//! Runs one process the safe way: an argv (never a shell unless the argv says `/bin/sh -c`), a
//! cleared environment, an explicit working directory, its own process group, a deadline, and
//! bounded capture of stdout and stderr.
//!
//! The process gets descriptors 0, 1 and 2 and nothing else: every other descriptor the caller
//! had open (without close-on-exec) is marked close-on-exec in the child before it executes.
//!
//! Every process an action starts belongs to the group of the command's first process, which is
//! also made a child subreaper (see [`crate::process::tree`]). When the deadline passes, every
//! descendant of the first process is ended, whatever group or session it moved to (SIGTERM, a
//! grace period, SIGKILL), then the first process itself; an invocation marked `detach` limits this to
//! the process group, so what it started in its own session survives. When the command exits on
//! its own, whatever it left running in its group is killed too: an action's processes end with
//! the action. Programs that must outlive the call (container monitors such as conmon or
//! lxc-start's daemon) detach into their own group or session before the command exits, as they
//! all do, and are not touched.
//!
//! The group is only ever signaled while its leader is unreaped. A group's id is its leader's pid;
//! once the leader is reaped and the group is empty, the kernel may hand that pid to an unrelated
//! process that leads its own group (a shell, a container monitor), and a late `killpg` would kill
//! it. So we wait for the leader's exit through a pidfd, which leaves it a zombie holding its pid,
//! signal the group, and only then reap.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// How long a timed-out group gets between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);
/// How long the output pipes may stay open after the command exits, held by something it left
/// running, before that leftover is killed.
const DRAIN_GRACE: Duration = Duration::from_millis(250);
/// Bytes kept per stream; more is read and counted but dropped.
pub const DEFAULT_OUTPUT_LIMIT: usize = 4 * 1024 * 1024;

/// One process to run: what, with what, for how long.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `argv[0]` is the program: an absolute path, or a name looked up in `env`'s `PATH`.
    pub argv: Vec<String>,
    /// The complete environment of the process; nothing is inherited.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    pub kill_grace: Duration,
    /// Bytes kept per stream.
    pub output_limit: usize,
    pub stdin: Option<Vec<u8>>,
    /// At a timeout, end only the process group, not the processes that left it: the step is
    /// declared to start something that outlives it.
    pub detach: bool,
}

/// What a stream produced: the first `output_limit` bytes and how many there were in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Captured {
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub total_bytes: u64,
}

impl Captured {
    pub fn truncated(&self) -> bool {
        self.total_bytes > self.bytes.len() as u64
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The program as resolved on `PATH`.
    pub program: PathBuf,
    /// The exit code, or `None` when a signal ended the process.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Captured,
    pub stderr: Captured,
    pub duration: Duration,
    /// The deadline passed and the process group was killed.
    pub timed_out: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("program `{program}` was not found (searched PATH={path})")]
    NotFound { program: String, path: String },
    #[error("cannot run `{program}`: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("empty argv")]
    EmptyArgv,
    #[error("I/O error while running `{program}`: {source}")]
    Io { program: String, source: io::Error },
}

/// Finds `program` the way execvp would, in the given `PATH` value, without touching the host's.
pub fn resolve_program(program: &str, path: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs the invocation to completion or to its deadline. Never leaves a process of its group behind.
pub async fn run(invocation: &Invocation) -> Result<ExecOutput, ExecError> {
    let started = Instant::now();
    let name = invocation.argv.first().ok_or(ExecError::EmptyArgv)?;
    let path = invocation.env.iter().find(|(k, _)| k == "PATH").map_or("", |(_, v)| v.as_str());
    let program = resolve_program(name, path)
        .ok_or_else(|| ExecError::NotFound { program: name.clone(), path: path.to_string() })?;

    let mut child = crate::process::spawn::spawn(&crate::process::spawn::Spawn {
        program: &program,
        argv: &invocation.argv,
        env: &invocation.env,
        cwd: &invocation.cwd,
        stdin: invocation.stdin.is_some(),
    })
    .map_err(|error| match error {
        crate::process::spawn::SpawnError { step: Some(crate::process::spawn::Step::Execute), source }
            if source.kind() == io::ErrorKind::NotFound =>
        {
            ExecError::NotFound { program: name.clone(), path: path.to_string() }
        }
        other => ExecError::Spawn { program: name.clone(), source: io::Error::other(other.to_string()) },
    })?;
    let io_error = |source| ExecError::Io { program: name.clone(), source };
    // Until the leader is reaped (below, last), its pid names this group and no other.
    let group = Some(Pid::from_raw(child.id()));

    let stdout = Stream::spawn(child.stdout.take(), invocation.output_limit);
    let stderr = Stream::spawn(child.stderr.take(), invocation.output_limit);
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), invocation.stdin.clone()) {
        tokio::spawn(async move {
            // A command that exits without reading its input is not an error of ours.
            let _ = stdin.write_all(&input).await;
        });
    }

    let deadline = tokio::time::Instant::from_std(started + invocation.timeout);
    let timed_out = tokio::time::timeout_at(deadline, child.exited()).await.is_err();
    if timed_out {
        // First every descendant wherever it went (unless the step is declared `detach`),
        // then the group: SIGTERM, the grace period, SIGKILL.
        if !invocation.detach {
            crate::process::tree::end_descendants(child.id(), invocation.kill_grace).await;
            signal_group(group, Signal::SIGKILL);
        }
        signal_group(group, Signal::SIGTERM);
        if tokio::time::timeout(invocation.kill_grace, child.exited()).await.is_err() {
            signal_group(group, Signal::SIGKILL);
            child.exited().await.map_err(io_error)?;
        }
    }

    // The leader is gone; give its pipes a moment to drain, then end anything it left behind so
    // no process of this action outlives it. Something outside the group (a program that called
    // setsid) may still hold the pipes: after one more grace period the readers are abandoned and
    // what they captured is returned.
    let drained = tokio::time::timeout(DRAIN_GRACE, async {
        stdout.finished().await;
        stderr.finished().await;
    })
    .await
    .is_ok();
    signal_group(group, Signal::SIGKILL);
    // Only now may the pid go back to the kernel.
    let status = child.reap().map_err(io_error)?;
    if !drained {
        let _ = tokio::time::timeout(DRAIN_GRACE, async {
            stdout.finished().await;
            stderr.finished().await;
        })
        .await;
    }
    let stdout = stdout.take().map_err(io_error)?;
    let stderr = stderr.take().map_err(io_error)?;

    use std::os::unix::process::ExitStatusExt;
    Ok(ExecOutput {
        program,
        exit_code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        duration: started.elapsed(),
        timed_out,
    })
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        // ESRCH means the group is already empty, which is the goal.
        let _ = killpg(group, signal);
    }
}

/// One output stream read in the background into a shared buffer, so a reader that never sees
/// EOF can be abandoned without losing what it read.
struct Stream {
    captured: std::sync::Arc<std::sync::Mutex<io::Result<Captured>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Becomes true at EOF; its sender is dropped if the reader ends any other way.
    done: tokio::sync::watch::Receiver<bool>,
}

impl Stream {
    fn spawn(pipe: Option<impl AsyncRead + Unpin + Send + 'static>, limit: usize) -> Stream {
        let captured = std::sync::Arc::new(std::sync::Mutex::new(Ok(Captured::default())));
        let (done_tx, done) = tokio::sync::watch::channel(pipe.is_none());
        let task = pipe.map(|pipe| {
            let shared = captured.clone();
            tokio::spawn(async move {
                capture(pipe, limit, &shared).await;
                let _ = done_tx.send(true);
            })
        });
        Stream { captured, task, done }
    }

    /// Waits for EOF (or a read error). Woken by the reader itself: no polling, so a short
    /// command's output is ready the moment its pipes close.
    async fn finished(&self) {
        let mut done = self.done.clone();
        // An error means the reader ended without EOF (aborted): nothing more will come either.
        let _ = done.wait_for(|eof| *eof).await;
    }

    /// Stops reading and returns what was read.
    fn take(self) -> io::Result<Captured> {
        if let Some(task) = self.task {
            task.abort();
        }
        let mut guard = self.captured.lock().map_err(|_| io::Error::other("capture buffer poisoned"))?;
        std::mem::replace(&mut *guard, Ok(Captured::default()))
    }
}

/// Reads a stream to its end, keeping at most `limit` bytes. Reading on past the limit keeps the
/// writer from blocking on a full pipe; the total is reported so truncation is visible.
async fn capture(mut stream: impl AsyncRead + Unpin, limit: usize, shared: &std::sync::Mutex<io::Result<Captured>>) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = stream.read(&mut chunk).await;
        let Ok(mut guard) = shared.lock() else { return };
        let captured = match &mut *guard {
            Ok(captured) => captured,
            Err(_) => return,
        };
        match read {
            Ok(0) => return,
            Ok(n) => {
                captured.total_bytes += n as u64;
                let room = limit.saturating_sub(captured.bytes.len());
                captured.bytes.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) => {
                *guard = Err(e);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(script: &str) -> Invocation {
        Invocation {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: PathBuf::from("/"),
            timeout: Duration::from_secs(10),
            kill_grace: Duration::from_millis(500),
            output_limit: 1024,
            stdin: None,
            detach: false,
        }
    }

    /// Processes (zombies included) whose process group is `pgid`.
    fn group_members(pgid: i32) -> Vec<i32> {
        let mut members = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the parenthesised command name: state, ppid, pgrp, ...
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if rest.split_whitespace().nth(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) {
                members.push(pid);
            }
        }
        members
    }

    #[tokio::test]
    async fn captures_exit_code_and_both_streams() {
        let out = run(&invocation("echo out; echo err >&2; exit 3")).await.expect("runs");
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout.text(), "out\n");
        assert_eq!(out.stderr.text(), "err\n");
        assert!(!out.timed_out);
    }

    #[tokio::test]
    async fn environment_is_exactly_what_was_given() {
        std::env::set_var("OMNI_CPI_SHOULD_NOT_LEAK", "secret");
        let mut req = invocation("env");
        req.env.push(("GIVEN".into(), "yes".into()));
        let out = run(&req).await.expect("runs");
        let text = out.stdout.text();
        assert!(text.contains("GIVEN=yes"), "{text}");
        assert!(!text.contains("OMNI_CPI_SHOULD_NOT_LEAK"), "{text}");
    }

    #[tokio::test]
    async fn timeout_kills_a_forking_command_and_all_its_children() {
        // `$$` is the shell, the group leader, so it names the group every child inherits.
        let mut req = invocation("echo $$; sleep 301 & sleep 301 & (sleep 301 &) ; sleep 301");
        req.timeout = Duration::from_millis(300);
        let out = run(&req).await.expect("runs");
        assert!(out.timed_out);
        assert!(out.duration < Duration::from_secs(5), "{:?}", out.duration);
        let group: i32 = out.stdout.text().trim().parse().expect("pgid");
        wait_until_group_empty(group).await;
    }

    /// Pids of processes whose command line contains `needle`.
    fn processes_with(needle: &str) -> Vec<i32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) && process_state(pid) != Some('Z') {
                found.push(pid);
            }
        }
        found
    }

    async fn wait_until_gone(needle: &str) -> Vec<i32> {
        for _ in 0..100 {
            if processes_with(needle).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        processes_with(needle)
    }

    /// Leaving the process group (`setpgid`), the session (`setsid`), or the parent (a double
    /// fork) does not let a process outlive its step's timeout.
    #[tokio::test]
    async fn at_a_timeout_descendants_that_left_the_group_are_killed_too() {
        let mut req = invocation(
            "setsid sleep 311.1 & perl -e 'setpgrp(0,0); exec \"sleep\", \"311.2\"' & \
             (setsid sh -c 'trap \"\" TERM; sleep 311.3' &) ; sleep 311.4",
        );
        req.timeout = Duration::from_millis(500);
        req.kill_grace = Duration::from_millis(300);
        let out = run(&req).await.expect("runs");
        assert!(out.timed_out);
        for sleeper in ["sleep 311.1", "sleep 311.2", "sleep 311.3", "sleep 311.4"] {
            let left = wait_until_gone(sleeper).await;
            assert!(left.is_empty(), "`{sleeper}` ({left:?}) outlived the timeout");
        }
    }

    /// A call cancelled while its process runs (its future dropped, as a component's call
    /// timeout does) ends every descendant too, wherever it went.
    #[tokio::test]
    async fn a_cancelled_call_ends_every_descendant() {
        let req = invocation("setsid sleep 314.1 & (setsid sleep 314.2 &); sleep 314.3");
        let cancelled = tokio::time::timeout(Duration::from_millis(300), run(&req)).await;
        assert!(cancelled.is_err(), "still running when cancelled");
        for sleeper in ["sleep 314.1", "sleep 314.2", "sleep 314.3"] {
            let left = wait_until_gone(sleeper).await;
            assert!(left.is_empty(), "`{sleeper}` ({left:?}) outlived the cancelled call");
        }
    }

    /// An invocation marked `detach` keeps today's group-only kill: what it put in its own session
    /// survives the timeout, deliberately.
    #[tokio::test]
    async fn a_detached_invocation_keeps_what_it_started_in_its_own_session() {
        let mut req = invocation("setsid sleep 312.1 & sleep 312.2");
        req.timeout = Duration::from_millis(300);
        req.detach = true;
        let out = run(&req).await.expect("runs");
        assert!(out.timed_out);
        assert!(wait_until_gone("sleep 312.2").await.is_empty());
        let survivors = processes_with("sleep 312.1");
        for pid in &survivors {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        assert_eq!(survivors.len(), 1, "the detached sleeper survives");
    }

    /// A descriptor the caller left open without close-on-exec does not reach the child.
    #[tokio::test]
    async fn children_get_only_descriptors_0_1_and_2() {
        use std::os::fd::AsRawFd;
        let file = tempfile::tempfile().expect("temp file");
        let fd = file.as_raw_fd();
        // SAFETY: clears close-on-exec on a descriptor this test owns.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
        // Only the test builtin runs: no pipe or directory of the shell's own is open meanwhile.
        let script = format!("for fd in 0 1 2 {fd}; do [ -e /proc/$$/fd/$fd ] && echo $fd; done");
        let out = run(&invocation(&script)).await.expect("runs");
        assert_eq!(out.stdout.text().split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"], "descriptor {fd}");
        drop(file);
    }

    #[tokio::test]
    async fn a_command_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let mut req = invocation("trap '' TERM; sleep 300 & wait");
        req.timeout = Duration::from_millis(200);
        let out = run(&req).await.expect("runs");
        assert!(out.timed_out);
        assert_eq!(out.signal, Some(9));
    }

    #[tokio::test]
    async fn leftovers_of_a_command_that_exits_are_killed() {
        let req = invocation("echo $$; sleep 302 & sleep 302 >/dev/null 2>&1 & exit 0");
        let out = run(&req).await.expect("runs");
        assert_eq!(out.exit_code, Some(0));
        assert!(!out.timed_out);
        let group: i32 = out.stdout.text().trim().parse().expect("pgid");
        wait_until_group_empty(group).await;
    }

    /// Waits until no process, zombie or alive, is left in the group.
    async fn wait_until_group_empty(group: i32) {
        for _ in 0..100 {
            if group_members(group).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("processes {:?} of group {group} survived their action", group_members(group));
    }

    /// The state letter of `/proc/PID/stat` (`Z` for an unreaped zombie); None once reaped.
    fn process_state(pid: i32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    /// After the command exits, its group is killed to end leftovers. Were the leader reaped
    /// before that kill, its pid (the group's id) could go to a stranger leading its own group, a
    /// shell or a container monitor, and the kill would land there. The leader must still hold
    /// its pid, a zombie, for as long as the group may be signaled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_leaders_pid_is_held_until_its_group_has_been_signaled() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let leader_file = dir.path().join("leader");
        let holder_file = dir.path().join("holder");
        // A detached holder keeps the pipes open, so the call sits in its drain grace after the
        // leader exits: the window in which the pid must stay taken.
        let mut req = invocation("echo $$ > \"$1\"; setsid sh -c 'echo $$ > \"$1\"; exec sleep 2' sh \"$2\" & exit 0");
        req.argv.extend(["sh".into(), leader_file.display().to_string(), holder_file.display().to_string()]);
        let call = tokio::spawn(async move { run(&req).await });

        let mut leader = None;
        for _ in 0..200 {
            leader = std::fs::read_to_string(&leader_file).ok().and_then(|t| t.trim().parse::<i32>().ok());
            if leader.is_some_and(|pid| process_state(pid) != Some('S') && process_state(pid) != Some('R')) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let leader = leader.expect("the leader wrote its pid");
        let state_after_exit = process_state(leader);

        // Ask the kernel for the leader's pid next, as a busy machine eventually would, and start
        // a stranger leading its own group. Only a free pid can be handed out.
        // Writing ns_last_pid needs root; without it the stranger gets whatever pid comes next.
        let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", (leader - 1).to_string());
        let mut stranger =
            std::process::Command::new("sleep").arg("30").process_group(0).spawn().expect("spawn a stranger");
        let out = call.await.expect("join").expect("runs");
        let stranger_survived = stranger.try_wait().expect("try_wait").is_none();
        let stranger_pid = stranger.id() as i32;
        let _ = stranger.kill();
        let _ = stranger.wait();
        if let Some(holder) = std::fs::read_to_string(&holder_file).ok().and_then(|t| t.trim().parse::<i32>().ok()) {
            let _ = killpg(Pid::from_raw(holder), Signal::SIGKILL);
        }

        assert_eq!(out.exit_code, Some(0));
        // Only the stranger's fate is asserted: a slow observer may see the leader already reaped
        // (after the group kill, correctly), so its state is context, not a verdict.
        assert!(
            stranger_survived,
            "the group kill hit a stranger {stranger_pid} that took the pid {leader} (leader state after exit: {state_after_exit:?})"
        );
    }

    #[tokio::test]
    async fn a_detached_process_holding_the_pipes_does_not_hang_the_call() {
        // setsid puts the sleeper outside the group, so the group kill cannot end it; the call
        // must still return, with what was printed before.
        let req = invocation("echo before; setsid sleep 303 & sleep 0.1; exit 0");
        let started = Instant::now();
        let out = run(&req).await.expect("runs");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!((out.exit_code, out.stdout.text().as_str()), (Some(0), "before\n"));
        let _ = std::process::Command::new("pkill").args(["-f", "sleep 303"]).status();
    }

    #[tokio::test]
    async fn output_is_capped_and_truncation_reported() {
        let out = run(&invocation("head -c 100000 /dev/zero")).await.expect("runs");
        assert_eq!(out.stdout.bytes.len(), 1024);
        assert_eq!(out.stdout.total_bytes, 100_000);
        assert!(out.stdout.truncated());
    }

    #[tokio::test]
    async fn missing_program_is_a_typed_error() {
        let mut req = invocation("");
        req.argv = vec!["definitely-not-a-program".into()];
        assert!(matches!(run(&req).await, Err(ExecError::NotFound { .. })));
    }

    #[tokio::test]
    async fn feeds_stdin() {
        let mut req = invocation("cat");
        req.stdin = Some(b"hello".to_vec());
        assert_eq!(run(&req).await.expect("runs").stdout.text(), "hello");
    }
}
