//! Everything that talks to systemd: sd_notify (readiness, status, watchdog,
//! `notify.rs`) and the user manager over D-Bus (transient scopes, `scopes.rs`).
//! Nothing outside this module speaks to systemd.

pub mod notify;
pub mod scopes;
