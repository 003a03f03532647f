//! Test harness: the real `shipoted` binary on a private socket, with readiness
//! taken from its sd_notify READY=1 (the same signal systemd waits for).
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to become ready or to stop.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn daemon_bin() -> &'static str {
    env!("CARGO_BIN_EXE_shipoted")
}

pub fn cli_bin() -> &'static str {
    env!("CARGO_BIN_EXE_shipote")
}

/// A running daemon and everything it was given.
pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    notify: UnixDatagram,
    /// Every sd_notify datagram received so far.
    pub notices: Vec<String>,
    /// The private cgroup root given when the test named none; removed after
    /// the daemon is gone (fields drop after `Drop::drop`).
    _cgroup: Option<CgroupRoot>,
}

/// A private cgroup root for a daemon started without `--cgroup-root` or
/// `--backend`, where this host has a writable cgroup2 (else none: the daemon
/// then falls back as it would).
fn private_cgroup_root(cmd: &Command) -> Option<CgroupRoot> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if cmd
        .get_args()
        .any(|a| a == "--cgroup-root" || a == "--backend")
    {
        return None;
    }
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = cgroup2_mount()?.join(format!("shipote-test-d{n}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(CgroupRoot(dir))
}

impl Daemon {
    /// Starts a daemon on `<tempdir>/run/shipote.sock` and waits for READY=1.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Like `start`, letting the caller adjust the command first.
    pub fn start_with(adjust: impl FnOnce(&mut Command)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/shipote.sock");
        let mut cmd = Command::new(daemon_bin());
        cmd.arg("--socket").arg(&socket);
        adjust(&mut cmd);
        if !cmd.get_args().any(|a| a == "--state-dir") {
            cmd.arg("--state-dir").arg(dir.path().join("state"));
        }
        Self::spawn(dir, socket, cmd)
    }

    /// Starts a daemon on the cgroup backend with a private cgroup root, so
    /// tests running in parallel never see each other's workspaces.
    pub fn start_cgroup(root: &Path) -> Self {
        let root = root.to_owned();
        Self::start_with(move |cmd| {
            cmd.args(["--backend", "cgroup", "--cgroup-root"])
                .arg(&root);
        })
    }

    /// Spawns `cmd` (which must serve `socket`) and waits for READY=1.
    pub fn spawn(dir: tempfile::TempDir, socket: PathBuf, mut cmd: Command) -> Self {
        let notify_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        // Every daemon its own state and its own cgroup subtree: one daemon
        // may hold each (daemon/instance.rs), and tests run in parallel.
        let private_root = private_cgroup_root(&cmd);
        if let Some(root) = &private_root {
            cmd.arg("--cgroup-root").arg(&root.0);
        }
        cmd.env("XDG_STATE_HOME", dir.path().join("xdg-state"))
            .env("NOTIFY_SOCKET", &notify_path)
            .env("SHIPOTE_LOG", "debug")
            .env_remove("XDG_RUNTIME_DIR")
            .arg("--log-target")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().expect("spawn shipoted");
        let mut d = Daemon {
            child,
            dir,
            socket,
            notify,
            notices: Vec::new(),
            _cgroup: private_root,
        };
        d.wait_notice("READY=1");
        d
    }

    /// Waits until a notification containing `needle` arrives (or panics with the
    /// daemon's log after [`DEADLINE`]).
    pub fn wait_notice(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(n) = self.notices.iter().find(|n| n.contains(needle)) {
                return n.clone();
            }
            let mut buf = [0u8; 4096];
            match self.notify.recv(&mut buf) {
                Ok(n) => self
                    .notices
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!(
                            "shipoted exited ({status}) before {needle}:\n{}",
                            self.log()
                        );
                    }
                    if start.elapsed() > DEADLINE {
                        panic!(
                            "no {needle} from shipoted within {DEADLINE:?}:\n{}",
                            self.log()
                        );
                    }
                }
            }
        }
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("daemon.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        signal(self.child.id(), nix::sys::signal::Signal::SIGTERM);
        self.wait_exit()
    }

    /// Waits for the process to exit (panics after [`DEADLINE`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("shipoted did not exit within {DEADLINE:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.socket, args)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// Runs the CLI with `--socket socket`.
