//! The daemon under load: does it still answer `Ping` promptly while, and
//! after, clients do the worst the protocol allows?
//!
//! `cargo bench --bench load` (release build; root for the cgroup backend).
//! A prober pings every 2 ms from its own thread through every phase; each
//! phase prints its duration, what it achieved and the prober's p50/p99, with
//! p99 as a multiple of the idle p99, and beside it the p99 of an echo server
//! (the same framing, no daemon) pinged the same way through the same load:
//! the floor of what a saturated 2-core machine allows. The figures to hold:
//! p99 at most 10x the idle p99 after every phase, and during every phase at
//! most 10x idle or, where the machine itself is saturated, near the echo's.
//!
//! Phases: idle; 5,000 connections at once (1,024 served, the rest turned
//! away); 1,000 workspaces created and stopped; 10,000 short commands over 10
//! workspaces from 16 clients; a flood of 1 MiB requests from 8 clients for
//! 5 s; idle again.

mod common;

use shipote_protocol::client::Client;
use shipote_protocol::{frame, seed, Request, Response, WorkspaceId};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pings taken by the prober: when, and how long each took.
type Pings = Arc<Mutex<Vec<(Instant, Duration)>>>;

fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn prober(socket: std::path::PathBuf, pings: Pings, stop: Arc<std::sync::atomic::AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut c = Client::connect(&socket).await.unwrap();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            assert_eq!(c.call(&Request::Ping).await.unwrap(), Response::Pong);
            pings.lock().unwrap().push((t, t.elapsed()));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
}

struct Phase {
    name: &'static str,
    start: Instant,
    end: Instant,
    did: String,
    /// The daemon's RSS at the phase's end, MiB.
    rss: f64,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn rss_mib(pid: u32) -> f64 {
    common::rss_kib(pid) as f64 / 1024.0
}

async fn create(c: &mut Client, label: &str) -> WorkspaceId {
    common::create_workspace(c, label).await
}

async fn stop(c: &mut Client, id: WorkspaceId) {
    match c
        .call(&Request::WorkspaceStop { id, grace_ms: 0 })
        .await
        .unwrap()
    {
        Response::WorkspaceStopped { .. } => {}
        other => panic!("stop {id}: {other:?}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--echo-server") {
        common::echo_server(std::path::Path::new(&args[i + 1]));
        return;
    }
    raise_nofile();
    let daemon = common::BenchDaemon::start();
    let socket = daemon.socket.clone();
    // The floor: an echo server with the same framing, pinged the same way
    // through the same load (on 2 cores, a saturated machine delays every
    // wake-up; the echo shows how much of a ping's delay is the machine's).
    let echo_dir = tempfile::tempdir().unwrap();
    let echo_sock = echo_dir.path().join("echo.sock");
    let mut echo = common::spawn_ready(
        std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--echo-server")
            .arg(&echo_sock),
        echo_dir.path(),
        "echo",
    );
    let pid = daemon.pid();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pings: Pings = Arc::default();
    let echo_pings: Pings = Arc::default();
    let stop_probe = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let (s, p, f) = (socket.clone(), pings.clone(), stop_probe.clone());
        std::thread::spawn(move || prober(s, p, f))
    };
    let echo_probe = {
        let (s, p, f) = (echo_sock.clone(), echo_pings.clone(), stop_probe.clone());
        std::thread::spawn(move || prober(s, p, f))
    };
    let mut phases = Vec::new();
    let rss_idle = rss_mib(pid);
    let mut phase = |name: &'static str, f: &mut dyn FnMut() -> String| {
        let start = Instant::now();
        let did = f();
        phases.push(Phase {
            name,
            start,
            end: Instant::now(),
            did,
            rss: rss_mib(pid),
        });
    };

    phase("idle", &mut || {
        std::thread::sleep(Duration::from_secs(3));
        "nothing".into()
    });

