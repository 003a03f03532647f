//! Requests and responses. Declaration order is wire order: append only.

use crate::spec::{PipelineSpec, WorkspaceId, WorkspaceSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use ulid::Ulid;

/// A client's request. Every request gets exactly one [`Response`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness check; answered with [`Response::Pong`].
    Ping,
    /// Version, uptime and live counts.
    Health,
    /// Create a workspace (a transient systemd scope).
    WorkspaceCreate {
        /// What to create.
        spec: WorkspaceSpec,
    },
    /// List the live workspaces.
    WorkspaceList,
    /// Stop a workspace: SIGTERM to every process, SIGKILL after `grace_ms`.
    WorkspaceStop {
        /// Which workspace.
        id: WorkspaceId,
        /// Milliseconds between SIGTERM and SIGKILL; 0 kills at once.
        grace_ms: u64,
    },
    /// Start a command in a workspace.
    Run {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Program: a path, or a name looked up in the base environment's PATH.
        exec: String,
        /// Arguments after the program name.
        argv: Vec<String>,
        /// Variables added to the clean base environment.
        envp: Vec<(String, String)>,
        /// Restart with backoff when it exits unsuccessfully.
        restart_on_failure: bool,
        /// Working directory (default: the user's home).
        cwd: Option<PathBuf>,
    },
    /// Start a pipeline of commands joined by flow edges.
    PipelineRun {
        /// The pipeline.
        spec: PipelineSpec,
        /// Interpose a tap (discern, count, publish) on every edge.
        tap: bool,
        /// Values for `${KEY}` in every string of the spec.
        vars: BTreeMap<String, String>,
    },
    /// Tell the type of a sample of bytes.
    Discern {
        /// The first bytes of the content.
        sample: Vec<u8>,
        /// Where the bytes came from; its extension is a hint.
        hint_path: Option<PathBuf>,
    },
    /// What this host and daemon can do.
    Capabilities,
    /// Every command of a workspace, alive or not.
    CommandList {
        /// Which workspace.
        workspace: WorkspaceId,
    },
    /// The end of a command's captured output.
    CommandLogs {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Which command.
        command: Ulid,
        /// How many bytes from the end.
        tail_bytes: u64,
        /// Which stream.
        stream: LogStream,
    },
    /// Store a pipeline spec under a name (replacing one of the same name).
    PipelineSave {
        /// Name: 1-64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
        name: String,
        /// The spec, `${KEY}` placeholders kept.
        spec: PipelineSpec,
    },
    /// The names of the saved pipelines.
    PipelineSavedList,
    /// Delete a saved pipeline.
    PipelineDrop {
        /// Its name.
        name: String,
    },
    /// Run a saved pipeline.
    PipelineRunSaved {
        /// Its name.
        name: String,
        /// As in [`Request::PipelineRun`].
        tap: bool,
        /// As in [`Request::PipelineRun`].
        vars: BTreeMap<String, String>,
    },
    /// Current resource use of a workspace.
    WorkspaceStats {
        /// Which workspace.
        workspace: WorkspaceId,
    },
    /// Limits in force and breaches seen.
    WorkspaceQuota {
        /// Which workspace.
        workspace: WorkspaceId,
    },
    /// Samples taken by the daemon at a fixed interval.
    WorkspaceStatsHistory {
        /// Which workspace.
        workspace: WorkspaceId,
        /// How many of the newest samples; 0 = all kept.
        tail: u32,
    },
    /// Stats, quota, commands and flow sockets in one round trip.
    WorkspaceFullSummary {
        /// Which workspace.
        workspace: WorkspaceId,
    },
    /// Stop one pipeline's processes (not its workspace).
    PipelineStop {
        /// Which pipeline.
        pipeline: Ulid,
        /// Milliseconds between SIGTERM and SIGKILL; 0 kills at once.
        grace_ms: u64,
    },
    /// Tapped pipelines and their flow sockets.
    FlowList,
    /// Bytes and rate per flow socket.
    FlowThroughput,
    /// Remove a pipeline's taps and sockets; its data keeps flowing.
    FlowDrop {
        /// Which pipeline.
        pipeline: Ulid,
    },
    /// A command's captured output from a position on, to follow it live.
    CommandLogsFrom {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Which command.
        command: Ulid,
        /// Which stream.
        stream: LogStream,
        /// Position (bytes of both streams since the command first started)
        /// to read from, as returned in `next`; `None`: the last `tail_bytes`.
        from: Option<u64>,
        /// With `from: None`, how many bytes from the end.
        tail_bytes: u64,
        /// Most bytes to return (the daemon caps it below the frame limit).
        max_bytes: u64,
    },
    /// What a workspace was created with: its whole spec (limits,
    /// permissions, TTL, exit policy).
    WorkspaceDescribe {
        /// Which workspace.
        id: WorkspaceId,
    },
    /// Switch this connection to another protocol (index 25 in every protocol).
    /// Every connection starts on protocol 0, the seed's wire ([`crate::seed`]);
    /// `Hello { protocol: 1 }` switches it to these types. Answered with
    /// [`Response::Hello`] in the new protocol, or with an `Error` in the old one
    /// (unknown protocol, or a second `Hello`). A client may write its first
    /// request right behind its `Hello` without waiting.
    Hello {
        /// The protocol wanted: [`crate::PROTOCOL_SEED`] or
        /// [`crate::PROTOCOL_CURRENT`].
        protocol: u32,
    },
    /// Stop one command: SIGTERM to each of its processes (its cgroup leaf,
    /// or its process group), up to `grace_ms` for them to leave, then
    /// SIGKILL. A stopped command is never restarted by its policy (one
    /// waiting to restart is not restarted). Answered with
    /// [`Response::CommandStopped`].
    CommandStop {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Which command.
        command: Ulid,
        /// How long its processes get to leave after SIGTERM.
        grace_ms: u64,
    },
    /// Send a signal to every process of one command (its cgroup leaf, or
    /// its process group). Its restart policy is left as it is, as with
    /// `systemctl kill`. Answered with [`Response::CommandSignalled`].
    CommandSignal {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Which command.
        command: Ulid,
        /// The signal number (1 to 64).
        signal: i32,
    },
    /// The last stopped workspaces the daemon keeps (their commands, logs
    /// and spec stay reachable by id), newest first. Answered with
    /// [`Response::WorkspaceListStopped`].
    WorkspaceListStopped,
    /// Restart one command: its processes ended as by
    /// [`Request::CommandStop`], then it starts again with the same program,
    /// id and log (its restart policy stays). Answered with
    /// [`Response::RunStarted`] once the new process runs.
    CommandRestart {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Which command.
        command: Ulid,
        /// How long its processes get to leave after SIGTERM.
        grace_ms: u64,
    },
    /// The running pipelines. Answered with [`Response::PipelineList`].
    PipelineList,
    /// What a live view shows, in one round trip: every live workspace with
    /// its latest sample, limits and recent history, and one workspace's
    /// commands with their own usage. Answered with [`Response::Top`].
    Top {
        /// The workspace whose commands to include.
        selected: Option<WorkspaceId>,
        /// How many of the newest samples of each workspace's history (at
        /// most [`TOP_HISTORY_MAX`]).
        history: u32,
    },
}

