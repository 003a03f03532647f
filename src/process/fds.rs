//! The daemon's own file descriptors: how many it may open and how many are
//! open, so that it refuses work by name (`Busy`, "out of file descriptors")
//! before a state write, a spawn or an accept fails for lack of one.
//!
//! [`RESERVE`] descriptors are always kept for the daemon's own work: state
//! writes, log files, pipes and the namespaces of a command being started.

/// Descriptors kept free for the daemon's own work.
pub const RESERVE: usize = 64;

/// The soft limit on open descriptors (RLIMIT_NOFILE).
pub fn limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return usize::MAX;
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// Descriptors open in this process now (the entries of /proc/self/fd, less
/// the one that lists them).
pub fn in_use() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

/// `Ok` when `want` more descriptors can be opened with [`RESERVE`] left
/// over; else a message for the client that names the shortage and its fix.
pub fn check(want: usize) -> Result<(), String> {
    verdict(in_use(), limit(), want)
}

/// The message for a shortage met anyway (EMFILE, ENFILE): what is open now,
/// the limit, and the fix.
pub fn shortage() -> String {
    message(in_use(), limit())
}

/// The rule behind [`check`].
pub fn verdict(in_use: usize, limit: usize, want: usize) -> Result<(), String> {
    if in_use.saturating_add(want).saturating_add(RESERVE) <= limit {
        return Ok(());
    }
    Err(message(in_use, limit))
}

fn message(in_use: usize, limit: usize) -> String {
    format!(
        "shipoted is out of file descriptors ({in_use} of its limit of {limit} are open, \
         {RESERVE} are kept for its own work); close idle clients or stop workspaces, \
         or raise LimitNOFILE= of shipote.service"
    )
}

/// Whether an error's text is that of EMFILE or ENFILE (errors that reach
/// the supervisor as strings).
pub fn names_exhaustion(text: &str) -> bool {
    text.contains("(os error 24)") || text.contains("(os error 23)")
}

/// Whether an error is the descriptor limit (EMFILE) or the system's (ENFILE).
pub fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// The soft RLIMIT_NOFILE the daemon started with (0: not raised); commands
/// get it back before exec.
pub(crate) static ORIGINAL_NOFILE_SOFT: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Raises this process's soft descriptor limit to its hard limit, so that a
/// thousand clients and workspaces cannot run the daemon out of descriptors;
/// commands started afterwards get the original soft limit back. Returns
/// (original soft, new soft).
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let original = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        ORIGINAL_NOFILE_SOFT.store(original, std::sync::atomic::Ordering::Relaxed);
    }
    Ok((original, lim.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept() {
        assert!(verdict(10, 1024, 1).is_ok());
        assert!(verdict(1024 - RESERVE - 1, 1024, 1).is_ok());
        let e = verdict(1024 - RESERVE, 1024, 1).unwrap_err();
        assert!(e.contains("out of file descriptors"), "{e}");
        assert!(e.contains("LimitNOFILE="), "{e}");
    }

    #[test]
    fn this_process_has_some_open() {
        assert!(in_use() >= 3);
        assert!(limit() >= in_use());
    }
}
