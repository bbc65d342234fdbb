//! [`TokenCenter`]: one fetch at a time per app and kind, served from memory,
//! persisted in the store, refreshed ahead of expiry, and careful with WeChat's
//! small quotas (DESIGN.md, "Token center semantics").

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{mask, Credential, Kind, Store, StoreError};

pub use super::cause::{Cause, Requester};
use super::issuer::Issuer;
use super::owners::{Owner, Owners};
use super::policy::beijing_day;
pub use super::policy::Policy;
pub use super::slot::SlotStatus;
use super::slot::{Health, Slot, Slots};
use crate::upstream::{Failure, FailureClass, FailureRecord, Upstream};

/// How many failures the status page lists.
pub(super) const RECENT_FAILURES: usize = 20;
/// Why no credential could be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The owner is not configured: an appid, a WeCom app's `corpid/agent`,
    /// or a WeCom corp's `corpid/`.
    #[error("{}", unknown_owner(.0))]
    UnknownApp(String),
    /// The owner was an authorizer of a platform and revoked the
    /// authorization: its credentials are no longer served.
    #[error("{owner} revoked its authorization of platform {platform} at {at} (an unauthorized event): its credentials are no longer served")]
    Revoked {
        /// The former authorizer.
        owner: String,
        /// Its platform.
        platform: String,
        /// When, Unix seconds.
        at: u64,
    },
    /// The owner's family has no credential of this kind (a Mini Program's jsapi_ticket).
    #[error("{owner} has no {kind}: {why}")]
    NotIssued {
        /// The owner asked about.
        owner: String,
        /// The credential asked for.
        kind: Kind,
        /// Why its family has none.
        why: &'static str,
    },
    /// No valid credential, and WeChat could not give one (or must not be asked yet).
    #[error("{failure}")]
    Unavailable {
        /// The last failure.
        failure: Failure,
        /// No call to WeChat before this time, Unix seconds.
        retry_at: u64,
    },
    /// A forced refresh came too soon after the previous one, or the day's
    /// forced refreshes are spent.
    #[error("forced refresh rate-limited until {retry_at}")]
    RateLimited {
        /// When a forced refresh is allowed again, Unix seconds.
        retry_at: u64,
        /// The daily limit, when that is what was reached.
        daily_limit: Option<u32>,
    },
}

impl TokenError {
    /// The failure to report to a caller that needed the credential for a call.
    pub fn into_failure(self) -> Failure {
        match self {
            TokenError::Unavailable { failure, .. } => failure,
            other => Failure::transient(other.to_string()),
        }
    }
}

/// Why `owner` is unknown, in the words of its family.
fn unknown_owner(owner: &str) -> String {
    match owner.split_once('/') {
        // A corp asked about as a whole (WeCom's gettoken by corpid and secret).
        Some((corpid, "")) => format!("no WeCom app of corp {corpid} is configured"),
        Some((corpid, agent)) => {
            format!(
                "no WeCom app {agent} of corp {corpid} is configured (agent: its name or agentid)"
            )
        }
        None => format!("unknown appid {owner}"),
    }
}

/// The token center. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TokenCenter {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    /// Who has credentials, and each owner's issuer.
    pub(super) owners: Arc<Owners>,
    pub(super) slots: Slots,
    /// Set while the refreshers run: what a slot made later needs to get one.
    pub(super) renewing: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    pub(super) store: Arc<dyn Store>,
    pub(super) upstream: Upstream,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) policy: Policy,
    pub(super) metrics: Arc<Metrics>,
    /// The latest failures, newest first.
    pub(super) recent: Mutex<VecDeque<FailureRecord>>,
    /// The last write the store refused (when, why), until one succeeds.
    store_write_error: Mutex<Option<(u64, String)>>,
}

