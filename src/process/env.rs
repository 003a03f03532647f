//! A command's environment and program: the clean base environment (nothing
//! of the daemon's own leaks), the client's variables merged in, and the
//! program found like a shell finds it.

use super::spawn::{SpawnError, DEFAULT_PATH};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// `base` with `extra` added (later entries override earlier ones); base
/// entries keep their order, then extra ones in the order of their last
/// setting. Linear in the number of variables.
pub fn merge_env(
    base: Vec<(String, String)>,
    extra: &[(String, String)],
) -> Result<Vec<(String, String)>, SpawnError> {
    use std::collections::HashMap;
    // The last setting of each extra name.
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(extra.len());
    for (i, (k, v)) in extra.iter().enumerate() {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(SpawnError::BadEnv(k.clone()));
        }
        last.insert(k.as_str(), i);
    }
    let mut env: Vec<(String, String)> = base
        .into_iter()
        .filter(|(k, _)| !last.contains_key(k.as_str()))
        .collect();
    env.extend(
        extra
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| last.get(k.as_str()) == Some(i))
            .map(|(_, kv)| kv.clone()),
    );
    Ok(env)
}

/// Finds `exec` like a shell: a name with a `/` is a path, anything else is
/// searched in `path`.
/// A name with a slash is a path, relative to `cwd` (the directory the
/// command starts in) when it does not start with one.
pub fn resolve(exec: &str, path: &str, cwd: &Path) -> Result<PathBuf, SpawnError> {
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
        let p = cwd.join(exec);
        if !p.exists() {
            return Err(SpawnError::NoSuchFile { path: p });
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
