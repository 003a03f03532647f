//! The red-team suite (issue #17): a hostile command inside a sandboxed
//! workspace tries every escape SECURITY.md says it cannot make, and each is
//! shown to fail; what it can still do (the documented limits) is shown too.
//! Real daemon, real namespaces, the cgroup fallback of these hosts; the VM
//! tier runs the systemd case as an unprivileged user.

mod common;

use common::*;
use std::time::Duration;

fn setup(name: &str, create: &[&str]) -> (CgroupRoot, Daemon) {
    let root = CgroupRoot::new(name);
    let d = Daemon::start_cgroup(&root.0);
    let mut args = vec!["ws", "create", "box"];
    args.extend_from_slice(create);
    let o = d.cli(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (root, d)
}

/// `sh -c script` in `ws`, to its end: its stdout and stderr.
fn sh(d: &Daemon, ws: &str, script: &str) -> String {
    run_to_end(d, ws, &["sh", "-c", script])
}

fn pid_of(d: &Daemon, ws: &str, id: &str) -> u32 {
    command(d, ws, id)["pid"].as_u64().unwrap() as u32
}

/// The init of the PID namespace command `pid` runs in, by its name.
fn init_of(pid: u32) -> u32 {
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
                && std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .ok()
                    .as_deref()
                    == Some("shipote-init\n")
        })
        .expect("the workspace's init")
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

#[test]
fn a_sandboxed_command_can_signal_neither_the_daemon_nor_another_workspace() {
    let (_root, d) = setup("sig", &["--network", "none"]);
    assert!(d.cli(&["ws", "create", "other"]).status.success());
    let victim = run(&d, "other", &["sleep", "300"]);
    let victim_pid = pid_of(&d, "other", &victim);
    let daemon = d.child.id();
    let out = sh(
        &d,
        "box",
        &format!(
            "for s in STOP CONT TERM KILL; do kill -$s {daemon} 2>/dev/null && echo daemon-$s; done; \
             for s in TERM KILL; do kill -$s {victim_pid} 2>/dev/null && echo victim-$s; done; \
             kill -KILL -1 2>/dev/null; echo done"
        ),
    );
    assert_eq!(out, "done\n");
    assert!(alive(daemon), "the daemon lives");
    assert_eq!(command(&d, "other", &victim)["alive"], true);
    // It still serves.
    assert_eq!(run_to_end(&d, "other", &["echo", "served"]), "served\n");
}

