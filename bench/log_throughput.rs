//! Log capture throughput: a command writing 1 GiB to stdout under shipote
//! (captured into its rotating log by splice), beside the same command
//! redirected straight to a file on the same disk (the floor), alternating,
//! 5 rounds each, in the same run. Time runs from the request to the exit
//! the daemon records (polled every 2 ms) and, for the floor, from spawn to
//! wait.
//!
//! `cargo bench --bench log_throughput` (SHIPOTE_BENCH_BYTES changes the size).

#[path = "common/mod.rs"]
mod common;

use shipote_protocol::client::Client;
use shipote_protocol::{Request, Response, WorkspaceId};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

async fn under_shipote(c: &mut Client, ws: WorkspaceId, bytes: u64) -> Duration {
    let req = Request::Run {
        workspace: ws,
        exec: "head".into(),
        argv: vec!["-c".into(), bytes.to_string(), "/dev/zero".into()],
        envp: vec![],
        restart_on_failure: false,
        cwd: None,
    };
    let t = Instant::now();
    let id = match c.call(&req).await.unwrap() {
        Response::RunStarted { command_id, .. } => command_id,
        other => panic!("{other:?}"),
    };
    loop {
        match c
            .call(&Request::CommandList { workspace: ws })
            .await
            .unwrap()
        {
            Response::CommandList { items } => {
                let me = items.iter().find(|i| i.id == id).expect("listed");
                if !me.alive {
                    assert_eq!(me.exit_status, Some(0), "{me:?}");
                    return t.elapsed();
                }
            }
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn straight_to_file(path: &std::path::Path, bytes: u64) -> Duration {
    let file = std::fs::File::create(path).unwrap();
    let t = Instant::now();
    let status = Command::new("head")
        .args(["-c", &bytes.to_string(), "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(file)
        .status()
        .unwrap();
    let d = t.elapsed();
    assert!(status.success());
    std::fs::remove_file(path).unwrap();
    d
}

fn main() {
    let bytes: u64 = std::env::var("SHIPOTE_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let daemon = common::BenchDaemon::start();
    std::fs::create_dir_all(&daemon.state).unwrap();
    let floor_file = daemon.state.join("floor.out");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut ours, mut floor) = rt.block_on(async {
        let mut c = Client::connect(&daemon.socket).await.unwrap();
        let ws = common::create_workspace(&mut c, "bench").await;
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            floor.push(straight_to_file(&floor_file, bytes));
            ours.push(under_shipote(&mut c, ws, bytes).await);
        }
        let _ = c
            .call(&Request::WorkspaceStop {
                id: ws,
                grace_ms: 0,
            })
            .await;
        (ours, floor)
    });
    let (o, f) = (common::median(&mut ours), common::median(&mut floor));
    let rate = |d: Duration| bytes as f64 / d.as_secs_f64() / (1 << 20) as f64;
    println!(
        "{} MiB to stdout, {ROUNDS} rounds, median, backend {}",
        bytes >> 20,
        daemon.backend()
    );
    println!("{:<34} {:>9} {:>10}", "", "ms", "MiB/s");
    println!(
        "{:<34} {:>9.0} {:>10.0}",
        "head > file (floor)",
        f.as_secs_f64() * 1e3,
        rate(f)
    );
    println!(
        "{:<34} {:>9.0} {:>10.0}",
        "under shipote, logs captured",
        o.as_secs_f64() * 1e3,
        rate(o)
    );
    println!(
        "throughput ratio {:.2}x the floor (goal: at least 0.8x)",
        f.as_secs_f64() / o.as_secs_f64()
    );
}
