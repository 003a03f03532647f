//! Disk budgets for commands' logs: per workspace and for the whole daemon.
//!
//! A command keeps at most about 2.5 MiB of output (two generations of its
//! rotating log), but commands are many: 100 chatty ones once kept 188 MiB in
//! one workspace. When a workspace's logs pass [`WORKSPACE_BUDGET`], or all
//! logs pass [`TOTAL_BUDGET`], the logs of *ended* commands go, oldest first
//! (by start), until both hold again; a running command's log is never
//! removed. What was removed is said where the user looks (`ps` NOTE, `logs`).

use std::collections::HashMap;

/// Most bytes of logs one workspace keeps before its ended commands' logs go.
pub const WORKSPACE_BUDGET: u64 = 64 << 20;

/// Most bytes of logs the daemon keeps over all workspaces.
pub const TOTAL_BUDGET: u64 = 1 << 30;

/// One command's log, as the budget sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<W, C> {
    /// Its workspace.
    pub workspace: W,
    /// The command (ordered by start: ULIDs).
    pub command: C,
    /// Bytes on disk.
    pub bytes: u64,
    /// Running, or waiting to restart: never pruned.
    pub alive: bool,
}

/// Which logs to remove so that every workspace stays within `per_workspace`
/// and the whole within `total`: ended commands only, oldest first.
pub fn prune<W, C>(entries: &[Entry<W, C>], per_workspace: u64, total: u64) -> Vec<(W, C)>
where
    W: Clone + Eq + std::hash::Hash,
    C: Clone + Ord,
{
    let mut by_ws: HashMap<W, u64> = HashMap::new();
    let mut sum = 0u64;
    for e in entries {
        *by_ws.entry(e.workspace.clone()).or_default() += e.bytes;
        sum += e.bytes;
    }
    let mut ended: Vec<&Entry<W, C>> = entries.iter().filter(|e| !e.alive && e.bytes > 0).collect();
    ended.sort_by(|a, b| a.command.cmp(&b.command));
    let mut out = Vec::new();
    // First each workspace over its own budget, then the whole.
    for e in &ended {
        let ws = by_ws.get_mut(&e.workspace).expect("counted");
        if *ws > per_workspace {
            *ws -= e.bytes;
            sum -= e.bytes;
            out.push((e.workspace.clone(), e.command.clone()));
        }
    }
    for e in &ended {
        if sum <= total {
            break;
        }
        let key = (e.workspace.clone(), e.command.clone());
        if out.iter().any(|k| k.0 == key.0 && k.1 == key.1) {
            continue;
        }
        sum -= e.bytes;
        out.push(key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(w: u8, c: u32, bytes: u64, alive: bool) -> Entry<u8, u32> {
        Entry {
            workspace: w,
            command: c,
            bytes,
            alive,
        }
    }

    #[test]
    fn oldest_ended_go_first_until_the_workspace_fits() {
        let entries = [
            e(1, 3, 40, false),
            e(1, 1, 40, false),
            e(1, 2, 40, true),
            e(1, 4, 40, false),
        ];
        assert_eq!(prune(&entries, 100, u64::MAX), vec![(1, 1), (1, 3)]);
    }

    #[test]
    fn running_commands_are_never_pruned() {
        let entries = [e(1, 1, 500, true), e(1, 2, 500, true)];
        assert!(prune(&entries, 100, 100).is_empty());
    }

    #[test]
    fn the_total_budget_prunes_across_workspaces_oldest_first() {
        let entries = [e(1, 5, 60, false), e(2, 2, 60, false), e(3, 9, 60, false)];
        assert_eq!(prune(&entries, 1000, 130), vec![(2, 2)]);
        assert_eq!(prune(&entries, 1000, 100), vec![(2, 2), (1, 5)]);
    }

    #[test]
    fn within_budget_nothing_goes() {
        let entries = [e(1, 1, 10, false), e(2, 2, 10, false)];
        assert!(prune(&entries, 100, 100).is_empty());
    }
}
