//! shipote: a per-user workspace supervisor on systemd scopes and cgroup v2.
//!
//! Code map, in reading order:
//! - [`daemon`]: `shipoted`'s core: the listener, one task per connection, and the
//!   supervisor task that owns all state. Entry point [`daemon::run`].
//! - [`workspace`]: the rules: specs and limits, backends (systemd scopes, a
//!   cgroup subtree, process groups), commands, restarts, pipelines, stats,
//!   the persisted state, the log budget.
//! - [`process`]: forking, exec'ing and signalling commands: the clean spawn
//!   into a cgroup leaf and namespaces, sandboxes, captured logs, ending
//!   processes, the daemon's own descriptor budget.
//! - [`keeper`]: a workspace's keeper, the process that starts its commands
//!   and holds them (pipes, exit statuses) across daemon restarts, and the
//!   daemon's link to it.
//! - [`flow`]: pipeline edges: taps, flow sockets, rate limits.
//! - [`systemd`]: everything that talks to systemd: sd_notify and the D-Bus
//!   manager (transient scopes).
//! - [`cgroup`]: everything that reads and writes cgroupfs.
//! - [`host`]: probes of the kernel and the process (Capabilities).
//! - [`logging`]: journald or stderr, filtered by `SHIPOTE_LOG`.
//! - [`discern`]: content sniffing of byte samples (type, MIME, confidence, lens).
//! - [`client`]: the `shipote` CLI: argument definitions, commands, rendering.
//!
//! The wire types live in the `shipote-protocol` crate.

pub mod cgroup;
pub mod client;
pub mod daemon;
pub mod discern;
pub mod flow;
pub mod host;
pub mod keeper;
pub mod logging;
pub mod process;
pub mod systemd;
pub mod workspace;

/// The version of this build, as `Health` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
