//! Pipelines without taps (issue #7, first part): validation and templating
//! errors, exact output through kernel-pipe edges, fan-out and fan-in, named
//! ports, EOF and EPIPE propagation, PipelineStop. Real daemon, real
//! processes, the cgroup fallback of these hosts.

mod common;

use common::*;
use shipote_protocol::client::Client;
use shipote_protocol::spec::{CommandSpec, Endpoint, FlowEdge, PipelineSpec, WorkspaceId};
use shipote_protocol::{ErrorCode, Request, Response, Ulid};
use std::collections::BTreeMap;
use std::time::Duration;

fn cmd(label: &str, exec: &str, argv: &[&str]) -> CommandSpec {
    CommandSpec {
        label: label.into(),
        exec: exec.into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        cwd: None,
        restart_on_failure: false,
    }
}

fn edge(from: &str, out: &str, to: &str, inp: &str) -> FlowEdge {
    FlowEdge {
        from: Endpoint {
            label: from.into(),
            port: out.into(),
        },
        to: Endpoint {
            label: to.into(),
            port: inp.into(),
        },
        rate_limit_bytes_per_sec: None,
    }
}

struct Setup {
    _root: CgroupRoot,
    d: Daemon,
    ws: WorkspaceId,
    rt: tokio::runtime::Runtime,
}

fn setup(name: &str) -> Setup {
    setup_with(name, &[])
}

