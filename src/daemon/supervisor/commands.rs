//! Command handlers on the supervisor: Run, spare leaves, exits, restarts,
//! and what ended commands leave behind (the kept records, the log budget).

use super::*;

impl Supervisor {
    pub(super) fn command_list(&self, workspace: WorkspaceId, reply: oneshot::Sender<Response>) {
        let Some(ws) = self.find(workspace) else {
            let _ = reply.send(not_found(workspace));
            return;
        };
        // Sizing the logs reads the disk: off the loop.
        let recs: Vec<CommandRec> = ws.commands.values().cloned().collect();
        tokio::task::spawn_blocking(move || {
            let items = recs.iter().map(CommandRec::info).collect();
            let _ = reply.send(Response::CommandList { items });
        });
    }

    /// A command whose logs can be read, or the answer saying why not (no
    /// such command, or its output removed by the log budget).
    fn readable(
        &self,
        workspace: WorkspaceId,
        command: Ulid,
    ) -> Result<&CommandRec, Box<Response>> {
        let c = self.command(workspace, command)?;
        match c.pruned_answer() {
            Some(gone) => Err(Box::new(gone)),
            None => Ok(c),
        }
    }

    pub(super) fn command_logs(
        &self,
        workspace: WorkspaceId,
        command: Ulid,
        tail_bytes: u64,
        stream: LogStream,
        reply: oneshot::Sender<Response>,
    ) {
        let c = match self.readable(workspace, command) {
            Ok(c) => c,
            Err(response) => {
                let _ = reply.send(*response);
                return;
            }
        };
        let logs = c.logs.clone();
        // Leave room for the frame around the bytes.
        let n = tail_bytes.min(MAX_LOG_TAIL_BYTES);
        tokio::task::spawn_blocking(move || {
            let response = match logs.tail(log_stream(stream), n) {
                Ok((bytes, _)) => Response::CommandLogs { bytes },
                Err(e) => logs_unreadable(e),
            };
            let _ = reply.send(response);
        });
    }

    pub(super) fn command_logs_from(
        &self,
        workspace: WorkspaceId,
        command: Ulid,
        read: LogsFrom,
        reply: oneshot::Sender<Response>,
    ) {
        let c = match self.readable(workspace, command) {
            Ok(c) => c,
            Err(response) => {
                let _ = reply.send(*response);
                return;
            }
        };
        let logs = c.logs.clone();
        let capture = c.capture.clone();
        let alive = c.alive;
        let max = read.max_bytes.min(MAX_LOG_READ_BYTES);
        tokio::task::spawn_blocking(move || {
            // Read after sampling `running`: bytes that arrive in between
            // are read now or by the next ask, never lost.
            let running = alive || !capture.drained.load(std::sync::atomic::Ordering::Acquire);
            let stream = log_stream(read.stream);
            let got = match read.from {
                None => logs
                    .tail(stream, read.tail_bytes.min(max))
                    .map(|(bytes, next)| (bytes, next, 0)),
                Some(p) => logs
                    .read_from(stream, p, max)
                    .map(|c| (c.bytes, c.next, c.skipped)),
            };
            let response = match got {
                Ok((bytes, next, skipped)) => Response::CommandLogsFrom {
                    bytes,
                    next,
                    skipped,
                    running,
                },
                Err(e) => logs_unreadable(e),
            };
            let _ = reply.send(response);
        });
    }

