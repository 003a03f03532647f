//! Flow throughput: the same producer (`head -c N /dev/zero`) into the same
//! consumer (`cat > /dev/null`) through a raw kernel pipe, an untapped
//! shipote edge, a tapped edge with 0, 1 and 4 subscribers and with one
//! stalled subscriber, `pv -q` and `tee`, in one run (N = 4 GiB, or
//! SHIPOTE_BENCH_BYTES). Then a rate-limited edge's long-run rate at 1 MB/s
//! and 100 MB/s. Pipeline runs are timed from the producer's start gate to
//! the consumer's exit (polled every 2 ms).
//!
//! `cargo bench --bench flow_throughput`

#[path = "common/mod.rs"]
mod common;

use shipote_protocol::client::Client;
use shipote_protocol::spec::{CommandSpec, Endpoint, FlowEdge, PipelineSpec, WorkspaceId};
use shipote_protocol::{Request, Response};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn cmd(label: &str, argv: &[&str]) -> CommandSpec {
    CommandSpec {
        label: label.into(),
        exec: argv[0].into(),
        argv: argv[1..].iter().map(|a| a.to_string()).collect(),
        env: vec![],
        cwd: None,
        restart_on_failure: false,
    }
}

fn edge(rate: Option<u64>) -> FlowEdge {
    FlowEdge {
        from: Endpoint {
            label: "gen".into(),
            port: "stdout".into(),
        },
        to: Endpoint {
            label: "sink".into(),
            port: "stdin".into(),
        },
        rate_limit_bytes_per_sec: rate,
    }
}

fn shell(script: &str) -> Duration {
    let t = Instant::now();
    let s = Command::new("sh").args(["-c", script]).status().unwrap();
    assert!(s.success(), "{script}");
    t.elapsed()
}

struct Bench {
    client: Client,
    ws: WorkspaceId,
    dir: PathBuf,
}

impl Bench {
    async fn call(&mut self, r: Request) -> Response {
        self.client.call(&r).await.unwrap()
    }

    /// Starts gen -> sink; returns the flow socket (when tapped) and the gate.
    async fn start(
        &mut self,
        n: u64,
        tap: bool,
        rate: Option<u64>,
        tag: &str,
    ) -> (Option<PathBuf>, PathBuf) {
        let gate = self.dir.join(format!("gate-{tag}"));
        let gen = format!(
            "while [ ! -e {} ]; do sleep 0.005; done; exec head -c {n} /dev/zero",
            gate.display()
        );
        let r = self
            .call(Request::PipelineRun {
                spec: PipelineSpec {
                    workspace: self.ws,
                    label: tag.into(),
                    commands: vec![
                        cmd("gen", &["sh", "-c", &gen]),
                        cmd("sink", &["sh", "-c", "exec cat >/dev/null"]),
                    ],
                    edges: vec![edge(rate)],
                },
                tap,
                vars: BTreeMap::new(),
            })
            .await;
        let Response::PipelineStarted { edges, .. } = r else {
            panic!("{r:?}")
        };
        (edges.first().and_then(|e| e.flow_socket.clone()), gate)
    }

    async fn wait_sink(&mut self) {
        loop {
            let r = self.call(Request::CommandList { workspace: self.ws }).await;
            let Response::CommandList { items } = r else {
                panic!("{r:?}")
            };
            if items
                .iter()
                .rev()
                .find(|c| c.label == "sink")
                .is_some_and(|c| !c.alive)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// One pipeline run with `subs` reading subscribers and `stalled` ones.
    async fn run(&mut self, n: u64, tap: bool, subs: usize, stalled: usize, tag: &str) -> Duration {
        let (socket, gate) = self.start(n, tap, None, tag).await;
        let mut readers = Vec::new();
        let mut keep = Vec::new();
        if let Some(socket) = &socket {
            for _ in 0..subs {
                let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
                readers.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 20];
                    let mut total = 0u64;
                    while let Ok(k) = s.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        total += k as u64;
                    }
                    total
                }));
            }
            for _ in 0..stalled {
                keep.push(std::os::unix::net::UnixStream::connect(socket).unwrap());
            }
            // Every subscriber is registered before the data starts.
            loop {
                let Response::FlowThroughput { items } = self.call(Request::FlowThroughput).await
                else {
                    panic!()
                };
                if items
                    .iter()
                    .any(|i| i.socket == *socket && i.subscribers as usize == subs + stalled)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let t = Instant::now();
        std::fs::write(&gate, "").unwrap();
        self.wait_sink().await;
        let d = t.elapsed();
        drop(keep);
        for r in readers {
            r.join().unwrap();
        }
        d
    }

    /// The long-run rate of an edge limited to `rate`, after its burst.
    async fn rate(&mut self, rate: u64, tag: &str) -> f64 {
        let (socket, gate) = self.start(rate * 100, true, Some(rate), tag).await;
        let socket = socket.unwrap();
        std::fs::write(&gate, "").unwrap();
        let bytes = |items: &[shipote_protocol::FlowThroughputInfo]| {
            items
                .iter()
                .find(|i| i.socket == socket)
                .map(|i| i.bytes_total)
                .unwrap()
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let Response::FlowThroughput { items } = self.call(Request::FlowThroughput).await else {
            panic!()
        };
        let (t0, b0) = (Instant::now(), bytes(&items));
        tokio::time::sleep(Duration::from_secs(4)).await;
        let Response::FlowThroughput { items } = self.call(Request::FlowThroughput).await else {
            panic!()
        };
        let r = (bytes(&items) - b0) as f64 / t0.elapsed().as_secs_f64();
        // Stop it: the pipeline would run for 100 s.
        let Response::FlowList { items } = self.call(Request::FlowList).await else {
            panic!()
        };
        for i in items {
            if i.sockets.contains(&socket) {
                self.call(Request::PipelineStop {
                    pipeline: i.pipeline,
                    grace_ms: 0,
                })
                .await;
            }
        }
        r
    }
}

