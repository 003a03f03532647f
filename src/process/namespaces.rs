//! A workspace's namespaces: made once, by a child that is born in them (pid
//! 1 of a new PID namespace), walks the workspace's [`Sandbox`] plan, mounts
//! a /proc of its PID namespace, leaves the daemon a descriptor of each
//! namespace (user, mount, network, PID) and execs the workspace's init
//! (`init.rs`), which keeps the PID namespace alive; then joined by every
//! command of the workspace between clone and exec ([`Namespaces::join`]),
//! which also gives each command a cgroup namespace rooted at its own leaf.
//! The plan itself, and what the child does with it, is `sandbox.rs`.

use super::init::INIT_ARG;
use super::sandbox::Sandbox;
use shipote_protocol::Permissions;
use std::ffi::CString;
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

/// Descriptors a workspace's namespaces hold (user, mount, network, PID and
/// its init's pidfd) plus what making them opens for a moment.
pub const NAMESPACE_FDS: usize = 10;

/// The kind [`Namespaces`] gives its init's pidfd (no CLONE_NEW* value).
pub const INIT: libc::c_int = 1;

/// The kind [`Namespaces`] gives its Landlock ruleset (no CLONE_NEW* value).
pub const LANDLOCK: libc::c_int = 2;

/// The namespaces of a workspace with permissions `perms` (`None` when it
/// asks for none): [`plan`] then [`make_planned`].
pub fn make(
    perms: &Permissions,
    shielded: &[PathBuf],
    init: &std::path::Path,
    home: Option<&std::path::Path>,
) -> Result<Option<Namespaces>, Refusal> {
    match plan(perms, shielded)? {
        None => Ok(None),
        Some(plan) => make_planned(&plan, init, home).map(Some),
    }
}

/// The sandbox plan of a workspace with permissions `perms` (`None` when it
/// asks for none), for the daemon's own uid and gid, with `shielded` hidden
/// (see [`Sandbox::plan`]): the client's paths checked (`Invalid`), nothing
/// made yet. Touches the filesystem: call it off the supervisor.
pub fn plan(perms: &Permissions, shielded: &[PathBuf]) -> Result<Option<Sandbox>, Refusal> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    Sandbox::plan(perms, uid.as_raw(), gid.as_raw(), shielded).map_err(Refusal::Invalid)
}

