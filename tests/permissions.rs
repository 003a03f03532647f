//! Workspace permissions (issue #8): what a workspace's commands may see and
//! reach, enforced by user, mount and network namespaces the command enters
//! before exec (the attacks on them: tests/redteam.rs). Real daemon, real namespaces, the cgroup fallback of these
//! hosts (the VM tier runs the same checks as an unprivileged user).

mod common;

use common::*;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn setup(name: &str, create: &[&str]) -> (CgroupRoot, Daemon) {
    let root = CgroupRoot::new(name);
    let d = Daemon::start_cgroup(&root.0);
    let mut args = vec!["ws", "create", "w"];
    args.extend_from_slice(create);
    let o = d.cli(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (root, d)
}

/// Runs `sh -c script` in workspace `w` to its end: (exit status, output).
fn sh(d: &Daemon, script: &str) -> (i64, String) {
    let id = run(d, "w", &["sh", "-c", script]);
    let status = wait_exit(d, "w", &id)["exit_status"].as_i64().unwrap_or(-1);
    // Each stream whole: merged, a shell's two-part error ("sh: 1: " then the
    // rest) may arrive with a stdout line between its parts.
    let out = logs(d, "w", &id, &["--stdout"]) + &logs(d, "w", &id, &["--stderr"]);
    (status, out)
}

/// A Python snippet that connects to 127.0.0.1:`port` and prints how it went.
fn connect_py(port: u16) -> String {
    format!(
        "import socket\n\
         try:\n    socket.create_connection(('127.0.0.1', {port}), 3); print('host: connected')\n\
         except OSError as e:\n    print('host:', e.strerror)\n"
    )
}

/// Whether the listener was ever connected to.
fn was_reached(l: &TcpListener) -> bool {
    l.set_nonblocking(true).unwrap();
    match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn network_none_cannot_reach_a_loopback_server() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let (_root, d) = setup("netnone", &["--network", "none"]);
    let out = run_to_end(&d, "w", &["python3", "-c", &connect_py(port)]);
    assert_eq!(out.trim(), "host: Network is unreachable", "{out}");
    assert!(!was_reached(&server));
}

#[test]
fn loopback_reaches_its_own_lo_but_not_the_hosts() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let (_root, d) = setup("netlo", &["--network", "loopback"]);
    let own = "import socket\n\
               s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
               c = socket.create_connection(s.getsockname(), 3)\n\
               a, _ = s.accept(); c.sendall(b'ping'); print('own:', a.recv(4).decode())\n";
    let script = format!("{own}{}", connect_py(port));
    let out = run_to_end(&d, "w", &["python3", "-c", &script]);
    assert_eq!(out, "own: ping\nhost: Connection refused\n");
    assert!(!was_reached(&server));
}

#[test]
fn read_only_root_refuses_writes_outside_the_writable_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (ro, rw) = (dir.path().join("ro"), dir.path().join("rw"));
    std::fs::create_dir(&ro).unwrap();
    std::fs::create_dir(&rw).unwrap();
    std::fs::write(ro.join("f"), "before\n").unwrap();
    let (_root, d) = setup("rofs", &["--read-only", "--writable", rw.to_str().unwrap()]);
    let (ro_s, rw_s) = (ro.display(), rw.display());
    let (status, out) = sh(
        &d,
        &format!(
            "echo after > {ro_s}/f; echo \"write: $?\"; \
             sh -c 'echo deep > {ro_s}/g' 2>/dev/null; echo \"grandchild: $?\"; \
             echo kept > {rw_s}/f && echo \"writable: $?\"; \
             echo x > /dev/null && echo \"dev: $?\""
        ),
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let status_of = |what: &str| -> i32 {
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(what))
            .unwrap_or_else(|| panic!("no {what:?} line in {out:?}"));
        line.trim().parse().unwrap()
    };
    assert_ne!(status_of("write:"), 0, "{out}");
    assert_ne!(status_of("grandchild:"), 0, "{out}");
    assert!(out.contains("writable: 0\n"), "{out}");
    assert!(out.contains("dev: 0\n"), "{out}");
    assert_eq!(std::fs::read_to_string(ro.join("f")).unwrap(), "before\n");
    assert!(!ro.join("g").exists());
    // What it wrote is the user's, as seen from outside.
    let meta = std::fs::metadata(rw.join("f")).unwrap();
    assert_eq!(std::fs::read_to_string(rw.join("f")).unwrap(), "kept\n");
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    assert_eq!(meta.gid(), nix::unistd::getegid().as_raw());
}

