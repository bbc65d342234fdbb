//! Fetching a credential from WeChat under the refresh lease: saving it
//! (fenced), scheduling its renewal by the owner's family rules, and on
//! failure recording why and when WeChat may be called again.

use std::sync::atomic::Ordering;

use crate::metrics::RefreshLabels;
use crate::store::{Credential, Kind, Lease};
use crate::upstream::{Failure, FailureClass, FailureRecord, Fetched, Rotated};

use super::center::{Cause, TokenError, RECENT_FAILURES};
use super::issuer::{Inputs, Issuer};
use super::lease::{Waited, LEASE_TTL};
use super::policy::beijing_day;
use super::slot::Slot;
use super::TokenCenter;

/// One fetch under way: whose, which, why, and under which lease.
struct Fetch<'a> {
    appid: &'a str,
    kind: Kind,
    slot: &'a Slot,
    issuer: &'a dyn Issuer,
    /// The credential held before, if any.
    previous: Option<&'a Credential>,
    /// A new value even if WeChat would repeat the current one.
    forced: bool,
    /// The store's lease, unless the store is down.
    lease: Option<&'a Lease>,
    cause: Cause,
}

impl TokenCenter {
    /// Fetches from WeChat and stores; the caller holds the slot's flight.
    pub(super) async fn fetch(
        &self,
        appid: &str,
        kind: Kind,
        slot: &Slot,
        forced: bool,
        cause: Cause,
    ) -> Result<Credential, TokenError> {
        let issuer = self
            .issuer(appid)
            .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?
            .clone();
        {
            let health = slot.health();
            if self.now() < health.not_before {
                let failure = health.last_failure.clone().unwrap_or_else(|| {
                    Failure::transient("waiting before the next call to WeChat")
                });
                return Err(TokenError::Unavailable {
                    failure,
                    retry_at: health.not_before,
                });
            }
        }
        let previous = slot.current();
        let now = self.now();
        // Across instances one refresh at a time: the store's lease.
        let lease = match self.inner.store.acquire(appid, kind, LEASE_TTL).await {
            Ok(Some(lease)) => Some(lease),
            Ok(None) => {
                match self
                    .await_other_instance(appid, kind, slot, previous.as_ref(), forced)
                    .await?
                {
                    Waited::Stored(credential) => return Ok(credential),
                    // The holder released or died without storing: this instance fetches.
                    Waited::Leased(lease) => Some(lease),
                }
            }
            Err(e) if previous.as_ref().is_some_and(|p| p.is_valid(now)) => {
                self.store_written(Err(&e));
                let failure = Failure::transient_with_hint(
                    "store unavailable; serving the current credential",
                    "check the store (Redis)",
                );
                let retry_at = self.on_failure(slot, &failure, now);
                tracing::warn!(appid, token.kind = %kind, error = %e, "store unavailable; refresh postponed");
                slot.generation.send_modify(|g| *g += 1);
                return Err(TokenError::Unavailable { failure, retry_at });
            }
            Err(e) => {
                self.store_written(Err(&e));
                tracing::warn!(appid, token.kind = %kind, error = %e, "store unavailable; fetching without the lease");
                None
            }
        };
        slot.leased.store(lease.is_some(), Ordering::Relaxed);
        let fetch = Fetch {
            appid,
            kind,
            slot,
            issuer: issuer.as_ref(),
            previous: previous.as_ref(),
            forced,
            lease: lease.as_ref(),
            cause,
        };
        let (result, unsaved) = self.fetch_leased(fetch).await;
        slot.leased.store(false, Ordering::Relaxed);
        // A credential fetched but not saved keeps its lease unreleased: the
        // store then knows its stored value may be superseded (SQLite does not
        // trust it after a restart; Redis lets the lease expire).
        if let Some(lease) = lease.as_ref().filter(|_| !unsaved) {
            if let Err(e) = self.inner.store.release(appid, kind, lease).await {
                tracing::warn!(appid, token.kind = %kind, error = %e, "could not release the refresh lease; it expires by itself");
            }
        }
        result
    }

