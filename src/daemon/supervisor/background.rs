//! Work that runs off the supervisor, on blocking threads and tasks, and
//! reports back as events: planning pipelines, starting commands, following
//! them to their exit. Nothing here sees the supervisor itself.

use super::*;
use crate::keeper::link::KeeperLink;
use std::os::fd::AsFd;

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

/// What a start was for: it decides what the loop does with the outcome.
#[derive(Debug)]
pub(super) enum Purpose {
    /// A `Run`: its record waits in the workspace's `starting`; its client
    /// waits for RunStarted.
    Run(oneshot::Sender<Response>),
    /// A restart (after a backoff, or asked for: then its client waits for
    /// RunStarted): its record stays in `commands`.
    Restart(Option<oneshot::Sender<Response>>),
    /// A pipeline: its commands' records wait in `starting`.
    Pipeline(Box<PipelineStart>),
}

/// A pipeline's start, beyond its commands' processes.
#[derive(Debug)]
pub(super) struct PipelineStart {
    pub(super) pipeline: Ulid,
    pub(super) label: String,
    /// Its interposed edges (empty when the start failed).
    pub(super) taps: Vec<EdgeTap>,
    /// The first bytes' discernment of each tapped edge.
    pub(super) edges: Vec<EdgeDiscernmentInfo>,
    pub(super) reply: oneshot::Sender<Response>,
}

/// One started process of a start.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) pid: i32,
    pub(super) capture: Arc<CaptureState>,
    /// A restartable pipeline command's edges, kept for its next run.
    pub(super) kept_ends: Option<Arc<crate::flow::Ends>>,
}

/// The one report of every start, Run, restart or pipeline, to the loop:
/// the commands it was for, and their processes (in the same order) or why
/// they could not all start (those that had started are already ended).
#[derive(Debug)]
pub struct StartReport {
    pub(super) workspace: WorkspaceId,
    pub(super) commands: Vec<Ulid>,
    pub(super) result: Result<Vec<Process>, (ErrorCode, String)>,
    pub(super) purpose: Purpose,
}

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
    /// What the start is for.
    pub(super) purpose: Purpose,
    /// The workspace's keeper, which starts it.
    pub(super) keeper: Option<crate::workspace::command::ByKeeper>,
}

/// Starts (or restarts) a command's process on a blocking thread, reports
/// the outcome ([`StartReport`]), then follows the process to its exit.
pub(super) fn start_in_background(launch: Launch) {
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
        purpose,
        keeper,
    } = launch;
    tokio::task::spawn_blocking(move || {
        let started = ends
            .as_deref()
            .map(crate::flow::Ends::try_clone)
            .transpose()
            .map_err(|e| format!("cannot copy its pipes: {e}"))
            .and_then(|io| {
                crate::workspace::command::start(crate::workspace::command::StartRequest {
                    exec: run.exec,
                    argv: run.argv,
                    envp: run.envp,
                    cwd: run.cwd,
                    leaf,
                    logs,
                    leaf_exists,
                    namespaces,
                    append,
                    io: io.unwrap_or_default(),
                    keeper,
                })
            });
        let result = match &started {
            Ok(s) => Ok(vec![Process {
                pid: s.pid,
                capture: s.capture.clone(),
                kept_ends: None,
            }]),
            Err(e) if crate::process::fds::names_exhaustion(e) => {
                let why = crate::process::fds::shortage();
                Err((ErrorCode::Busy, why))
            }
            Err(e) => Err((ErrorCode::Invalid, e.clone())),
        };
        report_started(
            &tx,
            StartReport {
                workspace,
                commands: vec![command],
                result,
                purpose,
            },
            started.into_iter().map(|s| (command, s)).collect(),
        );
    });
}