#[test]
fn hidden_paths_are_not_readable_even_by_a_daemonized_grandchild() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_dir, secret_file) = (dir.path().join("keys"), dir.path().join("token"));
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("id"), "SECRET-IN-DIR").unwrap();
    std::fs::write(&secret_file, "SECRET-FILE").unwrap();
    let out_file = dir.path().join("grandchild.out");
    let (_root, d) = setup(
        "hide",
        &[
            "--hide",
            secret_dir.to_str().unwrap(),
            "--hide",
            secret_file.to_str().unwrap(),
        ],
    );
    let (k, t, o) = (
        secret_dir.display(),
        secret_file.display(),
        out_file.display(),
    );
    let (_, out) = sh(
        &d,
        &format!(
            "cat {k}/id; ls {k}; cat {t}; \
             setsid sh -c 'cat {t} {k}/id > {o} 2>&1; echo done >> {o}' &"
        ),
    );
    assert!(!out.contains("SECRET"), "{out}");
    assert_eq!(out.matches("Permission denied").count(), 3, "{out}");
    assert!(eventually(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(&out_file).is_ok_and(|s| s.ends_with("done\n"))
    }));
    let grandchild = std::fs::read_to_string(&out_file).unwrap();
    assert!(!grandchild.contains("SECRET"), "{grandchild}");
    assert_eq!(
        grandchild.matches("Permission denied").count(),
        2,
        "{grandchild}"
    );
    // Nothing changed outside.
    assert_eq!(
        std::fs::read_to_string(&secret_file).unwrap(),
        "SECRET-FILE"
    );
}

#[test]
fn private_tmp_and_dev() {
    let marker = tempfile::Builder::new()
        .prefix("shipote-host-")
        .tempfile_in("/tmp")
        .unwrap();
    let name = marker.path().file_name().unwrap().to_str().unwrap();
    let (_root, d) = setup("privtmp", &["--private-tmp", "--private-dev"]);
    let (status, out) = sh(
        &d,
        &format!(
            "ls -A /tmp | grep -c {name}; echo mine > /tmp/own && cat /tmp/own; \
             ls /dev | tr '\\n' ' '; echo; echo x > /dev/null && head -c 4 /dev/zero | wc -c"
        ),
    );
    assert_eq!(status, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "the host's /tmp is not visible: {out}");
    assert_eq!(lines[1], "mine");
    assert_eq!(
        lines[2].trim(),
        "fd full null random shm stderr stdin stdout tty urandom zero"
    );
    assert_eq!(lines[3].trim(), "4");
    assert!(!Path::new("/tmp/own").exists(), "its /tmp is its own");
}

#[test]
fn a_workspace_that_asks_for_nothing_shares_the_hosts_view() {
    let (_root, d) = setup("defaults", &[]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    let (status, out) = sh(
        &d,
        &format!(
            "readlink /proc/self/ns/net /proc/self/ns/mnt /proc/self/ns/user; \
             echo ok > {}; grep NoNewPrivs /proc/self/status",
            f.display()
        ),
    );
    assert_eq!(status, 0, "{out}");
    let ns = |kind: &str| std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ns("net").to_str().unwrap());
    assert_eq!(lines[1], ns("mnt").to_str().unwrap());
    assert_eq!(lines[2], ns("user").to_str().unwrap());
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "ok\n");
    let show = stdout(&d.cli(&["ws", "show", "w"]));
    assert!(show.contains("none asked (the host's view)"), "{show}");
    assert!(!show.contains("enforced by"), "{show}");
    // no_new_privs is on for every workspace command.
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "1"]
    );
}

