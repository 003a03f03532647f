//! One command's lifecycle (issue #19): `shipote stop WS CMD` and
//! `shipote kill WS CMD -s SIG`, against a real daemon on the cgroup
//! backend of these hosts.

mod common;

use common::*;
use std::time::Duration;

/// A daemon whose restarts come after 20 ms, and a workspace `w`.
fn setup(name: &str, create: &[&str]) -> (CgroupRoot, Daemon) {
    let root = CgroupRoot::new(name);
    let dir = root.0.clone();
    let d = Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"]).arg(&dir);
        cmd.args(["--restart-backoff", "20ms"]);
    });
    let mut args = vec!["ws", "create", "w"];
    args.extend_from_slice(create);
    let o = d.cli(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (root, d)
}

fn run_restarting(d: &Daemon, script: &str) -> String {
    json(&d.cli(&["--json", "run", "w", "--restart", "--", "sh", "-c", script]))["command_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn alive(pid: u64) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

#[test]
fn a_stopped_command_is_ended_and_never_restarted_by_its_policy() {
    let (_root, d) = setup("stop", &[]);
    let id = run_restarting(&d, "exec sleep 300");
    // Its policy is live: killed, it comes back with a new pid.
    let first = command(&d, "w", &id)["pid"].as_u64().unwrap();
    let o = d.cli(&["kill", "w", &id, "-s", "KILL"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("sent SIGKILL to 1 process"),
        "{}",
        stdout(&o)
    );
    assert!(eventually(Duration::from_secs(10), || {
        let c = command(&d, "w", &id);
        c["restarts"] == 1 && c["alive"] == true && c["pid"].as_u64() != Some(first)
    }));
    let pid = command(&d, "w", &id)["pid"].as_u64().unwrap();
    let o = d.cli(&["stop", "w", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 process ended; it will not be restarted"),
        "{}",
        stdout(&o)
    );
    assert!(!alive(pid));
    // A clock: a failing command with the same policy restarts twice; the
    // stopped one must not have restarted meanwhile.
    let clock = run_restarting(&d, "exit 1");
    assert!(eventually(Duration::from_secs(10), || {
        command(&d, "w", &clock)["restarts"].as_u64() >= Some(2)
    }));
    let c = command(&d, "w", &id);
    assert_eq!(
        (c["alive"].clone(), c["restarts"].clone()),
        (false.into(), 1.into()),
        "{c}"
    );
    assert_eq!(c["exit_signal"], 15, "ended by SIGTERM: {c}");
    assert!(stdout(&d.cli(&["ps", "w"])).contains("stopped by shipote stop"));
    // Stopping it again is no error: nothing is left to end.
    let o = d.cli(&["stop", "w", &id]);
    assert!(
        o.status.success() && stdout(&o).contains("had ended"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
    let (_root, d) = setup("grace", &[]);
    let id = run(
        &d,
        "w",
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ],
    );
    assert!(eventually(Duration::from_secs(5), || logs(
        &d,
        "w",
        &id,
        &[]
    ) == "ready\n"));
    let started = std::time::Instant::now();
    let o = d.cli(&["--json", "stop", "w", &id, "--grace", "300ms"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(json(&o)["ended"].as_u64() >= Some(1));
    let c = wait_exit(&d, "w", &id);
    assert_eq!(c["exit_signal"], 9, "{c}");
}

#[test]
fn kill_delivers_any_signal_to_every_process_of_the_command() {
    let (_root, d) = setup("signal", &["--network", "none"]);
    // A parent and a child, each with its own trap; the command runs in a
    // sandboxed workspace (its own PID namespace: the host's pids still
    // reach it).
    let script = "trap 'echo parent-usr1' USR1; \
                  sh -c 'trap \"echo child-usr1; exit 0\" USR1; echo child-ready; while :; do sleep 0.05; done' & \
                  echo parent-ready; while :; do sleep 0.05; done";
    let id = run(&d, "w", &["sh", "-c", script]);
    assert!(eventually(Duration::from_secs(5), || {
        let l = logs(&d, "w", &id, &[]);
        l.contains("parent-ready") && l.contains("child-ready")
    }));
    let o = d.cli(&["kill", "w", &id, "-s", "usr1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(eventually(Duration::from_secs(5), || {
        let l = logs(&d, "w", &id, &[]);
        l.contains("parent-usr1") && l.contains("child-usr1")
    }));
    assert_eq!(command(&d, "w", &id)["alive"], true, "USR1 is not a stop");
    assert!(d.cli(&["stop", "w", &id, "--grace", "0"]).status.success());
}

#[test]
fn bad_targets_and_signals_are_refused_with_the_fix() {
    let (_root, d) = setup("bad", &[]);
    let o = d.cli(&["stop", "w", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no command \"nosuch\" in w; list them with shipote ps w"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&["kill", "w", "nosuch", "-s", "BOGUS"]);
    assert_eq!(o.status.code(), Some(2), "refused by the CLI");
    assert!(stderr(&o).contains("not a signal name"), "{}", stderr(&o));
    // Two running commands with one label: say which.
    let a = run(&d, "w", &["sleep", "300"]);
    let b = run(&d, "w", &["sleep", "300"]);
    let o = d.cli(&["stop", "w", "sleep"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&a) && e.contains(&b) && e.contains("give the id"),
        "{e}"
    );
    // An ended command cannot be signalled.
    let done = run(&d, "w", &["true"]);
    wait_exit(&d, "w", &done);
    let o = d.cli(&["kill", "w", &done]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("has no process to signal"),
        "{}",
        stderr(&o)
    );
    // The others are untouched.
    assert_eq!(command(&d, "w", &a)["alive"], true);
    assert_eq!(command(&d, "w", &b)["alive"], true);
}

#[test]
fn run_wait_streams_both_outputs_and_exits_with_the_commands_status() {
    let (_root, d) = setup("wait", &[]);
    let o = d.cli(&[
        "run",
        "w",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; echo more; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\nmore\n");
    assert_eq!(stderr(&o), "err\n");
    // Killed by a signal: 128 + its number, as a shell says.
    let o = d.cli(&["run", "w", "-w", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137));
    // `wait` for one started earlier (here, until a stop kills it).
    let id = run(&d, "w", &["sleep", "300"]);
    let waiter = std::process::Command::new(cli_bin())
        .args(["--socket", d.socket.to_str().unwrap(), "wait", "w", &id])
        .spawn()
        .unwrap();
    let o = d.cli(&["stop", "w", &id, "--grace", "0"]);
    assert!(o.status.success());
    let status = waiter.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(137), "killed by the stop");
}

#[test]
fn ctrl_c_on_run_wait_reaches_the_command() {
    use std::io::BufRead;
    let (_root, d) = setup("ctrlc", &[]);
    let mut cli = std::process::Command::new(cli_bin())
        .args([
            "--socket",
            d.socket.to_str().unwrap(),
            "run",
            "w",
            "--wait",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "trap 'echo got-int; exit 5' INT; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(cli.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // What a terminal's Ctrl-C does to the foreground client.
    signal(cli.id(), nix::sys::signal::Signal::SIGINT);
    assert_eq!(lines.next().unwrap().unwrap(), "got-int");
    assert_eq!(cli.wait().unwrap().code(), Some(5));
}

#[test]
fn run_needs_no_dashes_and_names_a_missing_path_where_it_was_looked_for() {
    let (_root, d) = setup("dashes", &[]);
    // As docker and systemd-run take it; options of the program stay its own.
    let o = d.cli(&["run", "w", "-w", "ls", "-d", "/"]);
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(0), "/\n".to_owned()),
        "{}",
        stderr(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_str().unwrap();
    let o = d.cli(&["run", "w", "--cwd", cwd, "--", "./nosuch.sh"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{cwd}/./nosuch.sh does not exist")) && e.contains("--cwd"),
        "{e}"
    );
    // A script there, by its relative path.
    let script = dir.path().join("ok.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = d.cli(&["run", "w", "--cwd", cwd, "-w", "./ok.sh"]);
    assert_eq!(stdout(&o), "ran\n", "{}", stderr(&o));
}

#[test]
fn logs_n_shows_the_last_lines_whole() {
    let (_root, d) = setup("lines", &[]);
    let id = run(&d, "w", &["sh", "-c", "seq 1 20000"]);
    wait_exit(&d, "w", &id);
    let o = d.cli(&["logs", "w", &id, "-n", "3"]);
    assert_eq!(stdout(&o), "19998\n19999\n20000\n", "{}", stderr(&o));
    // More lines than one first guess of bytes holds.
    let o = d.cli(&["logs", "w", &id, "-n", "5000"]);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 5000);
    assert!(out.starts_with("15001\n"), "{}", &out[..20]);
}

#[test]
fn a_stopped_workspace_stays_reachable_by_its_label() {
    let (_root, d) = setup("stopped", &[]);
    let id = run(&d, "w", &["echo", "kept"]);
    wait_exit(&d, "w", &id);
    assert!(d.cli(&["ws", "stop", "w"]).status.success());
    // Not live any more...
    assert!(!stdout(&d.cli(&["ws", "ls"])).contains(" w "));
    // ...but listed with --all, and its commands and logs by its label.
    let all = stdout(&d.cli(&["ws", "ls", "--all"]));
    let line = all.lines().find(|l| l.contains(" w ")).expect(&all);
    assert!(line.contains("stopped"), "{all}");
    let ps = d.cli(&["ps", "w"]);
    assert!(stdout(&ps).contains("exited 0"), "{}", stderr(&ps));
    assert_eq!(stdout(&d.cli(&["logs", "w", &id])), "kept\n");
    let v = json(&d.cli(&["--json", "ws", "ls", "--all"]));
    assert_eq!(v["stopped"][0]["label"], "w");
    let show = d.cli(&["ws", "show", "w"]);
    assert!(stdout(&show).contains("stopped"), "{}", stderr(&show));
    assert!(
        stdout(&show)
            .lines()
            .any(|l| l.split_whitespace().eq(["commands", "1"])),
        "{}",
        stdout(&show)
    );
    // A new live one with the label wins: its ps has none of the old commands.
    assert!(d.cli(&["ws", "create", "w"]).status.success());
    let ps = stdout(&d.cli(&["ps", "w"]));
    assert!(!ps.contains(&id), "{ps}");
}

#[test]
fn ps_without_a_workspace_lists_every_live_workspaces_commands() {
    let (_root, d) = setup("psall", &[]);
    assert!(d.cli(&["ws", "create", "v"]).status.success());
    let a = run(&d, "w", &["sleep", "300"]);
    let b = run(&d, "v", &["sleep", "301"]);
    let out = stdout(&d.cli(&["ps"]));
    assert!(out.starts_with("WORKSPACE"), "{out}");
    for (ws, id) in [("w", &a), ("v", &b)] {
        let line = out.lines().find(|l| l.contains(id.as_str())).expect(&out);
        assert!(line.starts_with(ws), "{out}");
    }
    let v = json(&d.cli(&["--json", "ps"]));
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["workspace"].is_string()));
    // One workspace's, as before: no WORKSPACE column.
    assert!(stdout(&d.cli(&["ps", "w"])).starts_with("ID"));
}

#[test]
fn restart_ends_the_command_and_starts_it_again_in_its_record() {
    let (_root, d) = setup("restart", &[]);
    // No restart policy: a restart asked for works all the same.
    let id = run(&d, "w", &["sh", "-c", "echo started; exec sleep 300"]);
    assert!(eventually(Duration::from_secs(5), || logs(
        &d,
        "w",
        &id,
        &[]
    ) == "started\n"));
    let first = command(&d, "w", &id)["pid"].as_u64().unwrap();
    let o = d.cli(&["--json", "restart", "w", &id, "--grace", "200ms"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["command_id"], id.as_str());
    let second = v["pid"].as_u64().unwrap();
    assert_ne!(first, second);
    assert!(!alive(first), "the old process was ended");
    let c = command(&d, "w", &id);
    assert_eq!(c["alive"], true, "{c}");
    assert_eq!(c["pid"].as_u64(), Some(second));
    // Same record, same log: both runs' output.
    assert!(eventually(Duration::from_secs(5), || {
        logs(&d, "w", &id, &[]) == "started\nstarted\n"
    }));
    // An ended command starts at once.
    let done = run(&d, "w", &["true"]);
    wait_exit(&d, "w", &done);
    let o = d.cli(&["restart", "w", &done]);
    assert!(
        o.status.success() && stdout(&o).starts_with("restarted"),
        "{}",
        stderr(&o)
    );
    wait_exit(&d, "w", &done);
    // Stopped, then restarted at once: it runs, and the stop's note is gone.
    assert!(d.cli(&["stop", "w", &id, "--grace", "0"]).status.success());
    let o = d.cli(&["--json", "restart", "w", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pid = json(&o)["pid"].as_u64().unwrap();
    let c = command(&d, "w", &id);
    assert_eq!(
        (c["alive"].clone(), c["failure"].clone()),
        (true.into(), serde_json::Value::Null),
        "{c}"
    );
    assert!(alive(pid));
    assert!(d.cli(&["stop", "w", &id, "--grace", "0"]).status.success());
}

#[test]
fn a_restarted_command_keeps_its_policy() {
    let (_root, d) = setup("restartpolicy", &[]);
    let id = run_restarting(&d, "exec sleep 300");
    let o = d.cli(&["restart", "w", &id, "--grace", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Killed now, it is restarted by its policy, as before.
    let pid = command(&d, "w", &id)["pid"].as_u64().unwrap();
    let o = d.cli(&["kill", "w", &id, "-s", "KILL"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(eventually(Duration::from_secs(10), || {
        let c = command(&d, "w", &id);
        c["alive"] == true && c["pid"].as_u64() != Some(pid) && c["restarts"] == 1
    }));
    assert!(d.cli(&["stop", "w", &id, "--grace", "0"]).status.success());
}

#[test]
fn run_defaults_to_home_and_a_clean_environment_and_the_caller_can_opt_in() {
    let (_root, d) = setup("here", &[]);
    let here = tempfile::tempdir().unwrap();
    std::fs::create_dir(here.path().join("sub")).unwrap();
    std::fs::write(here.path().join("x.sh"), "#!/bin/sh\necho script ran\n").unwrap();
    std::fs::set_permissions(
        here.path().join("x.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let run_here = |args: &[&str]| {
        let mut all = vec!["--socket", d.socket.to_str().unwrap(), "--json", "run", "w"];
        all.extend_from_slice(args);
        let o = std::process::Command::new(cli_bin())
            .args(&all)
            .current_dir(here.path())
            .env("SHIPOTE_TOUR_VAR", "from the caller")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let id = json(&o)["command_id"].as_str().unwrap().to_owned();
        wait_exit(&d, "w", &id);
        logs(&d, "w", &id, &[])
    };
    let home = std::env::var("HOME").unwrap();
    let script = "pwd; echo \"var=${SHIPOTE_TOUR_VAR:-unset}\"";
    // The default: the daemon's home, its clean environment.
    assert_eq!(
        run_here(&["--", "sh", "-c", script]),
        format!("{home}\nvar=unset\n")
    );
    // -d: the caller's directory, where ./x.sh is found; -e KEY: its value.
    let dir = here.path().canonicalize().unwrap();
    assert_eq!(
        run_here(&["-d", "-e", "SHIPOTE_TOUR_VAR", "--", "sh", "-c", script]),
        format!("{}\nvar=from the caller\n", dir.display())
    );
    assert_eq!(run_here(&["-d", "./x.sh"]), "script ran\n");
    // A relative --cwd is the caller's, not the daemon's.
    assert_eq!(
        run_here(&["--cwd", "sub", "pwd"]),
        format!("{}\n", dir.join("sub").display())
    );
    // -e KEY for a variable the caller does not have: refused, named.
    let o = d.cli(&["run", "w", "-e", "SHIPOTE_NOT_SET_ANYWHERE", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("SHIPOTE_NOT_SET_ANYWHERE is not set"),
        "{}",
        stderr(&o)
    );
}
