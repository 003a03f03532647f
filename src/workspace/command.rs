//! Starting one command of a workspace: its cgroup leaf, its log files and
//! pipes, and the process placed in the leaf before exec. Blocking: call from a
//! blocking task inside the runtime.

use crate::cgroup::Cgroup;
use crate::keeper::link::KeeperLink;
use crate::keeper::wire::SpawnFds;
use crate::process::logs::{self, CaptureState, LogPaths};
use crate::process::spawn::{self, Launch};
use shipote_protocol::Ulid;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::Arc;

/// What to start.
#[derive(Debug)]
pub struct StartRequest {
    /// Program name or path.
    pub exec: String,
    /// Arguments.
    pub argv: Vec<String>,
    /// Extra environment.
    pub envp: Vec<(String, String)>,
    /// Working directory (default: HOME).
    pub cwd: Option<PathBuf>,
    /// The command's cgroup leaf (created here), when the workspace has a cgroup.
    pub leaf: Option<Cgroup>,
    /// The leaf was made ahead of time (a workspace's spare leaf).
    pub leaf_exists: bool,
    /// The workspace's namespaces, joined before exec (`None`: no permissions asked).
    pub namespaces: Option<std::sync::Arc<crate::process::namespaces::Namespaces>>,
    /// Where its logs go.
    pub logs: LogPaths,
    /// Continue existing logs (a restart) instead of starting them afresh.
    pub append: bool,
    /// Where its standard streams and extra descriptors go (pipeline edges);
    /// the default captures stdout and stderr to its log.
    pub io: CommandIo,
    /// The workspace's keeper, which starts it (and outlives the daemon);
    /// `None`: the daemon starts it itself (no cgroup, no keeper).
    pub keeper: Option<ByKeeper>,
}

/// A start through the workspace's keeper.
#[derive(Debug)]
pub struct ByKeeper {
    /// The keeper.
    pub link: Arc<KeeperLink>,
    /// The command's id.
    pub command: Ulid,
    /// What the next daemon needs to know of it (opaque to the keeper).
    pub meta: Vec<u8>,
}

/// Where a started command's exit comes from.
#[derive(Debug)]
pub enum Exit {
    /// The daemon's own child.
    Child(spawn::Child),
    /// The keeper reports it.
    Keeper {
        /// Its report.
        exit: tokio::sync::oneshot::Receiver<i32>,
        /// The keeper, told once the run is settled.
        link: Arc<KeeperLink>,
        /// The command.
        command: Ulid,
    },
    /// Known already (it ended while no daemon ran).
    Ended(i32),
}

impl Exit {
    /// Waits for it; `None`: it cannot be known (the keeper went first).
    pub async fn wait(self) -> Option<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Exit::Child(c) => c.wait().await.ok(),
            Exit::Keeper { exit, .. } => exit.await.ok().map(std::process::ExitStatus::from_raw),
            Exit::Ended(status) => Some(std::process::ExitStatus::from_raw(status)),
        }
    }

    /// What to tell once its run is settled (exit handled, output kept).
    pub fn settle_with(&self) -> Option<(Arc<KeeperLink>, Ulid)> {
        match self {
            Exit::Keeper { link, command, .. } => Some((link.clone(), *command)),
            _ => None,
        }
    }
}

/// A command's descriptors other than the captured defaults: a pipeline
/// command's edges ([`crate::flow::Ends`]: standard streams where an edge
/// takes them, named ports as 3, 4, ...); the default captures stdout and
/// stderr to its log and gives /dev/null as stdin.
pub type CommandIo = crate::flow::Ends;

/// A started command.
#[derive(Debug)]
pub struct Started {
    /// Where its exit comes from.
    pub exit: Exit,
    /// Its pid.
    pub pid: i32,
    /// What its log capture reports (lost bytes, drained).
    pub capture: Arc<CaptureState>,
    /// Its output, until [`Started::capture`] hands it to a log thread.
    pending: Option<PendingCapture>,
}

/// A started command's output pipes and where they go.
#[derive(Debug)]
struct PendingCapture {
    stdout: Option<std::os::fd::OwnedFd>,
    stderr: Option<std::os::fd::OwnedFd>,
    logs: LogPaths,
    append: bool,
}

