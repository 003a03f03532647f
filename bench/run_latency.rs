//! Run latency: request to RunStarted (sent once the command's exec succeeded,
//! inside its cgroup leaf) for 200 runs of /bin/true, beside a plain fork+exec
//! of /bin/true from this program (std's spawn also returns once exec
//! succeeded), in the same run. Both wait for each /bin/true to end before the
//! next start (on 2 cores a still-running /bin/true, ~0.5 ms of CPU here,
//! would otherwise compete with the next start).
//!
//! `cargo bench --bench run_latency` (as root on these hosts: the workspace
//! gets a cgroup under the cgroup2 mount; otherwise process groups).

#[path = "common/mod.rs"]
mod common;

use shipote_protocol::client::Client;
use shipote_protocol::{Request, Response};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 200;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
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

fn main() {
    let daemon = common::BenchDaemon::start();
    let socket = daemon.socket.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ours = rt.block_on(async {
        let mut c = Client::connect(&socket).await.unwrap();
        let ws = common::create_workspace(&mut c, "bench").await;
        let mut lat = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let req = Request::Run {
                workspace: ws,
                exec: "/bin/true".into(),
                argv: vec![],
                envp: vec![],
                restart_on_failure: false,
                cwd: None,
            };
            let t = Instant::now();
            let pid = match c.call(&req).await.unwrap() {
                Response::RunStarted { pid, .. } => {
                    lat.push(t.elapsed());
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
        lat
    });
    let mut floor: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let mut child = Command::new("/bin/true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let d = t.elapsed();
            child.wait().unwrap();
            d
        })
        .collect();
    let (o50, o99) = (pct(&mut ours, 0.5), pct(&mut ours, 0.99));
    let (f50, f99) = (pct(&mut floor, 0.5), pct(&mut floor, 0.99));
    println!("run /bin/true, {RUNS} runs, backend {}", daemon.backend());
    println!("{:<28} {:>9} {:>9}", "", "p50 µs", "p99 µs");
    println!("{:<28} {:>9.0} {:>9.0}", "fork+exec (floor)", f50, f99);
    println!(
        "{:<28} {:>9.0} {:>9.0}",
        "shipote Run -> RunStarted", o50, o99
    );
    println!(
        "ratio p50 {:.2}x, p99 {:.2}x (goal: within 3x)",
        o50 / f50,
        o99 / f99
    );
}
