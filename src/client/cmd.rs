//! `shipote run`, `ps`, `logs`: commands inside workspaces.

use super::render::{human_bytes, Table};
use super::units::parse_size;
use super::ws::resolve;
use super::{Failure, Session};
use serde_json::json;
use shipote_protocol::{CommandInfo, ErrorCode, LogStream, Request, Response, Ulid, WorkspaceId};
use std::io::Write;

/// `KEY=VALUE`, or `KEY` alone for this shell's value of it (as
/// `systemd-run --setenv=KEY` does).
fn parse_env(kv: &str) -> Result<(String, String), String> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        None if !kv.is_empty() => match std::env::var(kv) {
            Ok(v) => Ok((kv.to_owned(), v)),
            Err(_) => Err(format!(
                "{kv} is not set here; write {kv}=VALUE, or export it first"
            )),
        },
        _ => Err(format!("{kv:?} is not KEY=VALUE or KEY")),
    }
}

/// `shipote run WS [--env K=V]... [--cwd DIR] -- CMD ARGS...`
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The workspace (id or label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
    pub workspace: String,
    /// Add a variable to the command's environment; KEY alone passes this
    /// shell's value (e.g. -e PATH). Commands start from a clean environment
    /// (PATH, HOME, USER, LANG... as the daemon has them), the same however
    /// and by whom they are started or restarted, as systemd-run does.
    #[arg(long = "env", short = 'e', value_parser = parse_env, value_name = "KEY[=VALUE]")]
    pub env: Vec<(String, String)>,
    /// Working directory (default: your home, as systemd-run; a relative
    /// one is taken from the current directory).
    #[arg(long, value_name = "DIR", conflicts_with = "same_dir")]
    pub cwd: Option<std::path::PathBuf>,
    /// Run it in the current directory (systemd-run's --same-dir).
    #[arg(long, short = 'd')]
    pub same_dir: bool,
    /// Restart it with backoff when it fails.
    #[arg(long)]
    pub restart: bool,
    /// Stay in the foreground: its output to stdout and stderr as it comes,
    /// Ctrl-C (and SIGTERM, SIGHUP, SIGQUIT) passed on to it, and its exit
    /// status as this one's (128+N for a signal N).
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// The program and its arguments (`--` before them is optional; needed
    /// only when the program's name starts with `-`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// `shipote logs WS CMD [--tail 4K] [--stdout|--stderr]`
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The workspace (id or label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
    pub workspace: String,
    /// The command (id, id prefix, or label: the newest with that label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::commands))]
    pub command: String,
    /// The last N lines, whole (as tail -n; --tail N as docker logs)
    /// [default: 100].
    #[arg(long, short = 'n', visible_alias = "tail", value_name = "N")]
    pub lines: Option<u64>,
    /// The last SIZE bytes instead, e.g. 4K, 1M (as tail -c).
    #[arg(long, short = 'c', value_parser = parse_size, value_name = "SIZE", conflicts_with = "lines")]
    pub bytes: Option<u64>,
    /// Standard output only.
    #[arg(long, conflicts_with = "stderr")]
    pub stdout: bool,
    /// Standard error only.
    #[arg(long)]
    pub stderr: bool,
    /// Keep showing new output until the command has exited and its output
    /// is closed.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// `shipote stop WS CMD [--grace 1s]`
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// The workspace (id or label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
    pub workspace: String,
    /// The command (id, id prefix, or label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::commands))]
    pub command: String,
    /// Time between SIGTERM and SIGKILL, e.g. 2s; 0 kills at once.
    #[arg(long, value_parser = super::units::parse_duration_ms, default_value = super::units::DEFAULT_GRACE, value_name = "DURATION")]
    pub grace: u64,
}

/// `shipote kill WS CMD [-s SIGNAL]`
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// The workspace (id or label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
    pub workspace: String,
    /// The command (id, id prefix, or label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::commands))]
    pub command: String,
    /// The signal: a name (TERM, SIGHUP, usr1) or a number.
    #[arg(long, short = 's', default_value = "TERM", value_parser = parse_signal, value_name = "SIGNAL")]
    pub signal: i32,
}