/// Most history samples per workspace a [`Request::Top`] gets.
pub const TOP_HISTORY_MAX: u32 = 120;

/// Which captured stream of a command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output only.
    Stdout,
    /// Standard error only.
    Stderr,
    /// Both, in the order the bytes arrived.
    #[default]
    Both,
    /// Both, in the order the bytes arrived, as records: each run of one
    /// stream's bytes is its stream (1 stdout, 2 stderr), its length (u32,
    /// little-endian) and its bytes. `max_bytes` counts the 5 bytes before
    /// each record too. For a client that writes each stream to its own
    /// place in the order they came (`run --wait`).
    Tagged,
}

/// The daemon's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Ping`].
    Pong,
    /// Answer to [`Request::Health`].
    Health {
        /// The daemon's version (semver).
        version: String,
        /// Milliseconds since the daemon started.
        uptime_ms: u64,
        /// Live workspaces.
        alive_workspaces: u32,
        /// Live commands, over all workspaces.
        alive_commands: u32,
        /// Live pipelines.
        alive_pipelines: u32,
        /// Tapped flows with a socket.
        active_flows: u32,
        /// State changed in memory but not yet persisted.
        dirty: bool,
    },
    /// Answer to [`Request::WorkspaceCreate`].
    WorkspaceCreated {
        /// The new workspace.
        id: WorkspaceId,
        /// Its systemd unit (or the fallback's cgroup/process group name).
        unit: String,
        /// Every requested limit or permission this host cannot enforce.
        warnings: Vec<String>,
    },
    /// Answer to [`Request::WorkspaceList`].
    WorkspaceList {
        /// The live workspaces, oldest first.
        items: Vec<WorkspaceSummary>,
    },
    /// Answer to [`Request::WorkspaceStop`].
    WorkspaceStopped {
        /// The stopped workspace.
        id: WorkspaceId,
        /// How many processes were ended.
        reaped: u32,
    },
    /// Answer to [`Request::Run`].
    RunStarted {
        /// The workspace.
        workspace: WorkspaceId,
        /// The new command.
        command_id: Ulid,
        /// Its process id.
        pid: i32,
    },
    /// Answer to [`Request::PipelineRun`] and [`Request::PipelineRunSaved`].
    PipelineStarted {
        /// The new pipeline.
        pipeline: Ulid,
        /// Process id per command label.
        command_pids: Vec<(String, i32)>,
        /// One entry per edge when tapped; empty otherwise.
        edges: Vec<EdgeDiscernmentInfo>,
    },
    /// Answer to [`Request::Discern`].
    Discernment {
        /// Our name for the type (`json`, `csv`, `png`, `text`, `binary`, ...).
        ty: String,
        /// 0-1: signature match near 1, structural parse high, heuristic lower,
        /// fallback low.
        confidence: f32,
        /// MIME type, when known.
        mime: Option<String>,
        /// How a viewer should show it (`table`, `json`, `text`, `image`, `hex`, ...).
        lens: Option<String>,
    },
    /// Answer to [`Request::Capabilities`].
    Capabilities {
        /// The running kernel's (major, minor, patch).
        kernel_version: (u32, u32, u32),
        /// Whether unprivileged user namespaces can be created, and why not.
        user_ns: String,
        /// `unified`, `hybrid` (cgroup2 at /sys/fs/cgroup/unified) or `none`.
        cgroup_v2: String,
        /// The daemon's own cgroup v2 directory is writable (it may create
        /// sub-cgroups there).
        cgroup_delegated: bool,
        /// The daemon holds CAP_SYS_ADMIN in its user namespace.
        has_cap_sys_admin: bool,
        /// The daemon's own cgroup v2 path, when it has one.
        cgroup_path: Option<String>,
        /// Controllers available in the daemon's own cgroup.
        cgroup_controllers: Vec<String>,
        /// The workspace backend in use (`systemd`, `cgroup`, `process-group`,
        /// `none`).
        backend: String,
        /// Why that backend was chosen.
        backend_reason: String,
        /// The systemd user manager's version, when one is reachable.
        systemd_version: Option<String>,
    },
    /// Answer to [`Request::CommandList`].
    CommandList {
        /// The commands, oldest first.
        items: Vec<CommandInfo>,
    },
    /// Answer to [`Request::CommandLogs`].
    CommandLogs {
        /// The last bytes asked for.
        bytes: Vec<u8>,
    },
    /// Answer to [`Request::PipelineSave`].
    PipelineSaved {
        /// The name it was saved under.
        name: String,
    },
    /// Answer to [`Request::PipelineSavedList`].
    PipelineSavedList {
        /// Saved names, sorted.
        names: Vec<String>,
    },
    /// Answer to [`Request::PipelineDrop`].
    PipelineDropped {
        /// The name.
        name: String,
        /// Whether a pipeline of that name existed.
        existed: bool,
    },
    /// Answer to [`Request::PipelineStop`].
    PipelineStopped {
        /// The pipeline.
        pipeline: Ulid,
        /// How many processes were ended.
        reaped: u32,
    },
    /// Answer to [`Request::WorkspaceStats`].
    WorkspaceStats {
        /// The numbers.
        info: WorkspaceStatsInfo,
    },
    /// Answer to [`Request::WorkspaceQuota`].
    WorkspaceQuota {
        /// The limits and breaches.
        info: QuotaReportInfo,
    },
    /// Answer to [`Request::WorkspaceStatsHistory`].
    WorkspaceStatsHistory {
        /// Oldest first.
        samples: Vec<WorkspaceStatsInfo>,
    },
    /// Answer to [`Request::WorkspaceFullSummary`].
    WorkspaceFullSummary {
        /// As in [`Response::WorkspaceStats`].
        stats: WorkspaceStatsInfo,
        /// As in [`Response::WorkspaceQuota`].
        quota: QuotaReportInfo,
        /// As in [`Response::CommandList`].
        commands: Vec<CommandInfo>,
        /// The workspace's flow sockets.
        flow_sockets: Vec<PathBuf>,
    },
    /// Answer to [`Request::FlowList`].
    FlowList {
        /// One entry per tapped pipeline.
        items: Vec<FlowInfo>,
    },
    /// Answer to [`Request::FlowThroughput`].
    FlowThroughput {
        /// One entry per flow socket.
        items: Vec<FlowThroughputInfo>,
    },
    /// Answer to [`Request::FlowDrop`].
    FlowDropped {
        /// The pipeline.
        pipeline: Ulid,
        /// Whether it had taps.
        existed: bool,
    },
    /// The request failed; nothing was changed unless the message says so.
    Error {
        /// What kind of failure (for scripts).
        code: ErrorCode,
        /// What went wrong and what to do, for a person.
        message: String,
    },
    /// Answer to [`Request::CommandLogsFrom`].
    CommandLogsFrom {
        /// The bytes of the asked stream(s).
        bytes: Vec<u8>,
        /// Position to ask from next.
        next: u64,
        /// Bytes (of both streams) that rotated away before they were read.
        skipped: u64,
        /// Whether more may come: the command is running (or waiting to
        /// restart) or a process still holds its output open.
        running: bool,
    },
    /// Answer to [`Request::WorkspaceDescribe`].
    WorkspaceDescription {
        /// Which workspace.
        id: WorkspaceId,
        /// The spec it was created with (a re-adopted workspace's as persisted).
        spec: WorkspaceSpec,
    },
    /// Answer to [`Request::Hello`]: the connection now speaks `protocol`.
    Hello {
        /// The protocol in force from the next request on.
        protocol: u32,
        /// The daemon's version (semver).
        version: String,
    },
    /// Answer to [`Request::CommandStop`].
    CommandStopped {
        /// The workspace.
        workspace: WorkspaceId,
        /// The command.
        command: Ulid,
        /// How many processes were ended (0: it had ended already).
        ended: u32,
    },
    /// Answer to [`Request::CommandSignal`].
    CommandSignalled {
        /// The workspace.
        workspace: WorkspaceId,
        /// The command.
        command: Ulid,
        /// How many processes the signal was sent to.
        processes: u32,
    },
    /// Answer to [`Request::WorkspaceListStopped`].
    WorkspaceListStopped {
        /// Newest first; `commands` is 0, `ttl_left_ms` none.
        items: Vec<WorkspaceSummary>,
    },
    /// Answer to [`Request::PipelineList`].
    PipelineList {
        /// Oldest first.
        items: Vec<PipelineInfo>,
    },
    /// Answer to [`Request::Top`].
    Top {
        /// Every live workspace, oldest first.
        workspaces: Vec<TopWorkspace>,
        /// The selected workspace's commands (none when none was selected
        /// or it is gone), in start order.
        commands: Vec<CommandUsage>,
    },
}

