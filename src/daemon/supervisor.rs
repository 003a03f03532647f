//! The supervisor: the one task that owns the daemon's state. Connections send it
//! [`Event`]s through a [`SupervisorHandle`]; requests carry a oneshot for their
//! reply. It never awaits the outside world: D-Bus calls, cgroup reads, stops and
//! disk writes run in spawned tasks that either answer the client themselves (for
//! reads) or report back as events (for changes).

use super::audit;
use crate::cgroup::Cgroup;
use crate::host::HostCaps;
use crate::process::logs::{CaptureState, LogPaths, Stream};
use crate::process::sandbox::{self, Namespaces, Refusal};
use crate::systemd::notify::Notifier;
use crate::workspace::backend::{Backend, Created};
use crate::workspace::restart::{Decision, RestartPolicy, RestartState};
use crate::workspace::state::{self, SavedWorkspace};
use crate::workspace::stats::{self, Reading, HISTORY_CAPACITY, HISTORY_INTERVAL};
use crate::workspace::{self as ws, budget, pipeline, saved, unit_name};
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
    /// A command was started (its client is answered right after this event
    /// is queued, so the client's next request sees the command).
    CommandStarted {
        /// Its workspace.
        workspace: WorkspaceId,
        /// Its record.
        rec: Box<CommandRecPublic>,
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
    /// A restarted command's new process (or why it could not start).
    Restarted {
        /// Its workspace.
        workspace: WorkspaceId,
        /// Which.
        command: Ulid,
        /// New pid and its capture, or the error.
        result: Result<(i32, Arc<CaptureState>), String>,
    },
    /// A pipeline's commands all started.
    PipelineStarted {
        /// Its workspace.
        workspace: WorkspaceId,
        /// Its id.
        pipeline: Ulid,
        /// Its label.
        label: String,
        /// Its commands' records, in spec order.
        recs: Vec<CommandRecPublic>,
        /// Its interposed edges.
        taps: Vec<EdgeTap>,
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

/// A started command, as the starting task hands it to the supervisor.
#[derive(Debug)]
pub struct CommandRecPublic {
    rec: CommandRec,
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
    /// Program run as a workspace's keeper (`PROGRAM --keeper UNIT`).
    pub keeper_program: PathBuf,
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
    pub fn state_dir(&self) -> PathBuf {
        self.state_file
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default()
    }
}

/// A live workspace.
#[derive(Debug)]
struct Workspace {
    id: WorkspaceId,
    unit: String,
    spec: WorkspaceSpec,
    created: Created,
    created_at: SystemTime,
    started: Instant,
    history: VecDeque<WorkspaceStatsInfo>,
    last_cpu: Option<(Instant, u64)>,
    peak_seen: u64,
    report_breaches: BTreeMap<String, u64>,
    stopping: bool,
    commands: BTreeMap<Ulid, CommandRec>,
    /// A command leaf made ahead of time (`cmd-<id>`, empty), so that Run
    /// does not wait for the cgroup's mkdir; taken by the next command.
    spare: Option<Ulid>,
    /// A spare leaf's mkdir is under way.
    spare_pending: bool,
    /// The newest command id handed out here: a spare made earlier than it
    /// is not used (ids list commands in start order).
    last_command: std::cell::Cell<Ulid>,
    /// Its permissions: the namespaces each command joins (`None`: nothing
    /// asked); an error when a re-adopted workspace's cannot be made any more
    /// (its commands are then refused with it).
    namespaces: Result<Option<Arc<Namespaces>>, String>,
}

/// A command of a workspace (ids are ULIDs: map order is start order).
#[derive(Debug, Clone)]
struct CommandRec {
    id: Ulid,
    label: String,
    pid: i32,
    alive: bool,
    exit_status: Option<i32>,
    exit_signal: Option<i32>,
    logs: LogPaths,
    /// Its current run's log capture.
    capture: Arc<CaptureState>,
    leaf: Option<Cgroup>,
    /// Waiting out a restart backoff (no process).
    backoff: bool,
    /// A restartable pipeline command's edges, kept for its next run (and
    /// so its peers see no EOF or EPIPE while it restarts); dropped when it
    /// is done for good.
    ends: Option<Arc<crate::flow::Ends>>,
    /// What to start again, for restart_on_failure.
    run: Option<RunSpec>,
    restart: RestartState,
    started_at: Instant,
    failure: Option<String>,
    /// Its log was removed to keep within the log budget (workspace/budget.rs).
    logs_pruned: bool,
}

/// A pipeline: its commands are ordinary commands of its workspace.
#[derive(Debug)]
struct PipelineRec {
    workspace: WorkspaceId,
    label: String,
    commands: Vec<Ulid>,
    taps: Vec<EdgeTap>,
}

/// A tap (or a rate limit) on one edge.
#[derive(Debug)]
pub struct EdgeTap {
    edge: shipote_protocol::spec::FlowEdge,
    tap: crate::flow::tap::Tap,
    /// When the throughput was last asked, and the byte count then.
    last: (Instant, u64),
}

impl EdgeTap {
    fn published(&self) -> Option<&PathBuf> {
        self.tap.socket.as_ref().filter(|_| {
            !self
                .tap
                .state
                .unpublished
                .load(std::sync::atomic::Ordering::Acquire)
        })
    }
}

/// A monotonic ULID source (ulid's generator, which has no Debug).
struct Ids(ulid::Generator);

impl Ids {
    /// The next id, later than every one before (a fresh one if the
    /// millisecond's random part ran out).
    fn next(&mut self) -> Ulid {
        self.0.generate().unwrap_or_else(|_| Ulid::new())
    }
}

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ids")
    }
}

/// How long PipelineRun waits for the first bytes of tapped edges.
const DISCERN_WAIT: Duration = Duration::from_millis(100);

