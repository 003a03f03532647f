//! Golden bytes of every request and response variant. If one of these fails, the
//! wire changed: old clients and daemons can no longer talk to new ones. Read the
//! compatibility rule in protocol/SPEC.md before re-blessing with
//! `SHIPOTE_BLESS=1 cargo test -p shipote-protocol --test golden`.

use shipote_protocol::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn ulid(n: u128) -> Ulid {
    Ulid(n)
}

fn ws() -> WorkspaceId {
    WorkspaceId(ulid(0x0191_2345_6789_abcd_ef01_2345_6789_abcd))
}

fn pipeline_spec() -> PipelineSpec {
    PipelineSpec {
        workspace: ws(),
        label: "p".into(),
        commands: vec![CommandSpec {
            label: "a".into(),
            exec: "cat".into(),
            argv: vec!["-".into()],
            env: vec![("K".into(), "V".into())],
            cwd: Some(PathBuf::from("/t")),
            restart_on_failure: true,
        }],
        edges: vec![FlowEdge {
            from: Endpoint {
                label: "a".into(),
                port: "stdout".into(),
            },
            to: Endpoint {
                label: "b".into(),
                port: "stdin".into(),
            },
            rate_limit_bytes_per_sec: Some(1000),
        }],
    }
}

fn vars() -> BTreeMap<String, String> {
    BTreeMap::from([("K".to_owned(), "v".to_owned())])
}

fn full_spec() -> WorkspaceSpec {
    WorkspaceSpec {
        label: "web".into(),
        soma: Soma {
            mem_max_bytes: Some(512 << 20),
            mem_high_bytes: Some(400 << 20),
            swap_max_bytes: Some(0),
            tasks_max: Some(100),
            cpu_quota_percent: Some(150),
            cpu_weight: Some(100),
            io_weight: None,
        },
        permissions: Permissions {
            network: NetworkAccess::Loopback,
            read_only_root: true,
            writable_paths: vec!["/w".into()],
            hidden_paths: vec!["/h".into()],
            private_tmp: true,
            private_dev: false,
        },
        ttl_ms: Some(600_000),
        flow_dirs: vec!["/f".into()],
        on_exit: ExitPolicy::Keep,
        quota_enforce: QuotaEnforce::ReportOnly,
    }
}

fn requests() -> Vec<(&'static str, Request)> {
    let full_spec = full_spec();
    vec![
        ("Ping", Request::Ping),
        ("Health", Request::Health),
        (
            "WorkspaceCreate",
            Request::WorkspaceCreate { spec: full_spec },
        ),
        (
            "WorkspaceCreate.default",
            Request::WorkspaceCreate {
                spec: WorkspaceSpec::new("a"),
            },
        ),
        ("WorkspaceList", Request::WorkspaceList),
        (
            "WorkspaceStop",
            Request::WorkspaceStop {
                id: ws(),
                grace_ms: 1000,
            },
        ),
        (
            "Run",
            Request::Run {
                workspace: ws(),
                exec: "sleep".into(),
                argv: vec!["1".into()],
                envp: vec![("A".into(), "b".into())],
                restart_on_failure: false,
                cwd: None,
            },
        ),
        (
            "PipelineRun",
            Request::PipelineRun {
                spec: pipeline_spec(),
                tap: true,
                vars: vars(),
            },
        ),
        (
            "Discern",
            Request::Discern {
                sample: b"{}".to_vec(),
                hint_path: Some("x.json".into()),
            },
        ),
        ("Capabilities", Request::Capabilities),
        ("CommandList", Request::CommandList { workspace: ws() }),
        (
            "CommandLogs",
            Request::CommandLogs {
                workspace: ws(),
                command: ulid(7),
                tail_bytes: 4096,
                stream: LogStream::Stderr,
            },
        ),
        (
            "PipelineSave",
            Request::PipelineSave {
                name: "n".into(),
                spec: pipeline_spec(),
            },
        ),
        ("PipelineSavedList", Request::PipelineSavedList),
        ("PipelineDrop", Request::PipelineDrop { name: "n".into() }),
        (
            "PipelineRunSaved",
            Request::PipelineRunSaved {
                name: "n".into(),
                tap: false,
                vars: vars(),
            },
        ),
        (
            "WorkspaceStats",
            Request::WorkspaceStats { workspace: ws() },
        ),
        (
            "WorkspaceQuota",
            Request::WorkspaceQuota { workspace: ws() },
        ),
        (
            "WorkspaceStatsHistory",
            Request::WorkspaceStatsHistory {
                workspace: ws(),
                tail: 10,
            },
        ),
        (
            "WorkspaceFullSummary",
            Request::WorkspaceFullSummary { workspace: ws() },
        ),
        (
            "PipelineStop",
            Request::PipelineStop {
                pipeline: ulid(9),
                grace_ms: 0,
            },
        ),
        ("FlowList", Request::FlowList),
        ("FlowThroughput", Request::FlowThroughput),
        ("FlowDrop", Request::FlowDrop { pipeline: ulid(9) }),
        (
            "CommandLogsFrom",
            Request::CommandLogsFrom {
                workspace: ws(),
                command: ulid(7),
                stream: LogStream::Stdout,
                from: Some(4096),
                tail_bytes: 0,
                max_bytes: 65536,
            },
        ),
        ("WorkspaceDescribe", Request::WorkspaceDescribe { id: ws() }),
        ("Hello", Request::Hello { protocol: 1 }),
    ]
}

