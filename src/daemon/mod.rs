//! `shipoted`'s core. [`run`] binds (or inherits) the control socket, starts the
//! supervisor, accepts connections and serves each in its own task, and shuts down
//! when the caller's token fires: new connections stop, idle ones close, busy ones
//! get [`Config::shutdown_grace`] to finish.

pub mod args;
pub mod audit;
pub mod connection;
pub mod instance;
pub mod listener;
pub mod memory;
pub mod supervisor;

use crate::cgroup::Cgroup;
use crate::host::HostCaps;
use crate::systemd::notify::Notifier;
use crate::systemd::scopes::SystemdScopes;
use crate::workspace::backend::{Backend, KeeperProgram};
use crate::workspace::state::SavedWorkspace;
use listener::{BoundSocket, ListenError};
use shipote_protocol::{ErrorCode, Response};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use supervisor::{BackendInfo, Environment, Supervisor, SupervisorHandle};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Default time busy connections get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Default limit of simultaneous client connections.
pub const MAX_CLIENTS: usize = 1024;

/// Where the control socket comes from.
#[derive(Debug)]
pub enum SocketSource {
    /// Bind this path.
    Path(PathBuf),
    /// Use a listener passed by the service manager (socket activation).
    Inherited(std::os::unix::net::UnixListener),
}

/// Which workspace backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// systemd if a user manager answers, else a writable cgroup v2 subtree,
    /// else process groups.
    Auto,
    /// Transient scopes through the systemd user manager.
    Systemd,
    /// Sub-cgroups of the daemon's own (delegated) cgroup v2 directory.
    Cgroup,
    /// Process groups only.
    ProcessGroup,
}

/// How to run the daemon.
#[derive(Debug)]
pub struct Config {
    /// The control socket.
    pub socket: SocketSource,
    /// Time busy connections get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Connections beyond this many are refused with `Busy`.
    pub max_clients: usize,
    /// Workspace backend.
    pub backend: BackendChoice,
    /// Where workspaces' cgroups go with the cgroup backend (default: a
    /// `shipote.slice` directory in the daemon's own cgroup).
    pub cgroup_root: Option<PathBuf>,
    /// Persistent state directory.
    pub state_dir: PathBuf,
    /// Program run as a workspace's keeper (`PROGRAM --keeper UNIT`): shipoted.
    pub keeper_program: PathBuf,
    /// Restart policy of commands with restart_on_failure.
    pub restart_policy: crate::workspace::restart::RestartPolicy,
}

impl Config {
    /// Defaults around a socket source: state in `$XDG_STATE_HOME/shipote`, the
    /// current executable as keeper.
    pub fn new(socket: SocketSource) -> Self {
        Self {
            socket,
            shutdown_grace: SHUTDOWN_GRACE,
            max_clients: MAX_CLIENTS,
            backend: BackendChoice::Auto,
            cgroup_root: None,
            state_dir: default_state_dir(),
            keeper_program: std::env::current_exe()
                .unwrap_or_else(|_| PathBuf::from("/usr/bin/shipoted")),
            restart_policy: Default::default(),
        }
    }
}

/// `$XDG_STATE_HOME/shipote`, else `~/.local/state/shipote`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("shipote");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/state/shipote")
}

