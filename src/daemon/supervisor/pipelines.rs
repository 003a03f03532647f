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
        let pipeline = Ulid::new();
        let mut recs: Vec<CommandRec> = plan
            .spec
            .commands
            .iter()
            .map(|c| {
                let id = self.ids.next();
                ws.last_command.set(id);
                CommandRec {
                    id,
                    label: c.label.clone(),
                    pid: 0,
                    alive: true,
                    exit_status: None,
                    exit_signal: None,
                    logs: LogPaths::new(
                        &self.env.log_dir.join(workspace.to_string()),
                        &id.to_string(),
                    ),
                    capture: Arc::default(),
                    leaf: ws
                        .created
                        .cgroup
                        .as_ref()
                        .map(|cg| cg.child(&ws::leaf_name(id))),
                    backoff: false,
                    ends: None,
                    run: None,
                    restart: RestartState::default(),
                    started_at: Instant::now(),
                    failure: None,
                    logs_pruned: false,
                }
            })
            .collect();
        let namespaces = match ws.namespaces() {
            Ok(s) => s,
            Err(msg) => return fail(reply, ErrorCode::Unsupported, msg),
        };
        let tx = self.tx.clone();
        let flows_dir = ws
            .spec
            .flow_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| self.env.flows_dir.join(workspace.to_string()));
        tokio::task::spawn_blocking(move || {
            let wiring = match crate::flow::wire(&plan, tap) {
                Ok(w) => w,
                Err(e) => {
                    return fail(
                        reply,
                        ErrorCode::Internal,
                        format!("cannot make the pipes: {e}"),
                    )
                }
            };
            let mut started = Vec::with_capacity(recs.len());
            let kill_all = |started: &[crate::workspace::command::Started]| {
                for s in started {
                    crate::process::signal(s.pid as u32, nix::sys::signal::Signal::SIGKILL);
                }
            };
            for (i, (ends, rec)) in wiring.ends.into_iter().zip(recs.iter_mut()).enumerate() {
                let c = &plan.spec.commands[i];
                let mut envp = c.env.clone();
                envp.extend(plan.port_env(i));
                if c.restart_on_failure {
                    match ends.try_clone() {
                        Ok(kept) => rec.ends = Some(Arc::new(kept)),
                        Err(e) => {
                            kill_all(&started);
                            return fail(
                                reply,
                                ErrorCode::Internal,
                                format!("cannot keep the pipes: {e}"),
                            );
                        }
                    }
                    rec.run = Some(RunSpec {
                        exec: c.exec.clone(),
                        argv: c.argv.clone(),
                        envp: envp.clone(),
                        cwd: c.cwd.clone(),
                    });
                }
                let req = crate::workspace::command::StartRequest {
                    exec: c.exec.clone(),
                    argv: c.argv.clone(),
                    envp,
                    cwd: c.cwd.clone(),
                    leaf: rec.leaf.clone(),
                    logs: rec.logs.clone(),
                    leaf_exists: false,
                    namespaces: namespaces.clone(),
                    append: false,
                    io: ends,
                };
                match crate::workspace::command::start(req) {
                    Ok(s) => started.push(s),
                    Err(e) => {
                        kill_all(&started);
                        return fail(
                            reply,
                            ErrorCode::Invalid,
                            format!("cannot start {:?}: {e}", c.label),
                        );
                    }
                }
            }
            for (src, dsts) in wiring.relays {
                if let Err(e) = crate::flow::relay(src, dsts) {
                    kill_all(&started);
                    return fail(
                        reply,
                        ErrorCode::Internal,
                        format!("cannot start a relay: {e}"),
                    );
                }
            }
            let mut taps = Vec::with_capacity(wiring.interposed.len());
            for i in wiring.interposed {
                let e = &plan.spec.edges[i.edge];
                let socket = tap.then(|| flows_dir.join(format!("{pipeline}.{}.sock", i.edge)));
                match crate::flow::tap::start(
                    i.src,
                    i.dst,
                    socket.as_deref(),
                    e.rate_limit_bytes_per_sec,
                ) {
                    Ok(t) => taps.push(EdgeTap {
                        edge: e.clone(),
                        tap: t,
                        last: (Instant::now(), 0),
                    }),
                    Err(err) => {
                        kill_all(&started);
                        EdgeTap::unpublish_all(&taps);
                        return fail(
                            reply,
                            ErrorCode::Internal,
                            format!("cannot start a tap: {err}"),
                        );
                    }
                }
            }
            // The first bytes' discernment, when they come soon.
            let deadline = Instant::now() + DISCERN_WAIT;
            while tap
                && Instant::now() < deadline
                && taps.iter().any(|t| {
                    t.tap.socket.is_some()
                        && !t.tap.state.ended.load(std::sync::atomic::Ordering::Acquire)
                        && t.tap
                            .state
                            .discerned
                            .lock()
                            .map(|d| d.is_none())
                            .unwrap_or(false)
                })
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            let edges: Vec<EdgeDiscernmentInfo> = taps
                .iter()
                .filter(|t| t.tap.socket.is_some())
                .map(|t| {
                    let d = t.tap.state.discerned.lock().ok().and_then(|d| *d);
                    EdgeDiscernmentInfo {
                        from_label: t.edge.from.label.clone(),
                        from_output: t.edge.from.port.clone(),
                        to_label: t.edge.to.label.clone(),
                        to_input: t.edge.to.port.clone(),
                        ty: d.map(|d| d.ty().to_owned()),
                        mime: d.map(|d| d.mime().to_owned()),
                        lens: d.map(|d| d.lens.as_str().to_owned()),
                        confidence: d.map_or(0.0, |d| d.confidence),
                        flow_socket: t.tap.socket.clone(),
                    }
                })
                .collect();
            let mut pids = Vec::with_capacity(recs.len());
            for (s, rec) in started.iter().zip(recs.iter_mut()) {
                rec.pid = s.pid;
                rec.capture = s.capture.clone();
                rec.started_at = Instant::now();
                pids.push((rec.label.clone(), s.pid));
            }
            let ids: Vec<Ulid> = recs.iter().map(|r| r.id).collect();
            let event = Event::PipelineStarted {
                workspace,
                pipeline,
                label: plan.spec.label.clone(),
                recs: recs
                    .into_iter()
                    .map(|rec| CommandRecPublic { rec })
                    .collect(),
                taps,
            };
            let _ = tx.blocking_send(event);
            let _ = reply.send(Response::PipelineStarted {
                pipeline,
                command_pids: pids,
                edges,
            });
            for (s, command) in started.into_iter().zip(ids) {
                follow(tx.clone(), workspace, command, s);
            }
        });
    }

    pub(super) fn on_pipeline_started(
        &mut self,
        workspace: WorkspaceId,
        pipeline: Ulid,
        label: String,
        recs: Vec<CommandRecPublic>,
        taps: Vec<EdgeTap>,
    ) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            for r in &recs {
                crate::process::signal(r.rec.pid as u32, nix::sys::signal::Signal::SIGKILL);
            }
            EdgeTap::unpublish_all(&taps);
            return;
        };
        let commands = recs.iter().map(|r| r.rec.id).collect();
        for r in recs {
            ws.commands.insert(r.rec.id, r.rec);
        }
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
    }

    /// Ends one pipeline's processes and their descendants (each command's
    /// leaf, or its process group without cgroups), not its workspace.
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