#[test]
fn its_proc_shows_only_its_own_workspace_and_pids_the_cli_shows_are_the_hosts() {
    let (_root, d) = setup("proc", &["--read-only"]);
    let long = run(&d, "box", &["sleep", "300"]);
    let host_pid = pid_of(&d, "box", &long);
    // The host's pid is a real process of the host, running sleep.
    let cmdline = std::fs::read_to_string(format!("/proc/{host_pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\u{0}300\u{0}");
    let out = sh(
        &d,
        "box",
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | sort",
    );
    let seen: Vec<&str> = out.lines().map(str::trim).collect();
    // Its init, the sleeping command, the probe itself (sh, tr, sort and
    // the subshell around the loop): nothing of the host's, no daemon.
    assert!(seen.contains(&"shipote-init --pid-init"), "{out}");
    assert!(seen.contains(&"sleep 300"), "{out}");
    assert!(!out.contains("shipoted"), "{out}");
    assert!(seen.len() <= 8, "{out}");
    // Inside, the init is pid 1 and the command a small pid.
    let out = sh(
        &d,
        "box",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "shipote-init --pid-init");
    let inner: u32 = lines[1].parse().unwrap();
    assert!(inner < 100, "{out}");
}

#[test]
fn its_init_cannot_be_killed_traced_or_read_from_inside() {
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("key"), "TOPSECRET").unwrap();
    let hidden = secret.path().to_str().unwrap().to_owned();
    let (_root, d) = setup("init", &["--hide", &hidden, "--network", "none"]);
    let probe = format!(
        "import ctypes, errno, glob, os, signal\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         for s in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP, signal.SIGINT):\n    os.kill(1, s)\n\
         r = libc.ptrace(16, 1, 0, 0)\n\
         print('ptrace init:', 'refused' if r != 0 else 'attached')\n\
         found = []\n\
         for p in glob.glob('/proc/[0-9]*'):\n\
         \x20   for path in (p + '/root{h}/key', p + '/cwd/key'):\n\
         \x20       try:\n\
         \x20           found.append(open(path).read())\n\
         \x20       except OSError:\n\
         \x20           pass\n\
         \x20   for f in glob.glob(p + '/fd/*'):\n\
         \x20       try:\n\
         \x20           fd = os.open(f, os.O_RDONLY | os.O_NONBLOCK)\n\
         \x20           found.append(os.read(fd, 64).decode(errors='replace'))\n\
         \x20       except OSError:\n\
         \x20           pass\n\
         \x20   try:\n\
         \x20       found.append(open(p + '/environ').read())\n\
         \x20   except OSError:\n\
         \x20       pass\n\
         print('secret seen:', any('TOPSECRET' in x for x in found))\n",
        h = hidden
    );
    assert_eq!(
        run_to_end(&d, "box", &["python3", "-c", &probe]),
        "ptrace init: refused\nsecret seen: False\n"
    );
    // The init lived through it: the next command still starts in there.
    assert_eq!(sh(&d, "box", "cat /proc/1/comm"), "shipote-init\n");
}

#[test]
fn a_sandboxed_command_cannot_undo_its_mounts() {
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("key"), "TOPSECRET").unwrap();
    let hidden = secret.path().to_str().unwrap().to_owned();
    let (_root, d) = setup("mounts", &["--read-only", "--hide", &hidden]);
    let out = sh(
        &d,
        "box",
        &format!(
            "mount -o remount,rw / 2>/dev/null && echo remounted; \
             umount -l {h} 2>/dev/null && echo unmounted; \
             unshare -Urm sh -c 'umount -l {h}; cat {h}/key' 2>/dev/null && echo unshared; \
             mount -t proc proc /mnt 2>/dev/null && echo mounted-proc; \
             cat {h}/key 2>/dev/null; touch /escape 2>/dev/null && echo wrote; echo done",
            h = hidden
        ),
    );
    assert_eq!(out, "done\n");
    assert!(!std::path::Path::new("/escape").exists());
}

#[test]
fn a_sandboxed_command_sees_its_own_cgroup_namespace() {
    let (_root, d) = setup("cgns", &["--network", "none"]);
    // Rooted at its own leaf: it sees itself at / and no path of the host's
    // (every hierarchy of a hybrid host's too).
    let own = sh(&d, "box", "cat /proc/self/cgroup");
    assert!(own.ends_with("0::/\n"), "{own}");
    assert!(own.lines().all(|l| l.ends_with(":/")), "{own}");
    assert!(d.cli(&["ws", "create", "open"]).status.success());
    let open = sh(&d, "open", "cat /proc/self/cgroup");
    assert!(open.len() > "0::/\n".len(), "{open}");
}

