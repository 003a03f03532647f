//! What a daemon and a workspace's keeper say to each other, and how: each
//! message is a frame (u32 length, u16 descriptor count, postcard body) sent
//! in one sendmsg with its descriptors attached (SCM_RIGHTS) over a Unix
//! stream socket. Descriptors arrive with the first byte of their frame, so
//! a reader queues them in arrival order and each frame takes its count.
//!
//! Keepers outlive daemons, so an upgraded daemon talks to keepers of an
//! older version: variants are only ever appended, a variant's fields never
//! change (new fields make a new variant), and a frame that does not decode
//! is skipped whole (a newer peer's message), not an error.

use serde::{Deserialize, Serialize};
use shipote_protocol::Ulid;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Largest frame body: a spawn carries a command's argv and environment,
/// which the daemon bounds well below this.
pub const MAX_FRAME: usize = 64 << 20;

/// Most descriptors one frame carries (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS: usize = 250;

const HEADER: usize = 6;

/// The program a keeper starts, as the daemon resolved it.
pub use crate::process::spawn::Program as LaunchSpec;

/// Which descriptors a `Spawn` carries, in this order: stdin (when
/// `stdin`), stdout, stderr, `extra` extra ones (3, 4, ...), the
/// workspace's namespaces (`namespaces` kinds, in join order), then the
/// read ends the keeper holds for the command (`custody` of them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpawnFds {
    /// Standard input is given (else /dev/null).
    pub stdin: bool,
    /// Extra descriptors.
    pub extra: u16,
    /// CLONE_NEW* kinds of the namespaces to join, in order.
    pub namespaces: Vec<i32>,
    /// Read ends of its captured stdout and stderr pipes, kept by the keeper.
    pub custody: (bool, bool),
}

/// Daemon to keeper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToKeeper {
    /// Start a command (or start it again: a restart keeps its id).
    Spawn {
        /// The daemon's id for it.
        command: Ulid,
        /// What to run.
        launch: LaunchSpec,
        /// The descriptors attached.
        fds: SpawnFds,
        /// The daemon's record of it, opaque to the keeper, handed back to
        /// the next daemon.
        meta: Vec<u8>,
    },
    /// This run of `command` is settled: its exit is known to the daemon
    /// and its output is in its log. The keeper lets go of its read ends and
    /// tells later daemons the exit was handled.
    Settled {
        /// Which.
        command: Ulid,
        /// Which run.
        pid: i32,
    },
    /// The daemon forgot `command`: so does the keeper.
    Forget {
        /// Which.
        command: Ulid,
    },
    /// Keep these two ends of a tapped pipeline edge (attached: the
    /// producer's read end, the consumer's write end) while no daemon moves
    /// its bytes, so neither side sees EOF or EPIPE across a restart.
    Hold {
        /// Its pipeline.
        pipeline: Ulid,
        /// Its edge's index.
        edge: u32,
        /// The daemon's note of it (opaque to the keeper).
        meta: Vec<u8>,
    },
    /// The edge ended (or, with no edge, every edge of the pipeline): let
    /// go of its ends, so EOF and EPIPE reach its commands.
    Release {
        /// Its pipeline.
        pipeline: Ulid,
        /// Its edge; `None`: all of the pipeline's.
        edge: Option<u32>,
    },
    /// The daemon's record of the workspace (opaque to the keeper), handed
    /// to later daemons: what rebuilds it when the state file is lost.
    Note {
        /// The record.
        workspace: Vec<u8>,
    },
    /// How many bytes a tapped edge has moved so far (so its count goes on
    /// with the next daemon).
    Count {
        /// Its pipeline.
        pipeline: Ulid,
        /// Its edge's index.
        edge: u32,
        /// Bytes moved.
        bytes: u64,
    },
    /// Run a pipeline's fan-out relay (attached: the source's read end, then
    /// each consumer's write end): the keeper copies it, so it flows on
    /// while no daemon runs.
    Relay {
        /// How many consumers.
        consumers: u16,
    },
    /// Keep the workspace's namespaces (attached, in join order), so the
    /// next daemon's commands join the same ones as those still running.
    Namespaces {
        /// Their CLONE_NEW* kinds, in order.
        kinds: Vec<i32>,
    },
}

