//! `shipoted`'s core. [`run`] binds (or inherits) the control socket, starts the
//! supervisor, accepts connections and serves each in its own task, and shuts down
//! when the caller's token fires: new connections stop, idle ones close, busy ones
//! get [`Config::shutdown_grace`] to finish.

pub mod args;
pub mod audit;
pub mod connection;
pub mod listener;
pub mod supervisor;

use crate::host::HostCaps;
use crate::systemd::notify::Notifier;
use listener::{BoundSocket, ListenError};
use shipote_protocol::{frame, ErrorCode, Response};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use supervisor::{Supervisor, SupervisorHandle};
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

/// How to run the daemon.
#[derive(Debug)]
pub struct Config {
    /// The control socket.
    pub socket: SocketSource,
    /// Time busy connections get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Connections beyond this many are refused with `Busy`.
    pub max_clients: usize,
}

impl Config {
    /// Defaults around a socket source.
    pub fn new(socket: SocketSource) -> Self {
        Self {
            socket,
            shutdown_grace: SHUTDOWN_GRACE,
            max_clients: MAX_CLIENTS,
        }
    }
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
}

/// Runs the daemon until `shutdown` fires. Calls `on_ready` once the socket
/// accepts requests (after READY=1 went to the service manager).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), DaemonError> {
    let bound: BoundSocket = match config.socket {
        SocketSource::Path(path) => listener::bind(&path)?,
        SocketSource::Inherited(l) => listener::inherit(l)?,
    };
    let result = serve(
        &bound,
        config.shutdown_grace,
        config.max_clients,
        shutdown,
        on_ready,
    )
    .await;
    bound.cleanup();
    result
}

async fn serve(
    bound: &BoundSocket,
    grace: Duration,
    max_clients: usize,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), DaemonError> {
    let std_listener = bound.listener.try_clone().map_err(DaemonError::Serve)?;
    std_listener
        .set_nonblocking(true)
        .map_err(DaemonError::Serve)?;
    let listener = tokio::net::UnixListener::from_std(std_listener).map_err(DaemonError::Serve)?;
    let own_uid = nix::unistd::getuid().as_raw();

    let caps = tokio::task::spawn_blocking(HostCaps::probe)
        .await
        .map_err(|e| DaemonError::Serve(std::io::Error::other(e)))?;
    let notifier = Notifier::from_env();
    let (sup, handle, rx) = Supervisor::new(Arc::new(caps), notifier.clone());
    let status = sup.status_line();
    let sup_stop = CancellationToken::new();
    let sup_task = tokio::spawn(sup.run(rx, sup_stop.clone()));
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
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) if tracker.len() >= max_clients => {
                tracker.spawn(turn_away(stream, max_clients));
            }
            Ok((stream, _)) => {
                tracker.spawn(connection::serve(
                    stream,
                    own_uid,
                    handle.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors or memory: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }

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
    if let Some(w) = watchdog {
        w.abort();
    }
    sup_stop.cancel();
    let _ = sup_task.await;
    tracing::info!("stopped");
    Ok(())
}

async fn turn_away(mut stream: tokio::net::UnixStream, max: usize) {
    let msg =
        format!("shipoted is serving its limit of {max} connections; close idle clients and retry");
    if let Ok(bytes) = frame::encode(&Response::error(ErrorCode::Busy, msg)) {
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
