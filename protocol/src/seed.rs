//! Protocol 0, the seed's wire: the messages exactly as the original
//! `shipote-protocol` defined them, field by field. Every connection speaks it
//! until a [`Request::Hello`](crate::Request::Hello) switches it to protocol 1
//! (the types at the crate root), so clients built from the seed's definitions
//! work unchanged.
//!
//! The daemon works in protocol 1 only: [`Request::into_current`] lifts a seed
//! request into its protocol-1 form (the fields the seed lacks take their
//! documented defaults), and `From<crate::Response>` lowers an answer into the
//! seed's form (what the seed has no field for is left out; where the seed
//! leaves a meaning open, the choice is documented in `SPEC.md` section 14).
//!
//! Declaration order is wire order, as at the crate root. These enums are frozen:
//! nothing is ever appended to them. Protocol 0 also understands `Hello`, whose
//! index (25) lies past the seed's last request; it is decoded by
//! [`crate::dialect`], not here.

use crate::spec::{PipelineSpec, WorkspaceId, WorkspaceSpec};
use crate::{ErrorCode, LogStream};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use ulid::Ulid;

/// A seed client's request (protocol 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// 0.
    Ping,
    /// 1.
    Health,
    /// 2.
    WorkspaceCreate {
        /// As in protocol 1.
        spec: WorkspaceSpec,
    },
    /// 3.
    WorkspaceList,
    /// 4.
    WorkspaceStop {
        /// Which workspace.
        id: WorkspaceId,
        /// Milliseconds between SIGTERM and SIGKILL.
        grace_ms: u64,
    },
    /// 5: no `cwd` (the command starts in the user's home).
    Run {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Program.
        exec: String,
        /// Arguments.
        argv: Vec<String>,
        /// Environment added to the base.
        envp: Vec<(String, String)>,
        /// Restart with backoff when it fails.
        restart_on_failure: bool,
    },
    /// 6.
    PipelineRun {
        /// The pipeline.
        spec: PipelineSpec,
        /// Tap every edge.
        tap: bool,
        /// `${KEY}` values.
        vars: BTreeMap<String, String>,
    },
    /// 7.
    Discern {
        /// The first bytes.
        sample: Vec<u8>,
        /// Where they came from.
        hint_path: Option<PathBuf>,
    },
    /// 8.
    Capabilities,
    /// 9.
    CommandList {
        /// Which workspace.
        workspace: WorkspaceId,
    },
    /// 10: `tail_bytes` is a `usize` in the seed (the same varint as `u64`);
    /// `stream` is a string: `stdout`, `stderr`, `both`, or empty for both.
    CommandLogs {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Which command.
        command: Ulid,
        /// How many bytes from the end.
        tail_bytes: u64,
        /// `stdout`, `stderr`, `both` or `""`.
        stream: String,
    },
    /// 11.
    PipelineSave {
        /// Name.
        name: String,
        /// Spec.
        spec: PipelineSpec,
    },
    /// 12.
    PipelineSavedList,
    /// 13.
    PipelineDrop {
        /// Name.
        name: String,
    },
    /// 14.
    PipelineRunSaved {
        /// Name.
        name: String,
        /// Tap every edge.
        tap: bool,
        /// `${KEY}` values.
        vars: BTreeMap<String, String>,
    },
    /// 15.
    WorkspaceStats {
        /// Which workspace.
        workspace: WorkspaceId,
    },
    /// 16.
    WorkspaceQuota {
        /// Which workspace.
        workspace: WorkspaceId,
    },
    /// 17: `tail` is a `usize` in the seed.
    WorkspaceStatsHistory {
        /// Which workspace.
        workspace: WorkspaceId,
        /// Newest samples; 0 = all.
        tail: u64,
    },
    /// 18.
    WorkspaceFullSummary {
        /// Which workspace.
        workspace: WorkspaceId,
    },
    /// 19.
    PipelineStop {
        /// Which pipeline.
        pipeline: Ulid,
        /// Milliseconds between SIGTERM and SIGKILL.
        grace_ms: u64,
    },
    /// 20.
    FlowList,
    /// 21.
    FlowThroughput,
    /// 22.
    FlowDrop {
        /// Which pipeline.
        pipeline: Ulid,
    },
}

