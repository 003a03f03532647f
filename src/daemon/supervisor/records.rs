//! The supervisor's records: a workspace, a command, a pipeline, and what
//! each says about itself (its summary, stats sample, note). No I/O but
//! reading log sizes.

use super::*;

/// A live workspace.
#[derive(Debug)]
pub(super) struct Workspace {
    pub(super) id: WorkspaceId,
    pub(super) unit: String,
    pub(super) spec: WorkspaceSpec,
    pub(super) created: Created,
    pub(super) created_at: SystemTime,
    pub(super) started: Instant,
    pub(super) history: VecDeque<WorkspaceStatsInfo>,
    pub(super) last_cpu: Option<(Instant, u64)>,
    pub(super) peak_seen: u64,
    /// Whether the kernel holds its limits (its cgroup has memory.max or
    /// pids.max), found at its first sample; where it does not, crossings
    /// are reported as for `--report-only`.
    pub(super) kernel_limits: Option<bool>,
    pub(super) report_breaches: BTreeMap<String, u64>,
    pub(super) stopping: bool,
    pub(super) commands: BTreeMap<Ulid, CommandRec>,
    /// A command leaf made ahead of time (`cmd-<id>`, empty), so that Run
    /// does not wait for the cgroup's mkdir; taken by the next command.
    pub(super) spare: Option<Ulid>,
    /// A spare leaf's mkdir is under way.
    pub(super) spare_pending: bool,
    /// The newest command id handed out here: a spare made earlier than it
    /// is not used (ids list commands in start order).
    pub(super) last_command: Ulid,
    /// New commands whose processes are being started: not listed, never
    /// signalled; they join `commands` with the start's report.
    pub(super) starting: BTreeMap<Ulid, CommandRec>,
    /// Its permissions: the namespaces each command joins (`None`: nothing
    /// asked); an error when a re-adopted workspace's cannot be made any more
    /// (its commands are then refused with it).
    pub(super) namespaces: Result<Option<Arc<Namespaces>>, String>,
}

/// A command of a workspace (ids are ULIDs: map order is start order).
#[derive(Debug, Clone)]
pub(super) struct CommandRec {
    pub(super) id: Ulid,
    pub(super) label: String,
    pub(super) pid: i32,
    pub(super) alive: bool,
    pub(super) exit_status: Option<i32>,
    pub(super) exit_signal: Option<i32>,
    pub(super) logs: LogPaths,
    /// Its current run's log capture.
    pub(super) capture: Arc<CaptureState>,
    pub(super) leaf: Option<Cgroup>,
    /// Waiting out a restart backoff (no process).
    pub(super) backoff: bool,
    /// A restartable pipeline command's edges, kept for its next run (and
    /// so its peers see no EOF or EPIPE while it restarts); dropped when it
    /// is done for good.
    pub(super) ends: Option<Arc<crate::flow::Ends>>,
    /// What to start again, for restart_on_failure.
    pub(super) run: Option<RunSpec>,
    /// What it was started with, for a restart asked for (`shipote
    /// restart`), whatever its policy; `None` for pipelines' commands and
    /// for commands a previous daemon started without a policy.
    pub(super) spec: Option<RunSpec>,
    pub(super) restart: RestartState,
    pub(super) started_at: Instant,
    pub(super) failure: Option<String>,
    /// Its log was removed to keep within the log budget (workspace/budget.rs).
    pub(super) logs_pruned: bool,
    /// The pipeline it belongs to (id, label).
    pub(super) pipeline: Option<(Ulid, String)>,
}

/// A pipeline: its commands are ordinary commands of its workspace.
#[derive(Debug)]
pub(super) struct PipelineRec {
    pub(super) workspace: WorkspaceId,
    pub(super) label: String,
    pub(super) commands: Vec<Ulid>,
    pub(super) taps: Vec<EdgeTap>,
}

/// A tap (or a rate limit) on one edge.
#[derive(Debug)]
pub struct EdgeTap {
    pub(super) edge: shipote_protocol::spec::FlowEdge,
    /// The edge's index in its pipeline's spec.
    pub(super) index: u32,
    pub(super) tap: crate::flow::tap::Tap,
    /// When the throughput was last asked, and the byte count then.
    pub(super) last: (Instant, u64),
}

impl EdgeTap {
    /// Removes its flow socket (once); whether it still had one.
    pub(super) fn unpublish(&self) -> bool {
        match self.published() {
            Some(socket) => {
                crate::flow::tap::unpublish(&self.tap.state, socket);
                true
            }
            None => false,
        }
    }