/// A signal name (with or without SIG, any case) or number.
pub fn parse_signal(text: &str) -> Result<i32, String> {
    if let Ok(n) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|s| s as i32)
            .map_err(|_| format!("{n} is not a signal number; see `kill -l`"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| format!("{text:?} is not a signal name; give one like TERM, HUP, USR1, KILL (see `kill -l`)"))
}

/// The command a user named: its id, an id prefix (4 characters or more) or
/// its label. For logs the newest with that label; to act on one (`alive`),
/// the one alive with that label, and an error naming them if several are.
async fn resolve_command(
    s: &mut Session,
    workspace: WorkspaceId,
    ws_arg: &str,
    arg: &str,
    alive: bool,
) -> Result<Ulid, Failure> {
    if let Ok(id) = Ulid::from_string(arg) {
        return Ok(id);
    }
    let items = list(s, workspace).await?;
    let upper = arg.to_ascii_uppercase();
    let labelled: Vec<&CommandInfo> = items.iter().filter(|c| c.label == arg).collect();
    let live: Vec<&&CommandInfo> = labelled.iter().filter(|c| c.alive).collect();
    if alive && live.len() > 1 {
        let ids: Vec<String> = live.iter().map(|c| c.id.to_string()).collect();
        return Err(Failure::Input(format!(
            "{} running commands in {ws_arg} are labelled {arg:?}: {}; give the id of the one you mean",
            live.len(),
            ids.join(", ")
        )));
    }
    let found = live
        .first()
        .map(|c| c.id)
        .filter(|_| alive)
        .or_else(|| labelled.last().map(|c| c.id))
        .or_else(|| {
            items
                .iter()
                .find(|c| arg.len() >= 4 && c.id.to_string().starts_with(&upper))
                .map(|c| c.id)
        });
    found.ok_or_else(|| Failure::Daemon {
        code: ErrorCode::NotFound,
        message: format!("no command {arg:?} in {ws_arg}; list them with shipote ps {ws_arg}"),
    })
}

/// A running command to act on, named by its workspace and itself.
async fn target(s: &mut Session, ws: &str, command: &str) -> Result<(WorkspaceId, Ulid), Failure> {
    let workspace = resolve(s, ws).await?;
    let command = resolve_command(s, workspace, ws, command, true).await?;
    Ok((workspace, command))
}

/// Runs `shipote stop`.
pub async fn stop(s: &mut Session, a: StopArgs) -> Result<String, Failure> {
    let (workspace, command) = target(s, &a.workspace, &a.command).await?;
    let req = Request::CommandStop {
        workspace,
        command,
        grace_ms: a.grace,
    };
    match s.call(&req).await? {
        Response::CommandStopped { ended, .. } => Ok(if s.json {
            format!(
                "{}\n",
                json!({ "workspace": workspace.to_string(), "command": command.to_string(), "ended": ended })
            )
        } else if ended == 0 {
            format!("command {command} had ended; it will not be restarted\n")
        } else {
            format!(
                "stopped command {command}: {ended} process{} ended; it will not be restarted\n",
                if ended == 1 { "" } else { "es" }
            )
        }),
        other => Err(Failure::Unexpected(Box::new(other))),
    }
}

/// Runs `shipote restart`.
pub async fn restart(s: &mut Session, a: StopArgs) -> Result<String, Failure> {
    let (workspace, command) = target(s, &a.workspace, &a.command).await?;
    let req = Request::CommandRestart {
        workspace,
        command,
        grace_ms: a.grace,
    };
    match s.call(&req).await? {
        Response::RunStarted {
            command_id, pid, ..
        } => Ok(if s.json {
            format!("{}\n", json!({ "command_id": command_id, "pid": pid }))
        } else {
            format!("restarted {command_id}  pid {pid}\n")
        }),
        other => Err(Failure::Unexpected(Box::new(other))),
    }
}

