//! The real daemon binary on a real socket, driven by the real CLI and by raw
//! frames. Readiness is sd_notify READY=1, never a sleep.

mod common;

use common::*;
use shipote_protocol::client::Client;
use shipote_protocol::{frame, seed, Dialect, ErrorCode, Request, Response};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

#[test]
fn cli_ping_health_caps() {
    let d = Daemon::start();
    let o = d.cli(&["ping"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("pong from "), "{}", stdout(&o));

    let o = d.cli(&["health"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("version     {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains("workspaces  0"), "{out}");

    let o = d.cli(&["--json", "health"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["dirty"], false);

    let o = d.cli(&["caps", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let release = nix::sys::utsname::uname()
        .unwrap()
        .release()
        .to_string_lossy()
        .into_owned();
    assert!(
        release.starts_with(v["kernel_version"].as_str().unwrap()),
        "{v} vs {release}"
    );
    // The first cgroup2 mount: at /sys/fs/cgroup it is unified, elsewhere hybrid.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2_mount = mountinfo
        .lines()
        .filter(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|r| r.starts_with("cgroup2 "))
        })
        .map(|l| l.split_whitespace().nth(4).unwrap().to_owned())
        .next();
    let expect = match v2_mount.as_deref() {
        Some("/sys/fs/cgroup") => "unified",
        Some(_) => "hybrid",
        None => "none",
    };
    assert_eq!(v["cgroup_v2"], expect, "{v}");
    let o = d.cli(&["caps"]);
    assert!(stdout(&o).contains("user namespaces  "), "{}", stdout(&o));
}

#[test]
fn cli_discern_through_the_daemon_local_and_stdin() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("picture.json");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01").unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(
        &log,
        "2026-11-26T10:00:01Z INFO a\n2026-11-26T10:00:02Z WARN b\n2026-11-26T10:00:03Z INFO c\n",
    )
    .unwrap();
    let (png, log) = (png.to_str().unwrap(), log.to_str().unwrap());
    let o = d.cli(&["discern", png, log]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["PATH", "TYPE", "MIME", "CONF", "LENS"], "{out}");
    assert_eq!(rows[1][1..3], ["png", "image/png"], "{out}");
    assert_eq!(rows[1][4], "image", "{out}");
    assert_eq!(rows[2][1..3], ["log", "text/plain"], "{out}");

    // --local needs no daemon at all.
    let nowhere = dir.path().join("none.sock");
    let o = cli(&nowhere, &["discern", "--local", "--json", png]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["type"], "png", "{v}");

    // stdin, cut mid-document.
    let mut child = std::process::Command::new(cli_bin())
        .args([
            "--socket",
            d.socket.to_str().unwrap(),
            "discern",
            "--json",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"items\": [1, 2, 3], \"name\": \"x")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v[0]["path"].as_str(), v[0]["type"].as_str()),
        (Some("-"), Some("json")),
        "{v}"
    );

    // Only unreadable files: nothing to ask, exit 2, named.
    let o = d.cli(&["discern", "/nonexistent/file"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/file"), "{}", stderr(&o));
    // One unreadable among others: named, the others still discerned, exit 1
    // (file(1) goes on too).
    let o = d.cli(&["discern", "/nonexistent/file", png]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/file"), "{}", stderr(&o));
    assert!(stdout(&o).contains("png"), "{}", stdout(&o));
}

#[test]
fn cli_without_daemon_exits_2_and_says_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = cli(&dir.path().join("none.sock"), &["ping"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("cannot reach shipoted"), "{err}");
    assert!(err.contains("systemctl --user start shipote"), "{err}");
}

#[test]
fn cli_usage_error_exits_2() {
    let o = std::process::Command::new(cli_bin())
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn daemon_error_exits_1() {
    // An invalid label: the daemon answers an error, the CLI says it on stderr
    // and exits 1.
    let d = Daemon::start();
    let o = d.cli(&["ws", "create", "bad/label"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("contains '/'"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let o = d.cli(&["--json", "ws", "stop", "01J0000000000000000000000A"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}

#[test]
fn sd_notify_ready_status_stopping_and_clean_exit() {
    let mut d = Daemon::start();
    let ready = d.wait_notice("READY=1");
    assert!(ready.contains("STATUS=serving: 0 workspaces"), "{ready}");
    // A client connecting changes the status line.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    d.wait_notice("1 clients");
    frame::write_frame(&mut s, &Request::Ping).unwrap();
    assert_eq!(
        frame::read_frame::<_, Response>(&mut s).unwrap(),
        Response::Pong
    );
    let status = d.stop();
    assert!(status.success(), "exit status {status}:\n{}", d.log());
    d.wait_notice("STOPPING=1");
    assert!(
        !d.socket.exists(),
        "the daemon removes the socket it created"
    );
}

#[test]
fn socket_and_directory_modes() {
    let d = Daemon::start();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d.socket), 0o600);
    assert_eq!(mode(d.socket.parent().unwrap()), 0o700);
}

#[test]
fn second_daemon_on_the_same_socket_refuses_to_start() {
    let d = Daemon::start();
    let o = std::process::Command::new(daemon_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["--log-target", "stderr"])
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already serving"), "{}", stderr(&o));
    // The first one is untouched.
    assert!(d.cli(&["ping"]).status.success());
}

#[test]
fn stale_socket_from_a_crash_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/shipote.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap()); // leaves the file
    assert!(socket.exists());
    let mut cmd = std::process::Command::new(daemon_bin());
    cmd.arg("--socket").arg(&socket);
    let d = Daemon::spawn(dir, socket, cmd);
    assert!(d.cli(&["ping"]).status.success(), "{}", d.log());
    assert!(d.log().contains("removing stale socket"), "{}", d.log());
}

#[test]
fn killed_daemon_leaves_a_socket_the_next_one_replaces() {
    let mut d = Daemon::start();
    signal(d.child.id(), nix::sys::signal::Signal::SIGKILL);
    d.wait_exit();
    assert!(d.socket.exists());
    let socket = d.socket.clone();
    let mut cmd = std::process::Command::new(daemon_bin());
    cmd.arg("--socket").arg(&socket);
    let dir = tempfile::tempdir().unwrap();
    let d2 = Daemon::spawn(dir, socket, cmd);
    assert!(d2.cli(&["ping"]).status.success(), "{}", d2.log());
}

/// Sends raw bytes, then reads what comes back until the daemon closes. Answers
/// are read in the protocol the connection speaks: 0 (the seed's wire, whose
/// errors carry no code: lifted as `Invalid`) until a `Hello` is answered.
fn exchange(d: &Daemon, bytes: &[u8], close_write: bool) -> (Vec<Response>, bool) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(bytes).unwrap();
    if close_write {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut responses = Vec::new();
    let mut switched = false;
    let mut payload = Vec::new();
    loop {
        match frame::read_payload(&mut s, &mut payload) {
            Ok(()) => {}
            Err(frame::FrameError::Closed) => return (responses, true),
            Err(e) => panic!("unexpected: {e}"),
        }
        let r = if switched {
            frame::decode::<Response>(&payload).unwrap()
        } else {
            Dialect::Seed.decode_hello_answer(&payload).unwrap()
        };
        switched |= matches!(r, Response::Hello { .. });
        responses.push(r);
    }
}

/// The frame of `Hello { protocol: 1 }`.
const HELLO_1: [u8; 6] = [0, 0, 0, 2, 25, 1];

/// Sends `bytes` on a protocol-0 connection and again behind a `Hello` on a
/// protocol-1 one: each gets one Invalid error mentioning `want`, then the
/// connection closes and the daemon serves others.
fn assert_invalid_then_closed(d: &Daemon, bytes: &[u8], close_write: bool, want: &str) {
    for hello in [false, true] {
        let mut sent = Vec::new();
        if hello {
            sent.extend_from_slice(&HELLO_1);
        }
        sent.extend_from_slice(bytes);
        let (mut responses, closed) = exchange(d, &sent, close_write);
        assert!(closed);
        if hello {
            assert!(
                matches!(responses.first(), Some(Response::Hello { protocol: 1, .. })),
                "{responses:?}"
            );
            responses.remove(0);
        }
        match responses.as_slice() {
            [Response::Error {
                code: ErrorCode::Invalid,
                message,
            }] => {
                assert!(
                    message.contains(want),
                    "{message:?} should mention {want:?}"
                );
                let protocol = format!("speaks protocol {}", u8::from(hello));
                assert!(message.contains(&protocol), "{message:?}");
            }
            other => panic!("expected one Invalid error, got {other:?}"),
        }
        // The daemon still serves a new client.
        assert!(d.cli(&["ping"]).status.success(), "{}", d.log());
    }
}

#[test]
fn huge_length_prefix_is_refused() {
    let d = Daemon::start();
    assert_invalid_then_closed(&d, &[0xff, 0xff, 0xff, 0xff], false, "exceeds the limit");
}

#[test]
fn frame_cut_short_is_refused() {
    let d = Daemon::start();
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1; 10]);
    assert_invalid_then_closed(&d, &bytes, true, "closed after 14 of 104 bytes");
}

#[test]
fn garbage_payload_is_refused() {
    let d = Daemon::start();
    let mut bytes = 6u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0x04, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_invalid_then_closed(&d, &bytes, false, "not a valid message");
}

#[test]
fn unknown_variant_index_is_refused() {
    let d = Daemon::start();
    assert_invalid_then_closed(&d, &[0, 0, 0, 1, 99], false, "not a valid message");
}

#[test]
fn trailing_bytes_are_refused() {
    let d = Daemon::start();
    assert_invalid_then_closed(&d, &[0, 0, 0, 2, 0, 0], false, "trailing bytes");
}

#[test]
fn a_hello_for_an_unknown_protocol_is_refused_in_the_seed_form_naming_the_known_ones() {
    let d = Daemon::start();
    // Hello { protocol: 7 }, then a Ping written behind it: the Ping was meant for
    // protocol 7, so the connection closes instead of misreading it.
    let (responses, closed) = exchange(&d, &[0, 0, 0, 2, 25, 7, 0, 0, 0, 1, 0], false);
    assert!(closed);
    match responses.as_slice() {
        [Response::Error { message, .. }] => {
            assert!(message.contains("unknown protocol 7"), "{message}");
            assert!(
                message.contains("protocol 0 (the seed's wire) and 1"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(d.cli(&["ping"]).status.success(), "{}", d.log());
}

#[test]
fn a_second_hello_is_refused_in_the_protocol_the_connection_speaks() {
    let d = Daemon::start();
    let mut bytes = HELLO_1.to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 2, 25, 0]);
    let (responses, closed) = exchange(&d, &bytes, false);
    assert!(closed);
    match responses.as_slice() {
        [Response::Hello {
            protocol: 1,
            version,
        }, Response::Error {
            code: ErrorCode::Invalid,
            message,
        }] => {
            assert_eq!(version, env!("CARGO_PKG_VERSION"));
            assert!(message.contains("already answered"), "{message}");
            assert!(message.contains("speaks protocol 1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(d.cli(&["ping"]).status.success(), "{}", d.log());
}

#[test]
fn protocol_1_requests_on_a_seed_connection_are_refused_and_it_keeps_serving() {
    let d = Daemon::start();
    let describe = frame::encode(&Request::WorkspaceDescribe {
        id: shipote_protocol::WorkspaceId(shipote_protocol::Ulid::new()),
    })
    .unwrap();
    let logs = frame::encode(&seed::Request::CommandLogs {
        workspace: shipote_protocol::WorkspaceId(shipote_protocol::Ulid::new()),
        command: shipote_protocol::Ulid::new(),
        tail_bytes: 10,
        stream: "stdin".into(),
    })
    .unwrap();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(&describe).unwrap();
    s.write_all(&logs).unwrap();
    frame::write_frame(&mut s, &seed::Request::Ping).unwrap();
    let mut next = || frame::read_frame::<_, seed::Response>(&mut s).unwrap();
    match next() {
        seed::Response::Error { message } => {
            assert!(message.contains("WorkspaceDescribe (request 24) is part of protocol 1"));
            assert!(
                message.contains("send Hello { protocol: 1 } first"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    match next() {
        seed::Response::Error { message } => {
            assert!(message.contains("\"stdin\" is not a stream"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(next(), seed::Response::Pong, "the connection stays open");
}

#[test]
fn client_stalled_mid_frame_is_dropped_and_holds_nothing_up() {
    let d = Daemon::start();
    let start = Instant::now();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
    // While it stalls, others are served at once.
    for _ in 0..20 {
        assert!(d.cli(&["ping"]).status.success());
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // No Hello was sent: the error comes in the seed's form.
    match frame::read_frame::<_, seed::Response>(&mut s).unwrap() {
        seed::Response::Error { message } => {
            assert!(message.contains("incomplete after 10 s"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "connection closed");
}

#[test]
fn idle_clients_do_not_hold_up_service_or_shutdown() {
    let mut d = Daemon::start();
    // Fifty clients connect and say nothing; one sends half a header.
    let idle: Vec<UnixStream> = (0..50)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    let mut half = UnixStream::connect(&d.socket).unwrap();
    half.write_all(&[0, 0]).unwrap();
    d.wait_notice("51 clients");
    for _ in 0..10 {
        assert!(d.cli(&["ping"]).status.success());
    }
    // Shutdown does not wait for them (the grace period is for busy requests).
    let start = Instant::now();
    assert!(d.stop().success(), "{}", d.log());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        start.elapsed()
    );
    drop(idle);
}

#[test]
fn flow_requests_without_taps_answer_empty_and_are_audited() {
    let d = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&d.socket).await.unwrap();
        assert_eq!(
            c.call(&Request::FlowList).await.unwrap(),
            Response::FlowList { items: vec![] }
        );
        assert_eq!(
            c.call(&Request::FlowThroughput).await.unwrap(),
            Response::FlowThroughput { items: vec![] }
        );
        let pipeline = shipote_protocol::Ulid::new();
        assert_eq!(
            c.call(&Request::FlowDrop { pipeline }).await.unwrap(),
            Response::FlowDropped {
                pipeline,
                existed: false
            }
        );
    });
    let log = d.log();
    assert!(log.contains("action=\"flow.drop\""), "{log}");
    let uid = nix::unistd::getuid().as_raw();
    assert!(log.contains(&format!("uid={uid}")), "{log}");
}

#[test]
fn discern_is_answered_by_the_daemon_and_the_hint_does_not_override_content() {
    let d = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&d.socket).await.unwrap();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        let r = c
            .call(&Request::Discern {
                sample: png,
                hint_path: Some("x.json".into()),
            })
            .await
            .unwrap();
        match r {
            Response::Discernment {
                ty,
                confidence,
                mime,
                lens,
            } => {
                assert_eq!(ty, "png");
                assert!(confidence >= 0.9, "{confidence}");
                assert_eq!(mime.as_deref(), Some("image/png"));
                assert_eq!(lens.as_deref(), Some("image"));
            }
            other => panic!("{other:?}"),
        }
        let r = c
            .call(&Request::Discern {
                sample: b"{\"a\": [1, 2, 3], \"b\": {\"c\"".to_vec(),
                hint_path: None,
            })
            .await
            .unwrap();
        assert!(
            matches!(&r, Response::Discernment { ty, .. } if ty == "json"),
            "{r:?}"
        );
    });
}

#[test]
fn socket_activation_uses_the_passed_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let fd = listener.as_raw_fd();
    // As systemd does: the socket on fd 3, LISTEN_FDS=1, LISTEN_PID = the
    // daemon's pid (sh's $$ survives its exec).
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID=$$ LISTEN_FDS=1 exec {} \"$@\"",
            daemon_bin()
        ))
        .arg("sh");
    // SAFETY: dup2 and fcntl are async-signal-safe; nothing else runs in the
    // child. Regression: when the listener already is fd 3, dup2(3, 3) keeps
    // its close-on-exec flag and the daemon got EBADF (flaky in CI): clear the
    // flag instead.
    unsafe {
        cmd.pre_exec(move || {
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut d = Daemon::spawn(dir, socket.clone(), cmd);
    drop(listener);
    assert!(d.cli(&["ping"]).status.success(), "{}", d.log());
    assert!(d.log().contains("inherited=true"), "{}", d.log());
    assert!(d.stop().success());
    assert!(
        socket.exists(),
        "a passed socket belongs to the service manager and is left in place"
    );
}

#[test]
fn another_uid_is_refused_and_audited() {
    assert_eq!(
        nix::unistd::getuid().as_raw(),
        0,
        "this test switches uid with setpriv and must run as root (the VM tier runs the unprivileged version)"
    );
    let d = Daemon::start();
    // Open the socket to everyone, as a careless admin might: the daemon itself
    // must still refuse.
    std::fs::set_permissions(
        d.socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The other uid may not be able to reach the build tree (a checkout under
    // /root): give it its own copy of the CLI.
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cli_copy = bin_dir.path().join("shipote");
    std::fs::copy(cli_bin(), &cli_copy).unwrap();
    std::fs::set_permissions(&cli_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&cli_copy)
        .arg("--socket")
        .arg(&d.socket)
        .arg("ping")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refused: this shipoted serves uid 0 only and you are uid 65534"),
        "{}",
        stderr(&o)
    );
    let log = d.log();
    assert!(log.contains("connection.refused"), "{log}");
    assert!(log.contains("uid=65534"), "{log}");
    assert!(
        d.cli(&["ping"]).status.success(),
        "the owner is still served"
    );
}

#[test]
fn two_hundred_clients_a_hundred_requests_each() {
    let d = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answered = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let socket = d.socket.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(&socket).await.unwrap();
                let mut ok = 0u32;
                for j in 0..100u32 {
                    if (i + j) % 2 == 0 {
                        assert_eq!(c.call(&Request::Ping).await.unwrap(), Response::Pong);
                    } else {
                        match c.call(&Request::Health).await.unwrap() {
                            Response::Health { version, .. } => {
                                assert_eq!(version, env!("CARGO_PKG_VERSION"))
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                    ok += 1;
                }
                ok
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(answered, 200 * 100);
}

#[test]
fn client_idle_for_a_minute_holds_nothing_up() {
    let d = Daemon::start();
    let mut idle = UnixStream::connect(&d.socket).unwrap();
    let start = Instant::now();
    // For a whole minute the idle client says nothing; everyone else is served.
    while start.elapsed() < Duration::from_secs(60) {
        let t = Instant::now();
        assert!(d.cli(&["health"]).status.success(), "{}", d.log());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a request took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    // Idle is allowed: the connection is still open and still works.
    frame::write_frame(&mut idle, &Request::Ping).unwrap();
    assert_eq!(
        frame::read_frame::<_, Response>(&mut idle).unwrap(),
        Response::Pong
    );
}

/// `shipote ws ls | head`: a reader that goes away is not a crash.
#[test]
fn output_into_a_closed_pipe_is_not_a_panic() {
    let d = Daemon::start();
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#""$0" --socket "$1" caps | (exec 0<&-; true); echo "status ${PIPESTATUS[0]}""#)
        .arg(cli_bin())
        .arg(&d.socket)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(stdout(&o).trim(), "status 0", "{err}");
}

/// 400 clients each send a 1 MiB request and stay connected, then leave: the
/// daemon's memory comes back to within 2x of idle (it once stayed at 1 GB).
#[test]
fn memory_returns_after_a_burst_of_large_requests() {
    let d = Daemon::start();
    assert!(d.cli(&["ping"]).status.success());
    let idle = rss_kib(d.child.id());
    let mut sample = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    sample.resize(frame::MAX_FRAME_BYTES - 16, 0);
    let request = frame::encode(&seed::Request::Discern {
        sample,
        hint_path: None,
    })
    .unwrap();
    let mut clients = Vec::new();
    for _ in 0..400 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&request).unwrap();
        clients.push(s);
    }
    for s in &mut clients {
        match frame::read_frame::<_, seed::Response>(s).unwrap() {
            seed::Response::Discernment { ty, .. } => assert_eq!(ty, "png"),
            other => panic!("{other:?}"),
        }
    }
    let busy = rss_kib(d.child.id());
    drop(clients);
    let mut now = 0;
    let back = eventually(Duration::from_secs(10), || {
        now = rss_kib(d.child.id());
        now <= 2 * idle
    });
    assert!(
        back,
        "RSS idle {idle} KiB, with the clients {busy} KiB, after they left {now} KiB"
    );
}

/// With a descriptor limit of 128, idle clients are turned away by name once
/// the daemon nears it (never a hang, never a silent close), and its own
/// work still has descriptors: after a few leave, a workspace is created and
/// saved and a command runs.
#[test]
fn at_the_descriptor_limit_clients_are_told_and_own_work_goes_on() {
    use std::os::unix::process::CommandExt;
    let root = CgroupRoot::new("fdlimit");
    let root_dir = root.0.clone();
    let d = Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"])
            .arg(&root_dir);
        // SAFETY: setrlimit only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 128,
                    rlim_max: 128,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut held = Vec::new();
    let mut refusal = None;
    for _ in 0..200 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Served connections answer a Ping; turned-away ones an Error, sent
        // at accept: the Ping may then meet a closed socket (EPIPE) while
        // the Error waits to be read.
        let _ = frame::write_frame(&mut s, &seed::Request::Ping);
        match frame::read_frame::<_, seed::Response>(&mut s) {
            Ok(seed::Response::Pong) => held.push(s),
            Ok(seed::Response::Error { message }) => {
                refusal = Some(message);
                break;
            }
            other => panic!("{other:?} after {} clients", held.len()),
        }
    }
    let message = refusal.expect("the 200th client at the latest is turned away");
    assert!(message.starts_with("busy: "), "{message}");
    assert!(message.contains("out of file descriptors"), "{message}");
    assert!(message.contains("LimitNOFILE="), "{message}");
    assert!(held.len() >= 20, "only {} clients were served", held.len());
    held.truncate(held.len() - 10);
    assert!(
        d.cli(&["ws", "create", "w"]).status.success(),
        "{}",
        d.log()
    );
    assert_eq!(json(&d.cli(&["--json", "health"]))["dirty"], false);
    let out = run_to_end(&d, "w", &["echo", "still works"]);
    assert_eq!(out, "still works\n");
    assert!(!d.log().contains("cannot save state"), "{}", d.log());
}

/// `shipote system dial-stdio`: what a client on another host runs over ssh
/// (issue #20). Requests in on stdin, answers out on stdout, byte for byte;
/// stdin's end lets the last answers out, then the bridge exits 0.
#[test]
fn dial_stdio_bridges_stdin_and_stdout_to_the_daemon() {
    let d = Daemon::start();
    let mut bridge = std::process::Command::new(cli_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["system", "dial-stdio"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to = bridge.stdin.take().unwrap();
    let mut from = bridge.stdout.take().unwrap();
    // Protocol 1, as the CLI speaks it: Hello, then a request.
    frame::write_frame(
        &mut to,
        &Request::Hello {
            protocol: shipote_protocol::PROTOCOL_CURRENT,
        },
    )
    .unwrap();
    let mut payload = Vec::new();
    frame::read_payload(&mut from, &mut payload).unwrap();
    assert!(matches!(
        Dialect::Seed.decode_hello_answer(&payload).unwrap(),
        Response::Hello { .. }
    ));
    frame::write_frame(&mut to, &Request::Health).unwrap();
    match frame::read_frame::<_, Response>(&mut from).unwrap() {
        Response::Health { .. } => {}
        other => panic!("{other:?}"),
    }
    // A request written just before stdin ends is still answered.
    frame::write_frame(&mut to, &Request::Ping).unwrap();
    drop(to);
    assert_eq!(
        frame::read_frame::<_, Response>(&mut from).unwrap(),
        Response::Pong
    );
    let mut rest = Vec::new();
    from.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(bridge.wait().unwrap().success());

    // No daemon there: exit 2, and what to do.
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(cli_bin())
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .args(["system", "dial-stdio"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no daemon at")
            && stderr(&o).contains("systemctl --user start shipote"),
        "{}",
        stderr(&o)
    );
}
