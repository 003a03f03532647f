//! Resource figures of a workspace: from its cgroup's files where the
//! controllers provide them (`source: cgroup`), else summed over its processes
//! from /proc (`source: procfs`). Blocking: call from a blocking task.

use crate::cgroup::{parse_cpu_max_percent, parse_limit, Cgroup, Limit, OpenFile};
use shipote_protocol::{Breach, QuotaEnforce, QuotaReportInfo, WorkspaceSpec};
use std::time::Duration;

/// The daemon samples every workspace at this interval into its history.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(2);

/// Samples kept per workspace: one hour at [`HISTORY_INTERVAL`].
pub const HISTORY_CAPACITY: usize = 1800;

/// One reading of a workspace's resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// Resident memory in bytes.
    pub rss_bytes: Option<u64>,
    /// Peak resident memory in bytes, when the kernel tracks it.
    pub rss_peak_bytes: Option<u64>,
    /// CPU time in microseconds.
    pub cpu_usec: Option<u64>,
    /// Tasks (processes and threads).
    pub tasks: Option<u64>,
    /// `cgroup` or `procfs`.
    pub source: &'static str,
}

/// Keeps each workspace's counter files open between samples.
#[derive(Debug, Default)]
pub struct Sampler {
    open: std::collections::HashMap<std::path::PathBuf, CounterFiles>,
}

#[derive(Debug)]
struct CounterFiles {
    memory_current: Option<OpenFile>,
    memory_peak: Option<OpenFile>,
    cpu_stat: Option<OpenFile>,
    pids_current: Option<OpenFile>,
}

impl Sampler {
    /// Reads a workspace's figures, like [`read`], reusing open files.
    pub fn read(
        &mut self,
        cgroup: Option<&Cgroup>,
        keeper: Option<u32>,
        groups: &[i32],
    ) -> Reading {
        let Some(cg) = cgroup else {
            return read(None, keeper, groups);
        };
        let files = self
            .open
            .entry(cg.dir().to_owned())
            .or_insert_with(|| CounterFiles {
                memory_current: OpenFile::open(cg, "memory.current"),
                memory_peak: OpenFile::open(cg, "memory.peak"),
                cpu_stat: OpenFile::open(cg, "cpu.stat"),
                pids_current: OpenFile::open(cg, "pids.current"),
            });
        let value = |f: &mut Option<OpenFile>| match f.as_mut()?.read().and_then(parse_limit)? {
            Limit::Value(v) => Some(v),
            Limit::Max => None,
        };
        let Some(current) = value(&mut files.memory_current) else {
            self.open.remove(cg.dir());
            return read(Some(cg), keeper, groups);
        };
        let cpu_usec = files
            .cpu_stat
            .as_mut()
            .and_then(|f| f.read().map(crate::cgroup::parse_flat_keyed))
            .and_then(|m| m.get("usage_usec").copied());
        Reading {
            rss_bytes: Some(current),
            rss_peak_bytes: value(&mut files.memory_peak),
            cpu_usec,
            tasks: value(&mut files.pids_current),
            source: "cgroup",
        }
    }

    /// Closes the files of workspaces not in `live`.
    pub fn retain(&mut self, live: &std::collections::HashSet<std::path::PathBuf>) {
        self.open.retain(|dir, _| live.contains(dir));
    }
}

/// Reads a workspace's figures now: from its cgroup, else (no cgroups)
/// from the processes of its commands' process groups `groups`.
pub fn read(cgroup: Option<&Cgroup>, keeper: Option<u32>, groups: &[i32]) -> Reading {
    let Some(cg) = cgroup else {
        return read_groups(groups);
    };
    let cpu_usec = cg.keyed("cpu.stat").get("usage_usec").copied();
    if let Some(current) = cg.value("memory.current") {
        // The controllers count everything: no need to visit the processes
        // (the sampler calls this for every workspace every 2 s).
        return Reading {
            rss_bytes: Some(current),
            rss_peak_bytes: cg.value("memory.peak"),
            cpu_usec,
            tasks: cg.value("pids.current"),
            source: "cgroup",
        };
    }
    let mut procs = cg.procs_recursive();
    // Neither its keeper nor a sandboxed workspace's init (beside it) is
    // the user's.
    let own = cg.child(crate::workspace::backend::KEEPER_CGROUP).procs();
    procs.retain(|p| Some(*p) != keeper && !own.contains(p));
    // No memory controller here: sum over the processes.
    let mut rss = 0;
    let mut cpu = 0;
    let mut threads = 0;
    for pid in &procs {
        if let Some(u) = crate::process::proc_usage(*pid) {
            rss += u.rss_bytes;
            cpu += u.cpu_usec;
            threads += u.threads;
        }
    }
    Reading {
        rss_bytes: Some(rss),
        rss_peak_bytes: None,
        // cpu.stat exists without the cpu controller and counts dead processes.
        cpu_usec: cpu_usec.or(Some(cpu)),
        tasks: Some(threads),
        source: "procfs",
    }
}

