//! Where the user's processes are forked, exec'd and signalled (the one other
//! fork is the user-namespace probe in `host.rs`), and their /proc entries
//! read.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

pub mod clone;
pub mod end;
pub mod env;
pub mod fds;
pub mod init;
pub mod landlock;
pub mod logs;
pub mod namespaces;
pub mod sandbox;
pub mod seccomp;
pub mod spawn;

/// The argument that turns `shipoted` into a workspace keeper.
pub const KEEPER_ARG: &str = "--keeper";

/// Spawns a keeper (`program --keeper NAME`, shipoted itself) in a new
/// session, with an empty environment and no open files but /dev/null and
/// `listener` as fd 3, where daemons reach it (see `crate::keeper`). It is
/// reaped by the runtime if it dies while this daemon runs.
pub fn spawn_keeper(
    program: &Path,
    name: &str,
    listener: &std::os::unix::net::UnixListener,
) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cmd = tokio::process::Command::new(program);
    let soft = fds::ORIGINAL_NOFILE_SOFT.load(std::sync::atomic::Ordering::Relaxed);
    cmd.arg(KEEPER_ARG)
        .arg(name)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(false);
    if soft != 0 {
        // The commands it starts get the limit the daemon was started with.
        cmd.env("SHIPOTE_NOFILE_SOFT", soft.to_string());
    }
    let fd = listener.as_raw_fd();
    // SAFETY: setsid and dup2 are async-signal-safe; nothing else runs
    // between fork and exec.
    unsafe {
        cmd.as_std_mut().pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // dup2 clears close-on-exec on the copy; the same number needs it
            // cleared by hand.
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    child
        .id()
        .ok_or_else(|| std::io::Error::other("keeper exited before it could be placed"))
}

/// The keeper's whole life (see `crate::keeper::anchor`); a keeper started
/// without a socket (by a daemon before 0.3) only waits for its signal.
pub fn keeper_main() -> ! {
    if let Some(listener) = crate::keeper::anchor::inherited_listener() {
        crate::keeper::anchor::run(listener);
    }
    loop {
        // SAFETY: pause has no preconditions.
        unsafe {
            libc::pause();
        }
    }
}

/// Sends `sig` to `pid`; a process that is already gone is not an error.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Memory and CPU of one process from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcUsage {
    /// Resident set size in bytes (VmRSS).
    pub rss_bytes: u64,
    /// User + system CPU time in microseconds.
    pub cpu_usec: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads /proc/PID/status and /proc/PID/stat; `None` if the process is gone.
pub fn proc_usage(pid: u32) -> Option<ProcUsage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_proc_usage(&status, &stat, clock_ticks()))
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as u64)
        .unwrap_or(100)
}

/// The parsing behind [`proc_usage`].
pub fn parse_proc_usage(status: &str, stat: &str, ticks_per_sec: u64) -> ProcUsage {
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields after the command name (which may contain spaces and parens).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = tick(11) + tick(12);
    ProcUsage {
        rss_bytes: kib("VmRSS:") * 1024,
        cpu_usec: ticks * 1_000_000 / ticks_per_sec.max(1),
        threads: kib("Threads:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_usage_parsing() {
        let status = "Name:\tcat\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0";
        let u = parse_proc_usage(status, stat, 100);
        assert_eq!(u.rss_bytes, 2048 * 1024);
        assert_eq!(u.cpu_usec, 3_000_000);
        assert_eq!(u.threads, 3);
    }

    #[test]
    fn own_process_is_readable() {
        let u = proc_usage(std::process::id()).unwrap();
        assert!(u.rss_bytes > 0);
        assert!(u.threads >= 1);
    }
}