fn stats() -> WorkspaceStatsInfo {
    WorkspaceStatsInfo {
        commands_alive: 1,
        commands_total: 2,
        rss_bytes: Some(1 << 20),
        rss_peak_bytes: Some(2 << 20),
        cpu_usec: Some(1500),
        cpu_percent: Some(12.5),
        cpu_cores: 2,
        tasks: Some(3),
        source: "cgroup".into(),
        uptime_ms: 60_000,
        sampled_at_ms: 1_700_000_000_000,
    }
}

fn quota() -> QuotaReportInfo {
    QuotaReportInfo {
        mem_limit: Some(1 << 20),
        nproc_limit: Some(20),
        cpu_quota_percent: None,
        enforced: true,
        breaches: vec![Breach {
            kind: "memory.oom_kill".into(),
            count: 1,
        }],
    }
}

fn command() -> CommandInfo {
    CommandInfo {
        id: ulid(5),
        label: "sleep".into(),
        pid: 4242,
        alive: false,
        exit_status: None,
        exit_signal: Some(9),
        restarts: 2,
        failure: Some("crash loop".into()),
        log_bytes: 10,
    }
}

fn responses() -> Vec<(&'static str, Response)> {
    vec![
        ("Pong", Response::Pong),
        (
            "Health",
            Response::Health {
                version: "0.1.0".into(),
                uptime_ms: 1234,
                alive_workspaces: 1,
                alive_commands: 2,
                alive_pipelines: 3,
                active_flows: 4,
                dirty: true,
            },
        ),
        (
            "WorkspaceCreated",
            Response::WorkspaceCreated {
                id: ws(),
                unit: "u.scope".into(),
                warnings: vec!["w".into()],
            },
        ),
        (
            "WorkspaceList",
            Response::WorkspaceList {
                items: vec![WorkspaceSummary {
                    id: ws(),
                    label: "web".into(),
                    unit: "u.scope".into(),
                    commands: 1,
                    uptime_ms: 5,
                    on_exit: ExitPolicy::Reap,
                    ttl_left_ms: Some(9),
                }],
            },
        ),
        (
            "WorkspaceStopped",
            Response::WorkspaceStopped {
                id: ws(),
                reaped: 3,
            },
        ),
        (
            "RunStarted",
            Response::RunStarted {
                workspace: ws(),
                command_id: ulid(5),
                pid: 77,
            },
        ),
        (
            "PipelineStarted",
            Response::PipelineStarted {
                pipeline: ulid(9),
                command_pids: vec![("a".into(), 10)],
                edges: vec![EdgeDiscernmentInfo {
                    from_label: "a".into(),
                    from_output: "stdout".into(),
                    to_label: "b".into(),
                    to_input: "stdin".into(),
                    ty: Some("json".into()),
                    mime: Some("application/json".into()),
                    lens: Some("json".into()),
                    confidence: 0.9,
                    flow_socket: Some("/f/s".into()),
                }],
            },
        ),
        (
            "Discernment",
            Response::Discernment {
                ty: "json".into(),
                confidence: 0.5,
                mime: None,
                lens: Some("json".into()),
            },
        ),
        (
            "Capabilities",
            Response::Capabilities {
                kernel_version: (6, 1, 0),
                user_ns: "allowed".into(),
                cgroup_v2: "unified".into(),
                cgroup_delegated: true,
                has_cap_sys_admin: false,
                cgroup_path: Some("/a".into()),
                cgroup_controllers: vec!["memory".into()],
                backend: "systemd".into(),
                backend_reason: "r".into(),
                systemd_version: Some("252".into()),
            },
        ),
        (
            "CommandList",
            Response::CommandList {
                items: vec![command()],
            },
        ),
        (
            "CommandLogs",
            Response::CommandLogs {
                bytes: b"hi\n".to_vec(),
            },
        ),
        (
            "PipelineSaved",
            Response::PipelineSaved { name: "n".into() },
        ),
        (
            "PipelineSavedList",
            Response::PipelineSavedList {
                names: vec!["a".into(), "b".into()],
            },
        ),
        (
            "PipelineDropped",
            Response::PipelineDropped {
                name: "n".into(),
                existed: true,
            },
        ),
        (
            "PipelineStopped",
            Response::PipelineStopped {
                pipeline: ulid(9),
                reaped: 2,
            },
        ),
        ("WorkspaceStats", Response::WorkspaceStats { info: stats() }),
        ("WorkspaceQuota", Response::WorkspaceQuota { info: quota() }),
        (
            "WorkspaceStatsHistory",
            Response::WorkspaceStatsHistory {
                samples: vec![stats()],
            },
        ),
        (
            "WorkspaceFullSummary",
            Response::WorkspaceFullSummary {
                stats: stats(),
                quota: quota(),
                commands: vec![command()],
                flow_sockets: vec!["/f/s".into()],
            },
        ),
        (
            "FlowList",
            Response::FlowList {
                items: vec![FlowInfo {
                    pipeline: ulid(9),
                    sockets: vec!["/f/s".into()],
                }],
            },
        ),
        (
            "FlowThroughput",
            Response::FlowThroughput {
                items: vec![FlowThroughputInfo {
                    socket: "/f/s".into(),
                    bytes_total: 100,
                    bytes_per_sec: 2.5,
                    subscribers: 1,
                    dropped_bytes: 0,
                }],
            },
        ),
        (
            "FlowDropped",
            Response::FlowDropped {
                pipeline: ulid(9),
                existed: false,
            },
        ),
        (
            "Error",
            Response::error(ErrorCode::NotFound, "no such workspace"),
        ),
        (
            "CommandLogsFrom",
            Response::CommandLogsFrom {
                bytes: b"hi\n".to_vec(),
                next: 4099,
                skipped: 0,
                running: true,
            },
        ),
        (
            "WorkspaceDescription",
            Response::WorkspaceDescription {
                id: ws(),
                spec: full_spec(),
            },
        ),
        (
            "Hello",
            Response::Hello {
                protocol: 1,
                version: "0.2.0".into(),
            },
        ),
    ]
}

