//! `shipote top`'s own CPU with 100 workspaces at a 1 s refresh (issue 19:
//! below 2% of a core), beside procps `top -d 1` (the peer: a live view
//! people already leave open) in the same run, both in 80x24 tmux windows
//! on a private tmux server. Each of the 100 workspaces runs one command;
//! the daemon's CPU over the same windows is printed too (the Top
//! request's cost on its side).
//!
//! `cargo bench --bench top_cpu` (needs tmux). CPU is utime+stime from
//! /proc/PID/stat over 3 windows of 10 s; medians printed.

mod common;

use shipote_protocol::client::Client;
use shipote_protocol::Request;
use std::process::Command;
use std::time::{Duration, Instant};

const WORKSPACES: usize = 100;
const WINDOW: Duration = Duration::from_secs(10);
const WINDOWS: usize = 3;

/// CPU seconds (user + system) a process used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process alive");
    let rest = stat.rsplit_once(')').expect("stat").1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), counted from after the name.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Starts `command` in a new 80x24 window; returns the pid it runs as.
    fn window(&self, name: &str, command: &str) -> u32 {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "80",
            "-y",
            "24",
            command,
        ]);
        self.run(&["list-panes", "-t", name, "-F", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid")
    }

    fn screen(&self, name: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", name])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("top_cpu: tmux is not installed; apt-get install tmux");
        std::process::exit(2);
    }
    let d = common::BenchDaemon::start();
    let mut c = Client::connect(&d.socket).await.unwrap();
    for i in 0..WORKSPACES {
        let ws = common::create_workspace(&mut c, &format!("w{i:03}")).await;
        let r = c
            .call(&Request::Run {
                workspace: ws,
                exec: "sleep".into(),
                argv: vec!["600".into()],
                envp: vec![],
                restart_on_failure: false,
                cwd: None,
            })
            .await
            .unwrap();
        assert!(
            matches!(r, shipote_protocol::Response::RunStarted { .. }),
            "{r:?}"
        );
    }
    let tmux = Tmux(format!("shipote-bench-{}", std::process::id()));
    let ours = tmux.window(
        "ours",
        &format!(
            "exec {} --socket {} top --interval 1s",
            env!("CARGO_BIN_EXE_shipote"),
            d.socket.display()
        ),
    );
    let peer = tmux.window("peer", "exec top -d 1");
    // Ready when it shows every workspace (polled, not slept for).
    let t0 = Instant::now();
    while !tmux
        .screen("ours")
        .contains(&format!("{WORKSPACES} workspaces"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{}",
            tmux.screen("ours")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "shipote top vs procps top -d 1, 80x24 tmux windows, {WORKSPACES} workspaces with a command each, backend {}",
        d.backend()
    );
    println!(
        "{:>8} {:>14} {:>14} {:>14}",
        "window", "shipote top", "top -d 1", "shipoted"
    );
    let (mut o, mut p, mut s) = (Vec::new(), Vec::new(), Vec::new());
    for w in 0..WINDOWS {
        let before = (cpu_seconds(ours), cpu_seconds(peer), cpu_seconds(d.pid()));
        let t = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let secs = t.elapsed().as_secs_f64();
        let pct = |now: f64, then: f64| (now - then) * 100.0 / secs;
        o.push(pct(cpu_seconds(ours), before.0));
        p.push(pct(cpu_seconds(peer), before.1));
        s.push(pct(cpu_seconds(d.pid()), before.2));
        println!(
            "{:>8} {:>13.2}% {:>13.2}% {:>13.2}%",
            w + 1,
            o[w],
            p[w],
            s[w]
        );
    }
    let (o, p, s) = (median(o), median(p), median(s));
    println!(
        "median   {o:>13.2}% {p:>13.2}% {s:>13.2}%   (% of one core; goal for shipote top: below 2%)"
    );
    println!(
        "ratio shipote top / top -d 1: {:.2}x",
        if p > 0.0 { o / p } else { f64::NAN }
    );
}
