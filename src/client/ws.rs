//! `shipote ws ...`: create, list, stop and watch workspaces.

use super::render::{human_bytes, human_duration, hundredths, sparkline, Table};
use super::units::{parse_cpu_percent, parse_duration_ms, parse_size};
use super::{Failure, Session};
use serde_json::json;
use shipote_protocol::{
    ErrorCode, ExitPolicy, NetworkAccess, Permissions, QuotaEnforce, QuotaReportInfo, Request,
    Response, Ulid, WorkspaceId, WorkspaceSpec, WorkspaceStatsInfo, WorkspaceSummary,
};

/// Workspace commands.
#[derive(Debug, clap::Subcommand)]
pub enum WsCommand {
    /// Create a workspace: a transient systemd scope with limits.
    Create {
        /// Its label: letters, digits, `_`, `.`, `-` (at most 64).
        label: String,
        /// Hard memory limit (MemoryMax), e.g. 512M, 2G.
        #[arg(long, value_parser = parse_size, value_name = "SIZE")]
        mem: Option<u64>,
        /// Memory throttling threshold (MemoryHigh).
        #[arg(long, value_parser = parse_size, value_name = "SIZE")]
        mem_high: Option<u64>,
        /// Swap limit (MemorySwapMax).
        #[arg(long, value_parser = parse_size, value_name = "SIZE")]
        swap: Option<u64>,
        /// Most processes and threads (TasksMax).
        #[arg(long, value_name = "N")]
        tasks: Option<u64>,
        /// CPU quota: 50%, 150%, or 1.5 (cores) (CPUQuota).
        #[arg(long, value_parser = parse_cpu_percent, value_name = "CPU")]
        cpu: Option<u32>,
        /// Relative CPU weight, 1-10000 (CPUWeight).
        #[arg(long, value_name = "N")]
        cpu_weight: Option<u32>,
        /// Relative IO weight, 1-10000 (IOWeight).
        #[arg(long, value_name = "N")]
        io_weight: Option<u32>,
        /// Stop the workspace after this long, e.g. 10m, 2h.
        #[arg(long, value_parser = parse_duration_ms, value_name = "DURATION")]
        ttl: Option<u64>,
        /// Keep it running when the daemon stops (the next daemon re-adopts it).
        #[arg(long)]
        keep_on_exit: bool,
        /// Set no limits; report when usage crosses them.
        #[arg(long)]
        report_only: bool,
        /// What its commands reach on the network: full, loopback (its own
        /// lo only) or none.
        #[arg(long, value_parser = parse_network, default_value = "full", value_name = "VIEW")]
        network: NetworkAccess,
        /// Mount the whole filesystem read-only for its commands (except
        /// /dev, /proc, /sys and --writable paths).
        #[arg(long)]
        read_only: bool,
        /// A path that stays writable under --read-only (repeatable).
        #[arg(long, value_name = "PATH")]
        writable: Vec<std::path::PathBuf>,
        /// A path its commands cannot see: an empty, inaccessible stand-in
        /// covers it (repeatable).
        #[arg(long, value_name = "PATH")]
        hide: Vec<std::path::PathBuf>,
        /// A private, empty /tmp.
        #[arg(long)]
        private_tmp: bool,
        /// A private /dev with only null, zero, full, random, urandom, tty.
        #[arg(long)]
        private_dev: bool,
    },
    /// List the live workspaces.
    Ls {
        /// Also the last stopped ones (their commands and logs stay
        /// reachable by id or label).
        #[arg(long, short = 'a')]
        all: bool,
    },
    /// Stop a workspace: SIGTERM to its processes, SIGKILL after the grace period.
    Stop {
        /// Its id or label.
        #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
        workspace: String,
        /// Time between SIGTERM and SIGKILL, e.g. 2s; 0 kills at once.
        #[arg(long, value_parser = parse_duration_ms, default_value = super::units::DEFAULT_GRACE, value_name = "DURATION")]
        grace: u64,
    },
    /// Resource use of every workspace.
    Stats,
    /// Limits in force and breaches of one workspace.
    Quota {
        /// Its id or label.
        #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
        workspace: String,
    },
    /// Resource history sampled by the daemon.
    History {
        /// Its id or label.
        #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
        workspace: String,
        /// How many of the newest samples.
        #[arg(long, default_value_t = 30, value_name = "N")]
        tail: u32,
    },
    /// Everything about one workspace.
    Show {
        /// Its id or label.
        #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
        workspace: String,
    },
}

