//! Workspace handlers on the supervisor: create, stop, TTL, re-adoption,
//! shutdown. The work that waits (D-Bus, namespaces, process ends) runs in
//! spawned tasks that report back as events.

use super::*;

impl Supervisor {
    pub(super) fn workspace_list(&self) -> Response {
        Response::WorkspaceList {
            items: self.workspaces.values().map(Workspace::summary).collect(),
        }
    }

    pub(super) fn workspace_list_stopped(&self) -> Response {
        Response::WorkspaceListStopped {
            items: self
                .stopped
                .iter()
                .rev()
                .map(|w| WorkspaceSummary {
                    commands: 0,
                    ttl_left_ms: None,
                    ..w.summary()
                })
                .collect(),
        }
    }

    pub(super) fn workspace_describe(&self, id: WorkspaceId) -> Response {
        match self.find(id) {
            Some(ws) => Response::WorkspaceDescription {
                id,
                spec: ws.spec.clone(),
            },
            None => not_found(id),
        }
    }

    pub fn adopt(&mut self, saved: SavedWorkspace) {
        let Ok(ulid) = Ulid::from_string(&saved.id) else {
            tracing::warn!(id = %saved.id, "state file holds an invalid workspace id; skipping it");
            return;
        };
        let id = WorkspaceId(ulid);
        let spec = saved.spec();
        let created_at = UNIX_EPOCH + Duration::from_millis(saved.created_at_ms);
        let age = SystemTime::now()
            .duration_since(created_at)
            .unwrap_or_default();
        let created = Created {
            cgroup: saved.cgroup.clone().map(Cgroup::at),
            keeper_pid: saved.keeper_pid,
            link: None,
            warnings: Vec::new(),
        };
        let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let mut ws = Workspace::new(id, saved.unit.clone(), spec, created, created_at, started);
        self.arm_ttl(&ws);
        let mut table = self.relink(&mut ws);
        // Its permissions: the namespaces its keeper holds (those its running
        // commands are in), else new ones for the commands it runs from now on.
        let asks = ws.spec.permissions != shipote_protocol::Permissions::default();
        ws.namespaces = if asks && !table.namespaces.is_empty() {
            Ok(Some(Arc::new(Namespaces::new(std::mem::take(
                &mut table.namespaces,
            )))))
        } else {
            // Its init is born beside its keeper, as at its creation.
            let made = namespaces::make(
                &ws.spec.permissions,
                &self.env.shielded,
                &self.env.keeper.program,
                crate::workspace::backend::init_home(&ws.created).as_deref(),
            )
            .map(|n| n.map(Arc::new))
            .map_err(|e| e.to_string());
            if let (Ok(Some(ns)), Some(link)) = (&made, &ws.created.link) {
                link.keep_namespaces(ns);
            }
            made
        };
        if let Err(e) = &ws.namespaces {
            tracing::warn!(id = %id, error = %e, "a re-adopted workspace's permissions cannot be enforced; its commands are refused");
        }
        tracing::info!(id = %id, unit = %ws.unit, commands = table.held.len(), edges = table.edges.len(), "re-adopted workspace kept by the previous daemon");
        self.workspaces.insert(id, ws);
        for h in table.held {
            self.rejoin(id, h);
        }
        for e in table.edges {
            self.rejoin_edge(id, e);
        }
        self.changed();
    }

    /// A tapped edge the keeper held: its tap starts again on the same ends
    /// (and flow socket); its byte counts start again from zero.
    fn rejoin_edge(&mut self, workspace: WorkspaceId, e: crate::keeper::link::HeldEdge) {
        let Some(link) = self
            .workspaces
            .get(&workspace)
            .and_then(|ws| ws.created.link.clone())
        else {
            return;
        };
        let (pipeline, edge) = (e.pipeline, e.edge);
        let Ok(meta) = postcard::from_bytes::<EdgeMeta>(&e.meta) else {
            link.release(pipeline, Some(edge));
            return;
        };
        let release = link.clone();
        let on_end: crate::flow::tap::OnEnd =
            Box::new(move || release.release(pipeline, Some(edge)));
        let rate = meta.edge.rate_limit_bytes_per_sec;
        match crate::flow::tap::start(e.src, e.dst, meta.socket.as_deref(), rate, Some(on_end)) {
            Ok(tap) => {
                // Its count goes on from where the last daemon left it.
                tap.state
                    .bytes
                    .fetch_add(e.bytes, std::sync::atomic::Ordering::Relaxed);
                self.pipelines
                    .entry(pipeline)
                    .or_insert_with(|| PipelineRec {
                        workspace,
                        label: meta.label.clone(),
                        commands: Vec::new(),
                        taps: Vec::new(),
                    })
                    .taps
                    .push(EdgeTap {
                        edge: meta.edge,
                        index: edge,
                        tap,
                        last: (Instant::now(), 0),
                    });
            }
            Err(err) => {
                tracing::warn!(pipeline = %pipeline, edge, error = %err, "cannot start a kept edge's tap again; its commands see EOF and EPIPE");
                link.release(pipeline, Some(edge));
            }
        }
    }