/// The daemon's answer on a protocol-0 connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// 0.
    Pong,
    /// 1.
    Health {
        /// Daemon version.
        version: String,
        /// Milliseconds since start.
        uptime_ms: u64,
        /// Live workspaces.
        alive_workspaces: u32,
        /// Live commands.
        alive_commands: u32,
        /// Live pipelines.
        alive_pipelines: u32,
        /// Tapped flows.
        active_flows: u32,
        /// State not yet persisted.
        dirty: bool,
    },
    /// 2: no unit name.
    WorkspaceCreated {
        /// The new workspace.
        id: WorkspaceId,
        /// Limits or permissions this host cannot enforce.
        warnings: Vec<String>,
    },
    /// 3.
    WorkspaceList {
        /// The live workspaces.
        items: Vec<WorkspaceSummary>,
    },
    /// 4.
    WorkspaceStopped {
        /// The workspace.
        id: WorkspaceId,
        /// Processes ended.
        reaped: u32,
    },
    /// 5.
    RunStarted {
        /// The workspace.
        workspace: WorkspaceId,
        /// The command.
        command_id: Ulid,
        /// Its pid.
        pid: i32,
    },
    /// 6.
    PipelineStarted {
        /// The pipeline.
        pipeline: Ulid,
        /// Pid per label.
        command_pids: Vec<(String, i32)>,
        /// Edges, when tapped.
        edges: Vec<EdgeDiscernmentInfo>,
    },
    /// 7.
    Discernment {
        /// Type name.
        ty: String,
        /// 0-1.
        confidence: f32,
        /// MIME type.
        mime: Option<String>,
        /// Lens.
        lens: Option<String>,
    },
    /// 8: the seed's five fields only.
    Capabilities {
        /// (major, minor, patch).
        kernel_version: (u32, u32, u32),
        /// User namespaces.
        user_ns: String,
        /// `unified`, `hybrid` or `none`.
        cgroup_v2: String,
        /// The daemon's cgroup is writable.
        cgroup_delegated: bool,
        /// CAP_SYS_ADMIN.
        has_cap_sys_admin: bool,
    },
    /// 9.
    CommandList {
        /// The commands.
        items: Vec<CommandInfo>,
    },
    /// 10.
    CommandLogs {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// 11.
    PipelineSaved {
        /// Name.
        name: String,
    },
    /// 12.
    PipelineSavedList {
        /// Names.
        names: Vec<String>,
    },
    /// 13.
    PipelineDropped {
        /// Name.
        name: String,
        /// Whether it existed.
        existed: bool,
    },
    /// 14.
    PipelineStopped {
        /// The pipeline.
        pipeline: Ulid,
        /// Processes ended.
        reaped: u32,
    },
    /// 15.
    WorkspaceStats {
        /// The numbers.
        info: WorkspaceStatsInfo,
    },
    /// 16.
    WorkspaceQuota {
        /// Limits and breaches.
        info: QuotaReportInfo,
    },
    /// 17.
    WorkspaceStatsHistory {
        /// Oldest first.
        samples: Vec<WorkspaceStatsInfo>,
    },
    /// 18.
    WorkspaceFullSummary {
        /// Stats.
        stats: WorkspaceStatsInfo,
        /// Quota.
        quota: QuotaReportInfo,
        /// Commands.
        commands: Vec<CommandInfo>,
        /// Flow sockets.
        flow_sockets: Vec<PathBuf>,
    },
    /// 19.
    FlowList {
        /// Tapped pipelines.
        items: Vec<FlowInfo>,
    },
    /// 20.
    FlowThroughput {
        /// Per flow socket.
        items: Vec<FlowThroughputInfo>,
    },
    /// 21.
    FlowDropped {
        /// The pipeline.
        pipeline: Ulid,
        /// Whether it had taps.
        existed: bool,
    },
    /// 22: a message only, no code.
    Error {
        /// What went wrong and what to do.
        message: String,
    },
}

/// The seed's quota report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaReportInfo {
    /// Memory limit in bytes.
    pub mem_limit: Option<u64>,
    /// Task limit (saturated at `u32::MAX`).
    pub nproc_limit: Option<u32>,
    /// One string per kind of breach: `"<kind>: <count>"`, e.g.
    /// `"memory.oom_kill: 2"`.
    pub breaches: Vec<String>,
}

