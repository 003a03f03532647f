//! Pipeline specs: `${KEY}` templating and whole-spec validation, before
//! anything starts. Pure: no process, no file.
//!
//! Templating: every string of the spec (labels, exec, argv, env names and
//! values, cwd, edge endpoints) has `${KEY}` replaced by `vars[KEY]`; `$${`
//! is a literal `${`. Keys are `[A-Za-z_][A-Za-z0-9_]*`. The values are
//! substituted as they are and never seen by a shell.
//!
//! Ports: a command's outputs are `stdout`, `stderr` or a named output; its
//! inputs are `stdin` or a named input. Names are `[a-z][a-z0-9_]{0,31}`.
//! Named ports are extra file descriptors, numbered from 3 in the order the
//! names first appear in the edges, announced in the command's environment as
//! `SHIPOTE_OUT_<NAME>=<fd>` and `SHIPOTE_IN_<NAME>=<fd>` (NAME upper-cased).

use shipote_protocol::spec::{CommandSpec, Endpoint, FlowEdge, PipelineSpec};
use std::collections::{BTreeMap, BTreeSet};

/// Most commands in one pipeline.
pub const MAX_COMMANDS: usize = 64;

/// Most edges in one pipeline.
pub const MAX_EDGES: usize = 256;

/// Longest string after templating, in bytes: the kernel's limit on one
/// argument or environment string (MAX_ARG_STRLEN), which no command could be
/// given anyway.
pub const MAX_RENDERED_STRING: usize = 128 << 10;

/// Most bytes of all the strings of a spec after templating (twice the
/// kernel's usual ARG_MAX of 2 MiB... for the whole pipeline, not one command).
pub const MAX_RENDERED_TOTAL: usize = 4 << 20;

/// Most `vars` in one request.
pub const MAX_VARS: usize = 1024;

/// Substitutes `${KEY}` in every string of `spec`. An unknown key is an error
/// listing every unknown key. Output is bounded before it is allocated: a
/// string that would pass [`MAX_RENDERED_STRING`], or a spec that would pass
/// [`MAX_RENDERED_TOTAL`], is refused, however many placeholders it holds.
pub fn render(
    spec: &PipelineSpec,
    vars: &BTreeMap<String, String>,
) -> Result<PipelineSpec, String> {
    if vars.len() > MAX_VARS {
        return Err(format!(
            "{} vars were given; at most {MAX_VARS}",
            vars.len()
        ));
    }
    let mut unknown = BTreeSet::new();
    let mut bad = BTreeSet::new();
    let mut budget = Budget {
        left: MAX_RENDERED_TOTAL,
        over: None,
    };
    let mut sub = |s: &str| subst(s, vars, &mut unknown, &mut bad, &mut budget);
    let commands = spec
        .commands
        .iter()
        .map(|c| CommandSpec {
            label: sub(&c.label),
            exec: sub(&c.exec),
            argv: c.argv.iter().map(|a| sub(a)).collect(),
            env: c.env.iter().map(|(k, v)| (sub(k), sub(v))).collect(),
            cwd: c.cwd.as_ref().map(|p| sub(&p.to_string_lossy()).into()),
            restart_on_failure: c.restart_on_failure,
        })
        .collect();
    let endpoint = |e: &Endpoint, sub: &mut dyn FnMut(&str) -> String| Endpoint {
        label: sub(&e.label),
        port: sub(&e.port),
    };
    let edges = spec
        .edges
        .iter()
        .map(|e| FlowEdge {
            from: endpoint(&e.from, &mut sub),
            to: endpoint(&e.to, &mut sub),
            rate_limit_bytes_per_sec: e.rate_limit_bytes_per_sec,
        })
        .collect();
    let label = sub(&spec.label);
    if let Some(over) = budget.over {
        return Err(over);
    }
    if !bad.is_empty() {
        let list: Vec<String> = bad.into_iter().collect();
        return Err(format!(
            "malformed placeholder {}; write ${{KEY}} with KEY of letters, digits and '_', or $${{ for a literal ${{",
            list.join(", ")
        ));
    }
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.into_iter().collect();
        return Err(format!(
            "no value for {}; pass them with --var KEY=VALUE",
            list.join(", ")
        ));
    }
    Ok(PipelineSpec {
        workspace: spec.workspace,
        label,
        commands,
        edges,
    })
}

