//! Starting a workspace command: program resolution like a shell's, a clean
//! environment, and placement in the command's cgroup leaf *before* exec: the
//! child is born in the leaf (clone3 CLONE_INTO_CGROUP) or, where clone3 is
//! refused, writes `0` to the leaf's cgroup.procs before exec, so not one
//! instruction of the program runs outside.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// PATH when the daemon has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Why a command could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program is not in PATH.
    #[error("{exec:?} not found in PATH ({path}); give a full path or install it")]
    NotFound {
        /// What was asked for.
        exec: String,
        /// The PATH searched.
        path: String,
    },
    /// A path (a name with a slash) that does not exist.
    #[error("{} does not exist (a relative path is taken from the command's working directory: your home, or --cwd)", path.display())]
    NoSuchFile {
        /// The path, made absolute.
        path: PathBuf,
    },
    /// The file exists but cannot be executed.
    #[error("{} is not an executable file", path.display())]
    NotExecutable {
        /// The file.
        path: PathBuf,
    },
    /// The working directory is not usable.
    #[error("working directory {}: {source}", path.display())]
    Cwd {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A variable name or value cannot be passed to a program.
    #[error("environment variable {0:?} is invalid (empty name, '=' in the name, or a NUL byte)")]
    BadEnv(String),
    /// The program, an argument or the working directory holds a NUL byte,
    /// which no program can be given.
    #[error("{what} {text:?} holds a NUL byte; a program cannot be given one")]
    Nul {
        /// `program`, `argument 2`, `working directory`.
        what: String,
        /// The text up to the NUL byte.
        text: String,
    },
    /// fork/exec or the placement in the cgroup failed.
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

pub use super::env::{base_env, merge_env, resolve};
pub use super::fds::raise_nofile_limit;

/// The program to run and where: everything of a start but its descriptors
/// (sent as is to a workspace's keeper, which starts it the same way).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Program {
    /// The resolved program.
    pub program: PathBuf,
    /// argv[0] (the name asked for).
    pub arg0: String,
    /// Arguments after argv[0].
    pub args: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The command's cgroup leaf directory; `None` without cgroups.
    pub cgroup: Option<PathBuf>,
}

/// What to start.
#[derive(Debug)]
pub struct Launch {
    /// The program, its arguments, environment, directory and leaf.
    pub program: Program,
    /// Standard input; `None`: /dev/null.
    pub stdin: Option<OwnedFd>,
    /// Write end for stdout.
    pub stdout: OwnedFd,
    /// Write end for stderr.
    pub stderr: OwnedFd,
    /// Descriptors the program gets as 3, 4, ... in this order.
    pub extra_fds: Vec<OwnedFd>,
    /// The workspace's namespaces, joined before exec; `None`: the daemon's
    /// own.
    pub namespaces: Option<std::sync::Arc<super::namespaces::Namespaces>>,
}

/// A started command's process, waited for through its pidfd.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    pidfd: OwnedFd,
}

impl Child {
    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Reaps it once it has ended (blocking: for one just killed).
    pub fn reap(self) {
        super::clone::reap(self.pid);
    }

    /// Waits for it to end and reaps it. Must run inside the tokio runtime.
    pub async fn wait(self) -> std::io::Result<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        // SAFETY: the AsyncFd owns the pidfd, so it stays open and the same
        // for the AsyncFd's whole life.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                self.pidfd,
                tokio::io::Interest::READABLE,
            )
        }
        .map_err(|e| e.into_parts().1)?;
        // A pidfd turns readable when its process has exited.
        let _ready = fd.readable().await?;
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child; `status` is a valid out pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                return Ok(std::process::ExitStatus::from_raw(status));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Everything a command's child needs, prepared before the clone: between
/// clone and exec it only makes system calls (no allocation, no lock).
struct CommandPlan {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    procs: libc::c_int,
    /// Source descriptors for 0, 1, 2, 3, ...: all numbered at least `nfds`,
    /// so no dup2 overwrites a source not yet duplicated.
    fds: *const libc::c_int,
    nfds: usize,
    /// The caller's signal mask, saved across the clone (the program
    /// starts with none blocked).
    mask: libc::sigset_t,
    /// Set by the child when a step fails: (step, errno).
    failed: (libc::c_int, libc::c_int),
    /// The workspace namespaces to join (null: none).
    namespaces: *const super::namespaces::Namespaces,
    /// Which namespace kind to join failed.
    join_kind: libc::c_int,
    /// The seccomp deny-list to install before exec (null: none).
    seccomp: *const libc::sock_fprog,
    /// The workspace's Landlock ruleset to enforce before exec (-1: none).
    landlock: libc::c_int,
    /// Where the program's process runs when it is not the first child
    /// (a PID namespace is joined for the children of the joiner): the top
    /// of its stack, and its pid, set by the first child.
    inner_stack: *mut libc::c_void,
    inner: libc::pid_t,
}