    /// Removes the flow sockets of `taps`; whether any had one.
    pub(super) fn unpublish_all(taps: &[EdgeTap]) -> bool {
        // Every one, not just up to the first.
        taps.iter().filter(|t| t.unpublish()).count() > 0
    }

    pub(super) fn published(&self) -> Option<&PathBuf> {
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
pub(super) struct Ids(pub(super) ulid::Generator);

impl Ids {
    /// The next id, later than every one before (a fresh one if the
    /// millisecond's random part ran out).
    pub(super) fn next(&mut self) -> Ulid {
        self.0.generate().unwrap_or_else(|_| Ulid::new())
    }
}

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ids")
    }
}

/// A command's program, kept to restart it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct RunSpec {
    pub(super) exec: String,
    pub(super) argv: Vec<String>,
    pub(super) envp: Vec<(String, String)>,
    pub(super) cwd: Option<PathBuf>,
}

/// What a workspace's keeper keeps of a command for the next daemon
/// (postcard, opaque to the keeper): enough to list it and restart it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct CommandMeta {
    pub(super) label: String,
    pub(super) run: Option<RunSpec>,
    pub(super) restarts: u32,
    pub(super) failures_in_a_row: u32,
    pub(super) pipeline: Option<(Ulid, String)>,
    /// What it was started with, for `shipote restart` after a daemon
    /// restart (since 2026-11-29; metas written before lack it).
    pub(super) spec: Option<RunSpec>,
}

/// A meta as daemons before 2026-11-29 wrote it (no `spec`).
#[derive(Debug, Default, serde::Deserialize)]
struct CommandMetaV1 {
    label: String,
    run: Option<RunSpec>,
    restarts: u32,
    failures_in_a_row: u32,
    pipeline: Option<(Ulid, String)>,
}

impl CommandMeta {
    /// Reads a meta of this daemon or of an earlier one (postcard is not
    /// self-describing: the newer form is tried first); nothing usable, an
    /// empty one.
    pub(super) fn decode(bytes: &[u8]) -> Self {
        if let Ok(m) = postcard::from_bytes::<CommandMeta>(bytes) {
            return m;
        }
        let old: CommandMetaV1 = postcard::from_bytes(bytes).unwrap_or_default();
        CommandMeta {
            label: old.label,
            run: old.run,
            restarts: old.restarts,
            failures_in_a_row: old.failures_in_a_row,
            pipeline: old.pipeline,
            spec: None,
        }
    }
}

/// What a workspace's keeper keeps of a tapped pipeline edge for the next
/// daemon (postcard, opaque to the keeper).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct EdgeMeta {
    /// The pipeline's label.
    pub(super) label: String,
    /// The edge.
    pub(super) edge: shipote_protocol::spec::FlowEdge,
    /// Its flow socket, when it publishes.
    pub(super) socket: Option<PathBuf>,
}

impl CommandRec {
    /// A command about to start: alive, no pid yet, no restart policy.
    pub(super) fn new(id: Ulid, label: String, logs: LogPaths, leaf: Option<Cgroup>) -> Self {
        CommandRec {
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
            run: None,
            spec: None,
            restart: RestartState::default(),
            started_at: Instant::now(),
            failure: None,
            logs_pruned: false,
            pipeline: None,
        }
    }

    /// What its workspace's keeper keeps of it.
    pub(super) fn meta(&self) -> Vec<u8> {
        let meta = CommandMeta {
            label: self.label.clone(),
            run: self.run.clone(),
            restarts: self.restart.restarts,
            failures_in_a_row: self.restart.failures_in_a_row,
            pipeline: self.pipeline.clone(),
            spec: self.spec.clone(),
        };
        postcard::to_allocvec(&meta).unwrap_or_default()
    }

    /// What `ps` shows in NOTE: why it stays failed, and output that was not
    /// kept (disk full) or was removed (log budget).
    pub(super) fn note(&self) -> Option<String> {
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
    pub(super) fn pruned_answer(&self) -> Option<Response> {
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

    /// Blocking: sizes the logs.
    pub(super) fn info(&self) -> CommandInfo {
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
                self.logs.output_bytes()
            },
        }
    }
}

