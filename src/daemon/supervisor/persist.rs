//! Persistence: the state snapshot after every change, written by one task
//! (retried until it lands); WorkspaceCreated answered once it holds the
//! workspace.

use super::*;

impl Supervisor {
    pub(super) fn on_persisted(&mut self, generation: u64, error: Option<String>) {
        if error.is_none() {
            self.persisted = self.persisted.max(generation);
        }
        let (due, later) = std::mem::take(&mut self.after_persist)
            .into_iter()
            .partition(|(g, _, _)| *g <= generation);
        self.after_persist = later;
        for (_, reply, mut response) in due {
            if let (Some(e), Response::WorkspaceCreated { warnings, .. }) = (&error, &mut response)
            {
                warnings.push(format!(
                    "the state file could not be written yet ({e}); shipoted writes it again until it can \
                     (shipote health says dirty meanwhile); should it die first, the next start keeps this \
                     workspace if something runs in it and removes it if empty"
                ));
            }
            if let Err(Response::WorkspaceCreated { id, .. }) = reply.send(response) {
                tracing::info!(id = %id, "client left before its workspace was created; keeping it");
            }
        }
    }

    /// Records a state change and hands a snapshot to the persister.
    pub(super) fn changed(&mut self) {
        self.generation += 1;
        let backend = self.env.backend.backend.name();
        let saved: Vec<SavedWorkspace> =
            self.workspaces.values().map(|w| w.saved(backend)).collect();
        let _ = self
            .persist_tx
            .send((self.generation, state::encode(saved)));
    }
}

/// Writes the newest state snapshot whenever it changes, one write at a time.
pub(super) async fn persister(
    path: PathBuf,
    mut rx: watch::Receiver<(u64, Vec<u8>)>,
    tx: mpsc::Sender<Event>,
) {
    // After a failed write (full disk, read-only remount, EMFILE) the newest
    // state is written again after a backoff, or at once when it changes,
    // until a write succeeds: `dirty` stays true in Health meanwhile.
    let mut retry: Option<Duration> = None;
    loop {
        match retry {
            None => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            Some(wait) => {
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        let (generation, bytes) = rx.borrow_and_update().clone();
        let p = path.clone();
        let error = match tokio::task::spawn_blocking(move || state::write_atomic(&p, &bytes)).await
        {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("the state writer failed: {e}")),
        };
        retry = match (&error, retry) {
            (None, _) => None,
            (Some(_), None) => Some(PERSIST_RETRY_FIRST),
            (Some(_), Some(w)) => Some((w * 2).min(PERSIST_RETRY_MAX)),
        };
        if let (Some(e), Some(wait)) = (&error, retry) {
            tracing::error!(error = %e, retry_ms = wait.as_millis() as u64, "cannot save state; it stays dirty and is written again");
        }
        let _ = tx.send(Event::Persisted { generation, error }).await;
    }
}

/// First wait before a failed state write is tried again; it doubles up to
/// [`PERSIST_RETRY_MAX`].
pub const PERSIST_RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest wait between two tries of a failed state write.
pub const PERSIST_RETRY_MAX: Duration = Duration::from_secs(10);
