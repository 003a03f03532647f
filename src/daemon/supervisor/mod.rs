//! The supervisor: the one task that owns the daemon's state. Connections send it
//! [`Event`]s through a [`SupervisorHandle`]; requests carry a oneshot for their
//! reply. It never awaits the outside world: D-Bus calls, cgroup reads, stops and
//! disk writes run in spawned tasks that either answer the client themselves (for
//! reads) or report back as events (for changes).
//!
//! Where things are:
//! - here: the events, the handle, the loop (events, timers, ticks) and the
//!   router, which only routes: each request goes to a handler in its domain's
//!   file, and every handler answers its reply;
//! - `records.rs`: the records (a workspace, a command, a pipeline) and what
//!   they say about themselves;
//! - `workspaces.rs`, `commands.rs`, `pipelines.rs`, `sampling.rs`,
//!   `persist.rs`: the handlers, by domain; they run on the loop and never
//!   wait;
//! - `background.rs`: what runs off the loop (planning a pipeline, starting a
//!   command, following it to its exit) and reports back as events;
//! - `tests.rs`: unit tests of the loop on a paused clock.

mod background;
mod commands;
mod persist;
mod pipelines;
mod records;
mod sampling;
#[cfg(test)]
mod tests;
mod workspaces;

use super::audit;
use crate::cgroup::Cgroup;
use crate::host::HostCaps;
use crate::process::logs::{CaptureState, LogPaths, Stream};
use crate::process::namespaces::{self, Namespaces, Refusal};
use crate::systemd::notify::Notifier;
use crate::workspace::backend::{Backend, Created, KeeperProgram};
use crate::workspace::restart::{Decision, RestartPolicy, RestartState};
use crate::workspace::state::{self, SavedWorkspace};
use crate::workspace::stats::{self, Reading, HISTORY_CAPACITY, HISTORY_INTERVAL};
use crate::workspace::{self as ws, budget, pipeline, saved, unit_name};
use background::*;
use commands::LogsFrom;
use persist::persister;
use records::*;
use shipote_protocol::{
    Breach, CommandInfo, EdgeDiscernmentInfo, ErrorCode, ExitPolicy, FlowInfo, FlowThroughputInfo,
    LogStream, PipelineSpec, QuotaEnforce, Request, Response, Ulid, WorkspaceId, WorkspaceSpec,
    WorkspaceStatsInfo, WorkspaceSummary,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::time::{delay_queue, DelayQueue};

/// How many events may wait for the supervisor before senders wait.
const EVENT_QUEUE: usize = 1024;

/// Status lines go to the service manager at most this often.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Most workspaces one daemon runs.
pub const MAX_WORKSPACES: usize = 1000;

/// Longest a command's exit waits to be told for its output to reach its log
/// (only a child that keeps the pipes open makes it wait that long).
pub const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// Ended commands a workspace keeps (exit status, logs) before the oldest go.
pub const KEPT_ENDED_COMMANDS: usize = 1000;

/// Most bytes of log one CommandLogs answer carries (the frame limit is 1 MiB).
pub const MAX_LOG_TAIL_BYTES: u64 = 1_000_000;

/// Most bytes one CommandLogsFrom answer carries.
pub const MAX_LOG_READ_BYTES: u64 = 960 << 10;

/// Stopped workspaces whose commands (exit statuses, logs) stay readable.
pub const KEPT_STOPPED: usize = 32;

/// Grace given to processes when a TTL expires or the daemon stops.
pub const AUTO_STOP_GRACE: Duration = Duration::from_secs(1);

/// What the supervisor reacts to.
#[derive(Debug)]
pub enum Event {
    /// A client's request and where to send the answer.
    Request {
        /// The request (boxed: it can be large, and events are moved around).
        request: Box<Request>,
        /// The caller's uid (for audit records the supervisor writes).
        uid: u32,
        /// Where the response goes.
        reply: oneshot::Sender<Response>,
    },
    /// A client connected (counted in the status line).
    ClientConnected,
    /// A client went away.
    ClientDisconnected,
    /// The watchdog asks whether the supervisor still answers.
    Probe {
        /// Answered at once.
        reply: oneshot::Sender<()>,
    },
    /// A backend finished creating a workspace.
    Created {
        /// Which.
        id: WorkspaceId,
        /// Its unit name.
        unit: String,
        /// What was asked for.
        spec: Box<WorkspaceSpec>,
        /// What the backend made, or why it failed (and how to classify it).
        result: Result<Created, (ErrorCode, String)>,
        /// Its permissions' namespaces.
        namespaces: Option<Arc<Namespaces>>,
        /// The client waiting.
        reply: oneshot::Sender<Response>,
    },
    /// A backend finished stopping a workspace.
    Stopped {
        /// Which.
        id: WorkspaceId,
        /// Processes ended, or why it failed.
        result: Result<u32, String>,
        /// The client waiting, if a client asked.
        reply: Option<oneshot::Sender<Response>>,
    },
    /// A start (Run, restart or pipeline) ended: its processes run, or it
    /// failed.
    Started(Box<StartReport>),
    /// A restart asked for has ended the command's processes (its leaf is
    /// empty: the new process may be born there).
    RestartEnded {
        /// Its workspace.
        workspace: WorkspaceId,
        /// The command.
        command: Ulid,
    },
    /// A spare command leaf was made (or could not be).
    SpareLeaf {
        /// Its workspace.
        workspace: WorkspaceId,
        /// The command id it is named for.
        id: Ulid,
        /// Whether mkdir succeeded.
        made: bool,
    },
    /// A command's process exited.
    CommandExited {
        /// Its workspace.
        workspace: WorkspaceId,
        /// Which.
        command: Ulid,
        /// How it ended.
        status: Option<std::process::ExitStatus>,
    },
    /// Time to sample every workspace.
    SampleTick,
    /// Readings taken by a sampling task.
    Sampled {
        /// The sampler, handed back for the next round.
        sampler: Box<stats::Sampler>,
        /// One per workspace.
        readings: Vec<(WorkspaceId, Reading)>,
        /// When.
        at: Instant,
    },
    /// The persister wrote this generation of the state, or failed to.
    Persisted {
        /// Which generation.
        generation: u64,
        /// Why it could not be written.
        error: Option<String>,
    },
    /// A pipeline's spec was rendered and validated (off the supervisor).
    PipelinePlanned {
        /// The plan.
        plan: Box<pipeline::Plan>,
        /// Tap every edge.
        tap: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<Response>,
    },
    /// The log budget removed these commands' logs (freeing `freed` bytes).
    LogsPruned {
        /// Whose logs went.
        pruned: Vec<(WorkspaceId, Ulid)>,
        /// Bytes freed.
        freed: u64,
    },
    /// The daemon stops: reap what must be reaped, persist the rest.
    Shutdown {
        /// Answered when done.
        reply: oneshot::Sender<()>,
    },
}

/// What a timer of the supervisor's loop is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// A workspace's TTL ran out.
    Ttl(WorkspaceId),
    /// A command's restart backoff is over.
    Restart {
        /// Its workspace.
        workspace: WorkspaceId,
        /// The command.
        command: Ulid,
    },
}