/// One live workspace in a [`Response::Top`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopWorkspace {
    /// What `WorkspaceList` says of it.
    pub summary: WorkspaceSummary,
    /// Its newest sample (none before the first one).
    pub latest: Option<WorkspaceStatsInfo>,
    /// CPU use of the newest samples, oldest first, 100 = one core (0 where
    /// unknown).
    pub cpu_history: Vec<f32>,
    /// Resident memory of the newest samples in bytes, oldest first.
    pub rss_history: Vec<u64>,
    /// Its memory limit in bytes (MemoryMax), when it has one.
    pub mem_limit: Option<u64>,
    /// Its task limit (TasksMax), when it has one.
    pub tasks_limit: Option<u64>,
    /// Its CPU quota, 100 = one core, when it has one.
    pub cpu_quota_percent: Option<u32>,
    /// Limits are reported, not enforced.
    pub report_only: bool,
}

/// One command in a [`Response::Top`]: its record and its own usage, read
/// from its `cmd-<id>` leaf (or its process group without cgroups).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandUsage {
    /// As `CommandList` gives it.
    pub info: CommandInfo,
    /// Resident memory in bytes, while it runs.
    pub rss_bytes: Option<u64>,
    /// CPU time used in microseconds, while it runs.
    pub cpu_usec: Option<u64>,
    /// Processes and threads, while it runs.
    pub tasks: Option<u64>,
}

