//! [`TokenCenter`]: one fetch at a time per app and kind, served from memory,
//! persisted in the store, refreshed ahead of expiry, and careful with WeChat's
//! small quotas (DESIGN.md, "Token center semantics").

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::clock::Clock;
use crate::config::{AppConfig, TokenApi};
use crate::metrics::{Metrics, RefreshLabels};
use crate::status::FailureRecord;
use crate::store::{mask, AuditEntry, Credential, Kind, Lease, Store, StoreError};

use super::upstream::{Failure, FailureClass, Fetched, Upstream};

/// stable_token hands out the next token only in the last 300 s of the current
/// one (§4.2): renew between 300 and 280 s before expiry, not earlier.
const STABLE_RENEW_AHEAD: u64 = 280;
const STABLE_RENEW_SPREAD: u64 = 20;
/// How long a refresh lease lasts across instances: longer than the work done
/// under it (a call to WeChat is at most `upstream.timeout_ms`, capped at 10 s;
/// a ticket may first need the access token).
const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often an instance waiting on another instance's refresh looks at the store.
const LEASE_POLL: Duration = Duration::from_millis(50);
/// How often it also tries to take the lease, in case the holder is gone.
const LEASE_RETRY: Duration = Duration::from_secs(1);
/// WeChat's quotas reset at midnight Beijing time (UTC+8).
const BEIJING_OFFSET: u64 = 8 * 3600;
/// How many failures the status page lists.
const RECENT_FAILURES: usize = 20;
/// Fewest seconds between two scheduled fetches of one credential, whatever
/// lifetime WeChat announces: at most 1,440 a day, under the classic token's
/// 2,000-a-day quota.
const MIN_REFETCH_SECS: u64 = 60;
/// WeChat's own limit on forced stable_token refreshes a day (§4.2).
const STABLE_FORCED_PER_DAY: u32 = 20;

/// Why a credential was fetched or taken up: the audit log's `cause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The first fetch at start.
    WarmUp,
    /// The renewal ahead of expiry.
    Schedule,
    /// A retry after a failure, by the background task.
    Retry,
    /// A request found no valid credential.
    Request,
    /// A business server reported the current one rejected.
    CompareAndRefresh,
    /// The probe found the current one rejected.
    Probe,
    /// An operator revoked it.
    Admin,
}

impl Cause {
    /// `warm_up`, `schedule`, `retry`, `request`, `compare_and_refresh`, `probe` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::WarmUp => "warm_up",
            Cause::Schedule => "schedule",
            Cause::Retry => "retry",
            Cause::Request => "request",
            Cause::CompareAndRefresh => "compare_and_refresh",
            Cause::Probe => "probe",
            Cause::Admin => "admin",
        }
    }
}

/// How waiting on another instance's refresh ended.
enum Waited {
    /// It stored a credential.
    Stored(Credential),
    /// It let the lease go without storing one; now this instance holds it.
    Leased(Lease),
}

/// Tunables of the refresh policy; [`Policy::default`] is production's.
#[derive(Clone)]
pub struct Policy {
    /// Extra seconds to refresh early, given the maximum (`refresh_ahead / 10`);
    /// spreads refreshes of many apps and instances. Zero in tests.
    pub jitter: Arc<dyn Fn(u64) -> u64 + Send + Sync>,
    /// Minimum seconds between forced refreshes of one credential (WeChat: 30 for stable tokens).
    pub forced_refresh_interval: u64,
    /// Most forced refreshes of one credential a day (Beijing time); stable
    /// access tokens get at most WeChat's own 20.
    pub forced_refresh_daily_limit: u32,
    /// Pause after a configuration error (wrong secret, whitelist…), seconds.
    pub config_error_pause: u64,
    /// Longest backoff after transient failures, seconds.
    pub max_backoff: u64,
    /// How often each current access token is checked with a cheap call,
    /// seconds; 0: never (`[upstream] probe_interval_secs`).
    pub probe_interval: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            jitter: Arc::new(|max| {
                if max == 0 {
                    0
                } else {
                    rand::random_range(0..=max)
                }
            }),
            forced_refresh_interval: 30,
            forced_refresh_daily_limit: 100,
            config_error_pause: 300,
            max_backoff: 60,
            probe_interval: 60,
        }
    }
}