/// Makes a planned workspace's namespaces. `init` is the program exec'd as
/// the workspace's init (shipoted itself, run with
/// [`super::init::INIT_ARG`]); it is born in `home`, the leaf of the
/// workspace's keeper when it has one (an existing cgroup: no migration,
/// which costs milliseconds, and no new cgroup), or moved there where clone3
/// is refused; without one, it stays in the daemon's cgroup and watches the
/// daemon ([`super::init::WATCH_ENV`]). Clones: call it off the supervisor.
pub fn make_planned(
    plan: &Sandbox,
    init: &std::path::Path,
    home: Option<&std::path::Path>,
) -> Result<Namespaces, Refusal> {
    crate::process::fds::check(NAMESPACE_FDS).map_err(Refusal::Exhausted)?;
    make_namespaces(plan, init, home).map_err(|e| {
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
    /// user, then mount, network and PID when made: the setns order; and
    /// the init's pidfd (kind [`INIT`]), which is joined by nobody.
    fds: Vec<(std::os::fd::OwnedFd, libc::c_int)>,
}

impl Namespaces {
    /// From descriptors of /proc/PID/ns files and their CLONE_NEW* kinds.
    pub fn new(fds: Vec<(std::os::fd::OwnedFd, libc::c_int)>) -> Self {
        Namespaces { fds }
    }

    /// Its init's pidfd, when it has a PID namespace.
    fn init(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fds
            .iter()
            .find(|(_, kind)| *kind == INIT)
            .map(|(fd, _)| fd.as_fd())
    }

    /// Its Landlock ruleset, enforced by each command before exec.
    pub fn landlock(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fds
            .iter()
            .find(|(_, kind)| *kind == LANDLOCK)
            .map(|(fd, _)| fd.as_fd())
    }

    /// Its init's pid (as this daemon sees it), while the init lives.
    pub fn init_pid(&self) -> Option<u32> {
        use std::os::fd::AsRawFd;
        let fd = self.init()?;
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|p| p.trim().parse::<i64>().ok())
            .filter(|p| *p > 0)
            .map(|p| p as u32)
    }

    /// Kills its init, and with it whatever is left in its PID namespace:
    /// at a workspace's stop, once its commands are gone (the daemon's
    /// child is reaped by [`watch_init`]).
    pub fn end_init(&self) {
        use std::os::fd::AsRawFd;
        if let Some(fd) = self.init() {
            // SAFETY: pidfd_send_signal on a pidfd we own, no siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                );
            }
        }
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
        // SAFETY: setns on descriptors we own; unshare and prctl with
        // integers.
        unsafe {
            for (fd, kind) in self
                .fds
                .iter()
                .filter(|(_, kind)| *kind != INIT && *kind != LANDLOCK)
            {
                if libc::setns(fd.as_raw_fd(), *kind) != 0 {
                    return Err((*kind, *libc::__errno_location()));
                }
            }
            // A cgroup namespace rooted at the command's own leaf (it is
            // there already): it sees itself at `/`, and could not move
            // itself anywhere else even through a writable cgroupfs.
            if self.has_pid() && libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
                return Err((libc::CLONE_NEWCGROUP, *libc::__errno_location()));
            }
            if !super::sandbox::drop_caps() {
                return Err((0, *libc::__errno_location()));
            }
        }
        Ok(())
    }

    /// Whether it has a PID namespace: a command joining it execs as the
    /// child of the one that joined (see `spawn.rs`).
    pub fn has_pid(&self) -> bool {
        self.fds.iter().any(|(_, kind)| *kind == libc::CLONE_NEWPID)
    }

    /// Names a [`Namespaces::join`] failure.
    pub fn describe(kind: libc::c_int) -> &'static str {
        match kind {
            libc::CLONE_NEWUSER => "joining the workspace's user namespace",
            libc::CLONE_NEWNS => "joining the workspace's mount namespace",
            libc::CLONE_NEWNET => "joining the workspace's network namespace",
            libc::CLONE_NEWPID => "joining the workspace's PID namespace",
            libc::CLONE_NEWCGROUP => "making its cgroup namespace",
            _ => "dropping its capabilities",
        }
    }
}

/// The child's plan: the sandbox to enter, its scratch descriptors, where it
/// leaves descriptors of its namespaces (it shares the daemon's files table,
/// CLONE_FILES), and the init it becomes.
struct NamespacePlan {
    sandbox: *const Sandbox,
    scratch: *mut libc::c_int,
    nscratch: usize,
    mask: libc::sigset_t,
    /// The init program (an open descriptor), its argv and environment.
    init: libc::c_int,
    /// The descriptor the init watches for the daemon's end (-1: none).
    watch: libc::c_int,
    /// Set when the watch could not be handed over (close_range missing).
    watch_lost: bool,
    init_argv: *const *const libc::c_char,
    init_envp: *mut *const libc::c_char,
    /// Set when a step fails: (step, errno); a step of the sandbox's plan or
    /// one of `STEP_PROC`, `STEP_INIT`.
    failed: Option<(Step, libc::c_int)>,
    /// Where the child reports its namespaces as soon as they are made,
    /// before its exec (see [`Handoff`]).
    handoff: *const Handoff,
}

/// What the child reports as soon as the namespaces are made, before it
/// execs the init, and a pipe it writes one byte to then (or when it fails
/// first): the daemon need not wait for the exec. The thread that cloned
/// the child stays suspended until the exec (CLONE_VFORK) and keeps the
/// plan and stack alive meanwhile; this part is shared with whoever waits.
#[derive(Debug)]
pub struct Handoff {
    out: [std::sync::atomic::AtomicI32; 4],
    landlock: std::sync::atomic::AtomicI32,
    /// The child's pid in the daemon's PID namespace (it reads /proc/self
    /// before its own /proc is mounted).
    pid: std::sync::atomic::AtomicI32,
    /// 0: made; else the failing step's code ([`Step::code`]), its index
    /// in the sandbox's plan, and errno.
    failed: std::sync::atomic::AtomicU32,
    failed_index: std::sync::atomic::AtomicUsize,
    failed_errno: std::sync::atomic::AtomicI32,
    /// Set when the child is to be moved into its home (clone3 refused).
    moved: std::sync::atomic::AtomicBool,
    notify_r: OwnedFd,
    notify_w: OwnedFd,
}