    pub(super) fn run_command(
        &mut self,
        workspace: WorkspaceId,
        run: RunSpec,
        restart_on_failure: bool,
        reply: oneshot::Sender<Response>,
    ) {
        let Some(ws) = self.workspaces.get(&workspace) else {
            let _ = reply.send(not_found(workspace));
            return;
        };
        if ws.stopping {
            let msg = format!("workspace {workspace} is stopping; it takes no new commands");
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        let namespaces = match ws.namespaces() {
            Ok(s) => s,
            Err(msg) => {
                let _ = reply.send(Response::error(ErrorCode::Unsupported, msg));
                return;
            }
        };
        let (id, spare) = self.command_id(workspace);
        let Some(ws) = self.workspaces.get(&workspace) else {
            // Looked up above; never gone in between (one owner, no await).
            let _ = reply.send(not_found(workspace));
            return;
        };
        let label = run.exec.rsplit('/').next().unwrap_or(&run.exec).to_owned();
        let mut rec = CommandRec::new(id, label, self.env.logs(workspace, id), ws.leaf(id));
        rec.run = restart_on_failure.then(|| run.clone());
        rec.spec = Some(run.clone());
        let launch = Launch {
            tx: self.tx.clone(),
            workspace,
            command: id,
            run,
            leaf: rec.leaf.clone(),
            leaf_exists: spare,
            namespaces,
            logs: rec.logs.clone(),
            append: false,
            ends: None,
            purpose: Purpose::Run(reply),
            keeper: ws.by_keeper(&rec),
        };
        if let Some(ws) = self.workspaces.get_mut(&workspace) {
            ws.starting.insert(id, rec);
        }
        start_in_background(launch);
    }

    /// The id of a new command of `workspace`: its spare leaf's when it has
    /// one that is newer than every id handed out there, else a fresh one.
    /// True with it: its leaf exists.
    pub(super) fn command_id(&mut self, workspace: WorkspaceId) -> (Ulid, bool) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            return (self.ids.next(), false);
        };
        let (id, spare) = match ws.spare.take() {
            Some(spare) if spare > ws.last_command => (spare, true),
            stale => {
                if let (Some(old), Some(cg)) = (stale, &ws.created.cgroup) {
                    let leaf = cg.child(&ws::leaf_name(old));
                    tokio::task::spawn_blocking(move || leaf.remove());
                }
                (self.ids.next(), false)
            }
        };
        ws.last_command = id;
        (id, spare)
    }

    /// Makes the next command's leaf ahead of time, off any request's path.
    pub(super) fn refill_spare(&mut self, workspace: WorkspaceId) {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            return;
        };
        let Some(cg) = &ws.created.cgroup else {
            return;
        };
        if ws.stopping || ws.spare.is_some() || ws.spare_pending {
            return;
        }
        ws.spare_pending = true;
        let id = self.ids.next();
        let leaf = cg.child(&ws::leaf_name(id));
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let made = leaf.create().is_ok();
            let _ = tx.blocking_send(Event::SpareLeaf {
                workspace,
                id,
                made,
            });
        });
    }

    pub(super) fn on_spare_leaf(&mut self, workspace: WorkspaceId, id: Ulid, made: bool) {
        let ws = self.workspaces.get_mut(&workspace);
        if let Some(ws) = ws {
            ws.spare_pending = false;
            if made && !ws.stopping && id > ws.last_command {
                ws.spare = Some(id);
                return;
            }
            // Stale or unwanted: a stopping workspace's leaves go with it.
            if let (true, false, Some(cg)) = (made, ws.stopping, &ws.created.cgroup) {
                let leaf = cg.child(&ws::leaf_name(id));
                tokio::task::spawn_blocking(move || leaf.remove());
            }
        }
    }

    pub(super) fn on_restart_due(&mut self, workspace: WorkspaceId, command: Ulid) {
        let due = self
            .workspaces
            .get(&workspace)
            .and_then(|ws| ws.commands.get(&command))
            .is_some_and(|rec| rec.backoff);
        if due {
            self.relaunch(workspace, command, None);
        }
    }

    /// Starts a command again in its record (a restart after a backoff, or
    /// one asked for: then `reply` waits for RunStarted).
    fn relaunch(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
        reply: Option<oneshot::Sender<Response>>,
    ) {
        let refuse = |reply: Option<oneshot::Sender<Response>>, msg: String| {
            if let Some(r) = reply {
                let _ = r.send(Response::error(ErrorCode::Invalid, msg));
            }
        };
        let Some(ws) = self.workspaces.get(&workspace) else {
            return refuse(reply, format!("workspace {workspace} is gone"));
        };
        // A stopping workspace never restarts anything.
        if ws.stopping {
            return refuse(reply, format!("workspace {workspace} is stopping"));
        }
        let Some(rec) = ws.commands.get(&command) else {
            return refuse(reply, format!("command {command} is gone"));
        };
        let Some(run) = rec.run.clone().or_else(|| rec.spec.clone()) else {
            return refuse(reply, format!("command {command} cannot be started again"));
        };
        // Never restarted less confined than asked.
        let namespaces = match ws.namespaces() {
            Ok(s) => s,
            Err(e) => {
                let why = format!("not restarted: {e}");
                if let Some(rec) = self
                    .workspaces
                    .get_mut(&workspace)
                    .and_then(|w| w.commands.get_mut(&command))
                {
                    rec.backoff = false;
                    rec.alive = false;
                    rec.failure = Some(why.clone());
                }
                return refuse(reply, why);
            }
        };
        let (leaf, logs) = (rec.leaf.clone(), rec.logs.clone());
        let launch = Launch {
            tx: self.tx.clone(),
            workspace,
            command,
            run,
            leaf,
            leaf_exists: false,
            namespaces,
            logs,
            append: true,
            ends: rec.ends.clone(),
            purpose: Purpose::Restart(reply),
            keeper: ws.by_keeper(rec),
        };
        start_in_background(launch);
    }

    /// Restarts one command: its processes ended (SIGTERM, `grace`,
    /// SIGKILL), then it starts again in its record, same id and log; its
    /// policy stays. Answered with RunStarted once the new process runs.
    pub(super) fn command_restart(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
        grace: Duration,
        reply: oneshot::Sender<Response>,
    ) {
        if self.restart_asked.contains_key(&(workspace, command)) {
            let msg = format!("command {command} is restarting already");
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        let rec = match self.live_command(workspace, command) {
            Ok(rec) => rec,
            Err(not_found) => return drop(reply.send(*not_found)),
        };
        if rec.pipeline.is_some() {
            let msg = format!(
                "command {command} is a stage of a pipeline, which restarts whole: stop the pipeline and run it again"
            );
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        if rec.run.is_none() && rec.spec.is_none() {
            let msg = format!(
                "command {command} was started by an earlier daemon without a restart policy: its program is not known; run it again"
            );
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        if !rec.alive || rec.backoff {
            // Nothing to end: it starts at once.
            rec.backoff = false;
            if let Some(key) = self.restart_timers.remove(&(workspace, command)) {
                self.timers.try_remove(&key);
            }
            self.relaunch(workspace, command, Some(reply));
            return;
        }
        // Its policy waits aside while it is ended, so its exit starts it
        // again at once, not after a backoff.
        let policy = rec.run.take();
        let target = match &rec.leaf {
            Some(leaf) => crate::process::end::Target::Tree(leaf.clone()),
            None => crate::process::end::Target::Group(rec.pid),
        };
        self.restart_asked.insert(
            (workspace, command),
            RestartAsked {
                reply,
                policy,
                exited: false,
                ended: false,
            },
        );
        tracing::info!(workspace = %workspace, command = %command, "restarting command");
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            crate::process::end::end(std::slice::from_ref(&target), grace, None);
            // Its leaf goes, and the new process gets a fresh one: a child
            // cloned into a cgroup once cgroup.kill'ed can be killed at birth
            // (seen on Linux 6.18: its kill sequence compared with the
            // parent's).
            if let crate::process::end::Target::Tree(leaf) = &target {
                let _ = leaf.remove();
            }
            let _ = tx.blocking_send(Event::RestartEnded { workspace, command });
        });
    }

    /// One of the two things a restart asked for waits for: the command's
    /// exit (recorded), and its leaf emptied (`end` returned, so it kills
    /// nothing born after). With both, it starts again, its policy back.
    pub(super) fn on_restart_step(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
        step: RestartStep,
    ) {
        let Some(asked) = self.restart_asked.get_mut(&(workspace, command)) else {
            return;
        };
        match step {
            RestartStep::Exited => asked.exited = true,
            RestartStep::Ended => asked.ended = true,
        }
        if !(asked.exited && asked.ended) {
            return;
        }
        let Some(asked) = self.restart_asked.remove(&(workspace, command)) else {
            return;
        };
        let stopping = self
            .workspaces
            .get(&workspace)
            .map_or(true, |ws| ws.stopping);
        let Some(rec) = self
            .workspaces
            .get_mut(&workspace)
            .and_then(|ws| ws.commands.get_mut(&command))
        else {
            let msg = format!("command {command} is gone; it is not restarted");
            let _ = asked.reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        };
        rec.run = asked.policy;
        if stopping {
            rec.alive = false;
            let msg =
                format!("workspace {workspace} was stopped; command {command} is not restarted");
            let _ = asked.reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        rec.alive = true;
        self.relaunch(workspace, command, Some(asked.reply));
    }

    /// Where every start ends up (Run, restart, pipeline): its processes
    /// join their records, or the failure is recorded; then its client, if
    /// any, is answered. A workspace stopped or gone meanwhile gets none of
    /// them: they are ended.
    pub(super) fn on_started(&mut self, report: StartReport) {
        let StartReport {
            workspace,
            commands,
            result,
            purpose,
        } = report;
        let live = self
            .workspaces
            .get(&workspace)
            .is_some_and(|ws| !ws.stopping);
        let result = match result {
            Ok(procs) if !live => {
                for p in &procs {
                    crate::process::signal(p.pid as u32, nix::sys::signal::Signal::SIGKILL);
                }
                let msg = format!(
                    "workspace {workspace} was stopped while its command started; it was ended"
                );
                Err((ErrorCode::Invalid, msg))
            }
            other => other,
        };
        let ws = self.workspaces.get_mut(&workspace);
        let (procs, failure) = match result {
            Ok(procs) => (procs, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        if let Some(ws) = ws {
            for (i, id) in commands.iter().enumerate() {
                let waiting = ws.starting.remove(id);
                let Some(p) = procs.get(i) else {
                    // Not started: a restart's record says why; a new
                    // command's record is dropped with its answer.
                    if let Some(rec) = ws.commands.get_mut(id) {
                        rec.backoff = false;
                        rec.alive = false;
                        if let Some((_, e)) = &failure {
                            rec.failure = Some(format!("restart failed: {e}"));
                        }
                    }
                    continue;
                };
                if let Some(rec) = waiting {
                    ws.commands.insert(*id, rec);
                }
                let Some(rec) = ws.commands.get_mut(id) else {
                    continue;
                };
                rec.pid = p.pid;
                rec.capture = p.capture.clone();
                rec.alive = true;
                rec.backoff = false;
                rec.started_at = Instant::now();
                if p.kept_ends.is_some() {
                    rec.ends = p.kept_ends.clone();
                }
                if matches!(purpose, Purpose::Restart(Some(_))) {
                    // Restarted as asked: what ended the last run is past.
                    rec.failure = None;
                }
                if matches!(purpose, Purpose::Restart(_)) {
                    tracing::info!(workspace = %workspace, command = %id, pid = p.pid, restarts = rec.restart.restarts, "command restarted");
                }
            }
        }
        match purpose {
            Purpose::Run(reply) => {
                let response = match (failure, procs.first()) {
                    (None, Some(p)) => Response::RunStarted {
                        workspace,
                        command_id: commands[0],
                        pid: p.pid,
                    },
                    (Some((code, msg)), _) => Response::error(code, format!("cannot run: {msg}")),
                    (None, None) => Response::error(ErrorCode::Internal, "Run started nothing"),
                };
                let _ = reply.send(response);
                self.refill_spare(workspace);
            }
            Purpose::Restart(None) => {}
            Purpose::Restart(Some(reply)) => {
                let response = match (failure, procs.first()) {
                    (None, Some(p)) => Response::RunStarted {
                        workspace,
                        command_id: commands[0],
                        pid: p.pid,
                    },
                    (Some((code, msg)), _) => {
                        Response::error(code, format!("cannot restart: {msg}"))
                    }
                    (None, None) => Response::error(ErrorCode::Internal, "restart started nothing"),
                };
                let _ = reply.send(response);
            }
            Purpose::Pipeline(p) => {
                self.on_pipeline_started(workspace, commands, procs, failure, *p)
            }
        }
    }

    pub(super) fn on_command_exited(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
        status: Option<std::process::ExitStatus>,
    ) {
        use std::os::unix::process::ExitStatusExt;
        let policy = self.env.restart_policy;
        let asked = self.restart_asked.contains_key(&(workspace, command));
        if asked
            && self
                .workspaces
                .get(&workspace)
                .map_or(true, |ws| ws.stopping)
        {
            // Stopped meanwhile: its client hears so, and its exit is
            // recorded as any other.
            self.on_restart_step(workspace, command, RestartStep::Exited);
        }
        // A stopped workspace's commands still get their exit recorded.
        let Some(ws) = self.find_mut(workspace) else {
            return;
        };
        let stopping = ws.stopping;
        let Some(rec) = ws.commands.get_mut(&command) else {
            return;
        };
        rec.alive = false;
        rec.exit_status = status.and_then(|s| s.code());
        rec.exit_signal = status.and_then(|s| s.signal());
        tracing::info!(workspace = %workspace, command = %command, status = ?rec.exit_status, signal = ?rec.exit_signal, "command exited");
        // Ended for a restart asked for: it starts again once its leaf is
        // empty too (`on_restart_step`), its policy back; starting again
        // counts as alive (as a backoff does).
        if asked && !stopping {
            rec.alive = true;
            self.on_restart_step(workspace, command, RestartStep::Exited);
            return;
        }
        if rec.run.is_some() && !stopping {
            let success = rec.exit_status == Some(0);
            match policy.decide(
                &mut rec.restart,
                success,
                rec.started_at.elapsed(),
                jitter_unit(),
            ) {
                Decision::Done => {}
                Decision::RestartAfter(delay) => {
                    // Waiting to restart counts as alive.
                    rec.alive = true;
                    rec.backoff = true;
                    let key = self
                        .timers
                        .insert(Timer::Restart { workspace, command }, delay);
                    self.restart_timers.insert((workspace, command), key);
                    return;
                }
                Decision::GiveUp(why) => {
                    tracing::warn!(workspace = %workspace, command = %command, "{why}");
                    rec.failure = Some(why);
                }
            }
        }
        // Done for good: its peers may now see EOF or EPIPE.
        rec.ends = None;
        self.budget_due = true;
        self.forget_old_commands(workspace);
        let Some(rec) = self
            .find_mut(workspace)
            .and_then(|ws| ws.commands.get_mut(&command))
        else {
            return;
        };
        if let Some(leaf) = rec.leaf.clone() {
            // Its leaf goes once its last process is gone (children may linger).
            tokio::task::spawn_blocking(move || {
                if leaf.procs_recursive().is_empty() {
                    let _ = leaf.remove();
                }
            });
        }
    }

    /// Forgets the oldest ended commands of a workspace (and removes their
    /// logs) beyond [`KEPT_ENDED_COMMANDS`], so a workspace that runs commands
    /// for months does not grow without bound. Commands of live pipelines stay.
    pub(super) fn forget_old_commands(&mut self, workspace: WorkspaceId) {
        // Cheap test first: this runs at every command's end.
        if self
            .find(workspace)
            .map_or(true, |ws| ws.commands.len() <= KEPT_ENDED_COMMANDS)
        {
            return;
        }
        let in_pipelines: std::collections::HashSet<Ulid> = self
            .pipelines
            .values()
            .filter(|p| p.workspace == workspace)
            .flat_map(|p| p.commands.iter().copied())
            .collect();
        let Some(ws) = self.find_mut(workspace) else {
            return;
        };
        let ended: Vec<Ulid> = ws
            .commands
            .values()
            .filter(|c| !c.alive && !in_pipelines.contains(&c.id))
            .map(|c| c.id)
            .collect();
        let Some(excess) = ended.len().checked_sub(KEPT_ENDED_COMMANDS) else {
            return;
        };
        let mut gone = Vec::with_capacity(excess);
        for id in ended.into_iter().take(excess) {
            if let Some(rec) = ws.commands.remove(&id) {
                gone.push((id, rec.logs));
            }
        }
        let link = ws.created.link.clone();
        if !gone.is_empty() {
            tokio::task::spawn_blocking(move || {
                for (id, logs) in gone {
                    // Its keeper forgets it too.
                    if let Some(link) = &link {
                        link.forget(id);
                    }
                    logs.remove();
                }
            });
        }
    }

    /// Removes the logs of ended commands, oldest first, while a workspace's
    /// (or all) logs pass their budget (workspace/budget.rs). Off the
    /// supervisor: sizes are read and files removed on a blocking thread.
    pub(super) fn enforce_log_budget(&mut self) {
        if !self.budget_due || self.budget_running {
            return;
        }
        self.budget_due = false;
        self.budget_running = true;
        let entries: Vec<(WorkspaceId, Ulid, LogPaths, bool)> = self
            .workspaces
            .values()
            .chain(self.stopped.iter())
            .flat_map(|ws| {
                ws.commands
                    .values()
                    .filter(|c| !c.logs_pruned)
                    .map(move |c| (ws.id, c.id, c.logs.clone(), c.alive))
            })
            .collect();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let sized: Vec<budget::Entry<WorkspaceId, Ulid>> = entries
                .iter()
                .map(|(w, c, logs, alive)| budget::Entry {
                    workspace: *w,
                    command: *c,
                    bytes: logs.kept_bytes(),
                    alive: *alive,
                })
                .collect();
            let pruned = budget::prune(&sized, budget::WORKSPACE_BUDGET, budget::TOTAL_BUDGET);
            let mut freed = 0;
            for (w, c) in &pruned {
                if let Some((_, _, logs, _)) = entries.iter().find(|e| e.0 == *w && e.1 == *c) {
                    freed += logs.remove();
                }
            }
            let _ = tx.blocking_send(Event::LogsPruned { pruned, freed });
        });
    }

    pub(super) fn on_logs_pruned(&mut self, pruned: Vec<(WorkspaceId, Ulid)>, freed: u64) {
        self.budget_running = false;
        if pruned.is_empty() {
            return;
        }
        for (w, c) in &pruned {
            if let Some(rec) = self.find_mut(*w).and_then(|ws| ws.commands.get_mut(c)) {
                rec.logs_pruned = true;
            }
        }
        tracing::info!(
            commands = pruned.len(),
            freed_bytes = freed,
            "removed the logs of ended commands to keep within the log budget"
        );
    }
}

/// What a CommandLogsFrom asks for.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogsFrom {
    pub(super) stream: LogStream,
    pub(super) from: Option<u64>,
    pub(super) tail_bytes: u64,
    pub(super) max_bytes: u64,
}

