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

/// The rule behind [`check`].
pub fn verdict(in_use: usize, limit: usize, want: usize) -> Result<(), String> {
    if in_use.saturating_add(want).saturating_add(RESERVE) <= limit {
        return Ok(());
    }
    Err(format!(
        "shipoted is out of file descriptors ({in_use} of its limit of {limit} are open, \
         {RESERVE} are kept for its own work); close idle clients or stop workspaces, \
         or raise LimitNOFILE= of shipote.service"
    ))
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
