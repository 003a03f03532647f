//! Probes of the kernel and of the daemon's own process, for `Capabilities`.
//! Probes run once at start (user namespaces need a short-lived child) and are
//! cached; none of them needs privileges.

use crate::cgroup::OwnCgroup;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// What the host offers, as probed at daemon start.
#[derive(Debug, Clone)]
pub struct HostCaps {
    /// Kernel (major, minor, patch).
    pub kernel_version: (u32, u32, u32),
    /// `allowed`, or `denied: <why>`.
    pub user_ns: String,
    /// The daemon's own cgroup.
    pub cgroup: OwnCgroup,
    /// CAP_SYS_ADMIN in the effective set.
    pub has_cap_sys_admin: bool,
}

impl HostCaps {
    /// Probes the running host and process. Blocking: forks one short-lived child.
    pub fn probe() -> Self {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Self {
            kernel_version: parse_kernel_release(&release),
            user_ns: probe_user_ns(),
            cgroup: OwnCgroup::probe(),
            has_cap_sys_admin: parse_cap_eff(&status)
                .is_some_and(|c| c & (1 << CAP_SYS_ADMIN) != 0),
        }
    }
}

const CAP_SYS_ADMIN: u32 = 21;

/// (major, minor, patch) from a release string like `6.1.0-27-cloud-amd64`.
pub fn parse_kernel_release(release: &str) -> (u32, u32, u32) {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap_or(0));
    (
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
    )
}

/// The CapEff mask from the text of /proc/PID/status.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Tries to create a user namespace in a child process (unshare(2) refuses in a
/// multi-threaded process, so the probe cannot run in the daemon itself).
fn probe_user_ns() -> String {
    let mut cmd = Command::new("/bin/true");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear();
    // SAFETY: the closure runs in the forked child before exec and only makes one
    // system call; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).map_err(std::io::Error::from)
        });
    }
    match cmd.status() {
        Ok(s) if s.success() => "allowed".to_owned(),
        Ok(s) => format!("unknown: probe exited with {s}"),
        Err(e) => format!("denied: {}{}", e, userns_sysctl_hint()),
    }
}

/// Why unprivileged user namespaces are off, when a sysctl says so (with a
/// leading space), else empty.
pub fn userns_sysctl_hint() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return " (kernel.unprivileged_userns_clone = 0)".into();
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return " (user.max_user_namespaces = 0)".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return " (kernel.apparmor_restrict_unprivileged_userns = 1)".into();
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_release() {
        assert_eq!(parse_kernel_release("6.1.0-27-cloud-amd64"), (6, 1, 0));
        assert_eq!(
            parse_kernel_release("5.15.167.4-microsoft-standard-WSL2"),
            (5, 15, 167)
        );
        assert_eq!(parse_kernel_release("6.8"), (6, 8, 0));
        assert_eq!(parse_kernel_release(""), (0, 0, 0));
    }

    #[test]
    fn cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert!(parse_cap_eff(status).unwrap() & (1 << CAP_SYS_ADMIN) != 0);
        assert_eq!(parse_cap_eff("CapEff:\t0000000000000000\n"), Some(0));
        assert_eq!(parse_cap_eff("nothing"), None);
    }
}