/// The figures of every process in one of `groups` (process group ids),
/// from /proc: without cgroups, a workspace is its commands' groups. CPU
/// time counts the living only.
fn read_groups(groups: &[i32]) -> Reading {
    let mut r = Reading {
        source: "procfs",
        ..Reading::default()
    };
    if groups.is_empty() {
        return r;
    }
    let (mut rss, mut cpu, mut threads) = (0, 0, 0);
    for pid in std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
    {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 5, after the name (which may hold spaces and parens).
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<i32>().ok());
        if pgrp.is_some_and(|g| groups.contains(&g)) {
            if let Some(u) = crate::process::proc_usage(pid) {
                rss += u.rss_bytes;
                cpu += u.cpu_usec;
                threads += u.threads;
            }
        }
    }
    r.rss_bytes = Some(rss);
    r.cpu_usec = Some(cpu);
    r.tasks = Some(threads);
    r
}

/// The limits in force and the breaches the kernel counted. `report_only`
/// holds the breaches the sampler counted for limits that are only reported.
pub fn quota(
    cgroup: Option<&Cgroup>,
    spec: &WorkspaceSpec,
    report_only: &[Breach],
) -> QuotaReportInfo {
    let finite = |l: Option<Limit>| match l {
        Some(Limit::Value(v)) => Some(v),
        _ => None,
    };
    let mut breaches = Vec::new();
    let (mem_limit, nproc_limit, cpu_quota_percent, enforced) = match (cgroup, spec.quota_enforce) {
        (Some(cg), QuotaEnforce::Hard)
            if cg.dir().join("memory.max").exists() || cg.dir().join("pids.max").exists() =>
        {
            let events = cg.keyed("memory.events");
            for (key, kind) in [
                ("max", "memory.max"),
                ("oom_kill", "memory.oom_kill"),
                ("high", "memory.high"),
            ] {
                if let Some(&n) = events.get(key).filter(|n| **n > 0) {
                    breaches.push(Breach {
                        kind: kind.into(),
                        count: n,
                    });
                }
            }
            // Before Linux 6.10 (no pids.events.local) a refused fork is counted
            // in the forking task's own cgroup, not where the limit sits: sum
            // the subtree. Since then pids.events is hierarchical.
            let pids_max = if cg.dir().join("pids.events.local").exists() {
                cg.keyed("pids.events").get("max").copied().unwrap_or(0)
            } else {
                cg.keyed_sum("pids.events", "max")
            };
            if pids_max > 0 {
                breaches.push(Breach {
                    kind: "pids.max".into(),
                    count: pids_max,
                });
            }
            let cpu = cg
                .read("cpu.max")
                .ok()
                .and_then(|t| parse_cpu_max_percent(&t));
            (
                finite(cg.limit("memory.max")),
                finite(cg.limit("pids.max")),
                cpu,
                true,
            )
        }
        _ => (
            spec.soma.mem_max_bytes,
            spec.soma.tasks_max,
            spec.soma.cpu_quota_percent,
            false,
        ),
    };
    breaches.extend(report_only.iter().cloned());
    QuotaReportInfo {
        mem_limit,
        nproc_limit,
        cpu_quota_percent,
        enforced,
        breaches,
    }
}

/// CPU use between two readings, in percent of one CPU.
pub fn cpu_percent(prev_usec: u64, now_usec: u64, elapsed: Duration) -> Option<f32> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 || now_usec < prev_usec {
        return None;
    }
    Some(((now_usec - prev_usec) as f64 / (secs * 1e6) * 100.0) as f32)
}

