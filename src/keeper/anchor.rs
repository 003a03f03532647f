//! The keeper's side: a small single-threaded loop in the workspace's scope
//! (or cgroup) that outlives any daemon. It starts the workspace's commands
//! when a daemon asks, so they are its children: it reaps them (and, as a
//! subreaper, whatever they leave behind) and keeps their exit statuses; it
//! holds a read end of each command's captured pipes, so a command never sees
//! EPIPE while no daemon reads; and it hands all of it, with the daemon's own
//! notes on each command, to every daemon that connects.

use super::wire::{self, FromKeeper, LaunchSpec, Read, Reader, SpawnFds, ToKeeper};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use shipote_protocol::Ulid;

/// Ended commands a keeper remembers at most (the daemon forgets older ones
/// first; this bounds a keeper whose daemon never says).
const MAX_ENDED: usize = 2000;

/// What the keeper knows of one command.
#[derive(Debug)]
struct Entry {
    pid: i32,
    status: Option<i32>,
    meta: Vec<u8>,
    /// Read ends of its stdout and stderr pipes.
    custody: [Option<OwnedFd>; 2],
    /// A daemon handled its exit.
    settled: bool,
}

/// The keeper's whole life, on the listening socket it was given as fd 3.
/// Never returns: it ends when its workspace is stopped (SIGKILL, or SIGTERM
/// at its default action).
pub fn run(listener: UnixListener) -> ! {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let _ = crate::process::fds::raise_nofile_limit();
    if let Some(soft) = std::env::var("SHIPOTE_NOFILE_SOFT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        crate::process::fds::ORIGINAL_NOFILE_SOFT.store(soft, std::sync::atomic::Ordering::Relaxed);
    }
    // SIGCHLD through a signalfd: the loop reaps when it reads it.
    // SIGTERM too: a stopping workspace's keeper leaves once it has reaped
    // and reported every command (process/end.rs kills it last).
    let mut mask = nix::sys::signal::SigSet::empty();
    mask.add(nix::sys::signal::Signal::SIGCHLD);
    mask.add(nix::sys::signal::Signal::SIGTERM);
    let _ = mask.thread_block();
    let sigfd = nix::sys::signalfd::SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    );
    let Ok(sigfd) = sigfd else {
        // Without it no exit could be seen: stay a placeholder.
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    };
    let mut keeper = Keeper {
        entries: BTreeMap::new(),
        conn: None,
        leaving: false,
        note: Vec::new(),
        namespaces: Vec::new(),
        edges: BTreeMap::new(),
    };
    let _ = listener.set_nonblocking(true);
    loop {
        let conn_fd = keeper.conn.as_ref().map_or(-1, |(s, _)| s.as_raw_fd());
        let mut fds = [
            pollfd(listener.as_raw_fd()),
            pollfd(conn_fd),
            pollfd(sigfd.as_fd().as_raw_fd()),
        ];
        // SAFETY: a valid array of pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            continue;
        }
        if fds[2].revents != 0 {
            while let Ok(Some(info)) = sigfd.read_signal() {
                if info.ssi_signo == libc::SIGTERM as u32 {
                    keeper.leaving = true;
                }
            }
            keeper.reap();
            if keeper.leaving && keeper.entries.values().all(|e| e.status.is_some()) {
                std::process::exit(0);
            }
        }
        if fds[1].revents != 0 {
            keeper.serve();
        }
        if fds[0].revents != 0 {
            if let Ok((stream, _)) = listener.accept() {
                keeper.welcome(stream);
            }
        }
    }
}

fn pollfd(fd: libc::c_int) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// A tapped edge's ends, held.
struct Edge {
    meta: Vec<u8>,
    /// The producer's read end, the consumer's write end.
    ends: [OwnedFd; 2],
    /// Bytes moved, as the daemon last counted.
    bytes: u64,
}

struct Keeper {
    entries: BTreeMap<Ulid, Entry>,
    /// The daemon connected now, if any, and what it has sent so far.
    conn: Option<(UnixStream, Reader)>,
    /// SIGTERM came: leave once no command runs.
    leaving: bool,
    /// The daemon's record of the workspace.
    note: Vec<u8>,
    /// The workspace's namespaces and their kinds.
    namespaces: Vec<(OwnedFd, i32)>,
    /// Tapped edges' ends, by pipeline and edge: note, producer's read end,
    /// consumer's write end.
    edges: BTreeMap<(Ulid, u32), Edge>,
}