/// A command's program, kept to restart it.
#[derive(Debug, Clone)]
struct RunSpec {
    exec: String,
    argv: Vec<String>,
    envp: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

impl CommandRec {
    /// Blocking: sizes the logs.
    /// What `ps` shows in NOTE: why it stays failed, and output that was not
    /// kept (disk full) or was removed (log budget).
    fn note(&self) -> Option<String> {
        let lost = self.capture.lost.load(std::sync::atomic::Ordering::Relaxed);
        let mut notes: Vec<String> = self.failure.iter().cloned().collect();
        if lost > 0 {
            notes.push(format!(
                "{lost} bytes of output not kept (the disk is full or the log unwritable)"
            ));
        }
        if self.logs_pruned {
            notes.push("output removed to keep within the log budget".into());
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    /// The answer to a logs request for a command whose output is gone.
    fn pruned_answer(&self) -> Option<Response> {
        self.logs_pruned.then(|| {
            Response::error(
                ErrorCode::NotFound,
                format!(
                    "the output of command {} was removed to keep the logs within their budget \
                     ({} MiB per workspace, {} MiB in all; the oldest ended commands go first)",
                    self.id,
                    budget::WORKSPACE_BUDGET >> 20,
                    budget::TOTAL_BUDGET >> 20
                ),
            )
        })
    }

    fn info(&self) -> CommandInfo {
        CommandInfo {
            id: self.id,
            label: self.label.clone(),
            pid: self.pid,
            alive: self.alive,
            exit_status: self.exit_status,
            exit_signal: self.exit_signal,
            restarts: self.restart.restarts,
            failure: self.note(),
            log_bytes: if self.logs_pruned {
                0
            } else {
                self.logs.kept_bytes()
            },
        }
    }
}

impl Workspace {
    fn new(
        id: WorkspaceId,
        unit: String,
        spec: WorkspaceSpec,
        created: Created,
        created_at: SystemTime,
        started: Instant,
    ) -> Self {
        Self {
            id,
            unit,
            spec,
            created,
            created_at,
            started,
            history: VecDeque::new(),
            last_cpu: None,
            peak_seen: 0,
            report_breaches: BTreeMap::new(),
            stopping: false,
            commands: BTreeMap::new(),
            spare: None,
            spare_pending: false,
            last_command: std::cell::Cell::new(Ulid::nil()),
            namespaces: Ok(None),
        }
    }

    /// The namespaces its commands join, or why none may start.
    fn namespaces(&self) -> Result<Option<Arc<Namespaces>>, String> {
        self.namespaces.clone().map_err(|e| {
            format!(
                "workspace {}'s permissions cannot be enforced: {e}",
                self.id
            )
        })
    }

    fn alive_commands(&self) -> u32 {
        self.commands.values().filter(|c| c.alive).count() as u32
    }

    fn summary(&self) -> WorkspaceSummary {
        WorkspaceSummary {
            id: self.id,
            label: self.spec.label.clone(),
            unit: self.unit.clone(),
            commands: self.alive_commands(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            on_exit: self.spec.on_exit,
            ttl_left_ms: self.ttl_deadline().map(|d| {
                d.duration_since(SystemTime::now())
                    .map(|l| l.as_millis() as u64)
                    .unwrap_or(0)
            }),
        }
    }

    fn ttl_deadline(&self) -> Option<SystemTime> {
        self.spec
            .ttl_ms
            .map(|t| self.created_at + Duration::from_millis(t))
    }

    fn saved(&self, backend: &str) -> SavedWorkspace {
        let identity = state::Identity {
            id: self.id.to_string(),
            unit: self.unit.clone(),
            backend: backend.to_owned(),
            cgroup: self.created.cgroup.as_ref().map(|c| c.dir().to_owned()),
            keeper_pid: self.created.keeper_pid,
            created_at_ms: ms_since_epoch(self.created_at),
        };
        SavedWorkspace::new(identity, &self.spec)
    }

    fn report_only_breaches(&self) -> Vec<Breach> {
        self.report_breaches
            .iter()
            .map(|(k, v)| Breach {
                kind: k.clone(),
                count: *v,
            })
            .collect()
    }

    /// Turns a reading into the wire's stats, with CPU % against the last sample.
    fn info(&self, r: &Reading, at: Instant) -> WorkspaceStatsInfo {
        let cpu_percent = match (self.last_cpu, r.cpu_usec) {
            (Some((then, prev)), Some(now)) => {
                stats::cpu_percent(prev, now, at.saturating_duration_since(then))
            }
            _ => None,
        };
        WorkspaceStatsInfo {
            commands_alive: self.alive_commands(),
            commands_total: self.commands.len() as u32,
            rss_bytes: r.rss_bytes,
            rss_peak_bytes: r
                .rss_peak_bytes
                .or(Some(self.peak_seen.max(r.rss_bytes.unwrap_or(0)))),
            cpu_usec: r.cpu_usec,
            cpu_percent,
            cpu_cores: stats::cpu_cores(self.spec.soma.cpu_quota_percent),
            tasks: r.tasks,
            source: r.source.to_owned(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            sampled_at_ms: ms_since_epoch(SystemTime::now()),
        }
    }
}

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

    pub fn adopt(&mut self, saved: SavedWorkspace) {
        let Ok(ulid) = Ulid::from_string(&saved.id) else {
            tracing::warn!(id = %saved.id, "state file holds an invalid workspace id; skipping it");
            return;
        };
        let id = WorkspaceId(ulid);
        let spec = saved.spec();
        let created_at = UNIX_EPOCH + Duration::from_millis(saved.created_at_ms);
        let age = SystemTime::now()
            .duration_since(created_at)
            .unwrap_or_default();
        let created = Created {
            cgroup: saved.cgroup.clone().map(Cgroup::at),
            keeper_pid: saved.keeper_pid,
            warnings: Vec::new(),
        };
        let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let mut ws = Workspace::new(id, saved.unit.clone(), spec, created, created_at, started);
        // Its permissions hold for the commands it runs from now on (in new
        // namespaces: the previous daemon's went with it).
        ws.namespaces = sandbox::make(&ws.spec.permissions, &self.env.shielded)
            .map(|n| n.map(Arc::new))
            .map_err(|e| e.to_string());
        if let Err(e) = &ws.namespaces {
            tracing::warn!(id = %id, error = %e, "a re-adopted workspace's permissions cannot be enforced; its commands are refused");
        }
        self.arm_ttl(&ws);
        tracing::info!(id = %id, unit = %ws.unit, "re-adopted workspace kept by the previous daemon");
        self.workspaces.insert(id, ws);
        self.changed();
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
            Event::Request {
                request,
                uid,
                reply,
            } => self.answer(*request, uid, reply),
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
            Event::CommandStarted { workspace, rec } => self.on_command_started(workspace, rec),
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
            Event::PipelineStarted {
                workspace,
                pipeline,
                label,
                recs,
                taps,
            } => self.on_pipeline_started(workspace, pipeline, label, recs, taps),
            Event::Restarted {
                workspace,
                command,
                result,
            } => self.on_restarted(workspace, command, result),
            Event::Persisted { generation, error } => self.on_persisted(generation, error),
            Event::Shutdown { reply } => self.on_shutdown(reply),
        }
    }

    fn answer(&mut self, request: Request, _uid: u32, reply: oneshot::Sender<Response>) {
        let response = match request {
            // Answered by the connection, off the supervisor's queue
            // (connection.rs): never sent here.
            Request::Ping | Request::Discern { .. } | Request::Hello { .. } => Response::error(
                ErrorCode::Internal,
                format!(
                    "{} reached the supervisor; the connection answers it",
                    request.name()
                ),
            ),
            Request::Health => Response::Health {
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
            },
            Request::Capabilities => self.capabilities(),
            Request::WorkspaceCreate { spec } => return self.create(spec, reply),
            Request::WorkspaceList => Response::WorkspaceList {
                items: self.workspaces.values().map(Workspace::summary).collect(),
            },
            Request::WorkspaceStop { id, grace_ms } => {
                return self.stop(id, Duration::from_millis(grace_ms), Some(reply));
            }
            Request::WorkspaceStats { workspace } => return self.stats(workspace, reply, false),
            Request::WorkspaceFullSummary { workspace } => {
                return self.stats(workspace, reply, true)
            }
            Request::WorkspaceQuota { workspace } => return self.quota(workspace, reply),
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
                return self.run_command(workspace, run, restart_on_failure, reply);
            }
            Request::CommandList { workspace } => match self.find(workspace) {
                Some(ws) => {
                    let recs: Vec<CommandRec> = ws.commands.values().cloned().collect();
                    tokio::task::spawn_blocking(move || {
                        let items = recs.iter().map(CommandRec::info).collect();
                        let _ = reply.send(Response::CommandList { items });
                    });
                    return;
                }
                None => not_found(workspace),
            },
            Request::CommandLogs {
                workspace,
                command,
                tail_bytes,
                stream,
            } => match self.command(workspace, command) {
                Ok(c) if c.logs_pruned => c.pruned_answer().expect("pruned"),
                Ok(c) => {
                    let logs = c.logs.clone();
                    // Leave room for the frame around the bytes.
                    let n = tail_bytes.min(MAX_LOG_TAIL_BYTES);
                    tokio::task::spawn_blocking(move || {
                        let response = match logs.tail(log_stream(stream), n) {
                            Ok((bytes, _)) => Response::CommandLogs { bytes },
                            Err(e) => logs_unreadable(e),
                        };
                        let _ = reply.send(response);
                    });
                    return;
                }
                Err(response) => *response,
            },
            Request::WorkspaceDescribe { id } => match self.find(id) {
                Some(ws) => Response::WorkspaceDescription {
                    id,
                    spec: ws.spec.clone(),
                },
                None => not_found(id),
            },
            Request::CommandLogsFrom {
                workspace,
                command,
                stream,
                from,
                tail_bytes,
                max_bytes,
            } => match self.command(workspace, command) {
                Ok(c) if c.logs_pruned => c.pruned_answer().expect("pruned"),
                Ok(c) => {
                    let logs = c.logs.clone();
                    let capture = c.capture.clone();
                    let alive = c.alive;
                    let max = max_bytes.min(MAX_LOG_READ_BYTES);
                    tokio::task::spawn_blocking(move || {
                        // Read after sampling `running`: bytes that arrive in
                        // between are read now or by the next ask, never lost.
                        let running =
                            alive || !capture.drained.load(std::sync::atomic::Ordering::Acquire);
                        let stream = log_stream(stream);
                        let read = match from {
                            None => logs
                                .tail(stream, tail_bytes.min(max))
                                .map(|(bytes, next)| (bytes, next, 0)),
                            Some(p) => logs
                                .read_from(stream, p, max)
                                .map(|c| (c.bytes, c.next, c.skipped)),
                        };
                        let response = match read {
                            Ok((bytes, next, skipped)) => Response::CommandLogsFrom {
                                bytes,
                                next,
                                skipped,
                                running,
                            },
                            Err(e) => logs_unreadable(e),
                        };
                        let _ = reply.send(response);
                    });
                    return;
                }
                Err(response) => *response,
            },
            Request::PipelineRun { spec, tap, vars } => {
                // Templating (bounded, up to 4 MiB) and validation off the
                // supervisor; the plan comes back as an event.
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || planned(&tx, &spec, &vars, tap, reply));
                return;
            }
            Request::PipelineSave { name, spec } => {
                let dir = self.env.pipelines_dir.clone();
                tokio::task::spawn_blocking(move || {
                    let response = match saved::save(&dir, &name, &spec) {
                        Ok(()) => Response::PipelineSaved { name },
                        Err(e) => Response::error(ErrorCode::Invalid, e),
                    };
                    let _ = reply.send(response);
                });
                return;
            }
            Request::PipelineSavedList => {
                let dir = self.env.pipelines_dir.clone();
                tokio::task::spawn_blocking(move || {
                    let response = match saved::list(&dir) {
                        Ok(names) => Response::PipelineSavedList { names },
                        Err(e) => Response::error(ErrorCode::Internal, e),
                    };
                    let _ = reply.send(response);
                });
                return;
            }
            Request::PipelineDrop { name } => {
                let dir = self.env.pipelines_dir.clone();
                tokio::task::spawn_blocking(move || {
                    let response = match saved::remove(&dir, &name) {
                        Ok(existed) => Response::PipelineDropped { name, existed },
                        Err(e) => Response::error(ErrorCode::Invalid, e),
                    };
                    let _ = reply.send(response);
                });
                return;
            }
            Request::PipelineRunSaved { name, tap, vars } => {
                let dir = self.env.pipelines_dir.clone();
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let spec = match saved::load(&dir, &name) {
                        Ok(Some(spec)) => spec,
                        Ok(None) => {
                            let msg = format!("no pipeline is saved as {name:?}; list them with shipote pipeline ls");
                            let _ = reply.send(Response::error(ErrorCode::NotFound, msg));
                            return;
                        }
                        Err(e) => {
                            let _ = reply.send(Response::error(ErrorCode::Invalid, e));
                            return;
                        }
                    };
                    planned(&tx, &spec, &vars, tap, reply);
                });
                return;
            }
            Request::FlowList => self.flow_list(),
            Request::FlowThroughput => self.flow_throughput(),
            Request::FlowDrop { pipeline } => self.flow_drop(pipeline),
            Request::PipelineStop { pipeline, grace_ms } => {
                return self.pipeline_stop(pipeline, Duration::from_millis(grace_ms), reply);
            }
            Request::WorkspaceStatsHistory { workspace, tail } => {
                match self.workspaces.get(&workspace) {
                    Some(ws) => {
                        let skip = if tail == 0 {
                            0
                        } else {
                            ws.history.len().saturating_sub(tail as usize)
                        };
                        Response::WorkspaceStatsHistory {
                            samples: ws.history.iter().skip(skip).cloned().collect(),
                        }
                    }
                    None => not_found(workspace),
                }
            }
        };
        let _ = reply.send(response);
    }

    fn active_flows(&self) -> u32 {
        self.pipelines
            .values()
            .flat_map(|p| &p.taps)
            .filter(|t| {
                t.published().is_some()
                    && !t.tap.state.ended.load(std::sync::atomic::Ordering::Acquire)
            })
            .count() as u32
    }

    fn flow_list(&self) -> Response {
        Response::FlowList {
            items: self
                .pipelines
                .iter()
                .filter(|(_, p)| p.taps.iter().any(|t| t.published().is_some()))
                .map(|(id, p)| FlowInfo {
                    pipeline: *id,
                    sockets: p
                        .taps
                        .iter()
                        .filter_map(|t| t.published().cloned())
                        .collect(),
                })
                .collect(),
        }
    }

    fn flow_throughput(&mut self) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let now = Instant::now();
        let mut items = Vec::new();
        for t in self.pipelines.values_mut().flat_map(|p| p.taps.iter_mut()) {
            let Some(socket) = t.published().cloned() else {
                continue;
            };
            let st = &t.tap.state;
            let bytes = st.bytes.load(Relaxed);
            let secs = now.duration_since(t.last.0).as_secs_f64();
            let rate = if secs > 0.0 {
                (bytes - t.last.1) as f64 / secs
            } else {
                0.0
            };
            t.last = (now, bytes);
            items.push(FlowThroughputInfo {
                socket,
                bytes_total: bytes,
                bytes_per_sec: rate,
                subscribers: st.subscribers.load(Relaxed) as u32,
                dropped_bytes: st.dropped.load(Relaxed),
            });
        }
        Response::FlowThroughput { items }
    }

    fn flow_drop(&mut self, pipeline: Ulid) -> Response {
        let mut existed = false;
        if let Some(p) = self.pipelines.get(&pipeline) {
            for t in &p.taps {
                if let Some(socket) = t.published() {
                    existed = true;
                    crate::flow::tap::unpublish(&t.tap.state, socket);
                }
            }
        }
        Response::FlowDropped { pipeline, existed }
    }

    fn alive_pipelines(&self) -> u32 {
        self.pipelines
            .values()
            .filter(|p| {
                self.workspaces.get(&p.workspace).is_some_and(|ws| {
                    p.commands
                        .iter()
                        .any(|c| ws.commands.get(c).is_some_and(|r| r.alive))
                })
            })
            .count() as u32
    }

    fn pipeline_run(&mut self, plan: pipeline::Plan, tap: bool, reply: oneshot::Sender<Response>) {
        let fail = |reply: oneshot::Sender<Response>, code, msg: String| {
            let _ = reply.send(Response::error(code, msg));
        };
        let workspace = plan.spec.workspace;
        let Some(ws) = self.workspaces.get(&workspace) else {
            let _ = reply.send(not_found(workspace));
            return;
        };
        if ws.stopping {
            let msg = format!("workspace {workspace} is stopping; it takes no new pipelines");
            return fail(reply, ErrorCode::Invalid, msg);
        }
        let pipeline = Ulid::new();
        let mut recs: Vec<CommandRec> = plan
            .spec
            .commands
            .iter()
            .map(|c| {
                let id = self.ids.next();
                ws.last_command.set(id);
                CommandRec {
                    id,
                    label: c.label.clone(),
                    pid: 0,
                    alive: true,
                    exit_status: None,
                    exit_signal: None,
                    logs: LogPaths::new(
                        &self.env.log_dir.join(workspace.to_string()),
                        &id.to_string(),
                    ),
                    capture: Arc::default(),
                    leaf: ws
                        .created
                        .cgroup
                        .as_ref()
                        .map(|cg| cg.child(&ws::leaf_name(id))),
                    backoff: false,
                    ends: None,
                    run: None,
                    restart: RestartState::default(),
                    started_at: Instant::now(),
                    failure: None,
                    logs_pruned: false,
                }
            })
            .collect();
        let namespaces = match ws.namespaces() {
            Ok(s) => s,
            Err(msg) => return fail(reply, ErrorCode::Unsupported, msg),
        };
        let tx = self.tx.clone();
        let flows_dir = ws
            .spec
            .flow_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| self.env.flows_dir.join(workspace.to_string()));
        tokio::task::spawn_blocking(move || {
            let wiring = match crate::flow::wire(&plan, tap) {
                Ok(w) => w,
                Err(e) => {
                    return fail(
                        reply,
                        ErrorCode::Internal,
                        format!("cannot make the pipes: {e}"),
                    )
                }
            };
            let mut started = Vec::with_capacity(recs.len());
            let kill_all = |started: &[crate::workspace::command::Started]| {
                for s in started {
                    crate::process::signal(s.pid as u32, nix::sys::signal::Signal::SIGKILL);
                }
            };
            for (i, (ends, rec)) in wiring.ends.into_iter().zip(recs.iter_mut()).enumerate() {
                let c = &plan.spec.commands[i];
                let mut envp = c.env.clone();
                envp.extend(plan.port_env(i));
                if c.restart_on_failure {
                    match ends.try_clone() {
                        Ok(kept) => rec.ends = Some(Arc::new(kept)),
                        Err(e) => {
                            kill_all(&started);
                            return fail(
                                reply,
                                ErrorCode::Internal,
                                format!("cannot keep the pipes: {e}"),
                            );
                        }
                    }
                    rec.run = Some(RunSpec {
                        exec: c.exec.clone(),
                        argv: c.argv.clone(),
                        envp: envp.clone(),
                        cwd: c.cwd.clone(),
                    });
                }
                let req = crate::workspace::command::StartRequest {
                    exec: c.exec.clone(),
                    argv: c.argv.clone(),
                    envp,
                    cwd: c.cwd.clone(),
                    leaf: rec.leaf.clone(),
                    logs: rec.logs.clone(),
                    leaf_exists: false,
                    namespaces: namespaces.clone(),
                    append: false,
                    io: crate::workspace::command::CommandIo {
                        stdin: ends.stdin,
                        stdout: ends.stdout,
                        stderr: ends.stderr,
                        extra: ends.extra,
                    },
                };
                match crate::workspace::command::start(req) {
                    Ok(s) => started.push(s),
                    Err(e) => {
                        kill_all(&started);
                        return fail(
                            reply,
                            ErrorCode::Invalid,
                            format!("cannot start {:?}: {e}", c.label),
                        );
                    }
                }
            }
            for (src, dsts) in wiring.relays {
                if let Err(e) = crate::flow::relay(src, dsts) {
                    kill_all(&started);
                    return fail(
                        reply,
                        ErrorCode::Internal,
                        format!("cannot start a relay: {e}"),
                    );
                }
            }
            let mut taps = Vec::with_capacity(wiring.interposed.len());
            for i in wiring.interposed {
                let e = &plan.spec.edges[i.edge];
                let socket = tap.then(|| flows_dir.join(format!("{pipeline}.{}.sock", i.edge)));
                match crate::flow::tap::start(
                    i.src,
                    i.dst,
                    socket.as_deref(),
                    e.rate_limit_bytes_per_sec,
                ) {
                    Ok(t) => taps.push(EdgeTap {
                        edge: e.clone(),
                        tap: t,
                        last: (Instant::now(), 0),
                    }),
                    Err(err) => {
                        kill_all(&started);
                        for t in &taps {
                            if let Some(p) = &t.tap.socket {
                                crate::flow::tap::unpublish(&t.tap.state, p);
                            }
                        }
                        return fail(
                            reply,
                            ErrorCode::Internal,
                            format!("cannot start a tap: {err}"),
                        );
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
            let mut pids = Vec::with_capacity(recs.len());
            for (s, rec) in started.iter().zip(recs.iter_mut()) {
                rec.pid = s.pid;
                rec.capture = s.capture.clone();
                rec.started_at = Instant::now();
                pids.push((rec.label.clone(), s.pid));
            }
            let ids: Vec<Ulid> = recs.iter().map(|r| r.id).collect();
            let event = Event::PipelineStarted {
                workspace,
                pipeline,
                label: plan.spec.label.clone(),
                recs: recs
                    .into_iter()
                    .map(|rec| CommandRecPublic { rec })
                    .collect(),
                taps,
            };
            let _ = tx.blocking_send(event);
            let _ = reply.send(Response::PipelineStarted {
                pipeline,
                command_pids: pids,
                edges,
            });
            for (s, command) in started.into_iter().zip(ids) {
                follow(tx.clone(), workspace, command, s);
            }
        });
    }

    fn on_pipeline_started(
        &mut self,
        workspace: WorkspaceId,
        pipeline: Ulid,
        label: String,
        recs: Vec<CommandRecPublic>,
        taps: Vec<EdgeTap>,
    ) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            for r in &recs {
                crate::process::signal(r.rec.pid as u32, nix::sys::signal::Signal::SIGKILL);
            }
            for t in &taps {
                if let Some(p) = &t.tap.socket {
                    crate::flow::tap::unpublish(&t.tap.state, p);
                }
            }
            return;
        };
        let commands = recs.iter().map(|r| r.rec.id).collect();
        for r in recs {
            ws.commands.insert(r.rec.id, r.rec);
        }
        tracing::info!(workspace = %workspace, pipeline = %pipeline, label, "pipeline started");
        self.pipelines.insert(
            pipeline,
            PipelineRec {
                workspace,
                label,
                commands,
                taps,
            },
        );
    }

    /// Ends one pipeline's processes and their descendants (each command's
    /// leaf, or its process group without cgroups), not its workspace.
    fn pipeline_stop(&mut self, id: Ulid, grace: Duration, reply: oneshot::Sender<Response>) {
        let Some(p) = self.pipelines.remove(&id) else {
            let msg = format!("no pipeline {id}; list the running ones with shipote flow ls");
            let _ = reply.send(Response::error(ErrorCode::NotFound, msg));
            return;
        };
        let mut targets: Vec<(Option<Cgroup>, i32)> = Vec::new();
        if let Some(ws) = self.workspaces.get_mut(&p.workspace) {
            for c in &p.commands {
                let Some(r) = ws.commands.get_mut(c) else {
                    continue;
                };
                // A stopped pipeline restarts nothing.
                r.run = None;
                r.ends = None;
                if r.backoff {
                    r.backoff = false;
                    r.alive = false;
                }
                targets.push((r.leaf.clone(), r.pid));
            }
        }
        tracing::info!(pipeline = %id, label = p.label, "stopping pipeline");
        tokio::task::spawn_blocking(move || {
            use crate::process::end::{end, Target};
            let targets: Vec<Target> = targets
                .into_iter()
                .map(|(leaf, pid)| match leaf {
                    Some(leaf) => Target::Tree(leaf),
                    None => Target::Group(pid),
                })
                .collect();
            let reaped = end(&targets, grace, None);
            let _ = reply.send(Response::PipelineStopped {
                pipeline: id,
                reaped,
            });
        });
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

    fn create(&mut self, spec: WorkspaceSpec, reply: oneshot::Sender<Response>) {
        if self.shutdown_reply.is_some() {
            let _ = reply.send(shutting_down());
            return;
        }
        if let Err(msg) = ws::validate_spec(&spec) {
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        let perms = spec.permissions.clone();
        let shielded = self.env.shielded.clone();
        let label_taken = self
            .workspaces
            .values()
            .find(|w| w.spec.label == spec.label)
            .map(|w| w.id);
        if let Some(other) = label_taken.or_else(|| {
            self.creating
                .iter()
                .find(|(_, l)| **l == spec.label)
                .map(|(id, _)| *id)
        }) {
            let msg = format!(
                "a workspace labelled {:?} already exists ({other}); stop it or choose another label",
                spec.label
            );
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        if self.workspaces.len() + self.creating.len() >= MAX_WORKSPACES {
            let msg =
                format!("shipoted runs its limit of {MAX_WORKSPACES} workspaces; stop some first");
            let _ = reply.send(Response::error(ErrorCode::Busy, msg));
            return;
        }
        let id = WorkspaceId(Ulid::new());
        self.creating.insert(id, spec.label.clone());
        let unit = unit_name(&spec.label, &id);
        let backend = self.env.backend.clone();
        let keeper = self.env.keeper_program.clone();
        let state_dir = self.env.state_dir();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            // Its namespaces are made first, off the supervisor (the paths
            // are the client's: one may sit on a hung mount): bad paths and
            // permissions this host cannot enforce (user namespaces may be
            // off) refuse the workspace.
            let made = tokio::task::spawn_blocking(move || {
                sandbox::make(&perms, &shielded)
                    .map(|n| n.map(Arc::new))
                    .map_err(|e| match e {
                        Refusal::Invalid(_) => (ErrorCode::Invalid, e.to_string()),
                        Refusal::Unenforceable(_) => (ErrorCode::Unsupported, e.to_string()),
                        Refusal::Exhausted(_) => (ErrorCode::Busy, e.to_string()),
                    })
            })
            .await
            .unwrap_or_else(|e| Err((ErrorCode::Internal, e.to_string())));
            let namespaces = match made {
                Ok(n) => n,
                Err(refusal) => {
                    let _ = tx
                        .send(Event::Created {
                            id,
                            unit,
                            spec: Box::new(spec),
                            result: Err(refusal),
                            namespaces: None,
                            reply,
                        })
                        .await;
                    return;
                }
            };
            let result = backend
                .backend
                .create(&unit, &spec, &keeper)
                .await
                .map_err(|e| (ErrorCode::Internal, e.to_string()));
            if let Ok(Created {
                cgroup: Some(cg), ..
            }) = &result
            {
                // So that no other daemon ever adopts it (daemon/instance.rs).
                crate::daemon::instance::mark_owner(cg.dir(), &state_dir);
            }
            let event = Event::Created {
                id,
                unit,
                spec: Box::new(spec),
                result,
                namespaces,
                reply,
            };
            let _ = tx.send(event).await;
        });
    }

    fn on_created(
        &mut self,
        id: WorkspaceId,
        unit: String,
        spec: WorkspaceSpec,
        result: Result<Created, (ErrorCode, String)>,
        namespaces: Option<Arc<Namespaces>>,
        reply: oneshot::Sender<Response>,
    ) {
        self.creating.remove(&id);
        let created = match result {
            Ok(c) => c,
            Err((code, e)) => {
                let _ = reply.send(Response::error(
                    code,
                    format!("cannot create workspace {:?}: {e}", spec.label),
                ));
                return;
            }
        };
        let warnings = created.warnings.clone();
        let mut ws = Workspace::new(
            id,
            unit.clone(),
            spec,
            created,
            SystemTime::now(),
            Instant::now(),
        );
        ws.namespaces = Ok(namespaces);
        self.arm_ttl(&ws);
        self.workspaces.insert(id, ws);
        self.changed();
        self.refill_spare(id);
        if self.shutdown_reply.is_some() {
            // Created while shutting down: it follows the others' fate.
            self.stop_for_shutdown(id);
        }
        let response = Response::WorkspaceCreated { id, unit, warnings };
        self.after_persist.push((self.generation, reply, response));
    }

    fn on_persisted(&mut self, generation: u64, error: Option<String>) {
        if error.is_none() {
            self.persisted = self.persisted.max(generation);
        }
        let (due, later) = std::mem::take(&mut self.after_persist)
            .into_iter()
            .partition(|(g, _, _)| *g <= generation);
        self.after_persist = later;
        for (_, reply, mut response) in due {
            if let (Some(e), Response::WorkspaceCreated { warnings, .. }) = (&error, &mut response)
            {
                warnings.push(format!(
                    "the state file could not be written yet ({e}); shipoted writes it again until it can \
                     (shipote health says dirty meanwhile); should it die first, the next start keeps this \
                     workspace if something runs in it and removes it if empty"
                ));
            }
            if let Err(Response::WorkspaceCreated { id, .. }) = reply.send(response) {
                tracing::info!(id = %id, "client left before its workspace was created; keeping it");
            }
        }
    }

    fn run_command(
        &mut self,
        workspace: WorkspaceId,
        run: RunSpec,
        restart_on_failure: bool,
        reply: oneshot::Sender<Response>,
    ) {
        let Some(ws) = self.workspaces.get(&workspace) else {
            let _ = reply.send(not_found(workspace));
            return;
        };
        if ws.stopping {
            let msg = format!("workspace {workspace} is stopping; it takes no new commands");
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        let namespaces = match ws.namespaces() {
            Ok(s) => s,
            Err(msg) => {
                let _ = reply.send(Response::error(ErrorCode::Unsupported, msg));
                return;
            }
        };
        let (id, spare) = self.command_id(workspace);
        let Some(ws) = self.workspaces.get(&workspace) else {
            // Looked up above; never gone in between (one owner, no await).
            let _ = reply.send(not_found(workspace));
            return;
        };
        let label = run.exec.rsplit('/').next().unwrap_or(&run.exec).to_owned();
        let leaf = ws
            .created
            .cgroup
            .as_ref()
            .map(|c| c.child(&ws::leaf_name(id)));
        let logs = LogPaths::new(
            &self.env.log_dir.join(workspace.to_string()),
            &id.to_string(),
        );
        let rec = CommandRec {
            id,
            label,
            pid: 0,
            alive: true,
            exit_status: None,
            exit_signal: None,
            logs,
            capture: Arc::default(),
            leaf,
            backoff: false,
            ends: None,
            run: restart_on_failure.then(|| run.clone()),
            restart: RestartState::default(),
            started_at: Instant::now(),
            failure: None,
            logs_pruned: false,
        };
        let (leaf, logs) = (rec.leaf.clone(), rec.logs.clone());
        start_in_background(
            self.tx.clone(),
            workspace,
            id,
            run,
            leaf,
            spare,
            namespaces,
            logs,
            false,
            None,
            move |result| match result {
                Ok((pid, capture)) => {
                    let mut rec = rec;
                    rec.pid = pid;
                    rec.capture = capture;
                    rec.started_at = Instant::now();
                    let event = Event::CommandStarted {
                        workspace,
                        rec: Box::new(CommandRecPublic { rec }),
                    };
                    let response = Response::RunStarted {
                        workspace,
                        command_id: id,
                        pid,
                    };
                    (Some(event), Box::new(move || drop(reply.send(response))))
                }
                Err(e) => {
                    let response = if crate::process::fds::names_exhaustion(&e) {
                        let why = crate::process::fds::check(usize::MAX / 2).unwrap_err();
                        Response::error(ErrorCode::Busy, format!("cannot run: {why}"))
                    } else {
                        Response::error(ErrorCode::Invalid, format!("cannot run: {e}"))
                    };
                    (None, Box::new(move || drop(reply.send(response))))
                }
            },
        );
    }

    /// The id of a new command of `workspace`: its spare leaf's when it has
    /// one that is newer than every id handed out there, else a fresh one.
    /// True with it: its leaf exists.
    fn command_id(&mut self, workspace: WorkspaceId) -> (Ulid, bool) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            return (self.ids.next(), false);
        };
        let (id, spare) = match ws.spare.take() {
            Some(spare) if spare > ws.last_command.get() => (spare, true),
            stale => {
                if let (Some(old), Some(cg)) = (stale, &ws.created.cgroup) {
                    let leaf = cg.child(&ws::leaf_name(old));
                    tokio::task::spawn_blocking(move || leaf.remove());
                }
                (self.ids.next(), false)
            }
        };
        ws.last_command.set(id);
        (id, spare)
    }

    /// Makes the next command's leaf ahead of time, off any request's path.
    fn refill_spare(&mut self, workspace: WorkspaceId) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            return;
        };
        let Some(cg) = &ws.created.cgroup else {
            return;
        };
        if ws.stopping || ws.spare.is_some() || ws.spare_pending {
            return;
        }
        ws.spare_pending = true;
        let id = self.ids.next();
        let leaf = cg.child(&ws::leaf_name(id));
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let made = leaf.create().is_ok();
            let _ = tx.blocking_send(Event::SpareLeaf {
                workspace,
                id,
                made,
            });
        });
    }

    fn on_spare_leaf(&mut self, workspace: WorkspaceId, id: Ulid, made: bool) {
        let ws = self.workspaces.get_mut(&workspace);
        if let Some(ws) = ws {
            ws.spare_pending = false;
            if made && !ws.stopping && id > ws.last_command.get() {
                ws.spare = Some(id);
                return;
            }
            // Stale or unwanted: a stopping workspace's leaves go with it.
            if let (true, false, Some(cg)) = (made, ws.stopping, &ws.created.cgroup) {
                let leaf = cg.child(&ws::leaf_name(id));
                tokio::task::spawn_blocking(move || leaf.remove());
            }
        }
    }

    fn on_restart_due(&mut self, workspace: WorkspaceId, command: Ulid) {
        let Some(ws) = self.workspaces.get(&workspace) else {
            return;
        };
        // A stopping workspace never restarts anything.
        if ws.stopping {
            return;
        }
        let Some(rec) = ws.commands.get(&command) else {
            return;
        };
        if !rec.backoff {
            return;
        }
        let Some(run) = rec.run.clone() else { return };
        // Never restarted less confined than asked.
        let namespaces = match ws.namespaces() {
            Ok(s) => s,
            Err(e) => {
                let why = format!("not restarted: {e}");
                if let Some(rec) = self
                    .workspaces
                    .get_mut(&workspace)
                    .and_then(|w| w.commands.get_mut(&command))
                {
                    rec.backoff = false;
                    rec.alive = false;
                    rec.failure = Some(why);
                }
                return;
            }
        };
        let (leaf, logs) = (rec.leaf.clone(), rec.logs.clone());
        start_in_background(
            self.tx.clone(),
            workspace,
            command,
            run,
            leaf,
            false,
            namespaces,
            logs,
            true,
            rec.ends.clone(),
            move |result| {
                let event = Event::Restarted {
                    workspace,
                    command,
                    result,
                };
                (Some(event), Box::new(|| ()))
            },
        );
    }

    fn on_restarted(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
        result: Result<(i32, Arc<CaptureState>), String>,
    ) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            if let Ok((pid, _)) = result {
                crate::process::signal(pid as u32, nix::sys::signal::Signal::SIGKILL);
            }
            return;
        };
        let stopping = ws.stopping;
        let Some(rec) = ws.commands.get_mut(&command) else {
            return;
        };
        rec.backoff = false;
        match result {
            Ok((pid, _)) if stopping => {
                crate::process::signal(pid as u32, nix::sys::signal::Signal::SIGKILL)
            }
            Ok((pid, capture)) => {
                rec.pid = pid;
                rec.capture = capture;
                rec.alive = true;
                rec.started_at = Instant::now();
                tracing::info!(workspace = %workspace, command = %command, pid, restarts = rec.restart.restarts, "command restarted");
            }
            Err(e) => {
                rec.alive = false;
                rec.failure = Some(format!("restart failed: {e}"));
            }
        }
    }

    fn on_command_started(&mut self, workspace: WorkspaceId, rec: Box<CommandRecPublic>) {
        let rec = rec.rec;
        match self.workspaces.get_mut(&workspace) {
            Some(ws) => {
                ws.commands.insert(rec.id, rec);
                self.refill_spare(workspace);
            }
            None => {
                // The workspace was stopped while the command started: end it.
                crate::process::signal(rec.pid as u32, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }

    fn on_command_exited(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
        status: Option<std::process::ExitStatus>,
    ) {
        use std::os::unix::process::ExitStatusExt;
        let policy = self.env.restart_policy;
        // A stopped workspace's commands still get their exit recorded.
        let Some(ws) = self.find_mut(workspace) else {
            return;
        };
        let stopping = ws.stopping;
        let Some(rec) = ws.commands.get_mut(&command) else {
            return;
        };
        rec.alive = false;
        rec.exit_status = status.and_then(|s| s.code());
        rec.exit_signal = status.and_then(|s| s.signal());
        tracing::info!(workspace = %workspace, command = %command, status = ?rec.exit_status, signal = ?rec.exit_signal, "command exited");
        if rec.run.is_some() && !stopping {
            let success = rec.exit_status == Some(0);
            match policy.decide(
                &mut rec.restart,
                success,
                rec.started_at.elapsed(),
                jitter_unit(),
            ) {
                Decision::Done => {}
                Decision::RestartAfter(delay) => {
                    // Waiting to restart counts as alive.
                    rec.alive = true;
                    rec.backoff = true;
                    let key = self
                        .timers
                        .insert(Timer::Restart { workspace, command }, delay);
                    self.restart_timers.insert((workspace, command), key);
                    return;
                }
                Decision::GiveUp(why) => {
                    tracing::warn!(workspace = %workspace, command = %command, "{why}");
                    rec.failure = Some(why);
                }
            }
        }
        // Done for good: its peers may now see EOF or EPIPE.
        rec.ends = None;
        self.budget_due = true;
        self.forget_old_commands(workspace);
        let Some(rec) = self
            .find_mut(workspace)
            .and_then(|ws| ws.commands.get_mut(&command))
        else {
            return;
        };
        if let Some(leaf) = rec.leaf.clone() {
            // Its leaf goes once its last process is gone (children may linger).
            tokio::task::spawn_blocking(move || {
                if leaf.procs_recursive().is_empty() {
                    let _ = leaf.remove();
                }
            });
        }
    }

    fn arm_ttl(&mut self, ws: &Workspace) {
        let Some(deadline) = ws.ttl_deadline() else {
            return;
        };
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let key = self.timers.insert(Timer::Ttl(ws.id), left);
        self.ttl_timers.insert(ws.id, key);
    }

    /// A timer of the loop fired.
    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Ttl(id) => {
                self.ttl_timers.remove(&id);
                self.on_ttl(id);
            }
            Timer::Restart { workspace, command } => {
                self.restart_timers.remove(&(workspace, command));
                self.on_restart_due(workspace, command);
            }
        }
    }

    /// Cancels a workspace's timers (its TTL, its commands' backoffs).
    fn cancel_timers(&mut self, id: WorkspaceId) {
        if let Some(key) = self.ttl_timers.remove(&id) {
            self.timers.try_remove(&key);
        }
        let keys: Vec<(WorkspaceId, Ulid)> = self
            .restart_timers
            .keys()
            .filter(|(w, _)| *w == id)
            .copied()
            .collect();
        for k in keys {
            if let Some(key) = self.restart_timers.remove(&k) {
                self.timers.try_remove(&key);
            }
        }
    }

    fn stop(&mut self, id: WorkspaceId, grace: Duration, reply: Option<oneshot::Sender<Response>>) {
        let Some(ws) = self.workspaces.get_mut(&id) else {
            if let Some(r) = reply {
                let _ = r.send(not_found(id));
            }
            return;
        };
        if ws.stopping {
            if let Some(r) = reply {
                let msg = format!("workspace {id} is already stopping");
                let _ = r.send(Response::error(ErrorCode::Invalid, msg));
            }
            return;
        }
        ws.stopping = true;
        for rec in ws.commands.values_mut().filter(|c| c.alive) {
            rec.failure
                .get_or_insert_with(|| "ended by a workspace stop".to_owned());
        }
        self.stops_pending += 1;
        let backend = self.env.backend.clone();
        let unit = ws.unit.clone();
        let cgroup = ws.created.cgroup.clone();
        let keeper = ws.created.keeper_pid;
        let groups: Vec<u32> = ws
            .commands
            .values()
            .filter(|c| c.alive)
            .map(|c| c.pid as u32)
            .collect();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = backend
                .backend
                .stop(&unit, cgroup.as_ref(), keeper, grace, &groups)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(Event::Stopped { id, result, reply }).await;
        });
        // No TTL or restart fires for it any more.
        self.cancel_timers(id);
    }

    fn on_stopped(
        &mut self,
        id: WorkspaceId,
        result: Result<u32, String>,
        reply: Option<oneshot::Sender<Response>>,
    ) {
        self.stops_pending = self.stops_pending.saturating_sub(1);
        let response = match result {
            Ok(reaped) => {
                if let Some(mut ws) = self.workspaces.remove(&id) {
                    // Nothing waits out a backoff any more; exits of the
                    // processes just ended are still on their way.
                    for rec in ws.commands.values_mut() {
                        rec.ends = None;
                        if rec.backoff {
                            rec.backoff = false;
                            rec.alive = false;
                        }
                    }
                    // Its namespaces (and a private /tmp's contents) go now,
                    // not when the record ages out.
                    ws.namespaces = Ok(None);
                    self.keep_stopped(ws);
                }
                // Its pipelines go with it (their taps ended with their edges).
                let gone: Vec<Ulid> = self
                    .pipelines
                    .iter()
                    .filter(|(_, p)| p.workspace == id)
                    .map(|(k, _)| *k)
                    .collect();
                for k in gone {
                    if let Some(p) = self.pipelines.remove(&k) {
                        for t in &p.taps {
                            if let Some(socket) = &t.tap.socket {
                                crate::flow::tap::unpublish(&t.tap.state, socket);
                            }
                        }
                    }
                }
                self.changed();
                Response::WorkspaceStopped { id, reaped }
            }
            Err(e) => {
                if let Some(ws) = self.workspaces.get_mut(&id) {
                    ws.stopping = false;
                }
                Response::error(
                    ErrorCode::Internal,
                    format!("cannot stop workspace {id}: {e}"),
                )
            }
        };
        match reply {
            Some(r) => {
                let _ = r.send(response);
            }
            None => {
                if let Response::Error { message, .. } = &response {
                    tracing::error!(id = %id, "{message}");
                }
            }
        }
        self.maybe_finish_shutdown();
    }

    /// Keeps a stopped workspace's records readable, forgetting (and
    /// deleting the logs of) the oldest beyond [`KEPT_STOPPED`].
    fn keep_stopped(&mut self, ws: Workspace) {
        self.stopped.push_back(ws);
        while self.stopped.len() > KEPT_STOPPED {
            if let Some(old) = self.stopped.pop_front() {
                let logs = self.env.log_dir.join(old.id.to_string());
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(logs));
            }
        }
    }

    fn on_ttl(&mut self, id: WorkspaceId) {
        let Some(ws) = self.workspaces.get(&id) else {
            return;
        };
        if ws.stopping {
            return;
        }
        audit::record(
            self.env.own_uid,
            "workspace.expire",
            &audit::Detail::new()
                .kv("id", id)
                .kv("label", &ws.spec.label)
                .kv("ttl_ms", ws.spec.ttl_ms.unwrap_or(0)),
            "stopping",
        );
        self.stop(id, AUTO_STOP_GRACE, None);
    }

    fn stats(&mut self, id: WorkspaceId, reply: oneshot::Sender<Response>, full: bool) {
        let Some(ws) = self.workspaces.get(&id) else {
            let _ = reply.send(not_found(id));
            return;
        };
        let snapshot = Workspace {
            id,
            unit: ws.unit.clone(),
            spec: ws.spec.clone(),
            created: ws.created.clone(),
            created_at: ws.created_at,
            started: ws.started,
            history: VecDeque::new(),
            last_cpu: ws.last_cpu,
            peak_seen: ws.peak_seen,
            report_breaches: ws.report_breaches.clone(),
            stopping: ws.stopping,
            commands: ws.commands.clone(),
            spare: None,
            spare_pending: false,
            last_command: ws.last_command.clone(),
            namespaces: Ok(None),
        };
        let flow_sockets: Vec<PathBuf> = self
            .pipelines
            .values()
            .filter(|p| p.workspace == id)
            .flat_map(|p| p.taps.iter().filter_map(|t| t.published().cloned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let r = stats::read(
                snapshot.created.cgroup.as_ref(),
                snapshot.created.keeper_pid,
            );
            let info = snapshot.info(&r, Instant::now());
            let response = if full {
                Response::WorkspaceFullSummary {
                    stats: info,
                    quota: stats::quota(
                        snapshot.created.cgroup.as_ref(),
                        &snapshot.spec,
                        &snapshot.report_only_breaches(),
                    ),
                    commands: snapshot.commands.values().map(CommandRec::info).collect(),
                    flow_sockets,
                }
            } else {
                Response::WorkspaceStats { info }
            };
            let _ = reply.send(response);
        });
    }

    fn quota(&mut self, id: WorkspaceId, reply: oneshot::Sender<Response>) {
        let Some(ws) = self.workspaces.get(&id) else {
            let _ = reply.send(not_found(id));
            return;
        };
        let cgroup = ws.created.cgroup.clone();
        let spec = ws.spec.clone();
        let seen = ws.report_only_breaches();
        tokio::task::spawn_blocking(move || {
            let info = stats::quota(cgroup.as_ref(), &spec, &seen);
            let _ = reply.send(Response::WorkspaceQuota { info });
        });
    }

    /// Forgets the oldest ended commands of a workspace (and removes their
    /// logs) beyond [`KEPT_ENDED_COMMANDS`], so a workspace that runs commands
    /// for months does not grow without bound. Commands of live pipelines stay.
    fn forget_old_commands(&mut self, workspace: WorkspaceId) {
        let in_pipelines: std::collections::HashSet<Ulid> = self
            .pipelines
            .values()
            .filter(|p| p.workspace == workspace)
            .flat_map(|p| p.commands.iter().copied())
            .collect();
        let Some(ws) = self.find_mut(workspace) else {
            return;
        };
        let ended: Vec<Ulid> = ws
            .commands
            .values()
            .filter(|c| !c.alive && !in_pipelines.contains(&c.id))
            .map(|c| c.id)
            .collect();
        let Some(excess) = ended.len().checked_sub(KEPT_ENDED_COMMANDS) else {
            return;
        };
        let mut gone = Vec::with_capacity(excess);
        for id in ended.into_iter().take(excess) {
            if let Some(rec) = ws.commands.remove(&id) {
                gone.push(rec.logs);
            }
        }
        if !gone.is_empty() {
            tokio::task::spawn_blocking(move || {
                for logs in gone {
                    logs.remove();
                }
            });
        }
    }

    /// Removes the logs of ended commands, oldest first, while a workspace's
    /// (or all) logs pass their budget (workspace/budget.rs). Off the
    /// supervisor: sizes are read and files removed on a blocking thread.
    fn enforce_log_budget(&mut self) {
        if !self.budget_due || self.budget_running {
            return;
        }
        self.budget_due = false;
        self.budget_running = true;
        let entries: Vec<(WorkspaceId, Ulid, LogPaths, bool)> = self
            .workspaces
            .values()
            .chain(self.stopped.iter())
            .flat_map(|ws| {
                ws.commands
                    .values()
                    .filter(|c| !c.logs_pruned)
                    .map(move |c| (ws.id, c.id, c.logs.clone(), c.alive))
            })
            .collect();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let sized: Vec<budget::Entry<WorkspaceId, Ulid>> = entries
                .iter()
                .map(|(w, c, logs, alive)| budget::Entry {
                    workspace: *w,
                    command: *c,
                    bytes: logs.kept_bytes(),
                    alive: *alive,
                })
                .collect();
            let pruned = budget::prune(&sized, budget::WORKSPACE_BUDGET, budget::TOTAL_BUDGET);
            let mut freed = 0;
            for (w, c) in &pruned {
                if let Some((_, _, logs, _)) = entries.iter().find(|e| e.0 == *w && e.1 == *c) {
                    freed += logs.remove();
                }
            }
            let _ = tx.blocking_send(Event::LogsPruned { pruned, freed });
        });
    }

    fn on_logs_pruned(&mut self, pruned: Vec<(WorkspaceId, Ulid)>, freed: u64) {
        self.budget_running = false;
        if pruned.is_empty() {
            return;
        }
        for (w, c) in &pruned {
            if let Some(rec) = self.find_mut(*w).and_then(|ws| ws.commands.get_mut(c)) {
                rec.logs_pruned = true;
            }
        }
        tracing::info!(
            commands = pruned.len(),
            freed_bytes = freed,
            "removed the logs of ended commands to keep within the log budget"
        );
    }

    fn sample(&mut self) {
        if self.workspaces.is_empty() {
            return;
        }
        // One round at a time: the sampler travels with it.
        let Some(mut sampler) = self.sampler.take() else {
            return;
        };
        let targets: Vec<(WorkspaceId, Option<Cgroup>, Option<u32>)> = self
            .workspaces
            .values()
            .filter(|w| !w.stopping)
            .map(|w| (w.id, w.created.cgroup.clone(), w.created.keeper_pid))
            .collect();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let live = targets
                .iter()
                .filter_map(|(_, cg, _)| cg.as_ref().map(|c| c.dir().to_owned()))
                .collect();
            sampler.retain(&live);
            let readings = targets
                .into_iter()
                .map(|(id, cg, keeper)| (id, sampler.read(cg.as_ref(), keeper)))
                .collect();
            let _ = tx.blocking_send(Event::Sampled {
                sampler,
                readings,
                at: Instant::now(),
            });
        });
    }

    fn on_sampled(
        &mut self,
        sampler: Box<stats::Sampler>,
        readings: Vec<(WorkspaceId, Reading)>,
        at: Instant,
    ) {
        self.sampler = Some(sampler);
        let mut vanished = Vec::new();
        for (id, r) in readings {
            let Some(ws) = self.workspaces.get_mut(&id) else {
                continue;
            };
            if ws.stopping {
                continue;
            }
            if ws.created.cgroup.as_ref().is_some_and(|c| !c.exists()) {
                vanished.push(id);
                continue;
            }
            let info = ws.info(&r, at);
            if let Some(cpu) = r.cpu_usec {
                ws.last_cpu = Some((at, cpu));
            }
            ws.peak_seen = ws.peak_seen.max(r.rss_bytes.unwrap_or(0));
            if ws.spec.quota_enforce == QuotaEnforce::ReportOnly {
                let soma = &ws.spec.soma;
                if let (Some(limit), Some(rss)) = (soma.mem_max_bytes, r.rss_bytes) {
                    if rss > limit {
                        *ws.report_breaches
                            .entry("memory.max (report-only)".into())
                            .or_default() += 1;
                    }
                }
                if let (Some(limit), Some(tasks)) = (soma.tasks_max, r.tasks) {
                    if tasks > limit {
                        *ws.report_breaches
                            .entry("pids.max (report-only)".into())
                            .or_default() += 1;
                    }
                }
            }
            if ws.history.len() == HISTORY_CAPACITY {
                ws.history.pop_front();
            }
            ws.history.push_back(info);
        }
        for id in vanished {
            if let Some(ws) = self.workspaces.remove(&id) {
                audit::record(
                    self.env.own_uid,
                    "workspace.vanished",
                    &audit::Detail::new()
                        .kv("id", id)
                        .kv("label", &ws.spec.label)
                        .kv("unit", &ws.unit),
                    "its cgroup disappeared (stopped outside shipote or by systemd)",
                );
                self.changed();
            }
        }
    }

    /// Records a state change and hands a snapshot to the persister.
    fn changed(&mut self) {
        self.generation += 1;
        let backend = self.env.backend.backend.name();
        let saved: Vec<SavedWorkspace> =
            self.workspaces.values().map(|w| w.saved(backend)).collect();
        let _ = self
            .persist_tx
            .send((self.generation, state::encode(saved)));
    }

    fn on_shutdown(&mut self, reply: oneshot::Sender<()>) {
        self.shutdown_reply = Some(reply);
        let reap: Vec<WorkspaceId> = self
            .workspaces
            .values()
            .filter(|w| w.spec.on_exit == ExitPolicy::Reap)
            .map(|w| w.id)
            .collect();
        for id in reap {
            self.stop_for_shutdown(id);
        }
        self.maybe_finish_shutdown();
    }

    fn stop_for_shutdown(&mut self, id: WorkspaceId) {
        if let Some(ws) = self.workspaces.get(&id) {
            if ws.spec.on_exit == ExitPolicy::Reap {
                audit::record(
                    self.env.own_uid,
                    "workspace.reap",
                    &audit::Detail::new()
                        .kv("id", id)
                        .kv("label", &ws.spec.label),
                    "the daemon is stopping",
                );
                self.stop(id, AUTO_STOP_GRACE, None);
            }
        }
    }

    fn maybe_finish_shutdown(&mut self) {
        if self.stops_pending > 0 || !self.creating.is_empty() {
            return;
        }
        let Some(reply) = self.shutdown_reply.take() else {
            return;
        };
        self.env.backend.backend.discard_spare();
        // Write the final state in place: nothing else is left to do.
        let backend = self.env.backend.backend.name();
        let saved: Vec<SavedWorkspace> =
            self.workspaces.values().map(|w| w.saved(backend)).collect();
        let written = state::write_atomic(&self.env.state_file, &state::encode(saved));
        if let Err(e) = &written {
            tracing::error!(error = %e, "cannot save state at shutdown; kept workspaces will not be re-adopted");
        }
        // Answers still waiting for the persister are due now.
        self.on_persisted(self.generation, written.err().map(|e| e.to_string()));
        let _ = reply.send(());
    }
}