impl Handoff {
    fn new() -> std::io::Result<Handoff> {
        use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize};
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(Handoff {
            out: std::array::from_fn(|_| AtomicI32::new(-1)),
            landlock: AtomicI32::new(-1),
            pid: AtomicI32::new(0),
            failed: AtomicU32::new(0),
            failed_index: AtomicUsize::new(0),
            failed_errno: AtomicI32::new(0),
            moved: AtomicBool::new(false),
            notify_r: r,
            notify_w: w,
        })
    }

    /// Called in the child (or by the cloning thread when there is no
    /// child): says the namespaces are made, or why not.
    ///
    /// # Safety
    /// Only system calls and atomics: fit for the child.
    unsafe fn report(&self, failed: Option<(Step, libc::c_int)>) {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering::{Relaxed, Release};
        if let Some((step, errno)) = failed {
            if let Step::Sandbox(i) = step {
                self.failed_index.store(i, Relaxed);
            }
            self.failed_errno.store(errno, Relaxed);
            self.failed.store(step.code(), Release);
        }
        // SAFETY: one byte to our pipe.
        unsafe { libc::write(self.notify_w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    }
}

/// What failed in the child.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A step of the sandbox's plan (see [`Sandbox::describe`]).
    Sandbox(usize),
    /// Mounting the PID namespace's /proc.
    Proc,
    /// Exec'ing the init.
    Init,
    /// Building the Landlock ruleset.
    Landlock,
    /// Cloning the child itself (the errno is clone's).
    Clone,
}

impl Step {
    /// The step as a number, for [`Handoff`] (0 is none).
    fn code(self) -> u32 {
        match self {
            Step::Clone => 1,
            Step::Proc => 2,
            Step::Init => 3,
            Step::Landlock => 4,
            Step::Sandbox(_) => 5,
        }
    }

    fn from_code(code: u32, index: usize) -> Step {
        match code {
            1 => Step::Clone,
            2 => Step::Proc,
            3 => Step::Init,
            4 => Step::Landlock,
            _ => Step::Sandbox(index),
        }
    }
}

impl super::clone::Entry for NamespacePlan {
    fn mask(&mut self) -> &mut libc::sigset_t {
        &mut self.mask
    }
}

/// The namespace kinds a plan can make, in the order of `NamespacePlan::out`
/// and of the setns calls that join them (user first: it grants the rights
/// to join the others).
const KINDS: [(&std::ffi::CStr, libc::c_int); 4] = [
    (c"/proc/self/ns/user", libc::CLONE_NEWUSER),
    (c"/proc/self/ns/mnt", libc::CLONE_NEWNS),
    (c"/proc/self/ns/net", libc::CLONE_NEWNET),
    (c"/proc/self/ns/pid", libc::CLONE_NEWPID),
];

