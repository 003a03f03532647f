//! The control socket: bound by the daemon (parent directory 0700, socket 0600,
//! guarded by a lock file) or inherited from systemd socket activation.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another daemon holds the socket.
    #[error("another shipoted is already serving {}; stop it first (systemctl --user stop shipote) or pass --socket PATH", path.display())]
    AlreadyServing {
        /// The socket path.
        path: PathBuf,
    },
    /// A file that is not a socket sits at the path.
    #[error("{} exists and is not a socket; remove it or pass --socket PATH", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The inherited file descriptor is not a listening Unix stream socket.
    #[error(
        "file descriptor {fd} passed by the service manager is not a Unix stream socket: {reason}"
    )]
    BadInherited {
        /// The descriptor.
        fd: i32,
        /// What is wrong with it.
        reason: String,
    },
}

/// A listening socket and what the daemon must clean up when it stops.
#[derive(Debug)]
pub struct BoundSocket {
    /// The listener.
    pub listener: UnixListener,
    /// The socket's path.
    pub path: PathBuf,
    /// Whether this process created the socket file (and removes it on exit).
    pub owned: bool,
    _lock: Option<Flock<File>>,
}

impl BoundSocket {
    /// Removes the socket file if this process created it.
    pub fn cleanup(&self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ListenError + 'a {
    move |source| ListenError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Binds `path`: creates a missing parent directory with mode 0700, takes the lock
/// file `<path>.lock` (a second daemon fails here), removes a stale socket left by
/// a crash, binds, and sets mode 0600.
pub fn bind(path: &Path) -> Result<BoundSocket, ListenError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err("create directory", parent))?;
        }
    }
    let lock_path = lock_path(path);
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_err("open lock file", &lock_path))?;
    let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            return Err(ListenError::AlreadyServing {
                path: path.to_owned(),
            })
        }
        Err((_, e)) => return Err(io_err("lock", &lock_path)(e.into())),
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ListenError::NotASocket {
                path: path.to_owned(),
            })
        }
        Ok(_) => {
            // We hold the lock, so no shipoted serves it; but a daemon started
            // without the lock (an older one, or socket activation) might.
            if UnixStream::connect(path).is_ok() {
                return Err(ListenError::AlreadyServing {
                    path: path.to_owned(),
                });
            }
            tracing::info!(path = %path.display(), "removing stale socket left by an earlier daemon");
            std::fs::remove_file(path).map_err(io_err("remove stale socket", path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", path)(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err("bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("set mode 0600 on", path))?;
    Ok(BoundSocket {
        listener,
        path: path.to_owned(),
        owned: true,
        _lock: Some(lock),
    })
}

/// The lock file guarding a socket path.
pub fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Adopts a listening socket passed by the service manager (LISTEN_FDS).
pub fn inherit(listener: UnixListener) -> Result<BoundSocket, ListenError> {
    use std::os::fd::AsRawFd;
    let fd = listener.as_raw_fd();
    let bad = |reason: String| ListenError::BadInherited { fd, reason };
    let addr = listener.local_addr().map_err(|e| bad(e.to_string()))?;
    let ty = nix::sys::socket::getsockopt(&listener, nix::sys::socket::sockopt::SockType)
        .map_err(|e| bad(e.to_string()))?;
    if ty != nix::sys::socket::SockType::Stream {
        return Err(bad(format!("socket type is {ty:?}")));
    }
    let path = addr
        .as_pathname()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("(unnamed)"));
    Ok(BoundSocket {
        listener,
        path,
        owned: false,
        _lock: None,
    })
}
