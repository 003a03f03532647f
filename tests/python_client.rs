//! The Python client in protocol/examples/shipote_client.py was written from
//! protocol/SPEC.md alone; here it talks to the real daemon, and decodes and
//! re-encodes every golden frame. If these pass, the SPEC is enough to write a
//! client.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `python3` from PATH; the test fails (not skips) without it.
fn python3() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "python3 was not found on PATH ({}); these tests run \
                 protocol/examples/shipote_client.py and need Python 3.11+",
                Path::new(&path).display()
            )
        })
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/examples/shipote_client.py")
}

fn run_python(args: &[&str]) -> Output {
    Command::new(python3())
        .arg(script())
        .args(args)
        .env_remove("SHIPOTE_SOCKET")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3")
}

fn py(d: &Daemon, args: &[&str]) -> Output {
    let socket = d.socket.to_str().unwrap();
    let mut all = vec!["--socket", socket];
    all.extend_from_slice(args);
    run_python(&all)
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

#[test]
fn python_ping() {
    let d = Daemon::start();
    let o = py(&d, &["ping"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), d.log());
    let v = json_out(&o);
    assert_eq!(v["type"], "Pong", "{v}");
    assert!(v["round_trip_ms"].is_number(), "{v}");
}

#[test]
fn python_health() {
    let d = Daemon::start();
    let o = py(&d, &["health"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), d.log());
    let v = json_out(&o);
    assert_eq!(v["type"], "Health", "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
    assert_eq!(v["alive_workspaces"], 0, "{v}");
    assert_eq!(v["alive_commands"], 0, "{v}");
    assert_eq!(v["dirty"], false, "{v}");
    assert!(v["uptime_ms"].is_u64(), "{v}");
}

#[test]
fn python_caps() {
    let d = Daemon::start();
    let o = py(&d, &["caps"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), d.log());
    let v = json_out(&o);
    assert_eq!(v["type"], "Capabilities", "{v}");
    let k: Vec<u64> = v["kernel_version"]
        .as_array()
        .unwrap_or_else(|| panic!("kernel_version is a 3-tuple: {v}"))
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(k.len(), 3, "{v}");
    let release = nix::sys::utsname::uname()
        .unwrap()
        .release()
        .to_string_lossy()
        .into_owned();
    let dotted = format!("{}.{}.{}", k[0], k[1], k[2]);
    assert!(release.starts_with(&dotted), "{dotted} vs {release}");
    assert!(
        ["unified", "hybrid", "none"].contains(&v["cgroup_v2"].as_str().unwrap()),
        "{v}"
    );
    assert!(v["cgroup_controllers"].is_array(), "{v}");
    assert!(v["cgroup_delegated"].is_boolean(), "{v}");
    assert!(v["backend"].is_string(), "{v}");
}

#[test]
fn python_raw_discern_gets_a_discernment() {
    let d = Daemon::start();
    let o = py(&d, &["raw-discern", "{\"a\": 1}", "--hint", "x.json"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), d.log());
    let v = json_out(&o);
    assert_eq!(v["type"], "Discernment", "{v}");
    assert_eq!(v["ty"], "json", "{v}");
    assert_eq!(v["mime"], "application/json", "{v}");
    assert_eq!(v["lens"], "json", "{v}");
    assert!(v["confidence"].as_f64().unwrap() >= 0.9, "{v}");
}

#[test]
fn python_without_daemon_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let o = run_python(&["--socket", socket.to_str().unwrap(), "ping"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}

#[test]
fn python_selftest_decodes_and_reencodes_every_golden_frame() {
    let o = run_python(&["--selftest"]);
    let v = json_out(&o);
    assert_eq!(o.status.code(), Some(0), "{v}\n{}", stderr(&o));
    assert_eq!(v["ok"], true, "{v}");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/tests/golden");
    for file in ["requests", "responses"] {
        let lines = std::fs::read_to_string(golden.join(format!("{file}.hex")))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        assert_eq!(v["checked"][file], lines as u64, "{file}: {v}");
    }
}

/// The module API on one connection: several requests in order, an error
/// answer leaves the connection usable, and a bad frame gets one Invalid error
/// and a close (SPEC.md, "Framing" and "Conversation").
#[test]
fn python_module_reuses_a_connection_and_sees_bad_frames_refused() {
    let d = Daemon::start();
    let code = r#"
import socket, struct, sys
sys.path.insert(0, sys.argv[1])
import shipote_client as sc
with sc.Client.connect(sys.argv[2]) as c:
    assert c.call({"type": "Ping"}) == {"type": "Pong"}
    h = c.call("Health")
    assert h["type"] == "Health", h
    e = c.call({"type": "Discern", "sample": b"{}", "hint_path": None})
    assert e["type"] == "Discernment" and e["ty"] == "json", e
    assert c.call("Ping") == {"type": "Pong"}
# Hello, then trailing bytes after a Ping: one Invalid error, then the daemon
# closes.
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[2])
s.sendall(bytes([0, 0, 0, 2, 25, 1, 0, 0, 0, 2, 0, 0]))
r = sc.decode_payload(sc.RESPONSE, sc.read_frame(s))
assert r["type"] == "Hello" and r["protocol"] == 1, r
r = sc.decode_payload(sc.RESPONSE, sc.read_frame(s))
assert r["type"] == "Error" and r["code"] == "Invalid", r
assert "trailing bytes" in r["message"], r
assert s.recv(1) == b"", "connection closed"
print("ok")
"#;
    let examples = script().parent().unwrap().to_owned();
    let o = Command::new(python3())
        .arg("-c")
        .arg(code)
        .arg(&examples)
        .arg(&d.socket)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}\n{}",
        stdout(&o),
        stderr(&o),
        d.log()
    );
    assert_eq!(stdout(&o).trim(), "ok");
}
