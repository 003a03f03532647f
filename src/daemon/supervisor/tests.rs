//! The supervisor's timers on tokio's paused clock: TTLs and restart
//! backoffs fire when due and are cancelled by a stop, with no real
//! waiting. The process-group backend needs no cgroup. Then the loop's
//! decisions (starts, exits, restarts) against a fake spawner.
use super::*;
use crate::cgroup::{Layout, OwnCgroup};

fn env(dir: &Path, restart_policy: RestartPolicy) -> Environment {
    Environment {
        caps: Arc::new(HostCaps {
            kernel_version: (6, 1, 0),
            user_ns: "allowed".into(),
            cgroup: OwnCgroup {
                layout: Layout::None,
                path: None,
                dir: None,
                controllers: vec![],
                writable: false,
            },
            has_cap_sys_admin: false,
        }),
        backend: Arc::new(BackendInfo {
            backend: Backend::ProcessGroup,
            reason: "test".into(),
        }),
        keeper: KeeperProgram {
            program: "/bin/true".into(),
            sockets: dir.join("state/keepers"),
        },
        state_file: dir.join("state/workspaces.json"),
        log_dir: dir.join("state/logs"),
        pipelines_dir: dir.join("state/pipelines"),
        flows_dir: dir.join("flows"),
        restart_policy,
        own_uid: 0,
        shielded: vec![],
    }
}

async fn start(
    dir: &Path,
    policy: RestartPolicy,
) -> (
    SupervisorHandle,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (sup, handle, rx) = Supervisor::new(env(dir, policy), Notifier::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(sup.run(rx, stop.clone()));
    (handle, stop, task)
}

async fn live(handle: &SupervisorHandle) -> usize {
    match handle.request(0, Request::WorkspaceList).await {
        Response::WorkspaceList { items } => items.len(),
        other => panic!("{other:?}"),
    }
}

async fn create(handle: &SupervisorHandle, spec: WorkspaceSpec) -> WorkspaceId {
    match handle.request(0, Request::WorkspaceCreate { spec }).await {
        Response::WorkspaceCreated { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_ttl_stops_its_workspace_when_due_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, stop, task) = start(dir.path(), RestartPolicy::default()).await;
    let mut spec = WorkspaceSpec::new("ttl");
    spec.ttl_ms = Some(600_000);
    create(&handle, spec).await;
    // Ten minutes pass in no time.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(590)).await;
    assert_eq!(live(&handle).await, 1, "still there 10 s before its TTL");
    tokio::time::sleep(Duration::from_secs(20)).await;
    // Its stop runs real work: wait for it in real time, asking rather
    // than sleeping (a paused clock jumps only when every task is idle).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while live(&handle).await != 0 && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    assert_eq!(live(&handle).await, 0, "gone once its TTL ran out");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_stop_cancels_every_timer_of_its_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sup, _handle, _rx) = Supervisor::new(
        env(dir.path(), RestartPolicy::default()),
        Notifier::default(),
    );
    let (a, b) = (WorkspaceId(Ulid::new()), WorkspaceId(Ulid::new()));
    let hour = Duration::from_secs(3600);
    let key = sup.timers.insert(Timer::Ttl(a), hour);
    sup.ttl_timers.insert(a, key);
    for (w, c) in [(a, Ulid::new()), (a, Ulid::new()), (b, Ulid::new())] {
        let key = sup.timers.insert(
            Timer::Restart {
                workspace: w,
                command: c,
            },
            hour,
        );
        sup.restart_timers.insert((w, c), key);
    }
    sup.cancel_timers(a);
    assert_eq!(sup.timers.len(), 1, "only b's restart is left");
    assert!(sup.ttl_timers.is_empty());
    assert_eq!(
        sup.restart_timers.keys().map(|k| k.0).collect::<Vec<_>>(),
        [b]
    );
    // Cancelling again, or a workspace without timers, is harmless.
    sup.cancel_timers(a);
    sup.cancel_timers(WorkspaceId(Ulid::new()));
    assert_eq!(sup.timers.len(), 1);
}

// The loop's decisions against a fake spawner: start reports and exits are
// made up by the test (no command runs), and what the supervisor does with
// them is checked. Where a decision ends a process, a real `sleep` stands in.

/// A supervisor with one workspace (no cgroup, no keeper).
fn with_workspace(dir: &Path, policy: RestartPolicy) -> (Supervisor, WorkspaceId) {
    let (mut sup, _handle, _rx) = Supervisor::new(env(dir, policy), Notifier::default());
    let id = WorkspaceId(Ulid::new());
    let created = Created {
        cgroup: None,
        keeper_pid: None,
        link: None,
        warnings: vec![],
    };
    let ws = Workspace::new(
        id,
        "shipote-ws-test.scope".into(),
        WorkspaceSpec::new("decisions"),
        created,
        SystemTime::now(),
        Instant::now(),
    );
    sup.workspaces.insert(id, ws);
    (sup, id)
}

/// A command's record, restartable when `run` is true.
fn record(id: Ulid, run: bool) -> CommandRec {
    let logs = LogPaths::new(Path::new("/nonexistent"), &id.to_string());
    let mut rec = CommandRec::new(id, "fake".into(), logs, None);
    rec.run = run.then(|| RunSpec {
        exec: "false".into(),
        argv: vec![],
        envp: vec![],
        cwd: None,
    });
    rec
}

fn report(
    workspace: WorkspaceId,
    command: Ulid,
    result: Result<Vec<Process>, (ErrorCode, String)>,
    purpose: Purpose,
) -> StartReport {
    StartReport {
        workspace,
        commands: vec![command],
        result,
        purpose,
    }
}

fn process(pid: i32) -> Process {
    Process {
        pid,
        capture: Arc::default(),
        kept_ends: None,
    }
}

fn exited(code: i32) -> Option<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    Some(std::process::ExitStatus::from_raw(code << 8))
}

