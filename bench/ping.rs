//! Ping round trip and throughput of shipoted beside a minimal Unix-socket echo
//! server speaking the same framing (the physical floor), in the same run.
//!
//! `cargo bench --bench ping` (release build). Prints p50/p99 latency and
//! requests/s for 1, 16 and 64 concurrent clients, the ratios to the floor, and
//! the daemon's RSS idle and after the load. `shipoted` rows speak protocol 1
//! (the CLI's, after a Hello); `seed wire` rows speak protocol 0. `SHIPOTE_BENCH_SECS` sets the
//! measuring time per configuration (default 2).

mod common;

use shipote_protocol::client::Client;
use shipote_protocol::{frame, Request, Response};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CONCURRENCY: [usize; 3] = [1, 16, 64];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--echo-server") {
        common::echo_server(Path::new(&args[i + 1]));
        return;
    }
    let secs: f64 = std::env::var("SHIPOTE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let dir = tempfile::tempdir().unwrap();

    let echo_sock = dir.path().join("echo.sock");
    let mut echo = common::spawn_ready(
        Command::new(std::env::current_exe().unwrap())
            .arg("--echo-server")
            .arg(&echo_sock),
        dir.path(),
        "echo",
    );
    let daemon_sock = dir.path().join("shipote.sock");
    let mut daemon = common::spawn_ready(
        Command::new(env!("CARGO_BIN_EXE_shipoted"))
            .arg("--socket")
            .arg(&daemon_sock)
            .args(["--log-target", "stderr"])
            .env("SHIPOTE_LOG", "warn"),
        dir.path(),
        "daemon",
    );
    let idle_rss = common::rss_kib(daemon.id());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "ping round trip over a Unix socket, {secs} s per row (medians of per-request latency)"
    );
    println!(
        "{:<10} {:>7} {:>9} {:>9} {:>11} {:>9} {:>9}",
        "server", "clients", "p50 µs", "p99 µs", "req/s", "p50 ×", "req/s ×"
    );
    for c in CONCURRENCY {
        let floor = rt.block_on(load(&echo_sock, c, secs, false));
        let ours = rt.block_on(load(&daemon_sock, c, secs, false));
        // Protocol 0 (the seed's wire: no Hello, answers lowered on the way out).
        let seed = rt.block_on(load(&daemon_sock, c, secs, true));
        println!(
            "{:<10} {:>7} {:>9.1} {:>9.1} {:>11.0} {:>9} {:>9}",
            "echo", c, floor.p50_us, floor.p99_us, floor.rps, "", ""
        );
        for (name, f) in [("shipoted", ours), ("seed wire", seed)] {
            println!(
                "{:<10} {:>7} {:>9.1} {:>9.1} {:>11.0} {:>9.2} {:>9.2}",
                name,
                c,
                f.p50_us,
                f.p99_us,
                f.rps,
                f.p50_us / floor.p50_us,
                f.rps / floor.rps
            );
        }
    }
    let loaded_rss = common::rss_kib(daemon.id());
    println!(
        "shipoted RSS: {:.1} MiB idle, {:.1} MiB after the load",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0
    );
    let _ = echo.kill();
    let _ = daemon.kill();
    let _ = echo.wait();
    let _ = daemon.wait();
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    rps: f64,
}

/// A client that never sends Hello: protocol 0, frames written by hand.
struct SeedPinger {
    r: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    w: tokio::net::unix::OwnedWriteHalf,
    payload: Vec<u8>,
}

impl SeedPinger {
    async fn ping(&mut self) {
        use tokio::io::AsyncWriteExt;
        self.w.write_all(&[0, 0, 0, 1, 0]).await.unwrap();
        frame::read_payload_async(&mut self.r, &mut self.payload)
            .await
            .unwrap();
        assert_eq!(self.payload, [0], "Pong");
    }
}

enum Pinger {
    Current(Client),
    Seed(SeedPinger),
}

impl Pinger {
    async fn ping(&mut self) {
        match self {
            Pinger::Current(c) => assert_eq!(c.call(&Request::Ping).await.unwrap(), Response::Pong),
            Pinger::Seed(s) => s.ping().await,
        }
    }
}

async fn load(socket: &Path, clients: usize, secs: f64, seed: bool) -> Figures {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let socket = socket.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = if seed {
                let (r, w) = tokio::net::UnixStream::connect(&socket)
                    .await
                    .unwrap()
                    .into_split();
                Pinger::Seed(SeedPinger {
                    r: tokio::io::BufReader::with_capacity(16 * 1024, r),
                    w,
                    payload: Vec::new(),
                })
            } else {
                Pinger::Current(Client::connect(&socket).await.unwrap())
            };
            let mut lat = Vec::with_capacity(100_000);
            // Warm up the connection before measuring.
            for _ in 0..100 {
                c.ping().await;
            }
            while Instant::now() < until {
                let t = Instant::now();
                c.ping().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e6;
    Figures {
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        rps: all.len() as f64 / elapsed,
    }
}
