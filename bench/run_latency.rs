//! Run latency, two figures, each beside its floor in the same run:
//!
//! 1. **Request to first instruction** (the figure): the command is
//!    `bench/run_latency/stamp.c`, a static program without libc whose entry
//!    point reads CLOCK_MONOTONIC before anything else and prints it, followed
//!    by its /proc/self/cgroup. Latency = stamp - the clock just before the
//!    request is sent. Floor: this program spawning the same stamp with std's
//!    spawn (fork+exec), stamp - the clock just before the spawn. The bench
//!    checks that every stamp was taken inside the command's own cgroup leaf.
//!    The same again in a workspace with every kind of permission (user,
//!    mount, network and PID namespaces joined, a cgroup namespace, Landlock
//!    and seccomp before exec; the program's process is a second child, as
//!    a PID namespace takes only the joiner's children): the sandbox
//!    overhead (goal: at most 1.5x).
//! 2. **Request to RunStarted** for /bin/true: the whole round trip a client
//!    sees (the daemon answers once exec succeeded), beside std's spawn of
//!    /bin/true, which also returns once exec succeeded.
//!
//! Each run waits for the previous command to end (on 2 cores a still-running
//! /bin/true, ~0.5 ms of CPU here, would otherwise compete with the next
//! start). 200 runs each; p50 and p99.
//!
//! `cargo bench --bench run_latency` (as root on these hosts: the workspace
//! gets a cgroup under the cgroup2 mount; otherwise process groups). Needs a C
//! compiler (`cc`, or `$CC`) to build the stamp.

#[path = "common/mod.rs"]
mod common;

use shipote_protocol::client::Client;
use shipote_protocol::{LogStream, Request, Response, WorkspaceId};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 200;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// CLOCK_MONOTONIC in nanoseconds (the clock the stamp reads).
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Waits until process `pid` has exited (its pidfd turns readable), or is
/// already gone.
fn wait_gone(pid: i32) {
    // SAFETY: plain system calls on integers and a valid pollfd.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if fd < 0 {
            return;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        libc::poll(&mut p, 1, 5000);
        libc::close(fd);
    }
}

/// Builds the stamp program into `dir`.
fn build_stamp(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/run_latency/stamp.c");
    let out = dir.join("stamp");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-O2", "-static", "-nostdlib", "-fno-stack-protector", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?} for the stamp: {e}"));
    assert!(status.success(), "{cc} could not build {}", src.display());
    out
}

/// The stamp's output: its clock reading and its cgroup v2 path.
fn parse_stamp(out: &[u8]) -> (u64, String) {
    let text = String::from_utf8_lossy(out);
    let mut lines = text.lines();
    let ns = lines
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("stamp printed {text:?}"));
    let cgroup = lines
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_owned();
    (ns, cgroup)
}

/// The whole output of a command that has ended.
async fn output(c: &mut Client, workspace: WorkspaceId, command: ulid::Ulid) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut from = Some(0);
    loop {
        let req = Request::CommandLogsFrom {
            workspace,
            command,
            stream: LogStream::Stdout,
            from,
            tail_bytes: 0,
            max_bytes: 1 << 20,
        };
        match c.call(&req).await.unwrap() {
            Response::CommandLogsFrom {
                bytes: b,
                next,
                running,
                ..
            } => {
                bytes.extend_from_slice(&b);
                from = Some(next);
                if !running {
                    return bytes;
                }
            }
            other => panic!("{other:?}"),
        }
        // Outside the timed window: the capture thread drains the pipe.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Request-to-first-instruction latencies (µs) of RUNS stamps in `ws`,
/// checking each ran in its own cgroup leaf when there are cgroups (seen
/// as `/` from inside a sandboxed workspace: its cgroup namespace is rooted
/// at its leaf).
async fn first_instructions(
    c: &mut Client,
    ws: WorkspaceId,
    stamp: &Path,
    cgroup_backend: bool,
    sandboxed: bool,
) -> Vec<f64> {
    let mut first = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t0 = mono_ns();
        let (command, pid) = match c.call(&run_req(ws, stamp)).await.unwrap() {
            Response::RunStarted {
                command_id, pid, ..
            } => (command_id, pid),
            other => panic!("{other:?}"),
        };
        wait_gone(pid);
        let (ns, cgroup) = parse_stamp(&output(c, ws, command).await);
        if sandboxed {
            assert_eq!(cgroup, "/", "the stamp saw the host's cgroup paths");
        } else if cgroup_backend {
            assert!(
                cgroup.ends_with(&format!("/cmd-{command}")),
                "the stamp ran in {cgroup:?}, not its command's leaf"
            );
        }
        first.push((ns - t0) as f64 / 1e3);
    }
    first
}

fn run_req(ws: WorkspaceId, exec: &Path) -> Request {
    Request::Run {
        workspace: ws,
        exec: exec.to_string_lossy().into_owned(),
        argv: vec![],
        envp: vec![],
        restart_on_failure: false,
        cwd: None,
    }
}