/// A cheap, clonable way to talk to the supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    tx: mpsc::Sender<Event>,
}

impl SupervisorHandle {
    /// Sends a request and waits for its response. Never fails: a supervisor
    /// that is gone yields an `Error` response.
    pub async fn request(&self, uid: u32, request: Request) -> Response {
        let name = request.name();
        let (reply, rx) = oneshot::channel();
        let event = Event::Request {
            request: Box::new(request),
            uid,
            reply,
        };
        if self.tx.send(event).await.is_err() {
            return shutting_down();
        }
        // A reply dropped unsent while the supervisor still runs is a bug of
        // ours, said as such, never a false "shutting down".
        rx.await.unwrap_or_else(|_| {
            if self.tx.is_closed() {
                shutting_down()
            } else {
                dropped(name)
            }
        })
    }

    /// Sends an event that needs no answer; dropped if the supervisor is gone.
    pub async fn notify(&self, event: Event) {
        let _ = self.tx.send(event).await;
    }

    /// True if the supervisor answers.
    pub async fn probe(&self) -> bool {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Event::Probe { reply }).await.is_ok() && rx.await.is_ok()
    }

    /// Asks the supervisor to reap `Reap` workspaces and persist the rest;
    /// returns when it is done (or gone).
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Event::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The answer to a request whose reply was dropped unsent.
fn dropped(name: &str) -> Response {
    tracing::error!(request = name, "a request's reply was dropped unsent");
    Response::error(
        ErrorCode::Internal,
        format!("shipoted dropped its answer to {name} (a bug: please report it with `journalctl --user -u shipote`); try again"),
    )
}

