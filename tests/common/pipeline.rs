//! Pipeline helpers shared by `tests/pipelines.rs` and `tests/flows.rs`: a
//! daemon with one workspace, specs built in a line, answers unpacked.

use super::*;
use shipote_protocol::client::Client;
use shipote_protocol::spec::{CommandSpec, Endpoint, FlowEdge, PipelineSpec, WorkspaceId};
use shipote_protocol::{ErrorCode, Request, Response, Ulid};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn cmd(label: &str, exec: &str, argv: &[&str]) -> CommandSpec {
    CommandSpec {
        label: label.into(),
        exec: exec.into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        cwd: None,
        restart_on_failure: false,
    }
}

pub fn edge(from: &str, out: &str, to: &str, inp: &str) -> FlowEdge {
    FlowEdge {
        from: Endpoint {
            label: from.into(),
            port: out.into(),
        },
        to: Endpoint {
            label: to.into(),
            port: inp.into(),
        },
        rate_limit_bytes_per_sec: None,
    }
}

pub struct Setup {
    pub _root: CgroupRoot,
    pub d: Daemon,
    pub ws: WorkspaceId,
    pub rt: tokio::runtime::Runtime,
}

pub fn setup(name: &str) -> Setup {
    setup_with(name, &[])
}

/// A daemon on a private cgroup root, started with `args` added, and a
/// workspace `w` in it.
pub fn setup_with(name: &str, args: &[&str]) -> Setup {
    let root = CgroupRoot::new(name);
    let dir = root.0.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let d = Daemon::start_with(move |cmd| {
        cmd.args(["--backend", "cgroup", "--cgroup-root"]).arg(&dir);
        cmd.args(&args);
    });
    assert!(d.cli(&["ws", "create", "w"]).status.success());
    let id = json(&d.cli(&["--json", "ws", "ls"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Setup {
        _root: root,
        d,
        ws: WorkspaceId(Ulid::from_string(&id).unwrap()),
        rt: tokio::runtime::Runtime::new().unwrap(),
    }
}

impl Setup {
    pub fn call(&self, r: Request) -> Response {
        self.rt.block_on(async {
            let mut c = Client::connect(&self.d.socket).await.unwrap();
            c.call(&r).await.unwrap()
        })
    }

    pub fn run(&self, commands: Vec<CommandSpec>, edges: Vec<FlowEdge>) -> Response {
        self.run_vars(commands, edges, BTreeMap::new())
    }

    pub fn run_vars(
        &self,
        commands: Vec<CommandSpec>,
        edges: Vec<FlowEdge>,
        vars: BTreeMap<String, String>,
    ) -> Response {
        self.call(Request::PipelineRun {
            spec: PipelineSpec {
                workspace: self.ws,
                label: "p".into(),
                commands,
                edges,
            },
            tap: false,
            vars,
        })
    }

    /// The command labelled `label`, once it has exited.
    pub fn exited(&self, label: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let ws = self.ws.to_string();
        let done = eventually(Duration::from_secs(20), || {
            let items = json(&self.d.cli(&["--json", "ps", &ws]));
            last = items
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|c| c["label"] == label)
                .cloned()
                .unwrap_or_default();
            last["alive"] == false
        });
        assert!(done, "{label} still running: {last}");
        last
    }

    pub fn logs(&self, label: &str) -> String {
        let c = self.exited(label);
        let ws = self.ws.to_string();
        let o = self
            .d
            .cli(&["logs", &ws, c["id"].as_str().unwrap(), "--bytes", "1M"]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    }
}

/// What a shell prints for `script` (the expected output of a pipeline).
pub fn sh(script: &str) -> String {
    let o = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap()
}

/// One producer of `seq 1 N` feeding two `cat`s, both feeding a checksum of
/// the sorted lines.
pub fn fan(n: u32) -> (Vec<CommandSpec>, Vec<FlowEdge>) {
    let n = n.to_string();
    (
        vec![
            cmd("gen", "seq", &["1", &n]),
            cmd("left", "cat", &[]),
            cmd("right", "cat", &[]),
            cmd("join", "sh", &["-c", "sort -n | sha256sum"]),
        ],
        vec![
            edge("gen", "stdout", "left", "stdin"),
            edge("gen", "stdout", "right", "stdin"),
            edge("left", "stdout", "join", "stdin"),
            edge("right", "stdout", "join", "stdin"),
        ],
    )
}

pub fn started(r: Response) -> (Ulid, Vec<(String, i32)>) {
    match r {
        Response::PipelineStarted {
            pipeline,
            command_pids,
            ..
        } => (pipeline, command_pids),
        other => panic!("{other:?}"),
    }
}

pub fn invalid(r: Response) -> String {
    match r {
        Response::Error {
            code: ErrorCode::Invalid,
            message,
        } => message,
        other => panic!("{other:?}"),
    }
}
