//! Stats, quota and sampling on the supervisor (the reads run off the loop).

use super::*;

impl Supervisor {
    pub(super) fn history(&self, workspace: WorkspaceId, tail: u32) -> Response {
        let Some(ws) = self.workspaces.get(&workspace) else {
            return not_found(workspace);
        };
        let skip = if tail == 0 {
            0
        } else {
            ws.history.len().saturating_sub(tail as usize)
        };
        Response::WorkspaceStatsHistory {
            samples: ws.history.iter().skip(skip).cloned().collect(),
        }
    }

    /// What `shipote top` shows in one answer. The workspaces' figures are
    /// the sampler's (nothing is read for them); only the selected
    /// workspace's commands are read, each from its own leaf, off the loop.
    pub(super) fn top(
        &self,
        selected: Option<WorkspaceId>,
        history: u32,
        reply: oneshot::Sender<Response>,
    ) {
        let keep = history.min(shipote_protocol::TOP_HISTORY_MAX) as usize;
        let workspaces = self
            .workspaces
            .values()
            .filter(|w| !w.stopping)
            .map(|w| {
                let recent = w.history.iter().skip(w.history.len().saturating_sub(keep));
                let soma = &w.spec.soma;
                shipote_protocol::TopWorkspace {
                    summary: w.summary(),
                    latest: w.history.back().cloned(),
                    cpu_history: recent
                        .clone()
                        .map(|s| s.cpu_percent.unwrap_or(0.0))
                        .collect(),
                    rss_history: recent.map(|s| s.rss_bytes.unwrap_or(0)).collect(),
                    mem_limit: soma.mem_max_bytes,
                    tasks_limit: soma.tasks_max,
                    cpu_quota_percent: soma.cpu_quota_percent,
                    report_only: w.spec.quota_enforce == QuotaEnforce::ReportOnly,
                }
            })
            .collect::<Vec<_>>();
        type Target = (CommandRec, Option<Cgroup>, Vec<i32>);
        let targets: Vec<Target> = selected
            .and_then(|id| self.workspaces.get(&id))
            .map(|w| {
                w.commands
                    .values()
                    .map(|c| {
                        let running = c.alive && !c.backoff;
                        let leaf = c.leaf.clone().or_else(|| w.leaf(c.id)).filter(|_| running);
                        let groups = if running { vec![c.pid] } else { Vec::new() };
                        (c.clone(), leaf, groups)
                    })
                    .collect()
            })
            .unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            let commands = targets
                .into_iter()
                .map(|(c, leaf, groups)| {
                    let r = (!groups.is_empty()).then(|| match &leaf {
                        Some(l) if l.exists() => stats::read(Some(l), None, &[]),
                        _ => stats::read(None, None, &groups),
                    });
                    shipote_protocol::CommandUsage {
                        info: c.info(),
                        rss_bytes: r.as_ref().and_then(|r| r.rss_bytes),
                        cpu_usec: r.as_ref().and_then(|r| r.cpu_usec),
                        tasks: r.as_ref().and_then(|r| r.tasks),
                    }
                })
                .collect();
            let _ = reply.send(Response::Top {
                workspaces,
                commands,
            });
        });
    }

    pub(super) fn stats(&mut self, id: WorkspaceId, reply: oneshot::Sender<Response>, full: bool) {
        let Some(ws) = self.workspaces.get(&id) else {
            let _ = reply.send(not_found(id));
            return;
        };
        let view = ws.stats_view();
        let (cgroup, keeper) = (ws.created.cgroup.clone(), ws.created.keeper_pid);
        let groups = ws.groups();
        // The rest only for the full summary.
        let full = full.then(|| {
            (
                ws.spec.clone(),
                ws.report_only_breaches(),
                ws.commands.values().cloned().collect::<Vec<_>>(),
            )
        });
        let flow_sockets: Vec<PathBuf> = self
            .pipelines
            .values()
            .filter(|p| p.workspace == id)
            .flat_map(|p| p.taps.iter().filter_map(|t| t.published().cloned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let r = stats::read(cgroup.as_ref(), keeper, &groups);
            let info = view.info(&r, Instant::now());
            let response = match full {
                Some((spec, breaches, commands)) => Response::WorkspaceFullSummary {
                    stats: info,
                    quota: stats::quota(cgroup.as_ref(), &spec, &breaches),
                    commands: commands.iter().map(CommandRec::info).collect(),
                    flow_sockets,
                },
                None => Response::WorkspaceStats { info },
            };
            let _ = reply.send(response);
        });
    }

    pub(super) fn quota(&mut self, id: WorkspaceId, reply: oneshot::Sender<Response>) {
        let Some(ws) = self.workspaces.get(&id) else {
            let _ = reply.send(not_found(id));
            return;
        };
        let cgroup = ws.created.cgroup.clone();
        let spec = ws.spec.clone();
        let seen = ws.report_only_breaches();
        tokio::task::spawn_blocking(move || {
            let info = stats::quota(cgroup.as_ref(), &spec, &seen);
            let _ = reply.send(Response::WorkspaceQuota { info });
        });
    }

    /// Gives each kept workspace's keeper its tapped edges' byte counts, so
    /// they go on with the next daemon (every sample, off the loop; at
    /// shutdown, `now`, before the daemon exits).
    pub(super) fn save_edge_counts(&self, now: bool) {
        type Counts = Vec<(Ulid, u32, u64)>;
        let mut by_link: Vec<(Arc<crate::keeper::link::KeeperLink>, Counts)> = Vec::new();
        for (id, p) in &self.pipelines {
            let Some(ws) = self.workspaces.get(&p.workspace) else {
                continue;
            };
            let Some(link) = ws.kept_link() else {
                continue;
            };
            let counts: Vec<(Ulid, u32, u64)> = p
                .taps
                .iter()
                .map(|t| {
                    let bytes = t.tap.state.bytes.load(std::sync::atomic::Ordering::Relaxed);
                    (*id, t.index, bytes)
                })
                .collect();
            if !counts.is_empty() {
                by_link.push((link.clone(), counts));
            }
        }
        let send = move || {
            for (link, counts) in by_link {
                link.count(&counts);
            }
        };
        if now {
            send();
        } else {
            tokio::task::spawn_blocking(send);
        }
    }

    pub(super) fn sample(&mut self) {
        self.save_edge_counts(false);
        if self.workspaces.is_empty() {
            return;
        }
        // One round at a time: the sampler travels with it.
        let Some(mut sampler) = self.sampler.take() else {
            return;
        };
        type Target = (WorkspaceId, Option<Cgroup>, Option<u32>, Vec<i32>);
        let targets: Vec<Target> = self
            .workspaces
            .values()
            .filter(|w| !w.stopping)
            .map(|w| {
                (
                    w.id,
                    w.created.cgroup.clone(),
                    w.created.keeper_pid,
                    w.groups(),
                )
            })
            .collect();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let live = targets
                .iter()
                .filter_map(|(_, cg, _, _)| cg.as_ref().map(|c| c.dir().to_owned()))
                .collect();
            sampler.retain(&live);
            let readings = targets
                .into_iter()
                .map(|(id, cg, keeper, groups)| (id, sampler.read(cg.as_ref(), keeper, &groups)))
                .collect();
            let _ = tx.blocking_send(Event::Sampled {
                sampler,
                readings,
                at: Instant::now(),
            });
        });
    }

    pub(super) fn on_sampled(
        &mut self,
        sampler: Box<stats::Sampler>,
        readings: Vec<(WorkspaceId, Reading)>,
        at: Instant,
    ) {
        self.sampler = Some(sampler);
        let mut vanished = Vec::new();
        for (id, r) in readings {
            let Some(ws) = self.workspaces.get_mut(&id) else {
                continue;
            };
            if ws.stopping {
                continue;
            }
            if ws.created.cgroup.as_ref().is_some_and(|c| !c.exists()) {
                vanished.push(id);
                continue;
            }
            let info = ws.info(&r, at);
            if let Some(cpu) = r.cpu_usec {
                ws.last_cpu = Some((at, cpu));
            }
            let peak_before = ws.peak_seen;
            ws.peak_seen = ws
                .peak_seen
                .max(r.rss_bytes.unwrap_or(0))
                .max(r.rss_peak_bytes.unwrap_or(0));
            let kernel = *ws.kernel_limits.get_or_insert_with(|| {
                ws.created.cgroup.as_ref().is_some_and(|c| {
                    c.dir().join("memory.max").exists() || c.dir().join("pids.max").exists()
                })
            });
            // Limits the kernel does not hold are watched here: asked so
            // (--report-only), or where this host cannot enforce them.
            let watched = match ws.spec.quota_enforce {
                QuotaEnforce::ReportOnly => Some("report-only"),
                QuotaEnforce::Hard if !kernel => Some("not enforced here"),
                QuotaEnforce::Hard => None,
            };
            if let Some(why) = watched {
                let soma = &ws.spec.soma;
                if let (Some(limit), Some(rss)) = (soma.mem_max_bytes, r.rss_bytes) {
                    // A peak between two samples counts too (memory.peak,
                    // where the kernel keeps one): once, when it rises.
                    let peaked = r
                        .rss_peak_bytes
                        .is_some_and(|p| p > limit && p > peak_before);
                    if rss > limit || peaked {
                        *ws.report_breaches
                            .entry(format!("memory.max ({why})"))
                            .or_default() += 1;
                    }
                }
                if let (Some(limit), Some(tasks)) = (soma.tasks_max, r.tasks) {
                    if tasks > limit {
                        *ws.report_breaches
                            .entry(format!("pids.max ({why})"))
                            .or_default() += 1;
                    }
                }
            }
            if ws.history.len() == HISTORY_CAPACITY {
                ws.history.pop_front();
            }
            ws.history.push_back(info);
        }
        for id in vanished {
            if let Some(ws) = self.workspaces.remove(&id) {
                audit::record(
                    self.env.own_uid,
                    "workspace.vanished",
                    &audit::Detail::new()
                        .kv("id", id)
                        .kv("label", &ws.spec.label)
                        .kv("unit", &ws.unit),
                    "its cgroup disappeared (stopped outside shipote or by systemd)",
                );
                self.changed();
            }
        }
    }
}
