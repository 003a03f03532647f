//! `shipote pipeline ...`: pipeline files (TOML, see examples/pipelines/) and
//! the requests that run, stop, save and list pipelines.
//!
//! The file format:
//!
//! ```toml
//! workspace = "web"            # label or id; --workspace overrides it
//! label = "count"              # optional, default: the file's stem
//!
//! [[command]]
//! label = "gen"
//! exec = "seq"                 # a path, or a name looked up in PATH
//! argv = ["1", "${N}"]         # ${KEY} from --var KEY=VALUE; $${ is a literal ${
//! env = { LC_ALL = "C" }       # optional
//! cwd = "/tmp"                 # optional, default: your home
//!
//! [[edge]]
//! from = "gen"                 # LABEL or LABEL.PORT (default port: stdout)
//! to = "sum"                   # LABEL or LABEL.PORT (default port: stdin)
//! rate = "1M"                  # optional bytes per second (K, M, G suffixes)
//! ```

use super::render::Table;
use super::units::parse_size;
use super::ws::resolve;
use super::{Failure, Session};
use serde::Deserialize;
use serde_json::json;
use shipote_protocol::spec::{CommandSpec, Endpoint, FlowEdge, PipelineSpec, WorkspaceId};
use shipote_protocol::{ErrorCode, Request, Response, Ulid};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The running pipelines.
pub(super) async fn running(
    s: &mut Session,
) -> Result<Vec<shipote_protocol::PipelineInfo>, Failure> {
    match s.call(&Request::PipelineList).await? {
        Response::PipelineList { items } => Ok(items),
        other => Err(Failure::Unexpected(Box::new(other))),
    }
}

/// `shipote pipeline ...`
#[derive(Debug, clap::Subcommand)]
pub enum PipelineCommand {
    /// Start the pipeline a file describes.
    Run {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// A value for ${KEY} in the file.
        #[arg(long = "var", value_parser = parse_var, value_name = "KEY=VALUE")]
        vars: Vec<(String, String)>,
        /// Interpose a tap on every edge (discern, count, publish).
        #[arg(long)]
        tap: bool,
        /// Run it in this workspace instead of the file's.
        #[arg(long, value_name = "WS", add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
        workspace: Option<String>,
    },
    /// Stop a pipeline's processes (and their descendants).
    Stop {
        /// The pipeline's id or label (of a running one).
        #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::pipelines))]
        pipeline: String,
        /// Time between SIGTERM and SIGKILL, e.g. 2s; 0 kills at once.
        #[arg(long, value_parser = super::units::parse_duration_ms, default_value = super::units::DEFAULT_GRACE, value_name = "DURATION")]
        grace: u64,
    },
    /// Save the pipeline a file describes under a name (${KEY} kept).
    Save {
        /// 1-64 characters of letters, digits, '_', '.', '-'.
        name: String,
        /// The pipeline file (TOML).
        file: PathBuf,
        /// Save it for this workspace instead of the file's.
        #[arg(long, value_name = "WS", add = clap_complete::ArgValueCandidates::new(super::complete::workspaces))]
        workspace: Option<String>,
    },
    /// List the saved pipelines.
    Ls,
    /// List the running pipelines.
    Ps,
    /// Delete a saved pipeline.
    Rm {
        /// Its name.
        #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::saved_pipelines))]
        name: String,
    },
    /// Start a saved pipeline.
    Start {
        /// Its name.
        #[arg(add = clap_complete::ArgValueCandidates::new(super::complete::saved_pipelines))]
        name: String,
        /// A value for ${KEY}.
        #[arg(long = "var", value_parser = parse_var, value_name = "KEY=VALUE")]
        vars: Vec<(String, String)>,
        /// Interpose a tap on every edge.
        #[arg(long)]
        tap: bool,
    },
}

