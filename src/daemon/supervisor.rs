//! The supervisor: the one task that owns the daemon's state. Connections send it
//! [`Event`]s through a [`SupervisorHandle`]; requests carry a oneshot for their
//! reply. It never awaits the outside world: work that waits on D-Bus, processes
//! or disks runs in spawned tasks that report back as events.

use crate::host::HostCaps;
use crate::systemd::notify::Notifier;
use shipote_protocol::{ErrorCode, Request, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How many events may wait for the supervisor before senders wait.
const EVENT_QUEUE: usize = 1024;

/// Status lines go to the service manager at most this often.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(250);

/// What the supervisor reacts to.
#[derive(Debug)]
pub enum Event {
    /// A client's request and where to send the answer.
    Request {
        /// The request (boxed: it can be large, and events are moved around).
        request: Box<Request>,
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
}

/// A cheap, clonable way to talk to the supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    tx: mpsc::Sender<Event>,
}

impl SupervisorHandle {
    /// Sends a request and waits for its response. Never fails: a supervisor
    /// that is gone yields an `Error` response.
    pub async fn request(&self, request: Request) -> Response {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Event::Request {
                request: Box::new(request),
                reply,
            })
            .await
            .is_err()
        {
            return shutting_down();
        }
        rx.await.unwrap_or_else(|_| shutting_down())
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
}

fn shutting_down() -> Response {
    Response::error(
        ErrorCode::Busy,
        "shipoted is shutting down; try again once it is back",
    )
}

/// The state the supervisor owns.
#[derive(Debug)]
pub struct Supervisor {
    started: Instant,
    caps: Arc<HostCaps>,
    clients: u32,
    notifier: Notifier,
    last_status: String,
    last_status_at: Option<Instant>,
}

impl Supervisor {
    /// Creates the supervisor and its handle; run it with [`Supervisor::run`].
    pub fn new(
        caps: Arc<HostCaps>,
        notifier: Notifier,
    ) -> (Self, SupervisorHandle, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let sup = Self {
            started: Instant::now(),
            caps,
            clients: 0,
            notifier,
            last_status: String::new(),
            last_status_at: None,
        };
        (sup, SupervisorHandle { tx }, rx)
    }

    /// The status line systemd shows (`systemctl --user status shipote`).
    pub fn status_line(&self) -> String {
        format!(
            "serving: 0 workspaces, 0 commands, 0 pipelines, 0 flows, {} clients",
            self.clients
        )
    }

    /// Handles events until the queue closes or `shutdown` fires.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(STATUS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
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
            Event::Request { request, reply } => {
                let _ = reply.send(self.answer(*request));
            }
            Event::ClientConnected => self.clients += 1,
            Event::ClientDisconnected => self.clients = self.clients.saturating_sub(1),
            Event::Probe { reply } => {
                let _ = reply.send(());
            }
        }
    }

    fn answer(&mut self, request: Request) -> Response {
        match request {
            Request::Ping => Response::Pong,
            Request::Health => Response::Health {
                version: crate::VERSION.to_owned(),
                uptime_ms: self.started.elapsed().as_millis() as u64,
                alive_workspaces: 0,
                alive_commands: 0,
                alive_pipelines: 0,
                active_flows: 0,
                dirty: false,
            },
            Request::Capabilities => self.capabilities(),
            other => not_yet(&other),
        }
    }

    fn capabilities(&self) -> Response {
        let c = &self.caps;
        Response::Capabilities {
            kernel_version: c.kernel_version,
            user_ns: c.user_ns.clone(),
            cgroup_v2: c.cgroup.layout.name().to_owned(),
            cgroup_delegated: c.cgroup.writable,
            has_cap_sys_admin: c.has_cap_sys_admin,
            cgroup_path: c.cgroup.path.clone(),
            cgroup_controllers: c.cgroup.controllers.clone(),
            backend: "none".to_owned(),
            backend_reason: "workspaces are not available in this version of shipoted".to_owned(),
            systemd_version: None,
        }
    }
}

/// The answer for a request whose feature has not landed in this version.
pub fn not_yet(request: &Request) -> Response {
    let (what, issue) = match request {
        Request::WorkspaceCreate { .. }
        | Request::WorkspaceList
        | Request::WorkspaceStop { .. }
        | Request::WorkspaceStats { .. }
        | Request::WorkspaceQuota { .. }
        | Request::WorkspaceStatsHistory { .. }
        | Request::WorkspaceFullSummary { .. } => ("workspaces are", 4),
        Request::Run { .. } | Request::CommandList { .. } | Request::CommandLogs { .. } => {
            ("commands are", 5)
        }
        Request::Discern { .. } => ("content discernment is", 6),
        _ => ("pipelines and flows are", 7),
    };
    Response::error(
        ErrorCode::Unsupported,
        format!(
            "{} is not available yet: {what} not implemented in shipoted {} (tracked as issue #{issue})",
            request_name(request),
            crate::VERSION
        ),
    )
}

/// The request's variant name, as SPEC.md spells it.
pub fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Ping => "Ping",
        Request::Health => "Health",
        Request::WorkspaceCreate { .. } => "WorkspaceCreate",
        Request::WorkspaceList => "WorkspaceList",
        Request::WorkspaceStop { .. } => "WorkspaceStop",
        Request::Run { .. } => "Run",
        Request::PipelineRun { .. } => "PipelineRun",
        Request::Discern { .. } => "Discern",
        Request::Capabilities => "Capabilities",
        Request::CommandList { .. } => "CommandList",
        Request::CommandLogs { .. } => "CommandLogs",
        Request::PipelineSave { .. } => "PipelineSave",
        Request::PipelineSavedList => "PipelineSavedList",
        Request::PipelineDrop { .. } => "PipelineDrop",
        Request::PipelineRunSaved { .. } => "PipelineRunSaved",
        Request::WorkspaceStats { .. } => "WorkspaceStats",
        Request::WorkspaceQuota { .. } => "WorkspaceQuota",
        Request::WorkspaceStatsHistory { .. } => "WorkspaceStatsHistory",
        Request::WorkspaceFullSummary { .. } => "WorkspaceFullSummary",
        Request::PipelineStop { .. } => "PipelineStop",
        Request::FlowList => "FlowList",
        Request::FlowThroughput => "FlowThroughput",
        Request::FlowDrop { .. } => "FlowDrop",
    }
}
