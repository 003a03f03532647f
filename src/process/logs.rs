//! Captured output of commands: one bounded, rotating log per command.
//!
//! Both streams of a command go, in the order their bytes reached the daemon,
//! to `<id>.log`; `<id>.idx` says which stream each run of bytes came from (a
//! 16-byte header, `shlogix1` and the log position where this generation
//! starts, then one 5-byte record per chunk: stream, length). The bytes move
//! from the pipe to the file with splice(2), never through user space, so
//! capture costs the command almost nothing.
//!
//! When the log would pass [`LOG_CAP_BYTES`] (or its index [`INDEX_CAP_BYTES`]),
//! both are renamed to `.1` (replacing the previous generation) and started
//! afresh: a command keeps at most 2 × (1 MiB + 256 KiB) on disk. The pipes
//! are always drained, even when the disk is full, so a chatty command is never
//! blocked by its logs (what could not be kept is counted as lost).
//!
//! A *position* counts the bytes of both streams since the command first
//! started (restarts continue the same log); followers read from a position.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Largest size of one generation of a command's log.
pub const LOG_CAP_BYTES: u64 = 1 << 20;

/// Largest size of one generation of its index.
pub const INDEX_CAP_BYTES: u64 = 256 << 10;

/// The pipes' buffer size: large pipes mean fewer wake-ups per byte.
pub const PIPE_BYTES: i32 = 1 << 20;

const MAGIC: &[u8; 8] = b"shlogix1";
const HEADER: u64 = 16;
const RECORD: u64 = 5;
/// Most splices per wake-up of the capture thread.
const MOVES_PER_WAKE: usize = 16;

/// Read size when a pipe must be drained by copying.
const CHUNK: usize = 64 * 1024;

/// Which stream a chunk came from, or which a reader wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Both, in arrival order (readers only).
    Both,
    /// Both, in arrival order, each run of one stream's bytes as a record:
    /// its stream (1 stdout, 2 stderr), its length (u32, little-endian),
    /// its bytes (readers only: `run --wait` writes each to its own fd).
    Tagged,
}

/// Bytes before each record of a [`Stream::Tagged`] read.
pub const TAG_HEADER: u64 = 5;

impl Stream {
    fn tag(self) -> u8 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
            Stream::Both | Stream::Tagged => 0,
        }
    }

    fn wants(self, tag: u8) -> bool {
        matches!(self, Stream::Both | Stream::Tagged) || self.tag() == tag
    }

    /// What a range of `len` bytes costs of a read's budget.
    fn cost(self, len: u64) -> u64 {
        if self == Stream::Tagged {
            len + TAG_HEADER
        } else {
            len
        }
    }
}

/// The files of one command.
#[derive(Debug, Clone)]
pub struct LogPaths {
    base: PathBuf,
}

/// One generation as read back: where it starts and its chunks.
struct Generation {
    data: PathBuf,
    start: u64,
    /// (stream tag, length) in arrival order.
    records: Vec<(u8, u32)>,
}

impl Generation {
    fn end(&self) -> u64 {
        self.start + self.records.iter().map(|r| u64::from(r.1)).sum::<u64>()
    }
}

/// Bytes read from a position onwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The bytes of the asked stream(s).
    pub bytes: Vec<u8>,
    /// Position to read from next.
    pub next: u64,
    /// Bytes of the log (both streams) that rotated away before they were read.
    pub skipped: u64,
}

