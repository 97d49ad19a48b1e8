//! Starting one process as cheaply as `posix_spawn`, with what `posix_spawn` cannot do.
//!
//! Every process the host starts must (1) lead its own process group, (2) be a child subreaper
//! (so an orphan anywhere below it stays in its tree, see [`crate::process::tree`]), and (3) get
//! descriptors 0–2 only. (2) can only be done by the process itself, between fork and exec; the
//! standard library runs such code only through `pre_exec`, which makes it copy the whole host
//! with `fork` (about half a millisecond for a host with an engine loaded, more than the rest of a
//! spawn). So the child is made here the way `posix_spawn` makes it: `clone(CLONE_VM |
//! CLONE_VFORK)` on a small stack of its own, the host's thread suspended until the child has
//! executed the program or failed. Between the two, the child runs [`child_main`], which makes
//! only raw system calls on data prepared beforehand: no allocation, no lock, no panic.
//!
//! The child is reaped by [`Child::reap`] after [`Child::exited`] (a pidfd) reports its exit, so
//! its pid, which is its group's id, stays its own until then. A `Child` dropped unreaped (its
//! call was cancelled) kills its group and is reaped on a background thread.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// Size of the child's stack until it executes the program: a handful of system calls.
const CHILD_STACK: usize = 64 * 1024;

/// What to start.
pub struct Spawn<'a> {
    /// An absolute path: no lookup happens here.
    pub program: &'a Path,
    /// `argv[0]` included.
    pub argv: &'a [String],
    /// The complete environment.
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    /// Give the process a pipe on stdin (else `/dev/null`).
    pub stdin: bool,
}

/// A started process and the host's ends of its pipes.
pub struct Child {
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    reaped: bool,
}

/// Why a process did not start: the step of the child's set-up that failed (reported with its
/// errno through the error pipe), or the host's own preparation (`step: None`).
#[derive(Debug, thiserror::Error)]
#[error("{}{source}", step.map_or(String::new(), |s| format!("{} failed: ", s.describe())))]
pub struct SpawnError {
    pub step: Option<Step>,
    #[source]
    pub source: io::Error,
}

impl From<io::Error> for SpawnError {
    fn from(source: io::Error) -> Self {
        SpawnError { step: None, source }
    }
}

/// A step of the child's set-up, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Signals = 1,
    Group,
    Subreaper,
    Stdio,
    Directory,
    Execute,
}

impl Step {
    fn from_code(code: u32) -> Step {
        match code {
            1 => Step::Signals,
            2 => Step::Group,
            3 => Step::Subreaper,
            4 => Step::Stdio,
            5 => Step::Directory,
            _ => Step::Execute,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::Signals => "resetting signals",
            Step::Group => "creating its process group",
            Step::Subreaper => "becoming a child subreaper",
            Step::Stdio => "connecting stdin/stdout/stderr",
            Step::Directory => "entering its working directory",
            Step::Execute => "executing the program",
        }
    }
}

/// Everything the child reads, laid out before `clone`: the child only follows these pointers.
struct ChildSetup {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [RawFd; 3],
    error_pipe: RawFd,
    descriptor_limit: i32,
    /// The descriptor limit the program gets, when this process raised its own.
    program_descriptor_limit: Option<libc::rlimit>,
}