/// What templating may still produce, and why it stopped if it did.
struct Budget {
    left: usize,
    over: Option<String>,
}

impl Budget {
    /// Whether `out` may grow by `more` bytes; records why not.
    fn allows(&mut self, out: &str, more: usize, whole: &str) -> bool {
        if self.over.is_some() {
            return false;
        }
        let shown: String = whole.chars().take(32).collect();
        if out.len() + more > MAX_RENDERED_STRING {
            self.over = Some(format!(
                "{shown:?}... would be longer than {} KiB after templating; \
                 no command can be given a string that long",
                MAX_RENDERED_STRING >> 10
            ));
            return false;
        }
        if more > self.left {
            self.over = Some(format!(
                "the pipeline would be larger than {} MiB after templating (at {shown:?}...); \
                 use fewer or shorter --var values",
                MAX_RENDERED_TOTAL >> 20
            ));
            return false;
        }
        self.left -= more;
        true
    }
}

fn subst(
    s: &str,
    vars: &BTreeMap<String, String>,
    unknown: &mut BTreeSet<String>,
    bad: &mut BTreeSet<String>,
    budget: &mut Budget,
) -> String {
    let mut out = String::new();
    if !budget.allows(&out, s.len().min(MAX_RENDERED_STRING + 1), s) {
        return out;
    }
    out.reserve(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            match tail.find('}') {
                Some(end) if is_key(&tail[..end]) => {
                    let key = &tail[..end];
                    match vars.get(key) {
                        Some(v) if !budget.allows(&out, v.len(), s) => return String::new(),
                        Some(v) => out.push_str(v),
                        None => {
                            unknown.insert(format!("${{{key}}}"));
                        }
                    }
                    rest = &tail[end + 1..];
                }
                _ => {
                    let shown: String = after.chars().take(24).collect();
                    bad.insert(format!("{shown:?}"));
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

fn is_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_port_name(p: &str) -> bool {
    let mut chars = p.chars();
    p.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Where a command's port is connected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    /// Standard input, output or error.
    Std(u8),
    /// A named extra descriptor.
    Named(String),
}

impl Port {
    fn output(p: &str) -> Option<Self> {
        match p {
            "stdout" => Some(Port::Std(1)),
            "stderr" => Some(Port::Std(2)),
            "stdin" => None,
            n if is_port_name(n) => Some(Port::Named(n.to_owned())),
            _ => None,
        }
    }

    fn input(p: &str) -> Option<Self> {
        match p {
            "stdin" => Some(Port::Std(0)),
            "stdout" | "stderr" => None,
            n if is_port_name(n) => Some(Port::Named(n.to_owned())),
            _ => None,
        }
    }
}

/// One end of an edge: a command (by index) and its port.
pub type PortOf = (usize, Port);

/// An edge: producer's output to consumer's input.
pub type Edge = (PortOf, PortOf);

/// A validated pipeline: commands by index, edges between (command, port).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The rendered spec.
    pub spec: PipelineSpec,
    /// Per edge: (producer index, output), (consumer index, input).
    pub edges: Vec<Edge>,
    /// Per command, its named ports with their descriptor numbers (from 3).
    pub named_fds: Vec<BTreeMap<Port, i32>>,
}

impl Plan {
    /// The environment variables announcing command `i`'s named ports.
    pub fn port_env(&self, i: usize) -> Vec<(String, String)> {
        let outputs: BTreeSet<&Port> = self
            .edges
            .iter()
            .filter(|(from, _)| from.0 == i)
            .map(|(from, _)| &from.1)
            .collect();
        self.named_fds[i]
            .iter()
            .filter_map(|(port, fd)| match port {
                Port::Named(n) => {
                    let dir = if outputs.contains(port) { "OUT" } else { "IN" };
                    Some((
                        format!("SHIPOTE_{dir}_{}", n.to_ascii_uppercase()),
                        fd.to_string(),
                    ))
                }
                Port::Std(_) => None,
            })
            .collect()
    }
}

/// Renders and validates `spec` whole; the message names the offending part.
pub fn plan(spec: &PipelineSpec, vars: &BTreeMap<String, String>) -> Result<Plan, String> {
    // Counts first: templating never runs on a spec too large to start.
    if spec.commands.is_empty() {
        return Err("the pipeline has no commands; give at least one".into());
    }
    if spec.commands.len() > MAX_COMMANDS {
        return Err(format!(
            "the pipeline has {} commands; at most {MAX_COMMANDS}",
            spec.commands.len()
        ));
    }
    if spec.edges.len() > MAX_EDGES {
        return Err(format!(
            "the pipeline has {} edges; at most {MAX_EDGES}",
            spec.edges.len()
        ));
    }
    let spec = render(spec, vars)?;
    super::validate_label(&spec.label).map_err(|e| format!("pipeline {e}"))?;
    let mut index = BTreeMap::new();
    for (i, c) in spec.commands.iter().enumerate() {
        super::validate_label(&c.label).map_err(|e| format!("command {}: {e}", i + 1))?;
        if index.insert(c.label.clone(), i).is_some() {
            return Err(format!(
                "two commands are labelled {:?}; labels must be unique",
                c.label
            ));
        }
        if c.exec.is_empty() {
            return Err(format!(
                "command {:?} has an empty exec; name a program",
                c.label
            ));
        }
    }
    let mut edges = Vec::with_capacity(spec.edges.len());
    let mut seen = BTreeSet::new();
    let mut outputs: Vec<BTreeSet<Port>> = vec![BTreeSet::new(); spec.commands.len()];
    let mut inputs: Vec<BTreeSet<Port>> = vec![BTreeSet::new(); spec.commands.len()];
    for e in &spec.edges {
        let name = format!(
            "edge {}/{} -> {}/{}",
            e.from.label, e.from.port, e.to.label, e.to.port
        );
        let from = *index
            .get(&e.from.label)
            .ok_or_else(|| format!("{name}: no command is labelled {:?}", e.from.label))?;
        let to = *index
            .get(&e.to.label)
            .ok_or_else(|| format!("{name}: no command is labelled {:?}", e.to.label))?;
        let out = Port::output(&e.from.port).ok_or_else(|| {
            format!(
                "{name}: {:?} is not an output; use stdout, stderr or a name of [a-z][a-z0-9_]*",
                e.from.port
            )
        })?;
        let inp = Port::input(&e.to.port).ok_or_else(|| {
            format!(
                "{name}: {:?} is not an input; use stdin or a name of [a-z][a-z0-9_]*",
                e.to.port
            )
        })?;
        if e.rate_limit_bytes_per_sec == Some(0) {
            return Err(format!(
                "{name}: a rate limit of 0 would stop the flow; leave it unset for none"
            ));
        }
        if !seen.insert((from, out.clone(), to, inp.clone())) {
            return Err(format!("{name} is given twice"));
        }
        if let Port::Named(n) = &out {
            if inputs[from].contains(&out) {
                return Err(format!(
                    "{name}: {:?} of {:?} is already an input",
                    n, e.from.label
                ));
            }
        }
        if let Port::Named(n) = &inp {
            if outputs[to].contains(&inp) {
                return Err(format!(
                    "{name}: {:?} of {:?} is already an output",
                    n, e.to.label
                ));
            }
        }
        outputs[from].insert(out.clone());
        inputs[to].insert(inp.clone());
        edges.push(((from, out), (to, inp)));
    }
    if let Some(cycle) = find_cycle(spec.commands.len(), &edges) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| spec.commands[i].label.as_str())
            .collect();
        return Err(format!(
            "the edges make a cycle ({}); a pipeline must flow one way",
            names.join(" -> ")
        ));
    }
    let named_fds = (0..spec.commands.len())
        .map(|i| {
            let mut fds = BTreeMap::new();
            for ((from, out), (to, inp)) in &edges {
                for (who, port) in [(from, out), (to, inp)] {
                    if *who == i && matches!(port, Port::Named(_)) && !fds.contains_key(port) {
                        let fd = 3 + fds.len() as i32;
                        fds.insert(port.clone(), fd);
                    }
                }
            }
            fds
        })
        .collect();
    Ok(Plan {
        spec,
        edges,
        named_fds,
    })
}

/// A cycle among the commands, as the labels' indices along it, if any.
fn find_cycle(n: usize, edges: &[Edge]) -> Option<Vec<usize>> {
    let mut next: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for ((from, _), (to, _)) in edges {
        next[*from].insert(*to);
    }
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; n];
    let mut path = Vec::new();
    fn visit(
        i: usize,
        next: &[BTreeSet<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[i] = 1;
        path.push(i);
        for &j in &next[i] {
            if state[j] == 1 {
                let start = path.iter().position(|&p| p == j).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(j);
                return Some(cycle);
            }
            if state[j] == 0 {
                if let Some(c) = visit(j, next, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    (0..n).find_map(|i| {
        if state[i] == 0 {
            visit(i, &next, &mut state, &mut path)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipote_protocol::spec::WorkspaceId;

    fn cmd(label: &str, exec: &str) -> CommandSpec {
        CommandSpec {
            label: label.into(),
            exec: exec.into(),
            argv: vec![],
            env: vec![],
            cwd: None,
            restart_on_failure: false,
        }
    }

    fn edge(from: &str, out: &str, to: &str, inp: &str) -> FlowEdge {
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

    fn spec(commands: Vec<CommandSpec>, edges: Vec<FlowEdge>) -> PipelineSpec {
        PipelineSpec {
            workspace: WorkspaceId(ulid::Ulid::nil()),
            label: "p".into(),
            commands,
            edges,
        }
    }

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn templating_fills_every_string_and_lists_every_unknown_key() {
        let mut c = cmd("${NAME}", "${PROG}");
        c.argv = vec!["-n".into(), "${N}x$${LITERAL}$HOME".into()];
        c.env = vec![("K_${N}".into(), "${N}".into())];
        let s = spec(vec![c], vec![]);
        let out = render(&s, &vars(&[("NAME", "a"), ("PROG", "seq"), ("N", "3")])).unwrap();
        assert_eq!(out.commands[0].label, "a");
        assert_eq!(out.commands[0].exec, "seq");
        assert_eq!(out.commands[0].argv[1], "3x${LITERAL}$HOME");
        assert_eq!(out.commands[0].env[0], ("K_3".into(), "3".into()));
        let e = render(&s, &vars(&[])).unwrap_err();
        assert!(
            e.contains("${N}") && e.contains("${NAME}") && e.contains("${PROG}"),
            "{e}"
        );
        let e = render(&spec(vec![cmd("a", "${oops")], vec![]), &vars(&[])).unwrap_err();
        assert!(e.contains("malformed placeholder"), "{e}");
        // Values are inserted as they are: no second round of substitution.
        let out = render(
            &spec(vec![cmd("a", "${X}")], vec![]),
            &vars(&[("X", "${Y}")]),
        )
        .unwrap();
        assert_eq!(out.commands[0].exec, "${Y}");
    }

    #[test]
    fn templating_is_bounded_before_it_allocates() {
        // The request of issue 14: a 512 KiB value, `${A}` 4,096 times in one
        // string (2 GiB if expanded). Refused at once, nothing allocated.
        let big = "x".repeat(512 << 10);
        let mut c = cmd("a", "echo");
        c.argv = vec!["${A}".repeat(4096)];
        let start = std::time::Instant::now();
        let e = render(&spec(vec![c], vec![]), &vars(&[("A", &big)])).unwrap_err();
        assert!(e.contains("longer than 128 KiB after templating"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_millis(200));
        // Many strings each under the per-string limit, over the total.
        let mut c = cmd("a", "echo");
        c.argv = vec!["${A}".into(); 64];
        let e = render(
            &spec(vec![c], vec![]),
            &vars(&[("A", &"y".repeat(100 << 10))]),
        )
        .unwrap_err();
        assert!(e.contains("larger than 4 MiB after templating"), "{e}");
        // Real use stays far below: 1,000 arguments of 1 KiB.
        let mut c = cmd("a", "echo");
        c.argv = vec!["${A}".into(); 1000];
        assert!(render(&spec(vec![c], vec![]), &vars(&[("A", &"z".repeat(1024))])).is_ok());
    }

    #[test]
    fn too_many_commands_are_refused_before_templating() {
        let commands: Vec<CommandSpec> = (0..MAX_COMMANDS + 1)
            .map(|i| cmd(&format!("c{i}"), "${MISSING}"))
            .collect();
        let e = plan(&spec(commands, vec![]), &vars(&[])).unwrap_err();
        assert!(e.contains("at most 64"), "{e}");
    }

    #[test]
    fn a_valid_pipeline_gets_fds_for_its_named_ports() {
        let s = spec(
            vec![cmd("a", "seq"), cmd("b", "tr"), cmd("c", "sha256sum")],
            vec![
                edge("a", "stdout", "b", "stdin"),
                edge("b", "stdout", "c", "stdin"),
                edge("a", "stats", "c", "extra"),
                edge("b", "stderr", "c", "extra"),
            ],
        );
        let p = plan(&s, &vars(&[])).unwrap();
        assert_eq!(p.edges.len(), 4);
        assert_eq!(p.named_fds[0].get(&Port::Named("stats".into())), Some(&3));
        assert_eq!(
            p.port_env(0),
            vec![("SHIPOTE_OUT_STATS".into(), "3".into())]
        );
        assert_eq!(p.port_env(2), vec![("SHIPOTE_IN_EXTRA".into(), "3".into())]);
        assert!(p.port_env(1).is_empty());
    }

    #[test]
    fn validation_names_the_offending_part() {
        let check = |s: PipelineSpec, needle: &str| {
            let e = plan(&s, &vars(&[])).unwrap_err();
            assert!(e.contains(needle), "{e:?} should mention {needle:?}");
        };
        check(spec(vec![], vec![]), "no commands");
        check(
            spec(vec![cmd("a", "x"), cmd("a", "y")], vec![]),
            "two commands are labelled \"a\"",
        );
        check(spec(vec![cmd("a", "")], vec![]), "empty exec");
        check(spec(vec![cmd("a b", "x")], vec![]), "command 1");
        check(
            spec(
                vec![cmd("a", "x")],
                vec![edge("a", "stdout", "zz", "stdin")],
            ),
            "no command is labelled \"zz\"",
        );
        check(
            spec(
                vec![cmd("a", "x"), cmd("b", "y")],
                vec![edge("a", "stdin", "b", "stdin")],
            ),
            "\"stdin\" is not an output",
        );
        check(
            spec(
                vec![cmd("a", "x"), cmd("b", "y")],
                vec![edge("a", "stdout", "b", "stdout")],
            ),
            "\"stdout\" is not an input",
        );
        check(
            spec(
                vec![cmd("a", "x"), cmd("b", "y")],
                vec![edge("a", "stdout", "b", "Bad-Name")],
            ),
            "not an input",
        );
        check(
            spec(
                vec![cmd("a", "x"), cmd("b", "y")],
                vec![
                    edge("a", "stdout", "b", "stdin"),
                    edge("a", "stdout", "b", "stdin"),
                ],
            ),
            "given twice",
        );
        check(
            spec(
                vec![cmd("a", "x"), cmd("b", "y"), cmd("c", "z")],
                vec![
                    edge("a", "stdout", "b", "stdin"),
                    edge("b", "stdout", "c", "stdin"),
                    edge("c", "stdout", "a", "stdin"),
                ],
            ),
            "cycle (a -> b -> c -> a)",
        );
        check(
            spec(vec![cmd("a", "x")], vec![edge("a", "stdout", "a", "stdin")]),
            "cycle (a -> a)",
        );
        let mut limited = edge("a", "stdout", "b", "stdin");
        limited.rate_limit_bytes_per_sec = Some(0);
        check(
            spec(vec![cmd("a", "x"), cmd("b", "y")], vec![limited]),
            "rate limit of 0",
        );
    }

    #[test]
    fn fan_out_and_fan_in_are_valid() {
        let s = spec(
            vec![cmd("a", "x"), cmd("b", "y"), cmd("c", "z"), cmd("d", "w")],
            vec![
                edge("a", "stdout", "b", "stdin"),
                edge("a", "stdout", "c", "stdin"),
                edge("b", "stdout", "d", "stdin"),
                edge("c", "stdout", "d", "stdin"),
            ],
        );
        assert!(plan(&s, &vars(&[])).is_ok());
    }
}
