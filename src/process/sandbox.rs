//! Workspace permissions as namespaces. Once per workspace, a throwaway child
//! is born in a new user namespace (mapping only the user's own uid and gid,
//! so commands stay the user outside and what they write is the user's), with
//! a new mount namespace when the filesystem view changes and a new network
//! namespace unless the network is full; it rearranges its mounts, brings
//! `lo` up for loopback-only, and leaves the daemon a descriptor of each
//! namespace ([`super::namespaces::Namespaces`]). Every command of the workspace then joins them
//! between clone and exec (setns) and drops every capability from its
//! bounding set, so even uid 0 inside execs with none. A workspace's commands
//! thus share one view: one private /tmp, one `lo` to talk over.
//!
//! The plan is computed once per workspace ([`Sandbox::plan`]); the child only
//! walks it with raw system calls (it shares the daemon's memory, so nothing
//! there allocates or locks).
//!
//! The mount steps, in order:
//! 1. `/` becomes a slave tree: nothing done here propagates to the host.
//! 2. `read_only_root`: /dev, /sys and every writable path are cloned
//!    (open_tree, recursively, as they are), the whole tree is made read-only
//!    (mount_setattr, recursively), and the clones are put back on top, so
//!    they keep their own flags (like systemd's ProtectSystem=strict).
//! 3. /sys/fs/cgroup (and every cgroup mount below it) becomes read-only:
//!    no command can move itself, freeze, kill or re-limit any cgroup.
//! 4. Unless `private_dev`: a fresh devpts instance on /dev/pts (its ptmx
//!    bound on /dev/ptmx), so the user's own ptys are out of reach while new
//!    ones still work.
//! 5. `private_tmp`: a fresh tmpfs on /tmp (mode 1777).
//! 6. `private_dev`: the basic nodes are cloned from /dev, a tmpfs goes on
//!    /dev and the clones on empty files there; plus /dev/shm and the
//!    fd/stdin/stdout/stderr links.
//! 7. `hidden_paths`: a scratch tmpfs holds an empty directory and an empty
//!    file, both mode 000; each hidden path gets a read-only bind of the one of
//!    its kind; the scratch tmpfs is then detached.

use shipote_protocol::{NetworkAccess, Permissions};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Most writable and hidden paths, together, in one workspace's permissions.
pub const MAX_PATHS: usize = 256;

// linux/mount.h and linux/prctl.h values the libc crate does not carry.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;

/// struct mount_attr (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Where cgroupfs is mounted (v2, or the hybrid layout's tree).
const CGROUP_FS: &str = "/sys/fs/cgroup";

/// The device nodes a private /dev gets.
const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// One mount step, with its strings ready for the child.
#[derive(Debug)]
enum Op {
    /// Make the whole tree a slave of the host's.
    Slave,
    /// Clone the mount tree at `path` into scratch slot `slot`.
    Clone { path: CString, slot: usize },
    /// Make the whole tree under `path` read-only.
    ReadOnly { path: CString },
    /// Put the clone in `slot` on `path`.
    Attach { slot: usize, path: CString },
    /// Mount a fresh tmpfs on `path`.
    Tmpfs {
        path: CString,
        data: CString,
        flags: libc::c_ulong,
    },
    /// Create an empty file (a mount point) or directory at `path`.
    Make { path: CString, dir: bool, mode: u32 },
    /// Make a symbolic link `path` -> `target`.
    Link { target: CString, path: CString },
    /// Read-only bind of `src` on `path`.
    Hide { src: CString, path: CString },
    /// Detach the mount at `path`.
    Detach { path: CString },
    /// A fresh devpts instance on /dev/pts (the user's own ptys out of
    /// reach), its ptmx bound on /dev/ptmx.
    Devpts { ptmx: bool },
}

/// What a workspace's commands are allowed to see, as a plan for the child.
#[derive(Debug)]
pub struct Sandbox {
    network: NetworkAccess,
    uid_map: CString,
    gid_map: CString,
    ops: Vec<Op>,
    slots: usize,
    /// For errors: what each step was doing.
    what: Vec<String>,
    /// The Landlock layer (`landlock.rs`); `None` on a kernel without it.
    landlock: Option<super::landlock::Rules>,
}

