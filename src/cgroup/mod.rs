//! Everything that reads cgroupfs. Parsing is separated from file access so the
//! parsers are tested against fixtures; file access is rooted at a mount point
//! found in mountinfo, never a hard-coded path.

use std::path::{Path, PathBuf};

/// How cgroup v2 is mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Pure cgroup v2 at /sys/fs/cgroup.
    Unified(PathBuf),
    /// cgroup v1 controllers plus a cgroup2 hierarchy elsewhere (usually
    /// /sys/fs/cgroup/unified), normally without controllers.
    Hybrid(PathBuf),
    /// No cgroup2 mount.
    None,
}

impl Layout {
    /// `unified`, `hybrid` or `none`, as Capabilities reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Unified(_) => "unified",
            Layout::Hybrid(_) => "hybrid",
            Layout::None => "none",
        }
    }

    /// The cgroup2 mount point, if any.
    pub fn mount_point(&self) -> Option<&Path> {
        match self {
            Layout::Unified(p) | Layout::Hybrid(p) => Some(p),
            Layout::None => None,
        }
    }
}

/// Finds the cgroup2 mount in the text of /proc/self/mountinfo. A cgroup2 at
/// /sys/fs/cgroup is `Unified`; one elsewhere while cgroup v1 hierarchies are
/// mounted is `Hybrid`.
pub fn parse_layout(mountinfo: &str) -> Layout {
    let mut v2 = None;
    for line in mountinfo.lines() {
        // Fields: id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split_whitespace().next().unwrap_or("");
        let mount_point = left.split_whitespace().nth(4).map(unescape_mountinfo);
        match (fstype, mount_point) {
            ("cgroup2", Some(mp)) if v2.is_none() => v2 = Some(PathBuf::from(mp)),
            _ => {}
        }
    }
    match v2 {
        Some(p) if p == Path::new("/sys/fs/cgroup") => Layout::Unified(p),
        // A cgroup2 elsewhere: hybrid when v1 holds the controllers, else a
        // private mount; either way, not the host's main hierarchy.
        Some(p) => Layout::Hybrid(p),
        None => Layout::None,
    }
}

fn unescape_mountinfo(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo octal.
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(n) = octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 path of a process from the text of /proc/PID/cgroup (the
/// `0::/path` line).
pub fn parse_own_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().to_owned())
}

/// The controllers listed in a `cgroup.controllers` file.
pub fn parse_controllers(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// What the daemon's own process sees of cgroup v2.
#[derive(Debug, Clone)]
pub struct OwnCgroup {
    /// How cgroup2 is mounted.
    pub layout: Layout,
    /// The process's cgroup v2 path relative to the mount (e.g.
    /// `/user.slice/user-1000.slice/user@1000.service/app.slice/shipote.service`).
    pub path: Option<String>,
    /// The directory of that cgroup in the filesystem.
    pub dir: Option<PathBuf>,
    /// Controllers available there.
    pub controllers: Vec<String>,
    /// The directory is writable by this process (it may create sub-cgroups).
    pub writable: bool,
}

impl OwnCgroup {
    /// Probes the current process.
    pub fn probe() -> Self {
        let layout = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| parse_layout(&t))
            .unwrap_or(Layout::None);
        let path = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| parse_own_cgroup(&t));
        let dir = match (layout.mount_point(), &path) {
            (Some(mp), Some(p)) => Some(mp.join(p.trim_start_matches('/'))),
            _ => None,
        };
        let controllers = dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("cgroup.controllers")).ok())
            .map(|t| parse_controllers(&t))
            .unwrap_or_default();
        let writable = dir.as_ref().is_some_and(|d| {
            nix::unistd::access(d.as_path(), nix::unistd::AccessFlags::W_OK).is_ok() && d.is_dir()
        });
        Self {
            layout,
            path,
            dir,
            controllers,
            writable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 31 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
";
    const UNIFIED: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn layout_hybrid() {
        assert_eq!(
            parse_layout(HYBRID),
            Layout::Hybrid("/sys/fs/cgroup/unified".into())
        );
        assert_eq!(parse_layout(HYBRID).name(), "hybrid");
    }

    #[test]
    fn layout_unified() {
        assert_eq!(
            parse_layout(UNIFIED),
            Layout::Unified("/sys/fs/cgroup".into())
        );
    }

    #[test]
    fn layout_none() {
        assert_eq!(parse_layout("garbage\n\n1 2 3"), Layout::None);
    }

    #[test]
    fn mount_point_with_escaped_space() {
        let line = "40 30 0:50 / /mnt/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(parse_layout(line), Layout::Hybrid("/mnt/my cg".into()));
    }

    #[test]
    fn own_cgroup_v2_line() {
        let text =
            "12:memory:/x\n1:name=systemd:/y\n0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            parse_own_cgroup(text).as_deref(),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(parse_own_cgroup("12:memory:/x\n"), None);
    }

    #[test]
    fn controllers() {
        assert_eq!(
            parse_controllers("cpu memory pids\n"),
            ["cpu", "memory", "pids"]
        );
        assert!(parse_controllers("\n").is_empty());
    }
}