/// A restart asked for, waiting for its command to end.
#[derive(Debug)]
pub(super) struct RestartAsked {
    /// Its client, answered once the new process runs.
    pub(super) reply: oneshot::Sender<Response>,
    /// The command's restart policy, set aside while it is ended.
    pub(super) policy: Option<RunSpec>,
    /// Its exit was recorded.
    pub(super) exited: bool,
    /// Its processes' end returned (its leaf is empty).
    pub(super) ended: bool,
}

/// What a restart asked for has seen.
#[derive(Debug, Clone, Copy)]
pub(super) enum RestartStep {
    /// The command's exit.
    Exited,
    /// The end of its processes.
    Ended,
}

impl Supervisor {
    /// A live workspace's command, or the NotFound answer that says which is
    /// missing.
    fn live_command(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
    ) -> Result<&mut CommandRec, Box<Response>> {
        let Some(ws) = self.workspaces.get_mut(&workspace) else {
            return Err(Box::new(Response::error(
                ErrorCode::NotFound,
                format!("no live workspace {workspace}; list them with shipote ws ls"),
            )));
        };
        ws.commands.get_mut(&command).ok_or_else(|| {
            Box::new(Response::error(
                ErrorCode::NotFound,
                format!(
                    "workspace {workspace} has no command {command}; list them with shipote ps"
                ),
            ))
        })
    }