/// The seed's stats sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceStatsInfo {
    /// Live commands.
    pub commands_alive: u32,
    /// Commands ever started.
    pub commands_total: u32,
    /// Resident memory in bytes.
    pub rss_bytes: Option<u64>,
    /// Peak resident memory in bytes.
    pub rss_peak_bytes: Option<u64>,
    /// CPU time in microseconds.
    pub cpu_usec: Option<u64>,
    /// CPU use, 100 = one core.
    pub cpu_percent: Option<f32>,
    /// Cores available.
    pub cpu_cores: u32,
    /// `cgroup` or `procfs`.
    pub source: String,
    /// Milliseconds since creation.
    pub uptime_ms: u64,
}

/// The seed's per-socket traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowThroughputInfo {
    /// The flow socket.
    pub socket: PathBuf,
    /// Bytes passed.
    pub bytes_total: u64,
    /// Bytes per second.
    pub bytes_per_sec: f64,
}

/// The seed's tapped pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// The pipeline.
    pub pipeline: Ulid,
    /// Its sockets.
    pub sockets: Vec<PathBuf>,
}

/// The seed's command entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// Its id.
    pub id: Ulid,
    /// Its label.
    pub label: String,
    /// Pid of its latest run.
    pub pid: i32,
    /// Running or waiting to restart.
    pub alive: bool,
    /// Exit code of its latest run; `128 + signal` when a signal ended it (the
    /// shell's convention); `None` while it runs.
    pub exit_status: Option<i32>,
    /// Bytes of captured output kept.
    pub log_bytes: u64,
}

/// The seed's edge of a started pipeline.
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
    /// Discerned type.
    pub ty: Option<String>,
    /// MIME type.
    pub mime: Option<String>,
    /// Lens.
    pub lens: Option<String>,
    /// Confidence.
    pub confidence: f32,
    /// Flow socket.
    pub flow_socket: Option<PathBuf>,
}

/// The seed's workspace entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceSummary {
    /// Its id.
    pub id: WorkspaceId,
    /// Its label.
    pub label: String,
    /// Live commands.
    pub commands: u32,
    /// Milliseconds since creation.
    pub uptime_ms: u64,
}

/// Parses the seed's `stream` string: `stdout`, `stderr`, `both` or empty
/// (both), in any case.
pub fn parse_stream(s: &str) -> Result<LogStream, String> {
    match s.to_ascii_lowercase().as_str() {
        "stdout" => Ok(LogStream::Stdout),
        "stderr" => Ok(LogStream::Stderr),
        "both" | "" => Ok(LogStream::Both),
        _ => Err(format!(
            "CommandLogs.stream {:?} is not a stream: send \"stdout\", \"stderr\", \"both\" or \"\" (both)",
            crate::dialect::shorten(s)
        )),
    }
}

impl Request {
    /// The protocol-1 form of this request; an `Err` is the message of the
    /// `Error` to answer instead (a value the seed's types allow but that means
    /// nothing).
    pub fn into_current(self) -> Result<crate::Request, String> {
        use crate::Request as R;
        Ok(match self {
            Request::Ping => R::Ping,
            Request::Health => R::Health,
            Request::WorkspaceCreate { spec } => R::WorkspaceCreate { spec },
            Request::WorkspaceList => R::WorkspaceList,
            Request::WorkspaceStop { id, grace_ms } => R::WorkspaceStop { id, grace_ms },
            Request::Run {
                workspace,
                exec,
                argv,
                envp,
                restart_on_failure,
            } => R::Run {
                workspace,
                exec,
                argv,
                envp,
                restart_on_failure,
                cwd: None,
            },
            Request::PipelineRun { spec, tap, vars } => R::PipelineRun { spec, tap, vars },
            Request::Discern { sample, hint_path } => R::Discern { sample, hint_path },
            Request::Capabilities => R::Capabilities,
            Request::CommandList { workspace } => R::CommandList { workspace },
            Request::CommandLogs {
                workspace,
                command,
                tail_bytes,
                stream,
            } => R::CommandLogs {
                workspace,
                command,
                tail_bytes,
                stream: parse_stream(&stream)?,
            },
            Request::PipelineSave { name, spec } => R::PipelineSave { name, spec },
            Request::PipelineSavedList => R::PipelineSavedList,
            Request::PipelineDrop { name } => R::PipelineDrop { name },
            Request::PipelineRunSaved { name, tap, vars } => {
                R::PipelineRunSaved { name, tap, vars }
            }
            Request::WorkspaceStats { workspace } => R::WorkspaceStats { workspace },
            Request::WorkspaceQuota { workspace } => R::WorkspaceQuota { workspace },
            Request::WorkspaceStatsHistory { workspace, tail } => R::WorkspaceStatsHistory {
                workspace,
                tail: u32::try_from(tail).unwrap_or(u32::MAX),
            },
            Request::WorkspaceFullSummary { workspace } => R::WorkspaceFullSummary { workspace },
            Request::PipelineStop { pipeline, grace_ms } => R::PipelineStop { pipeline, grace_ms },
            Request::FlowList => R::FlowList,
            Request::FlowThroughput => R::FlowThroughput,
            Request::FlowDrop { pipeline } => R::FlowDrop { pipeline },
        })
    }
}