/// Paths of the child's own /proc files.
const UID_MAP: &std::ffi::CStr = c"/proc/self/uid_map";
const GID_MAP: &std::ffi::CStr = c"/proc/self/gid_map";
const SETGROUPS: &std::ffi::CStr = c"/proc/self/setgroups";

fn cpath(p: &Path) -> CString {
    // Validated paths hold no NUL byte.
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in a validated path")
}

/// A permission path: absolute, without `..`, existing; returned resolved
/// (symlinks followed: mounts land on the real path).
fn checked(p: &Path, what: &str) -> Result<PathBuf, String> {
    if !p.is_absolute() {
        return Err(format!(
            "{what} {} is not absolute; give the full path",
            p.display()
        ));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{what} {} contains '..'; give the plain path",
            p.display()
        ));
    }
    if p.as_os_str().as_bytes().contains(&0) {
        return Err(format!("{what} {:?} contains a NUL byte", p));
    }
    p.canonicalize()
        .map_err(|e| format!("{what} {}: {e}; it must exist", p.display()))
}

impl Sandbox {
    /// The plan for `perms`, or `None` when they ask for nothing (commands
    /// then start in the daemon's own namespaces). `uid`/`gid` are the
    /// daemon's; the command keeps them, inside and out. Errors name the
    /// offending path and what to do.
    ///
    /// `shielded` are hidden too whenever anything is asked (unless they,
    /// or a path inside them, are listed as writable): the daemon's socket
    /// and the user's runtime directory with its session bus and service
    /// manager, through which a command could otherwise have an unconfined
    /// process started for it, and the daemon's state directory (every
    /// workspace's logs, the state file, saved pipelines, the keepers'
    /// sockets).
    pub fn plan(
        perms: &Permissions,
        uid: u32,
        gid: u32,
        shielded: &[PathBuf],
    ) -> Result<Option<Sandbox>, String> {
        if *perms == Permissions::default() {
            return Ok(None);
        }
        let paths = perms.writable_paths.len() + perms.hidden_paths.len();
        if paths > MAX_PATHS {
            return Err(format!(
                "{paths} writable and hidden paths were given; at most {MAX_PATHS} (name a parent directory instead)"
            ));
        }
        // The same path given twice is one mount (issue 14: 20,000 copies
        // were 20,000 mounts).
        let mut seen = std::collections::HashSet::new();
        let mut writable = Vec::new();
        for p in &perms.writable_paths {
            let real = checked(p, "writable path")?;
            if seen.insert(real.clone()) {
                writable.push(real);
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut hidden = Vec::new();
        for p in &perms.hidden_paths {
            let real = checked(p, "hidden path")?;
            if real == Path::new("/") {
                return Err("hidden path / would hide everything".into());
            }
            if seen.insert(real.clone()) {
                let dir = real.is_dir();
                hidden.push((real, dir));
            }
        }
        for p in shielded {
            let Ok(real) = p.canonicalize() else { continue };
            let gone = (perms.private_tmp && real.starts_with("/tmp"))
                || (perms.private_dev && real.starts_with("/dev"));
            // Kept only when the user named it (or a path inside it) as
            // writable; a writable parent (say $HOME) does not uncover it.
            let kept = writable.iter().any(|w| w.starts_with(&real));
            if !gone && !kept && !hidden.iter().any(|(h, _)| real.starts_with(h)) {
                let dir = real.is_dir();
                hidden.push((real, dir));
            }
        }
        // A private /tmp or /dev is empty: nothing under it can be kept
        // writable or hidden.
        for (private, dir, name) in [
            (perms.private_tmp, "/tmp", "private_tmp"),
            (perms.private_dev, "/dev", "private_dev"),
        ] {
            let under = writable
                .iter()
                .chain(hidden.iter().map(|(p, _)| p))
                .find(|p| p.starts_with(dir));
            if let (true, Some(p)) = (private, under) {
                return Err(format!(
                    "{} is under {dir}, which {name} replaces with an empty one; drop one of the two",
                    p.display()
                ));
            }
        }
        // Landlock grants what the mounts leave writable (with a read-only
        // root), or everything (its lock on mounts alone).
        let landlock = {
            let mut kept: Vec<&Path> =
                vec![Path::new("/dev"), Path::new("/proc"), Path::new("/sys")];
            if perms.private_tmp {
                kept.push(Path::new("/tmp"));
            }
            kept.extend(writable.iter().map(PathBuf::as_path));
            super::landlock::Rules::plan(perms.read_only_root, &kept)
        };
        let mut ops = Vec::new();
        let mut what = Vec::new();
        let mut slots = 0;
        let mut push = |op: Op, w: String| {
            ops.push(op);
            what.push(w);
        };
        push(Op::Slave, "making / a slave of the host's mounts".into());
        if perms.read_only_root {
            // Not /proc: the PID namespace's own goes on top of it anyway
            // (`namespaces.rs`).
            let mut keep: Vec<PathBuf> = ["/dev", "/sys"]
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.is_dir() && !(perms.private_dev && p == Path::new("/dev")))
                .collect();
            writable.sort();
            writable.dedup();
            keep.extend(writable.iter().cloned());
            let first = slots;
            for p in &keep {
                push(
                    Op::Clone {
                        path: cpath(p),
                        slot: slots,
                    },
                    format!("keeping {} writable (cloning its mounts)", p.display()),
                );
                slots += 1;
            }
            push(
                Op::ReadOnly { path: c"/".into() },
                "making / read-only".into(),
            );
            for (i, p) in keep.iter().enumerate() {
                push(
                    Op::Attach {
                        slot: first + i,
                        path: cpath(p),
                    },
                    format!("keeping {} writable", p.display()),
                );
            }
        }
        // The cgroup tree belongs to the user: writable, a command could
        // leave its workspace's cgroup, freeze or kill another's, or raise its
        // own limits. Read-only in here (a mount made read-only in a more
        // privileged namespace stays so in any namespace made below it).
        if Path::new(CGROUP_FS).is_dir() {
            push(
                Op::ReadOnly {
                    path: cpath(Path::new(CGROUP_FS)),
                },
                format!("making {CGROUP_FS} read-only"),
            );
        }
        // The user's ptys (terminals, ssh sessions) are not the workspace's:
        // a fresh devpts instance instead, where new ptys still work. A
        // private /dev has no pts at all.
        if !perms.private_dev && Path::new("/dev/pts").is_dir() {
            push(
                Op::Devpts {
                    ptmx: Path::new("/dev/ptmx").exists(),
                },
                "mounting a private /dev/pts".into(),
            );
        }
        if perms.private_tmp {
            push(
                Op::Tmpfs {
                    path: c"/tmp".into(),
                    data: c"mode=1777".into(),
                    flags: libc::MS_NOSUID | libc::MS_NODEV,
                },
                "mounting a private /tmp".into(),
            );
        }
        if perms.private_dev {
            let nodes: Vec<&str> = DEV_NODES
                .iter()
                .copied()
                .filter(|n| Path::new("/dev").join(n).exists())
                .collect();
            let first = slots;
            for n in &nodes {
                push(
                    Op::Clone {
                        path: cpath(&Path::new("/dev").join(n)),
                        slot: slots,
                    },
                    format!("cloning /dev/{n} for the private /dev"),
                );
                slots += 1;
            }
            push(
                Op::Tmpfs {
                    path: c"/dev".into(),
                    data: c"mode=755".into(),
                    flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                },
                "mounting a private /dev".into(),
            );
            for (i, n) in nodes.iter().enumerate() {
                let path = cpath(&Path::new("/dev").join(n));
                push(
                    Op::Make {
                        path: path.clone(),
                        dir: false,
                        mode: 0o666,
                    },
                    format!("creating /dev/{n}"),
                );
                push(
                    Op::Attach {
                        slot: first + i,
                        path,
                    },
                    format!("binding /dev/{n}"),
                );
            }
            push(
                Op::Make {
                    path: c"/dev/shm".into(),
                    dir: true,
                    mode: 0o1777,
                },
                "creating /dev/shm".into(),
            );
            for (target, name) in [
                ("/proc/self/fd", "fd"),
                ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"),
            ] {
                push(
                    Op::Link {
                        target: CString::new(target).expect("no NUL"),
                        path: cpath(&Path::new("/dev").join(name)),
                    },
                    format!("linking /dev/{name}"),
                );
            }
        }
        if !hidden.is_empty() {
            // The scratch tmpfs goes on a directory that is none of the
            // permission paths' ancestors (it shadows what it covers).
            let touched = |c: &Path| {
                hidden
                    .iter()
                    .map(|(p, _)| p)
                    .chain(writable.iter())
                    .any(|p| p.starts_with(c))
                    || hidden.iter().any(|(p, _)| c.starts_with(p))
            };
            let scratch = ["/mnt", "/media", "/srv", "/opt", "/var/tmp", "/tmp", "/home"]
                .iter()
                .map(PathBuf::from)
                .find(|c| c.is_dir() && !touched(c))
                .ok_or("no directory is free to stage the hidden paths' empty stand-ins (one of /mnt, /media, /srv, /opt, /var/tmp, /tmp, /home must exist and not contain a hidden or writable path)")?;
            push(
                Op::Tmpfs {
                    path: cpath(&scratch),
                    data: c"mode=755".into(),
                    flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                },
                format!(
                    "staging the hidden paths' stand-ins on {}",
                    scratch.display()
                ),
            );
            let empty_dir = cpath(&scratch.join("d"));
            let empty_file = cpath(&scratch.join("f"));
            push(
                Op::Make {
                    path: empty_dir.clone(),
                    dir: true,
                    mode: 0,
                },
                "creating the hidden directories' stand-in".into(),
            );
            push(
                Op::Make {
                    path: empty_file.clone(),
                    dir: false,
                    mode: 0,
                },
                "creating the hidden files' stand-in".into(),
            );
            for (p, dir) in &hidden {
                push(
                    Op::Hide {
                        src: if *dir {
                            empty_dir.clone()
                        } else {
                            empty_file.clone()
                        },
                        path: cpath(p),
                    },
                    format!("hiding {}", p.display()),
                );
            }
            push(
                Op::Detach {
                    path: cpath(&scratch),
                },
                format!("detaching the stand-ins from {}", scratch.display()),
            );
        }
        Ok(Some(Sandbox {
            network: perms.network,
            uid_map: CString::new(format!("{uid} {uid} 1\n")).expect("no NUL"),
            gid_map: CString::new(format!("{gid} {gid} 1\n")).expect("no NUL"),
            ops,
            slots,
            what,
            landlock,
        }))
    }

    /// The namespaces the command is born in (clone flags).
    pub fn clone_flags(&self) -> u64 {
        // Always a mount namespace (its own /proc) and a PID namespace.
        let mut f = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64;
        if self.network != NetworkAccess::Full {
            f |= libc::CLONE_NEWNET as u64;
        }
        f
    }

    /// Its Landlock rules, built by the child after the mounts.
    pub fn landlock(&self) -> Option<&super::landlock::Rules> {
        self.landlock.as_ref()
    }

    /// How many scratch descriptors the child needs.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// What step `index` of [`Sandbox::enter`] was doing, for errors.
    pub fn describe(&self, index: usize) -> String {
        match index {
            STEP_MAPS => "mapping its uid and gid in its user namespace".into(),
            STEP_LOOPBACK => "bringing up lo in its network namespace".into(),
            i => self
                .what
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("sandbox step {i}")),
        }
    }

