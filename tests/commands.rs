//! Commands in workspaces (issue #5, first part): placement, environment, exit
//! status, missing programs, logs. Real daemon, real processes, the cgroup
//! fallback of these hosts.

mod common;

use common::*;
use std::time::Duration;

fn setup(name: &str) -> (CgroupRoot, Daemon) {
    let root = CgroupRoot::new(name);
    let d = Daemon::start_cgroup(&root.0);
    assert!(d.cli(&["ws", "create", "w"]).status.success());
    (root, d)
}

#[test]
fn exit_codes_and_signals_are_recorded() {
    let (_root, d) = setup("exit");
    let ok = run(&d, "w", &["true"]);
    let three = run(&d, "w", &["sh", "-c", "exit 3"]);
    let killed = run(&d, "w", &["sh", "-c", "kill -9 $$"]);
    let c = wait_exit(&d, "w", &ok);
    assert_eq!(
        (c["exit_status"].clone(), c["exit_signal"].clone()),
        (0.into(), serde_json::Value::Null)
    );
    assert_eq!(wait_exit(&d, "w", &three)["exit_status"], 3);
    let c = wait_exit(&d, "w", &killed);
    assert_eq!(c["exit_signal"], 9, "{c}");
    assert_eq!(c["exit_status"], serde_json::Value::Null);
    let table = stdout(&d.cli(&["ps", "w"]));
    assert!(
        table.contains("exited 3") && table.contains("killed by SIGKILL"),
        "{table}"
    );
}