    /// Stops one command (SIGTERM, `grace`, SIGKILL, over its leaf or its
    /// process group); its restart policy ends with it.
    pub(super) fn command_stop(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
        grace: Duration,
        reply: oneshot::Sender<Response>,
    ) {
        if let Some(key) = self.restart_timers.remove(&(workspace, command)) {
            self.timers.try_remove(&key);
        }
        let rec = match self.live_command(workspace, command) {
            Ok(rec) => rec,
            Err(not_found) => return drop(reply.send(*not_found)),
        };
        // Never restarted by its policy from now on.
        rec.run = None;
        let ended_already = !rec.alive || rec.backoff;
        if rec.backoff {
            // It was waiting out a backoff: there is no process to end.
            rec.backoff = false;
            rec.alive = false;
            rec.ends = None;
        }
        if rec.alive {
            rec.failure
                .get_or_insert_with(|| "stopped by shipote stop".to_owned());
        }
        let target = match &rec.leaf {
            Some(leaf) => crate::process::end::Target::Tree(leaf.clone()),
            None => crate::process::end::Target::Group(rec.pid),
        };
        self.changed();
        if ended_already {
            let _ = reply.send(Response::CommandStopped {
                workspace,
                command,
                ended: 0,
            });
            return;
        }
        tracing::info!(workspace = %workspace, command = %command, "stopping command");
        tokio::task::spawn_blocking(move || {
            let ended = crate::process::end::end(std::slice::from_ref(&target), grace, None);
            // Its leaf goes now: a restart must not clone into a cgroup once
            // cgroup.kill'ed (see command_restart).
            if let crate::process::end::Target::Tree(leaf) = &target {
                let _ = leaf.remove();
            }
            let _ = reply.send(Response::CommandStopped {
                workspace,
                command,
                ended,
            });
        });
    }

