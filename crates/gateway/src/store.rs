//! Where credentials persist: `memory` (tests), `sqlite` (the embedded default)
//! and `redis` (several instances). The token center keeps its own
//! in-process copy; the store is what survives a restart. It also keeps
//! small shared state: push dedupe, tallies, notes, and user sign-in's
//! one-time exchanges ([`Store::claim_exchange`]).

mod memory;
mod redis;
mod sqlite;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use self::redis::{RedisOptions, RedisStore, RedisTls, RedisTopology};
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// The three credentials kept per app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The global `access_token`.
    AccessToken,
    /// The JS-SDK `jsapi_ticket`.
    JsapiTicket,
    /// The card (卡券) `api_ticket`, `type=wx_card`.
    WxCardTicket,
    /// A WeCom app's `agent_config` ticket (`wx.agentConfig`).
    AgentConfigTicket,
    /// An Open Platform component's `component_verify_ticket`, pushed by
    /// WeChat every 10 minutes (its access token is the `component_access_token`).
    VerifyTicket,
    /// An Open Platform authorizer's `authorizer_refresh_token`: what its
    /// access token is fetched with, replaced whenever WeChat returns a new one.
    RefreshToken,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::AccessToken,
        Kind::JsapiTicket,
        Kind::WxCardTicket,
        Kind::AgentConfigTicket,
        Kind::VerifyTicket,
        Kind::RefreshToken,
    ];

    /// Whether business servers may be handed it: not the credentials a
    /// center keeps only to fetch others with (a verify ticket, a refresh
    /// token), which in another hand would let it fetch, and so replace,
    /// the credentials wxgate serves.
    pub fn is_served(self) -> bool {
        !matches!(self, Kind::VerifyTicket | Kind::RefreshToken)
    }

    /// `access_token`, `jsapi_ticket` or `wx_card_ticket`: the name in URLs, keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AccessToken => "access_token",
            Kind::JsapiTicket => "jsapi_ticket",
            Kind::WxCardTicket => "wx_card_ticket",
            Kind::AgentConfigTicket => "agent_config_ticket",
            Kind::VerifyTicket => "component_verify_ticket",
            Kind::RefreshToken => "authorizer_refresh_token",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown credential kind {s:?}"))
    }
}

/// A credential and its lifetime.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The opaque value (a token or a ticket).
    pub value: String,
    /// When WeChat stops accepting it, Unix seconds.
    pub expires_at: u64,
    /// When it was fetched, Unix seconds.
    pub fetched_at: u64,
}

impl Credential {
    /// Whether it still works at `now`.
    pub fn is_valid(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// Seconds of life left at `now`.
    pub fn expires_in(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

/// Shows a credential without its value: the first 6 characters and the length.
pub fn mask(value: &str) -> String {
    let head: String = value.chars().take(6).collect();
    format!("{head}…({} chars)", value.chars().count())
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("value", &mask(&self.value))
            .field("expires_at", &self.expires_at)
            .field("fetched_at", &self.fetched_at)
            .finish()
    }
}

/// How many audit entries a store keeps; older ones are dropped.
pub const AUDIT_KEEP: usize = 10_000;

/// One line of the audit log: something that happened to a credential.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// When, Unix seconds.
    pub at: u64,
    /// The app.
    pub appid: String,
    /// `access_token`, `jsapi_ticket` or `wx_card_ticket`.
    pub kind: String,
    /// `fetch` (a call to WeChat), `adoption` (a value stored by another
    /// instance or a previous run taken up) or `probe_rejection`.
    pub event: String,
    /// Why, and who asked: `warm_up`, `schedule`, `retry`, `probe`, `admin`,
    /// `request:client:NAME`, `compare_and_refresh:sdk`, `proxy_40001:client:NAME`…
    /// (the token center's `Cause::describe`).
    pub cause: String,
    /// The instance (`host:pid`).
    pub instance: String,
    /// `ok`, or the failure class (`transient`, `config`, `quota`, `token_rejected`).
    pub result: String,
    /// WeChat's errcode, when it answered with one.
    pub errcode: Option<i64>,
    /// WeChat's `rid` (request id), for its support and `openapi/rid/get`.
    pub rid: Option<String>,
}

/// How a shared store is reached and what its connection has seen, as
/// `/readyz`, `/metrics` and `/admin` show it (Redis only).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreTopology {
    /// `primary`, `sentinel` or `cluster`.
    pub mode: &'static str,
    /// What the node written to says it is (`ROLE`: `master`, or `slave`
    /// when the URL names a replica); for a cluster its state (`CLUSTER
    /// INFO`: `ok` or `fail`). `None` when it did not answer.
    pub role: Option<String>,
    /// The primary's address (Sentinel: the one it named last).
    pub primary: Option<String>,
    /// Primaries replaced since this instance started (Sentinel named another one).
    pub failovers: u64,
    /// Connections regained after a loss since this instance started.
    pub reconnects: u64,
    /// Seconds since the last of them.
    pub last_reconnect_secs_ago: Option<u64>,
}