/// Runs `shipote kill`.
pub async fn kill(s: &mut Session, a: KillArgs) -> Result<String, Failure> {
    let (workspace, command) = target(s, &a.workspace, &a.command).await?;
    let req = Request::CommandSignal {
        workspace,
        command,
        signal: a.signal,
    };
    let name = nix::sys::signal::Signal::try_from(a.signal)
        .map(|s| s.as_str())
        .unwrap_or("?");
    match s.call(&req).await? {
        Response::CommandSignalled { processes, .. } => Ok(if s.json {
            format!(
                "{}\n",
                json!({ "workspace": workspace.to_string(), "command": command.to_string(), "signal": name, "processes": processes })
            )
        } else {
            format!(
                "sent {name} to {processes} process{} of command {command}\n",
                if processes == 1 { "" } else { "es" }
            )
        }),
        other => Err(Failure::Unexpected(Box::new(other))),
    }
}

/// `shipote wait WS CMD`
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// The workspace (id or label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
    pub workspace: String,
    /// The command (id, id prefix, or label).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::commands))]
    pub command: String,
}

/// Runs `shipote wait`: until the command has ended (restarts included),
/// then exits with its status.
pub async fn wait(s: &mut Session, a: WaitArgs) -> Result<String, Failure> {
    let workspace = resolve(s, &a.workspace).await?;
    let command = resolve_command(s, workspace, &a.workspace, &a.command, false).await?;
    loop {
        let c = list(s, workspace)
            .await?
            .into_iter()
            .find(|c| c.id == command)
            .ok_or_else(|| Failure::Daemon {
                code: ErrorCode::NotFound,
                message: format!("command {command} is gone from {}", a.workspace),
            })?;
        if !c.alive {
            return Err(exit_status(&c));
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// The exit of the CLI for a command that ended: its status, 128+N for a
/// signal N (as a shell reports it).
fn exit_status(c: &CommandInfo) -> Failure {
    Failure::Status(match (c.exit_status, c.exit_signal) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => 1,
    })
}

fn emit_now(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The records of a [`LogStream::Tagged`] read: (stream, bytes); a
/// truncated last record yields what it has.
fn tagged_records(mut bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < 5 {
            return None;
        }
        let tag = bytes[0];
        let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let end = (5 + len).min(bytes.len());
        let chunk = &bytes[5..end];
        bytes = &bytes[end..];
        Some((tag, chunk))
    })
}

/// `run --wait`: the command's stdout and stderr to ours as they come,
/// signals passed on, and its exit status as ours once its output is all
/// shown.
async fn attach(s: &mut Session, workspace: WorkspaceId, command: Ulid) -> Result<String, Failure> {
    use tokio::signal::unix::{signal, SignalKind};
    // Signals go on their own connection, so one can arrive while a read
    // is under way.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    for (kind, number) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::quit(), libc::SIGQUIT),
    ] {
        let mut sig =
            signal(kind).map_err(|e| Failure::Input(format!("cannot watch signals: {e}")))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                if tx.send(number).is_err() {
                    return;
                }
            }
        });
    }
    let target = s.target.clone();
    tokio::spawn(async move {
        // (Held while signals may come: an ssh bridge lives as long.)
        let Ok((mut c, _bridge)) = super::remote::connect(&target).await else {
            return;
        };
        while let Some(signal) = rx.recv().await {
            let _ = c
                .call(&Request::CommandSignal {
                    workspace,
                    command,
                    signal,
                })
                .await;
        }
    });
    // One cursor over both streams, as tagged records: each run of bytes is
    // written to our stdout or stderr in the order the command wrote them.
    let mut from = 0u64;
    let (mut out_open, mut err_open) = (true, true);
    loop {
        let req = Request::CommandLogsFrom {
            workspace,
            command,
            stream: LogStream::Tagged,
            // From the very start: nothing it wrote is missed.
            from: Some(from),
            tail_bytes: 0,
            max_bytes: u64::MAX,
        };
        let (bytes, next, running) = match s.call(&req).await {
            Err(e) if transient(&e) => {
                eprintln!("shipote: the daemon went away; following again once it is back");
                s.reconnect(FOLLOW_RECONNECT).await?;
                continue;
            }
            Err(e) => return Err(e),
            Ok(Response::CommandLogsFrom {
                bytes,
                next,
                running,
                ..
            }) => (bytes, next, running),
            Ok(other) => return Err(Failure::Unexpected(Box::new(other))),
        };
        for (tag, chunk) in tagged_records(&bytes) {
            // A reader that went away: that stream is not wanted any more.
            if tag == 2 {
                if err_open {
                    let mut err = std::io::stderr().lock();
                    err_open = err.write_all(chunk).and_then(|()| err.flush()).is_ok();
                }
            } else if out_open {
                let mut out = std::io::stdout().lock();
                out_open = out.write_all(chunk).and_then(|()| out.flush()).is_ok();
            }
        }
        from = next;
        if bytes.is_empty() {
            if !running {
                break;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
    let c = list(s, workspace)
        .await?
        .into_iter()
        .find(|c| c.id == command)
        .ok_or_else(|| Failure::Daemon {
            code: ErrorCode::NotFound,
            message: format!("command {command} is gone"),
        })?;
    Err(exit_status(&c))
}

/// How long a follower waits before asking again when nothing was new.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a follower waits for a daemon that went away (a restart, an
/// upgrade, a crash and systemd's restart of it) to come back.
const FOLLOW_RECONNECT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `shipote run`.
pub async fn run(s: &mut Session, a: RunArgs) -> Result<String, Failure> {
    let workspace = resolve(s, &a.workspace).await?;
    let mut argv = a.command;
    let exec = argv.remove(0);
    let here = || {
        std::env::current_dir()
            .map_err(|e| Failure::Input(format!("the current directory is unusable: {e}")))
    };
    let cwd = match a.cwd {
        Some(dir) if dir.is_relative() => Some(here()?.join(dir)),
        None if a.same_dir => Some(here()?),
        dir => dir,
    };
    let req = Request::Run {
        workspace,
        exec,
        argv,
        envp: a.env,
        restart_on_failure: a.restart,
        cwd,
    };
    match s.call(&req).await? {
        Response::RunStarted {
            command_id, pid, ..
        } if a.wait => {
            if s.json {
                emit_now(&format!(
                    "{}\n",
                    json!({ "command_id": command_id, "pid": pid })
                ));
            }
            attach(s, workspace, command_id).await
        }
        Response::RunStarted {
            command_id, pid, ..
        } => {
            if s.json {
                return Ok(format!(
                    "{}\n",
                    json!({ "command_id": command_id, "pid": pid })
                ));
            }
            Ok(format!("{command_id}  pid {pid}\n"))
        }
        other => Err(Failure::Unexpected(Box::new(other))),
    }
}

async fn list(s: &mut Session, workspace: WorkspaceId) -> Result<Vec<CommandInfo>, Failure> {
    match s.call(&Request::CommandList { workspace }).await? {
        Response::CommandList { items } => Ok(items),
        other => Err(Failure::Unexpected(Box::new(other))),
    }
}

fn state(c: &CommandInfo) -> String {
    match (c.alive, c.exit_status, c.exit_signal) {
        (true, _, _) => "running".into(),
        (false, Some(code), _) => format!("exited {code}"),
        (false, None, Some(sig)) => format!("killed by {}", signal_name(sig)),
        (false, None, None) => "ended".into(),
    }
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Runs `shipote ps WS`.
pub async fn ps(s: &mut Session, workspace: Option<&str>) -> Result<String, Failure> {
    // No workspace: every live one's commands, with a WORKSPACE column.
    let targets: Vec<(WorkspaceId, String)> = match workspace {
        Some(w) => vec![(resolve(s, w).await?, w.to_owned())],
        None => super::ws::live(s)
            .await?
            .into_iter()
            .map(|w| (w.id, w.label))
            .collect(),
    };
    let mut rows = Vec::new();
    for (id, label) in &targets {
        for c in list(s, *id).await? {
            rows.push((label.clone(), c));
        }
    }
    if s.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(w, c)| {
                let mut v = serde_json::to_value(c).expect("json");
                if workspace.is_none() {
                    v["workspace"] = json!(w);
                }
                v
            })
            .collect();
        return Ok(format!("{}\n", serde_json::Value::Array(v)));
    }
    if rows.is_empty() {
        return Ok("no commands; start one with shipote run WORKSPACE -- COMMAND\n".into());
    }
    let mut head = vec!["ID", "LABEL", "PID", "STATE", "RESTARTS", "LOGS", "NOTE"];
    if workspace.is_none() {
        head.insert(0, "WORKSPACE");
    }
    let mut t = Table::with_header(&head);
    for (w, c) in &rows {
        let mut row = vec![
            c.id.to_string(),
            c.label.clone(),
            c.pid.to_string(),
            state(c),
            c.restarts.to_string(),
            human_bytes(c.log_bytes),
            c.failure.clone().unwrap_or_default(),
        ];
        if workspace.is_none() {
            row.insert(0, w.clone());
        }
        t.push(row);
    }
    Ok(t.render())
}

/// Runs `shipote logs`: the bytes go to stdout as they are.
pub async fn logs(s: &mut Session, a: LogsArgs) -> Result<String, Failure> {
    let workspace = resolve(s, &a.workspace).await?;
    let command = resolve_command(s, workspace, &a.workspace, &a.command, false).await?;
    let stream = match (a.stdout, a.stderr) {
        (true, _) => LogStream::Stdout,
        (_, true) => LogStream::Stderr,
        _ => LogStream::Both,
    };
    let lines = match a.bytes {
        Some(_) => None,
        None => Some(a.lines.unwrap_or(DEFAULT_LINES)),
    };
    let tail = match (lines, a.bytes) {
        (Some(n), _) => bytes_for_lines(s, workspace, command, stream, n).await?,
        (None, bytes) => bytes.unwrap_or(0),
    };
    if a.follow {
        return follow(s, workspace, command, stream, tail).await;
    }
    let req = Request::CommandLogs {
        workspace,
        command,
        tail_bytes: tail,
        stream,
    };
    match s.call(&req).await? {
        Response::CommandLogs { bytes } => {
            let bytes = match lines {
                Some(n) => last_lines(&bytes, n),
                None => &bytes[..],
            };
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes);
            let _ = out.flush();
            drop(out);
            warn_if_output_lost(s, workspace, command).await;
            Ok(String::new())
        }
        other => Err(Failure::Unexpected(Box::new(other))),
    }
}