impl From<crate::QuotaReportInfo> for QuotaReportInfo {
    fn from(q: crate::QuotaReportInfo) -> Self {
        QuotaReportInfo {
            mem_limit: q.mem_limit,
            nproc_limit: q.nproc_limit.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            breaches: q
                .breaches
                .into_iter()
                .map(|b| format!("{}: {}", b.kind, b.count))
                .collect(),
        }
    }
}

impl From<crate::WorkspaceStatsInfo> for WorkspaceStatsInfo {
    fn from(s: crate::WorkspaceStatsInfo) -> Self {
        WorkspaceStatsInfo {
            commands_alive: s.commands_alive,
            commands_total: s.commands_total,
            rss_bytes: s.rss_bytes,
            rss_peak_bytes: s.rss_peak_bytes,
            cpu_usec: s.cpu_usec,
            cpu_percent: s.cpu_percent,
            cpu_cores: s.cpu_cores,
            source: s.source,
            uptime_ms: s.uptime_ms,
        }
    }
}

impl From<crate::FlowThroughputInfo> for FlowThroughputInfo {
    fn from(f: crate::FlowThroughputInfo) -> Self {
        FlowThroughputInfo {
            socket: f.socket,
            bytes_total: f.bytes_total,
            bytes_per_sec: f.bytes_per_sec,
        }
    }
}

impl From<crate::FlowInfo> for FlowInfo {
    fn from(f: crate::FlowInfo) -> Self {
        FlowInfo {
            pipeline: f.pipeline,
            sockets: f.sockets,
        }
    }
}

impl From<crate::CommandInfo> for CommandInfo {
    fn from(c: crate::CommandInfo) -> Self {
        let exit_status = match (c.exit_status, c.exit_signal) {
            (Some(code), _) => Some(code),
            (None, Some(signal)) => Some(128 + signal),
            (None, None) => None,
        };
        CommandInfo {
            id: c.id,
            label: c.label,
            pid: c.pid,
            alive: c.alive,
            exit_status,
            log_bytes: c.log_bytes,
        }
    }
}

impl From<crate::EdgeDiscernmentInfo> for EdgeDiscernmentInfo {
    fn from(e: crate::EdgeDiscernmentInfo) -> Self {
        EdgeDiscernmentInfo {
            from_label: e.from_label,
            from_output: e.from_output,
            to_label: e.to_label,
            to_input: e.to_input,
            ty: e.ty,
            mime: e.mime,
            lens: e.lens,
            confidence: e.confidence,
            flow_socket: e.flow_socket,
        }
    }
}

impl From<crate::WorkspaceSummary> for WorkspaceSummary {
    fn from(w: crate::WorkspaceSummary) -> Self {
        WorkspaceSummary {
            id: w.id,
            label: w.label,
            commands: w.commands,
            uptime_ms: w.uptime_ms,
        }
    }
}

fn all<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}

