//! `shipote flow ls|top|cat`: the tapped edges' flow sockets, their live
//! throughput, and a subscriber that writes a flow to stdout.

use super::render::{human_bytes, Table};
use super::{Failure, Session};
use serde_json::json;
use shipote_protocol::{FlowThroughputInfo, Request, Response};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `shipote flow ...`
#[derive(Debug, clap::Subcommand)]
pub enum FlowCommand {
    /// List tapped pipelines and their flow sockets.
    Ls,
    /// Show each flow's throughput, refreshing.
    Top {
        /// Time between refreshes, e.g. 1s, 500ms.
        #[arg(long, default_value = "1s", value_parser = super::units::parse_duration_ms, value_name = "DURATION")]
        interval: u64,
        /// Print one sample and exit.
        #[arg(long)]
        once: bool,
    },
    /// Subscribe to a flow socket and write the stream to stdout. Joining a
    /// text flow mid-line, it starts at the next line; binary flows byte for
    /// byte from the moment of joining.
    Cat {
        /// The flow socket (see shipote flow ls).
        socket: PathBuf,
    },
}

/// `flow cat`: needs no daemon; ends when the flow does.
pub fn cat(target: &super::remote::Target, socket: &Path) -> Result<(), String> {
    if let super::remote::Target::Ssh(host) = target {
        // The far side's flow socket, through the same bridge as requests.
        let status = super::remote::ssh_command(host, Some(socket))
            .stdin(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("cannot run ssh to reach {}: {e}", host.url))?;
        return if status.success() {
            Ok(())
        } else {
            Err(format!(
                "cannot subscribe to {} on {} (ssh exit {}); list the live flows with shipote flow ls",
                socket.display(),
                host.url,
                status.code().unwrap_or(-1)
            ))
        };
    }
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot subscribe to {}: {e}; list the live flows with shipote flow ls",
            socket.display()
        )
    })?;
    let mut out = std::io::stdout().lock();
    match std::io::copy(&mut s, &mut out) {
        Ok(_) => Ok(()),
        // The reader went away (e.g. `| head`): done.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("reading {}: {e}", socket.display())),
    }
}

/// Each flow socket's edge (`gen → map`) and pipeline label, from the
/// running pipelines.
async fn edge_names(
    s: &mut Session,
) -> Result<std::collections::HashMap<PathBuf, (String, String)>, Failure> {
    let mut names = std::collections::HashMap::new();
    for p in super::pipeline::running(s).await? {
        for t in &p.taps {
            if let Some(socket) = &t.socket {
                names.insert(socket.clone(), (p.label.clone(), t.name()));
            }
        }
    }
    Ok(names)
}

fn rate(bytes_per_sec: f64) -> String {
    format!("{}/s", human_bytes(bytes_per_sec.max(0.0) as u64))
}

type Names = std::collections::HashMap<PathBuf, (String, String)>;

/// The edge's name, or its socket's when its pipeline is gone.
fn edge_of<'a>(names: &'a Names, socket: &'a Path) -> (&'a str, String) {
    match names.get(socket) {
        Some((pipeline, edge)) => (pipeline, edge.clone()),
        None => ("-", socket.display().to_string()),
    }
}

fn table(items: &[FlowThroughputInfo], names: &Names) -> String {
    if items.is_empty() {
        return "no live flows; run a pipeline with --tap\n".into();
    }
    let mut t = Table::new(["PIPELINE", "EDGE", "RATE", "TOTAL", "SUBSCRIBERS", "LOST"]);
    for i in items {
        let (pipeline, edge) = edge_of(names, &i.socket);
        t.row([
            pipeline,
            &edge,
            &rate(i.bytes_per_sec),
            &human_bytes(i.bytes_total),
            &i.subscribers.to_string(),
            &human_bytes(i.dropped_bytes),
        ]);
    }
    t.render()
}

/// Runs `shipote flow ls|top` (cat is run before connecting).
pub async fn run(s: &mut Session, c: FlowCommand) -> Result<String, Failure> {
    match c {
        FlowCommand::Ls => match s.call(&Request::FlowList).await? {
            Response::FlowList { items } => {
                let names = edge_names(s).await?;
                if s.json {
                    let v: Vec<_> = items
                        .iter()
                        .flat_map(|i| {
                            i.sockets.iter().map(|socket| {
                                let (label, edge) = edge_of(&names, socket);
                                json!({ "pipeline": i.pipeline.to_string(), "label": label,
                                            "edge": edge, "socket": socket })
                            })
                        })
                        .collect();
                    return Ok(format!("{}\n", json!(v)));
                }
                if items.is_empty() {
                    return Ok("no live flows; run a pipeline with --tap\n".into());
                }
                let mut t = Table::new(["PIPELINE", "EDGE", "SOCKET"]);
                for i in &items {
                    for socket in &i.sockets {
                        let (label, edge) = edge_of(&names, socket);
                        t.row([label, &edge, &socket.display().to_string()]);
                    }
                }
                Ok(t.render())
            }
            other => Err(Failure::Unexpected(Box::new(other))),
        },
        FlowCommand::Top { interval, once } => {
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
            // The first answer's rates are averages since each flow began.
            loop {
                let items = match s.call(&Request::FlowThroughput).await? {
                    Response::FlowThroughput { items } => items,
                    other => return Err(Failure::Unexpected(Box::new(other))),
                };
                let names = edge_names(s).await?;
                let text = if s.json {
                    let v: Vec<_> = items
                        .iter()
                        .map(|i| {
                            let (label, edge) = edge_of(&names, &i.socket);
                            json!({ "pipeline": label, "edge": edge, "socket": i.socket, "bytes_total": i.bytes_total,
                                    "bytes_per_sec": i.bytes_per_sec.round(), "subscribers": i.subscribers,
                                    "dropped_bytes": i.dropped_bytes })
                        })
                        .collect();
                    format!("{}\n", json!(v))
                } else {
                    table(&items, &names)
                };
                if once {
                    return Ok(text);
                }
                let mut out = std::io::stdout().lock();
                let clear = if tty && !s.json { "\x1b[H\x1b[2J" } else { "" };
                if write!(out, "{clear}{text}")
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return Ok(String::new());
                }
                drop(out);
                tokio::time::sleep(Duration::from_millis(interval.max(100))).await;
            }
        }
        FlowCommand::Cat { .. } => Ok(String::new()),
    }
}