/// Lines `logs` shows when neither -n nor -c says.
const DEFAULT_LINES: u64 = 100;

/// Most bytes asked for to find the last lines (a log keeps 64 MiB at most).
const LINES_MAX_BYTES: u64 = 64 << 20;

/// How many bytes of the end hold the last `n` lines: asked for in growing
/// steps until they hold `n` line ends more than the last, or the whole log.
async fn bytes_for_lines(
    s: &mut Session,
    workspace: WorkspaceId,
    command: Ulid,
    stream: LogStream,
    n: u64,
) -> Result<u64, Failure> {
    let mut tail: u64 = (n.saturating_add(1))
        .saturating_mul(128)
        .clamp(4096, LINES_MAX_BYTES);
    loop {
        let req = Request::CommandLogs {
            workspace,
            command,
            tail_bytes: tail,
            stream,
        };
        let bytes = match s.call(&req).await? {
            Response::CommandLogs { bytes } => bytes,
            other => return Err(Failure::Unexpected(Box::new(other))),
        };
        let ends = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        // Fewer bytes than asked: that was the whole log.
        if ends > n || (bytes.len() as u64) < tail || tail >= LINES_MAX_BYTES {
            return Ok(tail);
        }
        tail = tail.saturating_mul(4).min(LINES_MAX_BYTES);
    }
}

