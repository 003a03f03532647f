//! A daemon behind ssh (issue #20), each figure beside its floor in the
//! same run, through a private sshd on loopback (tests/support/sshd.rs):
//!
//! 1. a `Ping` round trip on an open connection (`ssh ... shipote system
//!    dial-stdio`), beside a raw echo of as many bytes through the same kind
//!    of ssh pipe (`ssh ... cat`): goal at most 1.5x;
//! 2. a whole `shipote --host ... ws ls`, beside `ssh HOST shipote ws ls`
//!    (the far CLI run by ssh, the usual way without shipote's help): goal
//!    at most 1.2x; then both again with an ssh ControlMaster.
//!
//! `cargo bench --bench remote` (as root: the sshd lets root in).

#[path = "../tests/support/sshd.rs"]
mod sshd;

mod common;

use shipote_protocol::client::Client;
use shipote_protocol::{Request, Response};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUND_TRIPS: usize = 2000;
const WHOLE_RUNS: usize = 20;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ssh(command: &str) -> tokio::process::Command {
    let mut words = command.split_whitespace();
    let mut c = tokio::process::Command::new(words.next().unwrap());
    c.args(words);
    c
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_shipote"));
    let sshd = sshd::Sshd::start(bin);
    let d = common::BenchDaemon::start();
    let socket = d.socket.display().to_string();
    let plain = sshd.ssh_command();
    // The size of a Ping and its Pong on the wire, for the echo floor.
    let frame = shipote_protocol::frame::encode(&Request::Ping).unwrap();

    // 1. Round trips on an open connection.
    let mut echo = ssh(&plain)
        .args(["-T", "testhost", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut to = echo.stdin.take().unwrap();
    let mut from = echo.stdout.take().unwrap();
    let mut back = vec![0u8; frame.len()];
    let mut raw = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + 100 {
        let t = Instant::now();
        to.write_all(&frame).await.unwrap();
        from.read_exact(&mut back).await.unwrap();
        if i >= 100 {
            raw.push(t.elapsed());
        }
    }
    let mut bridge = ssh(&plain)
        .args(["-T", "testhost"])
        .arg(format!("shipote --socket '{socket}' system dial-stdio"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut c = Client::from_halves(bridge.stdout.take().unwrap(), bridge.stdin.take().unwrap());
    let mut pings = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + 100 {
        let t = Instant::now();
        assert_eq!(c.call(&Request::Ping).await.unwrap(), Response::Pong);
        if i >= 100 {
            pings.push(t.elapsed());
        }
    }
    let (raw, ping) = (median(raw), median(pings));
    println!("through ssh on loopback, {ROUND_TRIPS} round trips on an open connection, p50:");
    println!(
        "  raw echo of {} bytes (ssh ... cat)   {:>9.1} µs",
        frame.len(),
        raw.as_secs_f64() * 1e6
    );
    println!(
        "  Ping through dial-stdio                {:>9.1} µs",
        ping.as_secs_f64() * 1e6
    );
    println!(
        "  ratio {:.2}x (goal at most 1.5x)",
        ping.as_secs_f64() / raw.as_secs_f64()
    );

    // 2. Whole commands, alternating, without and with a ControlMaster.
    let control = sshd.dir.path().join("control_config");
    std::fs::write(
        &control,
        format!(
            "Include {}\nHost testhost\n  ControlMaster auto\n  ControlPath {}/cm-%C\n  ControlPersist 60\n",
            sshd.dir.path().join("ssh_config").display(),
            sshd.dir.path().display()
        ),
    )
    .unwrap();
    for (name, ssh_command) in [
        ("plain ssh", plain.clone()),
        (
            "with a ControlMaster",
            format!("ssh -F {}", control.display()),
        ),
    ] {
        let url = format!("ssh://testhost{socket}");
        let ours = || {
            Command::new(bin)
                .args(["--host", &url, "ws", "ls"])
                .env("SHIPOTE_SSH_COMMAND", &ssh_command)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let theirs = || {
            let mut words = ssh_command.split_whitespace();
            Command::new(words.next().unwrap())
                .args(words)
                .args(["-T", "testhost"])
                .arg(format!("shipote --socket '{socket}' ws ls"))
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        // Warm up (and open the master connection).
        assert!(ours().status.success());
        assert!(theirs().status.success());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..WHOLE_RUNS {
            let t = Instant::now();
            assert!(ours().status.success());
            a.push(t.elapsed());
            let t = Instant::now();
            assert!(theirs().status.success());
            b.push(t.elapsed());
        }
        let (a, b) = (median(a), median(b));
        println!("whole `ws ls`, {name}, median of {WHOLE_RUNS}:");
        println!(
            "  shipote --host ssh://testhost... ws ls  {:>8.1} ms",
            a.as_secs_f64() * 1e3
        );
        println!(
            "  ssh testhost shipote ws ls              {:>8.1} ms",
            b.as_secs_f64() * 1e3
        );
        println!(
            "  ratio {:.2}x (goal at most 1.2x)",
            a.as_secs_f64() / b.as_secs_f64()
        );
    }
}