/// The soft descriptor limit this process had before a server raised it (0: never raised).
static ORIGINAL_DESCRIPTOR_SOFT_LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Says that this process raised its soft descriptor limit from `original` (`omni-cpi serve`
/// does): programs it starts get `original` back, as Go's runtime does for its children, so a
/// program written for the usual 1024 (a `select(2)` loop, a close-every-descriptor loop) runs
/// as it would anywhere else.
pub fn restore_descriptor_limit_for_programs(original: u64) {
    ORIGINAL_DESCRIPTOR_SOFT_LIMIT.store(original, std::sync::atomic::Ordering::Relaxed);
}

/// The limit a program should get, if this process raised its own.
fn program_descriptor_limit() -> Option<libc::rlimit> {
    let original = ORIGINAL_DESCRIPTOR_SOFT_LIMIT.load(std::sync::atomic::Ordering::Relaxed);
    if original == 0 {
        return None;
    }
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some(libc::rlimit { rlim_cur: original.min(limit.rlim_max), rlim_max: limit.rlim_max })
}

/// A pipe whose both ends are close-on-exec: `(read, write)`.
fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// Starts the process. Must be called inside a tokio runtime (the pipes register with it).
pub fn spawn(request: &Spawn<'_>) -> Result<Child, SpawnError> {
    // Everything the child needs, allocated now: it must not allocate.
    let program = c_string(request.program.as_os_str().as_bytes())?;
    let argv: Vec<CString> = request.argv.iter().map(|a| c_string(a.as_bytes())).collect::<io::Result<_>>()?;
    let env: Vec<CString> =
        request.env.iter().map(|(k, v)| c_string(format!("{k}={v}").as_bytes())).collect::<io::Result<_>>()?;
    let cwd = c_string(OsStr::new(request.cwd).as_bytes())?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());

    let (stdin_child, stdin_host) = if request.stdin {
        let (read, write) = pipe_cloexec()?;
        (read, Some(write))
    } else {
        let null = std::fs::File::open("/dev/null")?;
        (OwnedFd::from(null), None)
    };
    let (stdout_host, stdout_child) = pipe_cloexec()?;
    let (stderr_host, stderr_child) = pipe_cloexec()?;
    let (error_read, error_write) = pipe_cloexec()?;

    let setup = ChildSetup {
        program: program.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: env_ptrs.as_ptr(),
        cwd: cwd.as_ptr(),
        stdio: [stdin_child.as_raw_fd(), stdout_child.as_raw_fd(), stderr_child.as_raw_fd()],
        error_pipe: error_write.as_raw_fd(),
        descriptor_limit: descriptor_limit(),
        program_descriptor_limit: program_descriptor_limit(),
    };
    let mut stack = vec![0u8; CHILD_STACK];
    let pid = clone_child(&setup, &mut stack)?;

    // The child has executed the program or exited: its copies of the descriptors are closed
    // (close-on-exec) or gone, so the error pipe reads EOF unless set-up failed.
    drop((stdin_child, stdout_child, stderr_child, error_write));
    let mut report = [0u8; 8];
    let read = read_full(&error_read, &mut report);
    if read == 8 {
        let step = u32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
        let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
        wait_blocking(pid);
        return Err(SpawnError { step: Some(Step::from_code(step)), source: io::Error::from_raw_os_error(errno) });
    }

    let pidfd = match rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::other("clone returned no pid"))
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).map_err(io::Error::from))
    {
        Ok(fd) => fd,
        Err(e) => {
            // SAFETY: plain signal and wait calls on our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait_blocking(pid);
            return Err(io::Error::new(e.kind(), format!("pidfd_open (Linux 5.3 or later is needed): {e}")).into());
        }
    };
    // SAFETY: an OwnedFd is open until dropped and always returns the same raw fd, and the
    // AsyncFd owns it for its whole life, which is what registration requires.
    let pidfd = match unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) } {
        Ok(registered) => registered,
        Err(e) => {
            // SAFETY: plain signal and wait calls on our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait_blocking(pid);
            return Err(io::Error::from(e).into());
        }
    };
    // From here on, dropping `child` ends the process and reaps it.
    live().insert(pid);
    let mut child = Child { pid, pidfd, stdin: None, stdout: None, stderr: None, reaped: false };
    child.stdout = Some(pipe::Receiver::from_owned_fd(stdout_host)?);
    child.stderr = Some(pipe::Receiver::from_owned_fd(stderr_host)?);
    if let Some(write) = stdin_host {
        child.stdin = Some(pipe::Sender::from_owned_fd(write)?);
    }
    Ok(child)
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reads into the unfilled rest of `buf`.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        match n {
            n if n > 0 => done += n as usize,
            0 => break,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            _ => break,
        }
    }
    done
}

