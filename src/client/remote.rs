//! Where the CLI's daemon is: a local socket, or another host reached
//! through the user's own `ssh` (agent, keys, config, ControlMaster), which
//! runs `shipote system dial-stdio` there and carries the protocol over its
//! standard input and output, as `DOCKER_HOST=ssh://` does.

use super::Failure;
use shipote_protocol::client::{Client, ClientError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Most bytes of `ssh`'s own messages kept for an error.
const SSH_STDERR_MAX: usize = 8 << 10;

/// The daemon the CLI talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A socket on this host.
    Local(PathBuf),
    /// A daemon on another host, through ssh.
    Ssh(SshHost),
}

/// `ssh://[USER@]HOST[:PORT][/SOCKET]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    /// As written, for messages.
    pub url: String,
    /// `USER@HOST` or `HOST`.
    pub destination: String,
    /// The port, when not ssh's own default or config's.
    pub port: Option<u16>,
    /// The daemon's socket there (default: its own default).
    pub socket: Option<PathBuf>,
}

impl Target {
    /// `--host` (or SHIPOTE_HOST) if given, else the local socket.
    pub fn new(host: Option<&str>, socket: PathBuf) -> Result<Self, String> {
        match host {
            None | Some("") => Ok(Target::Local(socket)),
            Some(url) => parse_ssh(url).map(Target::Ssh),
        }
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            Target::Local(p) => p.display().to_string(),
            Target::Ssh(h) => h.url.clone(),
        }
    }
}

fn parse_ssh(url: &str) -> Result<SshHost, String> {
    let bad = |why: &str| {
        format!("--host {url:?}: {why}; write ssh://[USER@]HOST[:PORT][/SOCKET], e.g. ssh://me@build:2222")
    };
    let rest = url
        .strip_prefix("ssh://")
        .ok_or_else(|| bad("only ssh:// hosts are known"))?;
    let (authority, socket) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(PathBuf::from(&rest[i..]))),
        None => (rest, None),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?;
            (h, Some(port))
        }
        _ => (hostport, None),
    };
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c))
    };
    if !ok(host) || user.is_some_and(|u| !ok(u)) {
        return Err(bad("no usable host name"));
    }
    Ok(SshHost {
        url: url.to_owned(),
        destination: match user {
            Some(u) => format!("{u}@{host}"),
            None => host.to_owned(),
        },
        port,
        socket,
    })
}

/// Quotes `s` for the remote shell ssh hands the command to.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `ssh` command that runs `shipote system dial-stdio` on `host`,
/// bridged to `socket` there (the daemon's, or a flow's). SHIPOTE_SSH_COMMAND
/// replaces `ssh` (words split on spaces, as GIT_SSH_COMMAND), e.g. to add
/// `-F CONFIG` or `-i KEY`.
pub fn ssh_command(host: &SshHost, socket: Option<&Path>) -> std::process::Command {
    let ssh = std::env::var("SHIPOTE_SSH_COMMAND").unwrap_or_else(|_| "ssh".into());
    let mut words = ssh.split_whitespace();
    let mut cmd = std::process::Command::new(words.next().unwrap_or("ssh"));
    cmd.args(words);
    cmd.arg("-T");
    if let Some(p) = host.port {
        cmd.args(["-p", &p.to_string()]);
    }
    cmd.arg("--").arg(&host.destination);
    let mut remote = String::from("shipote");
    if let Some(s) = socket.or(host.socket.as_deref()) {
        remote += " --socket ";
        remote += &shell_quote(&s.to_string_lossy());
    }
    remote += " system dial-stdio";
    cmd.arg(remote);
    cmd
}

/// A running bridge: the ssh child, and what it said on stderr.
pub struct Bridge {
    _child: tokio::process::Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The task gathering ssh's stderr: done once ssh has exited.
    gathering: Option<tokio::task::JoinHandle<()>>,
    host: String,
}

impl Bridge {
    /// Why the bridge failed, in ssh's (or the far side's) own words: once
    /// ssh's last message is in (it exits right after the pipe closes).
    pub async fn explain(&mut self, e: &ClientError) -> String {
        if let Some(task) = self.gathering.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), task).await;
        }
        let said = self.stderr.lock().map(|b| b.clone()).unwrap_or_default();
        let said = String::from_utf8_lossy(&said);
        let said = said.trim();
        let hint = if said.contains("command not found") || said.contains("not found") {
            "; is shipote installed there (and on the PATH ssh's commands get)?"
        } else {
            ""
        };
        if said.is_empty() {
            format!("{}: {}", self.host, super::root_cause(e))
        } else {
            format!("{}: {said}{hint}", self.host)
        }
    }
}

/// Connects to `target`: the socket, or an ssh bridge to the far daemon.
pub async fn connect(target: &Target) -> Result<(Client, Option<Bridge>), Failure> {
    match target {
        Target::Local(socket) => Client::connect(socket)
            .await
            .map(|c| (c, None))
            .map_err(|e| Failure::Transport(Box::new(e))),
        Target::Ssh(host) => {
            let mut cmd = tokio::process::Command::from(ssh_command(host, None));
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| {
                Failure::Input(format!(
                    "cannot run ssh to reach {}: {e}; install openssh-client (or set SHIPOTE_SSH_COMMAND)",
                    host.url
                ))
            })?;
            let (Some(stdin), Some(stdout), Some(mut err)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(Failure::Input("ssh started without its pipes".into()));
            };
            let stderr = Arc::new(Mutex::new(Vec::new()));
            let kept = stderr.clone();
            let gathering = tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 1024];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut k) = kept.lock() {
                        if k.len() < SSH_STDERR_MAX {
                            k.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            });
            Ok((
                Client::from_halves(stdout, stdin),
                Some(Bridge {
                    _child: child,
                    stderr,
                    gathering: Some(gathering),
                    host: host.url.clone(),
                }),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_urls() {
        let h = |u: &str| match Target::new(Some(u), PathBuf::from("/s")) {
            Ok(Target::Ssh(h)) => Ok((h.destination, h.port, h.socket)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(h("ssh://build"), Ok(("build".into(), None, None)));
        assert_eq!(
            h("ssh://me@build:2222/run/user/1000/shipote.sock"),
            Ok((
                "me@build".into(),
                Some(2222),
                Some("/run/user/1000/shipote.sock".into())
            ))
        );
        assert!(h("tcp://build").unwrap_err().contains("only ssh://"));
        assert!(h("ssh://build:port").unwrap_err().contains("port"));
        assert!(h("ssh://-oProxyCommand=x").is_err(), "no option smuggling");
        assert_eq!(
            Target::new(None, PathBuf::from("/s")),
            Ok(Target::Local("/s".into()))
        );
    }

    #[test]
    fn the_remote_command_quotes_the_socket() {
        let Ok(Target::Ssh(h)) = Target::new(Some("ssh://u@h:22/tmp/a b'c.sock"), PathBuf::new())
        else {
            panic!()
        };
        let cmd = ssh_command(&h, None);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[args.len() - 1],
            r"shipote --socket '/tmp/a b'\''c.sock' system dial-stdio"
        );
        assert!(args.contains(&"-T".to_owned()) && args.contains(&"u@h".to_owned()));
    }
}