#[test]
fn missing_or_non_executable_program_is_a_clear_error() {
    let (_root, d) = setup("missing");
    let o = d.cli(&["run", "w", "--", "no-such-program-xyz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("\"no-such-program-xyz\" not found in PATH"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&["run", "w", "--", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/etc/passwd is not an executable file"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&["run", "w", "--cwd", "/no/such/dir", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("working directory /no/such/dir"),
        "{}",
        stderr(&o)
    );
    // Nothing was left behind, and the workspace still works.
    assert_eq!(json(&d.cli(&["--json", "ps", "w"])), serde_json::json!([]));
    let id = run(&d, "w", &["true"]);
    assert_eq!(wait_exit(&d, "w", &id)["exit_status"], 0);
}

#[test]
fn command_runs_in_its_own_leaf_before_its_first_instruction() {
    let (root, d) = setup("placement");
    // The very first thing the program does is read its own cgroup.
    let id = run(&d, "w", &["cat", "/proc/self/cgroup"]);
    wait_exit(&d, "w", &id);
    let out = logs(&d, "w", &id, &[]);
    let line = out
        .lines()
        .find(|l| l.starts_with("0::"))
        .expect("cgroup v2 line");
    let root_name = root.0.file_name().unwrap().to_str().unwrap();
    assert!(line.contains(&format!("/{root_name}/shipote-w-")), "{line}");
    assert!(line.ends_with(&format!("/cmd-{id}")), "{line}");
}

#[test]
fn back_to_back_commands_get_their_own_leaves_and_list_in_start_order() {
    // The daemon makes each workspace's next leaf ahead of time: whether a
    // command got that spare or a fresh one, it is alone in `cmd-<its id>`
    // and ids follow start order.
    let (_root, d) = setup("spare");
    let ids: Vec<String> = (0..6)
        .map(|_| run(&d, "w", &["cat", "/proc/self/cgroup"]))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids are unique and in start order");
    let listed: Vec<String> = json(&d.cli(&["--json", "ps", "w"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ids);
    for id in &ids {
        wait_exit(&d, "w", id);
        let out = logs(&d, "w", id, &[]);
        let line = out.lines().find(|l| l.starts_with("0::")).unwrap();
        assert!(line.ends_with(&format!("/cmd-{id}")), "{id}: {line}");
    }
}

#[test]
fn environment_is_clean_plus_what_was_asked() {
    let (_root, d) = setup("env");
    let id = run(&d, "w", &["env"]);
    let _ = d.cli(&[
        "run",
        "w",
        "--env",
        "GREETING=hello world",
        "--cwd",
        "/tmp",
        "--",
        "sh",
        "-c",
        "echo \"$GREETING\" $PWD",
    ]);
    wait_exit(&d, "w", &id);
    let env = logs(&d, "w", &id, &["--stdout"]);
    for leak in [
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "SHIPOTE_LOG",
        "WATCHDOG_USEC",
        "JOURNAL_STREAM",
    ] {
        assert!(!env.contains(leak), "{leak} leaked:\n{env}");
    }
    for want in ["PATH=", "HOME=", "LANG="] {
        assert!(
            env.lines().any(|l| l.starts_with(want)),
            "{want} missing:\n{env}"
        );
    }
    let items = json(&d.cli(&["--json", "ps", "w"]));
    let greet = items[1]["id"].as_str().unwrap().to_owned();
    wait_exit(&d, "w", &greet);
    assert_eq!(logs(&d, "w", &greet, &[]), "hello world /tmp\n");
}

#[test]
fn both_streams_in_arrival_order_and_each_alone() {
    let (_root, d) = setup("order");
    let id = run(
        &d,
        "w",
        &[
            "sh",
            "-c",
            "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three",
        ],
    );
    wait_exit(&d, "w", &id);
    assert_eq!(logs(&d, "w", &id, &[]), "one\ntwo\nthree\n");
    assert_eq!(logs(&d, "w", &id, &["--stdout"]), "one\nthree\n");
    assert_eq!(logs(&d, "w", &id, &["--stderr"]), "two\n");
    assert_eq!(logs(&d, "w", &id, &["-c", "6"]), "three\n");
    assert_eq!(
        logs(&d, "w", &id, &["--tail", "2"]),
        "two\nthree\n",
        "lines, as docker logs --tail"
    );
}

#[test]
fn huge_output_stays_bounded_and_does_not_block_the_command() {
    let (_root, d) = setup("huge");
    let start = std::time::Instant::now();
    let id = run(&d, "w", &["head", "-c", "100000000", "/dev/zero"]);
    let c = wait_exit(&d, "w", &id);
    assert_eq!(c["exit_status"], 0);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    // At most two generations of 1 MiB of log and 256 KiB of index; the
    // full previous generation at least.
    let kept = c["log_bytes"].as_u64().unwrap();
    assert!(kept <= 2 * ((1 << 20) + (256 << 10)), "{kept} bytes kept");
    assert!(kept > 1 << 20, "{kept} bytes kept");
    // The newest bytes are there, as many as asked.
    let o = d.cli(&["logs", "w", &id, "--bytes", "900K"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), 900 << 10);
    assert!(o.stdout.iter().all(|&b| b == 0));
}

#[test]
fn stopping_the_workspace_ends_its_commands_and_their_daemonized_children() {
    let (root, d) = setup("stop");
    let id = run(
        &d,
        "w",
        &["sh", "-c", "(setsid sleep 300 &); exec sleep 300"],
    );
    let ws_dir = std::fs::read_dir(&root.0)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("shipote-w-")
        })
        .expect("the workspace's cgroup");
    let leaf = ws_dir.join(format!("cmd-{id}"));
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(leaf.join("cgroup.procs"))
            .map(|t| t.lines().count() == 2)
            .unwrap_or(false)
    }));
    assert_eq!(json(&d.cli(&["--json", "health"]))["alive_commands"], 1);
    let v = json(&d.cli(&["--json", "ws", "stop", "w"]));
    assert_eq!(v["reaped"], 2, "{v}");
    assert!(!ws_dir.exists());
    let o = d.cli(&["run", "w", "--", "true"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a stopped workspace takes no commands"
    );
}

fn setup_with_backoff(name: &str, backoff_ms: &str) -> (CgroupRoot, Daemon) {
    let root = CgroupRoot::new(name);
    let dir = root.0.clone();
    let backoff = backoff_ms.to_owned();
    let d = Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"]).arg(&dir);
        cmd.args(["--restart-backoff-ms", &backoff]);
    });
    assert!(d.cli(&["ws", "create", "w"]).status.success());
    (root, d)
}