fn wait_blocking(pid: i32) -> Option<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Some(status);
        }
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// The highest descriptor number this process may hold (the fallback of the child's
/// close-on-exec loop on kernels without `close_range`).
fn descriptor_limit() -> i32 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        i32::try_from(limit.rlim_cur).unwrap_or(i32::MAX)
    } else {
        1 << 20
    }
}

/// Runs `clone(CLONE_VM | CLONE_VFORK)` with every signal blocked in this thread (so no handler
/// of the host runs on the child's stack), and returns the child's pid once it has executed
/// the program or exited.
fn clone_child(setup: &ChildSetup, stack: &mut [u8]) -> io::Result<i32> {
    // The stack grows down from its (16-byte aligned) top.
    let top = stack.as_mut_ptr_range().end as usize & !15;
    // SAFETY: sigset_t values are plain data initialised by sigfillset / pthread_sigmask.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: blocking signals in this thread, restored below whatever clone did.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
    }
    // SAFETY: the child runs `child_main` on its own stack with a shared address space, reading
    // only `setup` (alive until clone returns: CLONE_VFORK suspends this thread until the child
    // executes or exits) and making system calls on it. It never returns into Rust code of ours.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            setup as *const ChildSetup as *mut libc::c_void,
        )
    };
    let error = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(error);
    }
    Ok(pid)
}

/// The child, between clone and exec. Only async-signal-safe system calls on `setup`; on any
/// failure the step and errno go to the error pipe and the child exits.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildSetup` the parent keeps alive until this child execs or exits.
    let setup = unsafe { &*(arg as *const ChildSetup) };
    // SAFETY: each call below is a system call on plain data; see the module documentation.
    unsafe {
        let fail = |step: Step| -> libc::c_int {
            let errno = *libc::__errno_location();
            let mut report = [0u8; 8];
            report[..4].copy_from_slice(&(step as u32).to_ne_bytes());
            report[4..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(setup.error_pipe, report.as_ptr().cast(), report.len());
            libc::_exit(127)
        };
        // Handlers of the host must not run here, and what the host ignores (SIGPIPE) the
        // program must not: every signal back to its default, then none blocked.
        // Linux numbers signals 1 to 64.
        for signal in 1..=64 {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) == 0 && current.sa_sigaction != libc::SIG_DFL {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            return fail(Step::Signals);
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(Step::Group);
        }
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return fail(Step::Subreaper);
        }
        for (target, &fd) in setup.stdio.iter().enumerate() {
            let target = target as RawFd;
            let ok =
                if fd == target { libc::fcntl(fd, libc::F_SETFD, 0) == 0 } else { libc::dup2(fd, target) == target };
            if !ok {
                return fail(Step::Stdio);
            }
        }
        // Every other descriptor closes at exec: what the host's caller left open never
        // reaches the program. (Closing now would also close the error pipe.)
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) != 0 {
            for fd in 3..setup.descriptor_limit {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        if let Some(limit) = &setup.program_descriptor_limit {
            // Best effort: lowering a soft limit below the hard one does not fail in practice,
            // and a program with the server's higher limit still runs correctly.
            libc::setrlimit(libc::RLIMIT_NOFILE, limit);
        }
        if libc::chdir(setup.cwd) != 0 {
            return fail(Step::Directory);
        }
        libc::execve(setup.program, setup.argv, setup.envp);
        fail(Step::Execute)
    }
}

impl Child {
    pub fn id(&self) -> i32 {
        self.pid
    }

    /// Resolves when the process has exited; it stays unreaped (its pid its own) until
    /// [`Child::reap`]. Readiness is never cleared: an exit is final.
    pub async fn exited(&self) -> io::Result<()> {
        self.pidfd.readable().await.map(drop)
    }

    /// Collects the exit status. Call after [`Child::exited`]; it then does not block.
    pub fn reap(&mut self) -> io::Result<ExitStatus> {
        if self.reaped {
            return Err(io::Error::other("already reaped"));
        }
        // Out of the registry while the pid is still ours: after the wait it may name another.
        live().remove(&self.pid);
        let status = wait_blocking(self.pid).ok_or_else(io::Error::last_os_error)?;
        self.reaped = true;
        Ok(ExitStatus::from_raw(status))
    }
}