fn gib(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64() / (1u64 << 30) as f64
}

fn main() {
    let n: u64 = std::env::var("SHIPOTE_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4 << 30);
    let daemon = common::BenchDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let has_pv = Path::new("/usr/bin/pv").exists();
    let rounds: usize = std::env::var("SHIPOTE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let order = [
        "raw kernel pipe (the floor)",
        "shipote edge, untapped",
        "tapped, 0 subscribers",
        "tapped, 1 subscriber",
        "tapped, 4 subscribers",
        "tapped, 1 stalled subscriber",
        "pv -q",
        "tee",
    ];
    let mut runs: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let rates = rt.block_on(async {
        let mut client = Client::connect(&daemon.socket).await.unwrap();
        let ws = common::create_workspace(&mut client, "flows").await;
        let mut b = Bench {
            client,
            ws,
            dir: dir.path().to_owned(),
        };
        // Rounds alternate the configurations, so drifts in the machine's
        // load spread over all of them; medians are reported.
        for round in 0..rounds {
            let mut push = |k: &'static str, d: Duration| runs.entry(k).or_default().push(d);
            push(
                order[0],
                shell(&format!("head -c {n} /dev/zero | cat >/dev/null")),
            );
            push(
                order[1],
                b.run(n, false, 0, 0, &format!("untapped{round}")).await,
            );
            push(
                order[2],
                b.run(n, true, 0, 0, &format!("tap0-{round}")).await,
            );
            push(
                order[3],
                b.run(n, true, 1, 0, &format!("tap1-{round}")).await,
            );
            push(
                order[4],
                b.run(n, true, 4, 0, &format!("tap4-{round}")).await,
            );
            push(
                order[5],
                b.run(n, true, 0, 1, &format!("stall{round}")).await,
            );
            if has_pv {
                push(
                    order[6],
                    shell(&format!("head -c {n} /dev/zero | pv -q | cat >/dev/null")),
                );
            }
            push(
                order[7],
                shell(&format!(
                    "head -c {n} /dev/zero | tee /dev/null | cat >/dev/null"
                )),
            );
        }
        let slow = b.rate(1_000_000, "rate1m").await;
        let fast = b.rate(100_000_000, "rate100m").await;
        (slow, fast)
    });
    let rows: Vec<(String, Duration)> = order
        .iter()
        .filter_map(|k| runs.get_mut(k).map(|v| (k.to_string(), common::median(v))))
        .collect();
    let raw = rows[0].1;
    println!(
        "{} MiB from head -c to cat >/dev/null, median of {rounds} rounds, backend {}",
        n >> 20,
        daemon.backend()
    );
    println!("{:<32} {:>8} {:>8} {:>9}", "", "s", "GiB/s", "x raw");
    let pv = rows.iter().find(|r| r.0 == "pv -q").map(|r| r.1);
    for (name, d) in &rows {
        println!(
            "{:<32} {:>8.2} {:>8.2} {:>8.2}x",
            name,
            d.as_secs_f64(),
            gib(n, *d),
            raw.as_secs_f64() / d.as_secs_f64()
        );
    }
    if !has_pv {
        println!("pv: not installed (apt-get install pv) - no pv row");
    }
    let find = |k: &str| rows.iter().find(|r| r.0 == k).map(|r| r.1).unwrap();
    println!(
        "untapped edge {:.2}x raw (goal >= 0.95x)",
        raw.as_secs_f64() / find("shipote edge, untapped").as_secs_f64()
    );
    if let Some(pv) = pv {
        println!(
            "tapped, 1 subscriber {:.2}x pv (goal >= 1.2x)",
            pv.as_secs_f64() / find("tapped, 1 subscriber").as_secs_f64()
        );
    }
    println!(
        "stalled subscriber costs {:.2}x of the 0-subscriber tap (goal: ~1.0x)",
        find("tapped, 1 stalled subscriber").as_secs_f64()
            / find("tapped, 0 subscribers").as_secs_f64()
    );
    println!(
        "rate limit: {:.3} MB/s for 1 MB/s ({:+.2}%), {:.2} MB/s for 100 MB/s ({:+.2}%) (goal: within 2%)",
        rates.0 / 1e6,
        (rates.0 / 1e6 - 1.0) * 100.0,
        rates.1 / 1e6,
        (rates.1 / 1e8 - 1.0) * 100.0
    );
}