impl Request {
    /// The variant's name, as in this file and `SPEC.md`.
    pub fn name(&self) -> &'static str {
        match self {
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
            Request::CommandLogsFrom { .. } => "CommandLogsFrom",
            Request::WorkspaceDescribe { .. } => "WorkspaceDescribe",
            Request::Hello { .. } => "Hello",
            Request::CommandStop { .. } => "CommandStop",
            Request::CommandSignal { .. } => "CommandSignal",
            Request::WorkspaceListStopped => "WorkspaceListStopped",
            Request::CommandRestart { .. } => "CommandRestart",
            Request::PipelineList => "PipelineList",
            Request::Top { .. } => "Top",
        }
    }
}

impl Response {
    /// Shorthand for [`Response::Error`].
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error {
            code,
            message: message.into(),
        }
    }
}

impl Response {
    /// The variant's name, as in this file and `SPEC.md`.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Pong => "Pong",
            Response::Health { .. } => "Health",
            Response::WorkspaceCreated { .. } => "WorkspaceCreated",
            Response::WorkspaceList { .. } => "WorkspaceList",
            Response::WorkspaceStopped { .. } => "WorkspaceStopped",
            Response::RunStarted { .. } => "RunStarted",
            Response::PipelineStarted { .. } => "PipelineStarted",
            Response::Discernment { .. } => "Discernment",
            Response::Capabilities { .. } => "Capabilities",
            Response::CommandList { .. } => "CommandList",
            Response::CommandLogs { .. } => "CommandLogs",
            Response::PipelineSaved { .. } => "PipelineSaved",
            Response::PipelineSavedList { .. } => "PipelineSavedList",
            Response::PipelineDropped { .. } => "PipelineDropped",
            Response::PipelineStopped { .. } => "PipelineStopped",
            Response::WorkspaceStats { .. } => "WorkspaceStats",
            Response::WorkspaceQuota { .. } => "WorkspaceQuota",
            Response::WorkspaceStatsHistory { .. } => "WorkspaceStatsHistory",
            Response::WorkspaceFullSummary { .. } => "WorkspaceFullSummary",
            Response::FlowList { .. } => "FlowList",
            Response::FlowThroughput { .. } => "FlowThroughput",
            Response::FlowDropped { .. } => "FlowDropped",
            Response::Error { .. } => "Error",
            Response::CommandLogsFrom { .. } => "CommandLogsFrom",
            Response::WorkspaceDescription { .. } => "WorkspaceDescription",
            Response::Hello { .. } => "Hello",
            Response::CommandStopped { .. } => "CommandStopped",
            Response::CommandSignalled { .. } => "CommandSignalled",
            Response::WorkspaceListStopped { .. } => "WorkspaceListStopped",
            Response::PipelineList { .. } => "PipelineList",
            Response::Top { .. } => "Top",
        }
    }
}