/// The child, pid 1 of its new PID namespace: enters the plan, mounts the
/// namespace's own /proc, opens each of its namespaces into the shared
/// files table and execs the init (exec gives it a files table of its own).
extern "C" fn prepare_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's NamespacePlan, alive while the parent
    // waits for this child to exec or end; only system calls follow.
    unsafe {
        let plan = &mut *(arg as *mut NamespacePlan);
        super::clone::reset_signals();
        let sandbox = &*plan.sandbox;
        let handoff = &*plan.handoff;
        let scratch = std::slice::from_raw_parts_mut(plan.scratch, plan.nscratch);
        let fail = |plan: &mut NamespacePlan, step: Step, errno: libc::c_int| -> ! {
            plan.failed = Some((step, errno));
            (*plan.handoff).report(Some((step, errno)));
            libc::_exit(1)
        };
        // Its pid as the daemon sees it: /proc is still the daemon's here.
        let mut link = [0u8; 16];
        let n = libc::readlink(c"/proc/self".as_ptr(), link.as_mut_ptr().cast(), link.len());
        let pid = link[..n.max(0) as usize]
            .iter()
            .try_fold(0i32, |acc, d| {
                d.is_ascii_digit().then(|| acc * 10 + i32::from(d - b'0'))
            })
            .unwrap_or(0);
        handoff.pid.store(pid, std::sync::atomic::Ordering::Relaxed);
        if let Err((step, errno)) = sandbox.prepare(scratch) {
            // Clones not attached would stay open in the daemon.
            for fd in scratch.iter_mut().filter(|fd| **fd >= 0) {
                libc::close(*fd);
            }
            fail(plan, Step::Sandbox(step), errno);
        }
        // The namespace's own /proc: its commands see only each other.
        if libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            fail(plan, Step::Proc, *libc::__errno_location());
        }
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(rules) = sandbox.landlock() {
            match rules.build() {
                Ok(fd) => handoff.landlock.store(fd, Relaxed),
                Err(errno) => fail(plan, Step::Landlock, errno),
            }
        }
        let flags = sandbox.clone_flags();
        for (i, (file, kind)) in KINDS.iter().enumerate() {
            if flags & *kind as u64 != 0 {
                let fd = libc::open(file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                handoff.out[i].store(fd, Relaxed);
            }
        }
        // Made: whoever waits may go on; the exec happens meanwhile.
        handoff.report(None);
        // Out of the daemon's files table, keeping only what is up to the
        // init program's and the watched descriptors (0, 1, 2 and, as they
        // were opened early, little else): the daemon's table is not copied
        // whole. Then only those two are left (the program's closes at
        // exec), the watched one kept across the exec.
        let (exe, watch) = (plan.init, plan.watch);
        let top = exe.max(watch) as libc::c_uint;
        const CLOSE_RANGE_UNSHARE: libc::c_uint = 1 << 1;
        if libc::syscall(
            libc::SYS_close_range,
            top + 1,
            libc::c_uint::MAX,
            CLOSE_RANGE_UNSHARE,
        ) == 0
        {
            for fd in 3..top as libc::c_int {
                if fd != exe && fd != watch {
                    libc::close(fd);
                }
            }
            if watch >= 0 {
                libc::fcntl(watch, libc::F_SETFD, 0);
            }
        } else if watch >= 0 {
            // Old kernel: the daemon's table stays shared until exec, so
            // the watched descriptor is not kept (the init then only leaves
            // with its workspace).
            plan.watch_lost = true;
            *plan.init_envp = std::ptr::null();
        }
        libc::syscall(
            libc::SYS_execveat,
            plan.init,
            c"".as_ptr(),
            plan.init_argv,
            plan.init_envp,
            libc::AT_EMPTY_PATH,
        );
        fail(plan, Step::Init, *libc::__errno_location())
    }
}

/// Makes a workspace's namespaces, waiting for the init's exec.
fn make_namespaces(
    sandbox: &Sandbox,
    init: &std::path::Path,
    home: Option<&std::path::Path>,
) -> Result<Namespaces, String> {
    let handoff = Handoff::new().map_err(|e| format!("cannot make a pipe: {e}"))?;
    if let Err(e) = spawn_child(sandbox, init, home, &handoff) {
        // Whatever it opened before it failed is closed.
        let _ = collect(&handoff, wanted(sandbox), home);
        return Err(e);
    }
    collect(&handoff, wanted(sandbox), home)
}

