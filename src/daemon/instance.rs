//! One state directory, one daemon; one cgroup subtree, one daemon.
//!
//! A daemon takes an exclusive `flock(2)` on `<state dir>/shipoted.lock` (which
//! then holds its pid) and, on the cgroup backend, on the directory of its
//! cgroup root, and keeps both for its whole life: the kernel lets them go when
//! it exits, however it exits, so a crash never leaves a stale lock. A second
//! daemon pointed at the same state or the same subtree refuses to start,
//! naming the pid that holds it and the flag that picks another.
//!
//! Each workspace cgroup is marked with the state directory of the daemon that
//! made it (extended attribute `user.shipote.state`): a daemon adopts only
//! unrecorded scopes that carry its own mark (or none, as made before marks
//! existed), never another daemon's.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// File name of the state directory's lock.
pub const LOCK_FILE: &str = "shipoted.lock";

/// Extended attribute naming the state directory of a cgroup's daemon.
pub const OWNER_XATTR: &str = "user.shipote.state";

/// Extended attribute on a locked cgroup root: `pid <pid> state <dir>`.
const ROOT_XATTR: &str = "user.shipote.daemon";

/// Why the daemon may not use a state directory or cgroup subtree.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Another daemon holds it.
    #[error(
        "another shipoted{} holds {what} {}; stop it first (systemctl --user stop shipote), \
         or give this one its own with {flag}",
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default(),
        path.display()
    )]
    Held {
        /// `the state directory` or `the cgroup subtree`.
        what: &'static str,
        /// Which.
        path: PathBuf,
        /// Who holds it, when known (`pid 123`).
        holder: Option<String>,
        /// The flag that picks another.
        flag: &'static str,
    },
    /// It could not be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The locks a running daemon holds; dropping it releases them.
#[derive(Debug)]
pub struct InstanceLock {
    _state: File,
    _cgroup: Option<File>,
}

/// Takes the state directory's lock (creating the directory, mode 0700) and,
/// when given, the cgroup root's (creating it).
pub fn acquire(
    state_dir: &Path,
    cgroup_root: Option<&Path>,
) -> Result<InstanceLock, InstanceError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| InstanceError::Io { path, source }
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io(state_dir))?;
    }
    let path = state_dir.join(LOCK_FILE);
    let mut state = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    if !try_lock(&state).map_err(io(&path))? {
        let mut text = String::new();
        let _ = state.read_to_string(&mut text);
        return Err(InstanceError::Held {
            what: "the state directory",
            path: state_dir.to_owned(),
            holder: text
                .trim()
                .parse::<u32>()
                .ok()
                .map(|pid| format!("pid {pid}")),
            flag: "--state-dir PATH",
        });
    }
    let pid = std::process::id();
    state.set_len(0).map_err(io(&path))?;
    state.rewind().map_err(io(&path))?;
    writeln!(state, "{pid}").map_err(io(&path))?;
    let cgroup = match cgroup_root {
        None => None,
        Some(root) => {
            std::fs::create_dir_all(root).map_err(io(root))?;
            let dir = File::open(root).map_err(io(root))?;
            if !try_lock(&dir).map_err(io(root))? {
                return Err(InstanceError::Held {
                    what: "the cgroup subtree",
                    path: root.to_owned(),
                    holder: get_xattr(root, ROOT_XATTR),
                    flag: "--cgroup-root PATH",
                });
            }
            let me = format!("pid {pid}, state {}", state_dir.display());
            set_xattr(root, ROOT_XATTR, &me);
            Some(dir)
        }
    };
    Ok(InstanceLock {
        _state: state,
        _cgroup: cgroup,
    })
}

/// Marks a workspace's cgroup as made by the daemon of `state_dir` (best
/// effort: a filesystem without user xattrs leaves it unmarked).
pub fn mark_owner(cgroup: &Path, state_dir: &Path) {
    set_xattr(cgroup, OWNER_XATTR, &state_dir.to_string_lossy());
}

/// The state directory a workspace cgroup was marked with, if any.
pub fn owner_of(cgroup: &Path) -> Option<PathBuf> {
    get_xattr(cgroup, OWNER_XATTR).map(PathBuf::from)
}

/// Whether an unrecorded scope may be adopted by the daemon of `state_dir`:
/// unmarked (made before marks existed) or marked with that directory.
pub fn may_adopt(cgroup: &Path, state_dir: &Path) -> bool {
    owner_of(cgroup).map_or(true, |owner| owner == state_dir)
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when someone else holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor this function borrows; no memory involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(e),
    }
}

fn cstr(s: &str) -> Option<std::ffi::CString> {
    std::ffi::CString::new(s).ok()
}

fn set_xattr(path: &Path, name: &str, value: &str) {
    use std::os::unix::ffi::OsStrExt;
    let (Some(p), Some(n)) = (
        std::ffi::CString::new(path.as_os_str().as_bytes()).ok(),
        cstr(name),
    ) else {
        return;
    };
    // SAFETY: valid NUL-terminated path and name; the value is a live slice of
    // the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!(path = %path.display(), name, error = %std::io::Error::last_os_error(), "cannot set xattr");
    }
}

fn get_xattr(path: &Path, name: &str) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = cstr(name)?;
    let mut buf = [0u8; 4096];
    // SAFETY: valid NUL-terminated path and name; the kernel writes at most
    // `buf.len()` bytes into `buf`.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(len).ok()?;
    String::from_utf8(buf[..len].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_dir_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = acquire(&state, None).unwrap();
        let text = std::fs::read_to_string(state.join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        let err = acquire(&state, None).unwrap_err().to_string();
        assert!(
            err.contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        assert!(err.contains("--state-dir PATH"), "{err}");
        drop(first);
        acquire(&state, None).expect("released on drop");
    }

    #[test]
    fn unmarked_or_own_cgroups_may_be_adopted_others_not() {
        let dir = tempfile::tempdir().unwrap();
        let mine = Path::new("/s/mine");
        assert!(may_adopt(dir.path(), mine), "unmarked");
        mark_owner(dir.path(), Path::new("/s/other"));
        if owner_of(dir.path()).is_some() {
            assert!(!may_adopt(dir.path(), mine));
            mark_owner(dir.path(), mine);
            assert!(may_adopt(dir.path(), mine));
        }
    }
}
