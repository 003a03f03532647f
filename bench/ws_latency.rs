//! Workspace create/stop latency at the request level, daemon RSS with many
//! workspaces, and the daemon's CPU while it samples them. Runs against a live
//! daemon (in the VM tier: `bench/vm.sh`, which also times `systemd-run --user
//! --scope true` and the CLI as whole processes beside it).
//!
//! `ws-latency [--socket PATH] [--runs 50] [--many 100] [--daemon-pid PID]`

use shipote_protocol::client::Client;
use shipote_protocol::{Request, Response, WorkspaceSpec};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn create(c: &mut Client, label: &str) -> shipote_protocol::WorkspaceId {
    match c
        .call(&Request::WorkspaceCreate {
            spec: WorkspaceSpec::new(label),
        })
        .await
        .unwrap()
    {
        Response::WorkspaceCreated { id, .. } => id,
        other => panic!("create {label}: {other:?}"),
    }
}

async fn stop(c: &mut Client, id: shipote_protocol::WorkspaceId) {
    match c
        .call(&Request::WorkspaceStop { id, grace_ms: 0 })
        .await
        .unwrap()
    {
        Response::WorkspaceStopped { .. } => {}
        other => panic!("stop {id}: {other:?}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let socket = arg("--socket")
        .map(Into::into)
        .unwrap_or_else(shipote_protocol::default_socket_path);
    let runs: usize = arg("--runs").and_then(|v| v.parse().ok()).unwrap_or(50);
    let many: usize = arg("--many").and_then(|v| v.parse().ok()).unwrap_or(100);
    let mut c = Client::connect(&socket).await.unwrap();

    let (mut creates, mut stops, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let t0 = Instant::now();
        let id = create(&mut c, &format!("lat{i}")).await;
        let t1 = Instant::now();
        stop(&mut c, id).await;
        let t2 = Instant::now();
        creates.push(t1 - t0);
        stops.push(t2 - t1);
        both.push(t2 - t0);
    }
    for v in [&mut creates, &mut stops, &mut both] {
        v.sort();
    }
    println!(
        "figure: request create  p50 {:.1} ms  p99 {:.1} ms  (n={runs})",
        pct(&creates, 0.5),
        pct(&creates, 0.99)
    );
    println!(
        "figure: request stop    p50 {:.1} ms  p99 {:.1} ms",
        pct(&stops, 0.5),
        pct(&stops, 0.99)
    );
    println!(
        "figure: request create+stop p50 {:.1} ms  p99 {:.1} ms",
        pct(&both, 0.5),
        pct(&both, 0.99)
    );

    let Some(pid) = arg("--daemon-pid") else {
        return;
    };
    let idle_rss = rss_kib(&pid);
    let hz = 100.0;
    let t0 = cpu_ticks(&pid);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_pct = (cpu_ticks(&pid) - t0) as f64 / hz / start.elapsed().as_secs_f64() * 100.0;
    println!("figure: daemon CPU idle with no workspace: {idle_pct:.2}% of one core (over 10 s)");
    let mut ids = Vec::new();
    for i in 0..many {
        ids.push(create(&mut c, &format!("many{i}")).await);
    }
    let rss = rss_kib(&pid);
    // Let the sampler run over all of them for a while.
    let t0 = cpu_ticks(&pid);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let used = (cpu_ticks(&pid) - t0) as f64 / hz;
    let pct_core = used / start.elapsed().as_secs_f64() * 100.0;
    println!(
        "figure: daemon RSS {:.1} MiB idle, {:.1} MiB with {many} workspaces",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    println!("figure: daemon CPU while sampling {many} workspaces every 2 s: {pct_core:.2}% of one core (over 20 s)");
    for id in ids {
        stop(&mut c, id).await;
    }
}