    /// Runs in the child that makes the workspace's namespaces: maps its
    /// ids, rearranges its mounts and brings up lo. On failure: the step
    /// index (see [`Sandbox::describe`]) and errno.
    ///
    /// # Safety
    /// Only in a child made with [`Sandbox::clone_flags`], which shares the
    /// parent's memory: only system calls happen here. `scratch` holds at
    /// least [`Sandbox::slots`] entries.
    pub unsafe fn prepare(&self, scratch: &mut [libc::c_int]) -> Result<(), (usize, libc::c_int)> {
        // SAFETY: __errno_location returns this thread's errno slot, always valid.
        let errno = || unsafe { *libc::__errno_location() };
        // SAFETY: system calls on valid C strings and buffers.
        unsafe {
            if !write_file(SETGROUPS, b"deny")
                || !write_file(UID_MAP, self.uid_map.as_bytes())
                || !write_file(GID_MAP, self.gid_map.as_bytes())
            {
                return Err((STEP_MAPS, errno()));
            }
            for (i, op) in self.ops.iter().enumerate() {
                if !run_op(op, scratch) {
                    return Err((i, errno()));
                }
            }
            if self.network == NetworkAccess::Loopback && !loopback_up() {
                return Err((STEP_LOOPBACK, errno()));
            }
        }
        Ok(())
    }
}