fn parse_var(kv: &str) -> Result<(String, String), String> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{kv:?} is not KEY=VALUE")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    workspace: Option<String>,
    label: Option<String>,
    #[serde(default)]
    command: Vec<FileCommand>,
    #[serde(default)]
    edge: Vec<FileEdge>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCommand {
    label: String,
    exec: String,
    #[serde(default)]
    argv: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    #[serde(default)]
    restart: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEdge {
    from: String,
    to: String,
    rate: Option<String>,
}

/// A pipeline file, read: its workspace (as written) and the spec.
#[derive(Debug)]
pub struct Parsed {
    /// The workspace as the file names it.
    pub workspace: Option<String>,
    /// The spec, with a placeholder workspace id.
    pub spec: PipelineSpec,
}

fn endpoint(s: &str, default_port: &str) -> Endpoint {
    match s.split_once('.') {
        Some((label, port)) => Endpoint {
            label: label.to_owned(),
            port: port.to_owned(),
        },
        None => Endpoint {
            label: s.to_owned(),
            port: default_port.to_owned(),
        },
    }
}

/// Parses a pipeline file; the message names the file and the problem.
pub fn parse(path: &Path, text: &str) -> Result<Parsed, String> {
    let f: File = toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let label = f.label.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".into())
    });
    let mut edges = Vec::with_capacity(f.edge.len());
    for e in f.edge {
        let rate = match e.rate.as_deref() {
            None => None,
            Some(r) => Some(parse_size(r).map_err(|m| {
                format!(
                    "{}: edge {} -> {}: rate {r:?}: {m}",
                    path.display(),
                    e.from,
                    e.to
                )
            })?),
        };
        edges.push(FlowEdge {
            from: endpoint(&e.from, "stdout"),
            to: endpoint(&e.to, "stdin"),
            rate_limit_bytes_per_sec: rate,
        });
    }
    Ok(Parsed {
        workspace: f.workspace,
        spec: PipelineSpec {
            workspace: WorkspaceId(Ulid::nil()),
            label,
            commands: f
                .command
                .into_iter()
                .map(|c| CommandSpec {
                    label: c.label,
                    exec: c.exec,
                    argv: c.argv,
                    env: c.env.into_iter().collect(),
                    cwd: c.cwd,
                    restart_on_failure: c.restart,
                })
                .collect(),
            edges,
        },
    })
}

async fn load(
    s: &mut Session,
    file: &Path,
    workspace: Option<String>,
) -> Result<PipelineSpec, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Input(format!("cannot read {}: {e}", file.display())))?;
    let parsed = parse(file, &text).map_err(Failure::Input)?;
    let Some(ws) = workspace.or(parsed.workspace) else {
        return Err(Failure::Input(format!(
            "{} names no workspace; add workspace = \"LABEL\" or pass --workspace",
            file.display()
        )));
    };
    let mut spec = parsed.spec;
    spec.workspace = resolve(s, &ws).await?;
    Ok(spec)
}

fn started(s: &Session, r: Response) -> Result<String, Failure> {
    let Response::PipelineStarted {
        pipeline,
        command_pids,
        edges,
    } = r
    else {
        return Err(Failure::Unexpected(Box::new(r)));
    };
    if s.json {
        let pids: BTreeMap<String, i32> = command_pids.into_iter().collect();
        return Ok(format!(
            "{}\n",
            json!({ "pipeline": pipeline.to_string(), "pids": pids, "edges": edges.len() })
        ));
    }
    let mut t = Table::new(["COMMAND", "PID"]);
    for (label, pid) in &command_pids {
        t.row([label.as_str(), &pid.to_string()]);
    }
    Ok(format!("pipeline {pipeline}\n{}", t.render()))
}