/// Protocol 0, the seed's wire: one case per seed request, the same values as
/// protocol 1's cases where the seed has the field.
fn seed_requests() -> Vec<(&'static str, seed::Request)> {
    requests()
        .into_iter()
        .filter(|(_, r)| frame::encode(r).unwrap()[frame::HEADER_BYTES] < 23)
        .map(|(name, r)| {
            let s = match r {
                Request::Ping => seed::Request::Ping,
                Request::Health => seed::Request::Health,
                Request::WorkspaceCreate { spec } => seed::Request::WorkspaceCreate { spec },
                Request::WorkspaceList => seed::Request::WorkspaceList,
                Request::WorkspaceStop { id, grace_ms } => {
                    seed::Request::WorkspaceStop { id, grace_ms }
                }
                Request::Run {
                    workspace,
                    exec,
                    argv,
                    envp,
                    restart_on_failure,
                    ..
                } => seed::Request::Run {
                    workspace,
                    exec,
                    argv,
                    envp,
                    restart_on_failure,
                },
                Request::PipelineRun { spec, tap, vars } => {
                    seed::Request::PipelineRun { spec, tap, vars }
                }
                Request::Discern { sample, hint_path } => {
                    seed::Request::Discern { sample, hint_path }
                }
                Request::Capabilities => seed::Request::Capabilities,
                Request::CommandList { workspace } => seed::Request::CommandList { workspace },
                Request::CommandLogs {
                    workspace,
                    command,
                    tail_bytes,
                    ..
                } => seed::Request::CommandLogs {
                    workspace,
                    command,
                    tail_bytes,
                    stream: "stderr".into(),
                },
                Request::PipelineSave { name, spec } => seed::Request::PipelineSave { name, spec },
                Request::PipelineSavedList => seed::Request::PipelineSavedList,
                Request::PipelineDrop { name } => seed::Request::PipelineDrop { name },
                Request::PipelineRunSaved { name, tap, vars } => {
                    seed::Request::PipelineRunSaved { name, tap, vars }
                }
                Request::WorkspaceStats { workspace } => {
                    seed::Request::WorkspaceStats { workspace }
                }
                Request::WorkspaceQuota { workspace } => {
                    seed::Request::WorkspaceQuota { workspace }
                }
                Request::WorkspaceStatsHistory { workspace, tail } => {
                    seed::Request::WorkspaceStatsHistory {
                        workspace,
                        tail: tail.into(),
                    }
                }
                Request::WorkspaceFullSummary { workspace } => {
                    seed::Request::WorkspaceFullSummary { workspace }
                }
                Request::PipelineStop { pipeline, grace_ms } => {
                    seed::Request::PipelineStop { pipeline, grace_ms }
                }
                Request::FlowList => seed::Request::FlowList,
                Request::FlowThroughput => seed::Request::FlowThroughput,
                Request::FlowDrop { pipeline } => seed::Request::FlowDrop { pipeline },
                other => panic!("{other:?} is not a seed request"),
            };
            (name, s)
        })
        .collect()
}