fn shutting_down() -> Response {
    Response::error(
        ErrorCode::Busy,
        "shipoted is shutting down; try again once it is back",
    )
}

/// Which backend the daemon uses and why.
#[derive(Debug, Clone)]
pub struct BackendInfo {
    /// The backend.
    pub backend: Backend,
    /// Why it was chosen (for Capabilities).
    pub reason: String,
}

/// Everything the supervisor needs from outside, fixed at start.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Host probes.
    pub caps: Arc<HostCaps>,
    /// The workspace backend.
    pub backend: Arc<BackendInfo>,
    /// How a workspace's keeper is started (`PROGRAM --keeper UNIT`) and
    /// where keepers listen.
    pub keeper: KeeperProgram,
    /// The state file.
    pub state_file: PathBuf,
    /// Where commands' logs go (`<dir>/<workspace>/<command>.{log,idx}`).
    pub log_dir: PathBuf,
    /// Where saved pipelines go (`<dir>/<name>.json`).
    pub pipelines_dir: PathBuf,
    /// Where flow sockets go by default (`<dir>/<workspace>/`).
    pub flows_dir: PathBuf,
    /// When and how often commands with restart_on_failure are restarted.
    pub restart_policy: RestartPolicy,
    /// The daemon's uid (audit records of its own actions).
    pub own_uid: u32,
    /// Paths hidden from every workspace with permissions: the daemon's
    /// socket and the user's runtime directory.
    pub shielded: Vec<PathBuf>,
}

impl Environment {
    /// The state directory (the state file's).
    /// The log files of command `id` of `workspace`.
    pub(super) fn logs(&self, workspace: WorkspaceId, id: Ulid) -> LogPaths {
        LogPaths::new(&self.log_dir.join(workspace.to_string()), &id.to_string())
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_file
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default()
    }
}

/// How long PipelineRun waits for the first bytes of tapped edges.
const DISCERN_WAIT: Duration = Duration::from_millis(100);

/// Milliseconds from the Unix epoch to `t` (0 before it).
pub fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The state the supervisor owns.
#[derive(Debug)]
pub struct Supervisor {
    env: Environment,
    tx: mpsc::Sender<Event>,
    started: Instant,
    clients: u32,
    notifier: Notifier,
    last_status: String,
    last_status_at: Option<Instant>,
    workspaces: BTreeMap<WorkspaceId, Workspace>,
    /// Running pipelines (their commands are in their workspace's).
    pipelines: BTreeMap<Ulid, PipelineRec>,
    /// Command ids: monotonic, so ids made in the same millisecond (a
    /// pipeline's commands) still sort in start order.
    ids: Ids,
    /// The latest stopped workspaces, oldest first (at most [`KEPT_STOPPED`]):
    /// their commands' exit statuses and logs stay readable.
    stopped: VecDeque<Workspace>,
    /// Labels of workspaces being created (not yet in `workspaces`).
    creating: BTreeMap<WorkspaceId, String>,
    /// `None` while a sampling round is in flight.
    sampler: Option<Box<stats::Sampler>>,
    /// Every timer (TTLs, restart backoffs), in the loop: cancellable, and
    /// driven by tokio's clock (paused time in tests).
    timers: DelayQueue<Timer>,
    /// The TTL timer of each workspace that has one.
    ttl_timers: HashMap<WorkspaceId, delay_queue::Key>,
    /// The backoff timer of each command waiting to restart.
    restart_timers: HashMap<(WorkspaceId, Ulid), delay_queue::Key>,
    /// Restarts asked for, waiting for their command to end: the client and
    /// the command's restart policy, set aside meanwhile.
    restart_asked: HashMap<(WorkspaceId, Ulid), commands::RestartAsked>,
    /// A command ended since the log budget was last enforced.
    budget_due: bool,
    /// An enforcement round is in flight.
    budget_running: bool,
    generation: u64,
    persisted: u64,
    /// WorkspaceCreated answers held until the state that holds the new
    /// workspace is on disk (a kill -9 right after the answer loses nothing).
    after_persist: Vec<(u64, oneshot::Sender<Response>, Response)>,
    persist_tx: watch::Sender<(u64, Vec<u8>)>,
    shutdown_reply: Option<oneshot::Sender<()>>,
    stops_pending: usize,
}

