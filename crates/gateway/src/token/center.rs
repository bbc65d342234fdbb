//! [`TokenCenter`]: one fetch at a time per app and kind, served from memory,
//! persisted in the store, refreshed ahead of expiry, and careful with WeChat's
//! small quotas (DESIGN.md, "Token center semantics").

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::clock::Clock;
use crate::config::{AppConfig, WecomConfig};
use crate::metrics::{Metrics, RefreshLabels};
use crate::store::{mask, Credential, Kind, Lease, Store, StoreError};

pub use super::cause::{Cause, Requester};
use super::issuer::{AppIssuer, Issuer, WecomIssuer};
use super::lease::{Waited, LEASE_TTL};
use super::policy::beijing_day;
pub use super::policy::Policy;
pub use super::slot::SlotStatus;
use super::slot::{Health, Slot};
use crate::upstream::{Failure, FailureClass, FailureRecord, Fetched, Upstream};

/// How many failures the status page lists.
const RECENT_FAILURES: usize = 20;
/// Why no credential could be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The appid is not configured.
    #[error("unknown appid {0}")]
    UnknownApp(String),
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

/// The token center. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TokenCenter {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    apps: HashMap<String, Arc<AppConfig>>,
    /// Each owner's issuer: its family's rules and how to fetch.
    pub(super) issuers: HashMap<String, Arc<dyn Issuer>>,
    /// WeCom apps by (corpid, name) and (corpid, agentid): their owner id.
    wecom_owners: HashMap<(String, String), String>,
    /// WeCom apps by owner id.
    wecom_apps: HashMap<String, Arc<WecomConfig>>,
    pub(super) slots: HashMap<(String, Kind), Slot>,
    pub(super) store: Arc<dyn Store>,
    pub(super) upstream: Upstream,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) policy: Policy,
    pub(super) metrics: Arc<Metrics>,
    /// The latest failures, newest first.
    recent: Mutex<VecDeque<FailureRecord>>,
    /// The last write the store refused (when, why), until one succeeds.
    store_write_error: Mutex<Option<(u64, String)>>,
}

impl TokenCenter {
    /// A token center for `apps`.
    pub fn new(
        apps: Vec<Arc<AppConfig>>,
        wecom: Vec<Arc<WecomConfig>>,
        store: Arc<dyn Store>,
        upstream: Upstream,
        clock: Arc<dyn Clock>,
        policy: Policy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut issuers: HashMap<String, Arc<dyn Issuer>> = apps
            .iter()
            .map(|a| {
                let issuer: Arc<dyn Issuer> = Arc::new(AppIssuer::new(a.clone()));
                (a.appid.clone(), issuer)
            })
            .collect();
        let mut wecom_owners = HashMap::new();
        let mut wecom_apps = HashMap::new();
        for w in wecom {
            wecom_apps.insert(w.owner(), w.clone());
            let owner = w.owner();
            wecom_owners.insert((w.corpid.clone(), w.name.clone()), owner.clone());
            if let Some(agentid) = w.agentid {
                wecom_owners.insert((w.corpid.clone(), agentid.to_string()), owner.clone());
            }
            issuers.insert(owner, Arc::new(WecomIssuer::new(w)));
        }
        let slots = issuers
            .iter()
            .flat_map(|(owner, issuer)| {
                issuer
                    .family()
                    .kinds
                    .iter()
                    .map(|&k| ((owner.clone(), k), Slot::new(issuer.warm(k))))
            })
            .collect();
        let apps = apps.into_iter().map(|a| (a.appid.clone(), a)).collect();
        Self {
            inner: Arc::new(Inner {
                apps,
                issuers,
                wecom_owners,
                wecom_apps,
                slots,
                store,
                upstream,
                clock,
                policy,
                metrics,
                recent: Mutex::new(VecDeque::new()),
                store_write_error: Mutex::new(None),
            }),
        }
    }

    /// The app's configuration.
    pub fn app(&self, appid: &str) -> Option<&Arc<AppConfig>> {
        self.inner.apps.get(appid)
    }

    /// The owner id (`corpid/name`) of the WeCom app `agent` (its name or
    /// agentid) of `corpid`.
    pub fn wecom_owner(&self, corpid: &str, agent: &str) -> Option<&str> {
        self.inner
            .wecom_owners
            .get(&(corpid.to_owned(), agent.to_owned()))
            .map(String::as_str)
    }

    /// Every configured WeCom app's owner id (`corpid/name`).
    pub fn wecom_owners(&self) -> impl Iterator<Item = &str> {
        self.inner.wecom_apps.keys().map(String::as_str)
    }

