//! Pipelines without taps (issue #7, first part): validation and templating
//! errors, exact output through kernel-pipe edges, fan-out and fan-in, named
//! ports, EOF and EPIPE propagation, PipelineStop. Real daemon, real
//! processes, the cgroup fallback of these hosts.

mod common;

use common::pipeline::*;
use common::*;
use shipote_protocol::client::Client;
use shipote_protocol::spec::{PipelineSpec, WorkspaceId};
use shipote_protocol::{ErrorCode, Request, Response, Ulid};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn a_three_stage_pipeline_delivers_its_bytes_exactly() {
    let s = setup("pl3");
    let (_, pids) = started(s.run(
        vec![
            cmd("gen", "seq", &["1", "300000"]),
            cmd("map", "tr", &["0-9", "a-j"]),
            cmd("sum", "sha256sum", &[]),
        ],
        vec![
            edge("gen", "stdout", "map", "stdin"),
            edge("map", "stdout", "sum", "stdin"),
        ],
    ));
    assert_eq!(pids.len(), 3);
    let expected = sh("seq 1 300000 | tr 0-9 a-j | sha256sum");
    assert_eq!(s.logs("sum"), expected);
    for label in ["gen", "map", "sum"] {
        assert_eq!(s.exited(label)["exit_status"], 0, "{label}");
    }
    // Wired streams are not captured: only the last stage has a log.
    assert_eq!(s.logs("gen"), "");
    // Oldest first, though all three started within one millisecond.
    let items = json(&s.d.cli(&["--json", "ps", &s.ws.to_string()]));
    let labels: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["gen", "map", "sum"]);
}

#[test]
fn fan_out_and_fan_in_deliver_every_line_to_every_consumer() {
    let s = setup("plfan");
    let (commands, edges) = fan(5000);
    started(s.run(commands, edges));
    let expected = sh("(seq 1 5000; seq 1 5000) | sort -n | sha256sum");
    assert_eq!(s.logs("join"), expected);
}

#[test]
fn named_ports_are_descriptors_announced_in_the_environment() {
    let s = setup("plnamed");
    started(s.run(
        vec![
            cmd(
                "a",
                "sh",
                &["-c", "echo main; echo side >&$SHIPOTE_OUT_SIDE"],
            ),
            cmd(
                "b",
                "sh",
                &[
                    "-c",
                    "cat; echo \"fd=$SHIPOTE_IN_EXTRA\"; cat <&$SHIPOTE_IN_EXTRA",
                ],
            ),
        ],
        vec![
            edge("a", "stdout", "b", "stdin"),
            edge("a", "side", "b", "extra"),
        ],
    ));
    assert_eq!(s.logs("b"), "main\nfd=3\nside\n");
}

#[test]
fn a_consumer_that_leaves_gives_its_producer_epipe_and_nothing_hangs() {
    let s = setup("plpipe");
    started(s.run(
        vec![cmd("yes", "yes", &[]), cmd("head", "head", &["-n", "3"])],
        vec![edge("yes", "stdout", "head", "stdin")],
    ));
    assert_eq!(s.logs("head"), "y\ny\ny\n");
    // SIGPIPE is at its default in commands: the producer dies of it.
    assert_eq!(s.exited("yes")["exit_signal"], 13);
}

#[test]
fn bad_specs_are_refused_whole_naming_the_part() {
    let s = setup("plbad");
    let m = invalid(s.run(
        vec![cmd("a", "true", &[])],
        vec![edge("a", "stdout", "ghost", "stdin")],
    ));
    assert!(m.contains("no command is labelled \"ghost\""), "{m}");
    let m = invalid(s.run(
        vec![cmd("a", "cat", &[]), cmd("b", "cat", &[])],
        vec![
            edge("a", "stdout", "b", "stdin"),
            edge("b", "stdout", "a", "stdin"),
        ],
    ));
    assert!(m.contains("cycle"), "{m}");
    let m = invalid(s.run_vars(
        vec![cmd("a", "${PROG}", &["${ARG}"])],
        vec![],
        BTreeMap::from([("PROG".to_string(), "echo".to_string())]),
    ));
    assert!(m.contains("${ARG}") && !m.contains("${PROG}"), "{m}");
    let m = invalid(s.run(vec![cmd("a", "no-such-program-zz", &[])], vec![]));
    assert!(m.contains("not found in PATH"), "{m}");
    // Nothing was started by any of these.
    let items = json(&s.d.cli(&["--json", "ps", &s.ws.to_string()]));
    assert_eq!(items.as_array().unwrap().len(), 0, "{items}");
}

