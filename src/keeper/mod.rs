//! A workspace's keeper: the process (`shipoted --keeper NAME`) that lives in
//! the workspace's scope or cgroup for its whole life, and the anchor that
//! lets its commands outlive any daemon (see ARCHITECTURE.md, "Surviving a
//! restart").
//!
//! - `anchor.rs`: the keeper itself: it starts the commands a daemon asks
//!   for (so it is their parent and keeps their exit statuses), holds a read
//!   end of their captured pipes, and hands all of it to the next daemon.
//! - `link.rs`: the daemon's side of one keeper.
//! - `wire.rs`: their messages, with descriptors passed along (SCM_RIGHTS).

pub mod anchor;
pub mod link;
pub mod wire;

use std::path::{Path, PathBuf};

/// The directory of the keepers' sockets, in a daemon's state directory.
pub fn sockets_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("keepers")
}

/// Where the keeper of the workspace whose unit is `unit` listens.
pub fn socket_path(state_dir: &Path, unit: &str) -> PathBuf {
    sockets_dir(state_dir).join(format!("{unit}.sock"))
}

/// Binds a keeper's listening socket at `path` (its directory made private
/// first; a stale socket replaced).
pub fn bind(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let _ = std::fs::remove_file(path);
    std::os::unix::net::UnixListener::bind(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen at {} for a keeper: {e}", path.display()),
        )
    })
}
