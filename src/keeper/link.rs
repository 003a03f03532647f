//! The daemon's side of a keeper: connect (and read what it holds), ask it to
//! start commands, hear their exits.

use super::wire::{self, FromKeeper, LaunchSpec, Read, Reader, SpawnFds, ToKeeper};
use shipote_protocol::Ulid;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a start may take in the keeper before the daemon gives up on it.
const SPAWN_WAIT: Duration = Duration::from_secs(30);

/// A command the keeper held when this daemon connected.
#[derive(Debug)]
pub struct Held {
    /// Its id.
    pub command: Ulid,
    /// Its (latest) process.
    pub pid: i32,
    /// Its wait status, when it has ended.
    pub status: Option<i32>,
    /// A daemon already handled that exit.
    pub settled: bool,
    /// What the previous daemon noted about it.
    pub meta: Vec<u8>,
    /// The read ends of its stdout and stderr pipes that the keeper holds
    /// (copies: the keeper keeps its own until told the output is drained).
    pub stdout: Option<OwnedFd>,
    /// Stderr's.
    pub stderr: Option<OwnedFd>,
}

/// What a keeper holds, as a daemon that connects finds it.
#[derive(Debug, Default)]
pub struct Table {
    /// The workspace's record, as a daemon noted it.
    pub note: Option<Vec<u8>>,
    /// Its commands.
    pub held: Vec<Held>,
    /// Its pipelines' tapped edges.
    pub edges: Vec<HeldEdge>,
    /// The workspace's namespaces and their CLONE_NEW* kinds.
    pub namespaces: Vec<(OwnedFd, i32)>,
}

/// A tapped pipeline edge whose ends a keeper held.
#[derive(Debug)]
pub struct HeldEdge {
    /// Its pipeline.
    pub pipeline: Ulid,
    /// Its edge's index.
    pub edge: u32,
    /// What the previous daemon noted of it.
    pub meta: Vec<u8>,
    /// The producer's read end.
    pub src: OwnedFd,
    /// The consumer's write end.
    pub dst: OwnedFd,
    /// Bytes it had moved, as last counted.
    pub bytes: u64,
}

/// One daemon's connection to one workspace's keeper.
#[derive(Debug)]
pub struct KeeperLink {
    sock: UnixStream,
    /// Senders hold it for a whole frame.
    send_lock: Mutex<()>,
    /// Starts waiting for their answer.
    pending: Mutex<HashMap<Ulid, std::sync::mpsc::SyncSender<Result<i32, String>>>>,
    /// Exits waited for.
    exits: Mutex<HashMap<Ulid, oneshot::Sender<i32>>>,
    /// Exits that came before anyone waited for them (a command listed in
    /// the table that ended before its record was rebuilt).
    early: Mutex<HashMap<Ulid, i32>>,
    alive: AtomicBool,
}

impl KeeperLink {
    /// Connects to the keeper listening at `path` and reads what it holds.
    /// Blocking (a local socket: quick).
    pub fn connect(path: &Path) -> std::io::Result<(Arc<KeeperLink>, Table)> {
        let sock = UnixStream::connect(path)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = Reader::default();
        let mut table = Table::default();
        loop {
            let Some((msg, fds)) = reader.next_blocking::<FromKeeper>(sock.as_fd())? else {
                return Err(std::io::Error::other(
                    "the keeper closed the connection before listing its commands",
                ));
            };
            match msg {
                FromKeeper::Entry {
                    command,
                    pid,
                    status,
                    meta,
                    custody,
                    settled,
                } => {
                    let mut fds = fds.into_iter();
                    let stdout = if custody.0 { fds.next() } else { None };
                    let stderr = if custody.1 { fds.next() } else { None };
                    table.held.push(Held {
                        command,
                        pid,
                        status,
                        settled,
                        meta,
                        stdout,
                        stderr,
                    });
                }
                FromKeeper::Workspace { note } => table.note = Some(note),
                FromKeeper::Namespaces { kinds } => {
                    if kinds.len() == fds.len() {
                        table.namespaces = fds.into_iter().zip(kinds).collect();
                    }
                }
                FromKeeper::Edge {
                    pipeline,
                    edge,
                    meta,
                    bytes,
                } => {
                    let mut fds = fds.into_iter();
                    if let (Some(src), Some(dst)) = (fds.next(), fds.next()) {
                        table.edges.push(HeldEdge {
                            pipeline,
                            edge,
                            meta,
                            src,
                            dst,
                            bytes,
                        });
                    }
                }
                FromKeeper::TableEnd => break,
                other => {
                    return Err(std::io::Error::other(format!(
                        "the keeper sent {other:?} before its table's end"
                    )))
                }
            }
        }
        sock.set_nonblocking(true)?;
        let link = Arc::new(KeeperLink {
            sock,
            send_lock: Mutex::new(()),
            pending: Mutex::default(),
            exits: Mutex::default(),
            early: Mutex::default(),
            alive: AtomicBool::new(true),
        });
        let listener = link.clone();
        tokio::spawn(async move { listener.listen(reader).await });
        Ok((link, table))
    }

