//! Starting a workspace command: program resolution like a shell's, a clean
//! environment, and placement in the command's cgroup leaf *before* exec (the
//! child writes `0` to the leaf's cgroup.procs between fork and exec, so not one
//! instruction of the program runs outside).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// PATH when the daemon has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Why a command could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program is not in PATH.
    #[error("{exec:?} not found in PATH ({path}); give a full path or install it")]
    NotFound {
        /// What was asked for.
        exec: String,
        /// The PATH searched.
        path: String,
    },
    /// The file exists but cannot be executed.
    #[error("{} is not an executable file", path.display())]
    NotExecutable {
        /// The file.
        path: PathBuf,
    },
    /// The working directory is not usable.
    #[error("working directory {}: {source}", path.display())]
    Cwd {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A variable name or value cannot be passed to a program.
    #[error("environment variable {0:?} is invalid (empty name, '=' in the name, or a NUL byte)")]
    BadEnv(String),
    /// fork/exec or the placement in the cgroup failed.
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The environment every command starts from: nothing of the daemon's own
/// (NOTIFY_SOCKET, LISTEN_*, WATCHDOG_*, SHIPOTE_*, INVOCATION_ID...) leaks.
/// Computed once (it reads the password database), then copied per command.
pub fn base_env() -> Vec<(String, String)> {
    static BASE: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    BASE.get_or_init(compute_base_env).clone()
}

fn compute_base_env() -> Vec<(String, String)> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten();
    let home = get("HOME").or_else(|| user.as_ref().map(|u| u.dir.to_string_lossy().into_owned()));
    let name = get("USER").or_else(|| user.as_ref().map(|u| u.name.clone()));
    let mut env = vec![(
        "PATH".to_owned(),
        get("PATH").unwrap_or_else(|| DEFAULT_PATH.to_owned()),
    )];
    if let Some(h) = home {
        env.push(("HOME".into(), h));
    }
    if let Some(n) = name {
        env.push(("USER".into(), n.clone()));
        env.push(("LOGNAME".into(), n));
    }
    env.push((
        "SHELL".into(),
        get("SHELL").unwrap_or_else(|| "/bin/sh".into()),
    ));
    env.push((
        "LANG".into(),
        get("LANG").unwrap_or_else(|| "C.UTF-8".into()),
    ));
    for k in ["XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "TZ"] {
        if let Some(v) = get(k) {
            env.push((k.into(), v));
        }
    }
    env
}

/// `base` with `extra` added (later entries override earlier ones).
pub fn merge_env(
    base: Vec<(String, String)>,
    extra: &[(String, String)],
) -> Result<Vec<(String, String)>, SpawnError> {
    let mut env = base;
    for (k, v) in extra {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(SpawnError::BadEnv(k.clone()));
        }
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    Ok(env)
}

/// Finds `exec` like a shell: a name with a `/` is a path, anything else is
/// searched in `path`.
pub fn resolve(exec: &str, path: &str) -> Result<PathBuf, SpawnError> {
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if exec.is_empty() {
        return Err(SpawnError::NotFound {
            exec: exec.to_owned(),
            path: path.to_owned(),
        });
    }
    if exec.contains('/') {
        let p = PathBuf::from(exec);
        if !p.exists() {
            return Err(SpawnError::NotFound {
                exec: exec.to_owned(),
                path: path.to_owned(),
            });
        }
        return if executable(&p) && nix::unistd::access(&p, nix::unistd::AccessFlags::X_OK).is_ok()
        {
            Ok(p)
        } else {
            Err(SpawnError::NotExecutable { path: p })
        };
    }
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(exec);
        if executable(&p) && nix::unistd::access(&p, nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(p);
        }
    }
    Err(SpawnError::NotFound {
        exec: exec.to_owned(),
        path: path.to_owned(),
    })
}

/// What to start.
#[derive(Debug)]
pub struct Launch {
    /// The resolved program.
    pub program: PathBuf,
    /// argv[0] (the name asked for).
    pub arg0: String,
    /// Arguments after argv[0].
    pub args: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The leaf's cgroup.procs, opened for writing; `None` without cgroups.
    pub cgroup_procs: Option<File>,
    /// Write end for stdout.
    pub stdout: OwnedFd,
    /// Write end for stderr.
    pub stderr: OwnedFd,
}

/// Starts the command in its own session (so it has a process group to
/// signal), in its cgroup leaf before exec. Must run inside the tokio runtime.
pub fn spawn(l: Launch) -> Result<tokio::process::Child, SpawnError> {
    if let Err(source) = std::fs::read_dir(&l.cwd) {
        return Err(SpawnError::Cwd {
            path: l.cwd,
            source,
        });
    }
    let mut cmd = std::process::Command::new(&l.program);
    cmd.arg0(&l.arg0)
        .args(&l.args)
        .env_clear()
        .envs(
            l.env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
        .current_dir(&l.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(l.stdout))
        .stderr(Stdio::from(l.stderr));
    let procs_fd = l.cgroup_procs.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: between fork and exec the child only calls setsid(2) and write(2),
    // both async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = procs_fd {
                // "0" moves the writing process itself.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    let child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        program: l.program.clone(),
        source,
    });
    drop(l.cgroup_procs);
    child
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_a_shell() {
        assert_eq!(
            resolve("sh", "/nonexistent:/bin:/usr/bin").unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert!(matches!(
            resolve("no-such-program-x", "/bin"),
            Err(SpawnError::NotFound { .. })
        ));
        assert!(matches!(
            resolve("/etc/passwd", "/bin"),
            Err(SpawnError::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve("/etc", "/bin"),
            Err(SpawnError::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve("", "/bin"),
            Err(SpawnError::NotFound { .. })
        ));
        let e = resolve("nope", "/a:/b").unwrap_err().to_string();
        assert!(e.contains("not found in PATH (/a:/b)"), "{e}");
    }

    #[test]
    fn base_env_is_clean_and_extras_override() {
        let env = merge_env(
            base_env(),
            &[("A".into(), "1".into()), ("PATH".into(), "/x".into())],
        )
        .unwrap();
        assert!(env.iter().all(|(k, _)| !k.starts_with("NOTIFY_")
            && !k.starts_with("LISTEN_")
            && !k.starts_with("SHIPOTE_")));
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&("PATH".into(), "/x".into())));
        assert!(env.contains(&("A".into(), "1".into())));
        assert!(matches!(
            merge_env(vec![], &[("A=B".into(), "".into())]),
            Err(SpawnError::BadEnv(_))
        ));
        assert!(matches!(
            merge_env(vec![], &[("".into(), "".into())]),
            Err(SpawnError::BadEnv(_))
        ));
    }
}