impl super::clone::Entry for CommandPlan {
    fn mask(&mut self) -> &mut libc::sigset_t {
        &mut self.mask
    }
}

const STEP_CGROUP: libc::c_int = 1;
const STEP_SETSID: libc::c_int = 2;
const STEP_FDS: libc::c_int = 3;
const STEP_CWD: libc::c_int = 4;
const STEP_EXEC: libc::c_int = 5;
const STEP_JOIN: libc::c_int = 8;
const STEP_NO_NEW_PRIVS: libc::c_int = 7;
const STEP_SECCOMP: libc::c_int = 9;
const STEP_FORK: libc::c_int = 10;
const STEP_LANDLOCK: libc::c_int = 11;

/// The command's child, on its own stack, sharing the daemon's memory while
/// the daemon is suspended: it joins the leaf cgroup (when not born there)
/// and the workspace's namespaces, then execs the program ([`exec_main`]).
/// A PID namespace only takes the children of whoever joins it: then this
/// child makes the program's process, born in the namespace as the
/// daemon's child (CLONE_PARENT, sharing the same memory), and ends.
extern "C" fn command_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's CommandPlan, alive while the parent waits
    // for this child to exec or exit; only async-signal-safe calls follow.
    unsafe {
        let plan = &mut *(arg as *mut CommandPlan);
        super::clone::reset_signals();
        if plan.procs >= 0 && libc::write(plan.procs, b"0".as_ptr().cast(), 1) != 1 {
            fail(plan, STEP_CGROUP);
        }
        // Into the workspace's namespaces, after its cgroup (joined as the
        // daemon's user) and before anything of the command's own.
        if plan.namespaces.is_null() {
            return exec_main(arg);
        }
        let namespaces = &*plan.namespaces;
        if let Err((kind, errno)) = namespaces.join() {
            plan.join_kind = kind;
            *libc::__errno_location() = errno;
            fail(plan, STEP_JOIN);
        }
        if !namespaces.has_pid() {
            return exec_main(arg);
        }
        let pid = libc::clone(
            exec_main,
            plan.inner_stack,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT,
            arg,
        );
        if pid < 0 {
            fail(plan, STEP_FORK);
        }
        plan.inner = pid;
        libc::_exit(0)
    }
}

/// Records the failing step and errno, and ends the child.
///
/// # Safety
/// Only in a command's child.
unsafe fn fail(plan: &mut CommandPlan, step: libc::c_int) -> ! {
    // SAFETY: this thread's errno slot; _exit ends the child.
    unsafe {
        plan.failed = (step, *libc::__errno_location());
        libc::_exit(127)
    }
}

/// The program's process, in its cgroup and namespaces: becomes a session
/// leader, sets up its fds, directory, limits and signals, and execs.
extern "C" fn exec_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: as in command_main.
    unsafe {
        let plan = &mut *(arg as *mut CommandPlan);
        if libc::setsid() < 0 {
            fail(plan, STEP_SETSID);
        }
        // Workspace commands never gain privileges (setuid, file caps).
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(plan, STEP_NO_NEW_PRIVS);
        }
        // A sandboxed command's Landlock rules (process/landlock.rs), while
        // the ruleset's descriptor is still where the plan says.
        if plan.landlock >= 0 && !super::landlock::restrict_self(plan.landlock) {
            fail(plan, STEP_LANDLOCK);
        }
        for (target, &fd) in std::slice::from_raw_parts(plan.fds, plan.nfds)
            .iter()
            .enumerate()
        {
            let target = target as libc::c_int;
            let r = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if r < 0 {
                fail(plan, STEP_FDS);
            }
        }
        if libc::chdir(plan.cwd) < 0 {
            fail(plan, STEP_CWD);
        }
        // Nothing else of the daemon's reaches the program: not even
        // descriptors it inherited without close-on-exec (close_range,
        // Linux 5.9; where it is missing, ours are all close-on-exec).
        libc::syscall(
            libc::SYS_close_range,
            plan.nfds as libc::c_uint,
            libc::c_uint::MAX,
            0,
        );
        // A sandboxed command's last layer (process/seccomp.rs).
        if !plan.seccomp.is_null() && !super::seccomp::install(plan.seccomp) {
            fail(plan, STEP_SECCOMP);
        }
        // Every signal unblocked, whatever the spawning thread blocks (a
        // keeper blocks SIGCHLD for its signalfd).
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // The descriptor limit the daemon was started with, not the one it
        // raised for itself (select(2)-based programs break above 1024).
        let soft = super::fds::ORIGINAL_NOFILE_SOFT.load(std::sync::atomic::Ordering::Relaxed);
        if soft != 0 {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur > soft {
                lim.rlim_cur = soft;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
        libc::execve(plan.program, plan.argv, plan.envp);
        fail(plan, STEP_EXEC)
    }
}

