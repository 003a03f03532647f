//! Landlock, the second layer under a sandboxed workspace's mounts (Linux
//! 5.13+, when the kernel runs the Landlock LSM). One ruleset per
//! workspace, made by the child that makes its namespaces, inside them
//! (`namespaces.rs`), and enforced by every command before exec:
//!
//! - read-only root: reading and executing everywhere, every right under the
//!   paths the mount plan keeps writable (/dev, /proc, /sys, the writable
//!   paths, a private /tmp). A bind mount or remount that made / writable
//!   again would still not let a command write there.
//! - always: a Landlock-restricted process can no longer mount, unmount,
//!   remount or pivot_root, even with CAP_SYS_ADMIN in a user namespace of
//!   its own. So no namespace trick uncovers a hidden path or undoes a
//!   read-only mount. (Landlock rules only grant: a path below a granted
//!   one cannot be denied, so hidden paths rest on their mounts and on this
//!   lock, not on rules.)
//!
//! On a kernel without Landlock the workspace runs with the other layers
//! (namespaces, no capabilities, seccomp) and `ws show` says so
//! ([`abi`]).

use std::ffi::CString;
use std::path::Path;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

// linux/landlock.h, filesystem rights.
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;

/// struct landlock_ruleset_attr, filesystem part only (the kernel takes a
/// shorter struct from older callers).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// struct landlock_path_beneath_attr (packed).
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version this kernel offers; 0: none (not built, or not
/// enabled at boot).
pub fn abi() -> u32 {
    // SAFETY: the version query takes no attribute.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    v.max(0) as u32
}

/// Every filesystem right of ABI `abi`.
fn all_rights(abi: u32) -> u64 {
    let mut all = (1 << 13) - 1; // ABI 1: execute .. make_sym
    if abi >= 2 {
        all |= 1 << 13; // refer
    }
    if abi >= 3 {
        all |= TRUNCATE;
    }
    if abi >= 5 {
        all |= IOCTL_DEV;
    }
    all
}

/// The rights a file (not a directory) can be granted.
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

/// A workspace's ruleset, ready for the child that builds it.
#[derive(Debug)]
pub struct Rules {
    handled: u64,
    rules: Vec<(CString, u64)>,
}

impl Rules {
    /// The rules of a workspace: `read_only` (the root read-only but for
    /// `writable`, as the mount plan does) or everything granted (the
    /// topology lock alone). `None` on a kernel without Landlock.
    pub fn plan(read_only: bool, writable: &[&Path]) -> Option<Rules> {
        let abi = abi();
        if abi == 0 {
            return None;
        }
        let all = all_rights(abi);
        let cpath =
            |p: &Path| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())).ok();
        let mut rules = Vec::new();
        if read_only {
            let read = EXECUTE | READ_FILE | READ_DIR | (all & IOCTL_DEV);
            rules.push((c"/".to_owned(), read));
            for p in writable {
                let rights = if p.is_dir() { all } else { all & FILE_RIGHTS };
                if let Some(c) = cpath(p) {
                    rules.push((c, rights));
                }
            }
        } else {
            rules.push((c"/".to_owned(), all));
        }
        Some(Rules {
            handled: all,
            rules,
        })
    }

    /// Builds the ruleset, in the child, in the workspace's mount namespace:
    /// its descriptor, or errno. A path missing from the namespace's view is
    /// skipped (nothing there to grant).
    ///
    /// # Safety
    /// Only system calls: fit for a child sharing the daemon's memory.
    pub unsafe fn build(&self) -> Result<libc::c_int, libc::c_int> {
        let attr = RulesetAttr {
            handled_access_fs: self.handled,
        };
        // SAFETY: system calls on valid structs, strings and descriptors.
        unsafe {
            let rs = libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            ) as libc::c_int;
            if rs < 0 {
                return Err(*libc::__errno_location());
            }
            for (path, rights) in &self.rules {
                let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 {
                    continue;
                }
                let rule = PathBeneath {
                    allowed_access: *rights,
                    parent_fd: fd,
                };
                let r = libc::syscall(
                    libc::SYS_landlock_add_rule,
                    rs,
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneath,
                    0u32,
                );
                let errno = *libc::__errno_location();
                libc::close(fd);
                if r != 0 {
                    libc::close(rs);
                    return Err(errno);
                }
            }
            Ok(rs)
        }
    }
}

/// Enforces the ruleset on the calling process (after no_new_privs).
///
/// # Safety
/// Only system calls: fit for a command's child.
pub unsafe fn restrict_self(ruleset: libc::c_int) -> bool {
    // SAFETY: landlock_restrict_self on a descriptor the caller holds.
    unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_grow_with_the_abi() {
        assert_eq!(all_rights(1), 0x1fff);
        assert_eq!(all_rights(2), 0x3fff);
        assert_eq!(all_rights(3), 0x7fff);
        assert_eq!(all_rights(4), 0x7fff);
        assert_eq!(all_rights(5), 0xffff);
    }

    #[test]
    fn a_read_only_plan_grants_reading_at_the_root_and_all_in_writable_paths() {
        let Some(r) = Rules::plan(true, &[Path::new("/tmp"), Path::new("/etc/hostname")]) else {
            return; // no Landlock on this kernel: nothing to plan
        };
        assert_eq!(r.rules[0].0.as_bytes(), b"/");
        assert_eq!(r.rules[0].1 & (WRITE_FILE | TRUNCATE), 0);
        assert_eq!(r.rules[1].1, r.handled);
        // A file gets only the rights a file can have.
        assert_eq!(r.rules[2].1 & !FILE_RIGHTS, 0);
        let open = Rules::plan(false, &[]).unwrap();
        assert_eq!(open.rules.len(), 1);
        assert_eq!(open.rules[0].1, open.handled);
    }

    #[test]
    fn a_restricted_program_writes_only_where_it_was_granted_and_cannot_mount() {
        use std::os::unix::process::CommandExt;
        let granted = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let Some(rules) = Rules::plan(true, &[granted.path(), Path::new("/dev")]) else {
            return; // no Landlock on this kernel
        };
        // SAFETY: only system calls; the ruleset is ours.
        let rs = unsafe { rules.build() }.unwrap();
        let script = format!(
            "echo a > {g}/f && echo granted; echo b > {o}/f 2>/dev/null || echo refused; \
             unshare -Urm true 2>/dev/null || echo no-mount-ns",
            g = granted.path().display(),
            o = other.path().display()
        );
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(&script);
        // SAFETY: prctl and landlock_restrict_self only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || !restrict_self(rs) {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(rs) };
        let text = String::from_utf8_lossy(&out.stdout);
        // unshare -m remounts / private: refused to a Landlock-restricted
        // process even as root of its own user namespace.
        assert_eq!(text, "granted\nrefused\nno-mount-ns\n");
        assert!(!other.path().join("f").exists());
        assert_eq!(
            std::fs::read_to_string(granted.path().join("f")).unwrap(),
            "a\n"
        );
    }
}
