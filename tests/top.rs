//! `shipote top` (issue #19) driven as a person drives it: in an 80x24
//! tmux window on a private tmux server, keys sent with send-keys, the
//! screen read with capture-pane, against a real daemon on the cgroup
//! backend of these hosts. Every change a key asks for is checked through
//! the CLI, not the screen.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// A private tmux server, killed on drop.
struct Tmux(String);

impl Tmux {
    fn new(name: &str) -> Self {
        Self(format!("shipote-test-{name}-{}", std::process::id()))
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux is installed (tests/all.sh installs it)");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.0, "has-session", "-t", "top"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Waits until the screen satisfies `cond`; the last screen on failure.
    fn until(&self, what: &str, cond: impl Fn(&str) -> bool) {
        let mut last = String::new();
        let ok = eventually(Duration::from_secs(15), || {
            last = self.screen();
            cond(&last)
        });
        assert!(ok, "waited for {what}; the screen:\n{last}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

fn setup(name: &str) -> (CgroupRoot, Daemon) {
    let root = CgroupRoot::new(name);
    let dir = root.0.clone();
    let d = Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"]).arg(&dir);
    });
    (root, d)
}

fn line_with<'a>(screen: &'a str, text: &str) -> &'a str {
    screen.lines().find(|l| l.contains(text)).unwrap_or("")
}

#[test]
fn top_shows_workspaces_commands_and_logs_and_its_keys_act() {
    let (_root, d) = setup("top");
    for ws in ["web", "db"] {
        let o = d.cli(&["ws", "create", ws, "--mem", "512M"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let ticker = run(
        &d,
        "web",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
        ],
    );
    let sleeper = run(&d, "web", &["sleep", "300"]);
    run(&d, "db", &["sleep", "300"]);

    let tmux = Tmux::new("top");
    let top = format!(
        "exec {} --socket {} top --interval 300ms",
        cli_bin(),
        d.socket.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        "24",
        &top,
    ]);

    // Both workspaces, their limits, web's commands, and the first command's
    // log followed as it grows.
    tmux.until("both workspaces", |s| {
        s.contains("2 workspaces, 3 running commands")
            && line_with(s, "web  ").contains("512.0 MiB")
            && s.contains("db  ")
    });
    tmux.until("web's commands with their own usage", |s| {
        s.contains("Commands of web")
            && line_with(s, &ticker[ticker.len() - 8..]).contains("running")
            && line_with(s, &ticker[ticker.len() - 8..]).contains("MiB")
            && line_with(s, &sleeper[sleeper.len() - 8..]).contains("sleep")
    });
    tmux.until("the log pane following the ticker", |s| {
        s.contains("(following)") && s.lines().filter(|l| l.contains("tick ")).count() >= 2
    });
    let first = tmux.screen();
    let last_tick = |s: &str| {
        s.lines()
            .filter_map(|l| l.split("tick ").nth(1))
            .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    let before = last_tick(&first);
    tmux.until("newer log lines", |s| last_tick(s) > before);

    // Commands pane, second command, s: asks first; y stops it.
    tmux.keys(&["Tab", "Down", "s"]);
    tmux.until("the stop question", |s| s.contains("stop command sleep"));
    tmux.keys(&["y"]);
    assert!(
        eventually(Duration::from_secs(10), || command(&d, "web", &sleeper)
            ["alive"]
            == false),
        "{}",
        tmux.screen()
    );
    tmux.until("the stopped state", |s| s.contains("stopped command sleep"));

    // r restarts it: same id, a new process.
    tmux.keys(&["r", "y"]);
    assert!(
        eventually(Duration::from_secs(10), || command(&d, "web", &sleeper)
            ["alive"]
            == true),
        "{}",
        tmux.screen()
    );
    // k sends SIGKILL; it has no restart policy, so it stays ended.
    tmux.until("restarted", |s| {
        line_with(s, &sleeper[sleeper.len() - 8..]).contains("running")
    });
    tmux.keys(&["k"]);
    tmux.until("the kill question", |s| {
        s.contains("SIGKILL to command sleep")
    });
    tmux.keys(&["y"]);
    assert!(eventually(Duration::from_secs(10), || {
        command(&d, "web", &sleeper)["exit_signal"] == 9
    }));
    tmux.until("SIGKILL in the state column", |s| {
        line_with(s, &sleeper[sleeper.len() - 8..]).contains("SIGKILL")
    });
    // Any other key than y cancels.
    tmux.keys(&["Up", "s", "n"]);
    tmux.until("cancelled", |s| s.contains("cancelled"));
    assert_eq!(command(&d, "web", &ticker)["alive"], true);

    // ? shows the help; any key closes it.
    tmux.keys(&["?"]);
    tmux.until("the help", |s| s.contains("shipote top: keys"));
    tmux.keys(&["x"]);
    tmux.until("the help closed", |s| !s.contains("shipote top: keys"));

    // / filters the workspaces; Esc clears.
    tmux.keys(&["/", "d", "b", "Enter"]);
    tmux.until("only db", |s| {
        s.contains("matching \"db\"") && !line_with(s, "web  ").contains("MiB")
    });
    tmux.until("db's commands", |s| s.contains("Commands of db"));
    tmux.keys(&["Escape"]);
    tmux.until("both again", |s| {
        line_with(s, "web  ").contains("MiB") && line_with(s, "db  ").contains("MiB")
    });

    // A wider window shows more: the RSS history column.
    tmux.run(&["resize-window", "-t", "top", "-x", "120", "-y", "40"]);
    tmux.until("the wide layout", |s| s.contains("RSS HISTORY"));
    tmux.run(&["resize-window", "-t", "top", "-x", "80", "-y", "24"]);
    tmux.until("the narrow layout", |s| !s.contains("RSS HISTORY"));

    // S on the db workspace stops it.
    tmux.keys(&["Tab", "Down", "S"]);
    tmux.until("the workspace question", |s| {
        s.contains("stop workspace db")
    });
    tmux.keys(&["y"]);
    assert!(eventually(Duration::from_secs(10), || {
        !stdout(&d.cli(&["ws", "ls"])).contains(" db ")
    }));
    tmux.until("one workspace left", |s| {
        s.contains("1 workspace, 1 running command")
    });

    // q leaves, and the terminal is given back.
    tmux.keys(&["q"]);
    assert!(eventually(Duration::from_secs(5), || !tmux.alive()));
}

#[test]
fn top_without_a_terminal_or_a_daemon_says_what_to_do() {
    let (_root, d) = setup("topnotty");
    let o = d.cli(&["top"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let o = cli(&dir.path().join("none.sock"), &["top"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot reach shipoted"),
        "{}",
        stderr(&o)
    );
}