/// What the readiness callback learns.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The socket being served.
    pub socket: PathBuf,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The control socket could not be set up.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The listener could not be registered with the runtime.
    #[error("cannot serve the socket: {0}")]
    Serve(#[source] std::io::Error),
    /// The requested backend is not available here.
    #[error("the {backend} backend is not available: {why}")]
    Backend {
        /// Which.
        backend: &'static str,
        /// Why not.
        why: String,
    },
    /// The state file could not be read.
    #[error(transparent)]
    State(#[from] crate::workspace::state::StateError),
    /// Another daemon holds the state directory or cgroup subtree.
    #[error(transparent)]
    Instance(#[from] instance::InstanceError),
}

/// Runs the daemon until `shutdown` fires. Calls `on_ready` once the socket
/// accepts requests (after READY=1 went to the service manager).
pub async fn run(
    mut config: Config,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), DaemonError> {
    let socket = std::mem::replace(&mut config.socket, SocketSource::Path(PathBuf::new()));
    let bound: BoundSocket = match socket {
        SocketSource::Path(path) => listener::bind(&path)?,
        SocketSource::Inherited(l) => listener::inherit(l)?,
    };
    let result = serve(&bound, config, shutdown, on_ready).await;
    bound.cleanup();
    result
}

/// Picks the workspace backend, saying why.
async fn choose_backend(config: &Config, caps: &HostCaps) -> Result<BackendInfo, DaemonError> {
    let unified = match &caps.cgroup.layout {
        crate::cgroup::Layout::Unified(m) => Some(m.clone()),
        _ => None,
    };
    let systemd = || async {
        let Some(mount) = unified.clone() else {
            return Err("cgroup v2 is not the host's unified hierarchy".to_owned());
        };
        SystemdScopes::connect()
            .await
            .map(|scopes| Backend::systemd(scopes, mount))
            .map_err(|e| e.to_string())
    };
    let cgroup = || {
        let root = config
            .cgroup_root
            .clone()
            .or_else(|| {
                caps.cgroup
                    .dir
                    .clone()
                    .filter(|_| caps.cgroup.writable)
                    .map(|d| d.join("shipote.slice"))
            })
            .ok_or_else(|| {
                "no writable cgroup v2 directory (the daemon's own cgroup is not delegated to it)"
                    .to_owned()
            })?;
        Ok::<_, String>(Backend::Cgroup {
            root: Cgroup::at(root),
        })
    };
    let fail = |backend, why| DaemonError::Backend { backend, why };
    Ok(match config.backend {
        BackendChoice::Systemd => BackendInfo {
            backend: systemd().await.map_err(|w| fail("systemd", w))?,
            reason: "asked for with --backend systemd".into(),
        },
        BackendChoice::Cgroup => BackendInfo {
            backend: cgroup().map_err(|w| fail("cgroup", w))?,
            reason: "asked for with --backend cgroup".into(),
        },
        BackendChoice::ProcessGroup => BackendInfo {
            backend: Backend::ProcessGroup,
            reason: "asked for with --backend process-group; no limits, stats from /proc".into(),
        },
        BackendChoice::Auto => match systemd().await {
            Ok(b) => BackendInfo {
                backend: b,
                reason: "the systemd user manager answers on the user bus".into(),
            },
            Err(no_systemd) => match cgroup() {
                Ok(b) => BackendInfo {
                    backend: b,
                    reason: format!("no systemd user manager ({no_systemd}); using a cgroup v2 subtree"),
                },
                Err(no_cgroup) => BackendInfo {
                    backend: Backend::ProcessGroup,
                    reason: format!("no systemd user manager ({no_systemd}) and {no_cgroup}; using process groups"),
                },
            },
        },
    })
}

async fn serve(
    bound: &BoundSocket,
    config: Config,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), DaemonError> {
    let grace = config.shutdown_grace;
    let max_clients = config.max_clients;
    let std_listener = bound.listener.try_clone().map_err(DaemonError::Serve)?;
    std_listener
        .set_nonblocking(true)
        .map_err(DaemonError::Serve)?;
    let listener = tokio::net::UnixListener::from_std(std_listener).map_err(DaemonError::Serve)?;
    let own_uid = nix::unistd::getuid().as_raw();

    let caps = tokio::task::spawn_blocking(HostCaps::probe)
        .await
        .map_err(|e| DaemonError::Serve(std::io::Error::other(e)))?;
    let backend = choose_backend(&config, &caps).await?;
    tracing::info!(backend = backend.backend.name(), reason = %backend.reason, "workspace backend chosen");
    // Held until serve returns: one daemon per state directory and subtree.
    let cgroup_root = match &backend.backend {
        Backend::Cgroup { root } => Some(root.dir().to_owned()),
        _ => None,
    };
    let _instance = instance::acquire(&config.state_dir, cgroup_root.as_deref())?;
    let state_file = config.state_dir.join(crate::workspace::state::STATE_FILE);
    // A crash in the middle of a state write leaves its temporary file; the
    // state file itself is always whole (written by rename).
    let leftover = state_file.with_extension("json.tmp");
    if std::fs::remove_file(&leftover).is_ok() {
        tracing::info!(path = %leftover.display(), "removed a half-written state file left by a crash");
    }
    let saved = match crate::workspace::state::load(&state_file) {
        Ok(saved) => saved,
        // A state file that cannot be read as one is set aside, not fatal:
        // the running workspaces are rebuilt from their keepers' records.
        Err(e @ crate::workspace::state::StateError::Corrupt { .. }) => {
            let aside = state_file.with_extension(format!(
                "json.corrupt-{}",
                supervisor::ms_since_epoch(std::time::SystemTime::now())
            ));
            let moved = std::fs::rename(&state_file, &aside);
            audit::record(
                own_uid,
                "state.corrupt",
                &audit::Detail::new().kv("path", state_file.display().to_string()),
                &format!(
                    "{e}; {}; running workspaces are rebuilt from their keepers",
                    match moved {
                        Ok(()) => format!("set aside as {}", aside.display()),
                        Err(m) => format!("cannot set it aside ({m})"),
                    }
                ),
            );
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    // Before the descriptors pile up (see open_init_early).
    crate::process::namespaces::open_init_early(&config.keeper_program);
    let env = Environment {
        caps: Arc::new(caps),
        backend: Arc::new(backend),
        keeper: KeeperProgram {
            program: config.keeper_program.clone(),
            sockets: crate::keeper::sockets_dir(&config.state_dir),
        },
        state_file,
        log_dir: config.state_dir.join("logs"),
        pipelines_dir: config.state_dir.join(crate::workspace::saved::DIR),
        flows_dir: std::env::var_os("XDG_RUNTIME_DIR")
            .map(|d| PathBuf::from(d).join("shipote/flows"))
            .unwrap_or_else(|| config.state_dir.join("flows")),
        restart_policy: config.restart_policy,
        own_uid,
        shielded: std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([
                bound.path.clone(),
                // Every workspace's logs, the state file (a command could
                // edit its own permissions away), saved pipelines, and the
                // keepers' sockets (a keeper starts whatever it is asked).
                config.state_dir.clone(),
            ])
            .collect(),
    };
    let notifier = Notifier::from_env();
    let (mut sup, handle, rx) = Supervisor::new(env.clone(), notifier.clone());
    restore(&mut sup, &env, saved).await;
    remove_stale_log_dirs(&env.log_dir, &sup.workspace_ids()).await;
    remove_stale_keeper_sockets(&env.keeper.sockets, &sup.workspace_units());
    let status = sup.status_line();
    let sup_stop = CancellationToken::new();
    let sup_task = tokio::spawn(sup.run(rx, sup_stop.clone()));
    let trimmer = tokio::spawn(memory::trimmer(sup_stop.clone()));
    let watchdog = notifier.watchdog_interval().map(|every| {
        tokio::spawn(feed_watchdog(
            every,
            handle.clone(),
            notifier.clone(),
            shutdown.clone(),
        ))
    });

    notifier.ready(&status);
    tracing::info!(socket = %bound.path.display(), inherited = !bound.owned, version = crate::VERSION, "shipoted ready");
    on_ready(&Ready {
        socket: bound.path.clone(),
    });

    let tracker = TaskTracker::new();
    // One descriptor held back so that, when the limit is hit anyway, a
    // waiting client can still be accepted and told why (then closed).
    let mut spare = std::fs::File::open("/dev/null").ok();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) if tracker.len() >= max_clients => {
                let why = format!(
                    "busy: shipoted is serving its limit of {max_clients} connections; \
                     close idle clients and retry"
                );
                tracker.spawn(turn_away(stream, why));
            }
            Ok((stream, _)) => match crate::process::fds::check(1) {
                Ok(()) => {
                    tracker.spawn(connection::serve(
                        stream,
                        own_uid,
                        handle.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(why) => {
                    tracker.spawn(turn_away(stream, format!("busy: {why}")));
                }
            },
            Err(e) if crate::process::fds::is_exhaustion(&e) => {
                tracing::warn!(error = %e, "accept failed: out of file descriptors; turning the client away");
                drop(spare.take());
                if let Ok(Ok((stream, _))) =
                    tokio::time::timeout(Duration::from_millis(50), listener.accept()).await
                {
                    let why = crate::process::fds::shortage();
                    // Answered inline: the spare descriptor is this client's.
                    turn_away(stream, format!("busy: {why}")).await;
                }
                spare = std::fs::File::open("/dev/null").ok();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
            Err(e) => {
                // Out of memory, say: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    drop(spare);

    notifier.stopping();
    tracing::info!(busy = tracker.len(), "shutting down");
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            left = tracker.len(),
            grace_ms = grace.as_millis() as u64,
            "connections still busy after the grace period; closing them"
        );
    }
    handle.shutdown().await;
    if let Some(w) = watchdog {
        w.abort();
    }
    sup_stop.cancel();
    let _ = sup_task.await;
    let _ = trimmer.await;
    tracing::info!("stopped");
    Ok(())
}

/// Answers a connection the daemon will not serve with one `Error` (in
/// protocol 0's form: nothing was read yet; `msg` starts with `busy:`, SPEC.md
/// section 2) and closes it. Audited, rate-limited.
async fn turn_away(mut stream: tokio::net::UnixStream, msg: String) {
    let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
    audit::record_flood(
        uid,
        "connection.busy",
        audit::Detail::new().kv("reason", &msg),
        "turned away",
    );
    let mut bytes = Vec::new();
    if shipote_protocol::Dialect::Seed
        .encode_response(Response::error(ErrorCode::Busy, msg), &mut bytes)
        .is_ok()
    {
        let _ = tokio::time::timeout(connection::WRITE_TIMEOUT, stream.write_all(&bytes)).await;
    }
}

/// Sends WATCHDOG=1 at half the manager's interval, but only while the
/// supervisor answers: a wedged supervisor lets the watchdog fire.
async fn feed_watchdog(
    every: Duration,
    handle: SupervisorHandle,
    notifier: Notifier,
    shutdown: CancellationToken,
) {
    let period = every / 2;
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(period, handle.probe()).await {
            Ok(true) => notifier.watchdog(),
            _ => tracing::error!("supervisor did not answer the watchdog probe"),
        }
    }
}

/// Re-adopts the workspaces a previous daemon kept, stops the ones it should
/// have reaped (it crashed or was killed), and forgets the ones that are gone.
async fn restore(sup: &mut Supervisor, env: &Environment, mut saved: Vec<SavedWorkspace>) {
    let backend = &env.backend.backend;
    let known: std::collections::HashSet<String> = saved.iter().map(|s| s.unit.clone()).collect();
    for (unit, cgroup, keeper) in backend.running_scopes().await {
        if known.contains(&unit) {
            continue;
        }
        let state_dir = env.state_dir();
        if !instance::may_adopt(cgroup.dir(), &state_dir) {
            tracing::info!(
                unit = %unit,
                owner = ?instance::owner_of(cgroup.dir()),
                "running scope belongs to the daemon of another state directory; left alone"
            );
            continue;
        }
        // A workspace of ours that the state file lost: its keeper's record
        // rebuilds it (spec, label, exit policy), then it goes the way of
        // those the file holds.
        let socket = env.keeper.socket(&unit);
        let note = tokio::task::spawn_blocking(move || {
            crate::keeper::link::KeeperLink::connect(&socket)
                .ok()
                .and_then(|(_, table)| table.note)
                .and_then(|n| serde_json::from_slice::<SavedWorkspace>(&n).ok())
        })
        .await
        .ok()
        .flatten()
        .filter(|s| s.unit == unit);
        if let Some(record) = note {
            audit::record(
                env.own_uid,
                "workspace.rebuild",
                &audit::Detail::new()
                    .kv("id", &record.id)
                    .kv("label", &record.label)
                    .kv("unit", &unit),
                "running workspace missing from the state file; rebuilt from its keeper's record",
            );
            saved.push(record);
            continue;
        }
        // No record: adopt it and keep it (its exit policy is unknown;
        // stopping a user's processes by guess is worse).
        let Some(orphan) = orphan_record(&unit, &cgroup, keeper, backend.name()) else {
            continue;
        };
        if matches!(backend, Backend::Cgroup { .. }) && !cgroup.populated() {
            // Made by a daemon that died before its state write: nothing runs
            // in it, so nothing is lost by removing it.
            let cg = cgroup.clone();
            let removed = tokio::task::spawn_blocking(move || cg.remove())
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            audit::record(
                env.own_uid,
                "workspace.remove_orphan",
                &audit::Detail::new().kv("unit", &unit),
                &match removed {
                    Ok(()) => "empty cgroup missing from the state file; removed".to_owned(),
                    Err(e) => {
                        format!("empty cgroup missing from the state file; cannot remove: {e}")
                    }
                },
            );
            continue;
        }
        audit::record(
            env.own_uid,
            "workspace.adopt",
            &audit::Detail::new().kv("unit", &unit),
            "running scope missing from the state file and without a keeper's record; adopted \
             with on_exit=keep (its label comes from its unit name; its limits and exit policy \
             are unknown)",
        );
        sup.adopt(orphan);
    }
    for s in saved {
        let cgroup = s.cgroup.clone().map(Cgroup::at);
        if s.backend != backend.name() || !backend.exists(&s.unit, cgroup.as_ref()).await {
            tracing::info!(unit = %s.unit, "workspace from the state file no longer exists; forgetting it");
            continue;
        }
        if s.on_exit == "keep" {
            sup.adopt(s);
            continue;
        }
        let reaped = backend
            .stop(
                &s.unit,
                cgroup.as_ref(),
                s.keeper_pid,
                supervisor::AUTO_STOP_GRACE,
                &[],
            )
            .await;
        let outcome = match &reaped {
            Ok(n) => format!("stopped, {n} processes ended"),
            Err(e) => format!("error: {e}"),
        };
        audit::record(
            env.own_uid,
            "workspace.reap",
            &audit::Detail::new()
                .kv("id", &s.id)
                .kv("label", &s.label)
                .kv("unit", &s.unit),
            &format!("left by a daemon that did not stop cleanly; {outcome}"),
        );
    }
}

/// Removes keepers' sockets left by workspaces that no longer exist and by
/// spare keepers (which died with the previous daemon's service).
fn remove_stale_keeper_sockets(dir: &std::path::Path, live: &[String]) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(unit) = name.strip_suffix(".sock") else {
            continue;
        };
        if !live.iter().any(|u| u == unit) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes the log directories of workspaces that no longer exist (reaped or
/// stopped before this start): only re-adopted workspaces' logs are readable.
async fn remove_stale_log_dirs(log_dir: &std::path::Path, live: &[shipote_protocol::WorkspaceId]) {
    let live: std::collections::HashSet<String> = live.iter().map(|w| w.to_string()).collect();
    let log_dir = log_dir.to_owned();
    let removed = tokio::task::spawn_blocking(move || {
        let mut removed = 0;
        for e in std::fs::read_dir(&log_dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = shipote_protocol::Ulid::from_string(&name).is_ok();
            if ours && !live.contains(&name) && std::fs::remove_dir_all(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    })
    .await
    .unwrap_or(0);
    if removed > 0 {
        tracing::info!(
            removed,
            "removed the logs of workspaces that no longer exist"
        );
    }
}

/// A state record for a running scope found on the bus: label and id come from
/// its name `shipote-<label>-<ulid>.scope`.
fn orphan_record(
    unit: &str,
    cgroup: &Cgroup,
    keeper: Option<u32>,
    backend: &str,
) -> Option<SavedWorkspace> {
    let stem = unit.strip_prefix("shipote-")?.strip_suffix(".scope")?;
    let (label, id) = stem.rsplit_once('-')?;
    shipote_protocol::Ulid::from_string(id).ok()?;
    crate::workspace::validate_label(label).ok()?;
    let mut spec = shipote_protocol::WorkspaceSpec::new(label);
    spec.on_exit = shipote_protocol::ExitPolicy::Keep;
    let identity = crate::workspace::state::Identity {
        id: id.to_owned(),
        unit: unit.to_owned(),
        backend: backend.to_owned(),
        cgroup: Some(cgroup.dir().to_owned()),
        keeper_pid: keeper,
        created_at_ms: supervisor::ms_since_epoch(std::time::SystemTime::now()),
    };
    Some(SavedWorkspace::new(identity, &spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphan_scope_names_are_parsed() {
        let cg = Cgroup::at("/sys/fs/cgroup/x");
        let r = orphan_record(
            "shipote-my-web-01J0000000000000000000000A.scope",
            &cg,
            Some(7),
            "systemd",
        )
        .unwrap();
        assert_eq!(r.label, "my-web");
        assert_eq!(r.id, "01J0000000000000000000000A");
        assert_eq!(r.on_exit, "keep");
        assert!(orphan_record("shipote-x-notaulid.scope", &cg, None, "systemd").is_none());
        assert!(orphan_record("other.scope", &cg, None, "systemd").is_none());
    }
}