fn cstring(s: impl Into<Vec<u8>>) -> Result<CString, SpawnError> {
    CString::new(s)
        .map_err(|e| SpawnError::BadEnv(String::from_utf8_lossy(&e.into_vec()).into_owned()))
}

/// /dev/null, opened once, for every command's stdin.
fn dev_null() -> std::io::Result<&'static File> {
    static NULL: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    if let Some(f) = NULL.get() {
        return Ok(f);
    }
    let f = File::open("/dev/null")?;
    Ok(NULL.get_or_init(|| f))
}

/// Starts the command in its own session (so it has a process group to
/// signal), in its cgroup leaf before exec, and returns once it has exec'd.
///
/// The child is made with CLONE_VM | CLONE_VFORK, like posix_spawn: no copy
/// of the daemon's page tables, so it costs what a small program's spawn
/// costs (a fork of the daemon is 4-5 times slower). CLONE_PIDFD gives a
/// pidfd to wait on, so no other waiter can take its exit status.
pub fn spawn(l: Launch) -> Result<Child, SpawnError> {
    use std::os::unix::ffi::OsStrExt;
    let Launch {
        program: p,
        stdin,
        stdout,
        stderr,
        extra_fds,
        namespaces,
    } = l;
    if let Err(source) = std::fs::read_dir(&p.cwd) {
        return Err(SpawnError::Cwd {
            path: p.cwd,
            source,
        });
    }
    let spawn_err = |program: &Path, source: std::io::Error| SpawnError::Spawn {
        program: program.to_owned(),
        source,
    };
    let nul = |what: String| {
        move |e: std::ffi::NulError| {
            let pos = e.nul_position();
            SpawnError::Nul {
                what,
                text: String::from_utf8_lossy(&e.into_vec()[..pos]).into_owned(),
            }
        }
    };
    let program = CString::new(p.program.as_os_str().as_bytes()).map_err(nul("program".into()))?;
    let cwd =
        CString::new(p.cwd.as_os_str().as_bytes()).map_err(nul("working directory".into()))?;
    let args: Vec<CString> = std::iter::once(p.arg0.as_str())
        .chain(p.args.iter().map(String::as_str))
        .enumerate()
        .map(|(i, a)| CString::new(a).map_err(nul(format!("argument {i}"))))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = p
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let null = dev_null().map_err(|e| spawn_err(&p.program, e))?;
    let sources: Vec<std::os::fd::BorrowedFd<'_>> = [
        stdin.as_ref().map_or(null.as_fd(), |f| f.as_fd()),
        stdout.as_fd(),
        stderr.as_fd(),
    ]
    .into_iter()
    .chain(extra_fds.iter().map(|f| f.as_fd()))
    .collect();
    // Sources below the highest target are first copied above it.
    let nfds = sources.len();
    let mut raised = Vec::new();
    let mut fds = Vec::with_capacity(nfds);
    for src in sources {
        if (src.as_raw_fd() as usize) < nfds {
            let copy = nix::fcntl::fcntl(src, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(nfds as i32))
                .map_err(|e| spawn_err(&p.program, e.into()))?;
            // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor we own.
            let copy = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) };
            fds.push(copy.as_raw_fd());
            raised.push(copy);
        } else {
            fds.push(src.as_raw_fd());
        }
    }
    let mut plan = CommandPlan {
        program: program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd.as_ptr(),
        procs: -1,
        fds: fds.as_ptr(),
        nfds,
        // SAFETY: an all-zero sigset_t is valid; clone_vfork fills it in.
        mask: unsafe { std::mem::zeroed() },
        failed: (0, 0),
        namespaces: namespaces
            .as_deref()
            .map_or(std::ptr::null(), |s| s as *const _),
        join_kind: 0,
        seccomp: if namespaces.is_some() {
            super::seccomp::prepared()
        } else {
            std::ptr::null()
        },
        inner_stack: std::ptr::null_mut(),
        inner: 0,
        landlock: namespaces
            .as_deref()
            .and_then(|n| n.landlock())
            .map_or(-1, |fd| fd.as_raw_fd()),
    };
    // SAFETY: command_main reads a CommandPlan and only makes system calls
    // before it execs or _exits.
    let clone = |plan: &mut CommandPlan, stack: &mut [u8], cgroup: Option<&File>| unsafe {
        super::clone::clone_vfork(command_main, plan, stack, cgroup, 0)
    };
    // One stack per spawning thread, reused: no allocation (and no fresh
    // pages for the child to fault in) per command. Its lower half is the
    // program's process's when the first child makes one.
    thread_local! {
        static STACK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 2 * super::clone::STACK]);
    }
    let born = STACK.with_borrow_mut(|stack| {
        let (inner, stack) = stack.split_at_mut(super::clone::STACK);
        // SAFETY: one past the end of `inner`, rounded down to 16 bytes.
        plan.inner_stack = unsafe { inner.as_mut_ptr().add(inner.len()) }.cast();
        plan.inner_stack = ((plan.inner_stack as usize) & !15) as *mut libc::c_void;
        match &p.cgroup {
        None => clone(&mut plan, stack, None),
        Some(dir) => {
            let open_err = |e: std::io::Error| {
                let what = format!("cannot open its cgroup {}: {e}", dir.display());
                std::io::Error::new(e.kind(), what)
            };
            let dir_fd = File::open(dir).map_err(open_err)?;
            // Born in its cgroup (clone3 CLONE_INTO_CGROUP, Linux 5.7): no
            // migration at all. Where clone3 is refused (old kernel, seccomp),
            // the child moves itself there before exec.
            match clone(&mut plan, stack, Some(&dir_fd)) {
                Ok(started) => Ok(started),
                Err(e) => {
                    tracing::debug!(error = %e, "clone3 into the cgroup refused; the child moves itself");
                    let procs = std::fs::OpenOptions::new()
                        .write(true)
                        .open(dir.join("cgroup.procs"))
                        .map_err(open_err)?;
                    plan.procs = procs.as_raw_fd();
                    let r = clone(&mut plan, stack, None);
                    drop(procs);
                    r
                }
            }
        }
        }
    })
    .map_err(|e| spawn_err(&p.program, e))?;
    let (step, errno) = plan.failed;
    // The first child only joined: reaped now, the program's process (our
    // child too) is the command.
    let born = if plan.inner != 0 || step == STEP_FORK {
        super::clone::reap(born.pid);
        if plan.inner == 0 {
            super::clone::Born {
                pid: 0,
                pidfd: born.pidfd,
            }
        } else {
            match pidfd_open(plan.inner) {
                Ok(pidfd) => super::clone::Born {
                    pid: plan.inner,
                    pidfd,
                },
                Err(e) => {
                    super::clone::reap(plan.inner);
                    return Err(spawn_err(&p.program, e));
                }
            }
        }
    } else {
        born
    };
    if step != 0 {
        if born.pid > 0 {
            super::clone::reap(born.pid);
        }
        let cause = std::io::Error::from_raw_os_error(errno);
        let what = match step {
            STEP_CGROUP => "joining its cgroup".to_owned(),
            STEP_SETSID => "starting its session".to_owned(),
            STEP_FDS => "setting up its stdin/stdout/stderr".to_owned(),
            STEP_CWD => "entering its working directory".to_owned(),
            STEP_NO_NEW_PRIVS => "setting no_new_privs".to_owned(),
            STEP_SECCOMP => "installing its seccomp filter".to_owned(),
            STEP_LANDLOCK => "enforcing its Landlock rules".to_owned(),
            STEP_FORK => {
                "starting it in the workspace's PID namespace (is its init gone?)".to_owned()
            }
            STEP_JOIN => super::namespaces::Namespaces::describe(plan.join_kind).to_owned(),
            _ => "exec".to_owned(),
        };
        return Err(spawn_err(
            &p.program,
            std::io::Error::new(cause.kind(), format!("{what}: {cause}")),
        ));
    }
    Ok(Child {
        pid: born.pid,
        pidfd: born.pidfd,
    })
}

