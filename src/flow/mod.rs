//! The data plane between pipeline commands: kernel pipes for edges and, for
//! an output feeding several inputs (fan-out), a relay thread that copies it
//! to each. Bytes never pass through the supervisor.
//!
//! Wiring: every input that some edge feeds gets one pipe, whose read end is
//! the consumer's descriptor; every producer of that input writes into the
//! same pipe (fan-in: the kernel interleaves whole writes of up to 4 KiB). An
//! output with one consumer writes straight into the consumer's pipe: a raw
//! kernel pipe, nothing in between. An output with several consumers writes
//! into a pipe of its own, drained by a relay into each consumer's pipe.
//!
//! End of data propagates: the daemon keeps no write end once the commands
//! run, so a consumer sees EOF when all its producers ended; a relay whose
//! consumers all left closes its source, so the producer gets EPIPE.

pub mod tap;

use crate::workspace::pipeline::{Plan, Port, PortOf};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// One command's descriptors in a pipeline.
#[derive(Debug, Default)]
pub struct Ends {
    /// Standard input, when an edge feeds it.
    pub stdin: Option<OwnedFd>,
    /// Standard output, when an edge takes it.
    pub stdout: Option<OwnedFd>,
    /// Standard error, when an edge takes it.
    pub stderr: Option<OwnedFd>,
    /// Named ports, as descriptors 3, 4, ... in order.
    pub extra: Vec<OwnedFd>,
}

impl Ends {
    /// Copies of the same descriptors (a restartable command's are kept by
    /// the daemon, to give the next run the same edges).
    pub fn try_clone(&self) -> std::io::Result<Ends> {
        let dup = |f: &Option<OwnedFd>| f.as_ref().map(OwnedFd::try_clone).transpose();
        Ok(Ends {
            stdin: dup(&self.stdin)?,
            stdout: dup(&self.stdout)?,
            stderr: dup(&self.stderr)?,
            extra: self
                .extra
                .iter()
                .map(OwnedFd::try_clone)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The pipes of a pipeline, before its commands start.
#[derive(Debug)]
pub struct Wiring {
    /// Per command (in spec order).
    pub ends: Vec<Ends>,
    /// Fan-out relays to start: source read end, consumers' write ends.
    pub relays: Vec<(OwnedFd, Vec<OwnedFd>)>,
    /// Edges with a tap between producer and consumer.
    pub interposed: Vec<Interposed>,
}

/// An edge the daemon sits on (a tap, or a rate limit).
#[derive(Debug)]
pub struct Interposed {
    /// The edge's index in the plan.
    pub edge: usize,
    /// What the producer writes.
    pub src: OwnedFd,
    /// Where the consumer reads.
    pub dst: OwnedFd,
}

/// A pipe with a large buffer (1 MiB where the kernel allows): fewer
/// wake-ups per byte than a shell's 64 KiB pipe.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    crate::process::logs::enlarge_pipe(std::os::fd::AsFd::as_fd(&r));
    Ok((r, w))
}

/// Makes the pipes for `plan`; every edge is interposed when `tap`, and an
/// edge with a rate limit always is.
pub fn wire(plan: &Plan, tap: bool) -> std::io::Result<Wiring> {
    let n = plan.spec.commands.len();
    // One pipe per fed input.
    let mut inputs: BTreeMap<(usize, Port), (Option<OwnedFd>, OwnedFd)> = BTreeMap::new();
    for (_, to) in &plan.edges {
        if !inputs.contains_key(to) {
            let (r, w) = pipe()?;
            inputs.insert(to.clone(), (Some(r), w));
        }
    }
    // Consumers of each output.
    // Per output: (edge index, consumer's input).
    let mut outputs: BTreeMap<PortOf, Vec<(usize, PortOf)>> = BTreeMap::new();
    for (k, (from, to)) in plan.edges.iter().enumerate() {
        outputs
            .entry(from.clone())
            .or_default()
            .push((k, to.clone()));
    }
    let mut interposed = Vec::new();
    let mut given: Vec<BTreeMap<Port, OwnedFd>> = (0..n).map(|_| BTreeMap::new()).collect();
    let mut relays = Vec::new();
    for ((who, port), consumers) in &outputs {
        let mut write_end = |(k, to): &(usize, PortOf)| -> std::io::Result<OwnedFd> {
            let dst = inputs[to].1.try_clone()?;
            if tap || plan.spec.edges[*k].rate_limit_bytes_per_sec.is_some() {
                let (src, w) = pipe()?;
                interposed.push(Interposed { edge: *k, src, dst });
                Ok(w)
            } else {
                Ok(dst)
            }
        };
        let end = if let [only] = consumers.as_slice() {
            write_end(only)?
        } else {
            let (r, w) = pipe()?;
            let dsts = consumers
                .iter()
                .map(&mut write_end)
                .collect::<Result<_, _>>()?;
            relays.push((r, dsts));
            w
        };
        given[*who].insert(port.clone(), end);
    }
    for ((who, port), (read, _write)) in &mut inputs {
        if let Some(r) = read.take() {
            given[*who].insert(port.clone(), r);
        }
    }
    // The inputs' original write ends close here: producers hold the rest.
    drop(inputs);
    let ends = given
        .into_iter()
        .enumerate()
        .map(|(i, mut ports)| {
            let mut e = Ends {
                stdin: ports.remove(&Port::Std(0)),
                stdout: ports.remove(&Port::Std(1)),
                stderr: ports.remove(&Port::Std(2)),
                extra: Vec::new(),
            };
            // Named ports in descriptor order.
            let mut named: Vec<(i32, OwnedFd)> = ports
                .into_iter()
                .filter_map(|(p, fd)| plan.named_fds[i].get(&p).map(|&n| (n, fd)))
                .collect();
            named.sort_by_key(|(n, _)| *n);
            e.extra = named.into_iter().map(|(_, fd)| fd).collect();
            e
        })
        .collect();
    Ok(Wiring {
        ends,
        relays,
        interposed,
    })
}

/// Copies `src` to every `dsts` on a thread of its own until `src` ends or
/// every consumer has left. A consumer that left (EPIPE) is dropped; the
/// others keep receiving.
pub fn relay(src: OwnedFd, dsts: Vec<OwnedFd>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("shipote-relay".into())
        .spawn(move || {
            let mut src = File::from(src);
            let mut dsts: Vec<File> = dsts.into_iter().map(File::from).collect();
            let mut buf = vec![0u8; 64 * 1024];
            while !dsts.is_empty() {
                let n = match src.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                };
                dsts.retain_mut(|d| d.write_all(&buf[..n]).is_ok());
            }
        })
}
