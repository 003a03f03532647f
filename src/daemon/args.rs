//! `shipoted`'s command line (kept in the library so packaging can generate its
//! man page).

use super::BackendChoice;
use crate::logging::LogTarget;
use std::path::PathBuf;

/// shipoted: the shipote workspace supervisor daemon.
///
/// Serves the shipote protocol on a Unix socket for the user running it. Normally
/// started by systemd as a user service (systemctl --user start shipote), which
/// may also pass the socket (socket activation).
#[derive(Debug, clap::Parser)]
#[command(name = "shipoted", version, about, long_about)]
pub struct DaemonArgs {
    /// Socket to bind (default: $XDG_RUNTIME_DIR/shipote.sock, else
    /// /run/user/$UID/shipote.sock, else /tmp/shipote-$UID.sock). Ignored when
    /// the service manager passes a socket.
    #[arg(long, env = "SHIPOTE_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Where logs and audit records go: auto uses the journal when stderr is
    /// connected to it. The filter comes from SHIPOTE_LOG (e.g. warn,audit=info).
    #[arg(long, value_enum, default_value = "auto", value_name = "WHERE")]
    pub log_target: LogTarget,

    /// How long busy connections get to finish at shutdown, e.g. 5s, 500ms.
    #[arg(long = "shutdown-grace", default_value = "5s", value_name = "DURATION",
          value_parser = crate::client::units::parse_duration_ms)]
    pub shutdown_grace_ms: u64,

    /// The same in milliseconds (the earlier spelling, kept working).
    #[arg(long = "shutdown-grace-ms", hide = true, value_name = "MS")]
    pub old_shutdown_grace_ms: Option<u64>,

    /// Workspace backend: auto picks systemd when a user manager answers on the
    /// user bus, else a writable cgroup v2 subtree, else process groups.
    #[arg(long, value_enum, default_value = "auto", value_name = "BACKEND")]
    pub backend: BackendChoice,

    /// Directory for workspaces' cgroups with the cgroup backend (default: a
    /// shipote.slice directory in the daemon's own cgroup).
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,

    /// First restart delay of commands run with --restart, e.g. 500ms
    /// (doubles per failure in a row, at most 30 s).
    #[arg(long = "restart-backoff", default_value = "500ms", value_name = "DURATION",
          value_parser = crate::client::units::parse_duration_ms)]
    pub restart_backoff_ms: u64,

    /// The same in milliseconds (the earlier spelling, kept working).
    #[arg(long = "restart-backoff-ms", hide = true, value_name = "MS")]
    pub old_restart_backoff_ms: Option<u64>,

    /// Persistent state (default: $XDG_STATE_HOME/shipote, else
    /// ~/.local/state/shipote).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}