/// Keeper to daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromKeeper {
    /// The workspace's record as a daemon noted it (first in the table,
    /// when there is one).
    Workspace {
        /// The record.
        note: Vec<u8>,
    },
    /// A command the keeper knows, sent to each daemon that connects, with
    /// the read ends it holds for it attached.
    Entry {
        /// Its id.
        command: Ulid,
        /// Its process (of the latest run).
        pid: i32,
        /// Its wait status, once it has ended.
        status: Option<i32>,
        /// What the daemon said of it.
        meta: Vec<u8>,
        /// Which read ends are attached: stdout, stderr.
        custody: (bool, bool),
        /// A daemon already handled its exit (`Settled`).
        settled: bool,
    },
    /// The workspace's namespaces (attached), in the table.
    Namespaces {
        /// Their CLONE_NEW* kinds, in order.
        kinds: Vec<i32>,
    },
    /// A held edge (its two ends attached), in the table.
    Edge {
        /// Its pipeline.
        pipeline: Ulid,
        /// Its edge's index.
        edge: u32,
        /// What the daemon noted of it.
        meta: Vec<u8>,
        /// Bytes it had moved, as last counted.
        bytes: u64,
    },
    /// Every command has been listed.
    TableEnd,
    /// A `Spawn` succeeded: the program is exec'd.
    Spawned {
        /// Which.
        command: Ulid,
        /// Its pid.
        pid: i32,
    },
    /// A `Spawn` failed.
    SpawnFailed {
        /// Which.
        command: Ulid,
        /// What went wrong, for the client.
        error: String,
    },
    /// A command's process ended.
    Exited {
        /// Which.
        command: Ulid,
        /// Which run.
        pid: i32,
        /// Its wait status.
        status: i32,
    },
}

/// Sends one frame with `fds` attached. Blocks while the socket is full
/// (the socket may be non-blocking: it then waits for room with poll).
pub fn send<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other(format!(
            "{} descriptors in one message (at most {MAX_FDS})",
            fds.len()
        )));
    }
    let body = postcard::to_allocvec(msg).map_err(std::io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "a {} byte message (at most {MAX_FRAME})",
            body.len()
        )));
    }
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    header[4..].copy_from_slice(&(fds.len() as u16).to_le_bytes());
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let mut sent = 0usize;
    let total = HEADER + body.len();
    while sent < total {
        let (h, b) = if sent < HEADER {
            (&header[sent..], &body[..])
        } else {
            (&header[..0], &body[sent - HEADER..])
        };
        let iov = [IoSlice::new(h), IoSlice::new(b)];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        // The descriptors go with the first byte only.
        let cmsgs: &[ControlMessage] = if sent == 0 && !raw.is_empty() {
            &cmsg
        } else {
            &[]
        };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => wait(sock, libc::POLLOUT, -1)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Waits until `sock` is ready for `events`, at most `timeout_ms` (-1: no
/// limit).
fn wait(sock: BorrowedFd<'_>, events: libc::c_short, timeout_ms: i32) -> std::io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    match unsafe { libc::poll(&mut pfd, 1, timeout_ms) } {
        0 => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the peer did not answer in time",
        )),
        r if r < 0 => {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            }
        }
        _ => Ok(()),
    }
}

/// How long a blocking read waits for the peer's next frame.
const READ_WAIT_MS: i32 = 10_000;

/// Frames as they arrive on one socket, with their descriptors.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    /// Where each read lands, reused (no allocation per read).
    chunk: Vec<u8>,
    /// Room for the descriptors of one read, reused.
    space: Vec<u8>,
}

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Bytes came (maybe a whole frame: call `next`).
    Some,
    /// Nothing to read now (non-blocking socket).
    WouldBlock,
    /// The peer is gone.
    Closed,
}

