//! The lease protocol: across instances sharing a store, one refresh of a
//! credential at a time. The holder fetches and stores; the others wait for
//! what it stores, and take the lease over if it lets go without storing or
//! dies (the lease expires).

use std::time::Duration;

use crate::store::{Credential, Kind, Lease};

use super::slot::Slot;
use super::{TokenCenter, TokenError};
use crate::upstream::Failure;

/// How long a refresh lease lasts across instances: longer than the work done
/// under it (a call to WeChat is at most `upstream.timeout_ms`, capped at 10 s;
/// a ticket may first need the access token).
pub(super) const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often an instance waiting on another instance's refresh looks at the store.
const LEASE_POLL: Duration = Duration::from_millis(50);
/// How often it also tries to take the lease, in case the holder is gone.
const LEASE_RETRY: Duration = Duration::from_secs(1);

/// How waiting on another instance's refresh ended.
pub(super) enum Waited {
    /// It stored a credential.
    Stored(Credential),
    /// It let the lease go without storing one; now this instance holds it.
    Leased(Lease),
}

impl TokenCenter {
    /// A valid stored credential that replaces `previous`: a different value,
    /// or (unless forced, when the value itself was reported bad) a later fetch.
    pub(super) async fn stored_newer_than(
        &self,
        appid: &str,
        kind: Kind,
        previous: Option<&Credential>,
        forced: bool,
    ) -> Option<Credential> {
        let now = self.now();
        let stored = self.load(appid, kind).await.filter(|c| c.is_valid(now))?;
        // Never go back to an older credential (one a failed save left behind).
        let newer = match previous {
            None => true,
            Some(p) if forced => stored.value != p.value && stored.fetched_at >= p.fetched_at,
            Some(p) => {
                stored.fetched_at > p.fetched_at
                    || (stored.value != p.value && stored.fetched_at >= p.fetched_at)
            }
        };
        newer.then_some(stored)
    }

    /// Another instance holds the lease: wait for the credential it stores.
    /// Every second the lease is tried too, so that if its holder released it
    /// without storing (its fetch failed) or died (the lease expired), this
    /// instance takes over instead of failing.
    pub(super) async fn await_other_instance(
        &self,
        appid: &str,
        kind: Kind,
        slot: &Slot,
        previous: Option<&Credential>,
        forced: bool,
    ) -> Result<Waited, TokenError> {
        let deadline = tokio::time::Instant::now() + LEASE_TTL + LEASE_RETRY;
        let mut next_try = tokio::time::Instant::now() + LEASE_RETRY;
        while tokio::time::Instant::now() < deadline {
            if let Some(stored) = self.stored_newer_than(appid, kind, previous, forced).await {
                self.keep(slot, appid, kind, &stored);
                return Ok(Waited::Stored(stored));
            }
            if tokio::time::Instant::now() >= next_try {
                next_try += LEASE_RETRY;
                if let Ok(Some(lease)) = self.inner.store.acquire(appid, kind, LEASE_TTL).await {
                    return Ok(Waited::Leased(lease));
                }
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
        let failure =
            Failure::transient("another instance holds the refresh lease and stored nothing new");
        let retry_at = self.on_failure(slot, &failure, self.now());
        Err(TokenError::Unavailable { failure, retry_at })
    }
}
