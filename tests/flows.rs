//! Pipelines with taps and flows (issue #7, second part): exact bytes through
//! a tap, subscribers (stalled, late), FlowDrop, rate limits, the flow CLI,
//! restarts behind taps, EOF and EPIPE through a tap, templating bombs. Real
//! daemon, real processes, the cgroup fallback of these hosts.

mod common;

use common::pipeline::*;
use common::*;
use shipote_protocol::spec::{CommandSpec, FlowEdge, PipelineSpec};
use shipote_protocol::{ErrorCode, Request, Response};
use std::collections::BTreeMap;
use std::time::Duration;

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
        ls.contains("PIPELINE")
            && ls.contains("gen → sink")
            && ls.contains(socket.to_str().unwrap()),
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
    let s = setup_with("plrestart", &["--restart-backoff", "20ms"]);
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