#[test]
fn crash_loop_stops_after_five_restarts_with_the_reason() {
    let (_root, d) = setup_with_backoff("crashloop", "20");
    let id = json(&d.cli(&[
        "--json",
        "run",
        "w",
        "--restart",
        "--",
        "sh",
        "-c",
        "echo run; exit 1",
    ]))["command_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = serde_json::Value::Null;
    assert!(
        eventually(Duration::from_secs(20), || {
            c = command(&d, "w", &id);
            c["failure"].is_string()
        }),
        "no crash-loop verdict: {c}"
    );
    assert!(
        c["failure"]
            .as_str()
            .unwrap()
            .contains("crash loop: failed 6 times in a row"),
        "{c}"
    );
    assert_eq!(c["restarts"], 5);
    assert_eq!(c["alive"], false);
    assert_eq!(c["exit_status"], 1);
    // The logs continue across restarts.
    assert_eq!(logs(&d, "w", &id, &[]), "run\n".repeat(6));
    assert!(stdout(&d.cli(&["ps", "w"])).contains("exited 1"));
}

#[test]
fn a_clean_exit_is_not_restarted() {
    let (_root, d) = setup_with_backoff("clean", "20");
    let id = json(&d.cli(&["--json", "run", "w", "--restart", "--", "true"]))["command_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = wait_exit(&d, "w", &id);
    // Give a wrongly scheduled restart every chance to happen.
    std::thread::sleep(Duration::from_millis(300));
    let c2 = command(&d, "w", &id);
    assert_eq!(
        (c["restarts"].clone(), c2["restarts"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(c2["alive"], false);
    assert_eq!(c2["failure"], serde_json::Value::Null);
}

#[test]
fn stopping_the_workspace_during_a_backoff_cancels_the_restart() {
    let (_root, d) = setup_with_backoff("backoffstop", "1500");
    let marker = tempfile::NamedTempFile::new().unwrap();
    let script = format!("echo started >> {}; exit 1", marker.path().display());
    let id = json(&d.cli(&["--json", "run", "w", "--restart", "--", "sh", "-c", &script]))
        ["command_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // It failed once and waits 1.5 s to restart.
    assert!(eventually(
        Duration::from_secs(5),
        || std::fs::read_to_string(marker.path()).unwrap_or_default() == "started\n"
    ));
    assert_eq!(
        command(&d, "w", &id)["alive"],
        true,
        "waiting to restart counts as alive"
    );
    assert!(d.cli(&["ws", "stop", "w"]).status.success());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        std::fs::read_to_string(marker.path()).unwrap(),
        "started\n",
        "restarted after the stop"
    );
    assert!(d.log().contains("command exited"), "{}", d.log());
}

#[test]
fn logs_follow_shows_live_output_and_ends_when_the_command_does() {
    use std::io::{BufRead, BufReader, Read};
    let (_root, d) = setup("follow");
    let gate = d.dir.path().join("gate");
    let script = format!(
        "echo a; echo e >&2; while [ ! -e {} ]; do sleep 0.02; done; echo b; exit 3",
        gate.display()
    );
    let id = run(&d, "w", &["sh", "-c", &script]);
    let mut follower = std::process::Command::new(cli_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["logs", "-f", "--stdout", "w", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(follower.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "a\n", "the tail comes first");
    // Output written after the follower started reaches it.
    std::fs::write(&gate, "").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "b\n", "stdout only, then the end");
    assert!(follower.wait().unwrap().success());
    assert_eq!(wait_exit(&d, "w", &id)["exit_status"], 3);
}

#[test]
fn exit_statuses_and_logs_outlive_a_workspace_stop() {
    let (_root, d) = setup("outlive");
    let ws_id = json(&d.cli(&["--json", "ws", "ls"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = run(&d, "w", &["sh", "-c", "echo done; exit 7"]);
    wait_exit(&d, "w", &done);
    let sleeper = run(&d, "w", &["sh", "-c", "echo waiting; exec sleep 300"]);
    assert!(eventually(Duration::from_secs(5), || logs(
        &d,
        "w",
        &sleeper,
        &[]
    ) == "waiting\n"));
    assert!(d.cli(&["ws", "stop", "w"]).status.success());
    // The workspace is gone from the list but its commands can be asked
    // about by its id.
    assert_eq!(json(&d.cli(&["--json", "ws", "ls"])), serde_json::json!([]));
    let killed = wait_exit(&d, &ws_id, &sleeper);
    assert_eq!(killed["exit_signal"], 15, "{killed}");
    assert_eq!(killed["failure"], "ended by a workspace stop");
    let clean = command(&d, &ws_id, &done);
    assert_eq!(clean["exit_status"], 7);
    assert_eq!(clean["failure"], serde_json::Value::Null);
    assert_eq!(logs(&d, &ws_id, &sleeper, &[]), "waiting\n");
}

#[test]
fn a_command_starts_with_no_signal_ignored_or_blocked() {
    // The daemon ignores SIGPIPE (as every Rust program) and blocks signals
    // around the spawn; none of that may reach the command.
    let (_root, d) = setup("sigs");
    let out = run_to_end(
        &d,
        "w",
        &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
    );
    assert_eq!(
        out,
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
}

#[test]
fn no_descriptor_of_the_daemon_reaches_a_command() {
    use std::os::unix::process::CommandExt;
    // The daemon inherits a descriptor without close-on-exec, as a careless
    // parent would leave it: its commands must still see only 0, 1, 2.
    let root = CgroupRoot::new("fds");
    let root_dir = root.0.clone();
    let d = Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"])
            .arg(&root_dir);
        // SAFETY: dup2 is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::dup2(2, 77);
                Ok(())
            });
        }
    });
    assert!(d.cli(&["ws", "create", "w"]).status.success());
    let out = run_to_end(&d, "w", &["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]);
    assert_eq!(out, "0 1 2 3 ");
}

/// A NUL byte in an argument is named as such, not as a bad environment
/// variable; the workspace keeps working.
#[test]
fn a_nul_in_an_argument_is_named() {
    use shipote_protocol::{client::Client, ErrorCode, Request, Response};
    let (_root, d) = setup("nul");
    let ws = first_workspace(&d);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(async {
        let mut c = Client::connect(&d.socket).await.unwrap();
        c.call(&Request::Run {
            workspace: ws,
            exec: "echo".into(),
            argv: vec!["fine".into(), "bad\0tail".into()],
            envp: vec![],
            restart_on_failure: false,
            cwd: None,
        })
        .await
        .unwrap()
    });
    match r {
        Response::Error { code, message } => {
            assert_ne!(code, ErrorCode::Internal, "{message}");
            assert!(
                message.contains("argument 2 \"bad\" holds a NUL byte"),
                "{message}"
            );
            assert!(!message.contains("environment"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let id = run(&d, "w", &["true"]);
    assert_eq!(wait_exit(&d, "w", &id)["exit_status"], 0);
}

/// The daemon raises its own descriptor limit to the hard one; its commands
/// start with the limit it was given.
#[test]
fn the_daemon_raises_its_descriptor_limit_and_commands_keep_the_original() {
    let (_root, d) = setup("nofile");
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums, [hard, hard], "{line}");
    let out = run_to_end(&d, "w", &["sh", "-c", "ulimit -Sn"]);
    assert_eq!(out.trim(), soft.to_string());
}

/// A workspace keeps its last 1,000 ended commands (and their logs); older
/// ones go, so months of commands do not grow the daemon without bound.
#[test]
fn a_workspace_keeps_its_last_thousand_ended_commands() {
    use shipote_protocol::{client::Client, Request, Response};
    let (_root, d) = setup("kept");
    let ws = first_workspace(&d);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (first, items) = rt.block_on(async {
        let mut c = Client::connect(&d.socket).await.unwrap();
        let mut first = None;
        for _ in 0..1010 {
            match c
                .call(&Request::Run {
                    workspace: ws,
                    exec: "true".into(),
                    argv: vec![],
                    envp: vec![],
                    restart_on_failure: false,
                    cwd: None,
                })
                .await
                .unwrap()
            {
                Response::RunStarted { command_id, .. } => {
                    first.get_or_insert(command_id);
                }
                other => panic!("{other:?}"),
            }
        }
        let mut items = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            match c
                .call(&Request::CommandList { workspace: ws })
                .await
                .unwrap()
            {
                Response::CommandList { items: i } => items = i,
                other => panic!("{other:?}"),
            }
            if items.iter().all(|i| !i.alive) && items.len() <= 1000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (first.unwrap(), items)
    });
    assert_eq!(items.len(), 1000);
    assert!(items.iter().all(|i| i.id != first), "the oldest went first");
    let o = d.cli(&["logs", "w", &first.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("has no command"), "{}", stderr(&o));
}

/// When a workspace's logs pass 64 MiB, the oldest ended commands' logs go
/// (never a running one's), and `ps` and `logs` say so.
#[test]
fn the_log_budget_removes_the_oldest_ended_logs_and_says_so() {
    let (_root, d) = setup("budget");
    let live = run(
        &d,
        "w",
        &["sh", "-c", "head -c 1000000 /dev/zero; exec sleep 300"],
    );
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(run(&d, "w", &["head", "-c", "3000000", "/dev/zero"]));
    }
    for id in &ids {
        wait_exit(&d, "w", id);
    }
    let kept = || -> u64 {
        json(&d.cli(&["--json", "ps", "w"]))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["log_bytes"].as_u64().unwrap())
            .sum()
    };
    assert!(
        eventually(Duration::from_secs(15), || kept() <= 64 << 20),
        "kept {} bytes",
        kept()
    );
    let first = command(&d, "w", &ids[0]);
    assert_eq!(first["log_bytes"], 0);
    assert!(
        first["failure"]
            .as_str()
            .unwrap_or("")
            .contains("output removed to keep within the log budget"),
        "{first}"
    );
    let o = d.cli(&["logs", "w", &ids[0]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("removed to keep the logs within their budget"),
        "{}",
        stderr(&o)
    );
    // The newest ended one and the running one keep theirs.
    assert!(
        command(&d, "w", ids.last().unwrap())["log_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(command(&d, "w", &live)["log_bytes"].as_u64().unwrap() > 0);
}

/// Output that cannot be kept (here its log file cannot be made; on a full
/// disk the same) is never silent: `ps` NOTE and `logs` say how much was lost,
/// and the command still ran to its end.
#[test]
fn output_that_cannot_be_kept_is_reported() {
    let (root, d) = setup("lost");
    let ws = json(&d.cli(&["--json", "ws", "ls"]))[0].clone();
    let (ws_id, unit) = (ws["id"].as_str().unwrap(), ws["unit"].as_str().unwrap());
    // The next command takes the workspace's spare leaf's id: a directory in
    // the way of its log file makes the log unwritable.
    let spare = std::fs::read_dir(root.0.join(unit))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("cmd-")
                .map(str::to_owned)
        })
        .next()
        .expect("a spare leaf");
    let logs_dir = d.dir.path().join("state/logs").join(ws_id);
    std::fs::create_dir_all(logs_dir.join(format!("{spare}.log"))).unwrap();
    let id = run(&d, "w", &["echo", "hello"]);
    assert_eq!(id, spare);
    let c = wait_exit(&d, "w", &id);
    assert_eq!(c["exit_status"], 0);
    assert!(
        eventually(Duration::from_secs(5), || command(&d, "w", &id)["failure"]
            .as_str()
            .unwrap_or("")
            .contains("6 bytes of output not kept")),
        "{}",
        command(&d, "w", &id)
    );
    let table = stdout(&d.cli(&["ps", "w"]));
    assert!(table.contains("6 bytes of output not kept"), "{table}");
    let o = d.cli(&["logs", "w", &id]);
    assert!(
        stderr(&o).contains("note: 6 bytes of output not kept"),
        "{}",
        stderr(&o)
    );
}

/// A command is reported ended only once its output is in its log: whoever
/// sees it ended (`ps`, a script waiting on it) reads all of it.
#[test]
fn an_ended_command_has_all_its_output_in_its_log() {
    let (_root, d) = setup("drained");
    for _ in 0..5 {
        let id = run(
            &d,
            "w",
            &["sh", "-c", "head -c 600000 /dev/zero; echo; echo last line"],
        );
        let c = wait_exit(&d, "w", &id);
        assert!(c["log_bytes"].as_u64().unwrap() >= 600_011, "{c}");
        let tail = logs(&d, "w", &id, &["-c", "10"]);
        assert!(tail.ends_with("last line\n"), "{tail:?}");
    }
}