impl Keeper {
    /// A daemon connected: it replaces any earlier one (which is gone or
    /// going) and gets the table.
    fn welcome(&mut self, stream: UnixStream) {
        // Only our own user: the socket's directory is private too.
        let ours =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                .is_ok_and(|c| c.uid() == nix::unistd::getuid().as_raw());
        if !ours {
            return;
        }
        let _ = stream.set_nonblocking(true);
        self.conn = Some((stream, Reader::default()));
        if !self.note.is_empty() {
            let note = FromKeeper::Workspace {
                note: self.note.clone(),
            };
            tell(&mut self.conn, &note, &[]);
        }
        for (command, e) in &self.entries {
            let custody: Vec<BorrowedFd<'_>> =
                e.custody.iter().flatten().map(|f| f.as_fd()).collect();
            let msg = FromKeeper::Entry {
                command: *command,
                pid: e.pid,
                status: e.status,
                meta: e.meta.clone(),
                custody: (e.custody[0].is_some(), e.custody[1].is_some()),
                settled: e.settled,
            };
            tell(&mut self.conn, &msg, &custody);
        }
        if !self.namespaces.is_empty() {
            let msg = FromKeeper::Namespaces {
                kinds: self.namespaces.iter().map(|(_, k)| *k).collect(),
            };
            let fds: Vec<BorrowedFd<'_>> = self.namespaces.iter().map(|(f, _)| f.as_fd()).collect();
            tell(&mut self.conn, &msg, &fds);
        }
        for ((pipeline, edge), e) in &self.edges {
            let msg = FromKeeper::Edge {
                pipeline: *pipeline,
                edge: *edge,
                meta: e.meta.clone(),
                bytes: e.bytes,
            };
            tell(
                &mut self.conn,
                &msg,
                &[e.ends[0].as_fd(), e.ends[1].as_fd()],
            );
        }
        tell(&mut self.conn, &FromKeeper::TableEnd, &[]);
    }

