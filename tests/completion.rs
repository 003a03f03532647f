//! Shell completion asks the running daemon for names (issue #19): bash's
//! script, as `SHIPOTE_COMPLETE=bash shipote` prints it (the package installs
//! the same), sourced in a real bash and called as bash calls it on Tab.

mod common;

use common::*;

/// What bash offers after `words` (the last one being completed).
fn complete(d: &Daemon, words: &[&str]) -> Vec<String> {
    let script = std::process::Command::new(cli_bin())
        .env("SHIPOTE_COMPLETE", "bash")
        .output()
        .unwrap();
    assert!(script.status.success());
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let program = format!(
        "source /dev/stdin\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n_clap_complete_shipote shipote '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" "),
        words[cword],
        words[cword - 1],
    );
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(program)
        .env("SHIPOTE_SOCKET", &d.socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&script.stdout)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn tab_completes_workspace_command_and_pipeline_names_from_the_daemon() {
    let root = CgroupRoot::new("complete");
    let d = Daemon::start_cgroup(&root.0);
    for ws in ["web", "worker", "db"] {
        assert!(d.cli(&["ws", "create", ws]).status.success());
    }
    let sleeper = run(&d, "web", &["sleep", "300"]);

    let got = complete(&d, &["shipote", "ps", "w"]);
    assert_eq!(got, ["web", "worker"], "labels starting with w");
    let got = complete(&d, &["shipote", "logs", ""]);
    assert!(got.contains(&"db".to_owned()), "{got:?}");

    // A command of the workspace just named: its label and its id.
    let got = complete(&d, &["shipote", "stop", "web", ""]);
    assert!(got.contains(&"sleep".to_owned()), "{got:?}");
    assert!(got.contains(&sleeper), "{got:?}");
    assert!(complete(&d, &["shipote", "stop", "db", "s"]).is_empty());

    // Subcommands still complete without a daemon, names just do not.
    let got = complete(&d, &["shipote", "pi"]);
    assert_eq!(got, ["ping", "pipeline"]);
    // The daemon gone: no names, at once (the shell never hangs on Tab).
    let socket = d.socket.clone();
    drop(d);
    let started = std::time::Instant::now();
    let o = std::process::Command::new(cli_bin())
        .args(["--", "shipote", "ps", ""])
        .env("SHIPOTE_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .env("SHIPOTE_SOCKET", &socket)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("web"));
}
