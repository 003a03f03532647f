//! A tap on one pipeline edge: the bytes move from the producer's pipe to
//! the consumer's with splice(2) (zero-copy), counted; while someone listens
//! (subscribers of the edge's flow socket, or the first-bytes discernment),
//! tee(2) duplicates them into a side pipe first and they are sent to each
//! subscriber without blocking: a slow or stalled subscriber loses bytes
//! (counted), never slows the edge. An optional rate limit is a token bucket
//! refilled by wall time with a capacity of one second of rate.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest move per system call.
const CHUNK: usize = 1 << 20;

/// How many first bytes are discerned.
pub const DISCERN_BYTES: usize = 4096;

/// What a tap shares with the daemon: counters and the discernment.
#[derive(Debug, Default)]
pub struct TapState {
    /// Bytes moved through the edge.
    pub bytes: AtomicU64,
    /// Bytes subscribers lost because they were too slow.
    pub dropped: AtomicU64,
    /// Subscribers connected now.
    pub subscribers: AtomicU64,
    /// Set by FlowDrop: stop publishing, keep moving the data.
    pub unpublished: AtomicBool,
    /// The edge ended (the producer closed it, or the consumer left).
    pub ended: AtomicBool,
    /// The discernment of the first bytes, once they came.
    pub discerned: Mutex<Option<crate::discern::Discernment>>,
    /// The flow's first bytes were text: a subscriber joining mid-line
    /// starts at the next line.
    pub text: AtomicBool,
    /// The last byte moved was not a newline, or was moved unseen (spliced
    /// while nobody listened): a subscriber joining now is mid-line.
    pub mid_line: AtomicBool,
}

/// A token bucket: `rate` bytes per second, capacity one second of rate.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: u64, now: Instant) -> Self {
        Self {
            rate: rate as f64,
            tokens: rate as f64,
            at: now,
        }
    }

    /// How many bytes may pass now (at least 1 once tokens allow), and how
    /// long to wait when none may.
    pub fn allowance(&mut self, now: Instant) -> Result<usize, Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            Ok(self.tokens as usize)
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Takes `n` bytes' worth of tokens.
    pub fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
    }
}

type Subscribers = Arc<Mutex<Vec<Subscriber>>>;

/// One connection to a flow socket.
#[derive(Debug)]
struct Subscriber {
    conn: UnixStream,
    /// It joined a text flow mid-line: what comes before the next newline
    /// is not sent (a partial line is not what `flow cat` users expect).
    skip_to_line: bool,
}

/// A running tap.
#[derive(Debug)]
pub struct Tap {
    /// Its counters and discernment.
    pub state: Arc<TapState>,
    /// Its flow socket, when it publishes.
    pub socket: Option<PathBuf>,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Into::into)
}

/// What a tap runs once its edge has ended (the workspace's keeper lets go
/// of the edge's ends then).
pub type OnEnd = Box<dyn FnOnce() + Send>;

/// Starts a tap moving `src` to `dst`, publishing on a new flow socket at
/// `socket` when given, at most `rate` bytes per second when given; `on_end`
/// runs once the edge has ended.
pub fn start(
    src: OwnedFd,
    dst: OwnedFd,
    socket: Option<&Path>,
    rate: Option<u64>,
    on_end: Option<OnEnd>,
) -> std::io::Result<Tap> {
    let state = Arc::new(TapState::default());
    let listener = match socket {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let _ = std::fs::remove_file(path);
            Some(UnixListener::bind(path)?)
        }
        None => {
            state.unpublished.store(true, Ordering::Release);
            None
        }
    };
    let subs: Subscribers = Arc::default();
    let (side_r, side_w) = pipe()?;
    for fd in [src.as_fd(), dst.as_fd(), side_r.as_fd()] {
        crate::process::logs::enlarge_pipe(fd);
    }
    if let Some(listener) = listener {
        let (state, subs) = (state.clone(), subs.clone());
        std::thread::Builder::new()
            .name("shipote-flow-accept".into())
            .spawn(move || accept(listener, &subs, &state))?;
    }
    {
        let (state, path) = (state.clone(), socket.map(Path::to_owned));
        std::thread::Builder::new()
            .name("shipote-tap".into())
            .spawn(move || {
                run(src, dst, side_r, side_w, &subs, &state, rate);
                state.ended.store(true, Ordering::Release);
                if let Some(f) = on_end {
                    f();
                }
                if let Some(path) = path {
                    unpublish(&state, &path);
                }
            })?;
    }
    Ok(Tap {
        state,
        socket: socket.map(Path::to_owned),
    })
}