    /// The fetch itself, under the lease (or without one when the store is
    /// down); `true` beside it when a fetched credential could not be saved.
    async fn fetch_leased(&self, fetch: Fetch<'_>) -> (Result<Credential, TokenError>, bool) {
        let Fetch {
            appid,
            kind,
            slot,
            previous,
            forced,
            lease,
            ref cause,
            ..
        } = fetch;
        // Another instance may have stored a newer credential just before we got the lease.
        if lease.is_some() {
            if let Some(stored) = self.stored_newer_than(appid, kind, previous, forced).await {
                self.keep(slot, appid, kind, &stored);
                return (Ok(stored), false);
            }
        }
        let mut unsaved = false;
        let result = self.fetch_with_inputs(&fetch).await;
        let now = self.now();
        self.audit(appid, kind, "fetch", cause, result.as_ref().err())
            .await;
        match result {
            Ok(Fetched {
                value,
                expires_in,
                rotated,
            }) => {
                let mut credential = Credential {
                    value,
                    expires_at: now + expires_in,
                    fetched_at: now,
                };
                let repeated = previous.filter(|p| p.value == credential.value);
                if let Some(previous) = repeated {
                    // The same value lives no longer than first told, whatever
                    // lifetime the repeat claims (WeCom may report a full 7200 s).
                    credential.expires_at = credential.expires_at.min(previous.expires_at);
                }
                let saved = match lease {
                    Some(lease) => {
                        self.inner
                            .store
                            .save_fenced(appid, kind, &credential, lease)
                            .await
                    }
                    None => self
                        .inner
                        .store
                        .save(appid, kind, &credential)
                        .await
                        .map(|()| true),
                };
                self.store_written(saved.as_ref().map(drop));
                match saved {
                    Ok(true) => {}
                    Ok(false) => {
                        // A newer lease holder wrote (or will write) its own: theirs wins.
                        tracing::warn!(appid, token.kind = %kind, "lease lost while fetching; adopting the store's credential");
                        if let Some(stored) =
                            self.load(appid, kind).await.filter(|c| c.is_valid(now))
                        {
                            credential = stored;
                        }
                    }
                    Err(e) => {
                        unsaved = true;
                        tracing::warn!(appid, token.kind = %kind, error = %e, "could not persist; serving from memory");
                    }
                }
                let mut refresh_at = self.refresh_at(appid, kind, &credential);
                if repeated.is_some() {
                    // WeChat repeated the token: ask again shortly, not in a
                    // loop, and no later than just after it ends (WeCom gives
                    // the next one only then, and a renewal at its very end may
                    // still meet the old one).
                    refresh_at = refresh_at
                        .max(now + 10)
                        .min(credential.expires_at + 1)
                        .max(now + 1);
                }
                self.count_refresh(appid, kind, "ok");
                {
                    let mut health = slot.health();
                    health.fetches += 1;
                    let today = beijing_day(now);
                    health.fetches_today = match health.fetches_today {
                        (day, n) if day == today => (day, n + 1),
                        _ => (today, 1),
                    };
                    health.failures = 0;
                    health.last_failure = None;
                    health.not_before = 0;
                }
                tracing::info!(appid, token.kind = %kind, expires_in, forced, "fetched from WeChat");
                slot.set(credential.clone(), refresh_at);
                if let Some(rotated) = rotated {
                    self.keep_rotated(appid, rotated, cause, now).await;
                }
                (Ok(credential), unsaved)
            }
            Err(failure) => {
                self.count_refresh(appid, kind, failure.class.as_str());
                self.record_failure(appid, kind, &failure, now);
                let retry_at = self.on_failure(slot, &failure, now);
                let still_valid = previous.is_some_and(|p| p.is_valid(now));
                let in_a_row = slot.health().failures;
                log_failure(appid, kind, &failure, retry_at, still_valid, in_a_row);
                slot.generation.send_modify(|g| *g += 1);
                (Err(TokenError::Unavailable { failure, retry_at }), false)
            }
        }
    }