impl Supervisor {
    /// Creates the supervisor and its handle; run it with [`Supervisor::run`].
    pub fn new(
        env: Environment,
        notifier: Notifier,
    ) -> (Self, SupervisorHandle, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let (persist_tx, persist_rx) = watch::channel((0, Vec::new()));
        tokio::spawn(persister(env.state_file.clone(), persist_rx, tx.clone()));
        let sup = Self {
            env,
            tx: tx.clone(),
            started: Instant::now(),
            clients: 0,
            notifier,
            last_status: String::new(),
            last_status_at: None,
            workspaces: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            ids: Ids(ulid::Generator::new()),
            stopped: VecDeque::new(),
            creating: BTreeMap::new(),
            sampler: Some(Box::default()),
            timers: DelayQueue::new(),
            ttl_timers: HashMap::new(),
            restart_timers: HashMap::new(),
            restart_asked: HashMap::new(),
            budget_due: false,
            budget_running: false,
            generation: 0,
            persisted: 0,
            after_persist: Vec::new(),
            persist_tx,
            shutdown_reply: None,
            stops_pending: 0,
        };
        (sup, SupervisorHandle { tx }, rx)
    }

    /// Takes over workspaces a previous daemon left running (before READY).
    /// The ids of the workspaces it holds (after `adopt`, the re-adopted ones).
    pub fn workspace_ids(&self) -> Vec<WorkspaceId> {
        self.workspaces.keys().copied().collect()
    }

    /// The unit names of the workspaces it holds.
    pub fn workspace_units(&self) -> Vec<String> {
        self.workspaces.values().map(|w| w.unit.clone()).collect()
    }

    /// The status line systemd shows (`systemctl --user status shipote`).
    pub fn status_line(&self) -> String {
        format!(
            "serving: {} workspaces, {} commands, {} pipelines, {} flows, {} clients",
            self.workspaces.len(),
            self.workspaces
                .values()
                .map(Workspace::alive_commands)
                .sum::<u32>(),
            self.alive_pipelines(),
            self.active_flows(),
            self.clients
        )
    }

