//! `shipote-protocol`: everything that crosses the socket between `shipoted` and
//! its clients.
//!
//! - [`Request`] and [`Response`]: the messages of protocol 1, in wire order
//!   (postcard encodes an enum variant by its index, so the declaration order
//!   *is* the wire; new variants are only ever appended and released fields
//!   never change, see `SPEC.md`).
//! - [`seed`]: protocol 0, the seed's wire, which every connection speaks until
//!   a `Hello` switches it; [`dialect`]: the switch and the translation.
//! - [`spec`]: the workspace and pipeline specifications clients send.
//! - [`frame`]: u32 big-endian length + postcard payload, at most
//!   [`MAX_FRAME_BYTES`], with blocking and async helpers.
//! - [`client`]: a small async client (feature `tokio`, on by default).
//! - [`default_socket_path`]: where the daemon listens unless told otherwise.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod dialect;
pub mod frame;
pub mod message;
pub mod seed;
pub mod spec;

#[cfg(feature = "tokio")]
pub mod client;

pub use dialect::{Dialect, PROTOCOL_CURRENT, PROTOCOL_SEED};
pub use frame::{FrameError, MAX_FRAME_BYTES};
pub use message::*;
pub use spec::*;
pub use ulid::Ulid;

use std::path::PathBuf;

/// File name of the daemon's socket inside the runtime directory.
pub const SOCKET_FILE_NAME: &str = "shipote.sock";

/// The default socket path: `$XDG_RUNTIME_DIR/shipote.sock`, else
/// `/run/user/$UID/shipote.sock` when that directory exists, else
/// `/tmp/shipote-$UID.sock`.
pub fn default_socket_path() -> PathBuf {
    socket_path_from(
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        current_uid(),
        |p| p.is_dir(),
    )
}

/// The rule behind [`default_socket_path`], with its inputs made explicit.
pub fn socket_path_from(
    xdg_runtime_dir: Option<PathBuf>,
    uid: u32,
    dir_exists: impl Fn(&std::path::Path) -> bool,
) -> PathBuf {
    if let Some(dir) = xdg_runtime_dir.filter(|d| !d.as_os_str().is_empty()) {
        return dir.join(SOCKET_FILE_NAME);
    }
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    if dir_exists(&run_user) {
        return run_user.join(SOCKET_FILE_NAME);
    }
    PathBuf::from(format!("/tmp/shipote-{uid}.sock"))
}

fn current_uid() -> u32 {
    // The owner of /proc/self is the real uid of this process; it avoids a libc
    // dependency in a crate third-party clients link.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn socket_path_prefers_xdg_runtime_dir() {
        let p = socket_path_from(Some("/run/user/1000".into()), 1000, |_| false);
        assert_eq!(p, Path::new("/run/user/1000/shipote.sock"));
    }

    #[test]
    fn socket_path_ignores_empty_xdg_runtime_dir() {
        let p = socket_path_from(Some("".into()), 1000, |_| true);
        assert_eq!(p, Path::new("/run/user/1000/shipote.sock"));
    }

    #[test]
    fn socket_path_falls_back_to_run_user_then_tmp() {
        let p = socket_path_from(None, 1001, |d| d == Path::new("/run/user/1001"));
        assert_eq!(p, Path::new("/run/user/1001/shipote.sock"));
        let p = socket_path_from(None, 1001, |_| false);
        assert_eq!(p, Path::new("/tmp/shipote-1001.sock"));
    }
}
