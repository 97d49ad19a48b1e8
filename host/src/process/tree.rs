//! The descendants of a step's first process, found through `/proc`, and how they are ended at a
//! timeout.
//!
//! A process group is not a boundary: any process may call `setpgid` or `setsid` and leave it, so
//! a group kill alone lets a grandchild outlive its timeout. What every descendant keeps is its
//! place in the process tree, as long as no ancestor between it and the step's first process dies
//! first. The first process is therefore made a *child subreaper* before it executes (the setting
//! survives `execve`): an orphan anywhere below it is re-parented to it, not to init, so while it
//! lives, walking parent links from `/proc` finds every descendant, whatever group or session it
//! moved to.
//!
//! At a timeout the first process is stopped (it cannot exit, so the tree stays whole), the
//! descendants get SIGTERM and a grace period, then SIGKILL, repeated until none is left (a
//! process may fork while we kill); the first process is killed last.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How often the tree is walked again while descendants are dying.
const POLL: Duration = Duration::from_millis(20);
/// Kill rounds before giving up on a tree that keeps forking (each round kills what it finds).
const MAX_KILL_ROUNDS: usize = 200;

/// One line of `/proc/PID/stat` that matters here.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    ppid: i32,
    /// `Z` for a zombie: dead, only waiting for its parent to reap it.
    state: char,
}

fn read_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything, so parse after the last `)`.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(ProcStat { ppid, state })
}

/// Every living (not zombie) descendant of `root`, not `root` itself.
pub fn living_descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<(i32, char)>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if let Some(stat) = read_stat(pid) {
            children.entry(stat.ppid).or_default().push((pid, stat.state));
        }
    }
    let mut found = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for &(pid, state) in children.get(&parent).map_or(&[][..], Vec::as_slice) {
            if seen.insert(pid) {
                // A zombie's own children were re-parented when it died; nothing below it.
                if state != 'Z' {
                    found.push(pid);
                    queue.push(pid);
                }
            }
        }
    }
    found
}

fn signal_all(pids: &[i32], signal: Signal) {
    for &pid in pids {
        // ESRCH: it died meanwhile, which is the goal.
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Ends every descendant of `leader`, which must be alive or an unreaped zombie (so its pid is
/// still its own): SIGTERM, up to `grace` to exit, then SIGKILL.
pub async fn end_descendants(leader: i32, grace: Duration) {
    // Stopped, the leader cannot exit and hand its orphans to init.
    let _ = kill(Pid::from_raw(leader), Signal::SIGSTOP);
    let descendants = living_descendants(leader);
    if descendants.is_empty() {
        return;
    }
    signal_all(&descendants, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline && !living_descendants(leader).is_empty() {
        tokio::time::sleep(POLL).await;
    }
    for _ in 0..MAX_KILL_ROUNDS {
        if !kill_round(leader) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// [`end_descendants`] without the grace period, for a thread that may block: the call was
/// cancelled, so nothing waits for a graceful end.
pub fn kill_descendants_now(leader: i32) {
    let _ = kill(Pid::from_raw(leader), Signal::SIGSTOP);
    for _ in 0..MAX_KILL_ROUNDS {
        if !kill_round(leader) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills the descendants `leader` has now; false when there were none left. Stop first, then
/// kill: a stopped process cannot fork a child we have not seen.
fn kill_round(leader: i32) -> bool {
    let left = living_descendants(leader);
    signal_all(&left, Signal::SIGSTOP);
    signal_all(&left, Signal::SIGKILL);
    !left.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_children_and_grandchildren_but_not_the_root() {
        let mut child =
            std::process::Command::new("sh").args(["-c", "sleep 30 & sleep 30 & wait"]).spawn().expect("spawn");
        let root = child.id() as i32;
        let mut found = Vec::new();
        for _ in 0..100 {
            found = living_descendants(root);
            if found.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(!found.contains(&root));
        signal_all(&found, Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }
}