/// A pidfd for `pid`, a child of ours not yet reaped (so not reused).
pub(super) fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open with integers; the result is a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_env_overrides_keeps_order_and_is_linear() {
        let base = vec![("A".into(), "1".into()), ("B".into(), "2".into())];
        let extra = vec![
            ("B".to_owned(), "x".to_owned()),
            ("C".to_owned(), "3".to_owned()),
            ("B".to_owned(), "y".to_owned()),
        ];
        let env = merge_env(base, &extra).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, [("A", "1"), ("C", "3"), ("B", "y")]);
        // 100,000 variables (12.8 s of CPU per Run when it was quadratic).
        let many: Vec<(String, String)> = (0..100_000)
            .map(|i| (format!("V{i}"), "v".into()))
            .collect();
        let start = std::time::Instant::now();
        assert!(merge_env(base_env(), &many).unwrap().len() >= 100_000);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn resolves_like_a_shell() {
        assert_eq!(
            resolve("sh", "/nonexistent:/bin:/usr/bin", Path::new("/")).unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert!(matches!(
            resolve("no-such-program-x", "/bin", Path::new("/")),
            Err(SpawnError::NotFound { .. })
        ));
        assert!(matches!(
            resolve("/etc/passwd", "/bin", Path::new("/")),
            Err(SpawnError::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve("/etc", "/bin", Path::new("/")),
            Err(SpawnError::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve("./nosuch-x", "/bin", Path::new("/tmp")),
            Err(SpawnError::NoSuchFile { .. })
        ));
        let e = resolve("./nosuch-x", "/bin", Path::new("/tmp"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/tmp/./nosuch-x does not exist"), "{e}");
        assert!(matches!(
            resolve("", "/bin", Path::new("/")),
            Err(SpawnError::NotFound { .. })
        ));
        let e = resolve("nope", "/a:/b", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found in PATH (/a:/b)"), "{e}");
    }

    #[test]
    fn stdin_and_extra_descriptors_reach_the_program() {
        use std::io::{Read, Write};
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (in_r, in_w) = pipe();
        let (x_r, x_w) = pipe();
        let (out_r, out_w) = pipe();
        let (_err_r, err_w) = pipe();
        let child = spawn(Launch {
            program: Program {
                program: "/bin/sh".into(),
                arg0: "sh".into(),
                args: vec!["-c".into(), "cat; cat <&3".into()],
                env: vec![("PATH".into(), DEFAULT_PATH.into())],
                cwd: "/".into(),
                cgroup: None,
            },
            stdin: Some(in_r),
            stdout: out_w,
            stderr: err_w,
            extra_fds: vec![x_r],
            namespaces: None,
        })
        .unwrap();
        File::from(in_w).write_all(b"zero ").unwrap();
        File::from(x_w).write_all(b"three").unwrap();
        let mut out = String::new();
        File::from(out_r).read_to_string(&mut out).unwrap();
        assert_eq!(out, "zero three");
        let mut status = 0;
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(child.pid(), &mut status, 0) };
        assert_eq!(status, 0);
    }

    #[test]
    fn base_env_is_clean_and_extras_override() {
        let env = merge_env(
            base_env(),
            &[("A".into(), "1".into()), ("PATH".into(), "/x".into())],
        )
        .unwrap();
        assert!(env.iter().all(|(k, _)| !k.starts_with("NOTIFY_")
            && !k.starts_with("LISTEN_")
            && !k.starts_with("SHIPOTE_")));
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&("PATH".into(), "/x".into())));
        assert!(env.contains(&("A".into(), "1".into())));
        assert!(matches!(
            merge_env(vec![], &[("A=B".into(), "".into())]),
            Err(SpawnError::BadEnv(_))
        ));
        assert!(matches!(
            merge_env(vec![], &[("".into(), "".into())]),
            Err(SpawnError::BadEnv(_))
        ));
    }
}