pub fn cli(socket: &Path, args: &[&str]) -> std::process::Output {
    Command::new(cli_bin())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("SHIPOTE_SOCKET")
        .output()
        .expect("run shipote")
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The host's cgroup2 mount point (from mountinfo), if any.
pub fn cgroup2_mount() -> Option<PathBuf> {
    // The daemon's own parser, so tests and benches find what it finds.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    shipote::cgroup::parse_layout(&mountinfo)
        .mount_point()
        .map(PathBuf::from)
}

/// A private cgroup root for one test, removed (when empty) on drop.
pub struct CgroupRoot(pub PathBuf);

impl CgroupRoot {
    /// Under the host's cgroup2 mount; panics with the reason when this host
    /// cannot give one (the test then belongs to the VM tier).
    pub fn new(name: &str) -> Self {
        let mount = cgroup2_mount().expect("this test needs a cgroup2 mount (the VM tier has one)");
        let dir = mount.join(format!("shipote-test-{name}-{}", std::process::id()));
        // create_dir, not _all: two tests of one binary giving the same name
        // would share (and tear down) each other's cgroups.
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                panic!("CgroupRoot name {name:?} is used by two tests of this binary")
            }
            panic!(
                "this test needs a writable cgroup2 ({}): {e}; run it as root",
                dir.display()
            )
        });
        CgroupRoot(dir)
    }
}

impl Drop for CgroupRoot {
    /// Kills whatever a failed test left and removes the tree, deepest first.
    fn drop(&mut self) {
        fn clear(dir: &Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        clear(&e.path());
                    }
                }
            }
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            wait_unpopulated(dir);
            let _ = std::fs::remove_dir(dir);
        }
        /// cgroup.kill is asynchronous: waits (up to 5 s) for cgroup.events
        /// to say `populated 0`; the kernel signals each change with POLLPRI.
        fn wait_unpopulated(dir: &Path) {
            use std::os::fd::AsRawFd;
            let Ok(mut f) = std::fs::File::open(dir.join("cgroup.events")) else {
                return;
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let mut text = String::new();
                use std::io::Seek;
                let _ = f.rewind();
                if f.read_to_string(&mut text).is_err() || text.contains("populated 0") {
                    return;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                let mut p = libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLPRI,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) };
            }
        }
        clear(&self.0);
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes (for conditions
/// that have no notification, e.g. a TTL firing); returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The CLI's JSON output, asserting it succeeded.
pub fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// A new daemon on the same cgroup root and state directory as `d`.
pub fn successor(d: &Daemon, root: &CgroupRoot) -> Daemon {
    let state = d.dir.path().join("state");
    let root_dir = root.0.clone();
    Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"])
            .arg(&root_dir)
            .arg("--state-dir")
            .arg(&state);
    })
}

/// Starts `args` in `ws` and returns its command id.
pub fn run(d: &Daemon, ws: &str, args: &[&str]) -> String {
    let mut all = vec!["--json", "run", ws, "--"];
    all.extend_from_slice(args);
    json(&d.cli(&all))["command_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A command's `ps --json` entry.
pub fn command(d: &Daemon, ws: &str, id: &str) -> serde_json::Value {
    let items = json(&d.cli(&["--json", "ps", ws]));
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .expect("command listed")
}

/// Waits (10 s at most) for a command to have ended; its `ps` entry.
pub fn wait_exit(d: &Daemon, ws: &str, id: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    assert!(
        eventually(Duration::from_secs(10), || {
            last = command(d, ws, id);
            last["alive"] == false
        }),
        "command {id} still running: {last}"
    );
    last
}

/// A command's logs (`shipote logs`), asserting the CLI succeeded.
pub fn logs(d: &Daemon, ws: &str, id: &str, extra: &[&str]) -> String {
    let mut args = vec!["logs", ws, id];
    args.extend_from_slice(extra);
    let o = d.cli(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// Runs `args` in `ws` to its end and returns its output (both streams).
pub fn run_to_end(d: &Daemon, ws: &str, args: &[&str]) -> String {
    let id = run(d, ws, args);
    wait_exit(d, ws, &id);
    logs(d, ws, &id, &[])
}

/// A process's resident memory in KiB (VmRSS), 0 when it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    shipote::process::proc_usage(pid).map_or(0, |u| u.rss_bytes / 1024)
}

/// The id of the daemon's first listed workspace.
pub fn first_workspace(d: &Daemon) -> shipote_protocol::WorkspaceId {
    let id = json(&d.cli(&["--json", "ws", "ls"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    shipote_protocol::WorkspaceId(shipote_protocol::Ulid::from_string(&id).unwrap())
}
pub mod pipeline;
