//! A small seccomp deny-list for the commands of sandboxed workspaces, in the
//! spirit of flatpak's default: a second layer under the namespaces, so that
//! a command cannot build itself a way around them. Everything not listed is
//! allowed; the listed calls fail with an errno (never a kill), so programs
//! that probe for them go on:
//!
//! | Call | Refused | Why |
//! |---|---|---|
//! | `unshare`, `clone` with CLONE_NEWUSER | EPERM | a nested user namespace gives back every capability in it: remounts, new mounts |
//! | `clone3` | ENOSYS | its flags are out of a filter's reach; libc then falls back to `clone`, which is checked |
//! | `ioctl` TIOCSTI, TIOCLINUX | EPERM | typing into a terminal as if its user did |
//! | `keyctl`, `add_key`, `request_key` | EPERM | the kernel keyring is shared with the user's session |
//! | `perf_event_open` | EPERM | kernel profiling, side channels |
//! | `userfaultfd` | EPERM | a classic help for kernel exploits |
//! | `bpf` | EPERM | loading programs into the kernel |
//! | any x32-ABI call | ENOSYS | the same calls under other numbers |
//!
//! It is installed in the command's child after `no_new_privs` and just
//! before exec. Built for x86_64 and aarch64; elsewhere none is installed
//! (`available()` says so, and `ws show` reports the layer missing).

/// One BPF instruction (linux/filter.h).
type Insn = libc::sock_filter;

const fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

// linux/bpf_common.h and linux/seccomp.h.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_MODE_FILTER: libc::c_ulong = 2;

/// Offsets in struct seccomp_data: nr, arch, then args (u64 each, low
/// half first on these little-endian targets).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0: u32 = 16;
const ARG1: u32 = 24;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Whether this build has a filter for its architecture.
pub fn available() -> bool {
    cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
}

/// The program, built once.
fn program() -> &'static [Insn] {
    static PROG: std::sync::OnceLock<Vec<Insn>> = std::sync::OnceLock::new();
    PROG.get_or_init(build)
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn build() -> Vec<Insn> {
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let denied: [libc::c_long; 6] = [
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_bpf,
    ];
    let mut p = vec![
        // Another architecture's calls (32-bit compat): refused whole.
        stmt(BPF_LD_W_ABS, ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, enosys),
        stmt(BPF_LD_W_ABS, NR),
    ];
    if cfg!(target_arch = "x86_64") {
        // The x32 ABI: the same calls with bit 30 set.
        p.push(jump(BPF_JGE_K, 0x4000_0000, 0, 1));
        p.push(stmt(BPF_RET_K, enosys));
    }
    p.push(jump(BPF_JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(stmt(BPF_RET_K, enosys));
    for nr in denied {
        p.push(jump(BPF_JEQ_K, nr as u32, 0, 1));
        p.push(stmt(BPF_RET_K, eperm));
    }
    // unshare(flags) and clone(flags, ...): no new user namespace.
    for nr in [libc::SYS_unshare, libc::SYS_clone] {
        p.push(jump(BPF_JEQ_K, nr as u32, 0, 4));
        p.push(stmt(BPF_LD_W_ABS, ARG0));
        p.push(jump(BPF_JSET_K, libc::CLONE_NEWUSER as u32, 0, 1));
        p.push(stmt(BPF_RET_K, eperm));
        p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    }
    // ioctl(fd, TIOCSTI or TIOCLINUX, ...).
    p.push(jump(BPF_JEQ_K, libc::SYS_ioctl as u32, 0, 5));
    p.push(stmt(BPF_LD_W_ABS, ARG1));
    p.push(jump(BPF_JEQ_K, libc::TIOCSTI as u32, 1, 0));
    p.push(jump(BPF_JEQ_K, libc::TIOCLINUX as u32, 0, 1));
    p.push(stmt(BPF_RET_K, eperm));
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    // Everything else.
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn build() -> Vec<Insn> {
    Vec::new()
}

/// The filter, ready for a child: a pointer to pass across the clone (null
/// when this build has none).
pub fn prepared() -> *const libc::sock_fprog {
    static FPROG: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let addr = *FPROG.get_or_init(|| {
        let prog = program();
        if prog.is_empty() {
            return 0;
        }
        let fprog = Box::new(libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut Insn,
        });
        Box::leak(fprog) as *const libc::sock_fprog as usize
    });
    addr as *const libc::sock_fprog
}

/// Installs `fprog` in the calling process (a command's child, after
/// no_new_privs). False when the kernel refused it.
///
/// # Safety
/// `fprog` must come from [`prepared`] (and not be null); only a system call
/// is made.
pub unsafe fn install(fprog: *const libc::sock_fprog) -> bool {
    // SAFETY: a valid sock_fprog that lives for the whole process.
    unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            SECCOMP_MODE_FILTER,
            fprog as libc::c_ulong,
            0,
            0,
        ) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_and_every_path_returns() {
        let p = program();
        assert!(available() && !p.is_empty());
        for (i, insn) in p.iter().enumerate() {
            if insn.code & 0x07 == 0x05 {
                for off in [insn.jt, insn.jf] {
                    assert!(
                        i + 1 + (off as usize) < p.len(),
                        "jump at {i} leaves the program"
                    );
                }
            }
        }
        assert_eq!(
            p.last().map(|i| (i.code, i.k)),
            Some((BPF_RET_K, SECCOMP_RET_ALLOW))
        );
        assert!(p.len() < 4096, "BPF_MAXINSNS");
    }
}