/// Makes a planned workspace's namespaces (see [`make_planned`]) and
/// answers as soon as they are made: the init's exec (a fifth of the time)
/// goes on meanwhile on the blocking thread that cloned it.
pub async fn make_planned_async(
    plan: Sandbox,
    init: PathBuf,
    home: Option<PathBuf>,
) -> Result<Namespaces, Refusal> {
    crate::process::fds::check(NAMESPACE_FDS).map_err(Refusal::Exhausted)?;
    let refusal = |e: String| {
        if crate::process::fds::names_exhaustion(&e) {
            Refusal::Exhausted(crate::process::fds::shortage())
        } else {
            Refusal::Unenforceable(e)
        }
    };
    let handoff = std::sync::Arc::new(
        Handoff::new().map_err(|e| refusal(format!("cannot make a pipe: {e}")))?,
    );
    let wanted = wanted(&plan);
    let notify = handoff
        .notify_r
        .try_clone()
        .map_err(|e| refusal(format!("cannot copy a pipe: {e}")))?;
    // SAFETY: the AsyncFd owns its copy of the pipe's read end.
    let notify = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(notify, tokio::io::Interest::READABLE)
    }
    .map_err(|e| refusal(format!("cannot watch a pipe: {}", e.into_parts().1)))?;
    let (h, home2) = (handoff.clone(), home.clone());
    let child =
        tokio::task::spawn_blocking(move || spawn_child(&plan, &init, home2.as_deref(), &h));
    // One byte: made, or failed (the child's report, or the clone's).
    let _ = notify.readable().await;
    if handoff.failed.load(std::sync::atomic::Ordering::Acquire) != 0 {
        let _ = collect(&handoff, wanted, home.as_deref());
        return Err(refusal(match child.await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => "its init ended at once".to_owned(),
            Err(e) => e.to_string(),
        }));
    }
    collect(&handoff, wanted, home.as_deref()).map_err(refusal)
}

/// How many namespace descriptors a plan makes.
fn wanted(sandbox: &Sandbox) -> usize {
    (sandbox.clone_flags() as libc::c_int).count_ones() as usize
}

/// Clones the child that makes the namespaces and becomes the init, born in
/// `home` when given, and returns once it has exec'd or ended (it shares
/// this thread's memory until then). Its report goes to `handoff`; the
/// error is the failing step, described. A child that failed is reaped.
fn spawn_child(
    sandbox: &Sandbox,
    init: &std::path::Path,
    home: Option<&std::path::Path>,
    handoff: &Handoff,
) -> Result<(), String> {
    let fail_now = |e: String| {
        // SAFETY: a write to our pipe.
        unsafe { handoff.report(Some((Step::Clone, 0))) };
        e
    };
    let early = early(init).map_err(fail_now)?;
    let opened;
    let exe = if early.path == init {
        &early.exe
    } else {
        opened = open_init(init).map_err(fail_now)?;
        &opened
    };
    let home = match home {
        Some(dir) => Some((
            dir.to_owned(),
            std::fs::File::open(dir).map_err(|e| {
                fail_now(format!(
                    "cannot open its init's cgroup {}: {e}",
                    dir.display()
                ))
            })?,
        )),
        None => None,
    };
    let watch = if home.is_none() {
        std::os::fd::AsRawFd::as_raw_fd(&early.watch)
    } else {
        -1
    };
    let watch_env = CString::new(format!("{}={watch}", super::init::WATCH_ENV)).expect("no NUL");
    let argv = [
        c"shipote-init".as_ptr(),
        INIT_ARG.as_ptr(),
        std::ptr::null(),
    ];
    let mut envp = [
        if watch >= 0 {
            watch_env.as_ptr()
        } else {
            std::ptr::null()
        },
        std::ptr::null(),
    ];
    let mut scratch = vec![-1; sandbox.slots()];
    let mut plan = NamespacePlan {
        sandbox: sandbox as *const _,
        scratch: scratch.as_mut_ptr(),
        nscratch: scratch.len(),
        // SAFETY: an all-zero sigset_t is valid; clone_vfork fills it in.
        mask: unsafe { std::mem::zeroed() },
        init: std::os::fd::AsRawFd::as_raw_fd(exe),
        watch,
        watch_lost: false,
        init_argv: argv.as_ptr(),
        init_envp: envp.as_mut_ptr(),
        failed: None,
        handoff: handoff as *const _,
    };
    let mut stack = vec![0u8; super::clone::STACK];
    let flags = sandbox.clone_flags() | libc::CLONE_FILES as u64;
    // SAFETY: prepare_main reads a NamespacePlan, only makes system calls
    // and ends with execveat or _exit.
    let clone = |plan: &mut NamespacePlan, stack: &mut [u8], cgroup| unsafe {
        super::clone::clone_vfork(prepare_main, plan, stack, cgroup, flags)
    };
    // Born in its home; where clone3 is refused, moved there once it runs.
    let born = match &home {
        Some((_, dir)) => clone(&mut plan, &mut stack, Some(dir)).or_else(|e| {
            tracing::debug!(error = %e, "clone3 into the keeper's leaf refused; the init is moved there");
            handoff.moved.store(true, std::sync::atomic::Ordering::Relaxed);
            clone(&mut plan, &mut stack, None)
        }),
        None => clone(&mut plan, &mut stack, None),
    }
    .map_err(|e| fail_now(format!("cannot create its namespaces: {e}")))?;
    if plan.watch_lost {
        tracing::warn!("this kernel has no close_range: a workspace's init does not watch the daemon, and outlives a daemon killed outside systemd");
    }
    let Some((step, errno)) = plan.failed else {
        // Exec'd, or ended without a word (killed before it reported): a
        // byte so that whoever waits looks (a second one changes nothing).
        // SAFETY: a write to our pipe.
        unsafe { handoff.report(None) };
        return Ok(());
    };
    super::clone::reap(born.pid);
    let what = match step {
        Step::Sandbox(i) => sandbox.describe(i),
        Step::Proc => "mounting its PID namespace's /proc".into(),
        Step::Init => format!("running {} as its init", init.display()),
        Step::Landlock => "building its Landlock ruleset".into(),
        Step::Clone => "cloning its first process".into(),
    };
    Err(format!(
        "{what}: {}",
        std::io::Error::from_raw_os_error(errno)
    ))
}