impl Policy {
    /// The default policy without jitter, for deterministic tests.
    pub fn without_jitter() -> Self {
        Self {
            jitter: Arc::new(|_| 0),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("forced_refresh_interval", &self.forced_refresh_interval)
            .field(
                "forced_refresh_daily_limit",
                &self.forced_refresh_daily_limit,
            )
            .field("config_error_pause", &self.config_error_pause)
            .field("max_backoff", &self.max_backoff)
            .field("probe_interval", &self.probe_interval)
            .finish_non_exhaustive()
    }
}

/// Why no credential could be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The appid is not configured.
    #[error("unknown appid {0}")]
    UnknownApp(String),
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

/// What the operations surface shows about one credential.
#[derive(Debug, Clone)]
pub struct SlotStatus {
    /// The app.
    pub appid: String,
    /// The credential.
    pub kind: Kind,
    /// Expiry of the credential in memory, if any.
    pub expires_at: Option<u64>,
    /// When the refresher acts next (renewal or retry), if a credential is held.
    pub next_refresh_at: Option<u64>,
    /// The last failure, cleared by a success.
    pub last_failure: Option<Failure>,
    /// When the last failure happened.
    pub last_failure_at: Option<u64>,
    /// Fetches from WeChat by this instance.
    pub fetches: u64,
    /// Fetches from WeChat by this instance since 00:00 Beijing time.
    pub fetches_today: u64,
    /// The credential in memory (for masked display only).
    pub value: Option<String>,
    /// When it was fetched (by whichever instance).
    pub fetched_at: Option<u64>,
    /// Whether this instance holds the refresh lease right now.
    pub lease_held: bool,
}

#[derive(Debug, Default, Clone)]
struct Health {
    last_failure: Option<Failure>,
    last_failure_at: u64,
    /// (Beijing day number, fetches that day).
    fetches_today: (u64, u64),
    failures: u32,
    /// No call to WeChat before this time (backoff, config pause, quota).
    not_before: u64,
    last_forced: Option<u64>,
    /// (Beijing day number, forced refreshes that day).
    forced_today: (u64, u32),
    /// When to renew the current credential (expiry − refresh_ahead − jitter).
    refresh_at: u64,
    fetches: u64,
}

#[derive(Debug)]
pub(super) struct Slot {
    current: RwLock<Option<Credential>>,
    /// The value `current` replaced: the façade still accepts it from a caller
    /// until its own expiry, the lifetime wxgate announced when handing it out.
    previous: RwLock<Option<Credential>>,
    /// Held while fetching: the single flight.
    flight: tokio::sync::Mutex<()>,
    /// Set while this instance holds the refresh lease.
    leased: std::sync::atomic::AtomicBool,
    /// Kept warm by the refresher: fetched at start and after any failure,
    /// without waiting for a client. Access tokens always, JS-SDK tickets of
    /// apps with `js_domains`, any other credential once someone asked for it.
    wanted: std::sync::atomic::AtomicBool,
    health: Mutex<Health>,
    /// Bumped whenever the credential or its schedule changes; wakes the refresher.
    pub(super) generation: tokio::sync::watch::Sender<u64>,
}

impl Slot {
    fn new(wanted: bool) -> Self {
        Self {
            current: RwLock::new(None),
            previous: RwLock::new(None),
            flight: tokio::sync::Mutex::new(()),
            leased: std::sync::atomic::AtomicBool::new(false),
            wanted: std::sync::atomic::AtomicBool::new(wanted),
            health: Mutex::new(Health::default()),
            generation: tokio::sync::watch::Sender::new(0),
        }
    }