/// Cores a workspace can use: its CPU quota rounded up, at most the machine's.
pub fn cpu_cores(quota_percent: Option<u32>) -> u32 {
    // available_parallelism parses mountinfo and cgroup files on every call:
    // far too costly for the sampler's hot path, and it does not change.
    static MACHINE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let machine = *MACHINE.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    match quota_percent {
        Some(p) => p.div_ceil(100).clamp(1, machine),
        None => machine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_scope(files: &[(&str, &str)]) -> (tempfile::TempDir, Cgroup) {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroup::at(dir.path());
        for (f, t) in files {
            std::fs::write(dir.path().join(f), t).unwrap();
        }
        (dir, cg)
    }

    #[test]
    fn reading_from_cgroup_files() {
        let (_d, cg) = fake_scope(&[
            ("cgroup.procs", "100\n200\n"),
            ("memory.current", "1048576\n"),
            ("memory.peak", "2097152\n"),
            ("cpu.stat", "usage_usec 5000\nuser_usec 4000\n"),
            ("pids.current", "3\n"),
        ]);
        let r = read(Some(&cg), Some(100), &[]);
        assert_eq!(r.source, "cgroup");
        assert_eq!(r.rss_bytes, Some(1 << 20));
        assert_eq!(r.rss_peak_bytes, Some(2 << 20));
        assert_eq!(r.cpu_usec, Some(5000));
        assert_eq!(r.tasks, Some(3));
    }

    #[test]
    fn sampler_rereads_open_files() {
        let (d, cg) = fake_scope(&[
            ("memory.current", "100\n"),
            ("cpu.stat", "usage_usec 5\n"),
            ("pids.current", "2\n"),
        ]);
        let mut s = Sampler::default();
        assert_eq!(s.read(Some(&cg), None, &[]).rss_bytes, Some(100));
        std::fs::write(d.path().join("memory.current"), "200\n").unwrap();
        let r = s.read(Some(&cg), None, &[]);
        assert_eq!(
            (r.rss_bytes, r.cpu_usec, r.tasks, r.source),
            (Some(200), Some(5), Some(2), "cgroup")
        );
        s.retain(&Default::default());
        assert!(s.open.is_empty());
    }

    #[test]
    fn reading_falls_back_to_procfs() {
        let me = std::process::id().to_string();
        let (_d, cg) = fake_scope(&[("cgroup.procs", &me), ("cpu.stat", "usage_usec 7\n")]);
        let r = read(Some(&cg), None, &[]);
        assert_eq!(r.source, "procfs");
        assert!(r.rss_bytes.unwrap() > 0);
        assert_eq!(r.cpu_usec, Some(7));
        assert!(r.tasks.unwrap() >= 1);
    }

    #[test]
    fn quota_reports_limits_and_breaches() {
        let (_d, cg) = fake_scope(&[
            ("memory.max", "52428800\n"),
            ("pids.max", "20\n"),
            ("cpu.max", "20000 100000\n"),
            ("memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n"),
            ("pids.events", "max 31\n"),
        ]);
        let q = quota(Some(&cg), &WorkspaceSpec::new("x"), &[]);
        assert!(q.enforced);
        assert_eq!(q.mem_limit, Some(50 << 20));
        assert_eq!(q.nproc_limit, Some(20));
        assert_eq!(q.cpu_quota_percent, Some(20));
        let kinds: Vec<(&str, u64)> = q
            .breaches
            .iter()
            .map(|b| (b.kind.as_str(), b.count))
            .collect();
        assert_eq!(
            kinds,
            [("memory.max", 7), ("memory.oom_kill", 1), ("pids.max", 31)]
        );
    }

    #[test]
    fn refused_forks_counted_in_leaves_are_summed() {
        let (d, cg) = fake_scope(&[("pids.max", "20\n"), ("pids.events", "max 0\n")]);
        std::fs::create_dir(d.path().join("t1")).unwrap();
        std::fs::write(d.path().join("t1/pids.events"), "max 40\n").unwrap();
        let q = quota(Some(&cg), &WorkspaceSpec::new("x"), &[]);
        assert_eq!(
            q.breaches,
            [Breach {
                kind: "pids.max".into(),
                count: 40
            }]
        );
    }

    #[test]
    fn quota_report_only_uses_the_spec() {
        let mut spec = WorkspaceSpec::new("x");
        spec.quota_enforce = QuotaEnforce::ReportOnly;
        spec.soma.mem_max_bytes = Some(8 << 20);
        let seen = [Breach {
            kind: "memory.max (report-only)".into(),
            count: 2,
        }];
        let q = quota(None, &spec, &seen);
        assert!(!q.enforced);
        assert_eq!(q.mem_limit, Some(8 << 20));
        assert_eq!(q.breaches, seen);
    }

    #[test]
    fn cpu_figures() {
        assert_eq!(cpu_percent(0, 200_000, Duration::from_secs(1)), Some(20.0));
        assert_eq!(cpu_percent(10, 5, Duration::from_secs(1)), None);
        assert_eq!(cpu_cores(Some(150)).min(2), cpu_cores(Some(150)));
        assert_eq!(cpu_cores(Some(20)), 1);
    }
}