impl Reader {
    /// Reads what the socket has (at most 64 KiB and 253 descriptors).
    pub fn fill(&mut self, sock: BorrowedFd<'_>) -> std::io::Result<Read> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        if self.chunk.is_empty() {
            self.chunk = vec![0u8; 64 << 10];
            self.space = nix::cmsg_space!([RawFd; 253]);
        }
        loop {
            let mut iov = [std::io::IoSliceMut::new(&mut self.chunk)];
            let r = recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut self.space),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
            );
            let msg = match r {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(Read::WouldBlock),
                Err(e) => return Err(e.into()),
            };
            for c in msg.cmsgs().map_err(std::io::Error::from)? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for fd in fds {
                        // SAFETY: the kernel just installed this descriptor
                        // for us; nobody else owns it.
                        self.fds.push_back(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
            }
            let n = msg.bytes;
            if n == 0 {
                return Ok(Read::Closed);
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
            return Ok(Read::Some);
        }
    }

    /// Blocks until a whole frame is here and returns it; `None`: the peer
    /// closed.
    pub fn next_blocking<T: for<'de> Deserialize<'de>>(
        &mut self,
        sock: BorrowedFd<'_>,
    ) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
        loop {
            if let Some(frame) = self.take()? {
                return Ok(Some(frame));
            }
            match self.fill(sock)? {
                Read::Some => {}
                Read::WouldBlock => wait(sock, libc::POLLIN, READ_WAIT_MS)?,
                Read::Closed => return Ok(None),
            }
        }
    }

    /// The next whole frame already read, if any.
    pub fn take<T: for<'de> Deserialize<'de>>(
        &mut self,
    ) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
        let nfds = u16::from_le_bytes(self.buf[4..6].try_into().expect("2 bytes")) as usize;
        if len > MAX_FRAME || nfds > MAX_FDS {
            return Err(std::io::Error::other(format!(
                "a frame of {len} bytes and {nfds} descriptors (at most {MAX_FRAME} and {MAX_FDS})"
            )));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        if self.fds.len() < nfds {
            return Err(std::io::Error::other(format!(
                "a frame announced {nfds} descriptors; {} came",
                self.fds.len()
            )));
        }
        let msg = postcard::from_bytes(&self.buf[HEADER..HEADER + len]);
        self.buf.drain(..HEADER + len);
        let fds = self.fds.drain(..nfds).collect();
        match msg {
            Ok(msg) => Ok(Some((msg, fds))),
            // A message from a newer peer (a daemon upgraded while its
            // keepers run on): skipped, descriptors closed.
            Err(_) => self.take(),
        }
    }
}

/// Borrows each of `fds`.
pub fn borrow_all(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(|f| f.as_fd()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    #[test]
    fn frames_carry_their_descriptors_in_order() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let big = ToKeeper::Forget {
            command: Ulid::new(),
        };
        send(a.as_fd(), &big, &[w1.as_fd()]).unwrap();
        send(
            a.as_fd(),
            &ToKeeper::Settled {
                command: Ulid::nil(),
                pid: 7,
            },
            &[],
        )
        .unwrap();
        send(a.as_fd(), &big, &[w2.as_fd(), r1.as_fd()]).unwrap();
        drop((w1, w2, r1));
        let mut rd = Reader::default();
        let (m, fds): (ToKeeper, _) = rd.next_blocking(b.as_fd()).unwrap().unwrap();
        assert!(matches!(m, ToKeeper::Forget { .. }));
        assert_eq!(fds.len(), 1);
        std::fs::File::from(fds.into_iter().next().unwrap())
            .write_all(b"one")
            .unwrap();
        let (m, fds): (ToKeeper, _) = rd.next_blocking(b.as_fd()).unwrap().unwrap();
        assert!(matches!(m, ToKeeper::Settled { pid: 7, .. }) && fds.is_empty());
        let (_, fds): (ToKeeper, _) = rd.next_blocking(b.as_fd()).unwrap().unwrap();
        assert_eq!(fds.len(), 2);
        let mut it = fds.into_iter();
        std::fs::File::from(it.next().unwrap())
            .write_all(b" two")
            .unwrap();
        drop(it);
        let mut got = String::new();
        std::fs::File::from(r2).read_to_string(&mut got).unwrap();
        assert_eq!(got, " two");
        drop(a);
        assert!(rd.next_blocking::<ToKeeper>(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn a_frame_from_a_newer_peer_is_skipped_with_its_descriptors() {
        // A newer daemon's message: variant 200 (postcard writes a variant's
        // index as a varint, like a u32), which this keeper does not know.
        let newer = (200u32, 7u32);
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), &newer, &[w.as_fd()]).unwrap();
        drop(w);
        send(
            a.as_fd(),
            &ToKeeper::Forget {
                command: Ulid::nil(),
            },
            &[],
        )
        .unwrap();
        let mut rd = Reader::default();
        let (m, fds): (ToKeeper, _) = rd.next_blocking(b.as_fd()).unwrap().unwrap();
        assert!(matches!(m, ToKeeper::Forget { .. }) && fds.is_empty());
        // The skipped frame's descriptor was closed: the pipe has no writer.
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 0);
    }
}
