//! The supervisor's timers on tokio's paused clock: TTLs and restart
//! backoffs fire when due and are cancelled by a stop, with no real
//! waiting. The process-group backend needs no cgroup.
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
        keeper_program: "/bin/true".into(),
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
