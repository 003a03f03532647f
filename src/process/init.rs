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
//! It runs no Rust beyond `main`'s first lines: no allocation after start,
//! only system calls.

/// The leaf of its workspace's cgroup the init lives in.
pub const LEAF: &str = "init";

/// The argument that turns `shipoted` into a workspace's init.
pub const INIT_ARG: &std::ffi::CStr = c"--pid-init";

/// Signals from outside that stop the workspace: passed on, then init leaves.
const STOPS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

extern "C" fn nothing(_: libc::c_int) {}

/// The init's whole life.
pub fn init_main() -> ! {
    // SAFETY: system calls on valid arguments; this process is
    // single-threaded (nothing has started a thread yet).
    unsafe {
        // Nothing of the daemon's: /dev/null on 0, 1, 2 and no other file.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        libc::syscall(libc::SYS_close_range, 3u32, libc::c_uint::MAX, 0u32);
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
        // blocked: they are taken with sigtimedwait, never run a handler.
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGCHLD, &act, std::ptr::null_mut());
        for sig in STOPS {
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
        let mut stopping = false;
        loop {
            let mut status = 0;
            while libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) > 0 {}
            // Stopping: gone once no other process is left in the namespace.
            if stopping && libc::kill(-1, 0) != 0 && *libc::__errno_location() == libc::ESRCH {
                libc::_exit(0);
            }
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let poll = libc::timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            let sig = libc::sigtimedwait(
                &set,
                &mut info,
                if stopping { &poll } else { std::ptr::null() },
            );
            if STOPS.contains(&sig) && info.si_pid() == 0 {
                stopping = true;
                libc::kill(-1, sig);
            }
        }
    }
}