/// Queues a start's report, then follows each started process: its exit is
/// reported after its start.
pub(super) fn report_started(
    tx: &mpsc::Sender<Event>,
    report: StartReport,
    started: Vec<(Ulid, crate::workspace::command::Started)>,
) {
    let workspace = report.workspace;
    let _ = tx.blocking_send(Event::Started(Box::new(report)));
    for (command, s) in started {
        follow(tx.clone(), workspace, command, s);
    }
}

/// Once a started command's start is reported: drains its output into
/// its log and reports its exit as an event.
pub(super) fn follow(
    tx: mpsc::Sender<Event>,
    workspace: WorkspaceId,
    command: Ulid,
    mut started: crate::workspace::command::Started,
) {
    started.capture();
    let exit = started.exit;
    let pid = started.pid;
    let capture = started.capture.clone();
    tokio::spawn(async move {
        let settle = exit.settle_with();
        let status = exit.wait().await;
        // Its exit is told once its output is in its log: whoever sees it
        // ended (`ps`, a waiting client) then reads all of it.
        capture.wait_drained(DRAIN_WAIT).await;
        if let (Some((link, command)), Some(_)) = (settle, status) {
            // Off the async workers: a send may wait for room.
            tokio::task::spawn_blocking(move || link.settled(command, pid));
        }
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

/// A pipeline's started processes (with their follow handles), its taps and
/// its tapped edges' first discernment.
pub(super) type PipelineProcesses = (
    Vec<Process>,
    Vec<crate::workspace::command::Started>,
    Vec<EdgeTap>,
    Vec<EdgeDiscernmentInfo>,
);

/// Where a pipeline command runs: its leaf, its log, its environment (the
/// spec's plus its ports').
#[derive(Debug)]
pub(super) struct Place {
    pub(super) leaf: Option<Cgroup>,
    pub(super) logs: LogPaths,
    pub(super) envp: Vec<(String, String)>,
    pub(super) keeper: Option<crate::workspace::command::ByKeeper>,
}

/// Starts a pipeline on a blocking thread: wires its edges, starts each
/// command (in its leaf, with its log and environment from `places`), its
/// relays and taps, and waits briefly for the first bytes' discernment. On
/// failure every process it started is ended.
pub(super) fn start_pipeline(
    plan: &pipeline::Plan,
    places: Vec<Place>,
    namespaces: Option<Arc<Namespaces>>,
    tap: bool,
    flows_dir: &Path,
    pipeline: Ulid,
    link: Option<Arc<KeeperLink>>,
) -> Result<PipelineProcesses, (ErrorCode, String)> {
    let internal =
        |what: &str, e: &dyn std::fmt::Display| (ErrorCode::Internal, format!("{what}: {e}"));
    let wiring = crate::flow::wire(plan, tap).map_err(|e| internal("cannot make the pipes", &e))?;
    let mut started: Vec<crate::workspace::command::Started> = Vec::with_capacity(places.len());
    let mut procs = Vec::with_capacity(places.len());
    // A pipeline that cannot start whole starts nothing: what started is
    // killed and reaped here (a keeper reaps its own).
    let kill_all = |started: &mut Vec<crate::workspace::command::Started>| {
        for s in started.drain(..) {
            crate::process::signal(s.pid as u32, nix::sys::signal::Signal::SIGKILL);
            if let crate::workspace::command::Exit::Child(child) = s.exit {
                child.reap();
            }
        }
    };
    for (
        i,
        (
            ends,
            Place {
                leaf,
                logs,
                envp,
                keeper,
            },
        ),
    ) in wiring.ends.into_iter().zip(places).enumerate()
    {
        let c = &plan.spec.commands[i];
        let kept_ends = match c.restart_on_failure.then(|| ends.try_clone()).transpose() {
            Ok(kept) => kept.map(Arc::new),
            Err(e) => {
                kill_all(&mut started);
                return Err(internal("cannot keep the pipes", &e));
            }
        };
        let req = crate::workspace::command::StartRequest {
            exec: c.exec.clone(),
            argv: c.argv.clone(),
            envp,
            cwd: c.cwd.clone(),
            leaf,
            logs,
            leaf_exists: false,
            namespaces: namespaces.clone(),
            append: false,
            io: ends,
            keeper,
        };
        match crate::workspace::command::start(req) {
            Ok(s) => {
                procs.push(Process {
                    pid: s.pid,
                    capture: s.capture.clone(),
                    kept_ends,
                });
                started.push(s);
            }
            Err(e) => {
                kill_all(&mut started);
                let msg = format!("cannot start {:?}: {e}", c.label);
                return Err((ErrorCode::Invalid, msg));
            }
        }
    }
    for (src, dsts) in wiring.relays {
        // A kept workspace's relays run in its keeper: they flow on while
        // no daemon runs.
        let relayed = match &link {
            Some(link) => link.relay(src, dsts).map(drop),
            None => crate::flow::relay(src, dsts).map(drop),
        };
        if let Err(e) = relayed {
            kill_all(&mut started);
            return Err(internal("cannot start a relay", &e));
        }
    }
    let mut taps = Vec::with_capacity(wiring.interposed.len());
    for i in wiring.interposed {
        let e = &plan.spec.edges[i.edge];
        let socket = tap.then(|| flows_dir.join(format!("{pipeline}.{}.sock", i.edge)));
        // Its keeper holds its ends while no daemon moves its bytes, and
        // lets go once it ends.
        let edge = i.edge as u32;
        let on_end = link.as_ref().and_then(|link| {
            let meta = EdgeMeta {
                label: plan.spec.label.clone(),
                edge: e.clone(),
                socket: socket.clone(),
            };
            let meta = postcard::to_allocvec(&meta).ok()?;
            link.hold(pipeline, edge, meta, i.src.as_fd(), i.dst.as_fd())
                .ok()?;
            let link = link.clone();
            Some(Box::new(move || link.release(pipeline, Some(edge))) as crate::flow::tap::OnEnd)
        });
        match crate::flow::tap::start(
            i.src,
            i.dst,
            socket.as_deref(),
            e.rate_limit_bytes_per_sec,
            on_end,
        ) {
            Ok(t) => taps.push(EdgeTap {
                edge: e.clone(),
                index: edge,
                tap: t,
                last: (Instant::now(), 0),
            }),
            Err(err) => {
                kill_all(&mut started);
                EdgeTap::unpublish_all(&taps);
                if let Some(link) = &link {
                    link.release(pipeline, None);
                }
                return Err(internal("cannot start a tap", &err));
            }
        }
    }
    // The first bytes' discernment, when they come soon.
    let deadline = Instant::now() + DISCERN_WAIT;
    while tap
        && Instant::now() < deadline
        && taps.iter().any(|t| {
            t.tap.socket.is_some()
                && !t.tap.state.ended.load(std::sync::atomic::Ordering::Acquire)
                && t.tap
                    .state
                    .discerned
                    .lock()
                    .map(|d| d.is_none())
                    .unwrap_or(false)
        })
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    let edges: Vec<EdgeDiscernmentInfo> = taps
        .iter()
        .filter(|t| t.tap.socket.is_some())
        .map(|t| {
            let d = t.tap.state.discerned.lock().ok().and_then(|d| *d);
            EdgeDiscernmentInfo {
                from_label: t.edge.from.label.clone(),
                from_output: t.edge.from.port.clone(),
                to_label: t.edge.to.label.clone(),
                to_input: t.edge.to.port.clone(),
                ty: d.map(|d| d.ty().to_owned()),
                mime: d.map(|d| d.mime().to_owned()),
                lens: d.map(|d| d.lens.as_str().to_owned()),
                confidence: d.map_or(0.0, |d| d.confidence),
                flow_socket: t.tap.socket.clone(),
            }
        })
        .collect();
    Ok((procs, started, taps, edges))
}