    /// Handles events until the queue closes or `shutdown` fires.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>, shutdown: CancellationToken) {
        use futures_util::StreamExt;
        let mut tick = tokio::time::interval(STATUS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sample_every = tokio::time::interval(HISTORY_INTERVAL);
        sample_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
                _ = sample_every.tick() => self.handle(Event::SampleTick),
                Some(due) = self.timers.next(), if !self.timers.is_empty() => {
                    self.on_timer(due.into_inner());
                }
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
            }
            self.publish_status();
        }
    }

    /// Sends the status line if it changed, at most once per [`STATUS_INTERVAL`]
    /// (the tick catches up with changes held back).
    fn publish_status(&mut self) {
        if self
            .last_status_at
            .is_some_and(|t| t.elapsed() < STATUS_INTERVAL)
        {
            return;
        }
        let status = self.status_line();
        if status != self.last_status {
            self.notifier.status(&status);
            self.last_status = status;
            self.last_status_at = Some(Instant::now());
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            // The uid was checked and the request audited by the connection.
            Event::Request {
                request,
                uid: _,
                reply,
            } => self.answer(*request, reply),
            Event::ClientConnected => self.clients += 1,
            Event::ClientDisconnected => self.clients = self.clients.saturating_sub(1),
            Event::Probe { reply } => {
                let _ = reply.send(());
            }
            Event::Created {
                id,
                unit,
                spec,
                result,
                namespaces,
                reply,
            } => self.on_created(id, unit, *spec, result, namespaces, reply),
            Event::Stopped { id, result, reply } => self.on_stopped(id, result, reply),
            Event::RestartEnded { workspace, command } => {
                self.on_restart_step(workspace, command, commands::RestartStep::Ended)
            }
            Event::SampleTick => {
                self.sample();
                self.enforce_log_budget();
            }
            Event::LogsPruned { pruned, freed } => self.on_logs_pruned(pruned, freed),
            Event::PipelinePlanned { plan, tap, reply } => self.pipeline_run(*plan, tap, reply),
            Event::Sampled {
                sampler,
                readings,
                at,
            } => self.on_sampled(sampler, readings, at),
            Event::Started(report) => self.on_started(*report),
            Event::SpareLeaf {
                workspace,
                id,
                made,
            } => self.on_spare_leaf(workspace, id, made),
            Event::CommandExited {
                workspace,
                command,
                status,
            } => self.on_command_exited(workspace, command, status),
            Event::Persisted { generation, error } => self.on_persisted(generation, error),
            Event::Shutdown { reply } => self.on_shutdown(reply),
        }
    }

    /// Routes a request to its handler (in the file of its domain); every
    /// handler answers `reply`, at once or from the task it starts.
    fn answer(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        let now = |reply: oneshot::Sender<Response>, response: Response| {
            let _ = reply.send(response);
        };
        match request {
            // Answered by the connection, off the supervisor's queue
            // (connection.rs): never sent here.
            Request::Ping | Request::Discern { .. } | Request::Hello { .. } => {
                let msg = format!(
                    "{} reached the supervisor; the connection answers it",
                    request.name()
                );
                now(reply, Response::error(ErrorCode::Internal, msg))
            }
            Request::Health => now(reply, self.health()),
            Request::Capabilities => now(reply, self.capabilities()),
            Request::WorkspaceCreate { spec } => self.create(spec, reply),
            Request::WorkspaceList => now(reply, self.workspace_list()),
            Request::WorkspaceListStopped => now(reply, self.workspace_list_stopped()),
            Request::PipelineList => now(reply, self.pipeline_list()),
            Request::Top { selected, history } => self.top(selected, history, reply),
            Request::WorkspaceDescribe { id } => now(reply, self.workspace_describe(id)),
            Request::WorkspaceStop { id, grace_ms } => {
                self.stop(id, Duration::from_millis(grace_ms), Some(reply))
            }
            Request::WorkspaceStats { workspace } => self.stats(workspace, reply, false),
            Request::WorkspaceFullSummary { workspace } => self.stats(workspace, reply, true),
            Request::WorkspaceQuota { workspace } => self.quota(workspace, reply),
            Request::WorkspaceStatsHistory { workspace, tail } => {
                now(reply, self.history(workspace, tail))
            }
            Request::Run {
                workspace,
                exec,
                argv,
                envp,
                restart_on_failure,
                cwd,
            } => {
                let run = RunSpec {
                    exec,
                    argv,
                    envp,
                    cwd,
                };
                self.run_command(workspace, run, restart_on_failure, reply)
            }
            Request::CommandList { workspace } => self.command_list(workspace, reply),
            Request::CommandLogs {
                workspace,
                command,
                tail_bytes,
                stream,
            } => self.command_logs(workspace, command, tail_bytes, stream, reply),
            Request::CommandLogsFrom {
                workspace,
                command,
                stream,
                from,
                tail_bytes,
                max_bytes,
            } => {
                let read = LogsFrom {
                    stream,
                    from,
                    tail_bytes,
                    max_bytes,
                };
                self.command_logs_from(workspace, command, read, reply)
            }
            Request::PipelineRun { spec, tap, vars } => self.pipeline_plan(spec, tap, vars, reply),
            Request::PipelineSave { name, spec } => self.pipeline_save(name, spec, reply),
            Request::PipelineSavedList => self.pipeline_saved_list(reply),
            Request::PipelineDrop { name } => self.pipeline_drop(name, reply),
            Request::PipelineRunSaved { name, tap, vars } => {
                self.pipeline_run_saved(name, tap, vars, reply)
            }
            Request::PipelineStop { pipeline, grace_ms } => {
                self.pipeline_stop(pipeline, Duration::from_millis(grace_ms), reply)
            }
            Request::FlowList => now(reply, self.flow_list()),
            Request::FlowThroughput => now(reply, self.flow_throughput()),
            Request::FlowDrop { pipeline } => now(reply, self.flow_drop(pipeline)),
            Request::CommandStop {
                workspace,
                command,
                grace_ms,
            } => self.command_stop(workspace, command, Duration::from_millis(grace_ms), reply),
            Request::CommandSignal {
                workspace,
                command,
                signal,
            } => self.command_signal(workspace, command, signal, reply),
            Request::CommandRestart {
                workspace,
                command,
                grace_ms,
            } => self.command_restart(workspace, command, Duration::from_millis(grace_ms), reply),
        }
    }

    fn health(&self) -> Response {
        Response::Health {
            version: crate::VERSION.to_owned(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            alive_workspaces: self.workspaces.len() as u32,
            alive_commands: self
                .workspaces
                .values()
                .map(Workspace::alive_commands)
                .sum(),
            alive_pipelines: self.alive_pipelines(),
            active_flows: self.active_flows(),
            dirty: self.generation != self.persisted,
        }
    }

    /// A live workspace, or one of the latest stopped ones.
    fn find(&self, id: WorkspaceId) -> Option<&Workspace> {
        self.workspaces
            .get(&id)
            .or_else(|| self.stopped.iter().find(|w| w.id == id))
    }

    fn find_mut(&mut self, id: WorkspaceId) -> Option<&mut Workspace> {
        match self.workspaces.get_mut(&id) {
            Some(ws) => Some(ws),
            None => self.stopped.iter_mut().find(|w| w.id == id),
        }
    }

    /// A command of a live or recently stopped workspace, or the answer
    /// saying which part is unknown.
    fn command(&self, workspace: WorkspaceId, command: Ulid) -> Result<&CommandRec, Box<Response>> {
        let ws = self
            .find(workspace)
            .ok_or_else(|| Box::new(not_found(workspace)))?;
        ws.commands.get(&command).ok_or_else(|| {
            Box::new(Response::error(
                ErrorCode::NotFound,
                format!(
                    "workspace {workspace} has no command {command}; list them with shipote ps"
                ),
            ))
        })
    }

    fn capabilities(&self) -> Response {
        let c = &self.env.caps;
        let b = &self.env.backend;
        Response::Capabilities {
            kernel_version: c.kernel_version,
            user_ns: c.user_ns.clone(),
            cgroup_v2: c.cgroup.layout.name().to_owned(),
            cgroup_delegated: c.cgroup.writable,
            has_cap_sys_admin: c.has_cap_sys_admin,
            cgroup_path: c.cgroup.path.clone(),
            cgroup_controllers: c.cgroup.controllers.clone(),
            backend: b.backend.name().to_owned(),
            backend_reason: b.reason.clone(),
            systemd_version: b.backend.systemd_version(),
        }
    }
}

fn log_stream(s: LogStream) -> Stream {
    match s {
        LogStream::Stdout => Stream::Stdout,
        LogStream::Stderr => Stream::Stderr,
        LogStream::Both => Stream::Both,
        LogStream::Tagged => Stream::Tagged,
    }
}

fn logs_unreadable(e: std::io::Error) -> Response {
    Response::error(ErrorCode::Internal, format!("cannot read the logs: {e}"))
}

fn not_found(id: WorkspaceId) -> Response {
    Response::error(
        ErrorCode::NotFound,
        format!("no live workspace {id}; list them with shipote ws ls"),
    )
}
