//! sd_notify(3): READY, STATUS, STOPPING and WATCHDOG messages to the service
//! manager. Every call is a no-op when `NOTIFY_SOCKET` is unset (not under
//! systemd), so callers never check.

use sd_notify::NotifyState;
use std::time::Duration;

/// Sends notifications to the service manager, if there is one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifier;

impl Notifier {
    /// The daemon is serving: READY=1 with a first status line.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A new status line (what `systemctl status` shows).
    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    /// The daemon is shutting down.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// The daemon is alive and its supervisor answers.
    pub fn watchdog(&self) {
        send(&[NotifyState::Watchdog]);
    }

    /// The watchdog interval the manager asked for, if any (WATCHDOG_USEC for
    /// this pid).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled()
    }
}

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}
