//! Everything that talks to systemd. Today: sd_notify (readiness, status,
//! watchdog). The D-Bus scope manager lands here too; nothing outside this module
//! speaks to systemd.

pub mod notify;
pub mod scopes;