/// Kinds of failure, for clients that branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was malformed or a value was out of range.
    Invalid,
    /// A named workspace, command, pipeline or flow does not exist.
    NotFound,
    /// This daemon or host cannot do it (not built yet, or not supported here).
    Unsupported,
    /// The caller may not do this (e.g. another uid).
    Refused,
    /// The daemon is at a limit (connections, workspaces); try again later.
    Busy,
    /// Something failed inside the daemon or the system it drives.
    Internal,
}

/// One running pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineInfo {
    /// Its id (what `PipelineStop` takes).
    pub id: Ulid,
    /// Its label.
    pub label: String,
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// Its commands.
    pub commands: u32,
    /// Those still running (or waiting to restart).
    pub alive: u32,
    /// Its tapped (or rate-limited) edges.
    pub taps: Vec<TapInfo>,
}

/// One tapped edge of a running pipeline: what `flow ls` and `flow top` name
/// an edge by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapInfo {
    /// The producing side.
    pub from: crate::spec::Endpoint,
    /// The consuming side.
    pub to: crate::spec::Endpoint,
    /// Its flow socket while published (a rate-limited edge has none).
    pub socket: Option<PathBuf>,
}

impl TapInfo {
    /// `gen → map`, with the ports when they are not the plain ones.
    pub fn name(&self) -> String {
        let from = match self.from.port.as_str() {
            "stdout" => self.from.label.clone(),
            port => format!("{}.{port}", self.from.label),
        };
        let to = match self.to.port.as_str() {
            "stdin" => self.to.label.clone(),
            port => format!("{}.{port}", self.to.label),
        };
        format!("{from} → {to}")
    }
}

