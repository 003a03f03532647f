//! Run latency: request to RunStarted (sent once the command's exec succeeded,
//! inside its cgroup leaf) for 200 runs of /bin/true, beside a plain fork+exec
//! of /bin/true from this program (std's spawn also returns once exec
//! succeeded), in the same run.
//!
//! `cargo bench --bench run_latency` (as root on these hosts: the workspace
//! gets a cgroup under the cgroup2 mount; otherwise process groups).

use shipote_protocol::client::Client;
use shipote_protocol::{Request, Response, WorkspaceSpec};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 200;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
}

fn cgroup_root() -> Option<PathBuf> {
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|r| r.starts_with("cgroup2 "))
        })
        .map(|l| PathBuf::from(l.split_whitespace().nth(4).unwrap()))?;
    let dir = mount.join(format!("shipote-bench-{}", std::process::id()));
    std::fs::create_dir(&dir).ok().map(|_| dir)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let notify = dir.path().join("notify");
    let rx = UnixDatagram::bind(&notify).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let root = cgroup_root();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipoted"));
    cmd.arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    cmd.args(["--log-target", "stderr"])
        .env("SHIPOTE_LOG", "warn")
        .env("NOTIFY_SOCKET", &notify);
    match &root {
        Some(r) => cmd.args(["--backend", "cgroup", "--cgroup-root"]).arg(r),
        None => cmd.args(["--backend", "process-group"]),
    };
    let mut daemon = cmd.stdin(Stdio::null()).spawn().unwrap();
    let mut buf = [0u8; 512];
    loop {
        let n = rx.recv(&mut buf).expect("daemon ready");
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            break;
        }
    }

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
    println!(
        "run /bin/true, {RUNS} runs, backend {}",
        if root.is_some() {
            "cgroup"
        } else {
            "process-group"
        }
    );
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
    let _ = daemon.kill();
    let _ = daemon.wait();
    if let Some(r) = root {
        let _ = std::fs::remove_dir(r);
    }
}
