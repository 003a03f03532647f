//! The CLI against a daemon on "another host" (issue #20): a real sshd of
//! the test's own on loopback (generated host and user keys, its own
//! config), the system `ssh` on the client side, `shipote system
//! dial-stdio` on the far side, and a real daemon behind it.

mod common;
#[path = "support/sshd.rs"]
mod sshd;

use common::*;
use sshd::Sshd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn start_sshd() -> Sshd {
    Sshd::start(Path::new(cli_bin()))
}

/// The CLI with `--host`, through `sshd`.
fn remote(sshd: &Sshd, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(cli_bin())
        .arg("--host")
        .arg(url)
        .args(args)
        .env("SHIPOTE_SSH_COMMAND", sshd.ssh_command())
        .env_remove("SHIPOTE_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn url_of(socket: &Path) -> String {
    format!("ssh://testhost{}", socket.display())
}

#[test]
fn the_cli_works_on_a_daemon_behind_ssh() {
    let sshd = start_sshd();
    let root = CgroupRoot::new("remote");
    let d = Daemon::start_cgroup(&root.0);
    let url = url_of(&d.socket);

    let o = remote(&sshd, &url, &["ping"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("pong from {url} in ")),
        "{}",
        stdout(&o)
    );

    let o = remote(&sshd, &url, &["ws", "create", "far"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // What was made there is seen here, and locally there.
    assert!(stdout(&d.cli(&["ws", "ls"])).contains(" far "));

    // run --wait: output as it comes, the status as ours.
    let o = remote(
        &sshd,
        &url,
        &[
            "run",
            "far",
            "--wait",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert!(stderr(&o).contains("err"), "{}", stderr(&o));

    let o = remote(&sshd, &url, &["--json", "ps", "far"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ps = json(&o);
    assert_eq!(ps[0]["exit_status"], 3, "{ps}");

    // A refused request is the daemon's answer, exit 1, as locally.
    let o = remote(&sshd, &url, &["ws", "create", "bad/label"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // No daemon at that socket there: the far side says so.
    let gone = url_of(&PathBuf::from("/nonexistent/shipote.sock"));
    let o = remote(&sshd, &gone, &["ping"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("ssh://testhost/nonexistent/shipote.sock")
            && stderr(&o).contains("no daemon at"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_host_that_is_down_is_named_with_sshs_reason() {
    let sshd = start_sshd();
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = sshd.dir.path().join("down_config");
    std::fs::write(
        &config,
        format!("Host down\n  HostName 127.0.0.1\n  Port {port}\n  BatchMode yes\n"),
    )
    .unwrap();
    let o = Command::new(cli_bin())
        .args(["--host", "ssh://down", "ping"])
        .env(
            "SHIPOTE_SSH_COMMAND",
            format!("ssh -F {}", config.display()),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("cannot reach shipoted on ssh://down") && err.contains("Connection refused"),
        "{err}"
    );
    // A URL that is not one: said before anything runs.
    let o = Command::new(cli_bin())
        .args(["--host", "tcp://x", "ping"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ssh://[USER@]HOST"), "{}", stderr(&o));
}

/// The CLI with a private contexts file.
fn with_config(config: &Path, sshd: &Sshd, args: &[&str]) -> std::process::Output {
    Command::new(cli_bin())
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env("SHIPOTE_SSH_COMMAND", sshd.ssh_command())
        .env_remove("SHIPOTE_SOCKET")
        .env_remove("SHIPOTE_HOST")
        .env_remove("SHIPOTE_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn contexts_name_hosts_and_several_are_asked_at_once() {
    let sshd = start_sshd();
    let root_near = CgroupRoot::new("ctx-near");
    let near = Daemon::start_cgroup(&root_near.0);
    let root_far = CgroupRoot::new("ctx-far");
    let far = Daemon::start_cgroup(&root_far.0);
    assert!(near.cli(&["ws", "create", "near-ws"]).status.success());
    assert!(far.cli(&["ws", "create", "far-ws"]).status.success());
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| with_config(config.path(), &sshd, args);
    let near_socket = near.socket.to_str().unwrap();

    let o = run(&["context", "add", "far", &url_of(&far.socket)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A host that is down, for the merged view below.
    assert!(run(&["context", "add", "down", "ssh://127.0.0.1:1"])
        .status
        .success());
    let o = run(&["context", "add", "bad", "tcp://x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ssh://"), "{}", stderr(&o));
    let ls = stdout(&run(&["context", "ls"]));
    assert!(
        ls.contains("* ") && ls.contains("default") && ls.contains("far"),
        "{ls}"
    );
    assert!(config.path().join("shipote/contexts.toml").exists());

    // --context for one command; `context use` for every one after.
    let o = run(&["--context", "far", "ws", "ls"]);
    assert!(stdout(&o).contains("far-ws"), "{}", stderr(&o));
    assert!(run(&["context", "use", "far"]).status.success());
    let o = run(&["ws", "ls"]);
    assert!(
        stdout(&o).contains("far-ws") && !stdout(&o).contains("near-ws"),
        "{}",
        stderr(&o)
    );
    // An explicit --socket wins over the context in use (as DOCKER_HOST does).
    let o = run(&["--socket", near_socket, "ws", "ls"]);
    assert!(stdout(&o).contains("near-ws"), "{}", stderr(&o));
    let o = run(&["--socket", near_socket, "--context", "default", "ws", "ls"]);
    assert!(stdout(&o).contains("near-ws"), "{}", stderr(&o));

    // Several at once: one table under HOST; the host that is down has a
    // line saying why, and the others are still shown (exit 1: partial).
    let o = run(&[
        "--socket",
        near_socket,
        "--context",
        "default",
        "--context",
        "far",
        "--context",
        "down",
        "ws",
        "ls",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let table = stdout(&o);
    let line = |host: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{host} ")))
            .unwrap_or("")
            .to_owned()
    };
    assert!(table.starts_with("HOST"), "{table}");
    assert!(line("default").contains("near-ws"), "{table}");
    assert!(line("far").contains("far-ws"), "{table}");
    assert!(line("down").contains("error:"), "{table}");
    let o = run(&[
        "--json",
        "--socket",
        near_socket,
        "--all-contexts",
        "ws",
        "ls",
    ]);
    assert_eq!(o.status.code(), Some(1), "one host is down");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let hosts: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["default", "down", "far"]);
    assert_eq!(v[2]["result"][0]["label"], "far-ws", "{v}");
    // Not for changes.
    let o = run(&[
        "--context",
        "default",
        "--context",
        "far",
        "ws",
        "create",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("read-only") || stderr(&o).contains("ws ls, ps"),
        "{}",
        stderr(&o)
    );

    assert!(run(&["context", "rm", "far"]).status.success());
    let ls = stdout(&run(&["context", "ls"]));
    assert!(!ls.contains("far") && ls.contains("* "), "{ls}");
}
