//! Work that runs off the supervisor, on blocking threads and tasks, and
//! reports back as events: planning pipelines, starting commands, following
//! them to their exit. Nothing here sees the supervisor itself.

use super::*;

/// Renders and validates a pipeline on a blocking thread and hands the plan
/// to the supervisor, or answers the client with what is wrong.
pub(super) fn planned(
    tx: &mpsc::Sender<Event>,
    spec: &PipelineSpec,
    vars: &BTreeMap<String, String>,
    tap: bool,
    reply: oneshot::Sender<Response>,
) {
    match pipeline::plan(spec, vars) {
        Ok(plan) => {
            let event = Event::PipelinePlanned {
                plan: Box::new(plan),
                tap,
                reply,
            };
            let _ = tx.blocking_send(event);
        }
        Err(e) => {
            let _ = reply.send(Response::error(ErrorCode::Invalid, e));
        }
    }
}

/// What to do once a start's event is queued (answer the client).
pub(super) type Then = Box<dyn FnOnce() + Send>;

/// A command to start (or restart), as the loop hands it off.
pub(super) struct Launch {
    /// Where its events go.
    pub(super) tx: mpsc::Sender<Event>,
    /// Its workspace.
    pub(super) workspace: WorkspaceId,
    /// The command.
    pub(super) command: Ulid,
    /// Its program.
    pub(super) run: RunSpec,
    /// Its cgroup leaf (`cmd-<id>`), when the backend has cgroups.
    pub(super) leaf: Option<Cgroup>,
    /// The leaf exists already (a workspace's spare).
    pub(super) leaf_exists: bool,
    /// The workspace's namespaces, when it has permissions.
    pub(super) namespaces: Option<Arc<Namespaces>>,
    /// Its log files.
    pub(super) logs: LogPaths,
    /// Continue the log (a restart) rather than start it.
    pub(super) append: bool,
    /// A pipeline command's edges.
    pub(super) ends: Option<Arc<crate::flow::Ends>>,
}

/// Starts (or restarts) a command's process on a blocking thread, queues the
/// event `report` makes of the outcome (pid or error) and then runs what it
/// returns with it, then reports the process's exit.
pub(super) fn start_in_background(
    launch: Launch,
    report: impl FnOnce(Result<(i32, Arc<CaptureState>), String>) -> (Option<Event>, Then)
        + Send
        + 'static,
) {
    let Launch {
        tx,
        workspace,
        command,
        run,
        leaf,
        leaf_exists,
        namespaces,
        logs,
        append,
        ends,
    } = launch;
    tokio::task::spawn_blocking(move || {
        let io = match ends
            .as_deref()
            .map(crate::flow::Ends::try_clone)
            .transpose()
        {
            Ok(Some(e)) => e,
            Ok(None) => Default::default(),
            Err(e) => {
                let (event, then) = report(Err(format!("cannot copy its pipes: {e}")));
                if let Some(event) = event {
                    let _ = tx.blocking_send(event);
                }
                then();
                return;
            }
        };
        let req = crate::workspace::command::StartRequest {
            exec: run.exec,
            argv: run.argv,
            envp: run.envp,
            cwd: run.cwd,
            leaf,
            logs,
            leaf_exists,
            namespaces,
            append,
            io,
        };
        let (result, started) = match crate::workspace::command::start(req) {
            Ok(s) => (Ok((s.pid, s.capture.clone())), Some(s)),
            Err(e) => (Err(e), None),
        };
        let (event, then) = report(result);
        if let Some(event) = event {
            let _ = tx.blocking_send(event);
        }
        then();
        if let Some(started) = started {
            follow(tx, workspace, command, started);
        }
    });
}

/// Once a started command's client has its answer: drains its output into
/// its log and reports its exit as an event.
pub(super) fn follow(
    tx: mpsc::Sender<Event>,
    workspace: WorkspaceId,
    command: Ulid,
    mut started: crate::workspace::command::Started,
) {
    started.capture();
    let child = started.child;
    let capture = started.capture.clone();
    tokio::spawn(async move {
        let status = child.wait().await.ok();
        // Its exit is told once its output is in its log: whoever sees it
        // ended (`ps`, a waiting client) then reads all of it.
        capture.wait_drained(DRAIN_WAIT).await;
        let _ = tx
            .send(Event::CommandExited {
                workspace,
                command,
                status,
            })
            .await;
    });
}

/// A number in [-1, 1] for backoff jitter (no need for a real RNG).
pub(super) fn jitter_unit() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 2001) / 1000.0 - 1.0
}