/// The namespaces a child reported made (`wanted` of them), its init's
/// pidfd, and its Landlock ruleset.
fn collect(
    handoff: &Handoff,
    wanted: usize,
    home: Option<&std::path::Path>,
) -> Result<Namespaces, String> {
    use std::sync::atomic::Ordering::{Acquire, Relaxed};
    let take = |fd: i32| {
        // SAFETY: the child opened this descriptor for us and nothing else
        // owns it; each is taken once.
        (fd >= 0).then(|| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    };
    let failed = handoff.failed.load(Acquire);
    let mut fds: Vec<(OwnedFd, libc::c_int)> = handoff
        .out
        .iter()
        .zip(KINDS.map(|(_, kind)| kind))
        .filter_map(|(fd, kind)| Some((take(fd.swap(-1, Relaxed))?, kind)))
        .collect();
    let landlock = take(handoff.landlock.swap(-1, Relaxed));
    if failed != 0 {
        let step = Step::from_code(failed, handoff.failed_index.load(Relaxed));
        let errno = handoff.failed_errno.load(Relaxed);
        return Err(format!(
            "making its namespaces failed ({step:?}): {}",
            std::io::Error::from_raw_os_error(errno)
        ));
    }
    let pid = handoff.pid.load(Relaxed);
    let pidfd = match super::spawn::pidfd_open(pid) {
        Ok(fd) if pid > 0 => fd,
        Ok(_) | Err(_) => {
            return Err(format!(
                "its init (pid {pid}) ended before it could be watched"
            ));
        }
    };
    // An init that cannot serve is killed, and reaped once gone.
    let kill = |why: String| {
        // SAFETY: SIGKILL to our own child through its pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                std::os::fd::AsRawFd::as_raw_fd(&pidfd),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
        }
        watch_init(pid, &pidfd);
        why
    };
    if fds.len() != wanted {
        return Err(kill(format!(
            "could not open its namespaces in /proc/{pid}/ns (got {} of {wanted})",
            fds.len()
        )));
    }
    if let (Some(home), true) = (home, handoff.moved.load(Relaxed)) {
        let procs = home.join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, pid.to_string()) {
            return Err(kill(format!(
                "cannot move its init into {}: {e}",
                procs.display()
            )));
        }
    }
    if let Some(fd) = landlock {
        fds.push((fd, LANDLOCK));
    }
    watch_init(pid, &pidfd);
    fds.push((pidfd, INIT));
    Ok(Namespaces::new(fds))
}