/// Starts it; the message of an error is for the client.
pub fn start(req: StartRequest) -> Result<Started, String> {
    let env = spawn::merge_env(spawn::base_env(), &req.envp).map_err(|e| e.to_string())?;
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| spawn::DEFAULT_PATH.to_owned());
    let home = env
        .iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| PathBuf::from(v));
    let cwd = req
        .cwd
        .clone()
        .or(home)
        .unwrap_or_else(|| PathBuf::from("/"));
    let program = spawn::resolve(&req.exec, &path, &cwd).map_err(|e| e.to_string())?;

    if let (Some(leaf), false) = (&req.leaf, req.leaf_exists) {
        leaf.create().map_err(|e| e.to_string())?;
    }
    let cleanup = |msg: String| {
        if let Some(leaf) = &req.leaf {
            let _ = leaf.remove();
        }
        msg
    };
    // The log files are made by the capture thread, off the path to exec;
    // a directory that cannot be made is reported now.
    std::fs::create_dir_all(req.logs.dir()).map_err(|e| {
        cleanup(format!(
            "cannot create the log directory {}: {e}",
            req.logs.dir().display()
        ))
    })?;
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| cleanup(format!("cannot create pipes: {e}")))
    };
    // A stream wired elsewhere is not captured.
    let (out_r, out_w) = match req.io.stdout {
        Some(fd) => (None, fd),
        None => pipe().map(|(r, w)| (Some(r), w))?,
    };
    let (err_r, err_w) = match req.io.stderr {
        Some(fd) => (None, fd),
        None => pipe().map(|(r, w)| (Some(r), w))?,
    };
    let what = spawn::Program {
        program,
        arg0: req.exec.clone(),
        args: req.argv,
        env,
        cwd,
        cgroup: req.leaf.as_ref().map(|l| l.dir().to_owned()),
    };
    let (pid, exit) = match req.keeper {
        Some(k) => {
            // The keeper keeps a copy of each read end: no EPIPE while no
            // daemon reads.
            let copy = |r: &Option<std::os::fd::OwnedFd>| {
                r.as_ref()
                    .map(|fd| fd.try_clone())
                    .transpose()
                    .map_err(|e| cleanup(format!("cannot copy its pipes: {e}")))
            };
            let custody = [copy(&out_r)?, copy(&err_r)?];
            let ns: Vec<(BorrowedFd<'_>, libc::c_int)> =
                req.namespaces.iter().flat_map(|n| n.fds()).collect();
            let layout = SpawnFds {
                stdin: req.io.stdin.is_some(),
                extra: req.io.extra.len() as u16,
                namespaces: ns.iter().map(|(_, kind)| *kind).collect(),
                custody: (custody[0].is_some(), custody[1].is_some()),
            };
            let fds: Vec<BorrowedFd<'_>> = req
                .io
                .stdin
                .iter()
                .map(|f| f.as_fd())
                .chain([out_w.as_fd(), err_w.as_fd()])
                .chain(req.io.extra.iter().map(|f| f.as_fd()))
                .chain(ns.iter().map(|(fd, _)| *fd))
                .chain(custody.iter().flatten().map(|f| f.as_fd()))
                .collect();
            let (pid, exit) = k
                .link
                .spawn(k.command, what, layout, &fds, k.meta)
                .map_err(cleanup)?;
            let exit = Exit::Keeper {
                exit,
                link: k.link,
                command: k.command,
            };
            (pid, exit)
        }
        None => {
            let child = spawn::spawn(Launch {
                program: what,
                stdin: req.io.stdin,
                stdout: out_w,
                stderr: err_w,
                extra_fds: req.io.extra,
                namespaces: req.namespaces,
            })
            .map_err(|e| cleanup(e.to_string()))?;
            (child.pid(), Exit::Child(child))
        }
    };
    Ok(Started {
        exit,
        pid,
        capture: Arc::new(CaptureState::default()),
        pending: Some(PendingCapture {
            stdout: out_r,
            stderr: err_r,
            logs: req.logs,
            append: req.append,
        }),
    })
}

impl Started {
    /// A command a keeper held when this daemon started: its output (what
    /// is left of it) goes on into its log.
    pub fn held(
        pid: i32,
        exit: Exit,
        stdout: Option<std::os::fd::OwnedFd>,
        stderr: Option<std::os::fd::OwnedFd>,
        logs: LogPaths,
    ) -> Started {
        Started {
            exit,
            pid,
            capture: Arc::new(CaptureState::default()),
            pending: Some(PendingCapture {
                stdout,
                stderr,
                logs,
                append: true,
            }),
        }
    }

    /// Starts draining its output into its log. Called once the client has
    /// its answer: the pipes hold what the command writes until then. A
    /// command whose output cannot be drained would block, so it is ended.
    pub fn capture(&mut self) {
        let Some(p) = self.pending.take() else { return };
        if let Err(e) = logs::capture(p.stdout, p.stderr, p.logs, p.append, self.capture.clone()) {
            tracing::error!(pid = self.pid, error = %e, "cannot start a log thread; ending the command");
            crate::process::signal(self.pid as u32, nix::sys::signal::Signal::SIGKILL);
            // Nothing will come: followers must not wait.
            self.capture.set_drained();
        }
    }
}
