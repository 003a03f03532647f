//! A private sshd on loopback for tests and benches (issue #20): generated
//! host and user keys, its own config letting root in with that key only,
//! this build's shipote on the far side's PATH, and an ssh client config
//! that reaches it as `testhost`. Included with `#[path]` by tests/remote.rs
//! and bench/remote.rs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An sshd on 127.0.0.1 that lets root in with one generated key, and the
/// ssh client config that reaches it as `testhost`.
pub struct Sshd {
    child: Child,
    /// Keys, configs and logs.
    pub dir: tempfile::TempDir,
    port: u16,
}

impl Sshd {
    pub fn start(shipote_bin: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host", "user"] {
            let o = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .output()
                .expect("ssh-keygen (openssh-client; tests/all.sh installs it)");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        std::fs::copy(d.join("user.pub"), d.join("authorized_keys")).unwrap();
        // A free port: bound, read, let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The far side's PATH holds this build's shipote.
        let bin = shipote_bin.parent().unwrap().to_owned();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
                 PidFile {pid}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 SetEnv PATH={bin}:/usr/bin:/bin\nLogLevel ERROR\n",
                host = d.join("host").display(),
                keys = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
                bin = bin.display(),
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host testhost\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {key}\n\
                 IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n\
                 BatchMode yes\n  LogLevel ERROR\n",
                key = d.join("user").display(),
            ),
        )
        .unwrap();
        // Debian's sshd wants its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server; tests/all.sh installs it)");
        let s = Sshd { child, dir, port };
        // Ready once it accepts (polled, bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                std::fs::read_to_string(s.dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// `ssh` with this sshd's client config (`testhost`).
    pub fn ssh_command(&self) -> String {
        format!("ssh -F {}", self.dir.path().join("ssh_config").display())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