/// What every init is made from, opened once, early ([`open_init_early`]):
/// the program, and the pipe whose read end an init without a keeper
/// watches (the daemon holds the write end until it ends).
struct Early {
    path: PathBuf,
    watch: OwnedFd,
    _watched: OwnedFd,
    exe: std::fs::File,
}

static EARLY: std::sync::OnceLock<Early> = std::sync::OnceLock::new();

fn early(init: &std::path::Path) -> Result<&'static Early, String> {
    if let Some(e) = EARLY.get() {
        return Ok(e);
    }
    let (watch, watched) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make its init's pipe: {e}"))?;
    let exe = open_init(init)?;
    Ok(EARLY.get_or_init(|| Early {
        path: init.to_owned(),
        watch,
        _watched: watched,
        exe,
    }))
}

fn open_init(init: &std::path::Path) -> Result<std::fs::File, String> {
    std::fs::File::open(init)
        .map_err(|e| format!("cannot open {} to run as its init: {e}", init.display()))
}

/// Opens the program run as every sandboxed workspace's init, and the pipe
/// inits without a keeper watch, at the daemon's start: their descriptors
/// then have low numbers, and the child that becomes an init keeps only the
/// descriptors up to them when it leaves the daemon's files table
/// (close_range CLOSE_RANGE_UNSHARE), instead of copying the whole table
/// (one entry per workspace namespace, log, pipe...) for its exec to close.
/// It also names the binary the daemon was started from, whatever an
/// upgrade puts at its path later.
pub fn open_init_early(init: &std::path::Path) {
    if let Err(e) = early(init) {
        tracing::warn!(error = %e, "sandboxed workspaces will not start");
    }
}

/// Reaps the init (this daemon's child) once it ends, when a runtime runs.
fn watch_init(pid: i32, pidfd: &OwnedFd) {
    let (Ok(rt), Ok(fd)) = (tokio::runtime::Handle::try_current(), pidfd.try_clone()) else {
        return;
    };
    rt.spawn(async move {
        // SAFETY: the AsyncFd owns its copy of the pidfd for its whole life.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        };
        if let Ok(fd) = fd {
            let _ = fd.readable().await;
        }
        let mut status = 0;
        // SAFETY: reaps our own child, which has ended.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipote_protocol::NetworkAccess;

    fn network_none() -> Option<Sandbox> {
        let perms = Permissions {
            network: NetworkAccess::None,
            ..Permissions::default()
        };
        // Where user namespaces are off there is nothing to make.
        if !crate::host::HostCaps::probe()
            .user_ns
            .starts_with("allowed")
        {
            return None;
        }
        plan(&perms, &[]).unwrap()
    }

    #[test]
    fn a_child_that_cannot_become_the_init_refuses_the_namespaces_naming_why() {
        let Some(sandbox) = network_none() else {
            return;
        };
        // Not a program: its exec fails after the namespaces were made.
        let not_a_program = std::path::Path::new("/etc/passwd");
        let e = make_planned(&sandbox, not_a_program, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("running /etc/passwd as its init"), "{e}");
        // The same through the early answer, which does not wait for the
        // exec: it learns of the failure either before it looks (refused) or
        // after (an init that is gone: its first command says so).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let made = rt.block_on(make_planned_async(sandbox, not_a_program.into(), None));
        if let Err(e) = made {
            assert!(e.to_string().contains("as its init"), "{e}");
        }
    }

    #[test]
    fn the_early_answer_gives_every_namespace_and_a_live_init() {
        let Some(sandbox) = network_none() else {
            return;
        };
        // sleep stands in for the init (given the init's arguments, it ends
        // at once: the namespaces are made all the same).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let Ok(sleep) =
            crate::process::spawn::resolve("sleep", "/usr/bin:/bin", std::path::Path::new("/"))
        else {
            return;
        };
        let ns = rt
            .block_on(make_planned_async(sandbox, sleep, None))
            .unwrap();
        assert!(ns.has_pid());
        let kinds: Vec<libc::c_int> = ns.fds().map(|(_, k)| k).collect();
        for k in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
            INIT,
        ] {
            assert!(kinds.contains(&k), "{kinds:?}");
        }
        assert!(ns.init_pid().is_some());
        ns.end_init();
    }
}
