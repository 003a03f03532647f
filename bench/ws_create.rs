//! `ws create` with permissions beside the same without (issue 17): the
//! request to WorkspaceCreated round trip, p50 and p99 over 100 creates
//! each, alternating, on the cgroup backend (or process groups). With
//! permissions, the daemon makes the workspace's namespaces in a child that
//! then becomes the workspace's init (user, mount, network and PID
//! namespaces, the mount plan: read-only root, private /tmp and /dev, a
//! hidden path, cgroupfs read-only, devpts, a fresh /proc, the Landlock
//! ruleset, the init's exec).
//!
//! `cargo bench --bench ws_create`. Prints the ratio (goal: at most 2x).

mod common;

use shipote_protocol::client::Client;
use shipote_protocol::{NetworkAccess, Permissions, Request, Response, WorkspaceSpec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RUNS: usize = 100;

async fn create_and_stop(c: &mut Client, spec: WorkspaceSpec) -> Duration {
    let t = Instant::now();
    let id = match c.call(&Request::WorkspaceCreate { spec }).await.unwrap() {
        Response::WorkspaceCreated { id, .. } => id,
        other => panic!("{other:?}"),
    };
    let took = t.elapsed();
    match c
        .call(&Request::WorkspaceStop { id, grace_ms: 0 })
        .await
        .unwrap()
    {
        Response::WorkspaceStopped { .. } => {}
        other => panic!("{other:?}"),
    }
    took
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn main() {
    let daemon = common::BenchDaemon::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let permissions = Permissions {
        network: NetworkAccess::None,
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
    let (mut plain, mut boxed) = rt.block_on(async {
        let mut c = Client::connect(&daemon.socket).await.unwrap();
        let (mut plain, mut boxed) = (Vec::new(), Vec::new());
        for i in 0..RUNS {
            plain.push(create_and_stop(&mut c, WorkspaceSpec::new(format!("plain{i}"))).await);
            let mut spec = WorkspaceSpec::new(format!("boxed{i}"));
            spec.permissions = permissions.clone();
            boxed.push(create_and_stop(&mut c, spec).await);
        }
        (plain, boxed)
    });
    println!(
        "ws create: request to WorkspaceCreated, {RUNS} each, alternating, backend {}",
        daemon.backend()
    );
    println!("{:<40} {:>9} {:>9}", "", "p50 µs", "p99 µs");
    let (p50, p99) = (pct(&mut plain, 0.5), pct(&mut plain, 0.99));
    let (b50, b99) = (pct(&mut boxed, 0.5), pct(&mut boxed, 0.99));
    println!("{:<40} {:>9.0} {:>9.0}", "without permissions", p50, p99);
    println!("{:<40} {:>9.0} {:>9.0}", "with every permission", b50, b99);
    println!(
        "ratio p50 {:.2}x, p99 {:.2}x (goal: at most 2x)",
        b50 / p50,
        b99 / p99
    );
}