#[test]
fn a_sandboxed_command_keeps_the_users_ids_and_has_no_capabilities() {
    let (_root, d) = setup("ids", &["--network", "none", "--private-tmp"]);
    let (status, out) = sh(
        &d,
        "id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status",
    );
    assert_eq!(status, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], nix::unistd::geteuid().as_raw().to_string());
    assert_eq!(lines[1], nix::unistd::getegid().as_raw().to_string());
    for l in &lines[2..] {
        assert!(l.ends_with("0000000000000000"), "{out}");
    }
    // What was asked is on show, for people and for scripts.
    let show = stdout(&d.cli(&["ws", "show", "w"]));
    let line = show.lines().find(|l| l.starts_with("permissions")).unwrap();
    assert!(line.ends_with("network none, private /tmp"), "{show}");
    let layers = show.lines().find(|l| l.starts_with("enforced by")).unwrap();
    assert!(
        layers.contains("seccomp deny-list")
            && layers.contains("read-only cgroupfs")
            && layers.contains("PID and cgroup namespaces"),
        "{show}"
    );
    // Landlock, where this kernel has it, and said so where it does not.
    match shipote::process::landlock::abi() {
        0 => assert!(layers.contains("no Landlock on this kernel"), "{show}"),
        abi => assert!(layers.contains(&format!("Landlock (ABI {abi})")), "{show}"),
    }
    let v = json(&d.cli(&["--json", "ws", "show", "w"]));
    assert_eq!(v["permissions"]["network"], "none");
    assert_eq!(v["permissions"]["private_tmp"], true);
    // The daemon holds the workspace's namespaces while it lives, not after.
    let ns_fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", d.child.id()))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter(|l| {
                let l = l.to_string_lossy();
                l.starts_with("user:[") || l.starts_with("mnt:[") || l.starts_with("net:[")
            })
            .count()
    };
    assert_eq!(ns_fds(), 3);
    assert!(d.cli(&["ws", "stop", "w"]).status.success());
    assert_eq!(ns_fds(), 0);
}

#[test]
fn bad_permission_paths_refuse_the_workspace_and_name_the_path() {
    let root = CgroupRoot::new("badperm");
    let d = Daemon::start_cgroup(&root.0);
    let o = d.cli(&["ws", "create", "w", "--hide", "/no/such/secret"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("/no/such/secret") && err.contains("must exist"),
        "{err}"
    );
    let o = d.cli(&["ws", "create", "w", "--read-only", "--writable", "rel/dir"]);
    assert!(stderr(&o).contains("not absolute"), "{}", stderr(&o));
    let o = d.cli(&["ws", "create", "w", "--network", "wifi"]);
    assert!(
        stderr(&o).contains("use full, loopback or none"),
        "{}",
        stderr(&o)
    );
    // Nothing was created; the daemon serves on.
    assert_eq!(json(&d.cli(&["--json", "ws", "ls"])), serde_json::json!([]));
    assert!(d.cli(&["ws", "create", "w"]).status.success());
}

#[test]
fn a_readopted_workspace_keeps_its_permissions() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let (root, mut d) = setup("readopt", &["--network", "none", "--keep-on-exit"]);
    // kill -9: the next daemon learns the permissions from the state file.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d2 = successor(&d, &root);
    let out = run_to_end(&d2, "w", &["python3", "-c", &connect_py(port)]);
    assert_eq!(out.trim(), "host: Network is unreachable");
    assert!(!was_reached(&server));
    assert!(d2.cli(&["ws", "stop", "w"]).status.success());
}

#[test]
fn a_workspaces_commands_share_its_loopback_and_private_tmp() {
    let (_root, d) = setup("shared", &["--network", "loopback", "--private-tmp"]);
    // A server command: ready once its log says where it listens.
    let server = "import socket\n\
                  s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
                  print('listening', s.getsockname()[1], flush=True)\n\
                  a, _ = s.accept(); a.sendall(open('/tmp/shared').read().encode())\n";
    let (_, out) = sh(&d, "echo from-the-workspace-tmp > /tmp/shared");
    assert_eq!(out, "");
    let srv = run(&d, "w", &["python3", "-c", server]);
    let mut port = String::new();
    assert!(eventually(std::time::Duration::from_secs(10), || {
        let out = logs(&d, "w", &srv, &[]);
        port = out
            .strip_prefix("listening ")
            .unwrap_or("")
            .trim()
            .to_owned();
        !port.is_empty()
    }));
    let client = format!(
        "import socket\nprint(socket.create_connection(('127.0.0.1', {port}), 3).recv(100).decode(), end='')"
    );
    let out = run_to_end(&d, "w", &["python3", "-c", &client]);
    assert_eq!(out, "from-the-workspace-tmp\n");
    wait_exit(&d, "w", &srv);
    // The daemon's descriptors of the namespaces do not leak into commands.
    let (_, fds) = sh(&d, "ls /proc/self/fd | tr '\\n' ' '");
    assert_eq!(fds, "0 1 2 3 ");
}

