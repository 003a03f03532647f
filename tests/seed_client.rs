//! A client built from the seed's definitions (`shared/seed`, the original
//! `shipote-protocol`), field by field, against the real daemon: every seed
//! request on a connection that never sends `Hello`, every answer decoded the
//! way the seed's `read_frame` does it (`postcard::from_bytes`, which tolerates
//! bytes left over). The message types below are written from the seed's field
//! lists, not taken from `protocol/src`, so a drift of our wire fails here. The
//! seed imports `WorkspaceSpec`, `PipelineSpec` and `WorkspaceId` from another
//! crate; those are SPEC.md's, taken from the protocol crate.

mod common;

use common::*;
use serde::{Deserialize, Serialize};
use shipote_protocol::spec::{
    CommandSpec, Endpoint, FlowEdge, PipelineSpec, Soma, WorkspaceId, WorkspaceSpec,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;
use ulid::Ulid;

// ----- The seed's messages, as the seed declares them ----------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Request {
    Ping,
    Health,
    WorkspaceCreate {
        spec: WorkspaceSpec,
    },
    WorkspaceList,
    WorkspaceStop {
        id: WorkspaceId,
        grace_ms: u64,
    },
    Run {
        workspace: WorkspaceId,
        exec: String,
        argv: Vec<String>,
        envp: Vec<(String, String)>,
        restart_on_failure: bool,
    },
    PipelineRun {
        spec: PipelineSpec,
        tap: bool,
        vars: BTreeMap<String, String>,
    },
    Discern {
        sample: Vec<u8>,
        hint_path: Option<PathBuf>,
    },
    Capabilities,
    CommandList {
        workspace: WorkspaceId,
    },
    CommandLogs {
        workspace: WorkspaceId,
        command: Ulid,
        tail_bytes: usize,
        stream: String,
    },
    PipelineSave {
        name: String,
        spec: PipelineSpec,
    },
    PipelineSavedList,
    PipelineDrop {
        name: String,
    },
    PipelineRunSaved {
        name: String,
        tap: bool,
        vars: BTreeMap<String, String>,
    },
    WorkspaceStats {
        workspace: WorkspaceId,
    },
    WorkspaceQuota {
        workspace: WorkspaceId,
    },
    WorkspaceStatsHistory {
        workspace: WorkspaceId,
        tail: usize,
    },
    WorkspaceFullSummary {
        workspace: WorkspaceId,
    },
    PipelineStop {
        pipeline: Ulid,
        grace_ms: u64,
    },
    FlowList,
    FlowThroughput,
    FlowDrop {
        pipeline: Ulid,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Response {
    Pong,
    Health {
        version: String,
        uptime_ms: u64,
        alive_workspaces: u32,
        alive_commands: u32,
        alive_pipelines: u32,
        active_flows: u32,
        dirty: bool,
    },
    WorkspaceCreated {
        id: WorkspaceId,
        warnings: Vec<String>,
    },
    WorkspaceList {
        items: Vec<WorkspaceSummary>,
    },
    WorkspaceStopped {
        id: WorkspaceId,
        reaped: u32,
    },
    RunStarted {
        workspace: WorkspaceId,
        command_id: Ulid,
        pid: i32,
    },
    PipelineStarted {
        pipeline: Ulid,
        command_pids: Vec<(String, i32)>,
        edges: Vec<EdgeDiscernmentInfo>,
    },
    Discernment {
        ty: String,
        confidence: f32,
        mime: Option<String>,
        lens: Option<String>,
    },
    Capabilities {
        kernel_version: (u32, u32, u32),
        user_ns: String,
        cgroup_v2: String,
        cgroup_delegated: bool,
        has_cap_sys_admin: bool,
    },
    CommandList {
        items: Vec<CommandInfo>,
    },
    CommandLogs {
        bytes: Vec<u8>,
    },
    PipelineSaved {
        name: String,
    },
    PipelineSavedList {
        names: Vec<String>,
    },
    PipelineDropped {
        name: String,
        existed: bool,
    },
    PipelineStopped {
        pipeline: Ulid,
        reaped: u32,
    },
    WorkspaceStats {
        info: WorkspaceStatsInfo,
    },
    WorkspaceQuota {
        info: QuotaReportInfo,
    },
    WorkspaceStatsHistory {
        samples: Vec<WorkspaceStatsInfo>,
    },
    WorkspaceFullSummary {
        stats: WorkspaceStatsInfo,
        quota: QuotaReportInfo,
        commands: Vec<CommandInfo>,
        flow_sockets: Vec<PathBuf>,
    },
    FlowList {
        items: Vec<FlowInfo>,
    },
    FlowThroughput {
        items: Vec<FlowThroughputInfo>,
    },
    FlowDropped {
        pipeline: Ulid,
        existed: bool,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct QuotaReportInfo {
    mem_limit: Option<u64>,
    nproc_limit: Option<u32>,
    breaches: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkspaceStatsInfo {
    commands_alive: u32,
    commands_total: u32,
    rss_bytes: Option<u64>,
    rss_peak_bytes: Option<u64>,
    cpu_usec: Option<u64>,
    cpu_percent: Option<f32>,
    cpu_cores: u32,
    source: String,
    uptime_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FlowThroughputInfo {
    socket: PathBuf,
    bytes_total: u64,
    bytes_per_sec: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FlowInfo {
    pipeline: Ulid,
    sockets: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CommandInfo {
    id: Ulid,
    label: String,
    pid: i32,
    alive: bool,
    exit_status: Option<i32>,
    log_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EdgeDiscernmentInfo {
    from_label: String,
    from_output: String,
    to_label: String,
    to_input: String,
    ty: Option<String>,
    mime: Option<String>,
    lens: Option<String>,
    confidence: f32,
    flow_socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkspaceSummary {
    id: WorkspaceId,
    label: String,
    commands: u32,
    uptime_ms: u64,
}

// ----- The seed's framing: u32 BE length + postcard ------------------------

struct SeedClient(UnixStream);

impl SeedClient {
    fn connect(d: &Daemon) -> Self {
        let s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        SeedClient(s)
    }

    fn call(&mut self, r: &Request) -> Response {
        let bytes = postcard::to_allocvec(r).unwrap();
        self.0
            .write_all(&(bytes.len() as u32).to_be_bytes())
            .unwrap();
        self.0.write_all(&bytes).unwrap();
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut buf).unwrap();
        postcard::from_bytes(&buf)
            .unwrap_or_else(|e| panic!("{r:?}: undecodable answer {buf:02x?}: {e}"))
    }
}

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

fn pipeline(ws: WorkspaceId) -> PipelineSpec {
    PipelineSpec {
        workspace: ws,
        label: "seedp".into(),
        commands: vec![
            cmd(
                "a",
                "sh",
                &[
                    "-c",
                    "while :; do echo '{\"w\": \"${WORD}\"}'; sleep 0.02; done",
                ],
            ),
            cmd("b", "cat", &[]),
        ],
        edges: vec![FlowEdge {
            from: Endpoint {
                label: "a".into(),
                port: "stdout".into(),
            },
            to: Endpoint {
                label: "b".into(),
                port: "stdin".into(),
            },
            rate_limit_bytes_per_sec: None,
        }],
    }
}

fn run(c: &mut SeedClient, ws: WorkspaceId, script: &str) -> (Ulid, i32) {
    match c.call(&Request::Run {
        workspace: ws,
        exec: "sh".into(),
        argv: vec!["-c".into(), script.into()],
        envp: vec![("SEED".into(), "1".into())],
        restart_on_failure: false,
    }) {
        Response::RunStarted {
            workspace,
            command_id,
            pid,
        } => {
            assert_eq!(workspace, ws);
            assert!(pid > 1);
            (command_id, pid)
        }
        other => panic!("Run: {other:?}"),
    }
}

fn commands(c: &mut SeedClient, ws: WorkspaceId) -> Vec<CommandInfo> {
    match c.call(&Request::CommandList { workspace: ws }) {
        Response::CommandList { items } => items,
        other => panic!("CommandList: {other:?}"),
    }
}

fn logs(c: &mut SeedClient, ws: WorkspaceId, id: Ulid, stream: &str) -> String {
    match c.call(&Request::CommandLogs {
        workspace: ws,
        command: id,
        tail_bytes: 4096,
        stream: stream.into(),
    }) {
        Response::CommandLogs { bytes } => String::from_utf8(bytes).unwrap(),
        other => panic!("CommandLogs {stream:?}: {other:?}"),
    }
}

#[test]
fn a_client_built_from_the_seed_runs_every_request() {
    let root = CgroupRoot::new("seed");
    let d = Daemon::start_cgroup(&root.0);
    let mut c = SeedClient::connect(&d);

    assert!(matches!(c.call(&Request::Ping), Response::Pong));
    match c.call(&Request::Health) {
        Response::Health {
            version,
            alive_workspaces,
            dirty,
            ..
        } => {
            assert_eq!(version, env!("CARGO_PKG_VERSION"));
            assert_eq!((alive_workspaces, dirty), (0, false));
        }
        other => panic!("Health: {other:?}"),
    }
    match c.call(&Request::Capabilities) {
        Response::Capabilities {
            kernel_version,
            cgroup_v2,
            cgroup_delegated,
            ..
        } => {
            assert!(kernel_version.0 >= 5, "{kernel_version:?}");
            assert!(["unified", "hybrid"].contains(&cgroup_v2.as_str()));
            assert!(cgroup_delegated);
        }
        other => panic!("Capabilities: {other:?}"),
    }

    // An error, in the seed's form: a message and nothing else.
    let ghost = WorkspaceId(Ulid::new());
    match c.call(&Request::WorkspaceStop {
        id: ghost,
        grace_ms: 0,
    }) {
        Response::Error { message } => {
            assert!(
                message.contains(&format!("no live workspace {ghost}")),
                "{message}"
            )
        }
        other => panic!("WorkspaceStop of a ghost: {other:?}"),
    }

    // A workspace with limits (report-only here: this host's cgroup2 has no
    // controllers; the quota still reports them).
    let mut spec = WorkspaceSpec::new("seedws");
    spec.soma = Soma {
        mem_max_bytes: Some(256 << 20),
        tasks_max: Some(64),
        ..Soma::default()
    };
    spec.quota_enforce = shipote_protocol::spec::QuotaEnforce::ReportOnly;
    let ws = match c.call(&Request::WorkspaceCreate { spec }) {
        Response::WorkspaceCreated { id, .. } => id,
        other => panic!("WorkspaceCreate: {other:?}"),
    };
    match c.call(&Request::WorkspaceList) {
        Response::WorkspaceList { items } => {
            assert_eq!(items.len(), 1, "{items:?}");
            assert_eq!((items[0].id, items[0].label.as_str()), (ws, "seedws"));
            assert_eq!(items[0].commands, 0);
            assert!(items[0].uptime_ms < 60_000, "{items:?}");
        }
        other => panic!("WorkspaceList: {other:?}"),
    }

    // Commands: an exit code, a death by signal, one still running.
    let (three, _) = run(&mut c, ws, "echo out; echo err >&2; exit 3");
    let (termed, _) = run(&mut c, ws, "kill -TERM $$");
    let (sleeper, sleeper_pid) = run(&mut c, ws, "exec sleep 300");
    assert!(
        eventually(Duration::from_secs(10), || {
            let items = commands(&mut c, ws);
            items.iter().filter(|i| !i.alive).count() == 2
        }),
        "the two short commands end"
    );
    let items = commands(&mut c, ws);
    let find = |id: Ulid| items.iter().find(|i| i.id == id).unwrap().clone();
    let (t, k, s) = (find(three), find(termed), find(sleeper));
    assert_eq!(
        (t.alive, t.exit_status, t.label.as_str()),
        (false, Some(3), "sh")
    );
    assert!(t.log_bytes >= 8, "out\\n + err\\n kept: {}", t.log_bytes);
    assert_eq!(k.exit_status, Some(128 + 15), "killed by SIGTERM: 128 + 15");
    assert_eq!((s.alive, s.exit_status, s.pid), (true, None, sleeper_pid));

    assert_eq!(logs(&mut c, ws, three, "stdout"), "out\n");
    assert_eq!(logs(&mut c, ws, three, "stderr"), "err\n");
    assert_eq!(logs(&mut c, ws, three, "both"), "out\nerr\n");
    assert_eq!(logs(&mut c, ws, three, ""), "out\nerr\n");

    match c.call(&Request::WorkspaceStats { workspace: ws }) {
        Response::WorkspaceStats { info } => {
            assert_eq!((info.commands_alive, info.commands_total), (1, 3));
            // procfs where the cgroup has no controllers (these hosts).
            assert!(["cgroup", "procfs"].contains(&info.source.as_str()));
            assert!(info.cpu_cores >= 1);
        }
        other => panic!("WorkspaceStats: {other:?}"),
    }
    match c.call(&Request::WorkspaceQuota { workspace: ws }) {
        Response::WorkspaceQuota { info } => {
            assert_eq!(info.mem_limit, Some(256 << 20));
            assert_eq!(info.nproc_limit, Some(64));
            assert!(
                info.breaches.iter().all(|b| b.contains(": ")),
                "{:?}",
                info.breaches
            );
        }
        other => panic!("WorkspaceQuota: {other:?}"),
    }
    // The daemon samples every workspace every 2 s.
    let mut samples = vec![];
    assert!(eventually(Duration::from_secs(10), || {
        match c.call(&Request::WorkspaceStatsHistory {
            workspace: ws,
            tail: 0,
        }) {
            Response::WorkspaceStatsHistory { samples: s } => samples = s,
            other => panic!("WorkspaceStatsHistory: {other:?}"),
        }
        !samples.is_empty()
    }));
    assert!(samples.last().unwrap().uptime_ms > 0);
    match c.call(&Request::WorkspaceFullSummary { workspace: ws }) {
        Response::WorkspaceFullSummary {
            stats,
            quota,
            commands,
            flow_sockets,
        } => {
            assert_eq!(stats.commands_total, 3);
            assert_eq!(quota.nproc_limit, Some(64));
            assert_eq!(commands.len(), 3);
            assert!(flow_sockets.is_empty());
        }
        other => panic!("WorkspaceFullSummary: {other:?}"),
    }

    // Pipelines: saved, listed, run tapped with vars, measured, stopped.
    match c.call(&Request::PipelineSave {
        name: "seedp".into(),
        spec: pipeline(ws),
    }) {
        Response::PipelineSaved { name } => assert_eq!(name, "seedp"),
        other => panic!("PipelineSave: {other:?}"),
    }
    match c.call(&Request::PipelineSavedList) {
        Response::PipelineSavedList { names } => assert_eq!(names, ["seedp"]),
        other => panic!("PipelineSavedList: {other:?}"),
    }
    let vars = BTreeMap::from([("WORD".to_owned(), "hola".to_owned())]);
    let (p, edges) = match c.call(&Request::PipelineRunSaved {
        name: "seedp".into(),
        tap: true,
        vars: vars.clone(),
    }) {
        Response::PipelineStarted {
            pipeline,
            command_pids,
            edges,
        } => {
            let labels: Vec<&str> = command_pids.iter().map(|(l, _)| l.as_str()).collect();
            assert_eq!(labels, ["a", "b"]);
            (pipeline, edges)
        }
        other => panic!("PipelineRunSaved: {other:?}"),
    };
    assert_eq!(edges.len(), 1);
    let e = &edges[0];
    assert_eq!(
        (e.from_label.as_str(), e.from_output.as_str()),
        ("a", "stdout")
    );
    assert_eq!((e.to_label.as_str(), e.to_input.as_str()), ("b", "stdin"));
    let socket = e.flow_socket.clone().expect("a tapped edge has a socket");
    match c.call(&Request::FlowList) {
        Response::FlowList { items } => {
            assert_eq!(items.len(), 1);
            assert_eq!(
                (items[0].pipeline, &items[0].sockets),
                (p, &vec![socket.clone()])
            );
        }
        other => panic!("FlowList: {other:?}"),
    }
    assert!(eventually(Duration::from_secs(10), || {
        match c.call(&Request::FlowThroughput) {
            Response::FlowThroughput { items } => {
                items.len() == 1 && items[0].socket == socket && items[0].bytes_total > 0
            }
            other => panic!("FlowThroughput: {other:?}"),
        }
    }));
    match c.call(&Request::WorkspaceFullSummary { workspace: ws }) {
        Response::WorkspaceFullSummary { flow_sockets, .. } => {
            assert_eq!(flow_sockets, std::slice::from_ref(&socket))
        }
        other => panic!("WorkspaceFullSummary: {other:?}"),
    }
    match c.call(&Request::FlowDrop { pipeline: p }) {
        Response::FlowDropped { pipeline, existed } => assert_eq!((pipeline, existed), (p, true)),
        other => panic!("FlowDrop: {other:?}"),
    }
    match c.call(&Request::PipelineStop {
        pipeline: p,
        grace_ms: 1000,
    }) {
        Response::PipelineStopped { pipeline, reaped } => {
            assert_eq!(pipeline, p);
            assert!(reaped >= 2, "reaped {reaped}");
        }
        other => panic!("PipelineStop: {other:?}"),
    }
    // An untapped run of the same spec, straight.
    let mut spec = pipeline(ws);
    spec.commands[0] = cmd("a", "echo", &["${WORD}"]);
    match c.call(&Request::PipelineRun {
        spec,
        tap: false,
        vars,
    }) {
        Response::PipelineStarted { edges, .. } => assert!(edges.is_empty()),
        other => panic!("PipelineRun: {other:?}"),
    }
    match c.call(&Request::PipelineDrop {
        name: "seedp".into(),
    }) {
        Response::PipelineDropped { name, existed } => {
            assert_eq!((name.as_str(), existed), ("seedp", true))
        }
        other => panic!("PipelineDrop: {other:?}"),
    }

    match c.call(&Request::Discern {
        sample: br#"{"a": [1, 2, {"b": null}]}"#.to_vec(),
        hint_path: None,
    }) {
        Response::Discernment { ty, mime, .. } => {
            assert_eq!(ty, "json");
            assert_eq!(mime.as_deref(), Some("application/json"));
        }
        other => panic!("Discern: {other:?}"),
    }

    match c.call(&Request::WorkspaceStop {
        id: ws,
        grace_ms: 500,
    }) {
        Response::WorkspaceStopped { id, reaped } => {
            assert_eq!(id, ws);
            assert!(reaped >= 1, "the sleeper was running; reaped {reaped}");
        }
        other => panic!("WorkspaceStop: {other:?}"),
    }
    match c.call(&Request::WorkspaceList) {
        Response::WorkspaceList { items } => assert!(items.is_empty(), "{items:?}"),
        other => panic!("WorkspaceList: {other:?}"),
    }
}
