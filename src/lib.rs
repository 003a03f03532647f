//! shipote: a per-user workspace supervisor on systemd scopes and cgroup v2.
//!
//! Code map, in reading order:
//! - [`daemon`]: `shipoted`'s core: the listener, one task per connection, and the
//!   supervisor task that owns all state. Entry point [`daemon::run`].
//! - [`systemd`]: everything that talks to systemd (today: sd_notify).
//! - [`cgroup`]: everything that reads cgroupfs.
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
pub mod logging;
pub mod process;
pub mod systemd;
pub mod workspace;

/// The version of this build, as `Health` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
