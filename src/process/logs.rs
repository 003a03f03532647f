//! Captured output of commands: bounded log files that rotate.
//!
//! Each command has `<id>.out`, `<id>.err` and `<id>.all` (both streams in the
//! order their bytes reached the daemon). A file that would grow past
//! [`LOG_CAP_BYTES`] is renamed to `<name>.1` (replacing the previous one) and
//! started afresh, so a command keeps at most 2 x 3 x 1 MiB = 6 MiB of logs.
//! The pipes are always drained, even when the disk is full, so a chatty
//! command is never blocked by its logs (what could not be written is counted).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Largest size of one log file before it rotates.
pub const LOG_CAP_BYTES: u64 = 1 << 20;

/// Read size when draining a pipe.
const CHUNK: usize = 64 * 1024;

/// The files of one command.
#[derive(Debug, Clone)]
pub struct LogPaths {
    base: PathBuf,
}

impl LogPaths {
    /// Logs named `<dir>/<name>.{out,err,all}`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            base: dir.join(name),
        }
    }

    /// The file of one stream: `out`, `err` or `all`.
    pub fn file(&self, stream: &str) -> PathBuf {
        let mut p = self.base.clone().into_os_string();
        p.push(format!(".{stream}"));
        PathBuf::from(p)
    }

    /// Bytes kept on disk for this command.
    pub fn kept_bytes(&self) -> u64 {
        ["out", "err", "all"]
            .iter()
            .flat_map(|s| [self.file(s), rotated(&self.file(s))])
            .filter_map(|p| p.metadata().ok())
            .map(|m| m.len())
            .sum::<u64>()
    }

    /// The last `n` bytes of a stream (rotated generation included).
    pub fn tail(&self, stream: &str, n: u64) -> std::io::Result<Vec<u8>> {
        let current = self.file(stream);
        let mut out = read_tail(&current, n)?;
        if (out.len() as u64) < n {
            let mut older = read_tail(&rotated(&current), n - out.len() as u64)?;
            older.extend_from_slice(&out);
            out = older;
        }
        Ok(out)
    }
}

fn rotated(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

fn read_tail(p: &Path, n: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut f = match File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(n);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// One rotating log file.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    cap: u64,
}

impl LogFile {
    /// Creates (truncates) the file.
    pub fn create(path: PathBuf, cap: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        Ok(Self {
            path,
            file: Some(file),
            size: 0,
            cap,
        })
    }

    /// Opens for appending (a restarted command continues its logs).
    pub fn open_append(path: PathBuf, cap: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file: Some(file),
            size,
            cap,
        })
    }

    /// Appends, rotating first if the file would pass its cap.
    pub fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + buf.len() as u64 > self.cap {
            std::fs::rename(&self.path, rotated(&self.path))?;
            self.file = Some(File::create(&self.path)?);
            self.size = 0;
        }
        // A single chunk larger than the cap keeps only its end.
        let buf = &buf[buf.len().saturating_sub(self.cap as usize)..];
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("log file closed"))?;
        file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

/// Drains one pipe into its log and the shared "all" log, on a thread of its
/// own; returns when the pipe closes (the command and its children exited).
/// `lost` counts bytes that could not be written (disk full).
pub fn capture(
    pipe: OwnedFd,
    mut own: LogFile,
    all: Arc<Mutex<LogFile>>,
    lost: Arc<AtomicU64>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("shipote-log".into())
        .spawn(move || {
            let mut pipe = File::from(pipe);
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                };
                let chunk = &buf[..n];
                if own.append(chunk).is_err() {
                    lost.fetch_add(n as u64, Ordering::Relaxed);
                }
                let written = all
                    .lock()
                    .map(|mut a| a.append(chunk).is_ok())
                    .unwrap_or(false);
                if !written {
                    lost.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_bounds_the_files_and_tail_spans_generations() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LogPaths::new(dir.path(), "c");
        let mut f = LogFile::create(paths.file("out"), 10).unwrap();
        for chunk in [b"0123".as_slice(), b"4567", b"89ab", b"cdef"] {
            f.append(chunk).unwrap();
        }
        // 0123 4567 -> rotate -> 89ab cdef
        assert_eq!(std::fs::read(paths.file("out")).unwrap(), b"89abcdef");
        assert_eq!(
            std::fs::read(rotated(&paths.file("out"))).unwrap(),
            b"01234567"
        );
        assert_eq!(paths.tail("out", 10).unwrap(), b"6789abcdef");
        assert_eq!(paths.tail("out", 3).unwrap(), b"def");
        assert_eq!(
            paths.tail("err", 3).unwrap(),
            b"",
            "a missing stream is empty"
        );
        assert_eq!(paths.kept_bytes(), 16);
        // One chunk above the cap keeps its end only.
        f.append(&[b'x'; 25]).unwrap();
        assert_eq!(std::fs::read(paths.file("out")).unwrap().len(), 10);
    }

    #[test]
    fn capture_drains_a_pipe_into_both_logs() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LogPaths::new(dir.path(), "c");
        let (r, w) = nix::unistd::pipe().unwrap();
        let all = Arc::new(Mutex::new(
            LogFile::create(paths.file("all"), 1 << 20).unwrap(),
        ));
        let lost = Arc::new(AtomicU64::new(0));
        let t = capture(
            r,
            LogFile::create(paths.file("out"), 1 << 20).unwrap(),
            all,
            lost.clone(),
        )
        .unwrap();
        let mut w = File::from(w);
        w.write_all(b"hello\n").unwrap();
        drop(w);
        t.join().unwrap();
        assert_eq!(paths.tail("out", 100).unwrap(), b"hello\n");
        assert_eq!(paths.tail("all", 100).unwrap(), b"hello\n");
        assert_eq!(lost.load(Ordering::Relaxed), 0);
    }
}