/// Stops publishing: the socket goes, subscribers are let go (the accept
/// thread is woken to end), data flows on.
pub fn unpublish(state: &TapState, socket: &Path) {
    if !state.unpublished.swap(true, Ordering::AcqRel) {
        let _ = UnixStream::connect(socket);
        let _ = std::fs::remove_file(socket);
    }
}

fn accept(listener: UnixListener, subs: &Subscribers, state: &TapState) {
    for conn in listener.incoming() {
        if state.unpublished.load(Ordering::Acquire) || state.ended.load(Ordering::Acquire) {
            break;
        }
        let Ok(conn) = conn else { continue };
        if conn.set_nonblocking(true).is_err() {
            continue;
        }
        if let Ok(mut s) = subs.lock() {
            // Read under the lock `publish` updates it under: the flag is the
            // one for the next chunk this subscriber gets.
            let skip_to_line =
                state.text.load(Ordering::Relaxed) && state.mid_line.load(Ordering::Relaxed);
            s.push(Subscriber { conn, skip_to_line });
            state.subscribers.store(s.len() as u64, Ordering::Relaxed);
        }
    }
    if let Ok(mut s) = subs.lock() {
        s.clear();
        state.subscribers.store(0, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    src: OwnedFd,
    dst: OwnedFd,
    side_r: OwnedFd,
    side_w: OwnedFd,
    subs: &Subscribers,
    state: &TapState,
    rate: Option<u64>,
) {
    use nix::fcntl::{splice, tee, SpliceFFlags};
    let mut bucket = rate.map(|r| Bucket::new(r, Instant::now()));
    let mut side = File::from(side_r);
    let mut buf = vec![0u8; CHUNK];
    let mut discerning = true;
    loop {
        let mut max = CHUNK;
        if let Some(b) = bucket.as_mut() {
            match b.allowance(Instant::now()) {
                Ok(n) => max = max.min(n),
                Err(wait) => {
                    std::thread::sleep(wait);
                    continue;
                }
            }
        }
        let listening = discerning
            || (!state.unpublished.load(Ordering::Acquire)
                && state.subscribers.load(Ordering::Relaxed) > 0);
        let n = if listening {
            // Duplicate first (this waits for data), then move exactly that.
            let n = match tee(src.as_fd(), side_w.as_fd(), max, SpliceFFlags::empty()) {
                Ok(0) => break,
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            };
            if side.read_exact(&mut buf[..n]).is_err() {
                break;
            }
            if discerning {
                discerning = false;
                let sample = &buf[..n.min(DISCERN_BYTES)];
                let d = crate::discern::discern(sample, None);
                state.text.store(d.encoding.is_some(), Ordering::Relaxed);
                if let Ok(mut slot) = state.discerned.lock() {
                    *slot = Some(d);
                }
            }
            if !state.unpublished.load(Ordering::Acquire) {
                publish(&buf[..n], subs, state);
            } else {
                state.mid_line.store(buf[n - 1] != b'\n', Ordering::Relaxed);
            }
            let mut left = n;
            while left > 0 {
                match splice(
                    src.as_fd(),
                    None,
                    dst.as_fd(),
                    None,
                    left,
                    SpliceFFlags::SPLICE_F_MOVE,
                ) {
                    Ok(0) => break,
                    Ok(k) => left -= k,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return,
                }
            }
            n - left
        } else {
            match splice(
                src.as_fd(),
                None,
                dst.as_fd(),
                None,
                max,
                SpliceFFlags::SPLICE_F_MOVE,
            ) {
                Ok(0) => break,
                Ok(n) => {
                    state.mid_line.store(true, Ordering::Relaxed);
                    n
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // EPIPE: the consumer left; dropping src gives the producer EPIPE.
                Err(_) => break,
            }
        };
        if let Some(b) = bucket.as_mut() {
            b.spend(n);
        }
        state.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Sends `data` to every subscriber without waiting: what a subscriber's
/// socket cannot take now is lost for it (and counted); a subscriber that
/// hung up is let go. One that joined a text flow mid-line gets it from the
/// next line on.
fn publish(data: &[u8], subs: &Subscribers, state: &TapState) {
    use std::io::Write;
    let Ok(mut list) = subs.lock() else { return };
    state
        .mid_line
        .store(data.last().is_some_and(|&b| b != b'\n'), Ordering::Relaxed);
    list.retain_mut(|s| {
        let mut data = data;
        if s.skip_to_line {
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    s.skip_to_line = false;
                    data = &data[nl + 1..];
                }
                None => return true,
            }
        }
        let mut sent = 0;
        while sent < data.len() {
            match s.conn.write(&data[sent..]) {
                Ok(0) => return false,
                Ok(k) => sent += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        state
            .dropped
            .fetch_add((data.len() - sent) as u64, Ordering::Relaxed);
        true
    });
    state
        .subscribers
        .store(list.len() as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_subscriber_joining_a_text_flow_mid_line_starts_at_the_next_line() {
        let state = TapState::default();
        state.text.store(true, Ordering::Relaxed);
        let subs: Subscribers = Arc::default();
        let add = |skip: bool| {
            let (ours, theirs) = UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            let skip_to_line = skip
                && state.text.load(Ordering::Relaxed)
                && state.mid_line.load(Ordering::Relaxed);
            subs.lock().unwrap().push(Subscriber {
                conn: ours,
                skip_to_line,
            });
            theirs
        };
        let early = add(true);
        publish(b"one\ntw", &subs, &state);
        assert!(state.mid_line.load(Ordering::Relaxed));
        let late = add(true);
        publish(b"o\nthree\n", &subs, &state);
        let after_newline = add(true);
        publish(b"four\n", &subs, &state);
        subs.lock().unwrap().clear();
        let read = |mut s: UnixStream| {
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        assert_eq!(
            read(early),
            "one\ntwo\nthree\nfour\n",
            "joined before any byte"
        );
        assert_eq!(read(late), "three\nfour\n", "joined mid-line");
        assert_eq!(read(after_newline), "four\n", "joined on a line boundary");
        assert_eq!(
            state.dropped.load(Ordering::Relaxed),
            0,
            "skipping is not loss"
        );
    }

    #[test]
    fn the_bucket_lets_bursts_pass_and_holds_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, t0);
        assert_eq!(b.allowance(t0), Ok(1000), "a full second's burst");
        b.spend(1000);
        assert!(b.allowance(t0).is_err());
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(b.allowance(t1), Ok(250));
        b.spend(250);
        // Idle for long: capacity stays one second of rate.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(b.allowance(t2), Ok(1000));
        // Over 10 s of steady draining, 10 000 + the first second pass.
        let mut b = Bucket::new(1000, t0);
        let mut passed = 0;
        for ms in 0..=10_000u64 {
            if let Ok(n) = b.allowance(t0 + Duration::from_millis(ms)) {
                b.spend(n);
                passed += n;
            }
        }
        assert!((10_900..=11_000).contains(&passed), "{passed}");
    }
}
