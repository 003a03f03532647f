//! The `shipote` CLI: argument definitions ([`Cli`]), one function per command,
//! and rendering ([`render`]). Exit codes: 0 ok, 1 the daemon answered an error,
//! 2 could not ask (usage, no daemon, protocol failure).

pub mod cmd;
pub mod complete;
pub mod context;
pub mod discern;
pub mod flow;
pub mod pipeline;
pub mod remote;
pub mod render;
pub mod system;
pub mod top;
pub mod units;
pub mod ws;

use render::{human_duration, Table};
use serde_json::json;
use shipote_protocol::client::{Client, ClientError};
use shipote_protocol::{ErrorCode, Request, Response};
use std::path::PathBuf;
use std::time::Instant;

/// How values are written, for `--help` and the man page.
const UNITS_HELP: &str = "\
Durations: 500ms, 30s, 10m, 2h, 1d, or several as systemd writes them (1h30m,
2m 30s); a bare number is seconds, as in systemd. Every stop's grace period
(ws stop, pipeline stop, stop, restart) defaults to 1s.
Sizes: 512M, 2G, 1.5T (binary units: 1K = 1024 bytes), or max; a bare number
is bytes. Sizes larger than the machine's memory are accepted with a warning.";

/// shipote: run and watch contained workspaces through the shipoted daemon.
#[derive(Debug, clap::Parser)]
#[command(name = "shipote", version, about, long_about, after_long_help = UNITS_HELP)]
pub struct Cli {
    /// The daemon's socket (default: $XDG_RUNTIME_DIR/shipote.sock, else
    /// /run/user/$UID/shipote.sock, else /tmp/shipote-$UID.sock).
    #[arg(long, global = true, env = "SHIPOTE_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// The daemon of another host, through your own ssh (keys, agent,
    /// config): ssh://[USER@]HOST[:PORT][/SOCKET]. shipote must be installed
    /// there; SHIPOTE_SSH_COMMAND replaces `ssh` (e.g. `ssh -F CONFIG`).
    #[arg(long, global = true, env = "SHIPOTE_HOST", value_name = "URL")]
    pub host: Option<String>,

    /// Use this named context (shipote context ls); several, on the
    /// read-only commands (ws ls, ps, ws stats, flow ls, health), ask every
    /// one in parallel and merge the answers under a HOST column.
    #[arg(
        long,
        global = true,
        env = "SHIPOTE_CONTEXT",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub context: Vec<String>,

    /// Ask every context (and this host) at once; read-only commands only.
    #[arg(long, global = true)]
    pub all_contexts: bool,

    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The CLI's commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check that the daemon answers, and how fast.
    Ping,
    /// Show the daemon's version, uptime and live counts.
    Health,
    /// Show what this host and daemon can do (kernel, cgroups, namespaces, backend).
    Caps,
    /// Manage workspaces: groups of processes with limits, each a systemd scope.
    #[command(subcommand)]
    Ws(ws::WsCommand),
    /// Start a command in a workspace: shipote run WS -- CMD ARGS...
    Run(cmd::RunArgs),
    /// List a workspace's commands (without one: every live workspace's).
    Ps {
        /// The workspace (id or label); none: all live workspaces.
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::workspaces))]
        workspace: Option<String>,
    },
    /// Show the end of a command's captured output.
    Logs(cmd::LogsArgs),
    /// Stop one command: SIGTERM, SIGKILL after the grace period; its
    /// restart policy ends with it.
    Stop(cmd::StopArgs),
    /// Send a signal to every process of one command (its restart policy
    /// stays, as with systemctl kill).
    Kill(cmd::KillArgs),
    /// Wait for a command to end; exit with its status (128+N for signal N).
    Wait(cmd::WaitArgs),
    /// Restart one command: SIGTERM, SIGKILL after the grace period, then
    /// the same program again, same id and log (its restart policy stays).
    Restart(cmd::StopArgs),
    /// Tell the type of files (or stdin: -) from their first bytes.
    Discern(discern::DiscernArgs),
    /// Run, stop, save and list pipelines of commands joined by pipes.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Watch the data flowing through tapped pipeline edges.
    #[command(subcommand)]
    Flow(flow::FlowCommand),
    /// Named hosts to use instead of this one's daemon (docker-style contexts).
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Plumbing for other programs (and for shipote itself on another host).
    #[command(subcommand)]
    System(system::SystemCommand),
    /// A live, full-screen view: workspaces, the selected one's commands
    /// with their own CPU and memory, the followed log and the flows; keys
    /// stop, kill and restart (? for help).
    Top(top::TopArgs),
}

/// How a command ended.
#[derive(Debug)]
pub enum Outcome {
    /// Done.
    Ok,
    /// The daemon answered with an error.
    Refused,
    /// The daemon could not be asked.
    CouldNotAsk,
    /// A command waited for ended with this status.
    Exit(u8),
}