/// The last `n` lines of `bytes` (a last line without its newline counts).
fn last_lines(bytes: &[u8], n: u64) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

/// Says on stderr when some of a command's output could not be kept (a full
/// disk): logs that look complete but are not would mislead.
async fn warn_if_output_lost(s: &mut Session, workspace: WorkspaceId, command: Ulid) {
    if let Ok(Response::CommandList { items }) = s.call(&Request::CommandList { workspace }).await {
        if let Some(note) = items
            .iter()
            .find(|c| c.id == command)
            .and_then(|c| c.failure.as_deref())
            .filter(|n| n.contains("not kept"))
        {
            eprintln!("shipote: note: {note}");
        }
    }
}

/// A failure a follower waits out: the daemon gone or shutting down.
fn transient(e: &Failure) -> bool {
    match e {
        Failure::Transport(_) => true,
        Failure::Daemon { code, message } => {
            *code == ErrorCode::Busy && message.contains("shutting down")
        }
        _ => false,
    }
}

/// `logs -f`: the tail, then whatever arrives, until the command is done;
/// across daemon restarts.
async fn follow(
    s: &mut Session,
    workspace: WorkspaceId,
    command: Ulid,
    stream: LogStream,
    tail: u64,
) -> Result<String, Failure> {
    let mut from = None;
    loop {
        let req = Request::CommandLogsFrom {
            workspace,
            command,
            stream,
            from,
            tail_bytes: tail,
            max_bytes: u64::MAX,
        };
        let answer = match s.call(&req).await {
            // The daemon went away (or is leaving): wait for the next one and
            // go on from the same position (positions outlive daemons).
            Err(e) if transient(&e) => {
                let at = from.map_or("the start".to_owned(), |p| format!("byte {p}"));
                eprintln!(
                    "shipote: the daemon went away; following again from {at} once it is back"
                );
                s.reconnect(FOLLOW_RECONNECT).await?;
                continue;
            }
            other => other?,
        };
        let (bytes, next, skipped, running) = match answer {
            Response::CommandLogsFrom {
                bytes,
                next,
                skipped,
                running,
            } => (bytes, next, skipped, running),
            other => return Err(Failure::Unexpected(Box::new(other))),
        };
        if skipped > 0 {
            eprintln!("shipote: {skipped} bytes of output rotated away before they could be shown");
        }
        let mut out = std::io::stdout().lock();
        if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
            // The reader went away (e.g. `| head`): nothing left to do.
            return Ok(String::new());
        }
        drop(out);
        if bytes.is_empty() {
            if !running {
                return Ok(String::new());
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
        from = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::{last_lines, tagged_records};

    #[test]
    fn tagged_records_are_split_even_when_the_last_is_cut() {
        let bytes = [&[1, 2, 0, 0, 0][..], b"ab", &[2, 3, 0, 0, 0], b"cd"].concat();
        let got: Vec<(u8, &[u8])> = tagged_records(&bytes).collect();
        assert_eq!(got, [(1, &b"ab"[..]), (2, &b"cd"[..])]);
    }

    #[test]
    fn last_lines_are_whole() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"x99\nline 100\n", 1), b"line 100\n");
        assert_eq!(last_lines(b"a\n", 0), b"");
    }
}
