//! Saved pipelines: one JSON file per name in `<state dir>/pipelines/`,
//! written atomically (temporary file, fsync, rename, fsync of the directory),
//! so a crash or kill -9 during a save leaves the old version or the new one,
//! never a mix. The files have their own versioned types: the wire and the
//! disk evolve apart. Blocking: call from a blocking task.

use super::state::write_atomic;
use serde::{Deserialize, Serialize};
use shipote_protocol::spec::{CommandSpec, Endpoint, FlowEdge, PipelineSpec, WorkspaceId};
use std::path::{Path, PathBuf};

/// The directory under the state directory.
pub const DIR: &str = "pipelines";

/// Most saved pipelines.
pub const MAX_SAVED: usize = 1000;

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct SavedPipeline {
    version: u32,
    name: String,
    workspace: String,
    label: String,
    commands: Vec<SavedCommand>,
    edges: Vec<SavedEdge>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedCommand {
    label: String,
    exec: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    restart_on_failure: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedEdge {
    from: (String, String),
    to: (String, String),
    rate_limit_bytes_per_sec: Option<u64>,
}

/// Checks a name: 1-64 characters of `[A-Za-z0-9_.-]`, not starting with `.`
/// (so no path tricks: no `/`, no `..`, no hidden files).
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "pipeline name {:?} is not valid; use 1-64 characters of letters, digits, '_', '.', '-', not starting with '.'",
            name.escape_debug().to_string()
        ))
    }
}

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Stores `spec` under `name`, replacing one of the same name.
pub fn save(dir: &Path, name: &str, spec: &PipelineSpec) -> Result<(), String> {
    validate_name(name)?;
    if spec.commands.is_empty() {
        return Err("the pipeline has no commands; give at least one".into());
    }
    // A spec that could never run is not stored (issue 14: 500 commands and
    // 10,000 edges made a 1.59 MB file).
    use super::pipeline::{MAX_COMMANDS, MAX_EDGES};
    if spec.commands.len() > MAX_COMMANDS || spec.edges.len() > MAX_EDGES {
        return Err(format!(
            "the pipeline has {} commands and {} edges; at most {MAX_COMMANDS} and {MAX_EDGES} can run",
            spec.commands.len(),
            spec.edges.len()
        ));
    }
    if !file(dir, name).exists() && list(dir)?.len() >= MAX_SAVED {
        return Err(format!(
            "{MAX_SAVED} pipelines are saved already; drop some with shipote pipeline rm"
        ));
    }
    let saved = SavedPipeline {
        version: VERSION,
        name: name.to_owned(),
        workspace: spec.workspace.to_string(),
        label: spec.label.clone(),
        commands: spec
            .commands
            .iter()
            .map(|c| SavedCommand {
                label: c.label.clone(),
                exec: c.exec.clone(),
                argv: c.argv.clone(),
                env: c.env.clone(),
                cwd: c.cwd.clone(),
                restart_on_failure: c.restart_on_failure,
            })
            .collect(),
        edges: spec
            .edges
            .iter()
            .map(|e| SavedEdge {
                from: (e.from.label.clone(), e.from.port.clone()),
                to: (e.to.label.clone(), e.to.port.clone()),
                rate_limit_bytes_per_sec: e.rate_limit_bytes_per_sec,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&saved).map_err(|e| e.to_string())?;
    write_atomic(&file(dir, name), &bytes).map_err(|e| e.to_string())
}

/// The saved names, sorted.
pub fn list(dir: &Path) -> Result<Vec<String>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
            validate_name(&n).ok().map(|()| n)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Deletes `name`; whether it existed.
pub fn remove(dir: &Path, name: &str) -> Result<bool, String> {
    validate_name(name)?;
    match std::fs::remove_file(file(dir, name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot delete pipeline {name:?}: {e}")),
    }
}

/// The spec saved under `name`; `Ok(None)` when there is none.
pub fn load(dir: &Path, name: &str) -> Result<Option<PipelineSpec>, String> {
    validate_name(name)?;
    let path = file(dir, name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let s: SavedPipeline = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{} is damaged ({e}); save the pipeline again",
            path.display()
        )
    })?;
    if s.version != VERSION {
        return Err(format!(
            "{} is version {} of the format; this shipoted reads version {VERSION}",
            path.display(),
            s.version
        ));
    }
    let workspace = ulid::Ulid::from_string(&s.workspace)
        .map(WorkspaceId)
        .map_err(|e| format!("{}: bad workspace id: {e}", path.display()))?;
    Ok(Some(PipelineSpec {
        workspace,
        label: s.label,
        commands: s
            .commands
            .into_iter()
            .map(|c| CommandSpec {
                label: c.label,
                exec: c.exec,
                argv: c.argv,
                env: c.env,
                cwd: c.cwd,
                restart_on_failure: c.restart_on_failure,
            })
            .collect(),
        edges: s
            .edges
            .into_iter()
            .map(|e| FlowEdge {
                from: Endpoint {
                    label: e.from.0,
                    port: e.from.1,
                },
                to: Endpoint {
                    label: e.to.0,
                    port: e.to.1,
                },
                rate_limit_bytes_per_sec: e.rate_limit_bytes_per_sec,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PipelineSpec {
        PipelineSpec {
            workspace: WorkspaceId(ulid::Ulid::new()),
            label: "p".into(),
            commands: vec![CommandSpec {
                label: "a".into(),
                exec: "${PROG}".into(),
                argv: vec!["x".into()],
                env: vec![("K".into(), "v".into())],
                cwd: Some("/tmp".into()),
                restart_on_failure: false,
            }],
            edges: vec![FlowEdge {
                from: Endpoint {
                    label: "a".into(),
                    port: "stdout".into(),
                },
                to: Endpoint {
                    label: "a".into(),
                    port: "stdin".into(),
                },
                rate_limit_bytes_per_sec: Some(5),
            }],
        }
    }

    #[test]
    fn saved_specs_come_back_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec();
        save(dir.path(), "nightly-1.0", &s).unwrap();
        save(dir.path(), "a_first", &s).unwrap();
        assert_eq!(load(dir.path(), "nightly-1.0").unwrap(), Some(s));
        assert_eq!(list(dir.path()).unwrap(), vec!["a_first", "nightly-1.0"]);
        assert!(remove(dir.path(), "a_first").unwrap());
        assert!(!remove(dir.path(), "a_first").unwrap());
        assert_eq!(load(dir.path(), "a_first").unwrap(), None);
        // A temporary file left by a kill -9 during a save is not a pipeline.
        std::fs::write(dir.path().join("nightly-1.0.json.tmp"), b"{").unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec!["nightly-1.0"]);
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(65), "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
            assert!(save(Path::new("/nonexistent"), bad, &spec()).is_err());
        }
    }

    #[test]
    fn a_damaged_file_is_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.json"), b"{not json").unwrap();
        let e = load(dir.path(), "x").unwrap_err();
        assert!(e.contains("damaged"), "{e}");
    }
}