#[test]
fn a_pipeline_whose_later_stage_cannot_start_leaves_no_process_and_no_zombie() {
    let s = setup("plzombie");
    let m = invalid(s.run(
        vec![
            cmd("gen", "sleep", &["300"]),
            cmd("map", "no-such-program-zz", &[]),
        ],
        vec![edge("gen", "stdout", "map", "stdin")],
    ));
    assert!(
        m.contains("cannot start \"map\"") && m.contains("not found in PATH"),
        "{m}"
    );
    // The first stage was started, then killed and reaped: no child of the
    // daemon is left, running or defunct.
    let daemon = s.d.child.id().to_string();
    let children = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| {
                let pid = e.ok()?.file_name().to_str()?.parse::<u32>().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let rest = stat.rsplit_once(')')?.1;
                let mut f = rest.split_whitespace();
                let (state, ppid) = (f.next()?, f.next()?);
                (ppid == daemon).then(|| format!("{pid} {state} {stat}"))
            })
            .filter(|c| c.contains("(sleep)"))
            .collect()
    };
    assert!(children().is_empty(), "{:?}", children());
}

#[test]
fn templating_reaches_the_program_without_a_shell() {
    let s = setup("pltpl");
    started(s.run_vars(
        vec![cmd("say", "${PROG}", &["${WORDS}", "$${KEPT}"])],
        vec![],
        BTreeMap::from([
            ("PROG".to_string(), "echo".to_string()),
            ("WORDS".to_string(), "a;b $(c)".to_string()),
        ]),
    ));
    assert_eq!(s.logs("say"), "a;b $(c) ${KEPT}\n");
}