/// One live workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceSummary {
    /// Its id.
    pub id: WorkspaceId,
    /// Its label.
    pub label: String,
    /// Its unit (or the fallback's cgroup/process group name).
    pub unit: String,
    /// Live commands.
    pub commands: u32,
    /// Milliseconds since creation.
    pub uptime_ms: u64,
    /// What happens to it when the daemon stops.
    pub on_exit: crate::spec::ExitPolicy,
    /// Milliseconds until its TTL expires, when it has one.
    pub ttl_left_ms: Option<u64>,
}

/// Resource use of a workspace at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceStatsInfo {
    /// Live commands.
    pub commands_alive: u32,
    /// Commands ever started.
    pub commands_total: u32,
    /// Resident memory in bytes (memory.current, or summed VmRSS).
    pub rss_bytes: Option<u64>,
    /// Highest resident memory seen in bytes (memory.peak).
    pub rss_peak_bytes: Option<u64>,
    /// CPU time used in microseconds (cpu.stat usage_usec).
    pub cpu_usec: Option<u64>,
    /// CPU use over the last sampling interval, 100 = one core.
    pub cpu_percent: Option<f32>,
    /// Cores available to the workspace.
    pub cpu_cores: u32,
    /// Processes and threads (pids.current).
    pub tasks: Option<u64>,
    /// Where the numbers came from: `cgroup` or `procfs`.
    pub source: String,
    /// Milliseconds since the workspace was created.
    pub uptime_ms: u64,
    /// When the sample was taken, milliseconds since the Unix epoch.
    pub sampled_at_ms: u64,
}

/// Limits in force and breaches seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaReportInfo {
    /// Memory limit in bytes.
    pub mem_limit: Option<u64>,
    /// Task limit.
    pub nproc_limit: Option<u64>,
    /// CPU quota in percent of one CPU.
    pub cpu_quota_percent: Option<u32>,
    /// Limits are set in the kernel (false: report-only, or not enforceable).
    pub enforced: bool,
    /// Every kind of breach seen, with its count.
    pub breaches: Vec<Breach>,
}

/// A kind of limit breach and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    /// `memory.max`, `memory.oom_kill`, `memory.high`, `pids.max`, ...
    pub kind: String,
    /// How many times.
    pub count: u64,
}

/// One command of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// Its id.
    pub id: Ulid,
    /// Its label (pipeline label, or the program name).
    pub label: String,
    /// Process id of its latest run.
    pub pid: i32,
    /// Whether it is running (or waiting to restart).
    pub alive: bool,
    /// Exit code of its latest run, when it exited normally.
    pub exit_status: Option<i32>,
    /// Signal that ended its latest run, when one did.
    pub exit_signal: Option<i32>,
    /// How many times it was restarted.
    pub restarts: u32,
    /// Why it stays failed (crash loop, workspace stopped, ...).
    pub failure: Option<String>,
    /// Bytes of captured output currently kept.
    pub log_bytes: u64,
}

/// One edge of a started pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeDiscernmentInfo {
    /// Producer's label.
    pub from_label: String,
    /// Producer's port.
    pub from_output: String,
    /// Consumer's label.
    pub to_label: String,
    /// Consumer's port.
    pub to_input: String,
    /// Discerned type, when enough bytes arrived in time (`type` in JSON).
    #[serde(rename = "type")]
    pub ty: Option<String>,
    /// MIME type, when known.
    pub mime: Option<String>,
    /// Suggested lens, when known.
    pub lens: Option<String>,
    /// Confidence of `ty`, 0 when none.
    pub confidence: f32,
    /// The edge's flow socket, when tapped.
    pub flow_socket: Option<PathBuf>,
}

/// A tapped pipeline's flow sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// The pipeline.
    pub pipeline: Ulid,
    /// Its sockets.
    pub sockets: Vec<PathBuf>,
}

/// Traffic through one flow socket's edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowThroughputInfo {
    /// The flow socket.
    pub socket: PathBuf,
    /// Bytes passed since the edge started.
    pub bytes_total: u64,
    /// Bytes per second over the last interval.
    pub bytes_per_sec: f64,
    /// Subscribers connected now.
    pub subscribers: u32,
    /// Bytes subscribers lost because they were too slow.
    pub dropped_bytes: u64,
}