impl TokenCenter {
    /// A token center for `owners` (more can be added while it runs).
    pub fn new(
        owners: Owners,
        store: Arc<dyn Store>,
        upstream: Upstream,
        clock: Arc<dyn Clock>,
        policy: Policy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let owners = Arc::new(owners);
        let center = Self {
            inner: Arc::new(Inner {
                owners,
                slots: Slots::default(),
                renewing: Mutex::new(None),
                store,
                upstream,
                clock,
                policy,
                metrics,
                recent: Mutex::new(VecDeque::new()),
                store_write_error: Mutex::new(None),
            }),
        };
        for owner in center.owners().all() {
            center.make_warm_slots(&owner);
        }
        center
    }

    /// Gives `owner` the slots of the credentials kept warm from the start
    /// (the others get theirs when first asked for).
    fn make_warm_slots(&self, owner: &Owner) {
        for &kind in owner.family.kinds {
            if owner.issuer.warm(kind) {
                self.make_slot(&owner.key, kind, true);
            }
        }
    }

    /// The slot of `owner`'s `kind`, made (with its refresher, when the
    /// refreshers run) if it has none.
    fn make_slot(&self, owner: &str, kind: Kind, wanted: bool) -> Arc<Slot> {
        let (slot, made) = self
            .inner
            .slots
            .get_or_make(owner, kind, || Slot::new(wanted));
        if made {
            self.start_refresher(owner, kind, &slot);
        }
        slot
    }

    /// Adds an owner while the server runs (a reloaded app, an authorizer):
    /// its warm credentials are loaded from the store or fetched at once, and
    /// its metrics, `/admin` row and probe follow. An owner with the same key
    /// is replaced: of the same family, its credentials are kept (the next
    /// fetch uses the new settings, e.g. a new secret); of another family,
    /// they are dropped here and loaded again (the store keeps them).
    pub fn add_owner(&self, owner: Owner) -> Arc<Owner> {
        let key = owner.key.clone();
        let before = self.inner.owners.get(&key);
        if let Some(before) = &before {
            if !std::ptr::eq(before.family, owner.family) {
                self.remove_owner(&key);
            }
        }
        let owner = self.inner.owners.add(owner);
        if before.is_some_and(|b| std::ptr::eq(b.family, owner.family)) {
            // Kinds it keeps warm now but did not (none today) get their slots.
            self.make_warm_slots(&owner);
            return owner;
        }
        self.inner.metrics.start_at_zero(
            std::iter::once(key.as_str()),
            std::iter::empty(),
            std::iter::empty(),
        );
        self.make_warm_slots(&owner);
        tracing::info!(owner = %key, family = owner.family.name, "owner added");
        owner
    }

    /// Adds (or replaces) an owner whose credentials came with it: an
    /// authorizer, whose authorization answer carries its access token and
    /// refresh token. A new owner's are stored first, so its slots load them
    /// instead of fetching; a known owner's are accepted into its slots.
    /// Each is audited as `event`.
    pub async fn add_owner_with(
        &self,
        owner: Owner,
        credentials: Vec<(Kind, String, u64)>,
        event: &str,
    ) -> Arc<Owner> {
        let key = owner.key.clone();
        let cause = Cause::Request(super::Requester::Push);
        let known = self.inner.owners.get(&key).is_some();
        if !known {
            let now = self.now();
            for (kind, value, expires_in) in &credentials {
                let credential = Credential {
                    value: value.clone(),
                    expires_at: now + expires_in,
                    fetched_at: now,
                };
                self.store_accepted(&key, *kind, &credential).await;
            }
        }
        let owner = self.add_owner(owner);
        for (kind, value, expires_in) in credentials {
            if known {
                if let Err(e) = self
                    .accept(&key, kind, value, expires_in, cause.clone())
                    .await
                {
                    tracing::warn!(owner = %key, token.kind = %kind, error = %e, "not kept");
                }
            }
            self.audit(&key, kind, event, &cause, None).await;
        }
        owner
    }