impl LogPaths {
    /// Logs named `<dir>/<name>.{log,idx}`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            base: dir.join(name),
        }
    }

    fn path(&self, ext: &str) -> PathBuf {
        let mut p = self.base.clone().into_os_string();
        p.push(format!(".{ext}"));
        PathBuf::from(p)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.base.parent().unwrap_or(Path::new("/"))
    }

    /// Bytes kept on disk for this command.
    pub fn kept_bytes(&self) -> u64 {
        ["log", "idx", "log.1", "idx.1"]
            .iter()
            .filter_map(|e| self.path(e).metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Bytes of output kept (both generations, without their indexes): what
    /// `ps` shows.
    pub fn output_bytes(&self) -> u64 {
        ["log", "log.1"]
            .iter()
            .filter_map(|e| self.path(e).metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Removes every file of this command's log; returns the bytes freed.
    pub fn remove(&self) -> u64 {
        let mut freed = 0;
        for e in ["log", "idx", "log.1", "idx.1"] {
            let p = self.path(e);
            let len = p.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(&p).is_ok() {
                freed += len;
            }
        }
        freed
    }

    /// The generations kept, oldest first.
    fn generations(&self) -> std::io::Result<Vec<Generation>> {
        let mut gens = Vec::with_capacity(2);
        for (idx, data) in [("idx.1", "log.1"), ("idx", "log")] {
            if let Some(g) = load_generation(&self.path(idx), self.path(data))? {
                gens.push(g);
            }
        }
        Ok(gens)
    }

    /// The last `n` bytes of `stream`, and the position after them.
    pub fn tail(&self, stream: Stream, n: u64) -> std::io::Result<(Vec<u8>, u64)> {
        let gens = self.generations()?;
        let end = gens.last().map_or(0, Generation::end);
        // Walk back from the end, collecting (generation, offset, length).
        let mut ranges = Vec::new();
        let mut left = n;
        'outer: for (gi, g) in gens.iter().enumerate().rev() {
            let mut off = g.end() - g.start;
            for &(tag, len) in g.records.iter().rev() {
                off -= u64::from(len);
                if left == 0 {
                    break 'outer;
                }
                if stream.wants(tag) {
                    let take = left.min(u64::from(len));
                    ranges.push((gi, off + u64::from(len) - take, take, tag));
                    left -= take;
                }
            }
        }
        ranges.reverse();
        Ok((read_ranges(&gens, &ranges, stream)?, end))
    }

    /// Up to `max` bytes of `stream` from position `from` on.
    pub fn read_from(&self, stream: Stream, from: u64, max: u64) -> std::io::Result<Chunk> {
        let gens = self.generations()?;
        let oldest = gens.first().map_or(0, |g| g.start);
        let end = gens.last().map_or(0, Generation::end);
        let skipped = oldest.saturating_sub(from);
        let mut pos = from.max(oldest);
        if pos >= end {
            return Ok(Chunk {
                bytes: Vec::new(),
                next: end,
                skipped,
            });
        }
        let mut ranges = Vec::new();
        let mut left = max;
        'outer: for (gi, g) in gens.iter().enumerate() {
            let mut at = g.start;
            for &(tag, len) in &g.records {
                let rec_end = at + u64::from(len);
                if rec_end > pos {
                    if stream.wants(tag) {
                        if left <= stream.cost(0) {
                            break 'outer;
                        }
                        let take = (left - stream.cost(0)).min(rec_end - pos);
                        ranges.push((gi, pos - g.start, take, tag));
                        left -= stream.cost(take);
                        pos += take;
                        if pos < rec_end {
                            break 'outer;
                        }
                    } else {
                        pos = rec_end;
                    }
                }
                at = rec_end;
            }
        }
        Ok(Chunk {
            bytes: read_ranges(&gens, &ranges, stream)?,
            next: pos,
            skipped,
        })
    }
}

/// The bytes of `ranges` (generation, offset, length, stream tag), as
/// records for [`Stream::Tagged`] (a range whose file rotated away while it
/// was read is left out).
fn read_ranges(
    gens: &[Generation],
    ranges: &[(usize, u64, u64, u8)],
    stream: Stream,
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(ranges.iter().map(|r| stream.cost(r.2) as usize).sum());
    let mut files: Vec<Option<File>> = gens.iter().map(|_| None).collect();
    for &(gi, off, len, tag) in ranges {
        let file = match &mut files[gi] {
            Some(f) => f,
            slot => match File::open(&gens[gi].data) {
                Ok(f) => slot.insert(f),
                // Rotated away while we read: what is gone is gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            },
        };
        let header = out.len();
        if stream == Stream::Tagged {
            out.extend_from_slice(&[tag, 0, 0, 0, 0]);
        }
        let at = out.len();
        out.resize(at + len as usize, 0);
        let mut got = 0;
        while got < len as usize {
            match file.read_at(&mut out[at + got..], off + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.truncate(at + got);
        if stream == Stream::Tagged {
            out[header + 1..header + 5].copy_from_slice(&(got as u32).to_le_bytes());
        }
    }
    Ok(out)
}

fn load_generation(idx: &Path, data: PathBuf) -> std::io::Result<Option<Generation>> {
    let raw = match std::fs::read(idx) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if raw.len() < HEADER as usize || &raw[..8] != MAGIC {
        return Ok(None);
    }
    let start = u64::from_le_bytes(raw[8..16].try_into().expect("8 bytes"));
    let records = raw[HEADER as usize..]
        .chunks_exact(RECORD as usize)
        .map(|r| {
            (
                r[0],
                u32::from_le_bytes(r[1..5].try_into().expect("4 bytes")),
            )
        })
        .collect();
    Ok(Some(Generation {
        data,
        start,
        records,
    }))
}

/// Appends to a command's log; one writer per command.
#[derive(Debug)]
pub struct LogWriter {
    paths: LogPaths,
    data: File,
    idx: File,
    /// Position of the current generation's first byte.
    start: u64,
    /// Bytes in the current generation.
    size: u64,
    idx_size: u64,
    cap: u64,
    idx_cap: u64,
    /// Whether splice(2) works on this file system.
    splice: bool,
}

impl LogWriter {
    /// Starts a command's log afresh (`append` false) or continues it (a
    /// restarted command), creating the directory if needed.
    pub fn open(paths: LogPaths, append: bool) -> std::io::Result<Self> {
        Self::with_caps(paths, append, LOG_CAP_BYTES, INDEX_CAP_BYTES)
    }

    fn with_caps(paths: LogPaths, append: bool, cap: u64, idx_cap: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(paths.dir())?;
        if append {
            if let Some(g) = load_generation(&paths.path("idx"), paths.path("log"))? {
                let size = g.end() - g.start;
                let data = OpenOptions::new().write(true).open(&g.data)?;
                let mut idx = OpenOptions::new().write(true).open(paths.path("idx"))?;
                let idx_size = HEADER + g.records.len() as u64 * RECORD;
                idx.set_len(idx_size)?;
                std::io::Seek::seek(&mut idx, std::io::SeekFrom::End(0))?;
                let mut w = Self {
                    paths,
                    data,
                    idx,
                    start: g.start,
                    size,
                    idx_size,
                    cap,
                    idx_cap,
                    splice: true,
                };
                // Bytes past the last record were moved in by a daemon that
                // died before it indexed them: they are the command's
                // output, kept (as stdout: which stream they came from is
                // not known).
                let len = w.data.metadata()?.len();
                if len > size {
                    w.record(Stream::Stdout, (len - size) as usize)?;
                }
                return Ok(w);
            }
        }
        let (data, idx) = new_generation(&paths, 0)?;
        Ok(Self {
            paths,
            data,
            idx,
            start: 0,
            size: 0,
            idx_size: HEADER,
            cap,
            idx_cap,
            splice: true,
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for ext in ["log", "idx"] {
            std::fs::rename(self.paths.path(ext), self.paths.path(&format!("{ext}.1")))?;
        }
        self.start += self.size;
        let (data, idx) = new_generation(&self.paths, self.start)?;
        self.data = data;
        self.idx = idx;
        self.size = 0;
        self.idx_size = HEADER;
        Ok(())
    }

    /// Room left in this generation, rotating first when there is none.
    fn room(&mut self) -> std::io::Result<u64> {
        if self.size >= self.cap || self.idx_size + RECORD > self.idx_cap {
            self.rotate()?;
        }
        Ok(self.cap - self.size)
    }

    fn record(&mut self, stream: Stream, n: usize) -> std::io::Result<()> {
        let mut rec = [0u8; RECORD as usize];
        rec[0] = stream.tag();
        rec[1..].copy_from_slice(&(n as u32).to_le_bytes());
        self.idx.write_all(&rec)?;
        self.size += n as u64;
        self.idx_size += RECORD;
        Ok(())
    }

    /// Appends a chunk of `stream` (a chunk larger than the cap keeps its end).
    pub fn append(&mut self, stream: Stream, mut buf: &[u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            let room = self.room()? as usize;
            let n = buf.len().min(room);
            self.data.write_all_at(&buf[..n], self.size)?;
            self.record(stream, n)?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Moves what `pipe` holds (up to the room left in this generation) into
    /// the log. `Ok(None)`: nothing to read now; `Ok(Some(0))`: end of file.
    fn splice_from(
        &mut self,
        pipe: BorrowedFd<'_>,
        stream: Stream,
    ) -> std::io::Result<Option<usize>> {
        use nix::fcntl::{splice, SpliceFFlags};
        let room = self.room()? as usize;
        let mut off = self.size as libc::loff_t;
        match splice(
            pipe,
            None,
            self.data.as_fd(),
            Some(&mut off),
            room.min(PIPE_BYTES as usize),
            SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE,
        ) {
            Ok(0) => Ok(Some(0)),
            Ok(n) => {
                self.record(stream, n)?;
                Ok(Some(n))
            }
            Err(nix::errno::Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn new_generation(paths: &LogPaths, start: u64) -> std::io::Result<(File, File)> {
    let data = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(paths.path("log"))?;
    let mut idx = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(paths.path("idx"))?;
    let mut header = [0u8; HEADER as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&start.to_le_bytes());
    idx.write_all(&header)?;
    Ok((data, idx))
}

/// Gives a pipe a bigger buffer (best effort: the kernel may cap it).
pub fn enlarge_pipe(fd: BorrowedFd<'_>) {
    // SAFETY: fcntl on a valid descriptor with an integer argument.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES);
    }
}

/// What a capture thread reports.
#[derive(Debug, Default)]
pub struct CaptureState {
    /// Bytes that could not be kept (disk full).
    pub lost: AtomicU64,
    /// Both pipes closed and everything in them is in the log.
    pub drained: AtomicBool,
    /// Woken when `drained` becomes true.
    pub drained_notify: tokio::sync::Notify,
}

impl CaptureState {
    /// Marks the capture drained and wakes whoever waits for it.
    pub fn set_drained(&self) {
        self.drained.store(true, Ordering::Release);
        self.drained_notify.notify_waiters();
    }

    /// Waits until everything the command wrote is in its log, or `limit`
    /// passes (a daemonized child may hold the pipes open for good).
    pub async fn wait_drained(&self, limit: std::time::Duration) {
        let wait = async {
            loop {
                // Registered before the check: a notify in between is not lost.
                let notified = self.drained_notify.notified();
                if self.drained.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

/// Drains a command's stdout and stderr pipes into its log on a thread of its
/// own; the thread ends when both pipes close (the command and every child
/// holding them exited).
pub fn capture(
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    paths: LogPaths,
    append: bool,
    state: Arc<CaptureState>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("shipote-log".into())
        .spawn(move || {
            // Sized here, off the command's path to exec (the pipes hold what
            // it writes meanwhile); the log is made when the first byte comes,
            // so a command that writes nothing costs no files.
            for fd in stdout.iter().chain(stderr.iter()) {
                enlarge_pipe(fd.as_fd());
            }
            let mut log: Option<LogWriter> = None;
            let mut log_failed = false;
            let mut pipes = [(stdout, Stream::Stdout), (stderr, Stream::Stderr)];
            let mut buf = Vec::new();
            while pipes.iter().any(|p| p.0.is_some()) {
                let mut fds: Vec<libc::pollfd> = pipes
                    .iter()
                    .map(|(fd, _)| libc::pollfd {
                        fd: fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect();
                // SAFETY: fds is a valid array of pollfd for its length.
                let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
                if r < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    break;
                }
                for (i, pfd) in fds.iter().enumerate() {
                    if pfd.revents == 0 {
                        continue;
                    }
                    let (slot, stream) = &mut pipes[i];
                    let Some(fd) = slot.as_ref() else { continue };
                    if log.is_none() && !log_failed && pending_bytes(fd.as_fd()) != Some(0) {
                        match LogWriter::open(paths.clone(), append) {
                            Ok(l) => log = Some(l),
                            Err(e) => {
                                log_failed = true;
                                tracing::warn!(log = %paths.base.display(), error = %e, "cannot create a command's log; its output is discarded");
                            }
                        }
                    }
                    if !drain_once(log.as_mut(), fd.as_fd(), *stream, &state, &mut buf) {
                        *slot = None;
                    }
                }
            }
            state.set_drained();
        })
}

/// Bytes waiting in a pipe (FIONREAD), when the kernel says.
fn pending_bytes(pipe: BorrowedFd<'_>) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a valid pointer.
    let r = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    (r == 0).then_some(n.max(0) as usize)
}

/// Moves one chunk from `pipe` to the log; false at end of file (or when the
/// pipe cannot be read at all).
fn drain_once(
    mut log: Option<&mut LogWriter>,
    pipe: BorrowedFd<'_>,
    stream: Stream,
    state: &CaptureState,
    buf: &mut Vec<u8>,
) -> bool {
    if let Some(log) = log.as_mut().filter(|l| l.splice) {
        // Keep moving while bytes keep coming (one wake-up, several moves),
        // a bounded number of times so the other stream gets its turn.
        let mut moved = false;
        for _ in 0..MOVES_PER_WAKE {
            match log.splice_from(pipe, stream) {
                Ok(Some(0)) => return false,
                Ok(Some(_)) => moved = true,
                Ok(None) => return true,
                // Splice is not supported here: copy from now on.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    log.splice = false;
                    moved = false;
                    break;
                }
                // Disk full or the like: the chunk is read and counted below.
                Err(_) => {
                    moved = false;
                    break;
                }
            }
        }
        if moved {
            // Still more to move: the next poll says so at once.
            return true;
        }
    }
    if buf.is_empty() {
        buf.resize(CHUNK, 0);
    }
    // SAFETY: the descriptor is borrowed for the duration of the read only.
    let mut file = std::mem::ManuallyDrop::new(unsafe {
        <File as std::os::fd::FromRawFd>::from_raw_fd(pipe.as_raw_fd())
    });
    match file.read(buf) {
        Ok(0) => false,
        Ok(n) => {
            if !log.is_some_and(|l| l.append(stream, &buf[..n]).is_ok()) {
                state.lost.fetch_add(n as u64, Ordering::Relaxed);
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capture thread on two fresh pipes; their write ends for the test.
    fn capturing(
        dir: &Path,
    ) -> (
        LogPaths,
        OwnedFd,
        OwnedFd,
        Arc<CaptureState>,
        std::thread::JoinHandle<()>,
    ) {
        let paths = LogPaths::new(dir, "c");
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let (err_r, err_w) = nix::unistd::pipe().unwrap();
        let state = Arc::new(CaptureState::default());
        let t = capture(
            Some(out_r),
            Some(err_r),
            paths.clone(),
            false,
            state.clone(),
        )
        .unwrap();
        (paths, out_w, err_w, state, t)
    }

    fn writer(dir: &Path, cap: u64, idx_cap: u64) -> (LogPaths, LogWriter) {
        let paths = LogPaths::new(dir, "c");
        let w = LogWriter::with_caps(paths.clone(), false, cap, idx_cap).unwrap();
        (paths, w)
    }

    #[test]
    fn a_tagged_read_says_which_stream_each_run_came_from_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, mut w) = writer(dir.path(), 1 << 20, 1 << 20);
        w.append(Stream::Stdout, b"out\n").unwrap();
        w.append(Stream::Stderr, b"err\n").unwrap();
        w.append(Stream::Stdout, b"more\n").unwrap();
        let c = paths.read_from(Stream::Tagged, 0, 100).unwrap();
        assert_eq!(
            c.bytes,
            [
                &[1, 4, 0, 0, 0][..],
                b"out\n",
                &[2, 4, 0, 0, 0],
                b"err\n",
                &[1, 5, 0, 0, 0],
                b"more\n"
            ]
            .concat()
        );
        assert_eq!(c.next, 13);
        // The budget counts the headers: 5 + 4 + 5 + 2 = 16 bytes.
        let c = paths.read_from(Stream::Tagged, 0, 16).unwrap();
        assert_eq!(
            c.bytes,
            [&[1, 4, 0, 0, 0][..], b"out\n", &[2, 2, 0, 0, 0], b"er"].concat()
        );
        assert_eq!(c.next, 6);
        assert!(c.bytes.len() <= 16);
        // A budget too small for a header and a byte reads nothing, at once.
        let c = paths.read_from(Stream::Tagged, 6, 5).unwrap();
        assert_eq!((c.bytes.len(), c.next), (0, 6));
    }

    #[test]
    fn streams_are_kept_apart_and_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, mut w) = writer(dir.path(), 1 << 20, 1 << 20);
        w.append(Stream::Stdout, b"one\n").unwrap();
        w.append(Stream::Stderr, b"two\n").unwrap();
        w.append(Stream::Stdout, b"three\n").unwrap();
        assert_eq!(
            paths.tail(Stream::Both, 100).unwrap(),
            (b"one\ntwo\nthree\n".to_vec(), 14)
        );
        assert_eq!(paths.tail(Stream::Stdout, 100).unwrap().0, b"one\nthree\n");
        assert_eq!(paths.tail(Stream::Stderr, 100).unwrap().0, b"two\n");
        assert_eq!(paths.tail(Stream::Stdout, 7).unwrap().0, b"\nthree\n");
        assert_eq!(paths.tail(Stream::Both, 0).unwrap().0, b"");
    }

    #[test]
    fn rotation_bounds_the_files_and_reads_span_generations() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, mut w) = writer(dir.path(), 10, 1 << 20);
        for (s, chunk) in [
            (Stream::Stdout, b"0123".as_slice()),
            (Stream::Stderr, b"4567"),
            (Stream::Stdout, b"89ab"),
            (Stream::Stderr, b"cdef"),
        ] {
            w.append(s, chunk).unwrap();
        }
        // 0123 4567 89 | ab cdef
        assert_eq!(std::fs::read(paths.path("log")).unwrap(), b"abcdef");
        assert_eq!(std::fs::read(paths.path("log.1")).unwrap(), b"0123456789");
        assert_eq!(
            paths.tail(Stream::Both, 100).unwrap().0,
            b"0123456789abcdef"
        );
        assert_eq!(paths.tail(Stream::Stdout, 100).unwrap().0, b"012389ab");
        assert_eq!(paths.tail(Stream::Stderr, 5).unwrap().0, b"7cdef");
        // A third generation drops the first.
        w.append(Stream::Stdout, b"ghijklmn").unwrap();
        assert_eq!(
            paths.tail(Stream::Both, 100).unwrap(),
            (b"abcdefghijklmn".to_vec(), 24)
        );
        let c = paths.read_from(Stream::Both, 4, 100).unwrap();
        assert_eq!(
            (c.bytes.as_slice(), c.next, c.skipped),
            (b"abcdefghijklmn".as_slice(), 24, 6)
        );
        assert!(paths.kept_bytes() <= 2 * (10 + HEADER + 10 * RECORD));
    }

    #[test]
    fn the_index_cap_rotates_too() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, mut w) = writer(dir.path(), 1 << 20, HEADER + 2 * RECORD);
        for _ in 0..5 {
            w.append(Stream::Stdout, b"x").unwrap();
        }
        assert!(std::fs::metadata(paths.path("idx")).unwrap().len() <= HEADER + 2 * RECORD);
        assert_eq!(paths.tail(Stream::Both, 100).unwrap(), (b"xxx".to_vec(), 5));
    }

    #[test]
    fn followers_read_from_a_position_in_bounded_steps() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, mut w) = writer(dir.path(), 1 << 20, 1 << 20);
        w.append(Stream::Stdout, b"aaaa").unwrap();
        w.append(Stream::Stderr, b"EE").unwrap();
        w.append(Stream::Stdout, b"bb").unwrap();
        let c = paths.read_from(Stream::Stdout, 0, 3).unwrap();
        assert_eq!((c.bytes.as_slice(), c.next), (b"aaa".as_slice(), 3));
        let c = paths.read_from(Stream::Stdout, c.next, 100).unwrap();
        assert_eq!((c.bytes.as_slice(), c.next), (b"abb".as_slice(), 8));
        let c = paths.read_from(Stream::Stderr, 0, 100).unwrap();
        assert_eq!((c.bytes.as_slice(), c.next), (b"EE".as_slice(), 8));
        let c = paths.read_from(Stream::Both, 8, 100).unwrap();
        assert_eq!(
            (c.bytes.as_slice(), c.next, c.skipped),
            (b"".as_slice(), 8, 0)
        );
        // A position past the end (a log started afresh) resyncs to the end.
        assert_eq!(paths.read_from(Stream::Both, 99, 100).unwrap().next, 8);
    }

    #[test]
    fn a_restart_continues_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, mut w) = writer(dir.path(), 1 << 20, 1 << 20);
        w.append(Stream::Stdout, b"first\n").unwrap();
        drop(w);
        let mut w = LogWriter::open(paths.clone(), true).unwrap();
        w.append(Stream::Stderr, b"second\n").unwrap();
        assert_eq!(paths.tail(Stream::Both, 100).unwrap().0, b"first\nsecond\n");
        assert_eq!(paths.tail(Stream::Stderr, 100).unwrap().0, b"second\n");
    }

    #[test]
    fn a_command_that_writes_nothing_leaves_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, out_w, err_w, state, t) = capturing(dir.path());
        drop((out_w, err_w));
        t.join().unwrap();
        assert!(state.drained.load(Ordering::Acquire));
        assert_eq!(paths.kept_bytes(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn capture_drains_both_pipes_into_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, out_w, err_w, state, t) = capturing(dir.path());
        let (mut o, mut e) = (File::from(out_w), File::from(err_w));
        o.write_all(b"hello\n").unwrap();
        e.write_all(b"oops\n").unwrap();
        drop((o, e));
        t.join().unwrap();
        assert!(state.drained.load(Ordering::Acquire));
        assert_eq!(paths.tail(Stream::Stdout, 100).unwrap().0, b"hello\n");
        assert_eq!(paths.tail(Stream::Stderr, 100).unwrap().0, b"oops\n");
        assert_eq!(state.lost.load(Ordering::Relaxed), 0);
    }
}
