//! Starting one command of a workspace: its cgroup leaf, its log files and
//! pipes, and the process placed in the leaf before exec. Blocking: call from a
//! blocking task inside the runtime.

use crate::cgroup::Cgroup;
use crate::process::logs::{self, LogFile, LogPaths, LOG_CAP_BYTES};
use crate::process::spawn::{self, Launch};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

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
    pub child: tokio::process::Child,
    /// Its pid.
    pub pid: i32,
    /// Bytes the logs could not keep (disk full).
    pub lost: Arc<AtomicU64>,
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

    let procs = match &req.leaf {
        Some(leaf) => {
            leaf.create().map_err(|e| e.to_string())?;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(leaf.dir().join("cgroup.procs"))
                .map_err(|e| format!("cannot open {}/cgroup.procs: {e}", leaf.dir().display()))?;
            Some(f)
        }
        None => None,
    };
    let cleanup = |msg: String| {
        if let Some(leaf) = &req.leaf {
            let _ = leaf.remove();
        }
        msg
    };
    let log_err = |e: std::io::Error| cleanup(format!("cannot create the command's logs: {e}"));
    if let Some(dir) = req.logs.file("out").parent() {
        std::fs::create_dir_all(dir).map_err(log_err)?;
    }
    let open = |stream: &str| {
        let path = req.logs.file(stream);
        if req.append {
            LogFile::open_append(path, LOG_CAP_BYTES)
        } else {
            LogFile::create(path, LOG_CAP_BYTES)
        }
    };
    let out = open("out").map_err(log_err)?;
    let err = open("err").map_err(log_err)?;
    let all = Arc::new(Mutex::new(open("all").map_err(log_err)?));
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| cleanup(format!("cannot create pipes: {e}")))
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
        cgroup_procs: procs,
        stdout: out_w,
        stderr: err_w,
    })
    .map_err(|e| cleanup(e.to_string()))?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    let lost = Arc::new(AtomicU64::new(0));
    // Pipes are drained whatever happens to the logs; a failure to start a
    // drain thread leaves the command running with that stream discarded.
    for (r, own) in [(out_r, out), (err_r, err)] {
        if let Err(e) = logs::capture(r, own, all.clone(), lost.clone()) {
            tracing::warn!(pid, error = %e, "cannot start a log thread");
        }
    }
    Ok(Started { child, pid, lost })
}