    /// Writes an event of `owner`'s `kind` that no fetch caused into the
    /// audit log (an authorization revoked).
    pub async fn record_event(&self, owner: &str, kind: Kind, event: &str) {
        let cause = Cause::Request(super::Requester::Push);
        self.audit(owner, kind, event, &cause, None).await;
    }

    /// Removes an owner while the server runs: its credentials are no
    /// longer served or renewed (what the store holds stays, for an owner
    /// added back). Returns whether it was there.
    pub fn remove_owner(&self, key: &str) -> bool {
        let Some(owner) = self.inner.owners.remove(key) else {
            return false;
        };
        self.inner.slots.remove_owner(key);
        tracing::info!(owner = %key, family = owner.family.name, "owner removed");
        true
    }

    /// Who has credentials: the configured apps and WeCom apps.
    pub(crate) fn owners(&self) -> &Arc<Owners> {
        &self.inner.owners
    }

    /// The store behind the center.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// When and why the store last refused a write, unless a write has
    /// succeeded since: credentials are then served from memory only, and a
    /// restart would not find them.
    pub fn store_write_error(&self) -> Option<(u64, String)> {
        self.inner
            .store_write_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After a refused write, tries a small one, so that readiness follows
    /// the store's state now, not the last credential saved.
    pub async fn recheck_store_writes(&self) {
        if self.store_write_error().is_some() {
            let probed = self.inner.store.probe_write().await;
            self.store_written(probed.as_ref().map(|_| ()));
        }
    }

    /// Records the outcome of a write to the store.
    pub(super) fn store_written(&self, result: Result<(), &StoreError>) {
        let mut error = self
            .inner
            .store_write_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => *error = None,
            Err(e) => {
                self.inner.metrics.store_write_failures.inc();
                if error.is_none() {
                    tracing::error!(error = %e, "the store refused a write; credentials are served from memory until it accepts one");
                }
                *error = Some((self.now(), e.to_string()));
            }
        }
    }

    /// The current time of the center's clock.
    pub(super) fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// The clock the center runs on.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The slot of `appid`'s `kind`, made when first asked for if its
    /// family has that credential.
    pub(super) fn slot(&self, appid: &str, kind: Kind) -> Result<Arc<Slot>, TokenError> {
        if let Some(slot) = self.inner.slots.get(appid, kind) {
            return Ok(slot);
        }
        match self.issuer(appid) {
            Some(issuer) if issuer.family().kinds.contains(&kind) => {
                Ok(self.make_slot(appid, kind, issuer.warm(kind)))
            }
            Some(issuer) => Err(TokenError::NotIssued {
                owner: appid.to_owned(),
                kind,
                why: issuer.family().lacks,
            }),
            None => Err(TokenError::UnknownApp(appid.to_owned())),
        }
    }

    /// The slot of `appid`'s `kind` if it has one already (nothing is made).
    pub(super) fn existing_slot(&self, appid: &str, kind: Kind) -> Option<Arc<Slot>> {
        self.inner.slots.get(appid, kind)
    }

    /// A valid credential: from memory, else from the store, else from WeChat.
    /// Concurrent callers share one fetch; `by` is named in the audit log when
    /// this call causes one.
    pub async fn get(
        &self,
        appid: &str,
        kind: Kind,
        by: &Requester,
    ) -> Result<Credential, TokenError> {
        let slot = self.slot(appid, kind)?;
        if let Some(c) = slot.valid(self.now()) {
            // Not a value WeChat is known to refuse: that is no credential.
            return match slot.known_rejected(&c) {
                None => Ok(c),
                Some(failure) => Err(TokenError::Unavailable {
                    failure,
                    retry_at: self.now() + self.inner.policy.probe_interval.max(1),
                }),
            };
        }
        self.get_detached(appid.to_owned(), kind, Cause::Request(by.clone()))
            .await
    }

