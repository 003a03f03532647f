//! A workspace's namespaces: made once, by a throwaway child that is born in
//! them, walks the workspace's [`Sandbox`] plan and leaves the daemon a
//! descriptor of each (user, mount, network); then joined by every command
//! of the workspace between clone and exec ([`Namespaces::join`]). The
//! plan itself, and what the child does with it, is `sandbox.rs`.

use super::sandbox::Sandbox;
use shipote_protocol::Permissions;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Why a workspace's permissions cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A path or combination the client asked for is wrong.
    #[error("permissions: {0}")]
    Invalid(String),
    /// This host cannot enforce them.
    #[error(
        "this host cannot enforce the workspace's permissions: {0}{hint}; ask for fewer \
         permissions, or allow unprivileged user namespaces (see `shipote capabilities`)",
        hint = crate::host::userns_sysctl_hint()
    )]
    Unenforceable(String),
    /// The daemon is out of file descriptors (not a namespace problem).
    #[error("{0}")]
    Exhausted(String),
}

/// Descriptors a workspace's namespaces hold (user, mount, network) plus what
/// making them opens for a moment.
pub const NAMESPACE_FDS: usize = 8;

/// The namespaces of a workspace with permissions `perms` (`None` when it
/// asks for none), for the daemon's own uid and gid, with `shielded` hidden
/// (see [`Sandbox::plan`]). Touches the filesystem and clones: call it off
/// the supervisor.
pub fn make(perms: &Permissions, shielded: &[PathBuf]) -> Result<Option<Namespaces>, Refusal> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let Some(plan) =
        Sandbox::plan(perms, uid.as_raw(), gid.as_raw(), shielded).map_err(Refusal::Invalid)?
    else {
        return Ok(None);
    };
    crate::process::fds::check(NAMESPACE_FDS).map_err(Refusal::Exhausted)?;
    make_namespaces(&plan).map(Some).map_err(|e| {
        // EMFILE/ENFILE met while making them: name the shortage.
        if crate::process::fds::names_exhaustion(&e) {
            Refusal::Exhausted(crate::process::fds::shortage())
        } else {
            Refusal::Unenforceable(e)
        }
    })
}

/// A workspace's namespaces, made once ([`make`])
/// and held open here; every command of the workspace joins them before
/// exec, so its commands share one private /tmp, one `lo`, one view.
#[derive(Debug)]
pub struct Namespaces {
    /// user, then mount and network when made: the setns order.
    fds: Vec<(std::os::fd::OwnedFd, libc::c_int)>,
}

impl Namespaces {
    /// From descriptors of /proc/PID/ns files and their CLONE_NEW* kinds.
    pub fn new(fds: Vec<(std::os::fd::OwnedFd, libc::c_int)>) -> Self {
        Namespaces { fds }
    }

    /// Its descriptors and their CLONE_NEW* kinds, in join order.
    pub fn fds(&self) -> impl Iterator<Item = (std::os::fd::BorrowedFd<'_>, libc::c_int)> {
        use std::os::fd::AsFd;
        self.fds.iter().map(|(fd, kind)| (fd.as_fd(), *kind))
    }

    /// Runs in a command's child before exec: joins each namespace, then
    /// empties the bounding and ambient capability sets so the exec grants
    /// none. On failure: which namespace kind (0: the capabilities) and errno.
    ///
    /// # Safety
    /// Only in a child that shares neither its files' table with threads it
    /// waits for nor its fs struct (no CLONE_FS); only system calls happen.
    pub unsafe fn join(&self) -> Result<(), (libc::c_int, libc::c_int)> {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on descriptors we own; prctl with integers.
        unsafe {
            for (fd, kind) in &self.fds {
                if libc::setns(fd.as_raw_fd(), *kind) != 0 {
                    return Err((*kind, *libc::__errno_location()));
                }
            }
            if !super::sandbox::drop_caps() {
                return Err((0, *libc::__errno_location()));
            }
        }
        Ok(())
    }

    /// Names a [`Namespaces::join`] failure.
    pub fn describe(kind: libc::c_int) -> &'static str {
        match kind {
            libc::CLONE_NEWUSER => "joining the workspace's user namespace",
            libc::CLONE_NEWNS => "joining the workspace's mount namespace",
            libc::CLONE_NEWNET => "joining the workspace's network namespace",
            _ => "dropping its capabilities",
        }
    }
}

