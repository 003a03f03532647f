//! Restart to READY over kept workspaces (issue 16): SIGTERM to the daemon,
//! its exit, a new daemon on the same state until READY=1, while 10 kept
//! workspaces run 100 commands the new daemon takes back (their keepers'
//! tables, their logs' capture, their exits awaited). Beside it, in the same
//! run, the floor: the same restart with nothing to take back. Cgroup
//! backend (keepers), release build.
//!
//! `cargo bench --bench restart`; `SHIPOTE_BENCH_RUNS` sets the runs per row
//! (default 7). Prints medians and the ratio.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WORKSPACES: usize = 10;
const COMMANDS_EACH: usize = 10;

/// One daemon's files: the same state, socket and cgroup root each restart.
struct Site {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Site {
    fn new(name: &str) -> Site {
        let mount = common::cgroup2_mount().expect("this bench needs a cgroup2 mount");
        let root = mount.join(format!(
            "shipote-bench-restart-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&root).expect("a writable cgroup2 (run as root)");
        Site {
            dir: tempfile::tempdir().unwrap(),
            root,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("s.sock")
    }

    /// Starts a daemon and returns it once READY=1 came.
    fn start(&self) -> Child {
        // The last daemon's notify socket goes first.
        let _ = std::fs::remove_file(self.dir.path().join("daemon.notify"));
        common::spawn_ready(
            Command::new(env!("CARGO_BIN_EXE_shipoted"))
                .arg("--socket")
                .arg(self.socket())
                .arg("--state-dir")
                .arg(self.dir.path().join("state"))
                .args(["--backend", "cgroup", "--cgroup-root"])
                .arg(&self.root)
                .args(["--log-target", "stderr"])
                .env("SHIPOTE_LOG", "warn"),
            self.dir.path(),
            "daemon",
        )
    }

    fn cli(&self, args: &[&str]) {
        let o = Command::new(env!("CARGO_BIN_EXE_shipote"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// SIGTERM, exit, a new daemon until READY: how long it took.
    fn restart(&self, daemon: &mut Child) -> Duration {
        let start = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        daemon.wait().unwrap();
        *daemon = self.start();
        start.elapsed()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        common::remove_tree(&self.root);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runs: usize = std::env::var("SHIPOTE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let full = Site::new("full");
    let mut daemon = full.start();
    for w in 0..WORKSPACES {
        let label = format!("kept{w}");
        full.cli(&["ws", "create", &label, "--keep-on-exit"]);
        for _ in 0..COMMANDS_EACH {
            full.cli(&["run", &label, "--", "sleep", "600"]);
        }
    }
    let empty = Site::new("empty");
    let mut floor = empty.start();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        with.push(full.restart(&mut daemon));
        without.push(empty.restart(&mut floor));
    }
    // Every command is known again.
    let o = Command::new(env!("CARGO_BIN_EXE_shipote"))
        .arg("--socket")
        .arg(full.socket())
        .args(["--json", "ws", "ls"])
        .output()
        .unwrap();
    let alive: u64 = serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["commands"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(alive, (WORKSPACES * COMMANDS_EACH) as u64, "commands lost");
    let (a, b) = (common::median(&mut with), common::median(&mut without));
    println!("restart to READY (SIGTERM, exit, new daemon, READY=1), median of {runs} runs");
    println!("{:<52} {:>10}", "", "ms");
    println!(
        "{:<52} {:>10.1}",
        format!(
            "{WORKSPACES} kept workspaces, {} running commands",
            WORKSPACES * COMMANDS_EACH
        ),
        ms(a)
    );
    println!("{:<52} {:>10.1}", "floor: nothing to take back", ms(b));
    println!(
        "{:<52} {:>9.2}x",
        "ratio",
        a.as_secs_f64() / b.as_secs_f64()
    );
    let _ = daemon.kill();
    let _ = floor.kill();
    let _ = (daemon.wait(), floor.wait());
}