#[tokio::test]
async fn a_started_run_joins_its_workspace_then_its_client_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sup, ws) = with_workspace(dir.path(), RestartPolicy::default());
    let id = Ulid::new();
    sup.workspaces
        .get_mut(&ws)
        .unwrap()
        .starting
        .insert(id, record(id, false));
    // Not listed while it starts.
    assert!(sup.workspaces[&ws].commands.is_empty());
    let (tx, rx) = oneshot::channel();
    sup.on_started(report(ws, id, Ok(vec![process(4242)]), Purpose::Run(tx)));
    match rx.await.unwrap() {
        Response::RunStarted {
            command_id, pid, ..
        } => assert_eq!((command_id, pid), (id, 4242)),
        other => panic!("{other:?}"),
    }
    let w = &sup.workspaces[&ws];
    assert!(w.starting.is_empty());
    assert_eq!(w.commands[&id].pid, 4242);
    assert!(w.commands[&id].alive);
}

#[tokio::test]
async fn a_run_that_fails_to_start_leaves_no_record_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sup, ws) = with_workspace(dir.path(), RestartPolicy::default());
    let id = Ulid::new();
    sup.workspaces
        .get_mut(&ws)
        .unwrap()
        .starting
        .insert(id, record(id, false));
    let (tx, rx) = oneshot::channel();
    let failed = Err((ErrorCode::Busy, "out of file descriptors".into()));
    sup.on_started(report(ws, id, failed, Purpose::Run(tx)));
    match rx.await.unwrap() {
        Response::Error { code, message } => {
            assert_eq!(code, ErrorCode::Busy);
            assert_eq!(message, "cannot run: out of file descriptors");
        }
        other => panic!("{other:?}"),
    }
    let w = &sup.workspaces[&ws];
    assert!(w.starting.is_empty() && w.commands.is_empty());
}

#[tokio::test]
async fn a_command_started_as_its_workspace_stops_is_ended_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sup, ws) = with_workspace(dir.path(), RestartPolicy::default());
    let id = Ulid::new();
    let w = sup.workspaces.get_mut(&ws).unwrap();
    w.starting.insert(id, record(id, false));
    w.stopping = true;
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let (tx, rx) = oneshot::channel();
    let pid = sleeper.id() as i32;
    sup.on_started(report(ws, id, Ok(vec![process(pid)]), Purpose::Run(tx)));
    match rx.await.unwrap() {
        Response::Error { message, .. } => assert!(message.contains("was stopped"), "{message}"),
        other => panic!("{other:?}"),
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(sleeper.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(sup.workspaces[&ws].commands.is_empty());
}

#[tokio::test]
async fn a_failing_command_is_restarted_with_backoff_until_the_crash_loop_limit() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RestartPolicy {
        crash_loop_limit: 2,
        ..RestartPolicy::default()
    };
    let (mut sup, ws) = with_workspace(dir.path(), policy);
    let id = Ulid::new();
    sup.workspaces
        .get_mut(&ws)
        .unwrap()
        .commands
        .insert(id, record(id, true));
    for round in 1..=2 {
        sup.on_command_exited(ws, id, exited(3));
        let rec = &sup.workspaces[&ws].commands[&id];
        assert!(rec.backoff && rec.alive, "round {round}: waits to restart");
        assert_eq!(rec.restart.restarts, round);
        assert!(sup.restart_timers.contains_key(&(ws, id)));
        // Its backoff is over and the (fake) restart reports a process.
        let key = sup.restart_timers.remove(&(ws, id)).unwrap();
        sup.timers.remove(&key);
        let pid = 5000 + round as i32;
        sup.on_started(report(
            ws,
            id,
            Ok(vec![process(pid)]),
            Purpose::Restart(None),
        ));
        let rec = &sup.workspaces[&ws].commands[&id];
        assert!(!rec.backoff && rec.alive && rec.pid == pid);
    }
    sup.on_command_exited(ws, id, exited(3));
    let rec = &sup.workspaces[&ws].commands[&id];
    assert!(!rec.alive && !rec.backoff, "given up");
    assert!(rec.failure.as_deref().unwrap().contains("crash loop"));
    assert_eq!(rec.exit_status, Some(3));
    assert!(sup.restart_timers.is_empty() && sup.timers.is_empty());
}

