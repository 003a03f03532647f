//! Named contexts, in the docker/podman manner: `shipote context add NAME
//! URL`, `ls`, `use`, `rm`, kept in `$XDG_CONFIG_HOME/shipote/contexts.toml`
//! (else `~/.config/shipote/contexts.toml`); `--context NAME` (or
//! SHIPOTE_CONTEXT) picks one for a command, `context use` for every command
//! after. `default` is this host's own daemon.
//!
//! Several at once: `--context a --context b` or `--all-contexts` on the
//! read-only commands (`ws ls`, `ps`, `ws stats`, `flow ls`, `health`) asks
//! every host in parallel and merges the tables under a HOST column; a host
//! that fails is reported on its own line.

use super::render::Table;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The name of this host's own daemon.
pub const DEFAULT: &str = "default";

/// `shipote context ...`
#[derive(Debug, clap::Subcommand)]
pub enum ContextCommand {
    /// Add (or replace) a context: a name for another host's daemon.
    Add {
        /// 1-64 characters of letters, digits, '_', '.', '-'.
        name: String,
        /// ssh://[USER@]HOST[:PORT][/SOCKET]
        url: String,
    },
    /// List the contexts; the one in use is marked with *.
    Ls,
    /// Use this context for every command from now on (`default`: this host).
    Use {
        /// A context's name, or `default`.
        name: String,
    },
    /// Remove a context.
    Rm {
        /// Its name.
        name: String,
    },
}

/// The contexts file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    /// The context in use (none: `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Name -> its host.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One context.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// ssh://[USER@]HOST[:PORT][/SOCKET]
    pub host: String,
}

/// Where the contexts live.
pub fn path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("shipote/contexts.toml")
}

impl Contexts {
    /// Reads the file; none yet is no context.
    pub fn load() -> Result<Self, String> {
        Self::read(false)
    }

    /// As [`Contexts::load`], for a command that named no context: a file
    /// this user cannot even reach (another user's HOME, as under `setpriv`
    /// or `sudo -u` without -H) is no context either. A file that is there
    /// but unreadable as TOML is still an error: it may name the host in use.
    pub fn load_for_default() -> Result<Self, String> {
        Self::read(true)
    }