    /// The WeCom apps of `corpid`.
    pub fn wecom_apps_of<'a>(
        &'a self,
        corpid: &'a str,
    ) -> impl Iterator<Item = &'a Arc<WecomConfig>> + 'a {
        self.inner
            .wecom_apps
            .values()
            .filter(move |w| w.corpid == corpid)
    }

    /// The WeCom app whose owner id is `owner`.
    pub fn wecom_app(&self, owner: &str) -> Option<&Arc<WecomConfig>> {
        self.inner.wecom_apps.get(owner)
    }

    /// Every configured appid.
    pub fn appids(&self) -> impl Iterator<Item = &str> {
        self.inner.apps.keys().map(String::as_str)
    }

    /// The store behind the center.
    pub fn store(&self) -> &Arc<dyn Store> {
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
    fn store_written(&self, result: Result<(), &StoreError>) {
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
    pub fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    pub(super) fn slot(&self, appid: &str, kind: Kind) -> Result<&Slot, TokenError> {
        if let Some(slot) = self.inner.slots.get(&(appid.to_owned(), kind)) {
            return Ok(slot);
        }
        Err(match self.issuer(appid) {
            Some(issuer) => TokenError::NotIssued {
                owner: appid.to_owned(),
                kind,
                why: issuer.family().lacks,
            },
            None => TokenError::UnknownApp(appid.to_owned()),
        })
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
            return Ok(c);
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
            self.keep(slot, appid, kind, &c);
            self.audit(appid, kind, "adoption", &cause, None).await;
            return Ok(c);
        }
        self.fetch(appid, kind, slot, false, cause).await
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
                self.keep(slot, appid, kind, &c);
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
        self.fetch(appid, kind, slot, true, cause).await
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
        if self.due(slot).is_none_or(|due| due > now) {
            return;
        }
        let held = slot.current().is_some();
        if !held {
            if let Some(c) = self.load(appid, kind).await.filter(|c| c.is_valid(now)) {
                self.keep(slot, appid, kind, &c);
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
        let _ = self.fetch(appid, kind, slot, false, cause).await;
    }

    /// Makes `credential` the slot's current one, renewed on the usual schedule.
    /// A transient failure of this instance's own is over then (another
    /// instance's fetch succeeded); a configuration error is kept: it may be
    /// this instance's alone (its IP not whitelisted).
    pub(super) fn keep(&self, slot: &Slot, appid: &str, kind: Kind, credential: &Credential) {
        slot.set(credential.clone(), self.refresh_at(appid, kind, credential));
        let mut health = slot.health();
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
        for ((owner, _), slot) in &self.inner.slots {
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
        use subtle::ConstantTimeEq;
        let now = self.now();
        let matches = |c: Option<Credential>| {
            c.filter(|c| c.is_valid(now))
                .is_some_and(|c| bool::from(c.value.as_bytes().ct_eq(token.as_bytes())))
        };
        let mut found = None;
        for ((appid, kind), slot) in &self.inner.slots {
            if *kind != Kind::AccessToken {
                continue;
            }
            let previous = slot
                .previous
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let hit = matches(slot.current()) | matches(previous);
            if hit && found.is_none() {
                found = Some(appid.clone());
            }
        }
        found
    }

    /// Stops accepting the app's previous access token (after a revocation).
    pub(super) fn forget_previous(&self, appid: &str) {
        if let Some(slot) = self.inner.slots.get(&(appid.to_owned(), Kind::AccessToken)) {
            *slot.previous.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// The app whose current, valid access token is `token` (constant-time comparisons).
    pub fn appid_of_token(&self, token: &str) -> Option<String> {
        use subtle::ConstantTimeEq;
        let now = self.now();
        self.inner
            .slots
            .iter()
            .filter(|((_, kind), _)| *kind == Kind::AccessToken)
            .find(|(_, slot)| {
                slot.valid(now)
                    .is_some_and(|c| bool::from(c.value.as_bytes().ct_eq(token.as_bytes())))
            })
            .map(|((appid, _), _)| appid.clone())
    }

    /// Every credential's state, for readiness, metrics and the status page.
    pub fn status(&self) -> Vec<SlotStatus> {
        let mut all: Vec<SlotStatus> = self
            .inner
            .slots
            .iter()
            .map(|((appid, kind), slot)| {
                let next_refresh_at = self.due(slot);
                let current = slot.current();
                let health = slot.health();
                let today = beijing_day(self.now());
                SlotStatus {
                    appid: appid.clone(),
                    kind: *kind,
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
                    lease_held: slot.leased.load(Ordering::Relaxed),
                }
            })
            .collect();
        all.sort_by(|a, b| (&a.appid, a.kind).cmp(&(&b.appid, b.kind)));
        all
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

    /// Fetches from WeChat and stores; the caller holds the slot's flight.
    async fn fetch(
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
        let (result, unsaved) = self
            .fetch_leased(
                appid,
                kind,
                slot,
                issuer.as_ref(),
                previous.as_ref(),
                forced,
                lease.as_ref(),
                cause,
            )
            .await;
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
    #[allow(clippy::too_many_arguments)]
    async fn fetch_leased(
        &self,
        appid: &str,
        kind: Kind,
        slot: &Slot,
        issuer: &dyn Issuer,
        previous: Option<&Credential>,
        forced: bool,
        lease: Option<&Lease>,
        cause: Cause,
    ) -> (Result<Credential, TokenError>, bool) {
        // Another instance may have stored a newer credential just before we got the lease.
        if lease.is_some() {
            if let Some(stored) = self.stored_newer_than(appid, kind, previous, forced).await {
                self.keep(slot, appid, kind, &stored);
                return (Ok(stored), false);
            }
        }
        let mut unsaved = false;
        let upstream = &self.inner.upstream;
        let result = if issuer.needs_access_token(kind) {
            self.with_access_token(appid, &cause.requester(), |token| async move {
                issuer.fetch(upstream, kind, forced, Some(&token)).await
            })
            .await
        } else {
            issuer.fetch(upstream, kind, forced, None).await
        };
        let now = self.now();
        self.audit(appid, kind, "fetch", &cause, result.as_ref().err())
            .await;
        match result {
            Ok(Fetched { value, expires_in }) => {
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
                    // WeChat repeated the token: ask again shortly, not in a loop.
                    refresh_at = refresh_at.max(now + 10);
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
                (Ok(credential), unsaved)
            }
            Err(failure) => {
                self.count_refresh(appid, kind, failure.class.as_str());
                self.record_failure(appid, kind, &failure, now);
                let retry_at = self.on_failure(slot, &failure, now);
                let still_valid = previous.is_some_and(|p| p.is_valid(now));
                log_failure(appid, kind, &failure, retry_at, still_valid);
                slot.generation.send_modify(|g| *g += 1);
                (Err(TokenError::Unavailable { failure, retry_at }), false)
            }
        }
    }

    /// Takes a credential another instance stored, if it is newer than ours
    /// (called on the store's change notifications).
    pub(super) async fn adopt_stored(&self, appid: &str, kind: Kind) {
        let Ok(slot) = self.slot(appid, kind) else {
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
            self.keep(slot, appid, kind, &stored);
            self.audit(appid, kind, "adoption", &Cause::Schedule, None)
                .await;
        }
    }

    /// Runs `call` with the app's access token. If WeChat rejects the token
    /// (40001, 40014, 42001), does a compare-and-refresh and runs it once more;
    /// a second rejection is reported as transient, never looped on. `by` is
    /// named in the audit log.
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
        let as_failure = |e: TokenError| match e {
            TokenError::Unavailable { failure, .. } => failure,
            other => Failure::transient(other.to_string()),
        };
        let token = self
            .get(appid, Kind::AccessToken, by)
            .await
            .map_err(as_failure)?;
        match call(token.value.clone()).await {
            Err(f) if f.class == FailureClass::TokenRejected => {
                let fresh = self
                    .refresh(
                        appid,
                        Kind::AccessToken,
                        &token.value,
                        Cause::Rejected(by.clone()),
                    )
                    .await
                    .map_err(as_failure)?;
                call(fresh.value).await.map_err(|mut f| {
                    f.class = FailureClass::Transient;
                    f
                })
            }
            other => other,
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

    /// The latest failed fetches, newest first.
    pub fn recent_failures(&self) -> Vec<FailureRecord> {
        let recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// For a clean shutdown: waits, up to `limit`, until no fetch is under
    /// way (so every refresh lease has been released), and returns the
    /// slots' flight locks, so that no fetch starts while they are held.
    /// Stop the refreshers before dropping them.
    pub async fn quiesce(&self, limit: Duration) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut held = Vec::new();
        let all = async {
            for slot in self.inner.slots.values() {
                held.push(slot.flight.lock().await);
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
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
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
    fn issuer(&self, owner: &str) -> Option<&Arc<dyn Issuer>> {
        self.inner.issuers.get(owner)
    }

    /// When to renew, by the owner's family rules (see [`Issuer::renew_ahead`]).
    fn refresh_at(&self, appid: &str, kind: Kind, credential: &Credential) -> u64 {
        let ahead = crate::config::DEFAULT_REFRESH_AHEAD_SECS;
        let (ahead, spread) = self
            .issuer(appid)
            .map_or((ahead, ahead / 10), |issuer| issuer.renew_ahead(kind));
        let jitter = (self.inner.policy.jitter)(spread);
        super::policy::renew_at(credential, ahead, jitter)
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

fn log_failure(appid: &str, kind: Kind, failure: &Failure, retry_at: u64, still_valid: bool) {
    let hint = failure.hint.as_deref().unwrap_or("");
    let errcode = failure.errcode.unwrap_or(0);
    match (failure.class, still_valid) {
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