fn unexpected(r: Response) -> Failure {
    Failure::Unexpected(Box::new(r))
}

/// Runs a workspace command.
pub async fn run(s: &mut Session, cmd: WsCommand) -> Result<String, Failure> {
    match cmd {
        WsCommand::Create {
            label,
            mem,
            mem_high,
            swap,
            tasks,
            cpu,
            cpu_weight,
            io_weight,
            ttl,
            keep_on_exit,
            report_only,
            network,
            read_only,
            writable,
            hide,
            private_tmp,
            private_dev,
        } => {
            let mut spec = WorkspaceSpec::new(label);
            spec.permissions = Permissions {
                network,
                read_only_root: read_only,
                writable_paths: writable,
                hidden_paths: hide,
                private_tmp,
                private_dev,
            };
            spec.soma.mem_max_bytes = mem;
            spec.soma.mem_high_bytes = mem_high;
            spec.soma.swap_max_bytes = swap;
            spec.soma.tasks_max = tasks;
            spec.soma.cpu_quota_percent = cpu;
            spec.soma.cpu_weight = cpu_weight;
            spec.soma.io_weight = io_weight;
            spec.ttl_ms = ttl;
            if keep_on_exit {
                spec.on_exit = ExitPolicy::Keep;
            }
            if report_only {
                spec.quota_enforce = QuotaEnforce::ReportOnly;
            }
            match s.call(&Request::WorkspaceCreate { spec }).await? {
                Response::WorkspaceCreated { id, unit, warnings } => {
                    if s.json {
                        return Ok(format!(
                            "{}\n",
                            json!({ "id": id, "unit": unit, "warnings": warnings })
                        ));
                    }
                    for w in &warnings {
                        eprintln!("warning: {w}");
                    }
                    Ok(format!("{id}  {unit}\n"))
                }
                other => Err(unexpected(other)),
            }
        }
        WsCommand::Ls { all } => {
            let items = list(s).await?;
            let stopped = if all { stopped(s).await? } else { Vec::new() };
            if s.json {
                if all {
                    let v = serde_json::json!({ "live": items, "stopped": stopped });
                    return Ok(format!("{v}\n"));
                }
                return Ok(format!(
                    "{}\n",
                    serde_json::to_string(&items).expect("json")
                ));
            }
            let mut head = vec!["ID", "LABEL", "UPTIME", "TTL LEFT", "ON EXIT", "UNIT"];
            if all {
                head.insert(2, "STATE");
            }
            let mut t = Table::with_header(&head);
            let rows = items
                .iter()
                .map(|w| (w, "live"))
                .chain(stopped.iter().map(|w| (w, "stopped")));
            for (w, state) in rows {
                let mut row = vec![
                    w.id.to_string(),
                    w.label.clone(),
                    human_duration(w.uptime_ms),
                    w.ttl_left_ms
                        .map(human_duration)
                        .unwrap_or_else(|| "-".into()),
                    on_exit(w.on_exit).to_owned(),
                    w.unit.clone(),
                ];
                if all {
                    row.insert(2, state.to_owned());
                }
                t.push(row);
            }
            let items = if all {
                [items, stopped].concat()
            } else {
                items
            };
            Ok(if items.is_empty() {
                "no workspaces; create one with shipote ws create LABEL\n".into()
            } else {
                t.render()
            })
        }
        WsCommand::Stop { workspace, grace } => {
            let id = resolve(s, &workspace).await?;
            match s
                .call(&Request::WorkspaceStop {
                    id,
                    grace_ms: grace,
                })
                .await?
            {
                Response::WorkspaceStopped { id, reaped } => {
                    if s.json {
                        return Ok(format!("{}\n", json!({ "id": id, "reaped": reaped })));
                    }
                    let noun = if reaped == 1 { "process" } else { "processes" };
                    Ok(format!("stopped {id}: {reaped} {noun} ended\n"))
                }
                other => Err(unexpected(other)),
            }
        }
        WsCommand::Stats => {
            let items = list(s).await?;
            let mut rows = Vec::new();
            for w in items {
                match s.call(&Request::WorkspaceStats { workspace: w.id }).await {
                    Ok(Response::WorkspaceStats { info }) => rows.push((w, info)),
                    // Stopped between the list and the stats: skip it.
                    Err(Failure::Daemon {
                        code: ErrorCode::NotFound,
                        ..
                    }) => {}
                    Ok(other) => return Err(unexpected(other)),
                    Err(e) => return Err(e),
                }
            }
            if s.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(w, i)| json!({ "id": w.id, "label": w.label, "stats": stats_json(i) }))
                    .collect();
                return Ok(format!("{}\n", serde_json::Value::Array(v)));
            }
            if rows.is_empty() {
                return Ok("no workspaces; create one with shipote ws create LABEL\n".into());
            }
            let mut t = Table::new([
                "LABEL", "RSS", "PEAK", "CPU%", "CPU TIME", "TASKS", "SOURCE", "ID",
            ]);
            for (w, i) in &rows {
                t.row([
                    &w.label,
                    &opt_bytes(i.rss_bytes),
                    &opt_bytes(i.rss_peak_bytes),
                    &i.cpu_percent
                        .map(|p| format!("{p:.1}"))
                        .unwrap_or_else(|| "-".into()),
                    &i.cpu_usec
                        .map(|u| human_duration(u / 1000))
                        .unwrap_or_else(|| "-".into()),
                    &i.tasks.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                    &i.source,
                    &w.id.to_string(),
                ]);
            }
            Ok(t.render())
        }
        WsCommand::Quota { workspace } => {
            let id = resolve(s, &workspace).await?;
            match s.call(&Request::WorkspaceQuota { workspace: id }).await? {
                Response::WorkspaceQuota { info } => {
                    if s.json {
                        return Ok(format!("{}\n", serde_json::to_string(&info).expect("json")));
                    }
                    Ok(quota_text(&info))
                }
                other => Err(unexpected(other)),
            }
        }
        WsCommand::History { workspace, tail } => {
            let id = resolve(s, &workspace).await?;
            match s
                .call(&Request::WorkspaceStatsHistory {
                    workspace: id,
                    tail,
                })
                .await?
            {
                Response::WorkspaceStatsHistory { samples } => {
                    if s.json {
                        let v: Vec<_> = samples.iter().map(stats_json).collect();
                        return Ok(format!("{}\n", serde_json::Value::Array(v)));
                    }
                    Ok(history_text(&samples))
                }
                other => Err(unexpected(other)),
            }
        }
        WsCommand::Show { workspace } => {
            let id = resolve(s, &workspace).await?;
            let summary = list(s).await?.into_iter().find(|w| w.id == id);
            let spec = match s.call(&Request::WorkspaceDescribe { id }).await? {
                Response::WorkspaceDescription { spec, .. } => Some(spec),
                _ => None,
            };
            if summary.is_none() {
                if let Some(w) = stopped(s).await?.into_iter().find(|w| w.id == id) {
                    return show_stopped(s, w, spec).await;
                }
            }
            match s
                .call(&Request::WorkspaceFullSummary { workspace: id })
                .await?
            {
                Response::WorkspaceFullSummary {
                    stats,
                    quota,
                    commands,
                    flow_sockets,
                } => {
                    if s.json {
                        return Ok(format!(
                            "{}\n",
                            json!({
                                "workspace": summary, "stats": stats_json(&stats), "quota": quota,
                                "commands": commands, "flow_sockets": flow_sockets,
                                "permissions": spec.as_ref().map(|s| &s.permissions),
                            })
                        ));
                    }
                    let mut t = Table::new(["", ""]);
                    if let Some(w) = &summary {
                        t.row(["id", &w.id.to_string()]);
                        t.row(["label", &w.label]);
                        t.row(["unit", &w.unit]);
                        t.row(["uptime", &human_duration(w.uptime_ms)]);
                        t.row([
                            "ttl left",
                            &w.ttl_left_ms
                                .map(human_duration)
                                .unwrap_or_else(|| "-".into()),
                        ]);
                        t.row(["on exit", on_exit(w.on_exit)]);
                    }
                    if let Some(spec) = &spec {
                        t.row(["permissions", &permissions_text(&spec.permissions)]);
                        if spec.permissions != Permissions::default() {
                            t.row(["enforced by", &sandbox_layers()]);
                        }
                    }
                    t.row(["rss", &opt_bytes(stats.rss_bytes)]);
                    t.row(["rss peak", &opt_bytes(stats.rss_peak_bytes)]);
                    t.row([
                        "cpu",
                        &stats
                            .cpu_percent
                            .map(|p| format!("{p:.1}%"))
                            .unwrap_or_else(|| "-".into()),
                    ]);
                    t.row([
                        "cpu time",
                        &stats
                            .cpu_usec
                            .map(|u| human_duration(u / 1000))
                            .unwrap_or_else(|| "-".into()),
                    ]);
                    t.row([
                        "tasks",
                        &stats
                            .tasks
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]);
                    t.row(["source", &stats.source]);
                    t.row(["commands", &commands.len().to_string()]);
                    t.row(["flow sockets", &flow_sockets.len().to_string()]);
                    Ok(format!("{}\n{}", t.render(), quota_text(&quota)))
                }
                other => Err(unexpected(other)),
            }
        }
    }
}