    /// The slow path in its own task. Boxed: a ticket fetch calls back into
    /// `get` for the access token, and the concrete type keeps that recursion `Send`.
    fn get_detached(
        &self,
        appid: String,
        kind: Kind,
        cause: Cause,
    ) -> BoxFuture<'static, Result<Credential, TokenError>> {
        let this = self.clone();
        Box::pin(detached(
            async move { this.get_slow(&appid, kind, cause).await },
        ))
    }

    /// The slow path of [`TokenCenter::get`], in its own task: a fetch from
    /// WeChat completes and is stored even if the request that started it goes away.
    async fn get_slow(
        &self,
        appid: &str,
        kind: Kind,
        cause: Cause,
    ) -> Result<Credential, TokenError> {
        let slot = self.slot(appid, kind)?;
        slot.want();
        let _flight = slot.flight.lock().await;
        let now = self.now();
        if let Some(c) = slot.valid(now) {
            return Ok(c);
        }
        if let Some(c) = self.load(appid, kind).await.filter(|c| c.is_valid(now)) {
            self.keep(&slot, appid, kind, &c);
            self.audit(appid, kind, "adoption", &cause, None).await;
            return Ok(c);
        }
        self.fetch(appid, kind, &slot, false, cause).await
    }

    /// Compare-and-refresh: a business server saw `invalid` rejected. Fetches a
    /// new credential only if `invalid` is still the current one; otherwise
    /// returns the current one. Forced refreshes are rate-limited per credential.
    /// `cause` (usually [`Cause::CompareAndRefresh`]) goes to the audit log.
    pub async fn refresh(
        &self,
        appid: &str,
        kind: Kind,
        invalid: &str,
        cause: Cause,
    ) -> Result<Credential, TokenError> {
        self.slot(appid, kind)?;
        self.refresh_detached(appid.to_owned(), kind, invalid.to_owned(), cause)
            .await
    }

    /// [`TokenCenter::refresh`] in its own task (boxed, see `get_detached`).
    fn refresh_detached(
        &self,
        appid: String,
        kind: Kind,
        invalid: String,
        cause: Cause,
    ) -> BoxFuture<'static, Result<Credential, TokenError>> {
        let this = self.clone();
        Box::pin(detached(async move {
            this.refresh_slow(&appid, kind, &invalid, cause).await
        }))
    }

    /// The body of [`TokenCenter::refresh`], in its own task (see `get_slow`).
    async fn refresh_slow(
        &self,
        appid: &str,
        kind: Kind,
        invalid: &str,
        cause: Cause,
    ) -> Result<Credential, TokenError> {
        let slot = self.slot(appid, kind)?;
        slot.want();
        let _flight = slot.flight.lock().await;
        let now = self.now();
        let current = match slot.current() {
            Some(c) => Some(c),
            None => self.load(appid, kind).await,
        };
        if let Some(c) = current.filter(|c| c.value != invalid && c.is_valid(now)) {
            if slot.current().as_ref() != Some(&c) {
                self.keep(&slot, appid, kind, &c);
            }
            return Ok(c);
        }
        {
            let mut health = slot.health();
            let interval = self.inner.policy.forced_refresh_interval;
            if let Some(last) = health.last_forced.filter(|last| now < last + interval) {
                return Err(TokenError::RateLimited {
                    retry_at: last + interval,
                    daily_limit: None,
                });
            }
            let spent = self.forced_budget(appid, kind, &health, now, 1)?;
            health.last_forced = Some(now);
            health.forced_today = (beijing_day(now), spent + 1);
        }
        tracing::info!(appid, token.kind = %kind, invalid = %mask(invalid), "compare-and-refresh: forcing a new credential");
        self.fetch(appid, kind, &slot, true, cause).await
    }

    /// Renews a credential that is due, for the background refresher.
    /// A credential not yet held is loaded from the store first (a restart
    /// costs no call to WeChat), else fetched.
    pub(super) async fn renew(&self, appid: &str, kind: Kind) {
        let Ok(slot) = self.slot(appid, kind) else {
            return;
        };
        let _flight = slot.flight.lock().await;
        let now = self.now();
        if self.due(&slot).is_none_or(|due| due > now) {
            return;
        }
        let held = slot.current().is_some();
        if !held {
            if let Some(c) = self.load(appid, kind).await.filter(|c| c.is_valid(now)) {
                self.keep(&slot, appid, kind, &c);
                self.audit(appid, kind, "adoption", &Cause::WarmUp, None)
                    .await;
                return;
            }
        }
        let cause = match (held, slot.health().last_failure.is_some()) {
            (_, true) => Cause::Retry,
            (false, false) => Cause::WarmUp,
            (true, false) => Cause::Schedule,
        };
        let _ = self.fetch(appid, kind, &slot, false, cause).await;
    }

    /// Makes `credential` the slot's current one, renewed on the usual schedule.
    /// A transient failure of this instance's own is over then (another
    /// instance's fetch succeeded); a configuration error is kept: it may be
    /// this instance's alone (its IP not whitelisted).
    pub(super) fn keep(&self, slot: &Slot, appid: &str, kind: Kind, credential: &Credential) {
        slot.set(credential.clone(), self.refresh_at(appid, kind, credential));
        let mut health = slot.health();
        if health
            .rejected
            .as_ref()
            .is_some_and(|r| *r != credential.value)
        {
            health.rejected = None;
            slot.rejected.store(false, Ordering::Relaxed);
        }
        if health
            .last_failure
            .as_ref()
            .is_some_and(|f| f.class != FailureClass::Config)
        {
            health.last_failure = None;
            health.failures = 0;
            health.not_before = 0;
        }
    }

    /// When the refresher should next act on `slot`: the renewal, or the
    /// retry after a failure; at once for a wanted credential not yet held;
    /// `None` for one nobody wants.
    pub(super) fn due(&self, slot: &Slot) -> Option<u64> {
        let held = slot.current().is_some();
        if !held && !slot.wanted.load(Ordering::Relaxed) {
            return None;
        }
        let health = slot.health();
        Some(if held {
            health.refresh_at.max(health.not_before)
        } else {
            health.not_before
        })
    }

    /// WeChat's API client.
    pub(super) fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    /// The app's daily quotas were reset: credentials waiting for the
    /// quota's midnight are fetched again now.
    pub(super) fn quota_reset(&self, appid: &str) {
        for ((owner, _), slot) in self.inner.slots.all() {
            if owner != appid {
                continue;
            }
            {
                let mut health = slot.health();
                if health
                    .last_failure
                    .as_ref()
                    .is_some_and(|f| f.class == FailureClass::Quota)
                {
                    health.not_before = 0;
                }
            }
            slot.generation.send_modify(|g| *g += 1);
        }
    }

    /// The app whose access token `token` is: the current one, or the one it
    /// replaced, until that one's own expiry (an SDK caches a token for the
    /// `expires_in` it was given; wxgate renews ahead of that). Every value is
    /// compared, in constant time.
    pub fn appid_of_presented_token(&self, token: &str) -> Option<String> {
        let now = self.now();
        let mut found = None;
        self.inner
            .slots
            .each_of_kind(Kind::AccessToken, |appid, slot| {
                if slot.presents(token, now) && found.is_none() {
                    found = Some(appid.to_owned());
                }
            });
        found
    }

    /// Which of `owners` presents `token` as its access token (current, or
    /// the previous one until its own expiry), as
    /// [`TokenCenter::appid_of_presented_token`] but looking only at them
    /// (a platform's component token among the platforms, not every owner).
    pub fn presented_by<'a>(
        &self,
        token: &str,
        owners: impl IntoIterator<Item = &'a str>,
    ) -> Option<String> {
        let now = self.now();
        let mut found = None;
        for owner in owners {
            let presents = (self.existing_slot(owner, Kind::AccessToken))
                .is_some_and(|slot| slot.presents(token, now));
            if presents && found.is_none() {
                found = Some(owner.to_owned());
            }
        }
        found
    }

    /// Stops accepting the revoked access token whose SHA-256 is `sha256` as
    /// the app's previous one, now and when it is replaced later (another
    /// instance's revocation may arrive before its replacement does).
    pub(super) fn forget_revoked(&self, appid: &str, sha256: &str) {
        if let Some(slot) = self.existing_slot(appid, Kind::AccessToken) {
            slot.forget_revoked(sha256);
        }
    }

    /// Another instance revoked the app's access token: takes up its
    /// replacement if not done yet, and stops accepting the revoked one.
    pub(super) async fn revoked_elsewhere(&self, appid: &str, sha256: &str) {
        self.forget_revoked(appid, sha256);
        self.adopt_stored(appid, Kind::AccessToken).await;
    }

    /// The app whose current, valid access token is `token` (constant-time comparisons).
    pub fn appid_of_token(&self, token: &str) -> Option<String> {
        use subtle::ConstantTimeEq;
        let now = self.now();
        let mut found = None;
        self.inner
            .slots
            .each_of_kind(Kind::AccessToken, |appid, slot| {
                let hit = slot
                    .valid(now)
                    .is_some_and(|c| bool::from(c.value.as_bytes().ct_eq(token.as_bytes())));
                if hit && found.is_none() {
                    found = Some(appid.to_owned());
                }
            });
        found
    }

    /// Every credential's state, sorted by owner and kind, for the status page.
    pub fn status(&self) -> Vec<SlotStatus> {
        let mut all = Vec::new();
        self.for_each_status(|status| all.push(status));
        all.sort_by(|a, b| (&a.appid, a.kind).cmp(&(&b.appid, b.kind)));
        all
    }

    /// Calls `f` with every credential's state, one at a time and in no
    /// order: readiness and metrics read them without holding them all.
    pub fn for_each_status(&self, mut f: impl FnMut(SlotStatus)) {
        let today = beijing_day(self.now());
        for ((appid, kind), slot) in self.inner.slots.all() {
            let next_refresh_at = self.due(&slot);
            let current = slot.current();
            let health = slot.health();
            let rejected = health
                .rejected
                .as_ref()
                .is_some_and(|r| current.as_ref().is_some_and(|c| c.value == *r));
            f(SlotStatus {
                appid,
                kind,
                expires_at: current.as_ref().map(|c| c.expires_at),
                next_refresh_at,
                last_failure: health.last_failure.clone(),
                last_failure_at: health.last_failure.as_ref().map(|_| health.last_failure_at),
                fetches: health.fetches,
                fetches_today: if health.fetches_today.0 == today {
                    health.fetches_today.1
                } else {
                    0
                },
                fetched_at: current.as_ref().map(|c| c.fetched_at),
                value: current.map(|c| c.value),
                rejected,
                lease_held: slot.leased.load(Ordering::Relaxed),
            });
        }
        // Credentials nobody asked for yet have no slot: listed as never fetched.
        for owner in self.inner.owners.all() {
            for &kind in owner.family.kinds {
                if self.existing_slot(&owner.key, kind).is_none() {
                    f(SlotStatus::never(&owner.key, kind));
                }
            }
        }
    }

    pub(super) async fn load(&self, appid: &str, kind: Kind) -> Option<Credential> {
        match self.inner.store.load(appid, kind).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(appid, token.kind = %kind, error = %e, "store unavailable; fetching from WeChat");
                None
            }
        }
    }

    /// Takes a credential another instance stored, if it is newer than ours
    /// (called on the store's change notifications).
    pub(super) async fn adopt_stored(&self, appid: &str, kind: Kind) {
        // A credential with no slot here is loaded when first asked for.
        let Some(slot) = self.existing_slot(appid, kind) else {
            return;
        };
        // Under the flight, so a fetch finishing meanwhile is not overwritten.
        let _flight = slot.flight.lock().await;
        let current = slot.current();
        if let Some(stored) = self
            .stored_newer_than(appid, kind, current.as_ref(), false)
            .await
        {
            tracing::debug!(appid, token.kind = %kind, "adopted a credential stored by another instance");
            self.keep(&slot, appid, kind, &stored);
            self.audit(appid, kind, "adoption", &Cause::Schedule, None)
                .await;
        }
    }

    /// Runs `call` with the app's access token. If WeChat answers 40001,
    /// 40014 or 42001 and a check confirms that the token itself is refused
    /// ([`TokenCenter::replace_rejected`]), does a compare-and-refresh and
    /// runs it once more; a second rejection is reported as transient, never
    /// looped on. An answer that was about something else is returned as a
    /// transient failure, with no refresh. `by` is named in the audit log.
    pub async fn with_access_token<T, F, Fut>(
        &self,
        appid: &str,
        by: &Requester,
        call: F,
    ) -> Result<T, Failure>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let token = self
            .get(appid, Kind::AccessToken, by)
            .await
            .map_err(TokenError::into_failure)?;
        let as_transient = |mut f: Failure| {
            f.class = FailureClass::Transient;
            f
        };
        match call(token.value.clone()).await {
            Err(f) if f.class == FailureClass::TokenRejected => {
                match self.replace_rejected(appid, &token.value, by, None).await? {
                    Some(fresh) => call(fresh.value).await.map_err(as_transient),
                    None => Err(as_transient(f)),
                }
            }
            other => other,
        }
    }

    /// The latest failed fetches, newest first.
    pub fn recent_failures(&self) -> Vec<FailureRecord> {
        let recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// For a clean shutdown: waits, up to `limit`, until no fetch is under
    /// way (so every refresh lease has been released), and returns the
    /// slots' flight locks, so that no fetch starts while they are held.
    /// Stop the refreshers before dropping them.
    pub async fn quiesce(&self, limit: Duration) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut held = Vec::new();
        let slots = self.inner.slots.all();
        let all = async {
            for (_, slot) in &slots {
                held.push(slot.flight.clone().lock_owned().await);
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                "a credential fetch was still under way at shutdown; its lease expires by itself"
            );
        }
        held
    }

    /// The metrics of this instance.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The forced refreshes spent today, when `needed` more fit in the day's
    /// budget; otherwise the refusal.
    fn forced_budget(
        &self,
        appid: &str,
        kind: Kind,
        health: &Health,
        now: u64,
        needed: u32,
    ) -> Result<u32, TokenError> {
        let limit = self.forced_daily_limit(appid, kind);
        super::policy::forced_budget(health.forced_today, limit, now, needed)
    }

    /// Whether `needed` forced refreshes of the app's access token fit in
    /// today's budget now (for a revocation, which needs them all).
    pub(super) fn forced_refreshes_fit(&self, appid: &str, needed: u32) -> Result<(), TokenError> {
        let slot = self.slot(appid, Kind::AccessToken)?;
        let health = slot.health();
        self.forced_budget(appid, Kind::AccessToken, &health, self.now(), needed)
            .map(drop)
    }

    /// How many forced refreshes of this credential a day may cause.
    fn forced_daily_limit(&self, appid: &str, kind: Kind) -> u32 {
        let limit = self.inner.policy.forced_refresh_daily_limit;
        self.issuer(appid)
            .map_or(limit, |issuer| issuer.forced_daily_limit(kind, limit))
    }

    /// The owner's issuer.
    pub(super) fn issuer(&self, owner: &str) -> Option<Arc<dyn Issuer>> {
        self.inner.owners.issuer(owner)
    }
}

/// Runs `work` in its own task and waits for it; the work goes on if the waiter is dropped.
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, TokenError>> + Send + 'static,
) -> Result<T, TokenError> {
    tokio::spawn(work).await.unwrap_or_else(|e| {
        Err(TokenError::Unavailable {
            failure: Failure::transient(format!("credential task failed: {e}")),
            retry_at: 0,
        })
    })
}