    fn current(&self) -> Option<Credential> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn valid(&self, now: u64) -> Option<Credential> {
        self.current().filter(|c| c.is_valid(now))
    }

    /// Marks the credential wanted, and wakes the refresher if it was not.
    fn want(&self) {
        if !self.wanted.swap(true, Ordering::Relaxed) {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, credential: Credential, refresh_at: u64) {
        let replaced = self
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(credential.clone());
        if let Some(old) = replaced.filter(|old| old.value != credential.value) {
            *self.previous.write().unwrap_or_else(|p| p.into_inner()) = Some(old);
        }
        self.health().refresh_at = refresh_at;
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The token center. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TokenCenter {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    apps: HashMap<String, Arc<AppConfig>>,
    pub(super) slots: HashMap<(String, Kind), Slot>,
    store: Arc<dyn Store>,
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
        store: Arc<dyn Store>,
        upstream: Upstream,
        clock: Arc<dyn Clock>,
        policy: Policy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = apps
            .iter()
            .flat_map(|a| Kind::ALL.map(|k| ((a.appid.clone(), k), Slot::new(warm(a, k)))))
            .collect();
        let apps = apps.into_iter().map(|a| (a.appid.clone(), a)).collect();
        Self {
            inner: Arc::new(Inner {
                apps,
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

    /// Writes one audit entry (a failure to write it is logged, not fatal).
    pub(super) async fn audit(
        &self,
        appid: &str,
        kind: Kind,
        event: &str,
        cause: Cause,
        failure: Option<&Failure>,
    ) {
        let entry = AuditEntry {
            at: self.now(),
            appid: appid.to_owned(),
            kind: kind.as_str().to_owned(),
            event: event.to_owned(),
            cause: cause.as_str().to_owned(),
            instance: crate::instance_name().to_owned(),
            result: failure.map_or("ok", |f| f.class.as_str()).to_owned(),
            errcode: failure.and_then(|f| f.errcode),
            rid: failure.and_then(|f| f.rid()).map(str::to_owned),
        };
        if let Err(e) = self.inner.store.record(&entry).await {
            tracing::warn!(appid, token.kind = %kind, error = %e, "could not write the audit log");
        }
    }

    /// The audit log, newest first.
    pub async fn audit_log(
        &self,
        appid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.store.audit(appid, limit).await
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
        self.inner
            .slots
            .get(&(appid.to_owned(), kind))
            .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))
    }

    /// A valid credential: from memory, else from the store, else from WeChat.
    /// Concurrent callers share one fetch.
    pub async fn get(&self, appid: &str, kind: Kind) -> Result<Credential, TokenError> {
        let slot = self.slot(appid, kind)?;
        if let Some(c) = slot.valid(self.now()) {
            return Ok(c);
        }
        self.get_detached(appid.to_owned(), kind).await
    }

    /// The slow path in its own task. Boxed: a ticket fetch calls back into
    /// `get` for the access token, and the concrete type keeps that recursion `Send`.
    fn get_detached(
        &self,
        appid: String,
        kind: Kind,
    ) -> BoxFuture<'static, Result<Credential, TokenError>> {
        let this = self.clone();
        Box::pin(detached(async move { this.get_slow(&appid, kind).await }))
    }

    /// The slow path of [`TokenCenter::get`], in its own task: a fetch from
    /// WeChat completes and is stored even if the request that started it goes away.
    async fn get_slow(&self, appid: &str, kind: Kind) -> Result<Credential, TokenError> {
        let slot = self.slot(appid, kind)?;
        slot.want();
        let _flight = slot.flight.lock().await;
        let now = self.now();
        if let Some(c) = slot.valid(now) {
            return Ok(c);
        }
        if let Some(c) = self.load(appid, kind).await.filter(|c| c.is_valid(now)) {
            self.keep(slot, appid, kind, &c);
            self.audit(appid, kind, "adoption", Cause::Request, None)
                .await;
            return Ok(c);
        }
        self.fetch(appid, kind, slot, false, Cause::Request).await
    }

    /// Compare-and-refresh: a business server saw `invalid` rejected. Fetches a
    /// new credential only if `invalid` is still the current one; otherwise
    /// returns the current one. Forced refreshes are rate-limited per credential.
    pub async fn refresh(
        &self,
        appid: &str,
        kind: Kind,
        invalid: &str,
    ) -> Result<Credential, TokenError> {
        self.refresh_because(appid, kind, invalid, Cause::CompareAndRefresh)
            .await
    }

    /// [`TokenCenter::refresh`], for `cause` in the audit log.
    pub(super) async fn refresh_because(
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
                self.audit(appid, kind, "adoption", Cause::WarmUp, None)
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
    fn keep(&self, slot: &Slot, appid: &str, kind: Kind, credential: &Credential) {
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

    async fn load(&self, appid: &str, kind: Kind) -> Option<Credential> {
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
        let app = self
            .app(appid)
            .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?;
        {
            let health = slot.health();
            if self.now() < health.not_before {
                let failure = health.last_failure.clone().unwrap_or_else(|| Failure {
                    class: FailureClass::Transient,
                    errcode: None,
                    message: "waiting before the next call to WeChat".into(),
                    hint: None,
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
                let failure = Failure {
                    class: FailureClass::Transient,
                    errcode: None,
                    message: "store unavailable; serving the current credential".into(),
                    hint: Some("check the store (Redis)".into()),
                };
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
                app,
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
        app: &AppConfig,
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
        let result = match kind {
            Kind::AccessToken => self.inner.upstream.access_token(app, forced).await,
            _ => self.fetch_ticket(appid, kind).await,
        };
        let now = self.now();
        self.audit(appid, kind, "fetch", cause, result.as_ref().err())
            .await;
        match result {
            Ok(Fetched { value, expires_in }) => {
                let mut credential = Credential {
                    value,
                    expires_at: now + expires_in,
                    fetched_at: now,
                };
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
                if previous.is_some_and(|p| p.value == credential.value) {
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

    /// A valid stored credential that replaces `previous`: a different value,
    /// or (unless forced, when the value itself was reported bad) a later fetch.
    async fn stored_newer_than(
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
    async fn await_other_instance(
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
        let failure = Failure {
            class: FailureClass::Transient,
            errcode: None,
            message: "another instance holds the refresh lease and stored nothing new".into(),
            hint: None,
        };
        let retry_at = self.on_failure(slot, &failure, self.now());
        Err(TokenError::Unavailable { failure, retry_at })
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
            self.audit(appid, kind, "adoption", Cause::Schedule, None)
                .await;
        }
    }

    async fn fetch_ticket(&self, appid: &str, kind: Kind) -> Result<Fetched, Failure> {
        let upstream = &self.inner.upstream;
        self.with_access_token(appid, |token| async move {
            upstream.ticket(appid, &token, kind).await
        })
        .await
    }

    /// Runs `call` with the app's access token. If WeChat rejects the token
    /// (40001, 40014, 42001), does a compare-and-refresh and runs it once more;
    /// a second rejection is reported as transient, never looped on.
    pub async fn with_access_token<T, F, Fut>(&self, appid: &str, call: F) -> Result<T, Failure>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let as_failure = |e: TokenError| match e {
            TokenError::Unavailable { failure, .. } => failure,
            other => Failure {
                class: FailureClass::Transient,
                errcode: None,
                message: other.to_string(),
                hint: None,
            },
        };
        let token = self
            .get(appid, Kind::AccessToken)
            .await
            .map_err(as_failure)?;
        match call(token.value.clone()).await {
            Err(f) if f.class == FailureClass::TokenRejected => {
                let fresh = self
                    .refresh(appid, Kind::AccessToken, &token.value)
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
    fn on_failure(&self, slot: &Slot, failure: &Failure, now: u64) -> u64 {
        let policy = &self.inner.policy;
        let mut health = slot.health();
        health.failures += 1;
        health.last_failure = Some(failure.clone());
        health.last_failure_at = now;
        health.not_before = match failure.class {
            FailureClass::Transient | FailureClass::TokenRejected => {
                let backoff = (1u64 << health.failures.min(16)).min(policy.max_backoff);
                now + backoff / 2 + (policy.jitter)(backoff / 2)
            }
            FailureClass::Config => now + policy.config_error_pause,
            FailureClass::Quota => next_beijing_midnight(now),
        };
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
        let spent = match health.forced_today {
            (day, n) if day == beijing_day(now) => n,
            _ => 0,
        };
        if spent + needed > limit {
            return Err(TokenError::RateLimited {
                retry_at: next_beijing_midnight(now),
                daily_limit: Some(limit),
            });
        }
        Ok(spent)
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
        match self.app(appid).map(|a| a.token_api) {
            Some(TokenApi::Stable) if kind == Kind::AccessToken => limit.min(STABLE_FORCED_PER_DAY),
            _ => limit,
        }
    }

    /// When to renew: `refresh_ahead` (plus up to a tenth of it in jitter)
    /// before expiry; for stable tokens 280–300 s before, when WeChat rolls them.
    fn refresh_at(&self, appid: &str, kind: Kind, credential: &Credential) -> u64 {
        let app = self.app(appid);
        let (ahead, spread) = match app.map(|a| a.token_api) {
            Some(TokenApi::Stable) if kind == Kind::AccessToken => {
                (STABLE_RENEW_AHEAD, STABLE_RENEW_SPREAD)
            }
            _ => {
                let ahead = app.map_or(crate::config::DEFAULT_REFRESH_AHEAD_SECS, |a| {
                    a.refresh_ahead_secs
                });
                (ahead, ahead / 10)
            }
        };
        let jitter = (self.inner.policy.jitter)(spread);
        // Never before half the lifetime, nor sooner than MIN_REFETCH_SECS after
        // the fetch: a short `expires_in` must not turn the refresher into a
        // loop that burns the daily quota.
        let half_life =
            credential.fetched_at + credential.expires_at.saturating_sub(credential.fetched_at) / 2;
        credential
            .expires_at
            .saturating_sub(ahead + jitter)
            .max(half_life)
            .max(credential.fetched_at + MIN_REFETCH_SECS)
    }
}

/// Whether a credential is kept warm from the start (see `Slot::wanted`).
fn warm(app: &AppConfig, kind: Kind) -> bool {
    match kind {
        Kind::AccessToken => true,
        Kind::JsapiTicket => !app.js_domains.is_empty(),
        Kind::WxCardTicket => false,
    }
}

/// Runs `work` in its own task and waits for it; the work goes on if the waiter is dropped.
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, TokenError>> + Send + 'static,
) -> Result<T, TokenError> {
    tokio::spawn(work).await.unwrap_or_else(|e| {
        Err(TokenError::Unavailable {
            failure: Failure {
                class: FailureClass::Transient,
                errcode: None,
                message: format!("credential task failed: {e}"),
                hint: None,
            },
            retry_at: 0,
        })
    })
}

/// Days since the epoch, in Beijing time (where WeChat's quotas reset).
fn beijing_day(now: u64) -> u64 {
    (now + BEIJING_OFFSET) / 86_400
}

fn next_beijing_midnight(now: u64) -> u64 {
    let local = now + BEIJING_OFFSET;
    local - local % 86_400 + 86_400 - BEIJING_OFFSET
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

#[cfg(test)]
mod tests {
    use super::next_beijing_midnight;

    #[test]
    fn quota_resets_at_beijing_midnight() {
        // 2024-01-01 15:59:59 UTC is 23:59:59 in Beijing.
        let before = 1_704_124_799;
        assert_eq!(next_beijing_midnight(before), before + 1);
        assert_eq!(next_beijing_midnight(before + 1), before + 1 + 86_400);
    }
}