    fn tell(&mut self, msg: &FromKeeper, fds: &[BorrowedFd<'_>]) -> bool {
        tell(&mut self.conn, msg, fds)
    }

    /// Reads what the daemon sent and does it.
    fn serve(&mut self) {
        let Some((s, reader)) = &mut self.conn else {
            return;
        };
        match reader.fill(s.as_fd()) {
            Ok(Read::Some) => {}
            Ok(Read::WouldBlock) => return,
            Ok(Read::Closed) | Err(_) => {
                self.conn = None;
                return;
            }
        }
        loop {
            let Some((_, reader)) = &mut self.conn else {
                return;
            };
            match reader.take::<ToKeeper>() {
                Ok(Some((msg, fds))) => self.handle(msg, fds),
                Ok(None) => return,
                Err(_) => {
                    self.conn = None;
                    return;
                }
            }
        }
    }

    fn handle(&mut self, msg: ToKeeper, fds: Vec<OwnedFd>) {
        match msg {
            ToKeeper::Spawn {
                command,
                launch,
                fds: layout,
                meta,
            } => {
                let reply = match self.spawn(command, launch, &layout, fds, meta) {
                    Ok(pid) => FromKeeper::Spawned { command, pid },
                    Err(error) => FromKeeper::SpawnFailed { command, error },
                };
                self.tell(&reply, &[]);
                // A child that ended at once is reported after its start.
                self.reap();
            }
            ToKeeper::Settled { command, pid } => {
                if let Some(e) = self.entries.get_mut(&command) {
                    if e.pid == pid && e.status.is_some() {
                        e.custody = [None, None];
                        e.settled = true;
                    }
                }
            }
            ToKeeper::Forget { command } => {
                self.entries.remove(&command);
            }
            ToKeeper::Note { workspace } => self.note = workspace,
            ToKeeper::Relay { consumers } => {
                let mut it = fds.into_iter();
                if let Some(src) = it.next() {
                    let dsts: Vec<OwnedFd> = it.collect();
                    if dsts.len() == usize::from(consumers) {
                        // A thread of its own, with SIGCHLD blocked like the
                        // loop's (inherited), so the signalfd sees every one.
                        let _ = crate::flow::relay(src, dsts);
                    }
                }
            }
            ToKeeper::Namespaces { kinds } => {
                if kinds.len() == fds.len() {
                    self.namespaces = fds.into_iter().zip(kinds).collect();
                }
            }
            ToKeeper::Hold {
                pipeline,
                edge,
                meta,
            } => {
                let mut it = fds.into_iter();
                if let (Some(src), Some(dst)) = (it.next(), it.next()) {
                    let held = Edge {
                        meta,
                        ends: [src, dst],
                        bytes: 0,
                    };
                    self.edges.insert((pipeline, edge), held);
                }
            }
            ToKeeper::Count {
                pipeline,
                edge,
                bytes,
            } => {
                if let Some(e) = self.edges.get_mut(&(pipeline, edge)) {
                    e.bytes = bytes;
                }
            }
            ToKeeper::Release { pipeline, edge } => match edge {
                Some(e) => drop(self.edges.remove(&(pipeline, e))),
                None => self.edges.retain(|(p, _), _| *p != pipeline),
            },
        }
    }

    fn spawn(
        &mut self,
        command: Ulid,
        launch: LaunchSpec,
        layout: &SpawnFds,
        fds: Vec<OwnedFd>,
        meta: Vec<u8>,
    ) -> Result<i32, String> {
        let wanted = usize::from(layout.stdin)
            + 2
            + usize::from(layout.extra)
            + layout.namespaces.len()
            + usize::from(layout.custody.0)
            + usize::from(layout.custody.1);
        if fds.len() != wanted {
            return Err(format!(
                "the keeper got {} descriptors for a command that needs {wanted}",
                fds.len()
            ));
        }
        let mut it = fds.into_iter();
        let stdin = if layout.stdin { it.next() } else { None };
        let (Some(stdout), Some(stderr)) = (it.next(), it.next()) else {
            return Err("no stdout or stderr".into());
        };
        let extra: Vec<OwnedFd> = it.by_ref().take(usize::from(layout.extra)).collect();
        let ns: Vec<(OwnedFd, libc::c_int)> = it
            .by_ref()
            .zip(layout.namespaces.iter().copied())
            .take(layout.namespaces.len())
            .collect();
        let out = if layout.custody.0 { it.next() } else { None };
        let err = if layout.custody.1 { it.next() } else { None };
        let namespaces = (!ns.is_empty())
            .then(|| std::sync::Arc::new(crate::process::namespaces::Namespaces::new(ns)));
        let child = crate::process::spawn::spawn(crate::process::spawn::Launch {
            program: launch,
            stdin,
            stdout,
            stderr,
            extra_fds: extra,
            namespaces,
        })
        .map_err(|e| e.to_string())?;
        let pid = child.pid();
        // Reaped through waitpid(-1) with everything else it leaves.
        drop(child);
        self.entries.insert(
            command,
            Entry {
                pid,
                status: None,
                meta,
                custody: [out, err],
                settled: false,
            },
        );
        self.trim();
        Ok(pid)
    }

    /// Reaps every ended child (commands and what they left behind) and
    /// tells the daemon about its commands.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let found = self
                .entries
                .iter_mut()
                .find(|(_, e)| e.pid == pid && e.status.is_none())
                .map(|(id, e)| {
                    e.status = Some(status);
                    *id
                });
            if let Some(command) = found {
                self.tell(
                    &FromKeeper::Exited {
                        command,
                        pid,
                        status,
                    },
                    &[],
                );
            }
        }
    }

    /// Forgets the oldest ended commands beyond [`MAX_ENDED`].
    fn trim(&mut self) {
        let ended: Vec<Ulid> = self
            .entries
            .iter()
            .filter(|(_, e)| e.status.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ended.iter().take(ended.len().saturating_sub(MAX_ENDED)) {
            self.entries.remove(id);
        }
    }
}

/// Sends to the daemon; a daemon that cannot be told is gone.
fn tell(conn: &mut Option<(UnixStream, Reader)>, msg: &FromKeeper, fds: &[BorrowedFd<'_>]) -> bool {
    let Some((s, _)) = conn else { return false };
    if wire::send(s.as_fd(), msg, fds).is_err() {
        *conn = None;
        return false;
    }
    true
}

/// The listening socket a keeper was started with (fd 3), if it was.
pub fn inherited_listener() -> Option<UnixListener> {
    const FD: libc::c_int = 3;
    // SAFETY: an all-zero stat is valid; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a descriptor number with a valid out struct.
    if unsafe { libc::fstat(FD, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return None;
    }
    // SAFETY: fd 3 is a socket this process was given and nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(FD) };
    // Not passed on to the commands it starts.
    // SAFETY: fcntl on our own descriptor.
    unsafe { libc::fcntl(FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(UnixListener::from(fd))
}
