//! The daemon's persisted state: which workspaces exist, so that a restarted
//! daemon re-adopts the ones kept running and stops the ones that should have
//! been reaped. Its own versioned types (JSON), not the wire's, so the disk and
//! the wire evolve apart. Written atomically: temp file, fsync, rename, fsync of
//! the directory.

use serde::{Deserialize, Serialize};
use shipote_protocol::{ExitPolicy, NetworkAccess, Permissions, QuotaEnforce, Soma, WorkspaceSpec};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Format version of the state file.
pub const STATE_VERSION: u32 = 1;

/// File name inside the state directory.
pub const STATE_FILE: &str = "workspaces.json";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Live workspaces.
    pub workspaces: Vec<SavedWorkspace>,
}

/// One workspace as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedWorkspace {
    /// ULID.
    pub id: String,
    /// Label.
    pub label: String,
    /// Unit name.
    pub unit: String,
    /// Backend that created it.
    pub backend: String,
    /// Its cgroup directory.
    pub cgroup: Option<PathBuf>,
    /// Its keeper's pid.
    pub keeper_pid: Option<u32>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
    /// `keep` or `reap`.
    pub on_exit: String,
    /// `hard` or `report-only`.
    pub quota_enforce: String,
    /// TTL in ms from creation.
    pub ttl_ms: Option<u64>,
    /// Limits asked for.
    pub mem_max_bytes: Option<u64>,
    /// Limits asked for.
    pub mem_high_bytes: Option<u64>,
    /// Limits asked for.
    pub swap_max_bytes: Option<u64>,
    /// Limits asked for.
    pub tasks_max: Option<u64>,
    /// Limits asked for.
    pub cpu_quota_percent: Option<u32>,
    /// Limits asked for.
    pub cpu_weight: Option<u32>,
    /// Limits asked for.
    pub io_weight: Option<u32>,
    /// Permissions: `full`, `loopback` or `none` (absent in files written
    /// before permissions existed: full).
    #[serde(default = "full_network")]
    pub network: String,
    /// Permissions asked for.
    #[serde(default)]
    pub read_only_root: bool,
    /// Permissions asked for.
    #[serde(default)]
    pub writable_paths: Vec<PathBuf>,
    /// Permissions asked for.
    #[serde(default)]
    pub hidden_paths: Vec<PathBuf>,
    /// Permissions asked for.
    #[serde(default)]
    pub private_tmp: bool,
    /// Permissions asked for.
    #[serde(default)]
    pub private_dev: bool,
}

impl SavedWorkspace {
    /// The spec it was created with.
    pub fn spec(&self) -> WorkspaceSpec {
        let mut spec = WorkspaceSpec::new(self.label.clone());
        spec.soma = Soma {
            mem_max_bytes: self.mem_max_bytes,
            mem_high_bytes: self.mem_high_bytes,
            swap_max_bytes: self.swap_max_bytes,
            tasks_max: self.tasks_max,
            cpu_quota_percent: self.cpu_quota_percent,
            cpu_weight: self.cpu_weight,
            io_weight: self.io_weight,
        };
        spec.ttl_ms = self.ttl_ms;
        spec.permissions = Permissions {
            network: match self.network.as_str() {
                "loopback" => NetworkAccess::Loopback,
                "none" => NetworkAccess::None,
                _ => NetworkAccess::Full,
            },
            read_only_root: self.read_only_root,
            writable_paths: self.writable_paths.clone(),
            hidden_paths: self.hidden_paths.clone(),
            private_tmp: self.private_tmp,
            private_dev: self.private_dev,
        };
        spec.on_exit = if self.on_exit == "keep" {
            ExitPolicy::Keep
        } else {
            ExitPolicy::Reap
        };
        spec.quota_enforce = if self.quota_enforce == "report-only" {
            QuotaEnforce::ReportOnly
        } else {
            QuotaEnforce::Hard
        };
        spec
    }

    /// The record of a workspace: identity and placement, plus what its spec
    /// asked for.
    pub fn new(identity: Identity, spec: &WorkspaceSpec) -> Self {
        let s = &spec.soma;
        Self {
            id: identity.id,
            label: spec.label.clone(),
            unit: identity.unit,
            backend: identity.backend,
            cgroup: identity.cgroup,
            keeper_pid: identity.keeper_pid,
            created_at_ms: identity.created_at_ms,
            on_exit: match spec.on_exit {
                ExitPolicy::Keep => "keep",
                ExitPolicy::Reap => "reap",
            }
            .into(),
            quota_enforce: match spec.quota_enforce {
                QuotaEnforce::Hard => "hard",
                QuotaEnforce::ReportOnly => "report-only",
            }
            .into(),
            ttl_ms: spec.ttl_ms,
            mem_max_bytes: s.mem_max_bytes,
            mem_high_bytes: s.mem_high_bytes,
            swap_max_bytes: s.swap_max_bytes,
            tasks_max: s.tasks_max,
            cpu_quota_percent: s.cpu_quota_percent,
            cpu_weight: s.cpu_weight,
            io_weight: s.io_weight,
            network: match spec.permissions.network {
                NetworkAccess::Full => "full",
                NetworkAccess::Loopback => "loopback",
                NetworkAccess::None => "none",
            }
            .into(),
            read_only_root: spec.permissions.read_only_root,
            writable_paths: spec.permissions.writable_paths.clone(),
            hidden_paths: spec.permissions.hidden_paths.clone(),
            private_tmp: spec.permissions.private_tmp,
            private_dev: spec.permissions.private_dev,
        }
    }
}