fn report(title: &str, floor_name: &str, floor: &mut [f64], ours_name: &str, ours: &mut [f64]) {
    let (o50, o99) = (pct(ours, 0.5), pct(ours, 0.99));
    let (f50, f99) = (pct(floor, 0.5), pct(floor, 0.99));
    println!("\n{title}");
    println!("{:<34} {:>9} {:>9}", "", "p50 µs", "p99 µs");
    println!("{floor_name:<34} {f50:>9.0} {f99:>9.0}");
    println!("{ours_name:<34} {o50:>9.0} {o99:>9.0}");
    println!("ratio p50 {:.2}x, p99 {:.2}x", o50 / f50, o99 / f99);
}

/// The floor for the first instruction: std's spawn of the stamp, in µs.
fn floor_first_instruction(stamp: &Path) -> f64 {
    let t0 = mono_ns();
    let mut child = Command::new(stamp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.wait().unwrap();
    (parse_stamp(&out).0 - t0) as f64 / 1e3
}

/// The floor for the round trip: std's spawn of /bin/true until it returns
/// (once exec succeeded), in µs.
fn floor_started() -> f64 {
    let t = Instant::now();
    let mut child = Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let d = t.elapsed();
    child.wait().unwrap();
    d.as_secs_f64() * 1e6
}

fn main() {
    // Not under /tmp: the sandboxed workspace has a private one.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let stamp = build_stamp(tmp.path());
    let daemon = common::BenchDaemon::start();
    let socket = daemon.socket.clone();
    let cgroup_backend = daemon.root.is_some();
    let backend = daemon.backend();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The floors run in their own loops once the daemon is idle: run
    // alternately, the floor measured while the daemon still tidies up after
    // our previous command (log, leaf) came out ~2x slower, flattering us.
    let (mut first, mut boxed, mut started, mut kept) = rt.block_on(async {
        let mut c = Client::connect(&socket).await.unwrap();
        let ws = common::create_workspace(&mut c, "bench").await;
        let first = first_instructions(&mut c, ws, &stamp, cgroup_backend, false).await;
        // A kept workspace: its keeper starts its commands (so they outlive
        // the daemon).
        let mut spec = shipote_protocol::WorkspaceSpec::new("kept");
        spec.on_exit = shipote_protocol::ExitPolicy::Keep;
        let kept_ws = match c.call(&Request::WorkspaceCreate { spec }).await.unwrap() {
            Response::WorkspaceCreated { id, .. } => id,
            other => panic!("{other:?}"),
        };
        let kept = first_instructions(&mut c, kept_ws, &stamp, cgroup_backend, false).await;
        let _ = c
            .call(&Request::WorkspaceStop {
                id: kept_ws,
                grace_ms: 0,
            })
            .await;
        // The same with permissions: a sandbox of every kind.
        let mut spec = shipote_protocol::WorkspaceSpec::new("boxed");
        spec.permissions = shipote_protocol::Permissions {
            network: shipote_protocol::NetworkAccess::None,
            read_only_root: true,
            writable_paths: vec![],
            hidden_paths: ["/etc/os-release"]
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .collect(),
            private_tmp: true,
            private_dev: true,
        };
        let boxed_ws = match c.call(&Request::WorkspaceCreate { spec }).await.unwrap() {
            Response::WorkspaceCreated { id, .. } => id,
            other => panic!("{other:?}"),
        };
        let boxed = first_instructions(&mut c, boxed_ws, &stamp, cgroup_backend, true).await;
        let _ = c
            .call(&Request::WorkspaceStop {
                id: boxed_ws,
                grace_ms: 0,
            })
            .await;
        let mut started = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let t = Instant::now();
            let pid = match c.call(&run_req(ws, Path::new("/bin/true"))).await.unwrap() {
                Response::RunStarted { pid, .. } => {
                    started.push(t.elapsed().as_secs_f64() * 1e6);
                    pid
                }
                other => panic!("{other:?}"),
            };
            // Like the floor, which waits for its child before the next
            // spawn: the next run starts once this one has ended.
            wait_gone(pid);
        }
        let _ = c
            .call(&Request::WorkspaceStop {
                id: ws,
                grace_ms: 0,
            })
            .await;
        (first, boxed, started, kept)
    });
    drop(daemon);
    let mut first_floor: Vec<f64> = (0..RUNS).map(|_| floor_first_instruction(&stamp)).collect();
    let mut started_floor: Vec<f64> = (0..RUNS).map(|_| floor_started()).collect();
    println!("{RUNS} runs each, backend {backend}");
    report(
        "request to the command's first instruction (stamp); goal: within 3x",
        "fork+exec (floor)",
        &mut first_floor,
        "shipote Run -> first instruction",
        &mut first,
    );
    report(
        "with permissions (network none, read-only root, private /tmp and /dev, a hidden path; PID and cgroup namespaces, Landlock, seccomp)",
        "shipote Run, no permissions",
        &mut first.clone(),
        "shipote Run, with permissions",
        &mut boxed,
    );
    report(
        "a kept workspace (--keep-on-exit): started by its keeper, so it outlives the daemon",
        "shipote Run, reaped workspace",
        &mut first.clone(),
        "shipote Run, kept workspace",
        &mut kept,
    );
    report(
        "request to RunStarted, /bin/true (the client's round trip)",
        "fork+exec, spawn returns (floor)",
        &mut started_floor,
        "shipote Run -> RunStarted",
        &mut started,
    );
}
