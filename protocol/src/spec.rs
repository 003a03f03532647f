//! What clients ask for: workspace and pipeline specifications.
//!
//! Field order is wire order. `Option` fields mean "not set": the daemon applies no
//! limit (or its documented default) for them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use ulid::Ulid;

/// A workspace's identity: a ULID, on the wire as its 26-character string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkspaceId(pub Ulid);

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Everything needed to create a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSpec {
    /// Human name: 1-64 characters of `[A-Za-z0-9_.-]`, not starting with `.` or
    /// `-`; part of the unit name `shipote-<label>-<ulid>.scope`.
    pub label: String,
    /// Resource limits.
    pub soma: Soma,
    /// What the workspace's commands may see and reach.
    pub permissions: Permissions,
    /// Lifetime in milliseconds; the workspace stops itself when it expires.
    pub ttl_ms: Option<u64>,
    /// Directories where the workspace's flow sockets live (the first one is used;
    /// empty: a directory under the daemon's runtime directory).
    pub flow_dirs: Vec<PathBuf>,
    /// What happens to the workspace when the daemon stops.
    pub on_exit: ExitPolicy,
    /// Hard kernel limits, or report-only.
    pub quota_enforce: QuotaEnforce,
}

impl WorkspaceSpec {
    /// A spec with the given label and every other field at its default.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            soma: Soma::default(),
            permissions: Permissions::default(),
            ttl_ms: None,
            flow_dirs: Vec::new(),
            on_exit: ExitPolicy::Reap,
            quota_enforce: QuotaEnforce::Hard,
        }
    }
}

/// Resource limits of a workspace (systemd's names in brackets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soma {
    /// Hard memory limit in bytes (MemoryMax); the OOM killer acts above it.
    pub mem_max_bytes: Option<u64>,
    /// Memory throttling threshold in bytes (MemoryHigh).
    pub mem_high_bytes: Option<u64>,
    /// Swap limit in bytes (MemorySwapMax).
    pub swap_max_bytes: Option<u64>,
    /// Maximum number of tasks, threads included (TasksMax).
    pub tasks_max: Option<u64>,
    /// CPU quota in percent of one CPU: 150 = one and a half cores (CPUQuota).
    pub cpu_quota_percent: Option<u32>,
    /// Relative CPU weight, 1-10000, default 100 (CPUWeight).
    pub cpu_weight: Option<u32>,
    /// Relative IO weight, 1-10000, default 100 (IOWeight).
    pub io_weight: Option<u32>,
}

/// What the commands of a workspace may see and reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Network view.
    pub network: NetworkAccess,
    /// Mount the whole filesystem read-only except `writable_paths`.
    pub read_only_root: bool,
    /// Paths that stay writable under `read_only_root`.
    pub writable_paths: Vec<PathBuf>,
    /// Paths replaced by an empty, inaccessible directory or file.
    pub hidden_paths: Vec<PathBuf>,
    /// A private, empty /tmp.
    pub private_tmp: bool,
    /// A private /dev with only the basic nodes (null, zero, full, random,
    /// urandom, tty).
    pub private_dev: bool,
}

/// Network view of a workspace's commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
/// Lower-case in JSON (state files and `--json`); the old capitalised
/// names are still read from state files an earlier daemon wrote.
#[serde(rename_all = "snake_case")]
pub enum NetworkAccess {
    /// The host's network.
    #[default]
    #[serde(alias = "Full")]
    Full,
    /// A private network namespace with only `lo` up.
    #[serde(alias = "Loopback")]
    Loopback,
    /// A private network namespace with no interface up.
    #[serde(alias = "None")]
    None,
}

/// What happens to a workspace when the daemon stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitPolicy {
    /// Stop it with the daemon.
    #[default]
    #[serde(alias = "Reap")]
    Reap,
    /// Leave it running; the next daemon re-adopts it.
    #[serde(alias = "Keep")]
    Keep,
}

/// Whether limits are enforced by the kernel or only reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaEnforce {
    /// Limits are set in the kernel.
    #[default]
    #[serde(alias = "Hard")]
    Hard,
    /// No limit is set; crossing one is reported as a breach.
    #[serde(alias = "ReportOnly")]
    ReportOnly,
}

/// A pipeline: commands in one workspace joined by flow edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineSpec {
    /// The workspace the commands run in.
    pub workspace: WorkspaceId,
    /// Human name of the pipeline.
    pub label: String,
    /// The commands (nodes).
    pub commands: Vec<CommandSpec>,
    /// The edges between the commands' outputs and inputs.
    pub edges: Vec<FlowEdge>,
}

/// One command of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// Name unique within the pipeline; edges refer to it.
    pub label: String,
    /// Program: a path, or a name looked up in the base environment's PATH.
    pub exec: String,
    /// Arguments after the program name.
    pub argv: Vec<String>,
    /// Variables added to the clean base environment.
    pub env: Vec<(String, String)>,
    /// Working directory (default: the user's home).
    pub cwd: Option<PathBuf>,
    /// Restart with backoff when it exits unsuccessfully.
    pub restart_on_failure: bool,
}

/// An edge: bytes from one command's output to another command's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEdge {
    /// The producing side; its port is `stdout`, `stderr` or a named output.
    pub from: Endpoint,
    /// The consuming side; its port is `stdin` or a named input.
    pub to: Endpoint,
    /// Rate limit in bytes per second (token bucket, one second of burst).
    pub rate_limit_bytes_per_sec: Option<u64>,
}

/// One end of an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The command's label.
    pub label: String,
    /// `stdin`, `stdout`, `stderr`, or a named input or output.
    pub port: String,
}
