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

/// A cgroup v2 directory. Every read and write of a cgroup's files goes through
/// here; the root is whatever path it was given (a tempdir in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    dir: PathBuf,
}

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} {}: {source}", path.display())]
pub struct CgroupError {
    /// What was being done.
    pub what: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl Cgroup {
    /// The cgroup at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A child cgroup (not created).
    pub fn child(&self, name: &str) -> Cgroup {
        Cgroup::at(self.dir.join(name))
    }

    /// Whether the directory exists.
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    fn err(&self, what: &'static str, file: &str) -> impl FnOnce(std::io::Error) -> CgroupError {
        let path = if file.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(file)
        };
        move |source| CgroupError { what, path, source }
    }

    /// Creates the directory (and missing parents).
    pub fn create(&self) -> Result<(), CgroupError> {
        std::fs::create_dir_all(&self.dir).map_err(self.err("create cgroup", ""))
    }

    /// Reads one of its files.
    pub fn read(&self, file: &str) -> Result<String, CgroupError> {
        std::fs::read_to_string(self.dir.join(file)).map_err(self.err("read", file))
    }

    /// Writes one of its files (one write(2), as cgroupfs expects).
    pub fn write(&self, file: &str, value: &str) -> Result<(), CgroupError> {
        std::fs::write(self.dir.join(file), value).map_err(self.err("write", file))
    }

    /// Moves a process into this cgroup.
    pub fn add_pid(&self, pid: u32) -> Result<(), CgroupError> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Enables these controllers for its children, skipping any not available.
    /// Returns the ones enabled.
    pub fn enable_controllers(&self, wanted: &[&str]) -> Result<Vec<String>, CgroupError> {
        let available = parse_controllers(&self.read("cgroup.controllers")?);
        let enable: Vec<String> = wanted
            .iter()
            .filter(|c| available.iter().any(|a| a == *c))
            .map(|c| c.to_string())
            .collect();
        if !enable.is_empty() {
            let line: Vec<String> = enable.iter().map(|c| format!("+{c}")).collect();
            self.write("cgroup.subtree_control", &line.join(" "))?;
        }
        Ok(enable)
    }

    /// The controllers available in it.
    pub fn controllers(&self) -> Vec<String> {
        self.read("cgroup.controllers")
            .map(|t| parse_controllers(&t))
            .unwrap_or_default()
    }

    /// Every process in it and its descendants.
    pub fn procs_recursive(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.walk(&mut |cg| {
            if let Ok(t) = cg.read("cgroup.procs") {
                out.extend(t.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        });
        out
    }

    /// The processes directly in it.
    pub fn procs(&self) -> Vec<u32> {
        self.read("cgroup.procs")
            .map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse::<u32>().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Its child cgroups.
    pub fn children(&self) -> Vec<Cgroup> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| Cgroup::at(e.path()))
            .collect()
    }

    fn walk(&self, f: &mut impl FnMut(&Cgroup)) {
        f(self);
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    Cgroup::at(e.path()).walk(f);
                }
            }
        }
    }

    /// Whether any process lives in it or below (cgroup.events `populated`);
    /// falls back to listing processes when the file is missing.
    pub fn populated(&self) -> bool {
        match self.read("cgroup.events") {
            Ok(t) => parse_flat_keyed(&t)
                .get("populated")
                .is_some_and(|v| *v != 0),
            Err(_) => !self.procs_recursive().is_empty(),
        }
    }

    /// SIGKILLs everything in it and below (cgroup.kill, Linux 5.14+).
    pub fn kill(&self) -> Result<(), CgroupError> {
        self.write("cgroup.kill", "1")
    }

    /// Removes it and its (empty) descendants, deepest first.
    pub fn remove(&self) -> Result<(), CgroupError> {
        // A child made while we walk (a workspace's spare leaf, say) makes
        // its parent busy: walk again, a few times.
        let mut tries = 3;
        loop {
            let mut dirs = Vec::new();
            self.walk(&mut |cg| dirs.push(cg.dir.clone()));
            let mut failed = None;
            for d in dirs.iter().rev() {
                match std::fs::remove_dir(d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        failed = Some(CgroupError {
                            what: "remove cgroup",
                            path: d.clone(),
                            source,
                        });
                        break;
                    }
                }
            }
            match failed {
                None => return Ok(()),
                Some(e) if tries > 1 && e.source.raw_os_error() == Some(libc::EBUSY) => tries -= 1,
                Some(e) => return Err(e),
            }
        }
    }

    /// The sum of one key of a flat-keyed file over this cgroup and every
    /// descendant.
    pub fn keyed_sum(&self, file: &str, key: &str) -> u64 {
        let mut sum = 0;
        self.walk(&mut |cg| sum += cg.keyed(file).get(key).copied().unwrap_or(0));
        sum
    }

    /// A flat-keyed file (`key value` lines) such as memory.events or cpu.stat;
    /// empty when the file is missing.
    pub fn keyed(&self, file: &str) -> std::collections::BTreeMap<String, u64> {
        self.read(file)
            .map(|t| parse_flat_keyed(&t))
            .unwrap_or_default()
    }

    /// A single-value file such as memory.current; `None` when missing, and
    /// `Some(Limit::Max)` for `max`.
    pub fn limit(&self, file: &str) -> Option<Limit> {
        self.read(file).ok().and_then(|t| parse_limit(&t))
    }

    /// A single numeric value file (memory.current, pids.current, memory.peak).
    pub fn value(&self, file: &str) -> Option<u64> {
        match self.limit(file)? {
            Limit::Value(v) => Some(v),
            Limit::Max => None,
        }
    }
}