impl Outcome {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Refused => 1,
            Outcome::CouldNotAsk => 2,
            Outcome::Exit(code) => *code,
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The daemon answered with an error.
    Daemon {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The daemon could not be asked.
    Transport(Box<ClientError>),
    /// The daemon answered something this CLI does not expect.
    Unexpected(Box<Response>),
    /// The user's input (a file, an argument) is unusable; nothing was asked.
    Input(String),
    /// A command waited for ended: the CLI exits with its status (not an
    /// error of the CLI's).
    Status(u8),
}

/// A connection plus the CLI's global options.
pub struct Session {
    client: Client,
    /// The daemon asked: a local socket, or another host's through ssh.
    pub target: remote::Target,
    /// The ssh bridge to it, when remote.
    bridge: Option<remote::Bridge>,
    /// `--json`.
    pub json: bool,
}

impl Session {
    /// Sends a request; an `Error` answer becomes [`Failure::Daemon`].
    pub async fn call(&mut self, request: &Request) -> Result<Response, Failure> {
        match self
            .client
            .call(request)
            .await
            .map_err(|e| Failure::Transport(Box::new(e)))?
        {
            Response::Error { code, message } => Err(Failure::Daemon { code, message }),
            r => Ok(r),
        }
    }

    /// Connects again to the same socket, waiting up to `limit` for a daemon
    /// to answer there (one that restarts).
    pub async fn reconnect(&mut self, limit: std::time::Duration) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match remote::connect(&self.target).await {
                Ok((c, bridge)) => {
                    self.client = c;
                    self.bridge = bridge;
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// Why the daemon could not be asked, in words that name where it is.
    pub async fn explain(&mut self, e: &ClientError) -> String {
        match &mut self.bridge {
            Some(b) => b.explain(e).await,
            None => format!("{}: {}", self.target.describe(), root_cause(e)),
        }
    }
}

/// Writes a command's output to stdout. A reader that went away (`| head`)
/// is not an error: the output is simply not wanted any more.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Runs the parsed command line and reports how it went.
pub async fn run(cli: Cli) -> Outcome {
    // Discern reads its inputs before any connection, and --local needs none.
    // An unreadable file is named on stderr and the others are still
    // discerned, as file(1) does; the exit code is then 1.
    let mut discern_inputs = Vec::new();
    let mut unreadable = false;
    if let Command::Discern(a) = &cli.command {
        let (inputs, errors) = discern::read(a);
        for message in &errors {
            eprintln!("shipote: {message}");
        }
        unreadable = !errors.is_empty();
        if inputs.is_empty() {
            return Outcome::CouldNotAsk;
        }
        if a.local {
            emit(&discern::local(&inputs, cli.json));
            return if unreadable {
                Outcome::Refused
            } else {
                Outcome::Ok
            };
        }
        discern_inputs = inputs;
    }
    // The bridge talks bytes, not requests: no client of its own.
    if let Command::System(system::SystemCommand::DialStdio) = &cli.command {
        let socket = cli
            .socket
            .clone()
            .unwrap_or_else(shipote_protocol::default_socket_path);
        return match system::dial_stdio(&socket) {
            Ok(()) => Outcome::Ok,
            Err(message) => {
                eprintln!("shipote: {message}");
                Outcome::CouldNotAsk
            }
        };
    }
    if let Command::Context(c) = &cli.command {
        return match context::run(c, cli.json) {
            Ok(out) => {
                emit(&out);
                Outcome::Ok
            }
            Err(message) => {
                eprintln!("shipote: {message}");
                Outcome::Refused
            }
        };
    }
    if cli.host.is_none() && (cli.context.len() > 1 || cli.all_contexts) {
        return many_hosts(&cli);
    }
    // An explicit --host wins; then --context; then an explicit --socket
    // (or SHIPOTE_SOCKET), as DOCKER_HOST beats the context in use; then the
    // context in use.
    let host = match cli.host.clone() {
        Some(h) => Some(h),
        None if cli.context.is_empty() && cli.socket.is_some() => None,
        None => match chosen_context(&cli) {
            Ok(h) => h,
            Err(message) => {
                eprintln!("shipote: {message}");
                return Outcome::CouldNotAsk;
            }
        },
    };
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(shipote_protocol::default_socket_path);
    let target = match remote::Target::new(host.as_deref(), socket) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("shipote: {message}");
            return Outcome::CouldNotAsk;
        }
    };
    // A flow subscriber talks to the flow socket, not to the daemon.
    if let Command::Flow(flow::FlowCommand::Cat { socket }) = &cli.command {
        return match flow::cat(&target, socket) {
            Ok(()) => Outcome::Ok,
            Err(message) => {
                eprintln!("shipote: {message}");
                Outcome::CouldNotAsk
            }
        };
    }
    let (client, bridge) = match remote::connect(&target).await {
        Ok(c) => c,
        Err(Failure::Transport(e)) => return could_not_ask(&target.describe(), &target, &e),
        Err(Failure::Input(message)) => {
            eprintln!("shipote: {message}");
            return Outcome::CouldNotAsk;
        }
        Err(_) => return Outcome::CouldNotAsk,
    };
    let mut s = Session {
        client,
        target: target.clone(),
        bridge,
        json: cli.json,
    };
    let result = match cli.command {
        Command::Ping => {
            let started = Instant::now();
            s.call(&Request::Ping)
                .await
                .map(|_| ping(s.json, &target.describe(), started.elapsed()))
        }
        Command::Health => match s.call(&Request::Health).await {
            Ok(r @ Response::Health { .. }) => Ok(health(s.json, r)),
            Ok(other) => Err(Failure::Unexpected(Box::new(other))),
            Err(e) => Err(e),
        },
        Command::Caps => match s.call(&Request::Capabilities).await {
            Ok(r @ Response::Capabilities { .. }) => Ok(caps(s.json, r)),
            Ok(other) => Err(Failure::Unexpected(Box::new(other))),
            Err(e) => Err(e),
        },
        Command::Ws(c) => ws::run(&mut s, c).await,
        Command::Run(a) => cmd::run(&mut s, a).await,
        Command::Ps { workspace } => cmd::ps(&mut s, workspace.as_deref()).await,
        Command::Logs(a) => cmd::logs(&mut s, a).await,
        Command::Stop(a) => cmd::stop(&mut s, a).await,
        Command::Kill(a) => cmd::kill(&mut s, a).await,
        Command::Wait(a) => cmd::wait(&mut s, a).await,
        Command::Restart(a) => cmd::restart(&mut s, a).await,
        Command::Discern(_) => discern::remote(&mut s, discern_inputs).await,
        Command::Pipeline(c) => pipeline::run(&mut s, c).await,
        Command::Flow(c) => flow::run(&mut s, c).await,
        Command::Top(a) => top::run(&mut s, a).await,
        // Answered before connecting.
        Command::System(_) | Command::Context(_) => Ok(String::new()),
    };
    match result {
        Ok(out) => {
            emit(&out);
            if unreadable {
                Outcome::Refused
            } else {
                Outcome::Ok
            }
        }
        Err(Failure::Daemon { code, message }) => {
            if cli.json {
                let e = json!({ "error": { "code": code, "message": message } });
                emit(&format!("{e}\n"));
            }
            eprintln!("shipote: {message}");
            Outcome::Refused
        }
        Err(Failure::Transport(e)) => {
            let why = s.explain(&e).await;
            could_not_ask(&why, &target, &e)
        }
        Err(Failure::Input(message)) => {
            eprintln!("shipote: {message}");
            Outcome::CouldNotAsk
        }
        Err(Failure::Status(code)) => Outcome::Exit(code),
        Err(Failure::Unexpected(r)) => {
            eprintln!(
                "shipote: the daemon sent an unexpected answer ({r:?}); is it another version?"
            );
            Outcome::CouldNotAsk
        }
    }
}

/// The host of `--context NAME`, else of the context in use (none: this
/// host's daemon).
fn chosen_context(cli: &Cli) -> Result<Option<String>, String> {
    let all = if cli.context.is_empty() {
        context::Contexts::load_for_default()?
    } else {
        context::Contexts::load()?
    };
    match cli.context.first().or(all.current.as_ref()) {
        Some(name) => all.host_of(name),
        None => Ok(None),
    }
}

/// A read-only command asked of several contexts at once, merged.
fn many_hosts(cli: &Cli) -> Outcome {
    let read_only = matches!(
        cli.command,
        Command::Ws(ws::WsCommand::Ls { .. })
            | Command::Ws(ws::WsCommand::Stats)
            | Command::Ps { .. }
            | Command::Flow(flow::FlowCommand::Ls)
            | Command::Health
    );
    if !read_only {
        eprintln!("shipote: several contexts at once are for ws ls, ps, ws stats, flow ls and health; give one --context for anything else");
        return Outcome::CouldNotAsk;
    }
    let names = if cli.all_contexts {
        match context::Contexts::load() {
            Ok(all) => std::iter::once(context::DEFAULT.to_owned())
                .chain(all.contexts.into_keys())
                .collect(),
            Err(message) => {
                eprintln!("shipote: {message}");
                return Outcome::CouldNotAsk;
            }
        }
    } else {
        cli.context.clone()
    };
    // The same command line, without the context options.
    let mut args = Vec::new();
    let mut skip = false;
    for a in std::env::args().skip(1) {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a == "--context" {
            skip = true;
        } else if !a.starts_with("--context=") && a != "--all-contexts" {
            args.push(a);
        }
    }
    match context::ask_all(&names, &args) {
        Ok(answers) => {
            emit(&context::merge(&answers, cli.json));
            let failed = answers.iter().filter(|a| a.code != 0).count();
            match failed {
                0 => Outcome::Ok,
                n if n == answers.len() => Outcome::CouldNotAsk,
                _ => Outcome::Refused,
            }
        }
        Err(message) => {
            eprintln!("shipote: {message}");
            Outcome::CouldNotAsk
        }
    }
}

fn could_not_ask(why: &str, target: &remote::Target, e: &ClientError) -> Outcome {
    match target {
        remote::Target::Local(socket) => {
            eprintln!(
                "shipote: cannot reach shipoted at {}: {}",
                socket.display(),
                root_cause(e)
            );
            if matches!(e, ClientError::Connect { .. }) {
                eprintln!("hint: start it with `systemctl --user start shipote`, or run `shipoted` in another terminal");
            }
        }
        remote::Target::Ssh(_) => eprintln!("shipote: cannot reach shipoted on {why}"),
    }
    Outcome::CouldNotAsk
}

fn root_cause(e: &ClientError) -> String {
    match e {
        ClientError::Connect { source, .. } => source.to_string(),
        ClientError::Frame(f) => f.to_string(),
    }
}

fn ping(json: bool, socket: &str, elapsed: std::time::Duration) -> String {
    let ms = elapsed.as_secs_f64() * 1000.0;
    if json {
        return format!(
            "{}\n",
            json!({ "pong": true, "socket": socket, "round_trip_ms": ms })
        );
    }
    format!("pong from {socket} in {ms:.2} ms\n")
}

fn health(json: bool, r: Response) -> String {
    let Response::Health {
        version,
        uptime_ms,
        alive_workspaces,
        alive_commands,
        alive_pipelines,
        active_flows,
        dirty,
    } = r
    else {
        unreachable!("caller matched Health")
    };
    if json {
        return format!(
            "{}\n",
            json!({
                "version": version, "uptime_ms": uptime_ms, "alive_workspaces": alive_workspaces,
                "alive_commands": alive_commands, "alive_pipelines": alive_pipelines,
                "active_flows": active_flows, "dirty": dirty,
            })
        );
    }
    let mut t = Table::new(["", ""]);
    t.row(["version", &version]);
    t.row(["uptime", &human_duration(uptime_ms)]);
    t.row(["workspaces", &alive_workspaces.to_string()]);
    t.row(["commands", &alive_commands.to_string()]);
    t.row(["pipelines", &alive_pipelines.to_string()]);
    t.row(["flows", &active_flows.to_string()]);
    t.row([
        "state",
        if dirty {
            "changed, not yet saved"
        } else {
            "saved"
        },
    ]);
    t.render_plain()
}

fn caps(json: bool, r: Response) -> String {
    let Response::Capabilities {
        kernel_version: (ma, mi, pa),
        user_ns,
        cgroup_v2,
        cgroup_delegated,
        has_cap_sys_admin,
        cgroup_path,
        cgroup_controllers,
        backend,
        backend_reason,
        systemd_version,
    } = r
    else {
        unreachable!("caller matched Capabilities")
    };
    if json {
        return format!(
            "{}\n",
            json!({
                "kernel_version": format!("{ma}.{mi}.{pa}"), "user_ns": user_ns,
                "cgroup_v2": cgroup_v2, "cgroup_delegated": cgroup_delegated,
                "has_cap_sys_admin": has_cap_sys_admin, "cgroup_path": cgroup_path,
                "cgroup_controllers": cgroup_controllers, "backend": backend,
                "backend_reason": backend_reason, "systemd_version": systemd_version,
            })
        );
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let controllers = if cgroup_controllers.is_empty() {
        "none".to_owned()
    } else {
        cgroup_controllers.join(" ")
    };
    let mut t = Table::new(["", ""]);
    t.row(["kernel", &format!("{ma}.{mi}.{pa}")]);
    t.row(["user namespaces", &user_ns]);
    t.row(["cgroup v2", &cgroup_v2]);
    t.row(["own cgroup", cgroup_path.as_deref().unwrap_or("-")]);
    t.row(["cgroup writable", yes_no(cgroup_delegated)]);
    t.row(["controllers", &controllers]);
    t.row(["CAP_SYS_ADMIN", yes_no(has_cap_sys_admin)]);
    t.row(["backend", &format!("{backend} ({backend_reason})")]);
    t.row([
        "systemd",
        systemd_version.as_deref().unwrap_or("not reachable"),
    ]);
    t.render_plain()
}
