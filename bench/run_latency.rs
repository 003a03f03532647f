//! Run latency: request to RunStarted (sent once the command's exec succeeded,
//! inside its cgroup leaf) for 200 runs of /bin/true, beside a plain fork+exec
//! of /bin/true from this program (std's spawn also returns once exec
//! succeeded), in the same run.
//!
//! `cargo bench --bench run_latency` (as root on these hosts: the workspace
//! gets a cgroup under the cgroup2 mount; otherwise process groups).

#[path = "common/mod.rs"]
mod common;

use shipote_protocol::client::Client;
use shipote_protocol::{Request, Response, WorkspaceSpec};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 200;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
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
        let ws = match c
            .call(&Request::WorkspaceCreate {
                spec: WorkspaceSpec::new("bench"),
            })
            .await
            .unwrap()
        {
            Response::WorkspaceCreated { id, .. } => id,
            other => panic!("{other:?}"),
        };
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
            match c.call(&req).await.unwrap() {
                Response::RunStarted { .. } => lat.push(t.elapsed()),
                other => panic!("{other:?}"),
            }
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
