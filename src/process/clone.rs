//! The one way shipoted makes a child: clone with CLONE_VM | CLONE_VFORK, like
//! posix_spawn, on a stack of the caller's, optionally born in a cgroup
//! (clone3 CLONE_INTO_CGROUP) and with a pidfd. It knows nothing of what the
//! child does: a command's launch (`spawn.rs`) and the making of a
//! workspace's namespaces (`namespaces.rs`) each bring their own entry
//! function and the plan it reads.
//!
//! The child shares the caller's memory until it execs or exits, while the
//! caller is suspended: its entry may only make system calls (no allocation,
//! no lock), and every signal is blocked across the clone so no handler of
//! the daemon's runs on the shared memory. The entry gets the caller's
//! original mask back through [`Entry::mask`] to restore before exec.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The child's stack: it only makes system calls before exec.
pub const STACK: usize = 64 << 10;

/// linux/sched.h (libc's constant is a 32-bit value that overflows).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3's arguments (linux/sched.h, version 2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What a child's plan gives the primitive: where the signal mask the child
/// must restore is kept. A plan type holds a `libc::sigset_t` and returns it.
pub trait Entry {
    /// The slot the caller's signal mask is saved in before the clone.
    fn mask(&mut self) -> &mut libc::sigset_t;
}

/// A child that has exec'd or ended: its pid and pidfd.
#[derive(Debug)]
pub struct Born {
    /// Its pid.
    pub pid: i32,
    /// Its pidfd (CLONE_PIDFD): no other waiter can take its exit status.
    pub pidfd: OwnedFd,
}

/// clone3 with CLONE_VM: the child must start on its own stack, so the call
/// is made in assembly; the child calls `f(arg)` there and never returns.
/// Returns the raw result (pid, or -errno).
///
/// # Safety
/// `args` must describe a valid stack and flags including CLONE_VM |
/// CLONE_VFORK; `f` must only make async-signal-safe calls and end the child.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_vm(
    args: &CloneArgs,
    f: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> i64 {
    let ret: i64;
    // SAFETY: upheld by the caller; the parent path only clobbers rax, rcx
    // and r11 (the syscall ABI); the child path runs on the new stack and
    // ends with exit(2) without coming back.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r13",
            "call r12",
            "mov edi, eax",
            "mov eax, 60",
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") f,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Makes a child that runs `entry(plan)` on `stack` (born in `cgroup` when
/// given, with the extra clone `flags`, e.g. CLONE_NEW*) and returns once it
/// has exec'd or ended.
///
/// # Safety
/// `entry` runs in a child that shares this process's memory while the
/// caller is suspended: it must cast its argument back to `P`, make only
/// async-signal-safe calls, and end with execve or _exit. It must not
/// return into this process's code in any other way.
pub unsafe fn clone_vfork<P: Entry>(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    plan: &mut P,
    stack: &mut [u8],
    cgroup: Option<&File>,
    flags: u64,
) -> std::io::Result<Born> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: the stack is ours and outlives the child's use of it (we are
    // suspended until the child execs or exits); all signals are blocked
    // across the clone, and the child restores `plan.mask()` itself.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, plan.mask());
        let arg: *mut libc::c_void = (plan as *mut P).cast();
        let r = match cgroup {
            #[cfg(target_arch = "x86_64")]
            Some(dir) => {
                let args = CloneArgs {
                    flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64
                        | CLONE_INTO_CGROUP
                        | flags,
                    pidfd: (&mut pidfd as *mut libc::c_int) as u64,
                    exit_signal: libc::SIGCHLD as u64,
                    stack: stack.as_mut_ptr() as u64,
                    stack_size: (stack.len() & !15) as u64,
                    cgroup: dir.as_raw_fd() as u64,
                    ..CloneArgs::default()
                };
                let r = clone3_vm(&args, entry, arg);
                if r < 0 {
                    Err(std::io::Error::from_raw_os_error(-r as i32))
                } else {
                    Ok(r as i32)
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Some(_) => Err(std::io::Error::from_raw_os_error(libc::ENOSYS)),
            None => {
                let top = stack.as_mut_ptr().add(stack.len());
                let top = (top as usize & !15) as *mut libc::c_void;
                let r = libc::clone(
                    entry,
                    top,
                    libc::CLONE_VM
                        | libc::CLONE_VFORK
                        | libc::CLONE_PIDFD
                        | libc::SIGCHLD
                        | flags as libc::c_int,
                    arg,
                    &mut pidfd as *mut libc::c_int,
                );
                if r < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(r)
                }
            }
        };
        libc::pthread_sigmask(libc::SIG_SETMASK, plan.mask(), std::ptr::null_mut());
        r?
    };
    Ok(Born {
        pid,
        // SAFETY: the kernel gave us this pidfd (CLONE_PIDFD) and nobody
        // else owns it.
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
    })
}

/// In a child, first thing: every signal back to its default, so nothing the
/// daemon handles or ignores (SIGPIPE, under Rust and under systemd) reaches
/// the program, and no daemon handler can run in a child that shares the
/// daemon's memory. The raw call also resets the signals glibc reserves.
///
/// # Safety
/// Only in a child made by [`clone_vfork`]; it only makes system calls.
pub unsafe fn reset_signals() {
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: rt_sigaction with a valid, all-default action.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8,
                );
            }
        }
    }
}

/// Reaps a child of ours that has ended (or will shortly): its raw status.
pub fn reap(pid: i32) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return status;
        }
    }
}
