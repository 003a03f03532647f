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
    // One thread, one poll over both sides: each byte costs one wakeup of
    // this process, not a hand-off between two threads (measured through
    // ssh: the hand-off cost more than the rest of the hop).
    use std::os::fd::AsRawFd;
    let mut to_daemon = &stream;
    let mut from_daemon = &stream;
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    let mut fds = [
        libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two pollfd for the call's length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("waiting on {}: {e}", socket.display()));
        }
        if fds[1].revents != 0 {
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
        if fds[0].revents != 0 {
            // Raw reads: std's stdin buffer would hide bytes from poll.
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                if to_daemon.write_all(&buf[..n as usize]).is_err() {
                    return Ok(());
                }
            } else if n == 0
                || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                // Stdin ended: the daemon gets EOF, its last answers still come.
                let _ = stream.shutdown(std::net::Shutdown::Write);
                fds[0].fd = -1;
            }
        }
    }
}