/// A daemon on a private cgroup root, started with `args` added, and a
/// workspace `w` in it.
fn setup_with(name: &str, args: &[&str]) -> Setup {
    let root = CgroupRoot::new(name);
    let dir = root.0.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let d = Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"]).arg(&dir);
        cmd.args(&args);
    });
    assert!(d.cli(&["ws", "create", "w"]).status.success());
    let id = json(&d.cli(&["--json", "ws", "ls"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Setup {
        _root: root,
        d,
        ws: WorkspaceId(Ulid::from_string(&id).unwrap()),
        rt: tokio::runtime::Runtime::new().unwrap(),
    }
}

impl Setup {
    fn call(&self, r: Request) -> Response {
        self.rt.block_on(async {
            let mut c = Client::connect(&self.d.socket).await.unwrap();
            c.call(&r).await.unwrap()
        })
    }

    fn run(&self, commands: Vec<CommandSpec>, edges: Vec<FlowEdge>) -> Response {
        self.run_vars(commands, edges, BTreeMap::new())
    }

    fn run_vars(
        &self,
        commands: Vec<CommandSpec>,
        edges: Vec<FlowEdge>,
        vars: BTreeMap<String, String>,
    ) -> Response {
        self.call(Request::PipelineRun {
            spec: PipelineSpec {
                workspace: self.ws,
                label: "p".into(),
                commands,
                edges,
            },
            tap: false,
            vars,
        })
    }

    /// The command labelled `label`, once it has exited.
    fn exited(&self, label: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let ws = self.ws.to_string();
        let done = eventually(Duration::from_secs(20), || {
            let items = json(&self.d.cli(&["--json", "ps", &ws]));
            last = items
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|c| c["label"] == label)
                .cloned()
                .unwrap_or_default();
            last["alive"] == false
        });
        assert!(done, "{label} still running: {last}");
        last
    }

    fn logs(&self, label: &str) -> String {
        let c = self.exited(label);
        let ws = self.ws.to_string();
        let o = self
            .d
            .cli(&["logs", &ws, c["id"].as_str().unwrap(), "--tail", "1M"]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    }
}

/// What a shell prints for `script` (the expected output of a pipeline).
fn sh(script: &str) -> String {
    let o = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap()
}

/// One producer of `seq 1 N` feeding two `cat`s, both feeding a checksum of
/// the sorted lines.
fn fan(n: u32) -> (Vec<CommandSpec>, Vec<FlowEdge>) {
    let n = n.to_string();
    (
        vec![
            cmd("gen", "seq", &["1", &n]),
            cmd("left", "cat", &[]),
            cmd("right", "cat", &[]),
            cmd("join", "sh", &["-c", "sort -n | sha256sum"]),
        ],
        vec![
            edge("gen", "stdout", "left", "stdin"),
            edge("gen", "stdout", "right", "stdin"),
            edge("left", "stdout", "join", "stdin"),
            edge("right", "stdout", "join", "stdin"),
        ],
    )
}

fn started(r: Response) -> (Ulid, Vec<(String, i32)>) {
    match r {
        Response::PipelineStarted {
            pipeline,
            command_pids,
            ..
        } => (pipeline, command_pids),
        other => panic!("{other:?}"),
    }
}

fn invalid(r: Response) -> String {
    match r {
        Response::Error {
            code: ErrorCode::Invalid,
            message,
        } => message,
        other => panic!("{other:?}"),
    }
}

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

fn tapped(s: &Setup, commands: Vec<CommandSpec>, edges: Vec<FlowEdge>) -> Response {
    s.call(Request::PipelineRun {
        spec: PipelineSpec {
            workspace: s.ws,
            label: "tapped".into(),
            commands,
            edges,
        },
        tap: true,
        vars: BTreeMap::new(),
    })
}

fn throughput(s: &Setup) -> Vec<shipote_protocol::FlowThroughputInfo> {
    match s.call(Request::FlowThroughput) {
        Response::FlowThroughput { items } => items,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_tapped_pipeline_is_exact_and_reports_its_edges() {
    let s = setup("pltap");
    let r = tapped(
        &s,
        vec![
            cmd("gen", "seq", &["1", "300000"]),
            cmd("map", "tr", &["0-9", "a-j"]),
            cmd("sum", "sha256sum", &[]),
        ],
        vec![
            edge("gen", "stdout", "map", "stdin"),
            edge("map", "stdout", "sum", "stdin"),
        ],
    );
    let Response::PipelineStarted { edges, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0].from_label, "gen");
    assert!(edges[0].flow_socket.is_some());
    // seq's first bytes arrive well within the wait: they are text.
    assert_eq!(edges[0].lens.as_deref(), Some("text"), "{:?}", edges[0]);
    let expected = sh("seq 1 300000 | tr 0-9 a-j | sha256sum");
    assert_eq!(s.logs("sum"), expected);
    // Ended edges unpublish their sockets.
    assert!(eventually(Duration::from_secs(5), || edges
        .iter()
        .all(|e| !e.flow_socket.as_ref().unwrap().exists())));
}

#[test]
fn a_stalled_subscriber_loses_data_but_never_blocks_and_flowdrop_keeps_data_flowing() {
    let s = setup("plstall");
    let dir = s.d.dir.path();
    let (gate1, gate2) = (dir.join("gate1"), dir.join("gate2"));
    let script = format!(
        "while [ ! -e {0} ]; do sleep 0.02; done; head -c 20000000 /dev/zero; \
         while [ ! -e {1} ]; do sleep 0.02; done; head -c 10000000 /dev/zero",
        gate1.display(),
        gate2.display()
    );
    let r = tapped(
        &s,
        vec![
            cmd("gen", "sh", &["-c", &script]),
            cmd("count", "wc", &["-c"]),
        ],
        vec![edge("gen", "stdout", "count", "stdin")],
    );
    let Response::PipelineStarted {
        pipeline, edges, ..
    } = r
    else {
        panic!("{r:?}")
    };
    let socket = edges[0].flow_socket.clone().unwrap();
    // A subscriber that never reads.
    let _stalled = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    assert!(eventually(Duration::from_secs(5), || throughput(&s)
        .first()
        .is_some_and(|t| t.subscribers == 1)));
    std::fs::write(&gate1, "").unwrap();
    let mut last = None;
    assert!(
        eventually(Duration::from_secs(20), || {
            last = throughput(&s).into_iter().next();
            last.as_ref().is_some_and(|t| t.bytes_total == 20_000_000)
        }),
        "{last:?}"
    );
    let t = last.unwrap();
    assert!(
        t.dropped_bytes > 0,
        "the stalled subscriber lost bytes: {t:?}"
    );
    // FlowDrop: the socket goes, the data keeps flowing.
    match s.call(Request::FlowDrop { pipeline }) {
        Response::FlowDropped { existed, .. } => assert!(existed),
        other => panic!("{other:?}"),
    }
    assert!(!socket.exists());
    assert_eq!(
        s.call(Request::FlowList),
        Response::FlowList { items: vec![] }
    );
    std::fs::write(&gate2, "").unwrap();
    assert_eq!(s.logs("count").trim(), "30000000");
}

#[test]
fn a_late_subscriber_receives_the_stream_from_then_on() {
    let s = setup("pllate");
    let r = tapped(
        &s,
        vec![
            cmd(
                "gen",
                "sh",
                &[
                    "-c",
                    "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); sleep 0.001; done",
                ],
            ),
            cmd("sink", "wc", &["-l"]),
        ],
        vec![edge("gen", "stdout", "sink", "stdin")],
    );
    let Response::PipelineStarted { edges, .. } = r else {
        panic!("{r:?}")
    };
    let socket = edges[0].flow_socket.clone().unwrap();
    assert!(eventually(Duration::from_secs(10), || throughput(&s)
        .first()
        .is_some_and(|t| t.bytes_total > 1000)));
    let mut sub = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let mut got = String::new();
    use std::io::Read;
    sub.read_to_string(&mut got).unwrap();
    assert!(!got.starts_with("line0\n"), "it joined late");
    assert!(
        got.trim_end().ends_with("line2999"),
        "it got the rest: ...{}",
        &got[got.len().saturating_sub(40)..]
    );
    assert_eq!(s.logs("sink").trim(), "3000", "the consumer got everything");
}

#[test]
fn a_rate_limited_edge_holds_its_rate_after_the_first_seconds_burst() {
    let s = setup("plrate");
    let mut e = edge("gen", "stdout", "count", "stdin");
    e.rate_limit_bytes_per_sec = Some(1_000_000);
    let start = std::time::Instant::now();
    started(s.run(
        vec![
            cmd("gen", "head", &["-c", "3000000", "/dev/zero"]),
            cmd("count", "wc", &["-c"]),
        ],
        vec![e],
    ));
    assert_eq!(s.logs("count").trim(), "3000000");
    let took = start.elapsed();
    // 1 MB of burst, then 2 MB at 1 MB/s.
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn cli_lists_watches_and_subscribes_to_flows() {
    let s = setup("plflowcli");
    let gate = s.d.dir.path().join("gate");
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.02; done; echo hello; echo world",
        gate.display()
    );
    let r = tapped(
        &s,
        vec![cmd("gen", "sh", &["-c", &script]), cmd("sink", "cat", &[])],
        vec![edge("gen", "stdout", "sink", "stdin")],
    );
    let Response::PipelineStarted { edges, .. } = r else {
        panic!("{r:?}")
    };
    let socket = edges[0].flow_socket.clone().unwrap();
    match s.call(Request::WorkspaceFullSummary { workspace: s.ws }) {
        Response::WorkspaceFullSummary { flow_sockets, .. } => {
            assert_eq!(flow_sockets, vec![socket.clone()])
        }
        other => panic!("{other:?}"),
    }
    let ls = stdout(&s.d.cli(&["flow", "ls"]));
    assert!(
        ls.contains("PIPELINE") && ls.contains(socket.to_str().unwrap()),
        "{ls}"
    );
    let sub = std::process::Command::new(cli_bin())
        .args(["flow", "cat", socket.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        let v = json(&s.d.cli(&["--json", "flow", "top", "--once"]));
        v[0]["subscribers"] == 1
    }));
    std::fs::write(&gate, "").unwrap();
    let out = sub.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nworld\n");
    assert_eq!(s.logs("sink"), "hello\nworld\n");
    let o = s.d.cli(&["flow", "cat", "/nonexistent/flow.sock"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("shipote flow ls"), "{}", stderr(&o));
}

#[test]
fn a_restarted_pipeline_command_keeps_its_edges_and_eof_comes_once_it_is_done() {
    let s = setup_with("plrestart", &["--restart-backoff-ms", "20"]);
    let mark = s.d.dir.path().join("mark");
    let script = format!(
        "if [ -e {0} ]; then echo second; else touch {0}; echo first; exit 1; fi",
        mark.display()
    );
    let mut gen = cmd("gen", "sh", &["-c", &script]);
    gen.restart_on_failure = true;
    started(s.run(
        vec![gen, cmd("sink", "cat", &[])],
        vec![edge("gen", "stdout", "sink", "stdin")],
    ));
    // The consumer saw no EOF between the two runs: it got both.
    assert_eq!(s.logs("sink"), "first\nsecond\n");
    let g = s.exited("gen");
    assert_eq!(
        (g["exit_status"].as_i64(), g["restarts"].as_u64()),
        (Some(0), Some(1)),
        "{g}"
    );
}

#[test]
fn tapped_fan_out_and_fan_in_deliver_every_byte_too() {
    let s = setup("pltapfan");
    let (commands, edges) = fan(20000);
    let r = tapped(&s, commands, edges);
    let Response::PipelineStarted { edges, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(edges.len(), 4, "one tap per edge");
    let expected = sh("(seq 1 20000; seq 1 20000) | sort -n | sha256sum");
    assert_eq!(s.logs("join"), expected);
}

#[test]
fn through_a_tap_eof_and_epipe_still_propagate() {
    let s = setup("pltappipe");
    tapped(
        &s,
        vec![cmd("yes", "yes", &[]), cmd("head", "head", &["-n", "3"])],
        vec![edge("yes", "stdout", "head", "stdin")],
    );
    assert_eq!(s.logs("head"), "y\ny\ny\n");
    assert_eq!(s.exited("yes")["exit_signal"], 13, "the producer got EPIPE");
}

/// The request that once took the daemon down: a 512 KiB var placed 4,096
/// times (2 GiB if expanded). Refused at once by name; others are served.
#[test]
fn a_templating_bomb_is_refused_before_it_expands() {
    let s = setup("bomb");
    let mut c = cmd("a", "echo", &[]);
    c.argv = vec!["${A}".repeat(4096)];
    let spec = PipelineSpec {
        workspace: s.ws,
        label: "bomb".into(),
        commands: vec![c],
        edges: vec![],
    };
    let vars = BTreeMap::from([("A".to_owned(), "x".repeat(512 << 10))]);
    let start = std::time::Instant::now();
    match s.call(Request::PipelineRun {
        spec,
        tap: false,
        vars,
    }) {
        Response::Error {
            code: ErrorCode::Invalid,
            message,
        } => assert!(
            message.contains("longer than 128 KiB after templating"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(s.d.cli(&["ping"]).status.success());
    let rss = rss_kib(s.d.child.id());
    assert!(rss < 100 << 10, "RSS {rss} KiB: something expanded");
}