/// A store backend failed.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// The right to refresh one credential, across every instance sharing a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it (random per lease).
    pub owner: String,
    /// Fencing token: grows with every lease; a write with an older one is refused.
    pub fence: u64,
}

/// What the shared dedupe knows about a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushClaim {
    /// This instance is the first to handle it.
    First,
    /// Another instance is handling it.
    Pending,
    /// Another instance answered it: the reply XML, or `None` for `success`.
    Answered(Option<String>),
}

/// What the store knows about a one-time exchange (a sign-in code traded
/// with WeChat once, its answer kept for the code's lifetime).
#[derive(Clone, PartialEq, Eq)]
pub enum ExchangeClaim {
    /// The caller is the first: it makes the call and records the answer.
    First,
    /// Another caller (another instance) is making the call.
    Pending,
    /// The recorded answer.
    Answered(String),
}

impl fmt::Debug for ExchangeClaim {
    /// An answer holds a user's tokens or session key: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeClaim::First => f.write_str("First"),
            ExchangeClaim::Pending => f.write_str("Pending"),
            ExchangeClaim::Answered(a) => write!(f, "Answered(<{} bytes>)", a.len()),
        }
    }
}

/// How an exchange's state is written as one string (the Redis backend):
/// `{until}|P` while pending, `{until}|A|{answer}` once answered; `until` in
/// Unix seconds of the gateway's clock. What it means at `now`: `None` once
/// `until` has passed (or for anything unreadable).
pub fn read_exchange(stored: &str, now: u64) -> Option<ExchangeClaim> {
    let (until, rest) = stored.split_once('|')?;
    if until.parse::<u64>().ok()? <= now {
        return None;
    }
    match rest.split_once('|') {
        None if rest == "P" => Some(ExchangeClaim::Pending),
        Some(("A", answer)) => Some(ExchangeClaim::Answered(answer.to_owned())),
        _ => None,
    }
}

