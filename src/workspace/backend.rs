//! How a workspace becomes real. `Systemd`: a transient scope in shipote.slice
//! with a keeper process in a leaf sub-cgroup. `Cgroup`: a sub-cgroup of a
//! delegated cgroup v2 subtree (hosts without a user manager). `ProcessGroup`:
//! nothing to create; processes are tracked by process group.

use super::{limit_requests, unenforceable};
use crate::cgroup::{Cgroup, CgroupError};
use crate::process;
use crate::systemd::scopes::{ScopeSpec, SystemdError, SystemdScopes};
use nix::sys::signal::Signal;
use shipote_protocol::{QuotaEnforce, WorkspaceSpec};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The slice that holds workspace scopes (units/shipote.slice).
pub const SLICE: &str = "shipote.slice";

/// The leaf sub-cgroup the keeper lives in.
pub const KEEPER_CGROUP: &str = "keeper";

/// Where a sandboxed workspace's init is born (see `process::init`): its
/// keeper's leaf, when it has a keeper, so the init outlives a daemon's
/// restart as the workspace's commands do and goes with its stop.
pub fn init_home(created: &Created) -> Option<std::path::PathBuf> {
    created.keeper_pid?;
    Some(
        created
            .cgroup
            .as_ref()?
            .child(KEEPER_CGROUP)
            .dir()
            .to_owned(),
    )
}

/// Which mechanism makes workspaces.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Transient scopes through the user manager.
    Systemd {
        /// The manager.
        scopes: SystemdScopes,
        /// The cgroup2 mount point.
        mount: PathBuf,
        /// A keeper started ahead of time, so creating a workspace does not
        /// wait for a fork and exec: its pid and socket.
        spare: Arc<Mutex<Option<(u32, PathBuf)>>>,
    },
    /// Sub-cgroups of this directory.
    Cgroup {
        /// The parent of every workspace's cgroup.
        root: Cgroup,
    },
    /// No cgroups at all.
    ProcessGroup,
}

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// systemd refused or failed.
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    /// A cgroup file operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The keeper process could not be started.
    #[error("cannot start the workspace's keeper process {}: {source}", program.display())]
    Keeper {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The scope's cgroup could not be found.
    #[error("cannot find the cgroup of {unit}: {why}")]
    NoCgroup {
        /// The unit.
        unit: String,
        /// What was missing.
        why: String,
    },
}

/// How to start a workspace's keeper: the program (`PROGRAM --keeper NAME`,
/// shipoted itself) and the directory of the keepers' sockets.
#[derive(Debug, Clone)]
pub struct KeeperProgram {
    /// The program.
    pub program: PathBuf,
    /// Where keepers listen (`crate::keeper::sockets_dir`).
    pub sockets: PathBuf,
}

impl KeeperProgram {
    /// Where the keeper of `unit` listens.
    pub fn socket(&self, unit: &str) -> PathBuf {
        self.sockets.join(format!("{unit}.sock"))
    }

    /// Starts a keeper named `name` listening at `socket`.
    fn start(&self, name: &str, socket: &Path) -> Result<u32, BackendError> {
        let err = |source| BackendError::Keeper {
            program: self.program.clone(),
            source,
        };
        let listener = crate::keeper::bind(socket).map_err(err)?;
        process::spawn_keeper(&self.program, name, &listener).map_err(err)
    }
}

/// Connects to a workspace's keeper (blocking).
fn link(
    keeper: &KeeperProgram,
    unit: &str,
) -> Result<Arc<crate::keeper::link::KeeperLink>, BackendError> {
    crate::keeper::link::KeeperLink::connect(&keeper.socket(unit))
        .map(|(link, _)| link)
        .map_err(|source| BackendError::Keeper {
            program: keeper.program.clone(),
            source,
        })
}

/// A created workspace, as the backend left it.
#[derive(Debug, Clone)]
pub struct Created {
    /// Its cgroup, when the backend has one.
    pub cgroup: Option<Cgroup>,
    /// Its keeper process, when it has one.
    pub keeper_pid: Option<u32>,
    /// This daemon's connection to its keeper.
    pub link: Option<Arc<crate::keeper::link::KeeperLink>>,
    /// Every requested limit that is not enforced.
    pub warnings: Vec<String>,
}

