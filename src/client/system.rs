//! `shipote system ...`: plumbing. `dial-stdio` bridges standard input and
//! output to the daemon's socket (or any shipote socket, such as a flow's),
//! byte for byte, as `docker system dial-stdio` and `systemd-stdio-bridge`
//! do: what a client on another host runs over `ssh`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// `shipote system ...`
#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Bridge stdin and stdout to the daemon's socket (--socket for another
    /// one, a flow socket too), byte for byte, until either side closes.
    DialStdio,
}

/// Copies stdin to the socket and the socket to stdout. Stdin's end is
/// passed on as the socket's write side closing; the bridge ends when the
/// socket's side ends (the daemon answered and closed) or stdout goes away.
pub fn dial_stdio(socket: &Path) -> Result<(), String> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "no daemon at {}: {e}; start it with `systemctl --user start shipote`, or run `shipoted`",
            socket.display()
        )
    })?;
    let mut to_daemon = stream
        .try_clone()
        .map_err(|e| format!("cannot use {}: {e}", socket.display()))?;
    // Requests in: a thread, so that answers flow out while stdin is read.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 16 << 10];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_daemon.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_daemon.shutdown(std::net::Shutdown::Write);
    });
    let mut from_daemon = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 16 << 10];
    loop {
        match from_daemon.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                // Our reader went away (ssh closed): done.
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading {}: {e}", socket.display())),
        }
    }
}