#[test]
fn a_stop_ends_the_workspaces_init_and_counts_only_its_commands() {
    let (_root, d) = setup("stop", &["--network", "none"]);
    let id = run(&d, "box", &["sleep", "300"]);
    let pid = pid_of(&d, "box", &id);
    // The init: in the command's PID namespace, by its name.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(
        nspid.split_whitespace().count() == 3,
        "in a PID namespace: {nspid}"
    );
    let init = init_of(pid);
    let o = d.cli(&["ws", "stop", "box"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 process"), "{}", stdout(&o));
    assert!(
        eventually(Duration::from_secs(5), || !alive(pid) && !alive(init)),
        "the command and the init are gone"
    );
}

#[test]
fn a_kept_sandboxed_workspace_keeps_its_pid_namespace_across_a_restart() {
    let (root, mut d) = setup("keep", &["--network", "none", "--keep-on-exit"]);
    let id = run(&d, "box", &["sleep", "300"]);
    let pid = pid_of(&d, "box", &id);
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d2 = successor(&d, &root);
    assert!(alive(pid), "the command outlived the daemon");
    // A new command joins the same namespace: it sees the old one.
    let out = sh(
        &d2,
        "box",
        "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '",
    );
    assert!(out.contains("sleep 300"), "{out}");
    assert!(d2.cli(&["ws", "stop", "box"]).status.success());
    assert!(eventually(Duration::from_secs(5), || !alive(pid)));
}

#[test]
fn a_reaped_sandboxed_workspaces_init_goes_with_a_daemon_killed_9() {
    // No keeper (a reaped workspace on the cgroup backend): its init lives
    // in the daemon's cgroup and watches the daemon. Killed -9 outside any
    // service manager, the daemon leaves it behind: it must not linger.
    let (_root, mut d) = setup("orphan", &["--network", "none"]);
    let id = run(&d, "box", &["sleep", "300"]);
    let pid = pid_of(&d, "box", &id);
    let init = init_of(pid);
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !alive(init) && !alive(pid)),
        "the init and its namespace's command are gone"
    );
}

#[test]
fn a_kept_sandboxed_workspaces_init_lives_beside_its_keeper() {
    let (root, d) = setup("beside", &["--network", "none", "--keep-on-exit"]);
    let id = run(&d, "box", &["sleep", "300"]);
    let init = init_of(pid_of(&d, "box", &id));
    let unit = json(&d.cli(&["--json", "ws", "ls"]))[0]["unit"]
        .as_str()
        .unwrap()
        .to_owned();
    let keeper_leaf = root.0.join(unit).join("keeper/cgroup.procs");
    let procs = std::fs::read_to_string(keeper_leaf).unwrap();
    assert!(procs.lines().any(|l| l == init.to_string()), "{procs}");
    assert!(d.cli(&["ws", "stop", "box"]).status.success());
    assert!(eventually(Duration::from_secs(5), || !alive(init)));
}

#[test]
fn the_documented_limits_hold_as_documented() {
    // Same uid outside the sandbox: what it writes in a writable path is the
    // user's. Network full: the host's loopback is reachable.
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().to_str().unwrap().to_owned();
    let (_root, d) = setup("limits", &["--read-only", "--writable", &w]);
    sh(&d, "box", &format!("echo x > {w}/f"));
    let meta = std::fs::metadata(dir.path().join("f")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let out = run_to_end(
        &d,
        "box",
        &[
            "python3",
            "-c",
            &format!(
                "import socket; socket.create_connection(('127.0.0.1', {port})); print('reached')"
            ),
        ],
    );
    assert_eq!(out, "reached\n");
}

#[test]
fn a_command_cannot_read_another_commands_environment_or_memory() {
    // Each command enforces the workspace's Landlock rules on its own: a
    // domain of its own, which no other command's domain may trace or
    // read (/proc/PID/environ, mem), even in the same workspace. Its own
    // children share its domain. Without Landlock, the same uid could.
    let (_root, d) = setup("landlock", &["--network", "none"]);
    let secret = run(&d, "box", &["env", "TOKEN=TOPSECRET", "sleep", "300"]);
    let pid = pid_of(&d, "box", &secret);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let inner = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    let out = sh(
        &d,
        "box",
        &format!(
            "(tr '\\0' '\\n' < /proc/{inner}/environ) 2>/dev/null | grep -c TOPSECRET; \
             (tr '\\0' '\\n' < /proc/$$/environ) | grep -c PATH"
        ),
    );
    if shipote::process::landlock::abi() > 0 {
        assert_eq!(out, "0\n1\n");
    } else {
        assert_eq!(out, "1\n1\n", "the documented limit without Landlock");
    }
}
