//! Dynamic shell completion: workspace, command and pipeline names asked
//! from the running daemon while the user presses Tab.
//!
//! The shells' scripts (`SHIPOTE_COMPLETE=bash shipote` prints bash's; the
//! package installs them) call `shipote` back with the words typed so far;
//! clap_complete's engine then calls these functions for the arguments that
//! name something the daemon knows. Each asks once, with a short deadline:
//! no daemon, or a slow one, means no candidates, never a stuck shell.

use clap_complete::CompletionCandidate;
use shipote_protocol::client::Client;
use shipote_protocol::{Request, Response, WorkspaceId};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// How long a Tab waits for the daemon.
const DEADLINE: Duration = Duration::from_millis(500);

/// The environment variable that turns `shipote` into its own completer.
pub const ENV: &str = "SHIPOTE_COMPLETE";

/// The words typed so far (after the `--` the completion scripts pass).
fn words() -> Vec<OsString> {
    std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect()
}

/// The socket the completed command would use: `--socket` among the words,
/// else `SHIPOTE_SOCKET`, else the default.
fn socket(words: &[OsString]) -> PathBuf {
    words
        .windows(2)
        .find(|w| w[0] == "--socket")
        .map(|w| PathBuf::from(&w[1]))
        .or_else(|| std::env::var_os("SHIPOTE_SOCKET").map(PathBuf::from))
        .unwrap_or_else(shipote_protocol::default_socket_path)
}

/// Asks the daemon several things on one connection, within [`DEADLINE`].
fn ask(requests: Vec<Request>) -> Vec<Response> {
    let socket = socket(&words());
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    rt.block_on(async {
        let asked = async {
            let mut c = Client::connect(&socket).await.ok()?;
            let mut answers = Vec::with_capacity(requests.len());
            for r in &requests {
                answers.push(c.call(r).await.ok()?);
            }
            Some(answers)
        };
        tokio::time::timeout(DEADLINE, asked)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    })
}

/// Live workspaces by label (their ids too, help text: the unit).
pub fn workspaces() -> Vec<CompletionCandidate> {
    let mut out = Vec::new();
    for answer in ask(vec![Request::WorkspaceList]) {
        if let Response::WorkspaceList { items } = answer {
            for w in items {
                out.push(
                    CompletionCandidate::new(&w.label)
                        .help(Some(format!("{} commands, {}", w.commands, w.id).into())),
                );
            }
        }
    }
    out
}

/// The workspace a command argument belongs to: the word before the one
/// being completed (`shipote stop web <Tab>`).
fn workspace_word() -> Option<String> {
    let words = words();
    let before = words.len().checked_sub(2)?;
    let w = words[before].to_str()?;
    (!w.starts_with('-')).then(|| w.to_owned())
}

/// The commands of the workspace named just before: labels (once each) and
/// ids.
pub fn commands() -> Vec<CompletionCandidate> {
    let Some(name) = workspace_word() else {
        return Vec::new();
    };
    // The name may be a label or an id: the list says which.
    let lists = ask(vec![Request::WorkspaceList]);
    let Some(id) = lists.into_iter().find_map(|r| match r {
        Response::WorkspaceList { items } => items
            .into_iter()
            .find(|w| w.label == name || w.id.to_string() == name)
            .map(|w| w.id),
        _ => None,
    }) else {
        return Vec::new();
    };
    command_candidates(id)
}

fn command_candidates(workspace: WorkspaceId) -> Vec<CompletionCandidate> {
    let mut out = Vec::new();
    let mut labels = std::collections::BTreeSet::new();
    for answer in ask(vec![Request::CommandList { workspace }]) {
        if let Response::CommandList { items } = answer {
            for c in items {
                let state = if c.alive { "running" } else { "ended" };
                if labels.insert(c.label.clone()) {
                    out.push(CompletionCandidate::new(&c.label).help(Some(state.into())));
                }
                out.push(
                    CompletionCandidate::new(c.id.to_string())
                        .help(Some(format!("{} ({state})", c.label).into())),
                );
            }
        }
    }
    out
}

/// Running pipelines by label.
pub fn pipelines() -> Vec<CompletionCandidate> {
    let mut out = Vec::new();
    for answer in ask(vec![Request::PipelineList]) {
        if let Response::PipelineList { items } = answer {
            for p in items {
                out.push(CompletionCandidate::new(&p.label));
            }
        }
    }
    out
}

/// Saved pipelines by name.
pub fn saved_pipelines() -> Vec<CompletionCandidate> {
    let mut out = Vec::new();
    for answer in ask(vec![Request::PipelineSavedList]) {
        if let Response::PipelineSavedList { names } = answer {
            out.extend(names.iter().map(CompletionCandidate::new));
        }
    }
    out
}
