//! Transient scopes through the systemd user manager's D-Bus API (the user bus,
//! never the manager's private socket: zbus panics there, zbus#1497).
//!
//! Every job is awaited: the JobRemoved stream is opened before the call, and
//! the call returns only when its job is removed with result `done`.

use futures_util::StreamExt;
use std::time::Duration;
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

/// The user manager, reached over the user bus.
#[derive(Debug, Clone)]
pub struct SystemdScopes {
    manager: ManagerProxy<'static>,
    version: String,
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
            Ok::<_, SystemdError>(Self { manager, version })
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
        let mut removed = self.job_stream(&spec.name).await?;
        let job = self
            .manager
            .start_transient_unit(&spec.name, "fail", &props, aux)
            .await
            .map_err(|source| SystemdError::Call {
                what: "start",
                unit: spec.name.clone(),
                source: Box::new(source),
            })?;
        wait_job(&mut removed, &job, &spec.name).await
    }

    /// Stops a unit and waits for the job; a unit that no longer exists counts
    /// as stopped.
    pub async fn stop_unit(&self, name: &str) -> Result<(), SystemdError> {
        let mut removed = self.job_stream(name).await?;
        match self.manager.stop_unit(name, "replace").await {
            Ok(job) => wait_job(&mut removed, &job, name).await,
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

    async fn job_stream(&self, unit: &str) -> Result<JobRemovedStream, SystemdError> {
        self.manager
            .receive_job_removed()
            .await
            .map_err(|source| SystemdError::Call {
                what: "watch jobs of",
                unit: unit.to_owned(),
                source: Box::new(source),
            })
    }
}

fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _) if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit")
}

async fn wait_job(
    stream: &mut JobRemovedStream,
    job: &OwnedObjectPath,
    unit: &str,
) -> Result<(), SystemdError> {
    let wait = async {
        while let Some(signal) = stream.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.job.as_str() == job.as_str() {
                return if args.result == "done" {
                    Ok(())
                } else {
                    Err(SystemdError::JobFailed {
                        unit: unit.to_owned(),
                        result: args.result.clone(),
                    })
                };
            }
        }
        Err(SystemdError::Unreachable("the user bus closed".into()))
    };
    tokio::time::timeout(JOB_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| {
            Err(SystemdError::JobTimeout {
                unit: unit.to_owned(),
            })
        })
}