    /// Sends `signal` to every process of one command.
    pub(super) fn command_signal(
        &mut self,
        workspace: WorkspaceId,
        command: Ulid,
        signal: i32,
        reply: oneshot::Sender<Response>,
    ) {
        let Ok(sig) = nix::sys::signal::Signal::try_from(signal) else {
            let msg = format!(
                "{signal} is not a signal this host knows; give a name (TERM, HUP, USR1...) or a number from `kill -l`"
            );
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        };
        let rec = match self.live_command(workspace, command) {
            Ok(rec) => rec,
            Err(not_found) => return drop(reply.send(*not_found)),
        };
        if !rec.alive || rec.backoff {
            let msg = format!(
                "command {command} has no process to signal (it has ended{}); see shipote ps",
                if rec.backoff {
                    ", waiting to restart"
                } else {
                    ""
                }
            );
            let _ = reply.send(Response::error(ErrorCode::Invalid, msg));
            return;
        }
        let (leaf, pid) = (rec.leaf.clone(), rec.pid);
        tokio::task::spawn_blocking(move || {
            use nix::unistd::Pid;
            let processes = match leaf {
                Some(leaf) => {
                    let procs = leaf.procs_recursive();
                    procs
                        .iter()
                        .filter(|p| nix::sys::signal::kill(Pid::from_raw(**p as i32), sig).is_ok())
                        .count() as u32
                }
                None => u32::from(nix::sys::signal::killpg(Pid::from_raw(pid), sig).is_ok()),
            };
            let _ = reply.send(Response::CommandSignalled {
                workspace,
                command,
                processes,
            });
        });
    }
}