/// Step indices outside the mount plan.
const STEP_MAPS: usize = usize::MAX - 1;
const STEP_LOOPBACK: usize = usize::MAX;

/// open + one write + close.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> bool {
    // SAFETY: valid C string and buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
        libc::close(fd);
        ok
    }
}

unsafe fn run_op(op: &Op, scratch: &mut [libc::c_int]) -> bool {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: system calls on valid C strings, structs and descriptors.
    unsafe {
        match op {
            Op::Slave => {
                libc::mount(
                    null,
                    c"/".as_ptr(),
                    null,
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ) == 0
            }
            Op::Clone { path, slot } => {
                let Some(cell) = scratch.get_mut(*slot) else {
                    return false;
                };
                let fd = libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint,
                ) as libc::c_int;
                *cell = fd;
                fd >= 0
            }
            Op::ReadOnly { path } => {
                let attr = MountAttr {
                    attr_set: MOUNT_ATTR_RDONLY,
                    attr_clr: 0,
                    propagation: 0,
                    userns_fd: 0,
                };
                libc::syscall(
                    libc::SYS_mount_setattr,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    AT_RECURSIVE,
                    &attr as *const MountAttr,
                    std::mem::size_of::<MountAttr>(),
                ) == 0
            }
            Op::Attach { slot, path } => {
                let Some(cell) = scratch.get_mut(*slot) else {
                    return false;
                };
                let fd = *cell;
                let r = libc::syscall(
                    libc::SYS_move_mount,
                    fd,
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                );
                // The making child shares the daemon's files table: a number
                // closed here may be another thread's a moment later, so it
                // is never closed twice.
                libc::close(fd);
                *cell = -1;
                r == 0
            }
            Op::Tmpfs { path, data, flags } => {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    path.as_ptr(),
                    c"tmpfs".as_ptr(),
                    *flags,
                    data.as_ptr().cast(),
                ) == 0
            }
            Op::Make { path, dir, mode } => {
                if *dir {
                    libc::mkdir(path.as_ptr(), *mode) == 0 && libc::chmod(path.as_ptr(), *mode) == 0
                } else {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                        *mode,
                    );
                    fd >= 0 && libc::close(fd) == 0 && libc::chmod(path.as_ptr(), *mode) == 0
                }
            }
            Op::Link { target, path } => libc::symlink(target.as_ptr(), path.as_ptr()) == 0,
            Op::Devpts { ptmx } => {
                libc::mount(
                    c"devpts".as_ptr(),
                    c"/dev/pts".as_ptr(),
                    c"devpts".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NOEXEC,
                    c"newinstance,ptmxmode=0666,mode=0620".as_ptr().cast(),
                ) == 0
                    && (!ptmx
                        || libc::mount(
                            c"/dev/pts/ptmx".as_ptr(),
                            c"/dev/ptmx".as_ptr(),
                            null,
                            libc::MS_BIND,
                            std::ptr::null(),
                        ) == 0)
            }
            Op::Hide { src, path } => {
                libc::mount(
                    src.as_ptr(),
                    path.as_ptr(),
                    null,
                    libc::MS_BIND,
                    std::ptr::null(),
                ) == 0
                    && libc::mount(
                        null,
                        path.as_ptr(),
                        null,
                        libc::MS_BIND
                            | libc::MS_REMOUNT
                            | libc::MS_RDONLY
                            | libc::MS_NOSUID
                            | libc::MS_NODEV
                            | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ) == 0
            }
            Op::Detach { path } => libc::umount2(path.as_ptr(), libc::MNT_DETACH) == 0,
        }
    }
}

