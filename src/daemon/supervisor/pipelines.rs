//! Pipeline and flow handlers on the supervisor: PipelineRun (from a plan
//! made off the loop), PipelineStop, FlowList/Throughput/Drop.

use super::*;

impl Supervisor {
    /// PipelineRun: templating (bounded, up to 4 MiB) and validation off the
    /// loop; the plan comes back as an event.
    pub(super) fn pipeline_plan(
        &self,
        spec: PipelineSpec,
        tap: bool,
        vars: BTreeMap<String, String>,
        reply: oneshot::Sender<Response>,
    ) {
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || planned(&tx, &spec, &vars, tap, reply));
    }

    pub(super) fn pipeline_save(
        &self,
        name: String,
        spec: PipelineSpec,
        reply: oneshot::Sender<Response>,
    ) {
        let dir = self.env.pipelines_dir.clone();
        tokio::task::spawn_blocking(move || {
            let response = match saved::save(&dir, &name, &spec) {
                Ok(()) => Response::PipelineSaved { name },
                Err(e) => Response::error(ErrorCode::Invalid, e),
            };
            let _ = reply.send(response);
        });
    }

    pub(super) fn pipeline_saved_list(&self, reply: oneshot::Sender<Response>) {
        let dir = self.env.pipelines_dir.clone();
        tokio::task::spawn_blocking(move || {
            let response = match saved::list(&dir) {
                Ok(names) => Response::PipelineSavedList { names },
                Err(e) => Response::error(ErrorCode::Internal, e),
            };
            let _ = reply.send(response);
        });
    }

    pub(super) fn pipeline_drop(&self, name: String, reply: oneshot::Sender<Response>) {
        let dir = self.env.pipelines_dir.clone();
        tokio::task::spawn_blocking(move || {
            let response = match saved::remove(&dir, &name) {
                Ok(existed) => Response::PipelineDropped { name, existed },
                Err(e) => Response::error(ErrorCode::Invalid, e),
            };
            let _ = reply.send(response);
        });
    }

    pub(super) fn pipeline_run_saved(
        &self,
        name: String,
        tap: bool,
        vars: BTreeMap<String, String>,
        reply: oneshot::Sender<Response>,
    ) {
        let dir = self.env.pipelines_dir.clone();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let spec = match saved::load(&dir, &name) {
                Ok(Some(spec)) => spec,
                Ok(None) => {
                    let msg = format!(
                        "no pipeline is saved as {name:?}; list them with shipote pipeline ls"
                    );
                    let _ = reply.send(Response::error(ErrorCode::NotFound, msg));
                    return;
                }
                Err(e) => {
                    let _ = reply.send(Response::error(ErrorCode::Invalid, e));
                    return;
                }
            };
            planned(&tx, &spec, &vars, tap, reply);
        });
    }

    pub(super) fn active_flows(&self) -> u32 {
        self.pipelines
            .values()
            .flat_map(|p| &p.taps)
            .filter(|t| {
                t.published().is_some()
                    && !t.tap.state.ended.load(std::sync::atomic::Ordering::Acquire)
            })
            .count() as u32
    }

    pub(super) fn flow_list(&self) -> Response {
        Response::FlowList {
            items: self
                .pipelines
                .iter()
                .filter(|(_, p)| p.taps.iter().any(|t| t.published().is_some()))
                .map(|(id, p)| FlowInfo {
                    pipeline: *id,
                    sockets: p
                        .taps
                        .iter()
                        .filter_map(|t| t.published().cloned())
                        .collect(),
                })
                .collect(),
        }
    }

    pub(super) fn flow_throughput(&mut self) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let now = Instant::now();
        let mut items = Vec::new();
        for t in self.pipelines.values_mut().flat_map(|p| p.taps.iter_mut()) {
            let Some(socket) = t.published().cloned() else {
                continue;
            };
            let st = &t.tap.state;
            let bytes = st.bytes.load(Relaxed);
            let secs = now.duration_since(t.last.0).as_secs_f64();
            let rate = if secs > 0.0 {
                (bytes - t.last.1) as f64 / secs
            } else {
                0.0
            };
            t.last = (now, bytes);
            items.push(FlowThroughputInfo {
                socket,
                bytes_total: bytes,
                bytes_per_sec: rate,
                subscribers: st.subscribers.load(Relaxed) as u32,
                dropped_bytes: st.dropped.load(Relaxed),
            });
        }
        Response::FlowThroughput { items }
    }

    pub(super) fn flow_drop(&mut self, pipeline: Ulid) -> Response {
        let existed = self
            .pipelines
            .get(&pipeline)
            .is_some_and(|p| EdgeTap::unpublish_all(&p.taps));
        Response::FlowDropped { pipeline, existed }
    }

    pub(super) fn alive_pipelines(&self) -> u32 {
        self.pipelines
            .values()
            .filter(|p| {
                self.workspaces.get(&p.workspace).is_some_and(|ws| {
                    p.commands
                        .iter()
                        .any(|c| ws.commands.get(c).is_some_and(|r| r.alive))
                })
            })
            .count() as u32
    }

    pub(super) fn pipeline_run(
        &mut self,
        plan: pipeline::Plan,
        tap: bool,
        reply: oneshot::Sender<Response>,
    ) {
        let fail = |reply: oneshot::Sender<Response>, code, msg: String| {
            let _ = reply.send(Response::error(code, msg));
        };
        let workspace = plan.spec.workspace;
        let Some(ws) = self.workspaces.get(&workspace) else {
            let _ = reply.send(not_found(workspace));
            return;
        };
        if ws.stopping {
            let msg = format!("workspace {workspace} is stopping; it takes no new pipelines");
            return fail(reply, ErrorCode::Invalid, msg);
        }
        let namespaces = match ws.namespaces() {
            Ok(s) => s,
            Err(msg) => return fail(reply, ErrorCode::Unsupported, msg),
        };
        let pipeline = Ulid::new();
        let ids: Vec<Ulid> = plan.spec.commands.iter().map(|_| self.ids.next()).collect();
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            return fail(reply, ErrorCode::Internal, "workspace lost".into());
        };
        if let Some(last) = ids.last() {
            ws.last_command = *last;
        }
        // Each command's record waits in `starting` (not listed, never
        // signalled) until the start's report.
        let mut places = Vec::with_capacity(ids.len());
        for (i, (c, &id)) in plan.spec.commands.iter().zip(&ids).enumerate() {
            let mut envp = c.env.clone();
            envp.extend(plan.port_env(i));
            let mut rec = CommandRec::new(
                id,
                c.label.clone(),
                self.env.logs(workspace, id),
                ws.leaf(id),
            );
            rec.run = c.restart_on_failure.then(|| RunSpec {
                exec: c.exec.clone(),
                argv: c.argv.clone(),
                envp: envp.clone(),
                cwd: c.cwd.clone(),
            });
            rec.pipeline = Some((pipeline, plan.spec.label.clone()));
            places.push(Place {
                leaf: rec.leaf.clone(),
                logs: rec.logs.clone(),
                envp,
                keeper: ws.by_keeper(&rec),
            });
            ws.starting.insert(id, rec);
        }
        let tx = self.tx.clone();
        // A kept workspace's tapped edges are held by its keeper too.
        let link = ws.kept_link().cloned();
        let flows_dir = ws
            .spec
            .flow_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| self.env.flows_dir.join(workspace.to_string()));
        tokio::task::spawn_blocking(move || {
            let label = plan.spec.label.clone();
            let outcome =
                start_pipeline(&plan, places, namespaces, tap, &flows_dir, pipeline, link);
            let (result, started, taps, edges) = match outcome {
                Ok((procs, started, taps, edges)) => (Ok(procs), started, taps, edges),
                Err(e) => (Err(e), Vec::new(), Vec::new(), Vec::new()),
            };
            let report = StartReport {
                workspace,
                commands: ids.clone(),
                result,
                purpose: Purpose::Pipeline(Box::new(PipelineStart {
                    pipeline,
                    label,
                    taps,
                    edges,
                    reply,
                })),
            };
            report_started(&tx, report, ids.into_iter().zip(started).collect());
        });
    }

    /// The loop's side of a pipeline's start: its record, and its client's
    /// answer.
    pub(super) fn on_pipeline_started(
        &mut self,
        workspace: WorkspaceId,
        commands: Vec<Ulid>,
        procs: Vec<Process>,
        failure: Option<(ErrorCode, String)>,
        start: PipelineStart,
    ) {
        let PipelineStart {
            pipeline,
            label,
            taps,
            edges,
            reply,
        } = start;
        if let Some((code, msg)) = failure {
            EdgeTap::unpublish_all(&taps);
            let _ = reply.send(Response::error(code, msg));
            return;
        }
        let command_pids = match self.workspaces.get(&workspace) {
            Some(ws) => commands
                .iter()
                .zip(&procs)
                .map(|(id, p)| {
                    let label = ws.commands.get(id).map(|r| r.label.clone());
                    (label.unwrap_or_default(), p.pid)
                })
                .collect(),
            None => Vec::new(),
        };
        tracing::info!(workspace = %workspace, pipeline = %pipeline, label, "pipeline started");
        self.pipelines.insert(
            pipeline,
            PipelineRec {
                workspace,
                label,
                commands,
                taps,
            },
        );
        let _ = reply.send(Response::PipelineStarted {
            pipeline,
            command_pids,
            edges,
        });
    }

    /// Ends one pipeline's processes and their descendants (each command's
    /// leaf, or its process group without cgroups), not its workspace.
    pub(super) fn pipeline_list(&self) -> Response {
        let mut items: Vec<shipote_protocol::PipelineInfo> = self
            .pipelines
            .iter()
            .map(|(id, p)| {
                let alive = self.workspaces.get(&p.workspace).map_or(0, |ws| {
                    p.commands
                        .iter()
                        .filter(|c| ws.commands.get(c).is_some_and(|r| r.alive))
                        .count()
                });
                shipote_protocol::PipelineInfo {
                    id: *id,
                    label: p.label.clone(),
                    workspace: p.workspace,
                    commands: p.commands.len() as u32,
                    alive: alive as u32,
                    taps: p
                        .taps
                        .iter()
                        .map(|t| shipote_protocol::TapInfo {
                            from: t.edge.from.clone(),
                            to: t.edge.to.clone(),
                            socket: t.published().cloned(),
                        })
                        .collect(),
                }
            })
            .collect();
        // Ulids sort by time: oldest first.
        items.sort_by_key(|p| p.id);
        Response::PipelineList { items }
    }

    pub(super) fn pipeline_stop(
        &mut self,
        id: Ulid,
        grace: Duration,
        reply: oneshot::Sender<Response>,
    ) {
        let Some(p) = self.pipelines.remove(&id) else {
            let msg = format!("no pipeline {id}; list the running ones with shipote flow ls");
            let _ = reply.send(Response::error(ErrorCode::NotFound, msg));
            return;
        };
        let mut targets: Vec<(Option<Cgroup>, i32)> = Vec::new();
        if let Some(ws) = self.workspaces.get_mut(&p.workspace) {
            for c in &p.commands {
                let Some(r) = ws.commands.get_mut(c) else {
                    continue;
                };
                // A stopped pipeline restarts nothing.
                r.run = None;
                r.ends = None;
                if r.backoff {
                    r.backoff = false;
                    r.alive = false;
                }
                targets.push((r.leaf.clone(), r.pid));
            }
        }
        tracing::info!(pipeline = %id, label = p.label, "stopping pipeline");
        tokio::task::spawn_blocking(move || {
            use crate::process::end::{end, Target};
            let targets: Vec<Target> = targets
                .into_iter()
                .map(|(leaf, pid)| match leaf {
                    Some(leaf) => Target::Tree(leaf),
                    None => Target::Group(pid),
                })
                .collect();
            let reaped = end(&targets, grace, None);
            let _ = reply.send(Response::PipelineStopped {
                pipeline: id,
                reaped,
            });
        });
    }
}