    phase("5,000 connections", &mut || {
        let mut conns = Vec::with_capacity(5000);
        for _ in 0..5000 {
            conns.push(std::os::unix::net::UnixStream::connect(&socket).unwrap());
        }
        // Turned-away ones got a busy: error at once; served ones nothing.
        std::thread::sleep(Duration::from_millis(500));
        let mut away = 0;
        for c in &mut conns {
            c.set_nonblocking(true).unwrap();
            let mut b = [0u8; 64];
            if matches!(c.read(&mut b), Ok(n) if n > 0) {
                away += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        drop(conns);
        std::thread::sleep(Duration::from_secs(1));
        format!("{} served, {away} turned away (busy)", 5000 - away)
    });

    phase("1,000 workspaces", &mut || {
        rt.block_on(async {
            let t = Instant::now();
            let mut tasks = Vec::new();
            for k in 0..4 {
                let socket = socket.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = Client::connect(&socket).await.unwrap();
                    let mut ids = Vec::new();
                    for i in 0..250 {
                        ids.push(create(&mut c, &format!("load{k}-{i}")).await);
                    }
                    ids
                }));
            }
            let mut ids = Vec::new();
            for t in tasks {
                ids.extend(t.await.unwrap());
            }
            let made = t.elapsed();
            let mut c = Client::connect(&socket).await.unwrap();
            for id in ids {
                stop(&mut c, id).await;
            }
            format!(
                "created at {:.0}/s, all stopped in {:.1} s",
                1000.0 / made.as_secs_f64(),
                t.elapsed().as_secs_f64()
            )
        })
    });

    phase("10,000 commands", &mut || {
        rt.block_on(async {
            let mut c = Client::connect(&socket).await.unwrap();
            let mut wss = Vec::new();
            for i in 0..10 {
                wss.push(create(&mut c, &format!("cmds{i}")).await);
            }
            let t = Instant::now();
            let mut tasks = Vec::new();
            for k in 0..16 {
                let (socket, wss) = (socket.clone(), wss.clone());
                tasks.push(tokio::spawn(async move {
                    let mut c = Client::connect(&socket).await.unwrap();
                    for i in 0..625 {
                        let r = c
                            .call(&Request::Run {
                                workspace: wss[(k + i) % wss.len()],
                                exec: "true".into(),
                                argv: vec![],
                                envp: vec![],
                                restart_on_failure: false,
                                cwd: None,
                            })
                            .await
                            .unwrap();
                        assert!(matches!(r, Response::RunStarted { .. }), "{r:?}");
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let took = t.elapsed();
            for id in wss {
                stop(&mut c, id).await;
            }
            format!("started at {:.0}/s", 10_000.0 / took.as_secs_f64())
        })
    });

    phase("1 MiB flood", &mut || {
        let until = Instant::now() + Duration::from_secs(5);
        let mut sample = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        sample.resize(frame::MAX_FRAME_BYTES - 16, 0);
        let request = Arc::new(
            frame::encode(&seed::Request::Discern {
                sample,
                hint_path: None,
            })
            .unwrap(),
        );
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (socket, request) = (socket.clone(), request.clone());
                std::thread::spawn(move || {
                    let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                    let mut n = 0u64;
                    while Instant::now() < until {
                        s.write_all(&request).unwrap();
                        let _: seed::Response = frame::read_frame(&mut s).unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let n: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        format!("{n} requests of 1 MiB ({:.0} MiB/s)", n as f64 / 5.0)
    });

    phase("idle again, 12 s", &mut || {
        // Longer than tokio's 10 s keep-alive of idle blocking threads.
        std::thread::sleep(Duration::from_secs(12));
        format!("RSS at the start {rss_idle:.1} MiB")
    });

    stop_probe.store(true, std::sync::atomic::Ordering::Relaxed);
    probe.join().unwrap();
    echo_probe.join().unwrap();
    let _ = echo.kill();
    let _ = echo.wait();
    let pings = pings.lock().unwrap();
    let echo_pings = echo_pings.lock().unwrap();
    let within_of = |all: &[(Instant, Duration)], p: &Phase| -> Vec<Duration> {
        let mut v: Vec<Duration> = all
            .iter()
            .filter(|(t, _)| *t >= p.start && *t < p.end)
            .map(|(_, d)| *d)
            .collect();
        v.sort();
        v
    };
    let within = |p: &Phase| within_of(&pings, p);
    let idle = within(&phases[0]);
    let idle_p99 = pct(&idle, 0.99);
    println!(
        "shipoted under load ({} backend); a ping every 2 ms throughout",
        daemon.backend()
    );
    println!(
        "{:<20} {:>8} {:>7} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8}  what it did",
        "phase", "took s", "pings", "p50 µs", "p99 µs", "p99 ×", "echo p99", "÷ echo", "RSS MiB",
    );
    let mut worst: f64 = 0.0;
    for p in &phases {
        let v = within(p);
        let e = within_of(&echo_pings, p);
        let ratio = pct(&v, 0.99).as_secs_f64() / idle_p99.as_secs_f64();
        worst = worst.max(ratio);
        println!(
            "{:<20} {:>8.1} {:>7} {:>9.0} {:>9.0} {:>8.2} {:>9.0} {:>8.2} {:>8.1}  {}",
            p.name,
            (p.end - p.start).as_secs_f64(),
            v.len(),
            pct(&v, 0.5).as_secs_f64() * 1e6,
            pct(&v, 0.99).as_secs_f64() * 1e6,
            ratio,
            pct(&e, 0.99).as_secs_f64() * 1e6,
            pct(&v, 0.99).as_secs_f64() / pct(&e, 0.99).as_secs_f64(),
            p.rss,
            p.did
        );
    }
    println!(
        "worst p99 {worst:.2}x the idle p99 ({:.0} µs): {}",
        idle_p99.as_secs_f64() * 1e6,
        if worst <= 10.0 {
            "within 10x"
        } else {
            "ABOVE 10x"
        }
    );
}
