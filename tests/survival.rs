//! A daemon restart or crash loses nothing of a kept workspace (issue 16):
//! its commands run on, never signalled; their output waits in their pipes
//! (held open by the workspace's keeper) and reaches their logs once the
//! next daemon is up, every line once and in order; a command that ends
//! while no daemon runs is reported with its real exit status. The real
//! binary, the cgroup backend of these hosts.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

/// A kept workspace `keep` on a fresh daemon.
fn setup(name: &str) -> (CgroupRoot, Daemon, tempfile::TempDir) {
    let root = CgroupRoot::new(name);
    let d = Daemon::start_cgroup(&root.0);
    let o = d.cli(&["ws", "create", "keep", "--keep-on-exit"]);
    assert!(o.status.success(), "{}", stderr(&o));
    (root, d, tempfile::tempdir().unwrap())
}

/// A counter: prints 1, 2, 3, ... (one line every few ms) and writes the
/// last number to `progress`, until `stop` exists; then `end`, exit 7.
fn counter(dir: &Path) -> Vec<String> {
    let script = format!(
        "i=0; while [ ! -e {d}/stop ]; do i=$((i+1)); echo $i; echo $i > {d}/progress.tmp; \
         mv {d}/progress.tmp {d}/progress; sleep 0.005; done; echo end; exit 7",
        d = dir.display()
    );
    vec!["sh".into(), "-c".into(), script]
}

fn progress(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("progress"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the counter has counted `more` lines past now.
fn let_it_count(dir: &Path, more: u64) {
    let target = progress(dir) + more;
    assert!(
        eventually(Duration::from_secs(20), || progress(dir) >= target),
        "the counter stopped at {} (wanted {target})",
        progress(dir)
    );
}

/// Alive and not a zombie.
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_owned()))
        .is_some_and(|r| !r.starts_with('Z'))
}

/// Asserts the log is exactly 1..=n, then `end`.
fn assert_counted(log: &str) {
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"end"),
        "tail: {:?}",
        &lines[lines.len().saturating_sub(5)..]
    );
    for (i, l) in lines[..lines.len() - 1].iter().enumerate() {
        assert_eq!(
            *l,
            (i + 1).to_string(),
            "line {} (around: {:?})",
            i + 1,
            &lines[i.saturating_sub(3)..(i + 3).min(lines.len())]
        );
    }
    assert!(lines.len() > 10, "{} lines", lines.len());
}

/// A pipeline file in `dir`: `gen` counts (1, 2, 3, ... with its progress
/// in `dir`, like [`counter`] but without end) into each of `consumers`, a
/// `cat` each. Returns the file's path.
fn counting_pipeline(dir: &Path, label: &str, consumers: &[&str]) -> String {
    let script = format!(
        "i=0; while :; do i=$((i+1)); echo $i; echo $i > {d}/progress.tmp; \
         mv {d}/progress.tmp {d}/progress; sleep 0.005; done",
        d = dir.display()
    );
    let mut toml = format!(
        "workspace = \"keep\"\nlabel = \"{label}\"\n\
         [[command]]\nlabel = \"gen\"\nexec = \"sh\"\nargv = [\"-c\", {script:?}]\n"
    );
    for c in consumers {
        toml += &format!("[[command]]\nlabel = \"{c}\"\nexec = \"cat\"\n");
    }
    for c in consumers {
        toml += &format!("[[edge]]\nfrom = \"gen\"\nto = \"{c}\"\n");
    }
    let file = dir.join(format!("{label}.toml"));
    std::fs::write(&file, toml).unwrap();
    file.to_str().unwrap().to_owned()
}

/// Once `consumer` (a `cat` of the counting pipeline) has ended: its log is
/// exactly 1..=n, with more than `at_least` lines.
fn assert_consumer_counted(d: &Daemon, consumer: &str, at_least: usize) {
    let ps = json(&d.cli(&["--json", "ps", "keep"]));
    let c = ps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == consumer)
        .cloned()
        .unwrap_or_else(|| panic!("no {consumer} in {ps}"));
    let id = c["id"].as_str().unwrap();
    wait_exit(d, "keep", id);
    let log = logs(d, "keep", id, &["--bytes", "10M"]);
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > at_least, "{consumer}: {} lines", lines.len());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, (i + 1).to_string(), "{consumer}: line {}", i + 1);
    }
}