impl Backend {
    /// The systemd backend.
    pub fn systemd(scopes: SystemdScopes, mount: PathBuf) -> Self {
        Backend::Systemd {
            scopes,
            mount,
            spare: Arc::default(),
        }
    }

    /// Kills the keeper started ahead of time, if any (at daemon shutdown).
    pub fn discard_spare(&self) {
        if let Backend::Systemd { spare, .. } = self {
            if let Some((pid, socket)) = spare.lock().expect("spare lock").take() {
                process::signal(pid, Signal::SIGKILL);
                let _ = std::fs::remove_file(socket);
            }
        }
    }

    /// `systemd`, `cgroup` or `process-group`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Systemd { .. } => "systemd",
            Backend::Cgroup { .. } => "cgroup",
            Backend::ProcessGroup => "process-group",
        }
    }

    /// The user manager's version, for the systemd backend.
    pub fn systemd_version(&self) -> Option<String> {
        match self {
            Backend::Systemd { scopes, .. } => Some(scopes.version().to_owned()),
            _ => None,
        }
    }

    /// Creates a workspace's scope or cgroup, with its keeper (but for
    /// process groups) started and linked.
    pub async fn create(
        &self,
        unit: &str,
        spec: &WorkspaceSpec,
        keeper: &KeeperProgram,
    ) -> Result<Created, BackendError> {
        match self {
            Backend::Systemd {
                scopes,
                mount,
                spare,
            } => {
                let pid = take_spare(spare, &keeper.socket(unit));
                let created = create_scope(scopes, mount, unit, spec, keeper, pid).await;
                refill_spare(spare.clone(), keeper.clone());
                created
            }
            Backend::Cgroup { root } => {
                let cg = root.child(unit);
                let root = root.clone();
                let spec = spec.clone();
                let cg2 = cg.clone();
                let keeper = keeper.clone();
                let unit = unit.to_owned();
                tokio::task::spawn_blocking(move || -> Result<Created, BackendError> {
                    root.create()?;
                    cg2.create()?;
                    let warnings = fallback_warnings(&spec, &cg2.controllers());
                    // A cgroup needs no member, so only a kept workspace gets a
                    // keeper (what its commands outlive the daemon through),
                    // in a leaf of its own, like in a scope.
                    if spec.on_exit != shipote_protocol::ExitPolicy::Keep {
                        return Ok(Created {
                            cgroup: Some(cg2),
                            keeper_pid: None,
                            link: None,
                            warnings,
                        });
                    }
                    let leaf = cg2.child(KEEPER_CGROUP);
                    let placed = leaf.create().map_err(BackendError::from).and_then(|()| {
                        let pid = keeper.start(&unit, &keeper.socket(&unit))?;
                        if let Err(e) = leaf.add_pid(pid) {
                            process::signal(pid, Signal::SIGKILL);
                            return Err(e.into());
                        }
                        Ok((pid, link(&keeper, &unit)?))
                    });
                    match placed {
                        Ok((pid, link)) => Ok(Created {
                            cgroup: Some(cg2),
                            keeper_pid: Some(pid),
                            link: Some(link),
                            warnings,
                        }),
                        Err(e) => {
                            let _ = crate::process::end::end(
                                &[crate::process::end::Target::Tree(cg2.clone())],
                                Duration::ZERO,
                                None,
                            );
                            let _ = cg2.remove();
                            Err(e)
                        }
                    }
                })
                .await
                .expect("cgroup creation does not panic")
            }
            Backend::ProcessGroup => Ok(Created {
                cgroup: None,
                keeper_pid: None,
                link: None,
                warnings: fallback_warnings(spec, &[]),
            }),
        }
    }

    /// Stops a workspace: SIGTERM to every process, up to `grace` for them to
    /// leave, then cgroup.kill; the scope or cgroup is gone when this returns.
    /// Returns how many processes (keeper excluded) were ended.
    pub async fn stop(
        &self,
        unit: &str,
        cgroup: Option<&Cgroup>,
        keeper: Option<u32>,
        grace: Duration,
        groups: &[u32],
    ) -> Result<u32, BackendError> {
        use crate::process::end::{end, Target};
        let targets: Vec<Target> = match cgroup {
            Some(cg) => vec![Target::Tree(cg.clone())],
            // Without a cgroup, each command is the leader of its own session
            // and process group: signal the groups.
            None => groups.iter().map(|g| Target::Group(*g as i32)).collect(),
        };
        let reaped = tokio::task::spawn_blocking(move || end(&targets, grace, keeper))
            .await
            .expect("ending processes does not panic");
        match self {
            Backend::Systemd { scopes, .. } => scopes.stop_unit(unit).await?,
            Backend::Cgroup { .. } => {
                if let Some(cg) = cgroup.cloned() {
                    tokio::task::spawn_blocking(move || cg.remove())
                        .await
                        .expect("rmdir does not panic")?;
                }
            }
            Backend::ProcessGroup => {}
        }
        Ok(reaped)
    }

    /// Workspace scopes that are running but that the state file does not know
    /// (it was lost): unit name, cgroup and keeper, systemd backend only.
    pub async fn running_scopes(&self) -> Vec<(String, Cgroup, Option<u32>)> {
        if let Backend::Cgroup { root } = self {
            // Every workspace cgroup under the root, populated or not (a
            // crash between its mkdir and the state write leaves an empty one).
            let mut found: Vec<(String, Cgroup, Option<u32>)> = std::fs::read_dir(root.dir())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("shipote-") && n.ends_with(".scope"))
                .map(|n| {
                    let cg = root.child(&n);
                    (n, cg, None)
                })
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            return found;
        }
        let Backend::Systemd { scopes, mount, .. } = self else {
            return Vec::new();
        };
        match scopes.active_units("shipote-*.scope").await {
            Ok(units) => units
                .into_iter()
                .map(|(name, path)| {
                    let cg = Cgroup::at(mount.join(path.trim_start_matches('/')));
                    let keeper = cg
                        .child(KEEPER_CGROUP)
                        .read("cgroup.procs")
                        .ok()
                        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
                    (name, cg, keeper)
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list running workspace scopes");
                Vec::new()
            }
        }
    }

    /// Whether a workspace created earlier (by this or a previous daemon) still
    /// exists.
    pub async fn exists(&self, unit: &str, cgroup: Option<&Cgroup>) -> bool {
        match self {
            Backend::Systemd { scopes, .. } => {
                scopes.unit_exists(unit).await.unwrap_or(false)
                    && cgroup.is_some_and(|c| c.exists())
            }
            Backend::Cgroup { .. } => cgroup.is_some_and(|c| c.exists()),
            Backend::ProcessGroup => false,
        }
    }
}