impl From<crate::Response> for Response {
    /// The seed's form of a protocol-1 answer. Answers the seed has no variant
    /// for (`CommandLogsFrom`, `WorkspaceDescription`, `Hello`) cannot arise on a
    /// protocol-0 connection (their requests are refused there); should one
    /// reach here, it becomes an `Error` naming it.
    fn from(r: crate::Response) -> Self {
        use crate::Response as R;
        match r {
            R::Pong => Response::Pong,
            R::Health {
                version,
                uptime_ms,
                alive_workspaces,
                alive_commands,
                alive_pipelines,
                active_flows,
                dirty,
            } => Response::Health {
                version,
                uptime_ms,
                alive_workspaces,
                alive_commands,
                alive_pipelines,
                active_flows,
                dirty,
            },
            R::WorkspaceCreated { id, warnings, .. } => Response::WorkspaceCreated { id, warnings },
            R::WorkspaceList { items } => Response::WorkspaceList { items: all(items) },
            R::WorkspaceStopped { id, reaped } => Response::WorkspaceStopped { id, reaped },
            R::RunStarted {
                workspace,
                command_id,
                pid,
            } => Response::RunStarted {
                workspace,
                command_id,
                pid,
            },
            R::PipelineStarted {
                pipeline,
                command_pids,
                edges,
            } => Response::PipelineStarted {
                pipeline,
                command_pids,
                edges: all(edges),
            },
            R::Discernment {
                ty,
                confidence,
                mime,
                lens,
            } => Response::Discernment {
                ty,
                confidence,
                mime,
                lens,
            },
            R::Capabilities {
                kernel_version,
                user_ns,
                cgroup_v2,
                cgroup_delegated,
                has_cap_sys_admin,
                ..
            } => Response::Capabilities {
                kernel_version,
                user_ns,
                cgroup_v2,
                cgroup_delegated,
                has_cap_sys_admin,
            },
            R::CommandList { items } => Response::CommandList { items: all(items) },
            R::CommandLogs { bytes } => Response::CommandLogs { bytes },
            R::PipelineSaved { name } => Response::PipelineSaved { name },
            R::PipelineSavedList { names } => Response::PipelineSavedList { names },
            R::PipelineDropped { name, existed } => Response::PipelineDropped { name, existed },
            R::PipelineStopped { pipeline, reaped } => Response::PipelineStopped { pipeline, reaped },
            R::WorkspaceStats { info } => Response::WorkspaceStats { info: info.into() },
            R::WorkspaceQuota { info } => Response::WorkspaceQuota { info: info.into() },
            R::WorkspaceStatsHistory { samples } => Response::WorkspaceStatsHistory {
                samples: all(samples),
            },
            R::WorkspaceFullSummary {
                stats,
                quota,
                commands,
                flow_sockets,
            } => Response::WorkspaceFullSummary {
                stats: stats.into(),
                quota: quota.into(),
                commands: all(commands),
                flow_sockets,
            },
            R::FlowList { items } => Response::FlowList { items: all(items) },
            R::FlowThroughput { items } => Response::FlowThroughput { items: all(items) },
            R::FlowDropped { pipeline, existed } => Response::FlowDropped { pipeline, existed },
            R::Error { code, message } => {
                // The two codes a client may retry or report on without reading
                // the text travel as the message's prefix (SPEC.md 14.3).
                let prefix = match code {
                    ErrorCode::Busy => "busy: ",
                    ErrorCode::Refused => "refused: ",
                    _ => "",
                };
                if prefix.is_empty() || message.starts_with(prefix.trim_end()) {
                    Response::Error { message }
                } else {
                    Response::Error {
                        message: format!("{prefix}{message}"),
                    }
                }
            }
            other @ (R::CommandLogsFrom { .. }
            | R::WorkspaceDescription { .. }
            | R::Hello { .. }
            | R::CommandStopped { .. }
            | R::CommandSignalled { .. }
            | R::WorkspaceListStopped { .. }
            | R::PipelineList { .. }
            | R::Top { .. }) => Response::Error {
                message: format!(
                    "internal: a {} answer has no protocol-0 form; send Hello {{ protocol: 1 }} first",
                    other.name()
                ),
            },
        }
    }
}

impl Response {
    /// The protocol-1 form of a seed answer, for clients that read one before
    /// their `Hello` was answered (a refusal sent at accept). The seed's
    /// `Error` has no code: it is taken from the message's documented prefix
    /// (`refused:` → `Refused`, `busy:` → `Busy`), else `Invalid`.
    pub fn into_current_error(self) -> Option<crate::Response> {
        match self {
            Response::Error { message } => {
                let code = if message.starts_with("refused:") {
                    ErrorCode::Refused
                } else if message.starts_with("busy:") {
                    ErrorCode::Busy
                } else {
                    ErrorCode::Invalid
                };
                Some(crate::Response::Error { code, message })
            }
            _ => None,
        }
    }
}
