//! Where the run latency goes on a cgroup host: shipote's spawn of /bin/true
//! (clone3 CLONE_VM|CLONE_VFORK, returning once exec succeeded) with no
//! cgroup, into the same cgroup leaf every time, and into a fresh leaf every
//! time (what `Run` does: one leaf per command), beside std's spawn (the
//! floor), 200 runs each, medians and p90 in the same run.
//!
//! `cargo bench --bench spawn_cgroup` (as root, with a writable cgroup2 mount;
//! it says so and stops otherwise).

#[path = "common/mod.rs"]
mod common;

use shipote::process::spawn::{spawn, Launch, Program};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 200;

fn launch(cgroup: Option<&Path>) -> Duration {
    let (_r1, w1) = nix::unistd::pipe().unwrap();
    let (_r2, w2) = nix::unistd::pipe().unwrap();
    let t = Instant::now();
    let child = spawn(Launch {
        program: Program {
            program: "/bin/true".into(),
            arg0: "true".into(),
            args: vec![],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            cgroup: cgroup.map(Path::to_owned),
        },
        stdin: None,
        stdout: w1,
        stderr: w2,
        extra_fds: vec![],
        namespaces: None,
    })
    .unwrap();
    let d = t.elapsed();
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(child.pid(), std::ptr::null_mut(), 0) };
    d
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(v[v.len() / 2]), us(v[v.len() * 9 / 10]))
}

fn main() {
    let Some(mount) = common::cgroup2_mount() else {
        eprintln!("no cgroup2 mount here; run on a host with cgroup v2");
        std::process::exit(1);
    };
    let root = mount.join(format!("shipote-spawn-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&root) {
        eprintln!(
            "cannot create {}: {e}; run as root (or in a delegated subtree)",
            root.display()
        );
        std::process::exit(1);
    }
    let same = root.join("same");
    std::fs::create_dir(&same).unwrap();
    let (mut floor, mut none, mut reuse, mut fresh) = (vec![], vec![], vec![], vec![]);
    for i in 0..RUNS {
        let t = Instant::now();
        let mut c = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        floor.push(t.elapsed());
        c.wait().unwrap();
        none.push(launch(None));
        reuse.push(launch(Some(&same)));
        let leaf = root.join(format!("c{i}"));
        std::fs::create_dir(&leaf).unwrap();
        fresh.push(launch(Some(&leaf)));
        std::fs::remove_dir(&leaf).unwrap();
    }
    std::fs::remove_dir(&same).unwrap();
    std::fs::remove_dir(&root).unwrap();
    let f = stats(floor);
    println!("spawn /bin/true, {RUNS} runs each, interleaved");
    println!("{:<36} {:>8} {:>8} {:>7}", "", "p50 µs", "p90 µs", "p50 x");
    for (name, s) in [
        ("std spawn (floor)", f),
        ("shipote spawn, no cgroup", stats(none)),
        ("shipote spawn, same leaf each time", stats(reuse)),
        ("shipote spawn, fresh leaf each time", stats(fresh)),
    ] {
        println!("{:<36} {:>8.0} {:>8.0} {:>6.2}x", name, s.0, s.1, s.0 / f.0);
    }
}