    /// Gets what the fetch depends on and asks the issuer. If WeChat rejects
    /// the access token among the inputs (40001, 40014, 42001) and a check
    /// confirms that token is refused ([`TokenCenter::replace_rejected`]),
    /// the fetch is tried once more with its replacement, never looped on.
    async fn fetch_with_inputs(&self, fetch: &Fetch<'_>) -> Result<Fetched, Failure> {
        let by = fetch.cause.requester();
        let mut inputs = Inputs::default();
        for dependency in fetch.issuer.depends_on(fetch.kind) {
            let credential = self
                .get(&dependency.owner, dependency.kind, &by)
                .await
                .map_err(TokenError::into_failure)?;
            inputs.set(&dependency, credential.value);
        }
        let upstream = &self.inner.upstream;
        let (issuer, kind, forced) = (fetch.issuer, fetch.kind, fetch.forced);
        let as_transient = |mut f: Failure| {
            f.class = FailureClass::Transient;
            f
        };
        match issuer.fetch(upstream, kind, forced, &inputs).await {
            Err(failure) if failure.class == FailureClass::TokenRejected => {
                let Some((dependency, token)) = inputs.access_token() else {
                    return Err(failure);
                };
                let dependency = dependency.clone();
                let replaced = self
                    .replace_rejected(&dependency.owner, token, &by, None)
                    .await?;
                let Some(fresh) = replaced else {
                    return Err(as_transient(failure));
                };
                inputs.set(&dependency, fresh.value);
                (issuer.fetch(upstream, kind, forced, &inputs).await).map_err(as_transient)
            }
            other => other,
        }
    }

    /// Stores and keeps a credential that came with another's fetch (a
    /// rotated refresh token): it is the newest WeChat gave, and rotations of
    /// an owner's credential are one at a time, under the lease of the fetch
    /// that brought them.
    async fn keep_rotated(&self, appid: &str, rotated: Rotated, cause: &Cause, now: u64) {
        let kind = rotated.kind;
        let credential = Credential {
            value: rotated.value,
            expires_at: now + rotated.expires_in,
            fetched_at: now,
        };
        let Ok(slot) = self.slot(appid, kind) else {
            tracing::warn!(appid, token.kind = %kind, "a fetch returned a credential its family does not have; not kept");
            return;
        };
        self.store_accepted(appid, kind, &credential).await;
        self.keep(&slot, appid, kind, &credential);
        self.audit(appid, kind, "rotation", cause, None).await;
    }

    /// Saves a credential that was not fetched under its own lease (rotated,
    /// or pushed): fenced by its lease when that is free, else written as is.
    pub(super) async fn store_accepted(&self, appid: &str, kind: Kind, credential: &Credential) {
        let store = &self.inner.store;
        let saved = match store.acquire(appid, kind, LEASE_TTL).await {
            Ok(Some(lease)) => {
                let saved = store.save_fenced(appid, kind, credential, &lease).await;
                if let Err(e) = store.release(appid, kind, &lease).await {
                    tracing::warn!(appid, token.kind = %kind, error = %e, "could not release the lease; it expires by itself");
                }
                saved.map(drop)
            }
            _ => store.save(appid, kind, credential).await,
        };
        self.store_written(saved.as_ref().map(drop));
        if let Err(e) = saved {
            tracing::warn!(appid, token.kind = %kind, error = %e, "could not persist; serving from memory");
        }
    }

    /// Accepts a credential that arrives by push rather than by a fetch (an
    /// Open Platform component's verify ticket, pushed every ten minutes):
    /// stored, kept and audited as a fetched one is, under the slot's single
    /// flight, and served to whoever depends on it.
    pub async fn accept(
        &self,
        owner: &str,
        kind: Kind,
        value: String,
        expires_in: u64,
        cause: Cause,
    ) -> Result<Credential, TokenError> {
        let slot = self.slot(owner, kind)?;
        let _flight = slot.flight.lock().await;
        let now = self.now();
        let credential = Credential {
            value,
            expires_at: now + expires_in,
            fetched_at: now,
        };
        self.store_accepted(owner, kind, &credential).await;
        self.keep(&slot, owner, kind, &credential);
        slot.generation.send_modify(|g| *g += 1);
        self.audit(owner, kind, "push", &cause, None).await;
        tracing::info!(owner, token.kind = %kind, expires_in, "credential accepted from a push");
        self.wake_dependents(owner, kind);
        Ok(credential)
    }

