//! The README's tour, run as written (issue #19): every ```console block of
//! README.md, top to bottom, each `$ ` line run by bash against a real
//! daemon (the cgroup backend of these hosts, as the tour says), its stdout
//! and stderr compared with the lines the README shows under it.
//!
//! What may differ between runs is made alike on both sides first: ids
//! (ULIDs), numbers with their units (pids, sizes, durations, times), the
//! socket and flow paths, runs of spaces (column widths follow the values).
//! An id the README shows is replaced, in the commands after it, by the id
//! the daemon gave at the same place, so `shipote logs web <id>` asks for
//! the command just started. `warning:` lines (ws create on a host whose
//! limits are not enforced says so) are not compared; the README says they
//! come. Not run: `shipoted &` (the test starts the daemon) and `shipote
//! top` (full screen: tests/top.rs drives it in tmux). A command whose
//! comment says `(host-specific)` has only the first word of each line
//! compared.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;

/// One `$ ` line and the output the README shows for it.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn steps(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    for (i, l) in readme.lines().enumerate() {
        if l.starts_with("```") {
            in_console = l.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(cmd) = l.strip_prefix("$ ") {
            steps.push(Step {
                line: i + 1,
                command: cmd.to_owned(),
                expected: Vec::new(),
            });
        } else if let Some(s) = steps.last_mut() {
            s.expected.push(l.to_owned());
        }
    }
    steps
}

fn is_ulid_char(c: u8) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"ILOU".contains(&c))
}

/// The ULIDs in `text`, in order.
fn ulids(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 26 <= b.len() {
        let starts = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let ends = i + 26 == b.len() || !b[i + 26].is_ascii_alphanumeric();
        if starts && ends && b[i..i + 26].iter().all(|&c| is_ulid_char(c)) {
            out.push(text[i..i + 26].to_owned());
            i += 26;
        } else {
            i += 1;
        }
    }
    out
}

const UNITS: [&str; 12] = [
    "ms", "s", "min", "h", "d", "B", "KiB", "MiB", "GiB", "TiB", "ms)", "s)",
];

/// A line with what varies between runs made alike.
fn normalize(line: &str) -> String {
    let mut line = line.to_owned();
    for id in ulids(&line.clone()) {
        line = line.replace(&id, "<ID>");
    }
    let mut out: Vec<String> = Vec::new();
    for token in line.split_whitespace() {
        // Digit runs become one mark: pids, sizes, times, versions.
        let mut t = String::new();
        let mut in_digits = false;
        for c in token.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    t.push('#');
                }
                in_digits = true;
            } else {
                in_digits = false;
                t.push(c);
            }
        }
        // `-` is a figure not known yet (a CPU % before the first sample).
        let numeric = t == "-" || (!t.is_empty() && t.chars().all(|c| "#.%,:".contains(c)));
        let unit = UNITS.contains(&t.as_str());
        match out.last() {
            // `2.2 s`, `9 min 57 s`, `1.7 MiB`, `0 B`: one quantity.
            Some(prev) if prev == "<Q>" && (numeric || unit) => {}
            _ if numeric => out.push("<Q>".into()),
            // `1 process` or `4 processes`: how many varies.
            _ if t == "processes" => out.push("process".into()),
            _ => out.push(t),
        }
    }
    out.join(" ")
}

#[test]
fn the_readme_tour_runs_as_written() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let steps = steps(&readme);
    assert!(steps.len() > 40, "the tour has {} steps", steps.len());

    let root = CgroupRoot::new("tour");
    let dir = root.0.clone();
    let d = Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"]).arg(&dir);
    });
    let bin = Path::new(cli_bin()).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let flows = d.dir.path().join("state/flows");
    // The README's ids → this run's.
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut last_status = 0;
    let mut failures = Vec::new();
    // SHIPOTE_TOUR_WRITE=FILE: the README as this run printed it (ids put
    // back to the README's), to update the tour after a change of output.
    let mut printed: Vec<(usize, usize, Vec<String>)> = Vec::new();

    for step in &steps {
        let cmd = step.command.trim();
        if cmd.starts_with("shipoted") || cmd.starts_with("shipote top") {
            continue;
        }
        let mut command = step.command.clone();
        for (readme_id, ours) in &ids {
            command = command.replace(readme_id, ours);
        }
        command = command.replace("/run/user/1000/shipote/flows", flows.to_str().unwrap());
        let actual = if cmd == "echo $?" {
            format!("{last_status}\n")
        } else {
            let o = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("exec 2>&1\n{command}"))
                .current_dir(repo)
                .env("PATH", &path)
                .env("SHIPOTE_SOCKET", &d.socket)
                .env_remove("XDG_RUNTIME_DIR")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            last_status = o.status.code().unwrap_or(128);
            String::from_utf8_lossy(&o.stdout)
                .replace(d.socket.to_str().unwrap(), "/run/user/1000/shipote.sock")
                .replace(flows.to_str().unwrap(), "/run/user/1000/shipote/flows")
        };
        let actual: Vec<&str> = actual
            .lines()
            .filter(|l| !l.starts_with("warning:"))
            .collect();
        // Ids at the same places: learn the mapping.
        let theirs: Vec<String> = step.expected.iter().flat_map(|l| ulids(l)).collect();
        let ours: Vec<String> = actual.iter().flat_map(|l| ulids(l)).collect();
        for (t, o) in theirs.iter().zip(&ours) {
            ids.entry(t.clone()).or_insert_with(|| o.clone());
        }
        let keys_only = step.command.contains("(host-specific)");
        let view = |l: &str| {
            let n = normalize(l);
            if keys_only {
                n.split(' ').next().unwrap_or("").to_owned()
            } else {
                n
            }
        };
        let want: Vec<String> = step.expected.iter().map(|l| view(l)).collect();
        let got: Vec<String> = actual.iter().map(|l| view(l)).collect();
        let back = |l: &str| {
            let mut l = l.to_owned();
            for (readme_id, ours) in &ids {
                l = l.replace(ours, readme_id);
            }
            l
        };
        printed.push((
            step.line,
            step.expected.len(),
            actual.iter().map(|l| back(l)).collect(),
        ));
        if want != got {
            failures.push(format!(
                "README.md:{}: $ {}\n--- the README shows:\n{}\n--- it printed:\n{}\n",
                step.line,
                step.command,
                step.expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    if let Some(out) = std::env::var_os("SHIPOTE_TOUR_WRITE") {
        let mut lines: Vec<String> = readme.lines().map(str::to_owned).collect();
        for (line, old, new) in printed.into_iter().rev() {
            lines.splice(line..line + old, new);
        }
        std::fs::write(out, lines.join("\n") + "\n").unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {} tour steps differ from the README:\n\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n")
    );
}

#[test]
fn normalizing_keeps_words_and_merges_quantities() {
    assert_eq!(
        normalize("01M8CK13TKWSFBQF1S0KNVECAB  web    2.2 s   9 min 57 s  reap     shipote-web-01M8CK13TKWSFBQF1S0KNVECAB.scope"),
        "<ID> web <Q> reap shipote-web-<ID>.scope"
    );
    assert_eq!(
        normalize("sleep  23665  running   0         0 B"),
        "sleep <Q> running <Q>"
    );
    assert_eq!(
        normalize("pong from /x.sock in 0.20 ms"),
        "pong from /x.sock in <Q>"
    );
    assert_ne!(normalize("exited 0"), normalize("killed by SIGTERM"));
}