/// Persistence of credentials, shared by every instance that uses the same backend.
///
/// Single-instance backends keep the defaults: every lease is granted (the
/// token center's in-process single flight is enough) and every push is new
/// (the in-process dedupe is enough). Redis overrides them.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The stored credential of `appid` and `kind`, valid or not.
    async fn load(&self, appid: &str, kind: Kind) -> Result<Option<Credential>, StoreError>;
    /// Stores a credential, replacing the previous one.
    async fn save(
        &self,
        appid: &str,
        kind: Kind,
        credential: &Credential,
    ) -> Result<(), StoreError>;
    /// Whether the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// `sqlite`, `redis` or `memory`.
    fn backend(&self) -> &'static str;

    /// How the store is reached (Redis: its topology and what the
    /// connection has seen); `None` for the embedded ones.
    async fn topology(&self) -> Option<StoreTopology> {
        None
    }

    /// Whether the backend takes a write now (a small one, of its own key):
    /// after a refused write, readiness asks this instead of waiting for the
    /// next credential to be saved.
    async fn probe_write(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether pushes are deduplicated across instances through this store
    /// (only a shared store can); otherwise the claim calls are skipped.
    fn shares_pushes(&self) -> bool {
        false
    }

    /// The instance (`host:pid`) holding the refresh lease of a credential, if
    /// any. Only a shared store can tell; the others answer `None`.
    async fn lease_holder(&self, _appid: &str, _kind: Kind) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// Takes the refresh lease of a credential for `ttl`; `None` when another instance holds it.
    async fn acquire(
        &self,
        _appid: &str,
        _kind: Kind,
        _ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        Ok(Some(Lease {
            owner: String::new(),
            fence: 0,
        }))
    }

    /// Gives a lease back, if it is still ours.
    async fn release(&self, _appid: &str, _kind: Kind, _lease: &Lease) -> Result<(), StoreError> {
        Ok(())
    }

    /// Stores a credential fetched under `lease`; `false` when a newer lease exists
    /// (the write is refused, so a stale instance never overwrites a newer token).
    async fn save_fenced(
        &self,
        appid: &str,
        kind: Kind,
        credential: &Credential,
        _lease: &Lease,
    ) -> Result<bool, StoreError> {
        self.save(appid, kind, credential).await.map(|()| true)
    }

    /// Notifications of credentials stored by other instances, if the backend has them.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<(String, Kind)>> {
        None
    }

    /// Tells every instance that the app's access token whose SHA-256 (hex)
    /// is `sha256` was revoked, so none honours it as a previous token. Only a
    /// shared store can; the others do nothing.
    async fn announce_revocation(&self, _appid: &str, _sha256: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Revocations announced by any instance, this one included:
    /// `(appid, sha256)`, if the backend has them.
    fn revocations(&self) -> Option<tokio::sync::broadcast::Receiver<(String, String)>> {
        None
    }

    /// Claims a push for handling across instances, for `ttl`.
    async fn claim_push(&self, _key: &str, _ttl: Duration) -> Result<PushClaim, StoreError> {
        Ok(PushClaim::First)
    }

    /// Binds `value` to `key` for `ttl` unless something is bound already, and
    /// returns what was bound before (`None`: `value` is bound now). Only a
    /// shared store binds across instances; the others answer `None`.
    async fn bind_once(
        &self,
        _key: &str,
        _value: &str,
        _ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// Adds `add` to the counter `key` of `period` (0 reads it) and returns its
    /// new value. A counter of an earlier period starts again from zero, so a
    /// monthly limit is a counter whose period is the month.
    async fn tally(&self, key: &str, period: &str, add: u64) -> Result<u64, StoreError>;

    /// A small value wxgate keeps for itself under `key` (not a
    /// credential: e.g. WeChat's callback IP ranges), `None` when never set.
    async fn note(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Sets the note `key` to `value`, replacing the previous one.
    async fn set_note(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Tells the instances sharing this store what this one runs (`info`, a
    /// small JSON text), or (`None`) that it stopped. Only a shared store
    /// keeps it; readers drop what has not been said again for a while.
    async fn set_instance(&self, _instance: &str, _info: Option<&str>) -> Result<(), StoreError> {
        Ok(())
    }

    /// What each instance sharing this store last said of itself, by name;
    /// `None` when the store is not shared.
    async fn instances(&self) -> Result<Option<Vec<(String, String)>>, StoreError> {
        Ok(None)
    }

    /// Appends to the audit log (at most [`AUDIT_KEEP`] entries are kept).
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// The newest audit entries first, at most `limit`, of one app or of all.
    async fn audit(&self, appid: Option<&str>, limit: usize)
        -> Result<Vec<AuditEntry>, StoreError>;

    /// Claims the one-time exchange `key` at `now` (Unix seconds, the
    /// gateway's clock): [`ExchangeClaim::First`] when nobody holds it (a
    /// pending claim older than `hold` or an answer past its `until` counts
    /// as none), so the caller calls WeChat; else what the store knows.
    /// Every backend keeps these (a restart, another instance on Redis).
    async fn claim_exchange(
        &self,
        key: &str,
        now: u64,
        hold: Duration,
    ) -> Result<ExchangeClaim, StoreError>;

    /// Records the answer to the exchange `key`, kept until `until` (Unix seconds).
    async fn answer_exchange(
        &self,
        key: &str,
        answer: &str,
        now: u64,
        until: u64,
    ) -> Result<(), StoreError>;

    /// Gives up a pending claim with no answer worth keeping (WeChat was
    /// busy), so the next caller may try again. An answer is kept.
    async fn release_exchange(&self, key: &str) -> Result<(), StoreError>;

    /// The answer recorded under `key`, if kept at `now`.
    async fn exchanged(&self, key: &str, now: u64) -> Result<Option<String>, StoreError>;

    /// Records the answer to a claimed push, for retries that land on other instances.
    async fn answer_push(
        &self,
        _key: &str,
        _answer: Option<&str>,
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod contract {
    //! One test body, run against every backend.
    use super::*;

    pub(super) async fn round_trips_and_replaces(store: &dyn Store) {
        assert!(store
            .load("wx1", Kind::AccessToken)
            .await
            .unwrap()
            .is_none());
        let first = Credential {
            value: "a".repeat(512),
            expires_at: 7200,
            fetched_at: 0,
        };
        store.save("wx1", Kind::AccessToken, &first).await.unwrap();
        let second = Credential {
            value: "b".into(),
            expires_at: 9000,
            fetched_at: 1800,
        };
        store.save("wx1", Kind::JsapiTicket, &second).await.unwrap();
        assert_eq!(
            store.load("wx1", Kind::AccessToken).await.unwrap(),
            Some(first)
        );
        assert_eq!(
            store.load("wx1", Kind::JsapiTicket).await.unwrap(),
            Some(second.clone())
        );
        assert!(store
            .load("wx2", Kind::AccessToken)
            .await
            .unwrap()
            .is_none());
        store.save("wx1", Kind::AccessToken, &second).await.unwrap();
        assert_eq!(
            store.load("wx1", Kind::AccessToken).await.unwrap(),
            Some(second)
        );
        store.ping().await.unwrap();
        audit_is_newest_first_and_filtered(store).await;
        tallies_count_per_period(store).await;
    }

    /// Notes: what one handle sets, another reads (a restart, or another
    /// instance on a shared store).
    pub(super) async fn notes_round_trip_and_replace(store: &dyn Store, other: &dyn Store) {
        assert_eq!(store.note("callback_ips:wechat").await.unwrap(), None);
        store.set_note("callback_ips:wechat", "a").await.unwrap();
        store.set_note("callback_ips:wechat", "b").await.unwrap();
        assert_eq!(
            other.note("callback_ips:wechat").await.unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(other.note("callback_ips:wecom").await.unwrap(), None);
    }

    async fn tallies_count_per_period(store: &dyn Store) {
        assert_eq!(store.tally("clear:wx1", "2026-11", 0).await.unwrap(), 0);
        assert_eq!(store.tally("clear:wx1", "2026-11", 1).await.unwrap(), 1);
        assert_eq!(store.tally("clear:wx1", "2026-11", 1).await.unwrap(), 2);
        assert_eq!(store.tally("clear:wx2", "2026-11", 0).await.unwrap(), 0);
        assert_eq!(store.tally("clear:wx1", "2026-11", 0).await.unwrap(), 2);
        // A new period starts from zero.
        assert_eq!(store.tally("clear:wx1", "2026-12", 1).await.unwrap(), 1);
    }

    async fn audit_is_newest_first_and_filtered(store: &dyn Store) {
        let entry = |at: u64, appid: &str| AuditEntry {
            at,
            appid: appid.into(),
            kind: "access_token".into(),
            event: "fetch".into(),
            cause: "schedule".into(),
            instance: "host:1".into(),
            result: "ok".into(),
            errcode: None,
            rid: Some("rid-1".into()),
        };
        for (at, appid) in [(1, "wx1"), (2, "wx2"), (3, "wx1")] {
            store.record(&entry(at, appid)).await.unwrap();
        }
        assert_eq!(
            store.audit(Some("wx1"), 10).await.unwrap(),
            [entry(3, "wx1"), entry(1, "wx1")]
        );
        assert_eq!(
            store.audit(None, 2).await.unwrap(),
            [entry(3, "wx1"), entry(2, "wx2")]
        );
    }

    fn credential(value: &str, expires_at: u64, fetched_at: u64) -> Credential {
        Credential {
            value: value.into(),
            expires_at,
            fetched_at,
        }
    }

    /// One holder of a credential's lease at a time on a shared store; on
    /// the others every lease is granted (the in-process single flight is
    /// enough). Only the holder's release frees it, the holder is named while
    /// it holds it, and fences never go back.
    pub(super) async fn leases_admit_one_holder_at_a_time(store: &dyn Store, other: &dyn Store) {
        let shared = store.shares_pushes();
        let ttl = Duration::from_secs(15);
        let first = store
            .acquire("wx1", Kind::AccessToken, ttl)
            .await
            .unwrap()
            .expect("a free lease is granted");
        let second = other.acquire("wx1", Kind::AccessToken, ttl).await.unwrap();
        assert_eq!(second.is_none(), shared, "one holder at a time: {second:?}");
        let holder = other.lease_holder("wx1", Kind::AccessToken).await.unwrap();
        let named = shared.then(|| crate::instance_name().to_owned());
        assert_eq!(holder, named, "the holder is named (by a shared store)");
        // Another kind's or app's lease is its own.
        let ticket = other.acquire("wx1", Kind::JsapiTicket, ttl).await.unwrap();
        assert!(ticket.is_some(), "another kind's lease");
        let app = other.acquire("wx2", Kind::AccessToken, ttl).await.unwrap();
        assert!(app.is_some(), "another app's lease");

        // A release with someone else's lease leaves it held.
        let impostor = Lease {
            owner: "impostor".into(),
            fence: first.fence,
        };
        other
            .release("wx1", Kind::AccessToken, &impostor)
            .await
            .unwrap();
        let meanwhile = other.acquire("wx1", Kind::AccessToken, ttl).await.unwrap();
        assert_eq!(
            meanwhile.is_none(),
            shared,
            "released by an impostor: {meanwhile:?}"
        );
        store
            .release("wx1", Kind::AccessToken, &first)
            .await
            .unwrap();
        assert_eq!(
            other.lease_holder("wx1", Kind::AccessToken).await.unwrap(),
            None
        );
        let next = other
            .acquire("wx1", Kind::AccessToken, ttl)
            .await
            .unwrap()
            .expect("granted once released");
        assert!(next.fence >= first.fence, "{next:?} after {first:?}");
        if shared {
            assert!(next.fence > first.fence, "{next:?} after {first:?}");
        }
    }

    /// A write under a lease older than one granted since is refused and
    /// the stored credential stands; the newest lease's write is stored.
    pub(super) async fn fencing_refuses_a_stale_holders_write(
        store: &dyn Store,
        other: &dyn Store,
    ) {
        let ttl = Duration::from_secs(15);
        let kind = Kind::AccessToken;
        let first = store.acquire("wx3", kind, ttl).await.unwrap().unwrap();
        let t1 = credential("t1", 7200, 10);
        assert!(store.save_fenced("wx3", kind, &t1, &first).await.unwrap());
        assert_eq!(other.load("wx3", kind).await.unwrap(), Some(t1.clone()));
        store.release("wx3", kind, &first).await.unwrap();

        let second = other.acquire("wx3", kind, ttl).await.unwrap().unwrap();
        let stale = credential("stale", 9000, 20);
        let stored = store
            .save_fenced("wx3", kind, &stale, &first)
            .await
            .unwrap();
        assert_eq!(
            stored,
            second.fence <= first.fence,
            "refused exactly when a newer lease was granted since: {first:?}, then {second:?}"
        );
        let standing = if stored { stale } else { t1 };
        assert_eq!(other.load("wx3", kind).await.unwrap(), Some(standing));
        let t2 = credential("t2", 9100, 30);
        assert!(other.save_fenced("wx3", kind, &t2, &second).await.unwrap());
        assert_eq!(store.load("wx3", kind).await.unwrap(), Some(t2));
    }

    /// A lease its holder never gives back (it died) lapses after its ttl.
    pub(super) async fn an_abandoned_lease_lapses_after_its_ttl(
        store: &dyn Store,
        other: &dyn Store,
    ) {
        let kind = Kind::JsapiTicket;
        let abandoned = store
            .acquire("wx4", kind, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(abandoned.is_some());
        let ttl = Duration::from_secs(15);
        let at_once = other.acquire("wx4", kind, ttl).await.unwrap();
        assert_eq!(at_once.is_none(), store.shares_pushes(), "{at_once:?}");
        // The backend's own clock (Redis expires keys in real time).
        wxgate_testkit::wait_until(
            Duration::from_secs(5),
            "the abandoned lease lapsed",
            async || other.acquire("wx4", kind, ttl).await.unwrap().is_some(),
        )
        .await;
    }

    /// The first claim of a push handles it. On a shared store a retry that
    /// lands on another instance sees it pending, then its answer; on the
    /// others every claim is first (the in-process dedupe is enough). Bodies
    /// bound to a signature likewise.
    pub(super) async fn push_claims_hand_a_retry_the_first_answer(
        store: &dyn Store,
        other: &dyn Store,
    ) {
        let shared = store.shares_pushes();
        let expect = |claim: PushClaim| if shared { claim } else { PushClaim::First };
        let ttl = Duration::from_secs(15);
        let key = "wx1:m:42";
        assert_eq!(store.claim_push(key, ttl).await.unwrap(), PushClaim::First);
        assert_eq!(
            other.claim_push(key, ttl).await.unwrap(),
            expect(PushClaim::Pending)
        );
        store.answer_push(key, Some("<xml/>"), ttl).await.unwrap();
        assert_eq!(
            other.claim_push(key, ttl).await.unwrap(),
            expect(PushClaim::Answered(Some("<xml/>".into())))
        );
        store.answer_push("wx1:m:43", None, ttl).await.unwrap();
        assert_eq!(
            other.claim_push("wx1:m:43", ttl).await.unwrap(),
            expect(PushClaim::Answered(None))
        );
        let other_push = "wx1:m:44";
        assert_eq!(
            other.claim_push(other_push, ttl).await.unwrap(),
            PushClaim::First,
            "another push is its own"
        );

        assert_eq!(store.bind_once("sig:1", "a", ttl).await.unwrap(), None);
        assert_eq!(
            other.bind_once("sig:1", "b", ttl).await.unwrap(),
            shared.then(|| "a".to_owned())
        );
    }

    /// A one-time exchange is claimed once, on every backend and through
    /// either handle; the others see it pending, then its answer, until its
    /// `until` on the gateway's clock; a released claim, or one held past
    /// `hold`, is free again.
    pub(super) async fn exchanges_are_claimed_once_and_answered_to_all(
        store: &dyn Store,
        other: &dyn Store,
    ) {
        use ExchangeClaim::*;
        let hold = Duration::from_secs(15);
        let t = 1_000;
        assert_eq!(store.claim_exchange("c1", t, hold).await.unwrap(), First);
        assert_eq!(other.claim_exchange("c1", t, hold).await.unwrap(), Pending);
        assert_eq!(other.exchanged("c1", t).await.unwrap(), None);
        store
            .answer_exchange("c1", "{\"openid\":\"o|1\"}", t, t + 300)
            .await
            .unwrap();
        let answered = Answered("{\"openid\":\"o|1\"}".into());
        assert_eq!(
            other.claim_exchange("c1", t + 299, hold).await.unwrap(),
            answered
        );
        assert_eq!(
            other.exchanged("c1", t + 299).await.unwrap().as_deref(),
            Some("{\"openid\":\"o|1\"}")
        );
        // Past its `until`, the answer is gone: the code is new to wxgate.
        assert_eq!(other.exchanged("c1", t + 300).await.unwrap(), None);
        assert_eq!(
            other.claim_exchange("c1", t + 300, hold).await.unwrap(),
            First
        );
        // A released claim is free; an answer is not released.
        assert_eq!(store.claim_exchange("c2", t, hold).await.unwrap(), First);
        store.release_exchange("c2").await.unwrap();
        assert_eq!(other.claim_exchange("c2", t, hold).await.unwrap(), First);
        // A claimant that never answers (it died) holds it for `hold` only.
        assert_eq!(store.claim_exchange("c3", t, hold).await.unwrap(), First);
        assert_eq!(
            other.claim_exchange("c3", t + 14, hold).await.unwrap(),
            Pending
        );
        assert_eq!(
            other.claim_exchange("c3", t + 15, hold).await.unwrap(),
            First
        );
    }

    #[test]
    fn an_exchange_reads_back_as_written() {
        assert_eq!(read_exchange("20|P", 10), Some(ExchangeClaim::Pending));
        assert_eq!(
            read_exchange("20|A|a|b", 19),
            Some(ExchangeClaim::Answered("a|b".into()))
        );
        assert_eq!(read_exchange("20|A|a", 20), None);
        assert_eq!(read_exchange("x|P", 0), None);
        assert_eq!(read_exchange("20|Q", 0), None);
        assert_eq!(
            format!("{:?}", ExchangeClaim::Answered("secret".into())),
            "Answered(<6 bytes>)"
        );
    }

    /// A test per backend of each contract property, each on a fresh store
    /// reached through two handles (two instances, where the backend has them).
    macro_rules! on_every_backend {
        ($($property:ident),* $(,)?) => {
            mod memory {
                $(
                    #[tokio::test]
                    async fn $property() {
                        let store = crate::store::MemoryStore::default();
                        super::$property(&store, &store).await;
                    }
                )*
            }
            mod sqlite {
                $(
                    #[tokio::test]
                    async fn $property() {
                        let dir = tempfile::tempdir().unwrap();
                        let path = dir.path().join("t.db");
                        let store = crate::store::SqliteStore::open(&path).unwrap();
                        let other = crate::store::SqliteStore::open(&path).unwrap();
                        super::$property(&store, &other).await;
                    }
                )*
            }
            mod redis {
                $(
                    #[tokio::test]
                    async fn $property() {
                        // Fails, saying how to install it, when redis-server is missing.
                        let server = wxgate_testkit::RedisServer::start();
                        let url = server.url();
                        let connect = || crate::store::RedisStore::connect(&url, "contract:");
                        let (store, other) = (connect().await.unwrap(), connect().await.unwrap());
                        super::$property(&store, &other).await;
                    }
                )*
            }
            mod redis_cluster {
                $(
                    #[tokio::test]
                    async fn $property() {
                        // Three primaries, so the keys of one test spread over them.
                        let cluster = wxgate_testkit::redis::RedisCluster::start(3);
                        let options = crate::store::RedisOptions {
                            topology: crate::store::RedisTopology::Cluster(cluster.urls()),
                            username: None,
                            password: None,
                            tls: crate::store::RedisTls::default(),
                            key_prefix: "contract:".into(),
                        };
                        let connect = || crate::store::RedisStore::open(&options);
                        let (store, other) = (connect().await.unwrap(), connect().await.unwrap());
                        super::$property(&store, &other).await;
                    }
                )*
            }
        };
    }

    /// [`round_trips_and_replaces`] takes one handle.
    async fn round_trips(store: &dyn Store, _: &dyn Store) {
        round_trips_and_replaces(store).await;
    }

    on_every_backend!(
        round_trips,
        leases_admit_one_holder_at_a_time,
        fencing_refuses_a_stale_holders_write,
        an_abandoned_lease_lapses_after_its_ttl,
        push_claims_hand_a_retry_the_first_answer,
        notes_round_trip_and_replace,
        exchanges_are_claimed_once_and_answered_to_all,
    );

    #[test]
    fn debug_masks_the_value() {
        let c = Credential {
            value: "SECRET_TOKEN_VALUE".into(),
            expires_at: 1,
            fetched_at: 0,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET_TOKEN_VALUE"), "{shown}");
        assert!(shown.contains("SECRET…(18 chars)"), "{shown}");
    }
}