fn full_network() -> String {
    "full".into()
}

/// Where a workspace is and who made it: the part of its record not in its spec.
#[derive(Debug, Clone)]
pub struct Identity {
    /// ULID.
    pub id: String,
    /// Unit name.
    pub unit: String,
    /// Backend that created it.
    pub backend: String,
    /// Its cgroup directory.
    pub cgroup: Option<PathBuf>,
    /// Its keeper's pid.
    pub keeper_pid: Option<u32>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File system failure.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state file we understand.
    #[error("{} is not a valid state file ({why}); move it away to start empty", path.display())]
    Corrupt {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Serializes the state for [`write_atomic`].
pub fn encode(workspaces: Vec<SavedWorkspace>) -> Vec<u8> {
    let file = StateFile {
        version: STATE_VERSION,
        workspaces,
    };
    serde_json::to_vec_pretty(&file).expect("state serializes")
}

/// Reads the state file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<Vec<SavedWorkspace>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Io {
                what: "read",
                path: path.to_owned(),
                source,
            })
        }
    };
    let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if file.version != STATE_VERSION {
        return Err(StateError::Corrupt {
            path: path.to_owned(),
            why: format!(
                "version {} (this daemon writes {STATE_VERSION})",
                file.version
            ),
        });
    }
    Ok(file.workspaces)
}

/// Replaces `path` with `bytes` atomically: a crash leaves the old or the new
/// file, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io = |what, p: &Path| {
        let p = p.to_owned();
        move |source| StateError::Io {
            what,
            path: p,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("rename into", path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> SavedWorkspace {
        let mut spec = WorkspaceSpec::new("web");
        spec.on_exit = ExitPolicy::Keep;
        spec.soma.mem_max_bytes = Some(1 << 30);
        spec.ttl_ms = Some(60_000);
        spec.permissions.network = NetworkAccess::Loopback;
        spec.permissions.read_only_root = true;
        spec.permissions.writable_paths = vec!["/srv/data".into()];
        spec.permissions.hidden_paths = vec!["/etc/ssh".into()];
        spec.permissions.private_dev = true;
        let identity = Identity {
            id: "01J0000000000000000000000A".into(),
            unit: "shipote-web-01J0000000000000000000000A.scope".into(),
            backend: "systemd".into(),
            cgroup: Some("/sys/fs/cgroup/x".into()),
            keeper_pid: Some(42),
            created_at_ms: 1,
        };
        SavedWorkspace::new(identity, &spec)
    }

    #[test]
    fn roundtrip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/workspaces.json");
        assert!(
            load(&path).unwrap().is_empty(),
            "missing file is empty state"
        );
        write_atomic(&path, &encode(vec![saved()])).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back, vec![saved()]);
        let spec = back[0].spec();
        assert_eq!(spec.on_exit, ExitPolicy::Keep);
        assert_eq!(spec.soma.mem_max_bytes, Some(1 << 30));
        assert_eq!(spec.ttl_ms, Some(60_000));
        assert_eq!(spec.permissions.network, NetworkAccess::Loopback);
        assert_eq!(
            spec.permissions.writable_paths,
            vec![PathBuf::from("/srv/data")]
        );
        assert_eq!(
            spec.permissions.hidden_paths,
            vec![PathBuf::from("/etc/ssh")]
        );
        assert!(spec.permissions.read_only_root && spec.permissions.private_dev);
        assert!(!spec.permissions.private_tmp);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn files_from_before_permissions_load_with_none() {
        let mut v = serde_json::to_value(saved()).unwrap();
        for k in [
            "network",
            "read_only_root",
            "writable_paths",
            "hidden_paths",
            "private_tmp",
            "private_dev",
        ] {
            v.as_object_mut().unwrap().remove(k);
        }
        let old: SavedWorkspace = serde_json::from_value(v).unwrap();
        assert_eq!(old.spec().permissions, Permissions::default());
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("workspaces.json");
        std::fs::write(&path, b"{\"version\": 1, \"workspa").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("workspaces.json") && e.contains("move it away"),
            "{e}"
        );
        std::fs::write(&path, b"{\"version\": 99, \"workspaces\": []}").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("version 99"));
    }
}
