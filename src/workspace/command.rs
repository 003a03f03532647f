//! Starting one command of a workspace: its cgroup leaf, its log files and
//! pipes, and the process placed in the leaf before exec. Blocking: call from a
//! blocking task inside the runtime.

use crate::cgroup::Cgroup;
use crate::process::logs::{self, CaptureState, LogPaths, LogWriter};
use crate::process::spawn::{self, Launch};
use std::os::fd::AsFd;
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
    /// Where its logs go.
    pub logs: LogPaths,
    /// Continue existing logs (a restart) instead of starting them afresh.
    pub append: bool,
}

/// A started command.
#[derive(Debug)]
pub struct Started {
    /// The process.
    pub child: spawn::Child,
    /// Its pid.
    pub pid: i32,
    /// What its log capture reports (lost bytes, drained).
    pub capture: Arc<CaptureState>,
}

/// Starts it; the message of an error is for the client.
pub fn start(req: StartRequest) -> Result<Started, String> {
    let env = spawn::merge_env(spawn::base_env(), &req.envp).map_err(|e| e.to_string())?;
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| spawn::DEFAULT_PATH.to_owned());
    let program = spawn::resolve(&req.exec, &path).map_err(|e| e.to_string())?;
    let home = env
        .iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| PathBuf::from(v));
    let cwd = req
        .cwd
        .clone()
        .or(home)
        .unwrap_or_else(|| PathBuf::from("/"));

    if let Some(leaf) = &req.leaf {
        leaf.create().map_err(|e| e.to_string())?;
    }
    let cleanup = |msg: String| {
        if let Some(leaf) = &req.leaf {
            let _ = leaf.remove();
        }
        msg
    };
    let log = LogWriter::open(req.logs.clone(), req.append)
        .map_err(|e| cleanup(format!("cannot create the command's logs: {e}")))?;
    let pipe = || {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| cleanup(format!("cannot create pipes: {e}")))?;
        logs::enlarge_pipe(r.as_fd());
        Ok::<_, String>((r, w))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let arg0 = req.exec.clone();
    let child = spawn::spawn(Launch {
        program,
        arg0,
        args: req.argv,
        env,
        cwd,
        cgroup: req.leaf.as_ref().map(|l| l.dir().to_owned()),
        stdout: out_w,
        stderr: err_w,
    })
    .map_err(|e| cleanup(e.to_string()))?;
    let pid = child.pid();
    let capture = Arc::new(CaptureState::default());
    // The pipes are drained whatever happens to the logs; without a thread
    // to drain them the command would block, so it is ended.
    if let Err(e) = logs::capture(out_r, err_r, log, capture.clone()) {
        crate::process::signal(pid as u32, nix::sys::signal::Signal::SIGKILL);
        return Err(cleanup(format!("cannot start the log thread: {e}")));
    }
    Ok(Started {
        child,
        pid,
        capture,
    })
}
