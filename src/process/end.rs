//! Ending processes: SIGTERM, up to a grace period for them to leave, then
//! SIGKILL. One implementation for a command's leaf, a workspace's cgroup and
//! a process group (the backend without cgroups).
//!
//! Every process gets SIGTERM once, forks that appear during the grace period
//! included; what is left when it runs out is killed (`cgroup.kill` for a
//! cgroup tree, SIGKILL to each process where that file is missing, `killpg`
//! for a group) and waited for, up to [`KILL_WAIT`].

use crate::cgroup::Cgroup;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often the processes left are listed while waiting.
pub const POLL: Duration = Duration::from_millis(10);

/// How long processes may take to vanish after SIGKILL.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// What to end.
#[derive(Debug, Clone)]
pub enum Target {
    /// Every process in a cgroup and below it.
    Tree(Cgroup),
    /// A process group (its leader's pid), where there is no cgroup.
    Group(i32),
}

impl Target {
    /// The processes of this target now (for a group: its leader's pid while
    /// the group has a member).
    fn members(&self) -> Vec<u32> {
        match self {
            Target::Tree(cg) => cg.procs_recursive(),
            Target::Group(g) if killpg(Pid::from_raw(*g), None).is_ok() => vec![*g as u32],
            Target::Group(_) => vec![],
        }
    }

    fn term(&self, pid: u32, sig: Signal) {
        match self {
            Target::Tree(_) => super::signal(pid, sig),
            Target::Group(g) => {
                let _ = killpg(Pid::from_raw(*g), sig);
            }
        }
    }

    fn kill(&self, members: &[u32]) {
        match self {
            Target::Tree(cg) => {
                if cg.kill().is_err() {
                    for pid in members {
                        super::signal(*pid, Signal::SIGKILL);
                    }
                }
            }
            Target::Group(g) => {
                let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
            }
        }
    }
}

/// Ends every process of `targets`: SIGTERM (SIGKILL at once when `grace` is
/// zero), up to `grace` for them to leave, then SIGKILL. Returns how many
/// processes were ended (a group counts as one), `keeper` excluded.
///
/// A workspace's keeper (`keeper`, in its cgroup's `keeper` leaf) goes last:
/// it gets SIGTERM, never a first SIGKILL, and leaves by itself once it has
/// reaped its commands and reported their exits; it is killed only if it
/// has not left [`KEEPER_WAIT`] after the others are gone. Blocking: reads
/// cgroup files and sleeps; run it off the async workers.
pub fn end(targets: &[Target], grace: Duration, keeper: Option<u32>) -> u32 {
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let first = if grace.is_zero() {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    // A sandboxed workspace's init (in its keeper's leaf, beside the
    // keeper) is no process of the user's: it goes once the others are gone
    // (its death would kill them without their grace), and is not counted.
    let others = |t: &Target| -> Vec<u32> {
        let mut m = t.members();
        let own = match t {
            Target::Tree(cg) => cg.child(KEEPER_LEAF).procs(),
            Target::Group(_) => Vec::new(),
        };
        m.retain(|p| Some(*p) != keeper && !own.contains(p));
        m
    };
    if let Some(k) = keeper {
        super::signal(k, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    loop {
        // Every target listed before any is signalled: one's death (a pipe
        // closing) may end another's processes before they are counted.
        let now: Vec<(&Target, Vec<u32>)> = targets.iter().map(|t| (t, others(t))).collect();
        let mut any = false;
        for (t, pids) in now {
            for pid in pids {
                any = true;
                // Each process once, new arrivals (forks) included.
                if seen.insert(pid) {
                    t.term(pid, first);
                }
            }
        }
        if !any || grace.is_zero() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    let kill_deadline = Instant::now() + KILL_WAIT;
    loop {
        let mut any = false;
        for t in targets {
            let members = others(t);
            if members.is_empty() {
                continue;
            }
            any = true;
            seen.extend(members.iter().copied());
            match (t, keeper) {
                // All but the keeper's leaf, each at once (cgroup.kill).
                (Target::Tree(cg), Some(_)) => {
                    for child in cg.children() {
                        if child.dir().file_name() != Some(KEEPER_LEAF.as_ref()) {
                            Target::Tree(child).kill(&members);
                        }
                    }
                    for pid in cg.procs() {
                        if Some(pid) != keeper {
                            super::signal(pid, Signal::SIGKILL);
                        }
                    }
                }
                _ => t.kill(&members),
            }
        }
        if !any || Instant::now() >= kill_deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    for t in targets {
        if let Target::Tree(cg) = t {
            end_init(&cg.child(KEEPER_LEAF), keeper);
        }
    }
    if let Some(k) = keeper {
        let gone = |k: u32| {
            nix::sys::signal::kill(Pid::from_raw(k as i32), None).is_err()
                || targets.iter().all(|t| !t.members().contains(&k))
        };
        let wait = Instant::now() + KEEPER_WAIT;
        while !gone(k) && Instant::now() < wait {
            std::thread::sleep(POLL);
        }
        if !gone(k) {
            super::signal(k, Signal::SIGKILL);
        }
        seen.remove(&k);
    }
    seen.len() as u32
}

/// Kills a workspace's init (and so what is left of its PID namespace):
/// whatever is in its keeper's leaf but the keeper, waited for up to
/// [`KILL_WAIT`].
fn end_init(leaf: &Cgroup, keeper: Option<u32>) {
    let wait = Instant::now() + KILL_WAIT;
    loop {
        let mut procs = leaf.procs();
        procs.retain(|p| Some(*p) != keeper);
        if procs.is_empty() || Instant::now() >= wait {
            return;
        }
        for pid in procs {
            super::signal(pid, Signal::SIGKILL);
        }
        std::thread::sleep(POLL);
    }
}

/// How long a keeper may take to report its commands' exits and leave.
pub const KEEPER_WAIT: Duration = Duration::from_secs(2);

/// The leaf a workspace's keeper lives in (`workspace::backend::KEEPER_CGROUP`).
const KEEPER_LEAF: &str = "keeper";

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A shell in its own process group, reaped by a thread of its own (as
    /// the daemon reaps its children), and its pid.
    fn group(script: &str) -> (i32, std::thread::JoinHandle<std::process::ExitStatus>) {
        let mut c = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = c.id() as i32;
        (pid, std::thread::spawn(move || c.wait().unwrap()))
    }

    #[test]
    fn a_group_that_leaves_on_sigterm_is_not_killed() {
        let (pid, waiter) = group("trap 'exit 7' TERM; while :; do sleep 0.01; done");
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        let n = end(&[Target::Group(pid)], Duration::from_secs(5), None);
        assert_eq!(n, 1);
        assert_eq!(waiter.join().unwrap().code(), Some(7), "it left on SIGTERM");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_group_that_ignores_sigterm_is_killed_after_the_grace() {
        let (pid, waiter) = group("trap '' TERM; while :; do sleep 0.01; done");
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        end(&[Target::Group(pid)], Duration::from_millis(200), None);
        assert!(start.elapsed() >= Duration::from_millis(200));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(waiter.join().unwrap().signal(), Some(9));
    }

    #[test]
    fn nothing_to_end_returns_at_once() {
        let start = Instant::now();
        assert_eq!(
            end(&[Target::Group(i32::MAX - 7)], Duration::from_secs(5), None),
            0
        );
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