    /// Connects to a re-adopted workspace's keeper: what it holds.
    fn relink(&mut self, ws: &mut Workspace) -> crate::keeper::link::Table {
        if ws.created.keeper_pid.is_none() {
            return Default::default();
        }
        let socket = self.env.keeper.socket(&ws.unit);
        match crate::keeper::link::KeeperLink::connect(&socket) {
            Ok((link, table)) => {
                ws.created.link = Some(link);
                self.note_to_keeper(ws);
                table
            }
            Err(e) => {
                // A keeper of a daemon before 0.3, or one that died: the
                // workspace's commands run on, unknown to this daemon.
                tracing::warn!(id = %ws.id, socket = %socket.display(), error = %e, "cannot reach the workspace's keeper; its running commands are not known");
                Default::default()
            }
        }
    }

    /// Gives the workspace's keeper its record (what rebuilds it if the
    /// state file is lost).
    pub(super) fn note_to_keeper(&self, ws: &Workspace) {
        let Some(link) = ws.created.link.clone() else {
            return;
        };
        let Ok(note) = serde_json::to_vec(&ws.saved(self.env.backend.backend.name())) else {
            return;
        };
        tokio::task::spawn_blocking(move || link.note(note));
    }

    /// A command the keeper held: its record back, its output going on into
    /// its log, its exit awaited (or handled now if it ended meanwhile).
    fn rejoin(&mut self, workspace: WorkspaceId, h: crate::keeper::link::Held) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            return;
        };
        let Some(link) = ws.created.link.clone() else {
            return;
        };
        let meta = CommandMeta::decode(&h.meta);
        let id = h.command;
        // Its pipeline comes back with it (without taps: they did not
        // survive the previous daemon).
        if let Some((pipeline, label)) = &meta.pipeline {
            self.pipelines
                .entry(*pipeline)
                .or_insert_with(|| PipelineRec {
                    workspace,
                    label: label.clone(),
                    commands: Vec::new(),
                    taps: Vec::new(),
                })
                .commands
                .push(id);
        }
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            return;
        };
        let logs = self.env.logs(workspace, id);
        let mut rec = CommandRec::new(id, meta.label, logs.clone(), ws.leaf(id));
        rec.pid = h.pid;
        rec.spec = meta.spec.or_else(|| meta.run.clone());
        rec.run = meta.run;
        rec.restart = RestartState {
            restarts: meta.restarts,
            failures_in_a_row: meta.failures_in_a_row,
        };
        rec.pipeline = meta.pipeline.clone();
        if id > ws.last_command {
            ws.last_command = id;
        }
        let exit = match (h.status, h.settled) {
            (Some(status), true) => {
                // Handled by the previous daemon: only its record comes back.
                use std::os::unix::process::ExitStatusExt;
                let st = std::process::ExitStatus::from_raw(status);
                rec.alive = false;
                rec.exit_status = st.code();
                rec.exit_signal = st.signal();
                rec.run = None;
                ws.commands.insert(id, rec);
                return;
            }
            (Some(status), false) => crate::workspace::command::Exit::Ended(status),
            (None, _) => crate::workspace::command::Exit::Keeper {
                exit: link.expect_exit(id),
                link: link.clone(),
                command: id,
            },
        };
        let started =
            crate::workspace::command::Started::held(h.pid, exit, h.stdout, h.stderr, logs);
        rec.capture = started.capture.clone();
        ws.commands.insert(id, rec);
        follow(self.tx.clone(), workspace, id, started);
    }

    pub(super) fn create(&mut self, spec: WorkspaceSpec, reply: oneshot::Sender<Response>) {
        if self.shutdown_reply.is_some() {
            let _ = reply.send(shutting_down());
            return;
        }
        if let Err(msg) = ws::validate_spec(&spec) {
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        let perms = spec.permissions.clone();
        let shielded = self.env.shielded.clone();
        let label_taken = self
            .workspaces
            .values()
            .find(|w| w.spec.label == spec.label)
            .map(|w| w.id);
        if let Some(other) = label_taken.or_else(|| {
            self.creating
                .iter()
                .find(|(_, l)| **l == spec.label)
                .map(|(id, _)| *id)
        }) {
            let msg = format!(
                "a workspace labelled {:?} already exists ({other}); stop it or choose another label",
                spec.label
            );
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        if self.workspaces.len() + self.creating.len() >= MAX_WORKSPACES {
            let msg =
                format!("shipoted runs its limit of {MAX_WORKSPACES} workspaces; stop some first");
            let _ = reply.send(Response::error(ErrorCode::Busy, msg));
            return;
        }
        let id = WorkspaceId(Ulid::new());
        self.creating.insert(id, spec.label.clone());
        let unit = unit_name(&spec.label, &id);
        let backend = self.env.backend.clone();
        let keeper = self.env.keeper.clone();
        let state_dir = self.env.state_dir();
        let tx = self.tx.clone();
        let init = keeper.program.clone();
        tokio::spawn(async move {
            // Its paths are checked first, off the supervisor (they are the
            // client's: one may sit on a hung mount): bad ones refuse the
            // workspace before anything is made.
            let refusal = |e: Refusal| match e {
                Refusal::Invalid(_) => (ErrorCode::Invalid, e.to_string()),
                Refusal::Unenforceable(_) => (ErrorCode::Unsupported, e.to_string()),
                Refusal::Exhausted(_) => (ErrorCode::Busy, e.to_string()),
            };
            let planned = tokio::task::spawn_blocking(move || namespaces::plan(&perms, &shielded))
                .await
                .unwrap_or_else(|e| Err(Refusal::Unenforceable(e.to_string())));
            let sandbox = match planned {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx
                        .send(Event::Created {
                            id,
                            unit,
                            spec: Box::new(spec),
                            result: Err(refusal(e)),
                            namespaces: None,
                            reply,
                        })
                        .await;
                    return;
                }
            };
            let mut result = backend
                .backend
                .create(&unit, &spec, &keeper)
                .await
                .map_err(|e| (ErrorCode::Internal, e.to_string()));
            // Then its namespaces, its init born beside its keeper (so it
            // lives and dies with the workspace) or watching this daemon:
            // permissions this host cannot enforce (user namespaces may be
            // off) undo the workspace.
            let mut namespaces = None;
            if let (Some(sandbox), Ok(created)) = (sandbox, &result) {
                let dir = crate::workspace::backend::init_home(created);
                let made = namespaces::make_planned_async(sandbox, init.clone(), dir).await;
                match made {
                    Ok(ns) => namespaces = Some(Arc::new(ns)),
                    Err(e) => {
                        let created = result.expect("matched Ok");
                        let _ = backend
                            .backend
                            .stop(
                                &unit,
                                created.cgroup.as_ref(),
                                created.keeper_pid,
                                Duration::ZERO,
                                &[],
                            )
                            .await;
                        result = Err(refusal(e));
                    }
                }
            }
            if let Ok(Created {
                cgroup: Some(cg), ..
            }) = &result
            {
                // So that no other daemon ever adopts it (daemon/instance.rs).
                crate::daemon::instance::mark_owner(cg.dir(), &state_dir);
            }
            let event = Event::Created {
                id,
                unit,
                spec: Box::new(spec),
                result,
                namespaces,
                reply,
            };
            let _ = tx.send(event).await;
        });
    }

    pub(super) fn on_created(
        &mut self,
        id: WorkspaceId,
        unit: String,
        spec: WorkspaceSpec,
        result: Result<Created, (ErrorCode, String)>,
        namespaces: Option<Arc<Namespaces>>,
        reply: oneshot::Sender<Response>,
    ) {
        self.creating.remove(&id);
        let created = match result {
            Ok(c) => c,
            Err((code, e)) => {
                let _ = reply.send(Response::error(
                    code,
                    format!("cannot create workspace {:?}: {e}", spec.label),
                ));
                return;
            }
        };
        let mut warnings = created.warnings.clone();
        warnings.extend(crate::workspace::beyond_this_machine(
            &spec,
            crate::workspace::mem_total(),
        ));
        let mut ws = Workspace::new(
            id,
            unit.clone(),
            spec,
            created,
            SystemTime::now(),
            Instant::now(),
        );
        if let (Some(ns), Some(link)) = (&namespaces, &ws.created.link) {
            // So that the next daemon's commands join these same ones.
            let (ns, link) = (ns.clone(), link.clone());
            tokio::task::spawn_blocking(move || link.keep_namespaces(&ns));
        }
        ws.namespaces = Ok(namespaces);
        self.arm_ttl(&ws);
        self.note_to_keeper(&ws);
        self.workspaces.insert(id, ws);
        self.changed();
        self.refill_spare(id);
        if self.shutdown_reply.is_some() {
            // Created while shutting down: it follows the others' fate.
            self.stop_for_shutdown(id);
        }
        let response = Response::WorkspaceCreated { id, unit, warnings };
        self.after_persist.push((self.generation, reply, response));
    }

    pub(super) fn arm_ttl(&mut self, ws: &Workspace) {
        let Some(deadline) = ws.ttl_deadline() else {
            return;
        };
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let key = self.timers.insert(Timer::Ttl(ws.id), left);
        self.ttl_timers.insert(ws.id, key);
    }

    /// A timer of the loop fired.
    pub(super) fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Ttl(id) => {
                self.ttl_timers.remove(&id);
                self.on_ttl(id);
            }
            Timer::Restart { workspace, command } => {
                self.restart_timers.remove(&(workspace, command));
                self.on_restart_due(workspace, command);
            }
        }
    }

    /// Cancels a workspace's timers (its TTL, its commands' backoffs).
    pub(super) fn cancel_timers(&mut self, id: WorkspaceId) {
        if let Some(key) = self.ttl_timers.remove(&id) {
            self.timers.try_remove(&key);
        }
        let keys: Vec<(WorkspaceId, Ulid)> = self
            .restart_timers
            .keys()
            .filter(|(w, _)| *w == id)
            .copied()
            .collect();
        for k in keys {
            if let Some(key) = self.restart_timers.remove(&k) {
                self.timers.try_remove(&key);
            }
        }
    }

    pub(super) fn stop(
        &mut self,
        id: WorkspaceId,
        grace: Duration,
        reply: Option<oneshot::Sender<Response>>,
    ) {
        let Some(ws) = self.workspaces.get_mut(&id) else {
            if let Some(r) = reply {
                let _ = r.send(not_found(id));
            }
            return;
        };
        if ws.stopping {
            if let Some(r) = reply {
                let msg = format!("workspace {id} is already stopping");
                let _ = r.send(Response::error(ErrorCode::Invalid, msg));
            }
            return;
        }
        ws.stopping = true;
        for rec in ws.commands.values_mut().filter(|c| c.alive) {
            rec.failure
                .get_or_insert_with(|| "ended by a workspace stop".to_owned());
        }
        self.stops_pending += 1;
        let backend = self.env.backend.clone();
        let unit = ws.unit.clone();
        let cgroup = ws.created.cgroup.clone();
        let keeper = ws.created.keeper_pid;
        let groups: Vec<u32> = ws
            .commands
            .values()
            .filter(|c| c.alive)
            .map(|c| c.pid as u32)
            .collect();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = backend
                .backend
                .stop(&unit, cgroup.as_ref(), keeper, grace, &groups)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(Event::Stopped { id, result, reply }).await;
        });
        // No TTL or restart fires for it any more.
        self.cancel_timers(id);
    }

    pub(super) fn on_stopped(
        &mut self,
        id: WorkspaceId,
        result: Result<u32, String>,
        reply: Option<oneshot::Sender<Response>>,
    ) {
        self.stops_pending = self.stops_pending.saturating_sub(1);
        let response = match result {
            Ok(reaped) => {
                if let Some(mut ws) = self.workspaces.remove(&id) {
                    // Nothing waits out a backoff any more; exits of the
                    // processes just ended are still on their way.
                    for rec in ws.commands.values_mut() {
                        rec.ends = None;
                        if rec.backoff {
                            rec.backoff = false;
                            rec.alive = false;
                        }
                    }
                    // Its namespaces (and a private /tmp's contents) go now,
                    // not when the record ages out; its init too, where no
                    // cgroup took it with the rest.
                    if let Ok(Some(ns)) = &ws.namespaces {
                        ns.end_init();
                    }
                    ws.namespaces = Ok(None);
                    // Its keeper went with it: so does its socket.
                    let socket = self.env.keeper.socket(&ws.unit);
                    tokio::task::spawn_blocking(move || std::fs::remove_file(socket));
                    self.keep_stopped(ws);
                }
                // Its pipelines go with it (their taps ended with their edges).
                let gone: Vec<Ulid> = self
                    .pipelines
                    .iter()
                    .filter(|(_, p)| p.workspace == id)
                    .map(|(k, _)| *k)
                    .collect();
                for k in gone {
                    if let Some(p) = self.pipelines.remove(&k) {
                        EdgeTap::unpublish_all(&p.taps);
                    }
                }
                self.changed();
                Response::WorkspaceStopped { id, reaped }
            }
            Err(e) => {
                if let Some(ws) = self.workspaces.get_mut(&id) {
                    ws.stopping = false;
                }
                Response::error(
                    ErrorCode::Internal,
                    format!("cannot stop workspace {id}: {e}"),
                )
            }
        };
        match reply {
            Some(r) => {
                let _ = r.send(response);
            }
            None => {
                if let Response::Error { message, .. } = &response {
                    tracing::error!(id = %id, "{message}");
                }
            }
        }
        self.maybe_finish_shutdown();
    }

    /// Keeps a stopped workspace's records readable, forgetting (and
    /// deleting the logs of) the oldest beyond [`KEPT_STOPPED`].
    pub(super) fn keep_stopped(&mut self, ws: Workspace) {
        self.stopped.push_back(ws);
        while self.stopped.len() > KEPT_STOPPED {
            if let Some(old) = self.stopped.pop_front() {
                let logs = self.env.log_dir.join(old.id.to_string());
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(logs));
            }
        }
    }

    pub(super) fn on_ttl(&mut self, id: WorkspaceId) {
        let Some(ws) = self.workspaces.get(&id) else {
            return;
        };
        if ws.stopping {
            return;
        }
        audit::record(
            self.env.own_uid,
            "workspace.expire",
            &audit::Detail::new()
                .kv("id", id)
                .kv("label", &ws.spec.label)
                .kv("ttl_ms", ws.spec.ttl_ms.unwrap_or(0)),
            "stopping",
        );
        self.stop(id, AUTO_STOP_GRACE, None);
    }

    pub(super) fn on_shutdown(&mut self, reply: oneshot::Sender<()>) {
        self.shutdown_reply = Some(reply);
        // Kept edges' counts, for the next daemon.
        self.save_edge_counts(true);
        let reap: Vec<WorkspaceId> = self
            .workspaces
            .values()
            .filter(|w| w.spec.on_exit == ExitPolicy::Reap)
            .map(|w| w.id)
            .collect();
        for id in reap {
            self.stop_for_shutdown(id);
        }
        self.maybe_finish_shutdown();
    }

    pub(super) fn stop_for_shutdown(&mut self, id: WorkspaceId) {
        if let Some(ws) = self.workspaces.get(&id) {
            if ws.spec.on_exit == ExitPolicy::Reap {
                audit::record(
                    self.env.own_uid,
                    "workspace.reap",
                    &audit::Detail::new()
                        .kv("id", id)
                        .kv("label", &ws.spec.label),
                    "the daemon is stopping",
                );
                self.stop(id, AUTO_STOP_GRACE, None);
            }
        }
    }

    pub(super) fn maybe_finish_shutdown(&mut self) {
        if self.stops_pending > 0 || !self.creating.is_empty() {
            return;
        }
        let Some(reply) = self.shutdown_reply.take() else {
            return;
        };
        self.env.backend.backend.discard_spare();
        // Write the final state in place: nothing else is left to do.
        let backend = self.env.backend.backend.name();
        let saved: Vec<SavedWorkspace> =
            self.workspaces.values().map(|w| w.saved(backend)).collect();
        let written = state::write_atomic(&self.env.state_file, &state::encode(saved));
        if let Err(e) = &written {
            tracing::error!(error = %e, "cannot save state at shutdown; kept workspaces will not be re-adopted");
        }
        // Answers still waiting for the persister are due now.
        self.on_persisted(self.generation, written.err().map(|e| e.to_string()));
        let _ = reply.send(());
    }
}