#[test]
fn a_kept_command_outlives_a_daemon_stop_and_keeps_every_line() {
    let (root, mut d, dir) = setup("surv-stop");
    let args = counter(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = run(&d, "keep", &args);
    let_it_count(dir.path(), 20);
    let before = command(&d, "keep", &id);
    let pid = before["pid"].as_u64().unwrap();
    assert!(d.stop().success());
    // No daemon: it goes on counting (its pipe holds the lines).
    let_it_count(dir.path(), 50);
    assert!(running(pid), "the command was ended with the daemon");
    let d2 = successor(&d, &root);
    let after = command(&d2, "keep", &id);
    assert_eq!(after["pid"], before["pid"]);
    assert_eq!(after["label"], before["label"]);
    assert_eq!(after["alive"], true);
    let_it_count(dir.path(), 20);
    std::fs::write(dir.path().join("stop"), "").unwrap();
    let ended = wait_exit(&d2, "keep", &id);
    assert_eq!(ended["exit_status"], 7, "{ended}");
    assert_counted(&logs(&d2, "keep", &id, &["--bytes", "10M"]));
}

#[test]
fn a_command_that_ends_while_no_daemon_runs_is_reported_with_its_status() {
    let (root, mut d, dir) = setup("surv-down");
    let go = dir.path().join("go");
    let script = format!(
        "echo before; while [ ! -e {} ]; do sleep 0.01; done; echo after; exit 7",
        go.display()
    );
    let id = run(&d, "keep", &["sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(10), || logs(
        &d,
        "keep",
        &id,
        &[]
    ) == "before\n"));
    let pid = command(&d, "keep", &id)["pid"].as_u64().unwrap();
    assert!(d.stop().success());
    std::fs::write(&go, "").unwrap();
    // Reaped by its keeper, not left a zombie.
    assert!(eventually(Duration::from_secs(10), || !Path::new(
        &format!("/proc/{pid}")
    )
    .exists()));
    let d2 = successor(&d, &root);
    let ended = wait_exit(&d2, "keep", &id);
    assert_eq!(ended["exit_status"], 7, "{ended}");
    assert_eq!(ended["alive"], false);
    assert_eq!(logs(&d2, "keep", &id, &[]), "before\nafter\n");
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let (root, d, dir) = setup("surv-kill");
    let args = counter(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let counter_id = run(&d, "keep", &args);
    let mut short: Vec<(String, u64)> = Vec::new();
    let mut current = d;
    let mut first: Option<Daemon> = None;
    for round in 0..50u64 {
        // A short command starts, writes and exits around the crash.
        let id = run(
            &current,
            "keep",
            &[
                "sh",
                "-c",
                &format!("echo round {round}; exit {}", round % 5),
            ],
        );
        short.push((id, round));
        // A moment between 0 and ~40 ms, from the clock's low bits.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        std::thread::sleep(Duration::from_micros(u64::from(nanos % 40_000)));
        signal(current.child.id(), Signal::SIGKILL);
        current.wait_exit();
        let next = match &first {
            Some(f) => successor(f, &root),
            None => successor(&current, &root),
        };
        // The first daemon's directory holds the state: keep it.
        let old = std::mem::replace(&mut current, next);
        if first.is_none() {
            first = Some(old);
        }
        assert_eq!(
            command(&current, "keep", &counter_id)["alive"],
            true,
            "round {round}"
        );
    }
    std::fs::write(dir.path().join("stop"), "").unwrap();
    let ended = wait_exit(&current, "keep", &counter_id);
    assert_eq!(ended["exit_status"], 7, "{ended}");
    assert_counted(&logs(&current, "keep", &counter_id, &["--bytes", "10M"]));
    for (id, round) in short {
        let c = wait_exit(&current, "keep", &id);
        assert_eq!(c["exit_status"], round % 5, "round {round}: {c}");
        assert_eq!(logs(&current, "keep", &id, &[]), format!("round {round}\n"));
    }
}

#[test]
fn a_kept_pipeline_flows_on_and_can_be_stopped_by_the_next_daemon() {
    let (root, mut d, dir) = setup("surv-pipe");
    // A counter piped through `cat` (kernel pipe, no tap).
    let file = counting_pipeline(dir.path(), "count", &["copy"]);
    let v = json(&d.cli(&["--json", "pipeline", "run", &file]));
    let pipeline = v["pipeline"].as_str().unwrap().to_owned();
    let_it_count(dir.path(), 20);
    assert!(d.stop().success());
    let_it_count(dir.path(), 50);
    let d2 = successor(&d, &root);
    let_it_count(dir.path(), 20);
    // The next daemon knows the pipeline and stops it.
    let v = json(&d2.cli(&["--json", "pipeline", "stop", &pipeline]));
    // Both stages (and the counter's `sleep`, when caught).
    assert!(v["reaped"].as_u64().unwrap() >= 2, "{v}");
    assert_consumer_counted(&d2, "copy", 80);
}

#[test]
fn a_failure_while_no_daemon_runs_is_still_restarted() {
    let (root, mut d, dir) = setup("surv-restart");
    let p = dir.path().display();
    let script = format!(
        "echo run; if [ -e {p}/done ]; then echo second; exec sleep 300; fi; \
         while [ ! -e {p}/go ]; do sleep 0.01; done; touch {p}/done; exit 3"
    );
    let o = d.cli(&[
        "--json",
        "run",
        "--restart",
        "keep",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let id = json(&o)["command_id"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(10), || logs(
        &d,
        "keep",
        &id,
        &[]
    ) == "run\n"));
    assert!(d.stop().success());
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(eventually(Duration::from_secs(10), || dir
        .path()
        .join("done")
        .exists()));
    let d2 = successor(&d, &root);
    assert!(
        eventually(Duration::from_secs(20), || logs(&d2, "keep", &id, &[])
            == "run\nrun\nsecond\n"),
        "{:?}",
        logs(&d2, "keep", &id, &[])
    );
    let c = command(&d2, "keep", &id);
    assert_eq!(
        (c["alive"].clone(), c["restarts"].clone()),
        (true.into(), 1.into()),
        "{c}"
    );
}

#[test]
fn a_follower_rides_out_a_restart_and_misses_nothing() {
    let (root, mut d, dir) = setup("surv-follow");
    let args = counter(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = run(&d, "keep", &args);
    let follower = std::process::Command::new(cli_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["logs", "-f", "keep", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let_it_count(dir.path(), 20);
    assert!(d.stop().success());
    let_it_count(dir.path(), 50);
    // The next daemon on the same socket.
    let state = d.dir.path().join("state");
    let root_dir = root.0.clone();
    let socket = d.socket.clone();
    let next_dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(daemon_bin());
    cmd.arg("--socket")
        .arg(&socket)
        .args(["--backend", "cgroup", "--cgroup-root"])
        .arg(&root_dir)
        .arg("--state-dir")
        .arg(&state);
    let d2 = Daemon::spawn(next_dir, socket, cmd);
    let_it_count(dir.path(), 20);
    std::fs::write(dir.path().join("stop"), "").unwrap();
    wait_exit(&d2, "keep", &id);
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("following again from byte"),
        "{}",
        stderr(&out)
    );
    assert_counted(&stdout(&out));
}

#[test]
fn a_lost_or_corrupt_state_file_is_rebuilt_from_the_keepers() {
    let (root, mut d, dir) = setup("surv-state");
    // A second workspace with limits: its whole record comes back from its
    // keeper, not just a name.
    let o = d.cli(&[
        "ws",
        "create",
        "other",
        "--keep-on-exit",
        "--mem",
        "256M",
        "--tasks",
        "64",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let args = counter(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = run(&d, "keep", &args);
    let_it_count(dir.path(), 10);
    let described = json(&d.cli(&["--json", "ws", "quota", "other"]));
    let state = d.dir.path().join("state/workspaces.json");
    let check = |next: &Daemon, damage: &str| {
        let mut labels: Vec<String> = json(&next.cli(&["--json", "ws", "ls"]))
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["label"].as_str().unwrap().to_owned())
            .collect();
        labels.sort();
        assert_eq!(labels, ["keep", "other"], "{damage}");
        assert_eq!(
            json(&next.cli(&["--json", "ws", "quota", "other"])),
            described,
            "{damage}"
        );
        assert_eq!(command(next, "keep", &id)["alive"], true, "{damage}");
    };
    assert!(d.stop().success());
    std::fs::remove_file(&state).unwrap();
    let mut d2 = successor(&d, &root);
    check(&d2, "lost");
    let_it_count(dir.path(), 10);
    assert!(d2.stop().success());
    std::fs::write(&state, b"{ not json").unwrap();
    let d3 = successor(&d, &root);
    check(&d3, "corrupt");
    let aside = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("workspaces.json.corrupt-")
        });
    assert!(aside, "the corrupt file is set aside, not lost");
    std::fs::write(dir.path().join("stop"), "").unwrap();
    assert_eq!(wait_exit(&d3, "keep", &id)["exit_status"], 7);
    assert_counted(&logs(&d3, "keep", &id, &["--bytes", "10M"]));
}

#[test]
fn a_tapped_edge_comes_back_with_its_flow_socket_and_loses_nothing() {
    let (root, mut d, dir) = setup("surv-tap");
    let file = counting_pipeline(dir.path(), "tapped", &["copy"]);
    let v = json(&d.cli(&["--json", "pipeline", "run", "--tap", &file]));
    let pipeline = v["pipeline"].as_str().unwrap().to_owned();
    let_it_count(dir.path(), 20);
    let flows = |d: &Daemon| json(&d.cli(&["--json", "flow", "top", "--once"]));
    assert_eq!(flows(&d).as_array().unwrap().len(), 1);
    // kill -9: the tap dies mid-flight.
    signal(d.child.id(), Signal::SIGKILL);
    d.wait_exit();
    let_it_count(dir.path(), 30);
    let d2 = successor(&d, &root);
    let_it_count(dir.path(), 20);
    let after = flows(&d2);
    let socket = after[0]["socket"]
        .as_str()
        .expect("its flow socket is back")
        .to_owned();
    assert!(after[0]["bytes_total"].as_u64().unwrap() > 0, "{after}");
    // A new subscriber gets the stream.
    let mut sub = std::process::Command::new(cli_bin())
        .args(["flow", "cat", &socket])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    use std::io::Read;
    sub.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    let _ = sub.kill();
    let _ = sub.wait();
    let v = json(&d2.cli(&["--json", "pipeline", "stop", &pipeline]));
    assert!(v["reaped"].as_u64().unwrap() >= 2, "{v}");
    assert_consumer_counted(&d2, "copy", 60);
}

#[test]
fn after_a_restart_new_commands_join_the_namespaces_of_the_running_ones() {
    let root = CgroupRoot::new("surv-ns");
    let mut d = Daemon::start_cgroup(&root.0);
    let o = d.cli(&[
        "ws",
        "create",
        "boxed",
        "--keep-on-exit",
        "--private-tmp",
        "--network",
        "loopback",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A command that leaves a file in the workspace's private /tmp and
    // stays.
    let id = run(
        &d,
        "boxed",
        &[
            "sh",
            "-c",
            "echo kept-view > /tmp/view; echo ready; exec sleep 300",
        ],
    );
    assert!(eventually(Duration::from_secs(10), || logs(
        &d,
        "boxed",
        &id,
        &[]
    ) == "ready\n"));
    assert!(
        !Path::new("/tmp/view").exists()
            || std::fs::read_to_string("/tmp/view").unwrap() != "kept-view\n"
    );
    signal(d.child.id(), Signal::SIGKILL);
    d.wait_exit();
    let d2 = successor(&d, &root);
    // A new command sees the same private /tmp as the one still running.
    assert_eq!(
        run_to_end(&d2, "boxed", &["cat", "/tmp/view"]),
        "kept-view\n"
    );
    assert_eq!(command(&d2, "boxed", &id)["alive"], true);
}

#[test]
fn a_fan_out_flows_on_through_a_crash_to_every_consumer() {
    let (root, mut d, dir) = setup("surv-fan");
    let file = counting_pipeline(dir.path(), "fan", &["left", "right"]);
    let v = json(&d.cli(&["--json", "pipeline", "run", &file]));
    let pipeline = v["pipeline"].as_str().unwrap().to_owned();
    let_it_count(dir.path(), 20);
    signal(d.child.id(), Signal::SIGKILL);
    d.wait_exit();
    let_it_count(dir.path(), 30);
    let d2 = successor(&d, &root);
    let_it_count(dir.path(), 20);
    let v = json(&d2.cli(&["--json", "pipeline", "stop", &pipeline]));
    assert!(v["reaped"].as_u64().unwrap() >= 3, "{v}");
    for side in ["left", "right"] {
        assert_consumer_counted(&d2, side, 60);
    }
}

#[test]
fn a_tapped_edges_count_goes_on_across_a_restart() {
    let (root, mut d, dir) = setup("surv-count");
    let file = counting_pipeline(dir.path(), "counted", &["sink"]);
    let v = json(&d.cli(&["--json", "pipeline", "run", "--tap", &file]));
    let pipeline = v["pipeline"].as_str().unwrap().to_owned();
    let bytes = |d: &Daemon| {
        json(&d.cli(&["--json", "flow", "top", "--once"]))[0]["bytes_total"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(eventually(Duration::from_secs(10), || bytes(&d) >= 400));
    let before = bytes(&d);
    assert!(d.stop().success());
    let d2 = successor(&d, &root);
    let after = bytes(&d2);
    assert!(
        after >= before,
        "the count started again: {before} before, {after} after"
    );
    let v = json(&d2.cli(&["--json", "pipeline", "stop", &pipeline]));
    assert!(v["reaped"].as_u64().unwrap() >= 2, "{v}");
}

#[test]
fn keepers_sockets_go_with_their_workspaces() {
    let (root, mut d, _dir) = setup("surv-sock");
    let keepers = d.dir.path().join("state/keepers");
    let socks = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&keepers)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    assert_eq!(socks().len(), 1, "{:?}", socks());
    let o = d.cli(&["ws", "create", "gone", "--keep-on-exit"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(socks().len(), 2, "{:?}", socks());
    assert!(d.cli(&["ws", "stop", "gone"]).status.success());
    assert!(
        eventually(Duration::from_secs(5), || socks().len() == 1),
        "{:?}",
        socks()
    );
    // One left by a daemon that died (a spare, a workspace since gone) is
    // removed by the next one.
    std::fs::write(keepers.join("spare-01M8STALE.sock"), "").unwrap();
    assert!(d.stop().success());
    let _d2 = successor(&d, &root);
    assert_eq!(socks().len(), 1, "{:?}", socks());
    assert!(socks()[0].starts_with("shipote-keep-"), "{:?}", socks());
}

#[test]
fn a_command_started_by_the_previous_daemon_can_be_restarted_by_the_next() {
    let (root, mut d, _dir) = setup("surv-cmd-restart");
    // No restart policy: only its program, kept with it, lets the next
    // daemon start it again.
    let id = run(&d, "keep", &["sh", "-c", "echo run; exec sleep 300"]);
    assert!(eventually(Duration::from_secs(10), || logs(
        &d,
        "keep",
        &id,
        &[]
    ) == "run\n"));
    let before = command(&d, "keep", &id)["pid"].as_u64().unwrap();
    assert!(d.stop().success());
    let d2 = successor(&d, &root);
    let o = d2.cli(&["restart", "keep", &id]);
    assert!(o.status.success(), "{}\n{}", stderr(&o), d2.log());
    let after = command(&d2, "keep", &id);
    assert_eq!(after["alive"], true, "{after}");
    assert_ne!(after["pid"].as_u64(), Some(before));
    assert!(!running(before), "the old process was ended first");
    assert!(eventually(Duration::from_secs(10), || {
        logs(&d2, "keep", &id, &[]) == "run\nrun\n"
    }));
    assert!(d2
        .cli(&["stop", "keep", &id, "--grace", "0"])
        .status
        .success());
}