    /// Whether the keeper still answers.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Reads the keeper's messages until it goes; then every start and exit
    /// still waited for ends without an answer.
    async fn listen(self: Arc<Self>, mut reader: Reader) {
        let dup = self.sock.as_fd().try_clone_to_owned();
        let fd = dup.and_then(|fd| {
            // SAFETY: the AsyncFd owns this copy of the socket, so it stays
            // open and the same for the AsyncFd's whole life.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            }
            .map_err(|e| e.into_parts().1)
        });
        if let Ok(fd) = fd {
            'read: loop {
                // Frames already read (the table's read may have read ahead).
                loop {
                    match reader.take::<FromKeeper>() {
                        Ok(Some((msg, _fds))) => self.handle(msg),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "a keeper sent a bad frame; dropping it");
                            break 'read;
                        }
                    }
                }
                let Ok(mut guard) = fd.readable().await else {
                    break;
                };
                match reader.fill(fd.get_ref().as_fd()) {
                    Ok(Read::Some) => {}
                    Ok(Read::WouldBlock) => guard.clear_ready(),
                    Ok(Read::Closed) | Err(_) => break,
                }
            }
        }
        self.alive.store(false, Ordering::Release);
        self.pending.lock().expect("not poisoned").clear();
        self.exits.lock().expect("not poisoned").clear();
    }

    fn handle(&self, msg: FromKeeper) {
        match msg {
            FromKeeper::Spawned { command, pid } => self.answer(command, Ok(pid)),
            FromKeeper::SpawnFailed { command, error } => self.answer(command, Err(error)),
            FromKeeper::Exited {
                command, status, ..
            } => {
                // Under the same locks, in the same order, as expect_exit.
                let mut exits = self.exits.lock().expect("not poisoned");
                match exits.remove(&command) {
                    Some(tx) => drop(tx.send(status)),
                    None => drop(
                        self.early
                            .lock()
                            .expect("not poisoned")
                            .insert(command, status),
                    ),
                }
            }
            FromKeeper::Entry { .. }
            | FromKeeper::TableEnd
            | FromKeeper::Workspace { .. }
            | FromKeeper::Edge { .. }
            | FromKeeper::Namespaces { .. } => {}
        }
    }

    fn answer(&self, command: Ulid, result: Result<i32, String>) {
        if let Some(tx) = self.pending.lock().expect("not poisoned").remove(&command) {
            let _ = tx.send(result);
        }
    }

    /// Waits for `command`'s exit, as the keeper reports it (`Err`: the
    /// keeper went first).
    pub fn expect_exit(&self, command: Ulid) -> oneshot::Receiver<i32> {
        let (tx, rx) = oneshot::channel();
        let mut exits = self.exits.lock().expect("not poisoned");
        match self.early.lock().expect("not poisoned").remove(&command) {
            Some(status) => drop(tx.send(status)),
            None => drop(exits.insert(command, tx)),
        }
        rx
    }

    fn send(&self, msg: &ToKeeper, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
        let _one = self.send_lock.lock().expect("not poisoned");
        wire::send(self.sock.as_fd(), msg, fds)
    }

    /// Has the keeper start a command; blocking (call off the loop). Returns
    /// its pid and where its exit will come.
    pub fn spawn(
        &self,
        command: Ulid,
        launch: LaunchSpec,
        layout: SpawnFds,
        fds: &[BorrowedFd<'_>],
        meta: Vec<u8>,
    ) -> Result<(i32, oneshot::Receiver<i32>), String> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.pending
            .lock()
            .expect("not poisoned")
            .insert(command, tx);
        let exit = self.expect_exit(command);
        let msg = ToKeeper::Spawn {
            command,
            launch,
            fds: layout,
            meta,
        };
        let forget = |why: String| {
            self.pending.lock().expect("not poisoned").remove(&command);
            self.exits.lock().expect("not poisoned").remove(&command);
            why
        };
        if !self.alive() {
            return Err(forget("the workspace's keeper is gone".into()));
        }
        self.send(&msg, fds)
            .map_err(|e| forget(format!("cannot reach the workspace's keeper: {e}")))?;
        match rx.recv_timeout(SPAWN_WAIT) {
            Ok(Ok(pid)) => Ok((pid, exit)),
            Ok(Err(e)) => Err(forget(e)),
            Err(_) => Err(forget(
                "the workspace's keeper did not answer (it is gone or stuck)".into(),
            )),
        }
    }

    /// Tells the keeper a run is settled: its exit handled, its output in
    /// its log (the keeper lets go of its read ends). Best effort; blocking
    /// only while the keeper's socket is full.
    pub fn settled(&self, command: Ulid, pid: i32) {
        let _ = self.send(&ToKeeper::Settled { command, pid }, &[]);
    }

    /// Has the keeper hold a tapped edge's ends (copies). Blocking.
    pub fn hold(
        &self,
        pipeline: Ulid,
        edge: u32,
        meta: Vec<u8>,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
    ) -> std::io::Result<()> {
        self.send(
            &ToKeeper::Hold {
                pipeline,
                edge,
                meta,
            },
            &[src, dst],
        )
    }

    /// Lets the keeper drop an edge's ends (every edge of the pipeline
    /// when `edge` is `None`). Best effort.
    pub fn release(&self, pipeline: Ulid, edge: Option<u32>) {
        let _ = self.send(&ToKeeper::Release { pipeline, edge }, &[]);
    }

    /// Tells the keeper how many bytes each of these edges has moved.
    /// Best effort.
    pub fn count(&self, counts: &[(Ulid, u32, u64)]) {
        for &(pipeline, edge, bytes) in counts {
            let msg = ToKeeper::Count {
                pipeline,
                edge,
                bytes,
            };
            if self.send(&msg, &[]).is_err() {
                return;
            }
        }
    }

    /// Has the keeper run a fan-out relay from `src` to `dsts` (it then
    /// holds the only copies). Blocking.
    pub fn relay(&self, src: OwnedFd, dsts: Vec<OwnedFd>) -> std::io::Result<()> {
        let fds: Vec<BorrowedFd<'_>> = std::iter::once(src.as_fd())
            .chain(dsts.iter().map(|d| d.as_fd()))
            .collect();
        let consumers = dsts.len() as u16;
        self.send(&ToKeeper::Relay { consumers }, &fds)
    }

    /// Has the keeper hold the workspace's namespaces. Best effort.
    pub fn keep_namespaces(&self, ns: &crate::process::namespaces::Namespaces) {
        let (fds, kinds): (Vec<BorrowedFd<'_>>, Vec<i32>) = ns.fds().unzip();
        let _ = self.send(&ToKeeper::Namespaces { kinds }, &fds);
    }

    /// Gives the keeper the workspace's record. Best effort.
    pub fn note(&self, workspace: Vec<u8>) {
        let _ = self.send(&ToKeeper::Note { workspace }, &[]);
    }

    /// Tells the keeper the daemon forgot a command. Best effort.
    pub fn forget(&self, command: Ulid) {
        let _ = self.send(&ToKeeper::Forget { command }, &[]);
    }
}