#[test]
fn pipeline_stop_ends_exactly_that_pipelines_processes() {
    let s = setup("plstop");
    let ws = s.ws.to_string();
    let other = json(&s.d.cli(&["--json", "run", &ws, "--", "sleep", "302"]))["command_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (pipeline, _) = started(s.run(
        vec![
            cmd("src", "sh", &["-c", "(setsid sleep 301 &); exec sleep 300"]),
            cmd("dst", "cat", &[]),
        ],
        vec![edge("src", "stdout", "dst", "stdin")],
    ));
    assert_eq!(json(&s.d.cli(&["--json", "health"]))["alive_pipelines"], 1);
    let daemonized = || {
        std::process::Command::new("pgrep")
            .args(["-f", "^sleep 301$"])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(eventually(Duration::from_secs(5), daemonized));
    match s.call(Request::PipelineStop {
        pipeline,
        grace_ms: 500,
    }) {
        // Both sleeps and cat (sh's subshell may still be there too).
        Response::PipelineStopped { reaped, .. } => assert!(reaped >= 3, "{reaped}"),
        other => panic!("{other:?}"),
    }
    assert!(!daemonized(), "the daemonized grandchild ended too");
    assert_eq!(s.exited("src")["exit_signal"], 15);
    s.exited("dst");
    let items = json(&s.d.cli(&["--json", "ps", &ws]));
    let still = items
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == other.as_str())
        .unwrap();
    assert_eq!(
        still["alive"], true,
        "the workspace's other command runs on"
    );
    assert_eq!(json(&s.d.cli(&["--json", "health"]))["alive_pipelines"], 0);
    match s.call(Request::PipelineStop {
        pipeline,
        grace_ms: 0,
    }) {
        Response::Error {
            code: ErrorCode::NotFound,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn saved_pipelines_survive_a_kill_of_the_daemon_and_run_with_vars() {
    let root = CgroupRoot::new("plsaved");
    let mut d = Daemon::start_cgroup(&root.0);
    assert!(d
        .cli(&["ws", "create", "w", "--keep-on-exit"])
        .status
        .success());
    let id = json(&d.cli(&["--json", "ws", "ls"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ws = WorkspaceId(Ulid::from_string(&id).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let call = |d: &Daemon, r: Request| {
        rt.block_on(async {
            let mut c = Client::connect(&d.socket).await.unwrap();
            c.call(&r).await.unwrap()
        })
    };
    let spec = PipelineSpec {
        workspace: ws,
        label: "greet".into(),
        commands: vec![
            cmd("say", "echo", &["hello ${WHO}"]),
            cmd("up", "tr", &["a-z", "A-Z"]),
        ],
        edges: vec![edge("say", "stdout", "up", "stdin")],
    };
    for name in ["greet", "other.v2"] {
        match call(
            &d,
            Request::PipelineSave {
                name: name.into(),
                spec: spec.clone(),
            },
        ) {
            Response::PipelineSaved { name: n } => assert_eq!(n, name),
            other => panic!("{other:?}"),
        }
    }
    match call(
        &d,
        Request::PipelineSave {
            name: "../evil".into(),
            spec: spec.clone(),
        },
    ) {
        Response::Error {
            code: ErrorCode::Invalid,
            message,
        } => {
            assert!(message.contains("not valid"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // kill -9: no chance to flush anything.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d2 = successor(&d, &root);
    match call(&d2, Request::PipelineSavedList) {
        Response::PipelineSavedList { names } => assert_eq!(names, vec!["greet", "other.v2"]),
        other => panic!("{other:?}"),
    }
    let run = |vars: &[(&str, &str)]| {
        call(
            &d2,
            Request::PipelineRunSaved {
                name: "greet".into(),
                tap: false,
                vars: vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        )
    };
    match run(&[]) {
        Response::Error {
            code: ErrorCode::Invalid,
            message,
        } => {
            assert!(message.contains("${WHO}"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    started(run(&[("WHO", "world")]));
    let s = Setup {
        _root: root,
        d: d2,
        ws,
        rt: tokio::runtime::Runtime::new().unwrap(),
    };
    assert_eq!(s.logs("up"), "HELLO WORLD\n");
    match s.call(Request::PipelineDrop {
        name: "greet".into(),
    }) {
        Response::PipelineDropped { existed, .. } => assert!(existed),
        other => panic!("{other:?}"),
    }
    match s.call(Request::PipelineRunSaved {
        name: "greet".into(),
        tap: false,
        vars: BTreeMap::new(),
    }) {
        Response::Error {
            code: ErrorCode::NotFound,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    let _ = s.d.cli(&["ws", "stop", &id]);
}

#[test]
fn cli_runs_saves_and_stops_pipelines_from_toml_files() {
    let s = setup("plcli");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/pipelines/checksum.toml"
    );
    let o = s.d.cli(&[
        "pipeline",
        "run",
        example,
        "--workspace",
        "w",
        "--var",
        "N=1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("pipeline ") && out.contains("COMMAND") && out.contains("sum"),
        "{out}"
    );
    let expected = sh("seq 1 1000 | tr 0-9 a-j | sha256sum");
    assert_eq!(s.logs("sum"), expected);

    // A file problem is exit 2 and names the file; a missing var is the
    // daemon's refusal (exit 1) naming the key.
    let bad = s.d.dir.path().join("bad.toml");
    std::fs::write(&bad, "workspace = \"w\"\n[[command]]\nlabel = \"a\"\n").unwrap();
    let o = s.d.cli(&["pipeline", "run", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.toml") && stderr(&o).contains("exec"),
        "{}",
        stderr(&o)
    );
    let o = s.d.cli(&["pipeline", "run", example, "--workspace", "w"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("${N}"), "{}", stderr(&o));

    // Saved, listed, started with vars, stopped, removed.
    let o =
        s.d.cli(&["pipeline", "save", "sum", example, "--workspace", "w"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json(&s.d.cli(&["--json", "pipeline", "ls"])),
        serde_json::json!(["sum"])
    );
    let v = json(&s.d.cli(&["--json", "pipeline", "start", "sum", "--var", "N=100000000"]));
    let id = v["pipeline"].as_str().unwrap().to_owned();
    assert!(v["pids"]["gen"].as_i64().unwrap() > 0, "{v}");
    let v = json(&s.d.cli(&["--json", "pipeline", "stop", &id, "--grace", "0"]));
    assert!(v["reaped"].as_u64().unwrap() >= 1, "{v}");
    let o = s.d.cli(&["pipeline", "rm", "sum"]);
    assert_eq!(stdout(&o), "deleted sum\n");
}

#[test]
fn running_pipelines_are_listed_and_stopped_by_label() {
    let s = setup("plps");
    let r = s.run(
        vec![cmd("gen", "sleep", &["300"]), cmd("sink", "cat", &[])],
        vec![edge("gen", "stdout", "sink", "stdin")],
    );
    assert!(matches!(r, Response::PipelineStarted { .. }), "{r:?}");
    let out = stdout(&s.d.cli(&["pipeline", "ps"]));
    let line = out.lines().nth(1).expect(&out);
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &cells[1..],
        ["p", &s.ws.to_string(), "2", "2", "0"],
        "{out}"
    );
    // By its label, as the issue asked.
    let o = s.d.cli(&["pipeline", "stop", "p", "--grace", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("stopped pipeline"), "{}", stdout(&o));
    let v = json(&s.d.cli(&["--json", "pipeline", "ps"]));
    assert!(
        v.as_array().unwrap().iter().all(|p| p["label"] != "p"),
        "stopped: {v}"
    );
    let o = s.d.cli(&["pipeline", "stop", "p"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("shipote pipeline ps"), "{}", stderr(&o));
}