async fn list(s: &mut Session) -> Result<Vec<WorkspaceSummary>, Failure> {
    match s.call(&Request::WorkspaceList).await? {
        Response::WorkspaceList { items } => Ok(items),
        other => Err(unexpected(other)),
    }
}

/// Finds a workspace by id, label, or unique id prefix.
pub async fn resolve(s: &mut Session, target: &str) -> Result<WorkspaceId, Failure> {
    if let Ok(u) = Ulid::from_string(target) {
        return Ok(WorkspaceId(u));
    }
    let items = list(s).await?;
    let by_label: Vec<&WorkspaceSummary> = items.iter().filter(|w| w.label == target).collect();
    if let [w] = by_label.as_slice() {
        return Ok(w.id);
    }
    // A label no live workspace has: the newest stopped one with it, whose
    // commands and logs the daemon still keeps.
    if by_label.is_empty() {
        if let Some(w) = stopped(s).await?.into_iter().find(|w| w.label == target) {
            return Ok(w.id);
        }
    }
    let upper = target.to_ascii_uppercase();
    let by_prefix: Vec<&WorkspaceSummary> = items
        .iter()
        .filter(|w| target.len() >= 4 && w.id.to_string().starts_with(&upper))
        .collect();
    match by_prefix.as_slice() {
        [w] => Ok(w.id),
        [] => Err(Failure::Daemon {
            code: ErrorCode::NotFound,
            message: format!(
                "no workspace with id or label {target:?}, live or recently stopped; list them with shipote ws ls --all"
            ),
        }),
        many => Err(Failure::Daemon {
            code: ErrorCode::Invalid,
            message: format!(
                "{target:?} matches {} workspaces ({}); give more of the id",
                many.len(),
                many.iter()
                    .map(|w| w.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// `ws show` of a stopped workspace: what it was and its commands; it has
/// no live figures.
async fn show_stopped(
    s: &mut Session,
    w: WorkspaceSummary,
    spec: Option<WorkspaceSpec>,
) -> Result<String, Failure> {
    let commands = match s.call(&Request::CommandList { workspace: w.id }).await? {
        Response::CommandList { items } => items,
        other => return Err(unexpected(other)),
    };
    if s.json {
        return Ok(format!(
            "{}\n",
            json!({
                "workspace": w, "state": "stopped", "commands": commands,
                "permissions": spec.as_ref().map(|s| &s.permissions),
            })
        ));
    }
    let mut t = Table::new(["", ""]);
    t.row(["id", &w.id.to_string()]);
    t.row(["label", &w.label]);
    t.row(["unit", &w.unit]);
    t.row([
        "state",
        "stopped (its commands and logs are kept: shipote ps, logs)",
    ]);
    t.row(["on exit", on_exit(w.on_exit)]);
    if let Some(spec) = &spec {
        t.row(["permissions", &permissions_text(&spec.permissions)]);
    }
    t.row(["commands", &commands.len().to_string()]);
    Ok(t.render())
}

/// The live workspaces.
pub async fn live(s: &mut Session) -> Result<Vec<WorkspaceSummary>, Failure> {
    list(s).await
}

/// The last stopped workspaces the daemon keeps, newest first.
async fn stopped(s: &mut Session) -> Result<Vec<WorkspaceSummary>, Failure> {
    match s.call(&Request::WorkspaceListStopped).await? {
        Response::WorkspaceListStopped { items } => Ok(items),
        other => Err(Failure::Unexpected(Box::new(other))),
    }
}

fn on_exit(p: ExitPolicy) -> &'static str {
    match p {
        ExitPolicy::Reap => "reap",
        ExitPolicy::Keep => "keep",
    }
}

fn opt_bytes(v: Option<u64>) -> String {
    v.map(human_bytes).unwrap_or_else(|| "-".into())
}

fn stats_json(i: &WorkspaceStatsInfo) -> serde_json::Value {
    let mut v = serde_json::to_value(i).expect("json");
    v["cpu_percent"] = i.cpu_percent.map(|p| hundredths(p.into())).into();
    v
}

fn quota_text(q: &QuotaReportInfo) -> String {
    let limit = |v: Option<u64>, f: fn(u64) -> String| match v {
        Some(u64::MAX) | None => "none".to_owned(),
        Some(v) => f(v),
    };
    let mut t = Table::new(["", ""]);
    t.row(["memory limit", &limit(q.mem_limit, human_bytes)]);
    t.row(["task limit", &limit(q.nproc_limit, |v| v.to_string())]);
    t.row([
        "cpu quota",
        &q.cpu_quota_percent
            .map(|p| format!("{p}%"))
            .unwrap_or_else(|| "none".into()),
    ]);
    t.row([
        "enforced",
        if q.enforced {
            "yes (kernel)"
        } else {
            "no (crossings are reported)"
        },
    ]);
    let mut out = t.render();
    if q.breaches.is_empty() {
        out.push_str("breaches      none\n");
    } else {
        let mut b = Table::new(["BREACH", "COUNT"]);
        for br in &q.breaches {
            b.row([&br.kind, &br.count.to_string()]);
        }
        out.push_str(&b.render());
    }
    out
}

fn history_text(samples: &[WorkspaceStatsInfo]) -> String {
    if samples.is_empty() {
        return "no samples yet: the daemon samples every 2 s\n".into();
    }
    let rss: Vec<u64> = samples.iter().map(|s| s.rss_bytes.unwrap_or(0)).collect();
    let cpu: Vec<u64> = samples
        .iter()
        .map(|s| s.cpu_percent.unwrap_or(0.0).round() as u64)
        .collect();
    let last = samples.last().expect("not empty");
    let max_rss = rss.iter().copied().max().unwrap_or(0);
    let max_cpu = cpu.iter().copied().max().unwrap_or(0);
    let mut t = Table::new(["", "", ""]);
    t.row([
        "rss",
        &sparkline(&rss),
        &format!(
            "now {} max {}",
            opt_bytes(last.rss_bytes),
            human_bytes(max_rss)
        ),
    ]);
    t.row([
        "cpu",
        &sparkline(&cpu),
        &format!(
            "now {} max {max_cpu}%",
            last.cpu_percent
                .map(|p| format!("{p:.1}%"))
                .unwrap_or_else(|| "-".into())
        ),
    ]);
    format!(
        "{} samples, every 2 s, oldest first\n{}",
        samples.len(),
        t.render()
    )
}

/// `full`, `loopback` or `none`.
fn parse_network(s: &str) -> Result<NetworkAccess, String> {
    match s {
        "full" => Ok(NetworkAccess::Full),
        "loopback" | "lo" => Ok(NetworkAccess::Loopback),
        "none" => Ok(NetworkAccess::None),
        other => Err(format!(
            "{other:?} is not a network view; use full, loopback or none"
        )),
    }
}

/// One line for a person: what a workspace's commands may see and reach.
/// The layers a sandboxed workspace's commands run under (SECURITY.md),
/// and those this host lacks, if any (the client runs on the daemon's host).
fn sandbox_layers() -> String {
    let mut layers = vec![
        "user, mount, network, PID and cgroup namespaces".to_owned(),
        "read-only cgroupfs".to_owned(),
        "private devpts".to_owned(),
        "no capabilities".to_owned(),
        "no_new_privs".to_owned(),
    ];
    let mut missing = Vec::new();
    match crate::process::landlock::abi() {
        0 => missing.push("no Landlock on this kernel"),
        abi => layers.push(format!("Landlock (ABI {abi})")),
    }
    if crate::process::seccomp::available() {
        layers.push("seccomp deny-list".to_owned());
    } else {
        missing.push("no seccomp filter on this architecture");
    }
    if missing.is_empty() {
        layers.join(", ")
    } else {
        format!("{} ({})", layers.join(", "), missing.join("; "))
    }
}

fn permissions_text(p: &Permissions) -> String {
    let list = |v: &[std::path::PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    match p.network {
        NetworkAccess::Full => {}
        NetworkAccess::Loopback => parts.push("network loopback".to_owned()),
        NetworkAccess::None => parts.push("network none".to_owned()),
    }
    if p.read_only_root {
        parts.push(match p.writable_paths.as_slice() {
            [] => "read-only".to_owned(),
            w => format!("read-only but {}", list(w)),
        });
    }
    if !p.hidden_paths.is_empty() {
        parts.push(format!("hidden {}", list(&p.hidden_paths)));
    }
    if p.private_tmp {
        parts.push("private /tmp".to_owned());
    }
    if p.private_dev {
        parts.push("private /dev".to_owned());
    }
    if parts.is_empty() {
        "none asked (the host's view)".to_owned()
    } else {
        parts.join(", ")
    }
}