    /// A credential of `owner` arrived: the owner's credentials fetched
    /// with it that failed for want of it (a platform's token waiting for
    /// its first ticket) are retried now rather than after their backoff.
    fn wake_dependents(&self, owner: &str, kind: Kind) {
        let Some(issuer) = self.issuer(owner) else {
            return;
        };
        let now = self.now();
        for &dependent in issuer.family().kinds {
            let needs =
                (issuer.depends_on(dependent).iter()).any(|d| d.owner == owner && d.kind == kind);
            let Some(slot) = needs
                .then(|| self.existing_slot(owner, dependent))
                .flatten()
            else {
                continue;
            };
            let waiting = {
                let mut health = slot.health();
                let waiting = slot.valid(now).is_none()
                    && (health.last_failure.as_ref())
                        .is_some_and(|f| f.class != FailureClass::Config);
                if waiting {
                    health.not_before = 0;
                }
                waiting
            };
            if waiting {
                slot.generation.send_modify(|g| *g += 1);
            }
        }
    }

    fn count_refresh(&self, appid: &str, kind: Kind, result: &str) {
        self.inner
            .metrics
            .refreshes
            .get_or_create(&RefreshLabels {
                appid: appid.to_owned(),
                kind: kind.as_str().to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Keeps the failure for the status page's list of recent errors.
    fn record_failure(&self, appid: &str, kind: Kind, failure: &Failure, now: u64) {
        let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_front(FailureRecord::new(appid, kind, failure, now));
        recent.truncate(RECENT_FAILURES);
    }

    /// Records a failure and returns when WeChat may be called again.
    pub(super) fn on_failure(&self, slot: &Slot, failure: &Failure, now: u64) -> u64 {
        let mut health = slot.health();
        health.failures += 1;
        health.last_failure = Some(failure.clone());
        health.last_failure_at = now;
        health.not_before =
            super::policy::retry_at(&self.inner.policy, failure.class, health.failures, now);
        health.not_before
    }

    /// When to renew, by the owner's family rules (see [`Issuer::renew_ahead`]).
    pub(super) fn refresh_at(&self, appid: &str, kind: Kind, credential: &Credential) -> u64 {
        let ahead = crate::config::DEFAULT_REFRESH_AHEAD_SECS;
        let issuer = self.issuer(appid);
        if let Some(after) = issuer.as_ref().and_then(|i| i.overdue_after(kind)) {
            return credential.fetched_at + after;
        }
        let (ahead, spread) = issuer.map_or((ahead, ahead / 10), |issuer| issuer.renew_ahead(kind));
        let jitter = (self.inner.policy.jitter)(spread);
        super::policy::renew_at(credential, ahead, jitter)
    }
}

/// The line of a failed fetch, the `in_a_row`-th in a row: at the level
/// its cause deserves.
fn log_failure(
    appid: &str,
    kind: Kind,
    failure: &Failure,
    retry_at: u64,
    still_valid: bool,
    in_a_row: u32,
) {
    let hint = failure.hint.as_deref().unwrap_or("");
    let errcode = failure.errcode.unwrap_or(0);
    match (failure.class, still_valid) {
        // Not refused: WeChat was asked to push a ticket, and pushes one
        // within minutes (at a platform's first start, always this, for the
        // ticket and what needs it): said once, then warned of while none
        // comes. A failed ask is an error like any other.
        (FailureClass::Awaiting, _) if in_a_row <= 1 => tracing::info!(
            appid, token.kind = %kind, retry_at,
            "waiting for WeChat to push a verify ticket: {failure}"
        ),
        (FailureClass::Awaiting, _) => tracing::warn!(
            appid, token.kind = %kind, retry_at, failures = in_a_row, hint,
            "still waiting for WeChat to push a verify ticket: {failure}"
        ),
        (FailureClass::Transient | FailureClass::TokenRejected, true) => tracing::warn!(
            appid, token.kind = %kind, upstream.errcode = errcode, retry_at,
            "refresh failed; still serving the current credential: {failure}"
        ),
        _ => tracing::error!(
            appid, token.kind = %kind, upstream.errcode = errcode, retry_at, hint,
            "WeChat refused the credential fetch: {failure}"
        ),
    }
}
