//! A real shipoted for benchmarks: started on a temporary socket, waited for
//! through its READY=1 notification, with the cgroup backend rooted under the
//! cgroup2 mount when it can be (as root on these hosts), else process groups.

#![allow(dead_code)]

use shipote_protocol::{frame, Response};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A daemon for one benchmark run; killed (and its cgroup root removed) on drop.
pub struct BenchDaemon {
    child: Child,
    /// Its socket.
    pub socket: PathBuf,
    /// Its state directory (logs go under it).
    pub state: PathBuf,
    /// Where workspaces' cgroups go, when the cgroup backend is used.
    pub root: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// Where the cgroup2 hierarchy is mounted, if anywhere.
pub fn cgroup2_mount() -> Option<PathBuf> {
    // The daemon's own parser, so tests and benches find what it finds.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    shipote::cgroup::parse_layout(&mountinfo)
        .mount_point()
        .map(PathBuf::from)
}

fn cgroup_root() -> Option<PathBuf> {
    let mount = cgroup2_mount()?;
    let dir = mount.join(format!("shipote-bench-{}", std::process::id()));
    std::fs::create_dir(&dir).ok().map(|_| dir)
}

impl BenchDaemon {
    /// Starts `shipoted` and returns once it is ready.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let state = dir.path().join("state");
        let notify = dir.path().join("notify");
        let rx = UnixDatagram::bind(&notify).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // SHIPOTE_BENCH_BACKEND=process-group measures without cgroups.
        let root = match std::env::var("SHIPOTE_BENCH_BACKEND").as_deref() {
            Ok("process-group") => None,
            _ => cgroup_root(),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipoted"));
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state)
            .args(["--log-target", "stderr"])
            .env("SHIPOTE_LOG", "warn")
            .env("NOTIFY_SOCKET", &notify);
        match &root {
            Some(r) => cmd.args(["--backend", "cgroup", "--cgroup-root"]).arg(r),
            None => cmd.args(["--backend", "process-group"]),
        };
        let child = cmd.stdin(Stdio::null()).spawn().unwrap();
        let mut buf = [0u8; 512];
        loop {
            let n = rx.recv(&mut buf).expect("daemon ready");
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                break;
            }
        }
        Self {
            child,
            socket,
            state,
            root,
            _dir: dir,
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The backend in use.
    pub fn backend(&self) -> &'static str {
        if self.root.is_some() {
            "cgroup"
        } else {
            "process-group"
        }
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = &self.root {
            // Workspaces outlive their daemon (their keepers run on): kill
            // what is left in each, then remove the tree, deepest first.
            remove_tree(r);
        }
    }
}

/// Kills everything in a cgroup tree (cgroup.kill), waits for it to empty
/// and removes it, deepest first.
pub fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            remove_tree(&e.path());
        }
    }
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    for _ in 0..500 {
        let populated = std::fs::read_to_string(dir.join("cgroup.events"))
            .map(|t| !t.contains("populated 0"))
            .unwrap_or(false);
        if !populated {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir(dir);
}

/// The median of `v`.
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Creates a workspace labelled `label` and returns its id.
pub async fn create_workspace(
    c: &mut shipote_protocol::client::Client,
    label: &str,
) -> shipote_protocol::WorkspaceId {
    let spec = shipote_protocol::WorkspaceSpec::new(label);
    match c
        .call(&shipote_protocol::Request::WorkspaceCreate { spec })
        .await
        .unwrap()
    {
        shipote_protocol::Response::WorkspaceCreated { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

/// Starts a server and waits for its READY=1 on a private notify socket.
pub fn spawn_ready(cmd: &mut Command, dir: &Path, name: &str) -> Child {
    let notify = dir.join(format!("{name}.notify"));
    let rx = UnixDatagram::bind(&notify).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut child = cmd
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    loop {
        match rx.recv(&mut buf) {
            Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("READY=1") => return child,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not become ready: {e}");
            }
        }
    }
}

/// The floor: read a frame, write the same bytes back. Same runtime, same
/// framing, no decoding, no state.
pub fn echo_server(socket: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        let notify = std::env::var_os("NOTIFY_SOCKET")
            .map(PathBuf::from)
            .unwrap();
        UnixDatagram::unbound()
            .unwrap()
            .send_to(b"READY=1\n", notify)
            .unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let (r, mut w) = stream.into_split();
                let mut r = tokio::io::BufReader::with_capacity(16 * 1024, r);
                let mut payload = Vec::new();
                let mut out = Vec::new();
                while frame::read_payload_async(&mut r, &mut payload)
                    .await
                    .is_ok()
                {
                    out.clear();
                    if payload.first() == Some(&shipote_protocol::dialect::HELLO_INDEX) {
                        // The client's switch to protocol 1, once per connection
                        // before the measured pings: answered as the daemon does.
                        let hello = Response::Hello {
                            protocol: 1,
                            version: String::new(),
                        };
                        frame::encode_into(&hello, &mut out).unwrap();
                    } else {
                        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                        out.extend_from_slice(&payload);
                    }
                    if w.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// A process's resident memory in KiB (VmRSS), 0 when it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    shipote::process::proc_usage(pid).map_or(0, |u| u.rss_bytes / 1024)
}
