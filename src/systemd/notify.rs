//! sd_notify(3): READY, STATUS, STOPPING and WATCHDOG messages to the service
//! manager. Every call is a no-op when `NOTIFY_SOCKET` is unset (not under
//! systemd), so callers never check.
//!
//! Messages are sent without blocking: a manager that does not read its socket
//! loses a status line, it never stalls the daemon (sd-notify's `notify` blocks
//! when the socket's buffer is full, so we send ourselves).

use std::ffi::OsString;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends notifications to the service manager, if there is one.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<OsString>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` once.
    pub fn from_env() -> Self {
        Self {
            socket: std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()),
        }
    }

    /// The daemon is serving: READY=1 with a first status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\n"));
    }

    /// A new status line (what `systemctl status` shows).
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}\n"));
    }

    /// The daemon is shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping\n");
    }

    /// The daemon is alive and its supervisor answers.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1\n");
    }

    /// The watchdog interval the manager asked for, if any (WATCHDOG_USEC for
    /// this pid).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled()
    }

    fn send(&self, message: &str) {
        let Some(path) = &self.socket else { return };
        if let Err(e) = send_nonblocking(path, message.as_bytes()) {
            tracing::debug!(error = %e, "cannot notify the service manager");
        }
    }
}

fn send_nonblocking(path: &OsString, message: &[u8]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let addr = match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
        _ => SocketAddr::from_pathname(path)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    sock.connect_addr(&addr)?;
    sock.send(message)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_the_notify_socket_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some(path.into_os_string()),
        };
        n.ready("serving");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving\n");
        // Nobody reads: the buffer fills and messages are dropped, not waited on.
        for _ in 0..100_000 {
            n.status("x");
        }
    }

    #[test]
    fn no_socket_no_op() {
        Notifier::default().ready("x");
    }
}
