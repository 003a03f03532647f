//! Transient scopes through the systemd user manager's D-Bus API (the user bus,
//! never the manager's private socket: zbus panics there, zbus#1497).
//!
//! Every job is awaited: one JobRemoved subscription, opened at connect, feeds
//! a table of waiters keyed by job path (and remembers recent jobs nobody waited
//! for yet, so a signal that beats the method reply is not lost); a call returns
//! only when its job is removed with result `done`.

use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use zbus::zvariant::{OwnedObjectPath, Value};

/// How long a job may take before we give up on it.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting to the user bus may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;

    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;

    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    #[allow(clippy::type_complexity)]
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<
        Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>,
    >;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}

/// Why talking to systemd failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// No user bus, or the manager does not answer on it.
    #[error("cannot reach the systemd user manager on the user bus: {0}")]
    Unreachable(String),
    /// A D-Bus call failed.
    #[error("systemd refused to {what} {unit}: {source}")]
    Call {
        /// What was asked.
        what: &'static str,
        /// The unit.
        unit: String,
        /// The D-Bus error.
        #[source]
        source: Box<zbus::Error>,
    },
    /// The job ended with another result than `done`.
    #[error("systemd job for {unit} ended with result {result:?}")]
    JobFailed {
        /// The unit.
        unit: String,
        /// systemd's result word (failed, timeout, canceled, dependency, ...).
        result: String,
    },
    /// The job did not finish in time.
    #[error("systemd job for {unit} did not finish within {} s", JOB_TIMEOUT.as_secs())]
    JobTimeout {
        /// The unit.
        unit: String,
    },
}