/// `ip link set lo up`, by ioctl.
unsafe fn loopback_up() -> bool {
    // SAFETY: a socket, a zeroed ifreq with a valid name, two ioctls.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let mut ok = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0;
        if ok {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            ok = libc::ioctl(s, libc::SIOCSIFFLAGS, &req) == 0;
        }
        libc::close(s);
        ok
    }
}

/// Empties the bounding and ambient sets: the exec that follows grants no
/// capability, not even to uid 0 inside.
pub(super) unsafe fn drop_caps() -> bool {
    // SAFETY: prctl with integer arguments.
    unsafe {
        let zero: libc::c_ulong = 0;
        // Up to the highest capability this kernel knows (EINVAL above it).
        for cap in 0..64 as libc::c_ulong {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, zero, zero, zero) != 0 {
                if *libc::__errno_location() == libc::EINVAL && cap > 0 {
                    break;
                }
                return false;
            }
        }
        libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, zero, zero, zero) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_for_nothing_needs_no_sandbox() {
        assert!(Sandbox::plan(&Permissions::default(), 1000, 1000, &[])
            .unwrap()
            .is_none());
    }

    #[test]
    fn network_only_still_gets_pid_and_mount_namespaces_and_a_read_only_cgroupfs() {
        let p = Permissions {
            network: NetworkAccess::None,
            ..Permissions::default()
        };
        let s = Sandbox::plan(&p, 1000, 1000, &[]).unwrap().unwrap();
        // A mount namespace always (its PID namespace's own /proc).
        let ns = libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
        assert_eq!(s.clone_flags(), ns as u64);
        if Path::new(CGROUP_FS).is_dir() {
            assert!(s
                .what
                .iter()
                .any(|w| w == "making /sys/fs/cgroup read-only"));
        }
        assert_eq!(s.uid_map.to_str().unwrap(), "1000 1000 1\n");
    }

    #[test]
    fn bad_paths_are_named() {
        let bad = |p: &str, hidden: bool| {
            let mut perms = Permissions::default();
            if hidden {
                perms.hidden_paths = vec![p.into()];
            } else {
                perms.read_only_root = true;
                perms.writable_paths = vec![p.into()];
            }
            Sandbox::plan(&perms, 0, 0, &[]).unwrap_err()
        };
        assert!(bad("relative/x", false).contains("not absolute"));
        assert!(bad("/tmp/../etc", true).contains("'..'"));
        assert!(bad("/no/such/path", true).contains("must exist"));
        assert!(bad("/", true).contains("hide everything"));
        let perms = Permissions {
            private_tmp: true,
            hidden_paths: vec!["/tmp".into()],
            ..Permissions::default()
        };
        let e = Sandbox::plan(&perms, 0, 0, &[]).unwrap_err();
        assert!(e.contains("which private_tmp replaces"), "{e}");
    }

    #[test]
    fn read_only_root_keeps_api_filesystems_and_writable_paths() {
        let perms = Permissions {
            read_only_root: true,
            writable_paths: vec!["/tmp".into()],
            ..Permissions::default()
        };
        let s = Sandbox::plan(&perms, 0, 0, &[]).unwrap().unwrap();
        let steps: Vec<&str> = s.what.iter().map(String::as_str).collect();
        let ro = steps
            .iter()
            .position(|w| *w == "making / read-only")
            .unwrap();
        let tmp = steps
            .iter()
            .position(|w| *w == "keeping /tmp writable")
            .unwrap();
        assert!(tmp > ro, "{steps:?}");
        assert!(
            !steps.contains(&"keeping /proc writable"),
            "a fresh /proc goes on it"
        );
        assert_eq!(s.slots(), 3, "/dev, /sys, /tmp");
    }
}
