//! The background refresher: one task per app and kind fetches the credential
//! at start (or loads it from the store), renews it at
//! `expires_at − refresh_ahead − jitter`, and after any failure tries again
//! by itself after the backoff, so business servers never wait on WeChat and
//! no credential waits for a client to ask again. At most [`MAX_RENEWING`]
//! renewals run at once, so memory stays bounded however many apps there are.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::store::Kind;

use super::slot::Slot;
use super::TokenCenter;

/// Background renewals under way at once. At start every credential is due
/// together: with 200,000 apps, unbounded, the warm-up alone held 200,000
/// upstream calls and took more than 1.5 GB. A client that asks for a
/// credential not held yet does not wait for this (it fetches on demand).
const MAX_RENEWING: usize = 64;

/// The refresher tasks; dropping this stops them, and the ones of slots
/// made later (a credential first asked for, an owner added).
#[derive(Debug)]
pub struct Refreshers {
    center: TokenCenter,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Refreshers {
    fn drop(&mut self) {
        *self.center.renewing() = None;
        for task in &self.tasks {
            task.abort();
        }
        for (_, slot) in self.center.inner.slots.all() {
            slot.stop_refresher();
        }
    }
}

impl TokenCenter {
    /// Starts one refresher per app and kind, and, when the store announces
    /// other instances' writes, the task that adopts them at once.
    pub fn spawn_refreshers(&self) -> Refreshers {
        *self.renewing() = Some(Arc::new(Semaphore::new(MAX_RENEWING)));
        for ((owner, kind), slot) in self.inner.slots.all() {
            self.start_refresher(&owner, kind, &slot);
        }
        let mut tasks = Vec::new();
        if let Some(changes) = self.store().changes() {
            tasks.push(tokio::spawn(follow(self.clone(), changes)));
        }
        if let Some(revocations) = self.store().revocations() {
            tasks.push(tokio::spawn(follow_revocations(self.clone(), revocations)));
        }
        let probe_interval = self.inner.policy.probe_interval;
        if probe_interval > 0 {
            tasks.push(tokio::spawn(super::probe::run(
                self.clone(),
                probe_interval,
            )));
        }
        Refreshers {
            center: self.clone(),
            tasks,
        }
    }

    fn renewing(&self) -> std::sync::MutexGuard<'_, Option<Arc<Semaphore>>> {
        self.inner
            .renewing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `slot`'s refresher, when the refreshers run.
    pub(super) fn start_refresher(&self, owner: &str, kind: Kind, slot: &Slot) {
        let Some(renewing) = self.renewing().clone() else {
            return;
        };
        let task = tokio::spawn(run(self.clone(), owner.to_owned(), kind, renewing));
        let previous = slot
            .refresher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
    }
}

async fn run(center: TokenCenter, appid: String, kind: Kind, renewing: Arc<Semaphore>) {
    // Stopped (aborted) when the slot is dropped from the center.
    let Some(slot) = center.existing_slot(&appid, kind) else {
        return;
    };
    let mut changed = slot.generation.subscribe();
    loop {
        changed.borrow_and_update();
        match center.due(&slot) {
            // Not wanted (a card ticket nobody asked for): nothing to do.
            None => {
                if changed.changed().await.is_err() {
                    return;
                }
            }
            Some(due) => {
                let clock = center.inner.clock.clone();
                tokio::select! {
                    () = clock.sleep_until(due) => {
                        let Ok(_permit) = renewing.acquire().await else { return };
                        // Boxed: a renewal's future is large and lives only
                        // while it runs, so the waiting refreshers stay small.
                        Box::pin(center.renew(&appid, kind)).await
                    }
                    result = changed.changed() => if result.is_err() { return },
                }
            }
        }
    }
}

/// How often every credential is compared with the store anyway, in case a
/// notification was lost (a dropped subscription, a resubscribe gap).
const RESYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Adopts credentials other instances store, as their notifications arrive,
/// and re-reads all of them every [`RESYNC_EVERY`].
async fn follow(
    center: TokenCenter,
    mut changes: tokio::sync::broadcast::Receiver<(String, Kind)>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    loop {
        let one = tokio::select! {
            received = changes.recv() => match received {
                Ok(change) => Some(change),
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return,
            },
            _ = resync.tick() => None,
        };
        match one {
            Some((appid, kind)) => center.adopt_stored(&appid, kind).await,
            None => {
                let all = center.inner.slots.all();
                for ((appid, kind), _) in all {
                    center.adopt_stored(&appid, kind).await;
                }
            }
        }
    }
}

/// Stops accepting tokens revoked on any instance as previous ones, as the
/// announcements arrive.
async fn follow_revocations(
    center: TokenCenter,
    mut revocations: tokio::sync::broadcast::Receiver<(String, String)>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match revocations.recv().await {
            Ok((appid, sha256)) => center.revoked_elsewhere(&appid, &sha256).await,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "missed revocation announcements");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
