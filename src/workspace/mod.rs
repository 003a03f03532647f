//! Workspaces: validation of specs, the limits they ask for, and the backends
//! that make them real (systemd scopes, a delegated cgroup subtree, or plain
//! process groups). The supervisor owns the records; this module owns the rules.

pub mod backend;
pub mod budget;
pub mod command;
pub mod pipeline;
pub mod restart;
pub mod saved;
pub mod state;
pub mod stats;

use shipote_protocol::{QuotaEnforce, Soma, WorkspaceSpec};

/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

/// Smallest memory limit accepted (anything lower OOM-kills any real program).
pub const MIN_MEMORY_BYTES: u64 = 1 << 20;

/// Longest TTL accepted: one year.
pub const MAX_TTL_MS: u64 = 365 * 24 * 3600 * 1000;

/// Checks a label: 1-64 characters of `[A-Za-z0-9_.-]`, not starting with `.`
/// or `-`.
pub fn validate_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("label is empty; use 1-64 characters of letters, digits, '_', '.', '-'".into());
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(format!("label is longer than {MAX_LABEL_CHARS} characters"));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "label {:?} contains {c:?}; use only letters, digits, '_', '.', '-'",
            label.escape_debug().to_string()
        ));
    }
    if label.starts_with(['.', '-']) {
        return Err(format!("label {label:?} must not start with '.' or '-'"));
    }
    Ok(())
}

/// Checks a whole spec; the message names the offending field.
pub fn validate_spec(spec: &WorkspaceSpec) -> Result<(), String> {
    validate_label(&spec.label)?;
    let s = &spec.soma;
    for (name, v) in [
        ("mem_max_bytes", s.mem_max_bytes),
        ("mem_high_bytes", s.mem_high_bytes),
    ] {
        if let Some(v) = v {
            if v < MIN_MEMORY_BYTES {
                return Err(format!(
                    "{name} = {v} is below the minimum of 1 MiB ({MIN_MEMORY_BYTES} bytes)"
                ));
            }
        }
    }
    if s.tasks_max == Some(0) {
        return Err("tasks_max = 0 would forbid every process; use at least 1".into());
    }
    if let Some(p) = s.cpu_quota_percent {
        if p == 0 {
            return Err(
                "cpu_quota_percent = 0 would stop every process; use at least 1 (1% of one CPU)"
                    .into(),
            );
        }
        if p > 100_000 {
            return Err(format!(
                "cpu_quota_percent = {p} is above 100000 (1000 CPUs)"
            ));
        }
    }
    for (name, v) in [("cpu_weight", s.cpu_weight), ("io_weight", s.io_weight)] {
        if let Some(v) = v {
            if !(1..=10_000).contains(&v) {
                return Err(format!("{name} = {v} is outside 1-10000"));
            }
        }
    }
    if let Some(ttl) = spec.ttl_ms {
        if ttl == 0 {
            return Err("ttl_ms = 0 would expire at once; leave it unset for no TTL".into());
        }
        if ttl > MAX_TTL_MS {
            return Err(format!("ttl_ms = {ttl} is longer than a year"));
        }
    }
    Ok(())
}

/// The unit name of a workspace: `shipote-<label>-<ulid>.scope`.
pub fn unit_name(label: &str, id: &shipote_protocol::WorkspaceId) -> String {
    format!("shipote-{label}-{id}.scope")
}

/// The name of a command's leaf cgroup in its workspace: `cmd-<id>`.
pub fn leaf_name(command: impl std::fmt::Display) -> String {
    format!("cmd-{command}")
}

/// One requested limit: its systemd property, the value, the cgroup controller
/// that enforces it and the spec field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRequest {
    /// systemd property name.
    pub property: &'static str,
    /// Value in systemd's unit.
    pub value: u64,
    /// cgroup v2 controller that enforces it.
    pub controller: &'static str,
    /// Field name in the spec.
    pub field: &'static str,
}

/// The limits a soma asks for, in systemd's terms.
pub fn limit_requests(soma: &Soma) -> Vec<LimitRequest> {
    let mut out = Vec::new();
    let mut push = |property, value: Option<u64>, controller, field| {
        if let Some(value) = value {
            out.push(LimitRequest {
                property,
                value,
                controller,
                field,
            });
        }
    };
    push("MemoryMax", soma.mem_max_bytes, "memory", "mem_max_bytes");
    push(
        "MemoryHigh",
        soma.mem_high_bytes,
        "memory",
        "mem_high_bytes",
    );
    push(
        "MemorySwapMax",
        soma.swap_max_bytes,
        "memory",
        "swap_max_bytes",
    );
    push("TasksMax", soma.tasks_max, "pids", "tasks_max");
    // CPUQuota=150% is 1.5 s of CPU per second.
    push(
        "CPUQuotaPerSecUSec",
        soma.cpu_quota_percent.map(|p| u64::from(p) * 10_000),
        "cpu",
        "cpu_quota_percent",
    );
    push(
        "CPUWeight",
        soma.cpu_weight.map(u64::from),
        "cpu",
        "cpu_weight",
    );
    push("IOWeight", soma.io_weight.map(u64::from), "io", "io_weight");
    out
}

/// This machine's memory in bytes (MemTotal), when /proc says.
pub fn mem_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Warnings for memory limits above all of this machine's memory (`total`):
/// accepted, as systemd does, but they can never apply; likely a typo.
pub fn beyond_this_machine(spec: &WorkspaceSpec, total: Option<u64>) -> Vec<String> {
    let Some(total) = total else {
        return Vec::new();
    };
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64);
    [
        (spec.soma.mem_max_bytes, "mem_max_bytes"),
        (spec.soma.mem_high_bytes, "mem_high_bytes"),
    ]
    .into_iter()
    .filter_map(|(v, field)| {
        let v = v.filter(|v| *v != u64::MAX && *v > total)?;
        Some(format!(
            "{} ({field}) is {}, more than this machine's {} of memory: it can never apply; \
             is it a typo?",
            flag(field),
            gib(v),
            gib(total)
        ))
    })
    .collect()
}