#[tokio::test]
async fn success_a_stopping_workspace_or_no_policy_restarts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sup, ws) = with_workspace(dir.path(), RestartPolicy::default());
    let (ok, plain, stopping) = (Ulid::new(), Ulid::new(), Ulid::new());
    let w = sup.workspaces.get_mut(&ws).unwrap();
    w.commands.insert(ok, record(ok, true));
    w.commands.insert(plain, record(plain, false));
    sup.on_command_exited(ws, ok, exited(0));
    sup.on_command_exited(ws, plain, exited(1));
    sup.workspaces
        .get_mut(&ws)
        .unwrap()
        .commands
        .insert(stopping, record(stopping, true));
    sup.workspaces.get_mut(&ws).unwrap().stopping = true;
    sup.on_command_exited(ws, stopping, exited(1));
    assert!(sup.timers.is_empty());
    for id in [ok, plain, stopping] {
        let rec = &sup.workspaces[&ws].commands[&id];
        assert!(!rec.alive && !rec.backoff && rec.failure.is_none(), "{id}");
    }
    assert_eq!(sup.workspaces[&ws].commands[&plain].exit_status, Some(1));
}

#[tokio::test]
async fn a_restart_that_cannot_start_says_why_in_ps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sup, ws) = with_workspace(dir.path(), RestartPolicy::default());
    let id = Ulid::new();
    let mut rec = record(id, true);
    rec.backoff = true;
    sup.workspaces
        .get_mut(&ws)
        .unwrap()
        .commands
        .insert(id, rec);
    let failed = Err((ErrorCode::Invalid, "program vanished".into()));
    sup.on_started(report(ws, id, failed, Purpose::Restart(None)));
    let rec = &sup.workspaces[&ws].commands[&id];
    assert!(!rec.alive && !rec.backoff);
    assert_eq!(
        rec.note().as_deref(),
        Some("restart failed: program vanished")
    );
}

#[test]
fn a_command_meta_written_by_an_earlier_daemon_is_still_read() {
    #[derive(serde::Serialize)]
    struct Before {
        label: String,
        run: Option<RunSpec>,
        restarts: u32,
        failures_in_a_row: u32,
        pipeline: Option<(Ulid, String)>,
    }
    let spec = RunSpec {
        exec: "server".into(),
        argv: vec!["--port".into(), "8080".into()],
        envp: vec![("A".into(), "b".into())],
        cwd: Some("/srv".into()),
    };
    let old = postcard::to_allocvec(&Before {
        label: "server".into(),
        run: Some(spec.clone()),
        restarts: 3,
        failures_in_a_row: 1,
        pipeline: None,
    })
    .unwrap();
    let m = CommandMeta::decode(&old);
    assert_eq!(
        (m.label.as_str(), m.restarts, m.failures_in_a_row),
        ("server", 3, 1)
    );
    assert_eq!(
        m.run.as_ref().map(|r| r.argv.clone()),
        Some(spec.argv.clone())
    );
    assert!(m.spec.is_none());
    let new = postcard::to_allocvec(&CommandMeta {
        spec: Some(spec.clone()),
        ..m
    })
    .unwrap();
    let m = CommandMeta::decode(&new);
    assert_eq!(m.spec.map(|s| s.cwd), Some(Some("/srv".into())));
    assert_eq!(
        CommandMeta::decode(b"\xff\xff").label,
        "",
        "garbage: an empty meta"
    );
}