fn fallback_warnings(spec: &WorkspaceSpec, controllers: &[String]) -> Vec<String> {
    let why =
        "is not available here (no systemd user manager, and this cgroup v2 subtree lacks it)";
    let mut w = unenforceable(spec, controllers, why);
    if spec.ttl_ms.is_some() {
        // The daemon's own timer still enforces it; say that it is not backed
        // by systemd.
        w.push("--ttl (ttl_ms) is enforced by shipoted only (no systemd RuntimeMaxSec here): it does not fire while the daemon is down".into());
    }
    w
}

/// The spare keeper, if it is alive, its socket moved to `socket`.
fn take_spare(spare: &Mutex<Option<(u32, PathBuf)>>, socket: &Path) -> Option<u32> {
    let (pid, at) = spare.lock().expect("spare lock").take()?;
    // A spare that died (killed by hand) is useless.
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
    // A bound socket keeps working under its new name.
    if alive && std::fs::rename(&at, socket).is_ok() {
        return Some(pid);
    }
    process::signal(pid, Signal::SIGKILL);
    let _ = std::fs::remove_file(at);
    None
}

fn refill_spare(spare: Arc<Mutex<Option<(u32, PathBuf)>>>, keeper: KeeperProgram) {
    tokio::task::spawn_blocking(move || {
        let socket = keeper
            .sockets
            .join(format!("spare-{}.sock", shipote_protocol::Ulid::new()));
        match keeper.start("spare", &socket) {
            Ok(pid) => {
                let old = spare.lock().expect("spare lock").replace((pid, socket));
                if let Some((old, at)) = old {
                    process::signal(old, Signal::SIGKILL);
                    let _ = std::fs::remove_file(at);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a spare keeper; the next workspace starts one itself")
            }
        }
    });
}

async fn create_scope(
    scopes: &SystemdScopes,
    mount: &Path,
    unit: &str,
    spec: &WorkspaceSpec,
    keeper_program: &KeeperProgram,
    spare: Option<u32>,
) -> Result<Created, BackendError> {
    let keeper = match spare {
        Some(pid) => pid,
        None => {
            let socket = keeper_program.socket(unit);
            let program = keeper_program.clone();
            let unit = unit.to_owned();
            tokio::task::spawn_blocking(move || program.start(&unit, &socket))
                .await
                .expect("starting a keeper does not panic")?
        }
    };
    let mut limits: Vec<(&'static str, u64)> = match spec.quota_enforce {
        QuotaEnforce::Hard => limit_requests(&spec.soma)
            .into_iter()
            .map(|l| (l.property, l.value))
            .collect(),
        QuotaEnforce::ReportOnly => Vec::new(),
    };
    if let Some(ttl) = spec.ttl_ms {
        limits.push(("RuntimeMaxUSec", ttl.saturating_mul(1000)));
    }
    let scope = ScopeSpec {
        name: unit.to_owned(),
        slice: SLICE.to_owned(),
        description: format!("shipote workspace {}", spec.label),
        pids: vec![keeper],
        limits,
    };
    if let Err(e) = scopes.start_scope(&scope).await {
        process::signal(keeper, Signal::SIGKILL);
        return Err(e.into());
    }
    let unit_owned = unit.to_owned();
    let mount = mount.to_owned();
    let spec = spec.clone();
    let program = keeper_program.clone();
    let placed = tokio::task::spawn_blocking(move || {
        let (cgroup, warnings) = place_keeper(&mount, &unit_owned, keeper, &spec)?;
        Ok::<_, BackendError>((cgroup, warnings, link(&program, &unit_owned)?))
    })
    .await
    .expect("placing the keeper does not panic");
    match placed {
        Ok((cgroup, warnings, link)) => Ok(Created {
            cgroup: Some(cgroup),
            keeper_pid: Some(keeper),
            link: Some(link),
            warnings,
        }),
        Err(e) => {
            process::signal(keeper, Signal::SIGKILL);
            let _ = scopes.stop_unit(unit).await;
            Err(e)
        }
    }
}

/// Finds the scope's cgroup from the keeper's /proc entry, moves the keeper into
/// a leaf and enables the controllers below, so commands can get leaves of
/// their own with their own accounting.
fn place_keeper(
    mount: &std::path::Path,
    unit: &str,
    keeper: u32,
    spec: &WorkspaceSpec,
) -> Result<(Cgroup, Vec<String>), BackendError> {
    let no_cgroup = |why: String| BackendError::NoCgroup {
        unit: unit.to_owned(),
        why,
    };
    let text = std::fs::read_to_string(format!("/proc/{keeper}/cgroup"))
        .map_err(|e| no_cgroup(format!("keeper {keeper}: {e}")))?;
    let path = crate::cgroup::parse_own_cgroup(&text)
        .ok_or_else(|| no_cgroup("no cgroup v2 line".into()))?;
    if !path.ends_with(unit) {
        return Err(no_cgroup(format!(
            "the keeper is in {path}, not in the scope"
        )));
    }
    let scope = Cgroup::at(mount.join(path.trim_start_matches('/')));
    let leaf = scope.child(KEEPER_CGROUP);
    leaf.create()?;
    leaf.add_pid(keeper)?;
    let available = scope.controllers();
    scope.enable_controllers(&["cpu", "memory", "pids", "io"])?;
    let warnings = unenforceable(spec, &available, "is not delegated to the user manager");
    Ok((scope, warnings))
}