/// The seed's form of protocol 1's first 23 response cases.
fn seed_responses() -> Vec<(&'static str, seed::Response)> {
    responses()
        .into_iter()
        .take(23)
        .map(|(name, r)| (name, seed::Response::from(r)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check<T>(file: &str, cases: Vec<(&'static str, T)>)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    let actual: String = cases
        .iter()
        .map(|(name, msg)| format!("{name} {}\n", hex(&frame::encode(msg).unwrap())))
        .collect();
    for (name, msg) in &cases {
        let bytes = frame::encode(msg).unwrap();
        let back: T = frame::decode(&bytes[frame::HEADER_BYTES..]).unwrap();
        assert_eq!(&back, msg, "{name} does not survive a round trip");
    }
    if std::env::var_os("SHIPOTE_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    for (e, a) in expected.lines().zip(actual.lines()) {
        assert_eq!(
            e, a,
            "the wire encoding changed (see protocol/SPEC.md, compatibility)"
        );
    }
    assert_eq!(
        expected.lines().count(),
        actual.lines().count(),
        "variants were added or removed in {file}"
    );
}

#[test]
fn golden_requests() {
    check("requests.hex", requests());
}

#[test]
fn golden_responses() {
    check("responses.hex", responses());
}

#[test]
fn golden_seed_requests() {
    check("seed-requests.hex", seed_requests());
}

#[test]
fn golden_seed_responses() {
    check("seed-responses.hex", seed_responses());
}

/// Protocol 0 and protocol 1 differ exactly where SPEC.md section 14 says: every
/// other seed request is byte for byte the protocol-1 request it is lifted to.
#[test]
fn seed_requests_lift_to_protocol_1_and_differ_only_where_documented() {
    let differ: Vec<&str> = seed_requests()
        .into_iter()
        .filter_map(|(name, s)| {
            let seed_bytes = frame::encode(&s).unwrap();
            let lifted = s.into_current().unwrap();
            (frame::encode(&lifted).unwrap() != seed_bytes).then_some(name)
        })
        .collect();
    assert_eq!(differ, ["Run", "CommandLogs"]);
    let differ: Vec<&str> = responses()
        .into_iter()
        .take(23)
        .filter_map(|(name, r)| {
            let current = frame::encode(&r).unwrap();
            (frame::encode(&seed::Response::from(r)).unwrap() != current).then_some(name)
        })
        .collect();
    assert_eq!(
        differ,
        [
            "WorkspaceCreated",
            "WorkspaceList",
            "Capabilities",
            "CommandList",
            "WorkspaceStats",
            "WorkspaceQuota",
            "WorkspaceStatsHistory",
            "WorkspaceFullSummary",
            "FlowThroughput",
            "Error"
        ]
    );
}

#[test]
fn every_variant_has_a_golden_case() {
    // Variant indices are the first payload byte; every index must be covered,
    // in order, with no gaps.
    let idx = |bytes: Vec<u8>| bytes[frame::HEADER_BYTES];
    let mut req: Vec<u8> = requests()
        .into_iter()
        .map(|(_, r)| idx(frame::encode(&r).unwrap()))
        .collect();
    req.dedup();
    assert_eq!(req, (0..=25).collect::<Vec<u8>>());
    let resp: Vec<u8> = responses()
        .into_iter()
        .map(|(_, r)| idx(frame::encode(&r).unwrap()))
        .collect();
    assert_eq!(resp, (0..=25).collect::<Vec<u8>>());
    // One past the last variant is refused.
    assert!(frame::decode::<Request>(&[26]).is_err());
    assert!(frame::decode::<Response>(&[26]).is_err());
    let mut seed_req: Vec<u8> = seed_requests()
        .into_iter()
        .map(|(_, r)| idx(frame::encode(&r).unwrap()))
        .collect();
    seed_req.dedup();
    assert_eq!(seed_req, (0..=22).collect::<Vec<u8>>());
    assert!(frame::decode::<seed::Request>(&[23]).is_err());
    assert!(frame::decode::<seed::Response>(&[23]).is_err());
}