/// A transient scope to start.
#[derive(Debug, Clone)]
pub struct ScopeSpec {
    /// Unit name, ending in `.scope`.
    pub name: String,
    /// Slice it goes into.
    pub slice: String,
    /// Human description.
    pub description: String,
    /// Processes to move in (they move when the job completes).
    pub pids: Vec<u32>,
    /// Numeric unit properties (MemoryMax, TasksMax, CPUQuotaPerSecUSec, ...).
    pub limits: Vec<(&'static str, u64)>,
}

/// Finished jobs remembered for a waiter that has not registered yet.
const RECENT_JOBS: usize = 256;

/// Jobs being waited for, and jobs that finished before anyone waited.
#[derive(Debug, Default)]
struct Jobs {
    waiting: HashMap<String, oneshot::Sender<String>>,
    finished: VecDeque<(String, String)>,
}

/// The user manager, reached over the user bus.
#[derive(Debug, Clone)]
pub struct SystemdScopes {
    manager: ManagerProxy<'static>,
    version: String,
    jobs: Arc<Mutex<Jobs>>,
}

impl SystemdScopes {
    /// Connects to the user bus, subscribes to job signals and reads the
    /// manager's version.
    pub async fn connect() -> Result<Self, SystemdError> {
        let unreachable = |e: &dyn std::fmt::Display| SystemdError::Unreachable(e.to_string());
        let connect = async {
            let conn = zbus::Connection::session()
                .await
                .map_err(|e| unreachable(&e))?;
            let manager = ManagerProxy::new(&conn)
                .await
                .map_err(|e| unreachable(&e))?;
            manager.subscribe().await.map_err(|e| unreachable(&e))?;
            let version = manager.version().await.map_err(|e| unreachable(&e))?;
            let removed = manager
                .receive_job_removed()
                .await
                .map_err(|e| unreachable(&e))?;
            let jobs = Arc::new(Mutex::new(Jobs::default()));
            tokio::spawn(dispatch_jobs(removed, jobs.clone()));
            Ok::<_, SystemdError>(Self {
                manager,
                version,
                jobs,
            })
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(r) => r,
            Err(_) => Err(SystemdError::Unreachable(format!(
                "no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The manager's version string (e.g. `252.39-1~deb12u1`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Starts a transient scope and waits until its job is done, i.e. until the
    /// listed processes are in the scope's cgroup.
    pub async fn start_scope(&self, spec: &ScopeSpec) -> Result<(), SystemdError> {
        let mut props: Vec<(&str, Value<'_>)> = vec![
            ("Description", Value::from(spec.description.as_str())),
            ("Slice", Value::from(spec.slice.as_str())),
            ("PIDs", Value::from(spec.pids.clone())),
            ("Delegate", Value::from(true)),
            // Leave no failed units behind.
            ("CollectMode", Value::from("inactive-or-failed")),
            // One OOM kill ends one process, not the whole workspace.
            ("OOMPolicy", Value::from("continue")),
        ];
        for (k, v) in &spec.limits {
            props.push((k, Value::from(*v)));
        }
        let aux: &[(&str, &[(&str, Value<'_>)])] = &[];
        let job = self
            .manager
            .start_transient_unit(&spec.name, "fail", &props, aux)
            .await
            .map_err(|source| SystemdError::Call {
                what: "start",
                unit: spec.name.clone(),
                source: Box::new(source),
            })?;
        self.wait_job(&job, &spec.name).await
    }

    /// Stops a unit and waits for the job; a unit that no longer exists counts
    /// as stopped.
    pub async fn stop_unit(&self, name: &str) -> Result<(), SystemdError> {
        match self.manager.stop_unit(name, "replace").await {
            Ok(job) => self.wait_job(&job, name).await,
            Err(e) if is_no_such_unit(&e) => Ok(()),
            Err(source) => Err(SystemdError::Call {
                what: "stop",
                unit: name.to_owned(),
                source: Box::new(source),
            }),
        }
    }

    /// Whether the manager knows the unit (loaded, in any state).
    pub async fn unit_exists(&self, name: &str) -> Result<bool, SystemdError> {
        match self.manager.get_unit(name).await {
            Ok(_) => Ok(true),
            Err(e) if is_no_such_unit(&e) => Ok(false),
            Err(source) => Err(SystemdError::Call {
                what: "look up",
                unit: name.to_owned(),
                source: Box::new(source),
            }),
        }
    }

    /// Active units whose names match `pattern` (e.g. `shipote-*.scope`), with
    /// their cgroup paths (relative to the cgroup2 mount).
    pub async fn active_units(&self, pattern: &str) -> Result<Vec<(String, String)>, SystemdError> {
        let call = |source| SystemdError::Call {
            what: "list",
            unit: pattern.to_owned(),
            source: Box::new(source),
        };
        let units = self
            .manager
            .list_units_by_patterns(&["active"], &[pattern])
            .await
            .map_err(call)?;
        let mut out = Vec::new();
        for u in units {
            let (name, path) = (u.0, u.6);
            let proxy = zbus::Proxy::new(
                self.manager.inner().connection(),
                "org.freedesktop.systemd1",
                path,
                "org.freedesktop.systemd1.Scope",
            )
            .await
            .map_err(call)?;
            let cgroup: String = proxy.get_property("ControlGroup").await.map_err(call)?;
            out.push((name, cgroup));
        }
        Ok(out)
    }

    /// Waits for a job's JobRemoved signal; `done` is success.
    async fn wait_job(&self, job: &OwnedObjectPath, unit: &str) -> Result<(), SystemdError> {
        let rx = {
            let mut jobs = self.jobs.lock().expect("job table lock");
            if let Some(i) = jobs.finished.iter().position(|(j, _)| j == job.as_str()) {
                let (_, result) = jobs.finished.remove(i).expect("index is valid");
                return job_result(unit, result);
            }
            let (tx, rx) = oneshot::channel();
            jobs.waiting.insert(job.as_str().to_owned(), tx);
            rx
        };
        match tokio::time::timeout(JOB_TIMEOUT, rx).await {
            Ok(Ok(result)) => job_result(unit, result),
            Ok(Err(_)) => Err(SystemdError::Unreachable("the user bus closed".into())),
            Err(_) => {
                self.jobs
                    .lock()
                    .expect("job table lock")
                    .waiting
                    .remove(job.as_str());
                Err(SystemdError::JobTimeout {
                    unit: unit.to_owned(),
                })
            }
        }
    }
}

fn job_result(unit: &str, result: String) -> Result<(), SystemdError> {
    if result == "done" {
        Ok(())
    } else {
        Err(SystemdError::JobFailed {
            unit: unit.to_owned(),
            result,
        })
    }
}

/// Routes every JobRemoved signal to its waiter, or remembers it briefly.
async fn dispatch_jobs(mut removed: JobRemovedStream, jobs: Arc<Mutex<Jobs>>) {
    while let Some(signal) = removed.next().await {
        let Ok(args) = signal.args() else { continue };
        let mut jobs = jobs.lock().expect("job table lock");
        match jobs.waiting.remove(args.job.as_str()) {
            Some(tx) => {
                let _ = tx.send(args.result.clone());
            }
            None => {
                if jobs.finished.len() == RECENT_JOBS {
                    jobs.finished.pop_front();
                }
                jobs.finished
                    .push_back((args.job.as_str().to_owned(), args.result.clone()));
            }
        }
    }
    tracing::error!("the user bus closed: systemd jobs can no longer be awaited");
    // Waiters see their sender dropped and report the bus as gone.
    jobs.lock().expect("job table lock").waiting.clear();
}

fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _) if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit")
}