/// Runs `shipote pipeline ...`.
pub async fn run(s: &mut Session, c: PipelineCommand) -> Result<String, Failure> {
    match c {
        PipelineCommand::Run {
            file,
            vars,
            tap,
            workspace,
        } => {
            let spec = load(s, &file, workspace).await?;
            let r = s
                .call(&Request::PipelineRun {
                    spec,
                    tap,
                    vars: vars.into_iter().collect(),
                })
                .await?;
            started(s, r)
        }
        PipelineCommand::Stop { pipeline, grace } => {
            let id = match Ulid::from_string(&pipeline) {
                Ok(id) => id,
                Err(_) => {
                    let running = running(s).await?;
                    let named: Vec<_> = running.iter().filter(|p| p.label == pipeline).collect();
                    match named.as_slice() {
                        [p] => p.id,
                        [] => {
                            return Err(Failure::Daemon {
                                code: ErrorCode::NotFound,
                                message: format!(
                                    "no running pipeline with id or label {pipeline:?}; list them with shipote pipeline ps"
                                ),
                            })
                        }
                        many => {
                            let ids: Vec<String> = many.iter().map(|p| p.id.to_string()).collect();
                            return Err(Failure::Input(format!(
                                "{} running pipelines are labelled {pipeline:?}: {}; give the id of the one you mean",
                                many.len(),
                                ids.join(", ")
                            )));
                        }
                    }
                }
            };
            match s
                .call(&Request::PipelineStop {
                    pipeline: id,
                    grace_ms: grace,
                })
                .await?
            {
                Response::PipelineStopped { pipeline, reaped } => Ok(if s.json {
                    format!(
                        "{}\n",
                        json!({ "pipeline": pipeline.to_string(), "reaped": reaped })
                    )
                } else {
                    let p = if reaped == 1 { "process" } else { "processes" };
                    format!("stopped pipeline {pipeline}: {reaped} {p} ended\n")
                }),
                other => Err(Failure::Unexpected(Box::new(other))),
            }
        }
        PipelineCommand::Save {
            name,
            file,
            workspace,
        } => {
            let spec = load(s, &file, workspace).await?;
            match s.call(&Request::PipelineSave { name, spec }).await? {
                Response::PipelineSaved { name } => Ok(if s.json {
                    format!("{}\n", json!({ "saved": name }))
                } else {
                    format!("saved {name}; start it with shipote pipeline start {name}\n")
                }),
                other => Err(Failure::Unexpected(Box::new(other))),
            }
        }
        PipelineCommand::Ps => {
            let items = running(s).await?;
            if s.json {
                return Ok(format!(
                    "{}\n",
                    serde_json::to_string(&items).expect("json")
                ));
            }
            if items.is_empty() {
                return Ok(
                    "no running pipelines; start one with shipote pipeline run FILE\n".into(),
                );
            }
            let mut t = Table::new(["ID", "LABEL", "WORKSPACE", "COMMANDS", "RUNNING", "TAPS"]);
            for p in &items {
                t.row([
                    &p.id.to_string(),
                    &p.label,
                    &p.workspace.to_string(),
                    &p.commands.to_string(),
                    &p.alive.to_string(),
                    &p.taps.len().to_string(),
                ]);
            }
            Ok(t.render())
        }
        PipelineCommand::Ls => match s.call(&Request::PipelineSavedList).await? {
            Response::PipelineSavedList { names } => Ok(if s.json {
                format!("{}\n", json!(names))
            } else if names.is_empty() {
                "no saved pipelines; save one with shipote pipeline save NAME FILE\n".into()
            } else {
                names.iter().map(|n| format!("{n}\n")).collect()
            }),
            other => Err(Failure::Unexpected(Box::new(other))),
        },
        PipelineCommand::Rm { name } => match s.call(&Request::PipelineDrop { name }).await? {
            Response::PipelineDropped { name, existed } => Ok(if s.json {
                format!("{}\n", json!({ "name": name, "existed": existed }))
            } else if existed {
                format!("deleted {name}\n")
            } else {
                format!("no pipeline was saved as {name}\n")
            }),
            other => Err(Failure::Unexpected(Box::new(other))),
        },
        PipelineCommand::Start { name, vars, tap } => {
            let r = s
                .call(&Request::PipelineRunSaved {
                    name,
                    tap,
                    vars: vars.into_iter().collect(),
                })
                .await?;
            started(s, r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pipelines");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let p = parse(&e.path(), &text).unwrap_or_else(|m| panic!("{m}"));
            assert!(!p.spec.commands.is_empty(), "{}", e.path().display());
            n += 1;
        }
        assert!(n >= 2);
    }

    #[test]
    fn endpoints_default_their_ports_and_errors_name_the_file() {
        let p = parse(
            Path::new("x.toml"),
            r#"
workspace = "w"
[[command]]
label = "a"
exec = "seq"
[[command]]
label = "b"
exec = "cat"
[[edge]]
from = "a"
to = "b.extra"
rate = "1M"
"#,
        )
        .unwrap();
        assert_eq!(p.spec.label, "x");
        let e = &p.spec.edges[0];
        assert_eq!(
            (e.from.port.as_str(), e.to.port.as_str()),
            ("stdout", "extra")
        );
        assert_eq!(e.rate_limit_bytes_per_sec, Some(1 << 20));
        let m = parse(Path::new("y.toml"), "[[command]]\nlabel = \"a\"\n").unwrap_err();
        assert!(m.starts_with("y.toml") && m.contains("exec"), "{m}");
        let m = parse(Path::new("z.toml"), "bogus = 1\n").unwrap_err();
        assert!(m.contains("bogus"), "{m}");
    }
}