    fn read(lenient: bool) -> Result<Self, String> {
        let p = path();
        match std::fs::read_to_string(&p) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| format!("{}: {e}; fix or remove the file", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) if lenient && e.kind() == std::io::ErrorKind::PermissionDenied => {
                Ok(Self::default())
            }
            Err(e) => Err(format!("cannot read {}: {e}", p.display())),
        }
    }

    fn save(&self) -> Result<(), String> {
        let p = path();
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        // Written whole, then renamed: a reader never sees half a file.
        let tmp = p.with_extension("toml.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    }

    /// The host URL of `name` (`default`: none, this host).
    pub fn host_of(&self, name: &str) -> Result<Option<String>, String> {
        if name == DEFAULT {
            return Ok(None);
        }
        self.contexts
            .get(name)
            .map(|c| Some(c.host.clone()))
            .ok_or_else(|| {
                format!("no context named {name:?}; see shipote context ls, or add it with shipote context add {name} ssh://HOST")
            })
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Runs `shipote context ...` (no daemon involved).
pub fn run(c: &ContextCommand, json: bool) -> Result<String, String> {
    let mut all = Contexts::load()?;
    match c {
        ContextCommand::Add { name, url } => {
            if !valid_name(name) || name == DEFAULT {
                return Err(format!(
                    "{name:?} cannot name a context: use 1-64 letters, digits, '_', '.', '-' (not `default`)"
                ));
            }
            // Refused now rather than at the first use.
            super::remote::Target::new(Some(url), PathBuf::new())?;
            all.contexts
                .insert(name.clone(), Context { host: url.clone() });
            all.save()?;
            Ok(format!("added {name} ({url}); use it with shipote context use {name}, or --context {name}\n"))
        }
        ContextCommand::Use { name } => {
            all.host_of(name)?;
            all.current = (name != DEFAULT).then(|| name.clone());
            all.save()?;
            Ok(format!("now using {name}\n"))
        }
        ContextCommand::Rm { name } => {
            if all.contexts.remove(name).is_none() {
                return Err(format!("no context named {name:?}; see shipote context ls"));
            }
            if all.current.as_deref() == Some(name) {
                all.current = None;
            }
            all.save()?;
            Ok(format!("removed {name}\n"))
        }
        ContextCommand::Ls => {
            let current = all.current.clone().unwrap_or_else(|| DEFAULT.into());
            if json {
                let mut v = vec![
                    serde_json::json!({ "name": DEFAULT, "host": null, "current": current == DEFAULT }),
                ];
                for (n, c) in &all.contexts {
                    v.push(
                        serde_json::json!({ "name": n, "host": c.host, "current": *n == current }),
                    );
                }
                return Ok(format!("{}\n", serde_json::Value::Array(v)));
            }
            let mut t = Table::new(["", "NAME", "HOST"]);
            let mark = |n: &str| if n == current { "*" } else { "" };
            t.row([mark(DEFAULT), DEFAULT, "this host's daemon"]);
            for (n, c) in &all.contexts {
                t.row([mark(n), n, &c.host]);
            }
            Ok(t.render())
        }
    }
}

/// Splits a rendered table line into its cells (columns are set apart by
/// two spaces or more; a cell holds single spaces at most).
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What one host answered: its output, or why it did not.
pub struct HostAnswer {
    /// The context's name.
    pub host: String,
    /// Exit code of the command for that host.
    pub code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs this CLI once per context, in parallel, with `args` (the command
/// line without the context options).
pub fn ask_all(names: &[String], args: &[String]) -> Result<Vec<HostAnswer>, String> {
    let all = Contexts::load()?;
    let me = std::env::current_exe().map_err(|e| format!("cannot find shipote itself: {e}"))?;
    let mut running = Vec::with_capacity(names.len());
    for name in names {
        let mut cmd = std::process::Command::new(&me);
        match all.host_of(name)? {
            Some(url) => cmd.args(["--host", &url]),
            // This host's daemon, whatever context is in use.
            None => cmd.env_remove("SHIPOTE_HOST").args(["--context", DEFAULT]),
        };
        cmd.env_remove("SHIPOTE_CONTEXT")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run shipote for {name}: {e}"))?;
        running.push((name.clone(), child));
    }
    Ok(running
        .into_iter()
        .map(|(host, child)| match child.wait_with_output() {
            Ok(o) => HostAnswer {
                host,
                code: o.status.code().unwrap_or(2),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            },
            Err(e) => HostAnswer {
                host,
                code: 2,
                stdout: String::new(),
                stderr: e.to_string(),
            },
        })
        .collect())
}

/// One table of every host's answer, under a HOST column; a host that
/// failed gets one line saying why. With `json`, an object per host.
pub fn merge(answers: &[HostAnswer], json: bool) -> String {
    if json {
        let v: Vec<serde_json::Value> = answers
            .iter()
            .map(|a| {
                if a.code == 0 {
                    let out = serde_json::from_str::<serde_json::Value>(&a.stdout)
                        .unwrap_or_else(|_| serde_json::Value::String(a.stdout.clone()));
                    serde_json::json!({ "host": a.host, "result": out })
                } else {
                    serde_json::json!({ "host": a.host, "error": last_line(&a.stderr) })
                }
            })
            .collect();
        return format!("{}\n", serde_json::Value::Array(v));
    }
    let header = answers
        .iter()
        .filter(|a| a.code == 0)
        .find_map(|a| a.stdout.lines().next().map(cells));
    let mut head = vec!["HOST".to_owned()];
    head.extend(header.clone().unwrap_or_default());
    let mut t = Table::with_header(&head.iter().map(String::as_str).collect::<Vec<_>>());
    for a in answers {
        if a.code != 0 {
            t.push(vec![
                a.host.clone(),
                format!("error: {}", last_line(&a.stderr)),
            ]);
            continue;
        }
        let mut lines = a.stdout.lines();
        // A table repeats its header; a message (no rows) is one line.
        let first = lines.next().unwrap_or("");
        if header.as_ref().is_some_and(|h| *h == cells(first)) {
            for l in lines.filter(|l| !l.trim().is_empty()) {
                let mut row = vec![a.host.clone()];
                row.extend(cells(l));
                t.push(row);
            }
        } else if !first.is_empty() {
            t.push(vec![a.host.clone(), first.to_owned()]);
        }
    }
    t.render()
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("hint:"))
        .unwrap_or("failed")
        .trim_start_matches("shipote: ")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_merge_under_a_host_column_and_a_failure_stays_on_its_line() {
        let ok = |host: &str, out: &str| HostAnswer {
            host: host.into(),
            code: 0,
            stdout: out.into(),
            stderr: String::new(),
        };
        let answers = [
            ok("a", "ID  LABEL  UPTIME\n01  web    2.2 s\n"),
            ok("b", "ID  LABEL  UPTIME\n02  db     9 min 57 s\n"),
            HostAnswer {
                host: "c".into(),
                code: 2,
                stdout: String::new(),
                stderr: "shipote: cannot reach shipoted on ssh://c: Connection refused\n".into(),
            },
        ];
        let t = merge(&answers, false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("HOST") && lines[0].contains("UPTIME"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("a ") && lines[1].contains("2.2 s"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("b ") && lines[2].contains("9 min 57 s"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("c ") && lines[3].contains("error: cannot reach"),
            "{t}"
        );
        let j: serde_json::Value = serde_json::from_str(&merge(&answers, true)).unwrap();
        assert_eq!(j[2]["host"], "c");
        assert!(j[2]["error"]
            .as_str()
            .unwrap()
            .contains("Connection refused"));
    }
}