#[test]
fn a_pipelines_commands_run_inside_the_workspaces_permissions() {
    let (_root, d) = setup("pipeline", &["--network", "none", "--private-tmp"]);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let spec = dir.path().join("p.toml");
    std::fs::write(
        &spec,
        r#"workspace = "w"
label = "boxed"

[[command]]
label = "gen"
exec = "sh"
argv = ["-c", "echo from-private-tmp > /tmp/x; cat /tmp/x; bash -c 'exec 3<>/dev/tcp/127.0.0.1/9' 2>&1 | sed 's/.*: //'"]

[[command]]
label = "up"
exec = "tr"
argv = ["a-z", "A-Z"]

[[edge]]
from = "gen"
to = "up"
"#,
    )
    .unwrap();
    let o = d.cli(&["pipeline", "run", spec.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let up = json(&d.cli(&["--json", "ps", "w"]))
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "up")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_exit(&d, "w", &up);
    assert_eq!(
        logs(&d, "w", &up, &[]),
        // bash says it twice: connect, then the redirection.
        "FROM-PRIVATE-TMP\nNETWORK IS UNREACHABLE\nNETWORK IS UNREACHABLE\n"
    );
}

#[test]
fn a_sandboxed_command_cannot_reach_the_daemon() {
    // Through the daemon's socket it could ask for an unconfined workspace.
    // (Signals, ptrace and cgroups: tests/redteam.rs.)
    let (_root, d) = setup("escape", &["--network", "none"]);
    assert!(d.cli(&["ws", "create", "open"]).status.success());
    let probe = format!(
        "import socket\n\
         s = socket.socket(socket.AF_UNIX)\n\
         try:\n    s.connect('{}'); print('socket: connected')\n\
         except OSError as e:\n    print('socket:', e.strerror)\n",
        d.socket.display()
    );
    let out = |ws: &str| run_to_end(&d, ws, &["python3", "-c", &probe]);
    assert_eq!(out("w"), "socket: Permission denied\n");
    // Without permissions the same user's command reaches it: that is what
    // asking for nothing means.
    assert_eq!(out("open"), "socket: connected\n");
}

#[test]
fn the_daemons_state_directory_is_hidden_from_a_sandboxed_workspace() {
    // Even when a parent of it is writable: only naming it uncovers it.
    let root = CgroupRoot::new("hidestate");
    let d = Daemon::start_cgroup(&root.0);
    let parent = d.dir.path().to_str().unwrap().to_owned();
    for create in [
        // Kept: its keeper's socket is in the state directory too.
        vec!["ws", "create", "w", "--network", "none", "--keep-on-exit"],
        vec!["ws", "create", "v", "--read-only", "--writable", &parent],
    ] {
        let o = d.cli(&create);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let open = run(&d, "w", &["true"]);
    wait_exit(&d, "w", &open);
    let state = d.dir.path().join("state");
    let probe = format!(
        "cat {s}/workspaces.json >/dev/null 2>&1 && echo state-readable; \
         ls {s}/logs 2>/dev/null | grep -q . && echo logs-listed; \
         ls {s}/keepers 2>/dev/null | grep -q . && echo keepers-listed; echo done",
        s = state.display()
    );
    for ws in ["w", "v"] {
        assert_eq!(run_to_end(&d, ws, &["sh", "-c", &probe]), "done\n", "{ws}");
    }
    // The state is there, for whoever is not sandboxed.
    assert!(d.cli(&["ws", "create", "open"]).status.success());
    assert_eq!(
        run_to_end(&d, "open", &["sh", "-c", &probe]),
        "state-readable\nlogs-listed\nkeepers-listed\ndone\n"
    );
}

#[test]
fn a_sandboxed_workspace_cannot_reach_the_users_ptys_but_can_make_its_own() {
    // A pty of the host's, as a terminal or an ssh session would hold.
    let ptmx = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/ptmx")
        .unwrap();
    let mut n: libc::c_uint = 0;
    let unlock: libc::c_int = 0;
    use std::os::fd::AsRawFd;
    // SAFETY: ioctls on our own ptmx with valid pointers.
    unsafe {
        assert_eq!(libc::ioctl(ptmx.as_raw_fd(), libc::TIOCSPTLCK, &unlock), 0);
        assert_eq!(libc::ioctl(ptmx.as_raw_fd(), libc::TIOCGPTN, &mut n), 0);
    }
    let host_pts = std::path::PathBuf::from(format!("/dev/pts/{n}"));
    assert!(host_pts.exists());
    let (_root, d) = setup("pty", &["--network", "none"]);
    let (status, out) = sh(
        &d,
        &format!(
            "ls /dev/pts | tr '\\n' ' '; echo; \
             (echo injected > {p}) 2>/dev/null && echo host-pty-written; \
             python3 -c 'import os; m, s = os.openpty(); print(os.ttyname(s))'",
            p = host_pts.display()
        ),
    );
    assert_eq!(status, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "ptmx", "only its own instance: {out}");
    assert_eq!(lines[1], "/dev/pts/0", "a new pty works inside: {out}");
    assert_eq!(lines.len(), 2, "{out}");
}

#[test]
fn a_sandboxed_command_cannot_touch_any_cgroup() {
    let (root, d) = setup("cgro", &["--network", "none"]);
    assert!(d.cli(&["ws", "create", "other"]).status.success());
    let unit = |label: &str| {
        json(&d.cli(&["--json", "ws", "ls"]))
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["label"] == label)
            .unwrap()["unit"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let other = root.0.join(unit("other"));
    let own = root.0.join(unit("w"));
    let probe = format!(
        "(echo $$ > {r}/cgroup.procs) 2>/dev/null && echo left-its-cgroup; \
         (echo 1 > {o}/cgroup.freeze) 2>/dev/null && echo froze-another; \
         (echo 1 > {o}/cgroup.kill) 2>/dev/null && echo killed-another; \
         mkdir {w}/escape 2>/dev/null && echo made-a-cgroup; echo done",
        r = root.0.display(),
        o = other.display(),
        w = own.display()
    );
    assert_eq!(run_to_end(&d, "w", &["sh", "-c", &probe]), "done\n");
    assert!(!other.join("escape").exists() && !own.join("escape").exists());
}

#[test]
fn a_sandboxed_command_cannot_nest_a_user_namespace_or_type_into_a_tty() {
    let (_root, d) = setup("seccomp", &["--network", "none"]);
    let probe = "import ctypes, errno, fcntl, os, termios, threading\n\
                 libc = ctypes.CDLL(None, use_errno=True)\n\
                 r = libc.unshare(0x10000000)\n\
                 print('unshare user:', 'refused' if r != 0 and ctypes.get_errno() == errno.EPERM else 'allowed')\n\
                 m, s = os.openpty()\n\
                 try:\n    fcntl.ioctl(s, termios.TIOCSTI, b'x'); print('tiocsti: allowed')\n\
                 except OSError as e:\n    print('tiocsti:', 'refused' if e.errno == errno.EPERM else e)\n\
                 t = threading.Thread(target=lambda: print('thread: ok')); t.start(); t.join()\n\
                 pid = os.fork()\n\
                 if pid == 0:\n    os._exit(3)\n\
                 print('fork:', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n";
    assert_eq!(
        run_to_end(&d, "w", &["python3", "-c", probe]),
        "unshare user: refused\ntiocsti: refused\nthread: ok\nfork: 3\n"
    );
    // A workspace without permissions has no filter.
    assert!(d.cli(&["ws", "create", "open"]).status.success());
    let out = run_to_end(&d, "open", &["python3", "-c", probe]);
    assert!(out.starts_with("unshare user: allowed\n"), "{out}");
}
