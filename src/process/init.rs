//! A sandboxed workspace's init: pid 1 of its PID namespace (`shipoted
//! --pid-init`, exec'd by the child that makes the workspace's namespaces,
//! see `namespaces.rs`). Its commands are not its children (they are the
//! daemon's or the keeper's, born in the namespace through CLONE_PARENT);
//! it only keeps the namespace alive, reaps what the commands leave behind
//! (orphans are reparented to it, not to anything outside), and on a stop
//! signal from outside (systemd stopping the scope) passes it on to every
//! process of the namespace and leaves once they are all gone.
//!
//! What its commands can do to it: nothing. The kernel drops any signal
//! sent from inside the namespace to its init unless init handles it; it
//! handles SIGCHLD (harmless) and the stop signals, which it only obeys
//! when they come from outside (`si_pid` 0: a sender the namespace cannot
//! see). It is not dumpable, and its memory belongs to the workspace's user
//! namespace, where commands hold no capability: no ptrace, no
//! /proc/1/{root,cwd,fd,environ}.
//!
//! Where it lives: with its workspace's keeper, in the keeper's leaf, when
//! the workspace has one (it then outlives a daemon's restart with the
//! workspace); else in the daemon's cgroup, watching the daemon (see
//! [`WATCH_ENV`]). Born there either way: no cgroup migration, and no new
//! cgroup to set up.
//!
//! After reading its environment it only makes system calls.

/// The argument that turns `shipoted` into a workspace's init.
pub const INIT_ARG: &std::ffi::CStr = c"--pid-init";

/// The variable that names the descriptor an init watches for its daemon's
/// end (the read end of a pipe whose write end only the daemon holds): set
/// for the init of a workspace that does not outlive its daemon, which
/// leaves (and so ends its PID namespace) when that daemon is gone, even
/// killed -9 outside any cgroup that would take the init with it.
pub const WATCH_ENV: &str = "SHIPOTE_INIT_WATCH";

/// Signals from outside that stop the workspace: passed on, then init leaves.
const STOPS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

extern "C" fn nothing(_: libc::c_int) {}

/// The init's whole life.
pub fn init_main() -> ! {
    let watch: libc::c_int = std::env::var(WATCH_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    // SAFETY: system calls on valid arguments; this process is
    // single-threaded (nothing has started a thread yet).
    unsafe {
        // Nothing of the daemon's: /dev/null on 0, 1, 2 and no other file
        // but the one it watches.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        let keep = if watch >= 3 { watch } else { 2 };
        if keep > 3 {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                (keep - 1) as libc::c_uint,
                0u32,
            );
        }
        libc::syscall(
            libc::SYS_close_range,
            (keep + 1) as libc::c_uint,
            libc::c_uint::MAX,
            0u32,
        );
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // Exec'd through a descriptor, it would be named after its number.
        libc::prctl(libc::PR_SET_NAME, c"shipote-init".as_ptr(), 0, 0, 0);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for sig in STOPS {
            libc::sigaddset(&mut set, sig);
        }
        // Handled (so the kernel delivers them to a namespace's init) but
        // blocked: they are read from a signalfd, never run a handler.
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGCHLD, &act, std::ptr::null_mut());
        for sig in STOPS {
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
        let sfd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        let mut stopping = false;
        loop {
            let mut status = 0;
            while libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) > 0 {}
            // Stopping: gone once no other process is left in the namespace.
            if stopping && libc::kill(-1, 0) != 0 && *libc::__errno_location() == libc::ESRCH {
                libc::_exit(0);
            }
            let mut fds = [
                libc::pollfd {
                    fd: sfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: watch,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let n = if watch >= 0 { 2 } else { 1 };
            libc::poll(fds.as_mut_ptr(), n, if stopping { 50 } else { -1 });
            // Its daemon is gone: so is it, and its namespace with it.
            if fds[1].revents != 0 {
                libc::_exit(0);
            }
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            if fds[0].revents != 0
                && libc::read(sfd, (&mut info as *mut libc::signalfd_siginfo).cast(), size)
                    == size as isize
            {
                let sig = info.ssi_signo as libc::c_int;
                // From outside (a sender it cannot see has pid 0 here).
                if STOPS.contains(&sig) && info.ssi_pid == 0 {
                    stopping = true;
                    libc::kill(-1, sig);
                }
            }
        }
    }
}