/// The `shipote ws create` option that sets a spec field.
fn flag(field: &str) -> &'static str {
    match field {
        "mem_max_bytes" => "--mem",
        "mem_high_bytes" => "--mem-high",
        "swap_max_bytes" => "--swap",
        "tasks_max" => "--tasks",
        "cpu_quota_percent" => "--cpu",
        "cpu_weight" => "--cpu-weight",
        "io_weight" => "--io-weight",
        _ => "a limit",
    }
}

/// Warnings for every requested limit whose controller is not in `available`.
pub fn unenforceable(spec: &WorkspaceSpec, available: &[String], why: &str) -> Vec<String> {
    limit_requests(&spec.soma)
        .into_iter()
        .filter(|l| !available.iter().any(|a| a == l.controller))
        .map(|l| {
            // Memory and tasks are still sampled from /proc (every 2 s)
            // and their breaches reported; the rest cannot be.
            let sampled = matches!(l.controller, "memory" | "pids");
            let verb = match (spec.quota_enforce, sampled) {
                (QuotaEnforce::Hard, _) => "not enforced",
                (QuotaEnforce::ReportOnly, true) => {
                    "measured from /proc every 2 s (breaches reported), not by the kernel"
                }
                (QuotaEnforce::ReportOnly, false) => "neither enforced nor measured",
            };
            format!(
                "{} controller {why}; {} ({}) is {verb}",
                l.controller,
                flag(l.field),
                l.field
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_limit_beyond_the_machine_is_named() {
        let mut spec = WorkspaceSpec::new("x".to_owned());
        spec.soma.mem_max_bytes = Some(999_999 << 40);
        let w = beyond_this_machine(&spec, Some(8 << 30));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("--mem (mem_max_bytes) is") && w[0].contains("8.0 GiB"),
            "{w:?}"
        );
        spec.soma.mem_max_bytes = Some(4 << 30);
        assert!(beyond_this_machine(&spec, Some(8 << 30)).is_empty());
        spec.soma.mem_max_bytes = Some(u64::MAX);
        assert!(
            beyond_this_machine(&spec, Some(8 << 30)).is_empty(),
            "max is no limit"
        );
    }

    #[test]
    fn labels() {
        assert!(validate_label("web-1.dev_x").is_ok());
        assert!(validate_label("").unwrap_err().contains("empty"));
        assert!(validate_label(&"a".repeat(65))
            .unwrap_err()
            .contains("longer"));
        assert!(validate_label("../etc").is_err());
        assert!(validate_label("a/b").unwrap_err().contains("'/'"));
        assert!(validate_label("-x").unwrap_err().contains("must not start"));
        assert!(validate_label("a b").is_err());
        assert!(validate_label("é").is_err());
        assert!(validate_label("a\nb").unwrap_err().contains("\\n"));
    }

    #[test]
    fn limits_zero_and_huge() {
        let mut spec = WorkspaceSpec::new("x");
        spec.soma.mem_max_bytes = Some(0);
        assert!(validate_spec(&spec).unwrap_err().contains("mem_max_bytes"));
        spec.soma.mem_max_bytes = Some(u64::MAX);
        assert!(
            validate_spec(&spec).is_ok(),
            "u64::MAX is systemd's infinity"
        );
        spec.soma.tasks_max = Some(0);
        assert!(validate_spec(&spec).unwrap_err().contains("tasks_max"));
        spec.soma.tasks_max = Some(u64::MAX);
        spec.soma.cpu_quota_percent = Some(0);
        assert!(validate_spec(&spec)
            .unwrap_err()
            .contains("cpu_quota_percent"));
        spec.soma.cpu_quota_percent = Some(u32::MAX);
        assert!(validate_spec(&spec).unwrap_err().contains("above"));
        spec.soma.cpu_quota_percent = Some(150);
        spec.soma.cpu_weight = Some(0);
        assert!(validate_spec(&spec).unwrap_err().contains("cpu_weight"));
        spec.soma.cpu_weight = None;
        spec.ttl_ms = Some(0);
        assert!(validate_spec(&spec).unwrap_err().contains("ttl_ms"));
        spec.ttl_ms = Some(u64::MAX);
        assert!(validate_spec(&spec).is_err());
    }

    #[test]
    fn limits_map_to_systemd_properties() {
        let soma = Soma {
            mem_max_bytes: Some(512 << 20),
            tasks_max: Some(20),
            cpu_quota_percent: Some(20),
            ..Soma::default()
        };
        let l = limit_requests(&soma);
        assert_eq!(l[0].property, "MemoryMax");
        assert_eq!(l[1].property, "TasksMax");
        assert_eq!((l[2].property, l[2].value), ("CPUQuotaPerSecUSec", 200_000));
    }

    #[test]
    fn missing_controllers_are_warned_about() {
        let mut spec = WorkspaceSpec::new("x");
        spec.soma.mem_max_bytes = Some(64 << 20);
        spec.soma.io_weight = Some(100);
        let w = unenforceable(
            &spec,
            &["memory".into(), "pids".into()],
            "is not delegated to the user manager",
        );
        assert_eq!(
            w,
            ["io controller is not delegated to the user manager; --io-weight (io_weight) is not enforced"]
        );
    }
}