impl Workspace {
    pub(super) fn new(
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
            kernel_limits: None,
            report_breaches: BTreeMap::new(),
            stopping: false,
            commands: BTreeMap::new(),
            spare: None,
            spare_pending: false,
            last_command: Ulid::nil(),
            starting: BTreeMap::new(),
            namespaces: Ok(None),
        }
    }

    /// Its keeper, when the workspace is kept across daemon restarts
    /// (`ExitPolicy::Keep`) and the keeper answers: what its commands, edges
    /// and relays are handed to.
    pub(super) fn kept_link(&self) -> Option<&Arc<crate::keeper::link::KeeperLink>> {
        if self.spec.on_exit != ExitPolicy::Keep {
            return None;
        }
        self.created.link.as_ref().filter(|l| l.alive())
    }

    /// The cgroup leaf of its command `id`, when it has a cgroup.
    pub(super) fn leaf(&self, id: Ulid) -> Option<Cgroup> {
        self.created
            .cgroup
            .as_ref()
            .map(|c| c.child(&ws::leaf_name(id)))
    }

    /// A start of `rec` through this workspace's keeper: for a workspace
    /// kept across daemon restarts (`ExitPolicy::Keep`), when its keeper
    /// answers. A `Reap` workspace ends with its daemon, so the daemon
    /// starts its commands itself, one process hop (~50 µs) sooner.
    pub(super) fn by_keeper(
        &self,
        rec: &CommandRec,
    ) -> Option<crate::workspace::command::ByKeeper> {
        let link = self.kept_link()?;
        Some(crate::workspace::command::ByKeeper {
            link: link.clone(),
            command: rec.id,
            meta: rec.meta(),
        })
    }

    /// The namespaces its commands join, or why none may start.
    pub(super) fn namespaces(&self) -> Result<Option<Arc<Namespaces>>, String> {
        self.namespaces.clone().map_err(|e| {
            format!(
                "workspace {}'s permissions cannot be enforced: {e}",
                self.id
            )
        })
    }

    pub(super) fn alive_commands(&self) -> u32 {
        self.commands.values().filter(|c| c.alive).count() as u32
    }

    pub(super) fn summary(&self) -> WorkspaceSummary {
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

    pub(super) fn ttl_deadline(&self) -> Option<SystemTime> {
        self.spec
            .ttl_ms
            .map(|t| self.created_at + Duration::from_millis(t))
    }

    pub(super) fn saved(&self, backend: &str) -> SavedWorkspace {
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

    /// Without cgroups, its running commands' process groups (each command
    /// leads its own); with a cgroup, none are needed.
    pub(super) fn groups(&self) -> Vec<i32> {
        if self.created.cgroup.is_some() {
            return Vec::new();
        }
        self.commands
            .values()
            .filter(|c| c.alive && !c.backoff)
            .map(|c| c.pid)
            .collect()
    }

    pub(super) fn report_only_breaches(&self) -> Vec<Breach> {
        self.report_breaches
            .iter()
            .map(|(k, v)| Breach {
                kind: k.clone(),
                count: *v,
            })
            .collect()
    }

    /// What its stats answer needs, taken on the loop to be read off it.
    pub(super) fn stats_view(&self) -> StatsView {
        StatsView {
            last_cpu: self.last_cpu,
            peak_seen: self.peak_seen,
            started: self.started,
            alive: self.alive_commands(),
            total: self.commands.len() as u32,
            cpu_quota_percent: self.spec.soma.cpu_quota_percent,
        }
    }

    /// Turns a reading into the wire's stats, with CPU % against the last sample.
    pub(super) fn info(&self, r: &Reading, at: Instant) -> WorkspaceStatsInfo {
        self.stats_view().info(r, at)
    }
}

/// The few fields of a workspace its stats are made of: copied on the loop,
/// turned into the wire's stats wherever the reading is taken.
#[derive(Debug, Clone, Copy)]
pub(super) struct StatsView {
    last_cpu: Option<(Instant, u64)>,
    peak_seen: u64,
    started: Instant,
    alive: u32,
    total: u32,
    cpu_quota_percent: Option<u32>,
}

impl StatsView {
    /// Turns a reading into the wire's stats, with CPU % against the last sample.
    pub(super) fn info(&self, r: &Reading, at: Instant) -> WorkspaceStatsInfo {
        let cpu_percent = match (self.last_cpu, r.cpu_usec) {
            (Some((then, prev)), Some(now)) => {
                stats::cpu_percent(prev, now, at.saturating_duration_since(then))
            }
            _ => None,
        };
        WorkspaceStatsInfo {
            commands_alive: self.alive,
            commands_total: self.total,
            rss_bytes: r.rss_bytes,
            rss_peak_bytes: r
                .rss_peak_bytes
                .or(Some(self.peak_seen.max(r.rss_bytes.unwrap_or(0)))),
            cpu_usec: r.cpu_usec,
            cpu_percent,
            cpu_cores: stats::cpu_cores(self.cpu_quota_percent),
            tasks: r.tasks,
            source: r.source.to_owned(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            sampled_at_ms: ms_since_epoch(SystemTime::now()),
        }
    }
}