/// Writes the newest state snapshot whenever it changes, one write at a time.
async fn persister(
    path: PathBuf,
    mut rx: watch::Receiver<(u64, Vec<u8>)>,
    tx: mpsc::Sender<Event>,
) {
    // After a failed write (full disk, read-only remount, EMFILE) the newest
    // state is written again after a backoff, or at once when it changes,
    // until a write succeeds: `dirty` stays true in Health meanwhile.
    let mut retry: Option<Duration> = None;
    loop {
        match retry {
            None => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            Some(wait) => {
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        let (generation, bytes) = rx.borrow_and_update().clone();
        let p = path.clone();
        let error = match tokio::task::spawn_blocking(move || state::write_atomic(&p, &bytes)).await
        {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("the state writer failed: {e}")),
        };
        retry = match (&error, retry) {
            (None, _) => None,
            (Some(_), None) => Some(PERSIST_RETRY_FIRST),
            (Some(_), Some(w)) => Some((w * 2).min(PERSIST_RETRY_MAX)),
        };
        if let (Some(e), Some(wait)) = (&error, retry) {
            tracing::error!(error = %e, retry_ms = wait.as_millis() as u64, "cannot save state; it stays dirty and is written again");
        }
        let _ = tx.send(Event::Persisted { generation, error }).await;
    }
}

/// First wait before a failed state write is tried again; it doubles up to
/// [`PERSIST_RETRY_MAX`].
pub const PERSIST_RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest wait between two tries of a failed state write.
pub const PERSIST_RETRY_MAX: Duration = Duration::from_secs(10);

fn log_stream(s: LogStream) -> Stream {
    match s {
        LogStream::Stdout => Stream::Stdout,
        LogStream::Stderr => Stream::Stderr,
        LogStream::Both => Stream::Both,
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

/// Renders and validates a pipeline on a blocking thread and hands the plan
/// to the supervisor, or answers the client with what is wrong.
fn planned(
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
type Then = Box<dyn FnOnce() + Send>;

/// Starts (or restarts) a command's process on a blocking thread, queues the
/// event `report` makes of the outcome (pid or error) and then runs what it
/// returns with it, then reports the process's exit.
#[allow(clippy::too_many_arguments)]
fn start_in_background(
    tx: mpsc::Sender<Event>,
    workspace: WorkspaceId,
    command: Ulid,
    run: RunSpec,
    leaf: Option<Cgroup>,
    leaf_exists: bool,
    namespaces: Option<Arc<Namespaces>>,
    logs: LogPaths,
    append: bool,
    ends: Option<Arc<crate::flow::Ends>>,
    report: impl FnOnce(Result<(i32, Arc<CaptureState>), String>) -> (Option<Event>, Then)
        + Send
        + 'static,
) {
    tokio::task::spawn_blocking(move || {
        let io = match ends
            .as_deref()
            .map(crate::flow::Ends::try_clone)
            .transpose()
        {
            Ok(Some(e)) => crate::workspace::command::CommandIo {
                stdin: e.stdin,
                stdout: e.stdout,
                stderr: e.stderr,
                extra: e.extra,
            },
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
fn follow(
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
fn jitter_unit() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 2001) / 1000.0 - 1.0
}

#[cfg(test)]
mod tests {
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
}