/// A cgroup file kept open and re-read with pread(2) at offset 0 (kernfs
/// regenerates the content): one system call per reading instead of three, for
/// files read every few seconds.
#[derive(Debug)]
pub struct OpenFile {
    file: std::fs::File,
    buf: Vec<u8>,
}

impl OpenFile {
    /// Opens `name` in `cg`; `None` if it does not exist.
    pub fn open(cg: &Cgroup, name: &str) -> Option<Self> {
        let file = std::fs::File::open(cg.dir().join(name)).ok()?;
        Some(Self {
            file,
            buf: vec![0; 4096],
        })
    }

    /// The file's current content; `None` once the cgroup is gone.
    pub fn read(&mut self) -> Option<&str> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(&mut self.buf, 0).ok()?;
        std::str::from_utf8(&self.buf[..n]).ok()
    }
}

/// A cgroup limit: a number or `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A finite value.
    Value(u64),
    /// No limit.
    Max,
}

/// Parses `max` or a decimal number.
pub fn parse_limit(text: &str) -> Option<Limit> {
    match text.trim() {
        "max" => Some(Limit::Max),
        t => t.parse().ok().map(Limit::Value),
    }
}

/// Parses `key value` lines (memory.events, pids.events, cpu.stat,
/// cgroup.events); lines that do not parse are skipped.
pub fn parse_flat_keyed(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_owned(), v))
        })
        .collect()
}

/// Parses cpu.max (`QUOTA PERIOD` or `max PERIOD`) into a percentage of one CPU.
pub fn parse_cpu_max_percent(text: &str) -> Option<u32> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period: u64 = it.next()?.parse().ok()?;
    if quota == "max" || period == 0 {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    Some(((quota * 100 + period / 2) / period) as u32)
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
    fn flat_keyed_files() {
        let events = "low 0\nhigh 3\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        let m = parse_flat_keyed(events);
        assert_eq!(m["max"], 12);
        assert_eq!(m["oom_kill"], 1);
        let cpu = "usage_usec 1523000\nuser_usec 1000000\nsystem_usec 523000\nnr_periods 0\n";
        assert_eq!(parse_flat_keyed(cpu)["usage_usec"], 1_523_000);
        assert!(parse_flat_keyed("garbage\nkey notanumber\n").is_empty());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("max\n"), Some(Limit::Max));
        assert_eq!(parse_limit("52428800\n"), Some(Limit::Value(52_428_800)));
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_cpu_max_percent("20000 100000\n"), Some(20));
        assert_eq!(parse_cpu_max_percent("150000 100000"), Some(150));
        assert_eq!(parse_cpu_max_percent("max 100000"), None);
    }

    #[test]
    fn cgroup_tree_in_a_tempdir() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::at(root.path().join("ws"));
        cg.create().unwrap();
        std::fs::write(cg.dir().join("cgroup.procs"), "10\n11\n").unwrap();
        let leaf = cg.child("cmd");
        leaf.create().unwrap();
        std::fs::write(leaf.dir().join("cgroup.procs"), "12\n").unwrap();
        std::fs::write(cg.dir().join("memory.current"), "4096\n").unwrap();
        std::fs::write(cg.dir().join("memory.max"), "max\n").unwrap();
        let mut procs = cg.procs_recursive();
        procs.sort();
        assert_eq!(procs, [10, 11, 12]);
        assert_eq!(cg.value("memory.current"), Some(4096));
        assert_eq!(cg.limit("memory.max"), Some(Limit::Max));
        assert_eq!(cg.value("memory.max"), None);
        assert_eq!(cg.value("memory.peak"), None, "missing file is None, not 0");
        std::fs::write(cg.dir().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert!(cg.populated());
        std::fs::write(cg.dir().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        assert_eq!(
            cg.enable_controllers(&["memory", "pids", "io"]).unwrap(),
            ["memory", "pids"]
        );
        assert_eq!(
            std::fs::read_to_string(cg.dir().join("cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
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