/// The throwaway child's plan: the sandbox to enter, its scratch
/// descriptors, and where it leaves descriptors of its user, mount and
/// network namespaces (it shares the daemon's files table, CLONE_FILES).
struct NamespacePlan {
    sandbox: *const Sandbox,
    scratch: *mut libc::c_int,
    nscratch: usize,
    out: [libc::c_int; 3],
    mask: libc::sigset_t,
    /// Set when a step fails: (step index, errno).
    failed: Option<(usize, libc::c_int)>,
}

impl super::clone::Entry for NamespacePlan {
    fn mask(&mut self) -> &mut libc::sigset_t {
        &mut self.mask
    }
}

/// The namespace kinds a plan can make, in the order of `NamespacePlan::out`
/// and of the setns calls that join them.
const KINDS: [(&std::ffi::CStr, libc::c_int); 3] = [
    (c"/proc/self/ns/user", libc::CLONE_NEWUSER),
    (c"/proc/self/ns/mnt", libc::CLONE_NEWNS),
    (c"/proc/self/ns/net", libc::CLONE_NEWNET),
];

/// The throwaway child: enters the plan, opens each of its namespaces into
/// the shared files table, and ends.
extern "C" fn prepare_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's NamespacePlan, alive while the parent
    // waits for this child to end; only system calls follow.
    unsafe {
        let plan = &mut *(arg as *mut NamespacePlan);
        super::clone::reset_signals();
        let sandbox = &*plan.sandbox;
        let scratch = std::slice::from_raw_parts_mut(plan.scratch, plan.nscratch);
        if let Err(failed) = sandbox.prepare(scratch) {
            // Clones not attached would stay open in the daemon.
            for fd in scratch.iter_mut().filter(|fd| **fd >= 0) {
                libc::close(*fd);
            }
            plan.failed = Some(failed);
            libc::_exit(1);
        }
        let flags = sandbox.clone_flags();
        for (i, (file, kind)) in KINDS.iter().enumerate() {
            if flags & *kind as u64 != 0 {
                plan.out[i] = libc::open(file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            }
        }
        libc::_exit(0)
    }
}

/// Makes a workspace's namespaces: a throwaway child, sharing the daemon's
/// files table (CLONE_FILES), is born in them, enters `sandbox`'s plan
/// (ids, mounts, lo) and leaves a descriptor of each namespace behind before
/// it ends. This is also the proof that this host can enforce the
/// permissions (user namespaces allowed, every mount step accepted); the
/// error names the failing step.
fn make_namespaces(sandbox: &Sandbox) -> Result<Namespaces, String> {
    let mut scratch = vec![-1; sandbox.slots()];
    let mut plan = NamespacePlan {
        sandbox: sandbox as *const _,
        scratch: scratch.as_mut_ptr(),
        nscratch: scratch.len(),
        out: [-1; 3],
        // SAFETY: an all-zero sigset_t is valid; clone_vfork fills it in.
        mask: unsafe { std::mem::zeroed() },
        failed: None,
    };
    let mut stack = vec![0u8; super::clone::STACK];
    let flags = sandbox.clone_flags() | libc::CLONE_FILES as u64;
    // SAFETY: prepare_main reads a NamespacePlan, only makes system calls
    // and ends with _exit.
    let born =
        unsafe { super::clone::clone_vfork(prepare_main, &mut plan, &mut stack, None, flags) }
            .map_err(|e| format!("cannot create its namespaces: {e}"))?;
    super::clone::reap(born.pid);
    let fds: Vec<(OwnedFd, libc::c_int)> = plan
        .out
        .iter()
        .zip(KINDS.map(|(_, kind)| kind))
        .filter(|(fd, _)| **fd >= 0)
        .map(|(fd, kind)| {
            (
                // SAFETY: the child opened these descriptors for us and nothing
                // else owns them; each is taken once.
                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(*fd) },
                kind,
            )
        })
        .collect();
    if let Some((step, errno)) = plan.failed {
        return Err(format!(
            "{}: {}",
            sandbox.describe(step),
            std::io::Error::from_raw_os_error(errno)
        ));
    }
    let wanted = (sandbox.clone_flags() as libc::c_int).count_ones() as usize;
    if fds.len() != wanted {
        return Err(format!(
            "could not open its namespaces in /proc/{}/ns (got {} of {wanted})",
            born.pid,
            fds.len()
        ));
    }
    Ok(Namespaces::new(fds))
}