/// The children spawned and not yet reaped: while a pid is here it names our child (and its
/// group), so [`end_all_now`] may signal it without hitting a stranger.
fn live() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<i32>> {
    static LIVE: std::sync::Mutex<std::collections::BTreeSet<i32>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Ends every process this host started and has not reaped yet, with all their descendants and
/// groups, at once (SIGKILL): for a server whose shutdown deadline passed with calls in flight.
/// The owners of those children still reap them. Returns how many leaders were signalled.
pub fn end_all_now() -> usize {
    // Held throughout: no pid can be reaped (and reused) while it is signalled.
    let pids = live();
    for &pid in pids.iter() {
        crate::process::tree::kill_descendants_now(pid);
        // SAFETY: plain signals to our own unreaped child and its group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
    pids.len()
}

impl Drop for Child {
    /// A call dropped while its process runs (cancelled, e.g. a component's call timeout): on a
    /// thread of its own, every descendant goes as at a timeout, then the group, and the leader is
    /// reaped so no zombie stays behind.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let pid = self.pid;
        std::thread::spawn(move || {
            // The leader is unreaped until the end, so its pid still names it and its group.
            crate::process::tree::kill_descendants_now(pid);
            // SAFETY: plain signals to our own unreaped child and its group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
            live().remove(&pid);
            wait_blocking(pid)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn spawn_sh(script: &str, cwd: &str) -> Result<Child, SpawnError> {
        let argv: Vec<String> = vec!["sh".into(), "-c".into(), script.into()];
        spawn(&Spawn {
            program: Path::new("/bin/sh"),
            argv: &argv,
            env: &[("PATH".into(), "/usr/bin:/bin".into())],
            cwd: Path::new(cwd),
            stdin: false,
        })
    }

    #[tokio::test]
    async fn runs_a_program_and_reports_its_status_and_output() {
        let mut child = spawn_sh("echo $$ $(ps -o pgid= -p $$) $PWD; exit 3", "/tmp").expect("spawns");
        let mut out = String::new();
        child.stdout.take().expect("stdout").read_to_string(&mut out).await.expect("reads");
        child.exited().await.expect("exits");
        let status = child.reap().expect("reaps");
        assert_eq!(status.code(), Some(3));
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words.len(), 3, "{out}");
        assert_eq!(words[0], words[1], "it leads its own process group");
        assert_eq!(words[2], "/tmp");
    }

    #[tokio::test]
    async fn a_failed_set_up_is_an_error_naming_the_step() {
        let err = spawn_sh("true", "/no/such/dir").err().expect("fails");
        assert_eq!(err.step, Some(Step::Directory), "{err}");
        assert!(err.to_string().contains("working directory"), "{err}");
        let argv = vec!["x".to_string()];
        let err = spawn(&Spawn {
            program: Path::new("/no/such/program"),
            argv: &argv,
            env: &[],
            cwd: Path::new("/"),
            stdin: false,
        })
        .err()
        .expect("fails");
        assert_eq!((err.step, err.source.kind()), (Some(Step::Execute), io::ErrorKind::NotFound), "{err}");
    }

    #[tokio::test]
    async fn the_child_starts_with_default_signal_dispositions() {
        // Field 4 of /proc/self/status lines: SigIgn must not include SIGPIPE (bit 13).
        let mut child =
            spawn_sh("grep -E '^SigIgn' /proc/$$/status; grep -c . /proc/$$/status >/dev/null", "/").expect("spawns");
        let mut out = String::new();
        child.stdout.take().expect("stdout").read_to_string(&mut out).await.expect("reads");
        child.exited().await.expect("exits");
        child.reap().expect("reaps");
        let mask = u64::from_str_radix(out.split_whitespace().nth(1).expect("mask"), 16).expect("hex");
        assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE is not ignored: {out}");
    }
}
