//! The Redis backend, for several instances behind a load balancer
//! (DESIGN.md, "Stores"): credentials under `{prefix}{appid:kind}` (the braces
//! a Redis Cluster hash tag, so a credential, its lease lock and its fencing
//! counter share one slot), a lease lock (`SET NX PX` with an owner id,
//! compare-and-delete release), a fencing counter checked inside the write
//! script, a pub/sub channel that tells every instance about a new credential
//! at once, and push dedupe keys with a TTL.
//!
//! Every script touches only keys of one slot and is passed all of them as
//! `KEYS` (Redis Cluster and managed proxies require it). Credentials stored
//! by wxgate before the hash tags (`{prefix}appid:kind`) are moved on first
//! read ([`RedisStore::load`]).
//!
//! Reads are not served from here: each instance keeps credentials in memory
//! and this store is only touched on refreshes, restarts and notifications.

mod connect;

use std::time::Duration;

use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use self::connect::Connection;
pub use self::connect::{RedisOptions, RedisTls, RedisTopology};
use super::{
    read_exchange, AuditEntry, Credential, ExchangeClaim, Kind, Lease, PushClaim, Store,
    StoreError, StoreTopology, AUDIT_KEEP,
};

/// Writes only when the lease's fence is the newest one issued and the stored
/// credential was not fetched later (after a failover the fencing counter may
/// have lost increments the old primary had not replicated: the credential's
/// own `fetched_at` still refuses a stale writer), then announces it.
const SAVE_FENCED: &str = r"
local newest = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < newest then return 0 end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and tonumber(stored.fetched_at) and tonumber(stored.fetched_at) > tonumber(ARGV[5]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// Stores a credential fetched without a lease (Redis was down when the fetch
/// began) only if it is not older than the stored one, then announces it
/// (not when `ARGV[3]` is empty: a migration).
const SAVE_IF_NEWER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and tonumber(stored.fetched_at) and tonumber(stored.fetched_at) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
";

/// Takes the lock and, in the same step, the next fencing token (0: lock
/// taken). The lock already held by this owner (`ARGV[1]`, random per
/// lease) counts as taken now: sent again after it ran (its answer lost in
/// a failover), the script gives the lease it took, not "held by another".
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) or redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('INCR', KEYS[2])
end
return 0
";

/// Deletes the key only if it still holds `ARGV[1]` (a lock still held by
/// this owner; a pre-hash-tag credential not rewritten since it was moved).
const DELETE_IF_EQUAL: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Claims a one-time exchange unless a claim or an answer stands at `now`
/// (ARGV[1]; the gateway's clock, which may be virtual, so `until` is read
/// from the value, not left to Redis's expiry alone): returns what stands,
/// or nothing when the claim (ARGV[2], for ARGV[3] ms) is ours.
const CLAIM_EXCHANGE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  local until_ = tonumber(string.match(v, '^(%d+)|'))
  if until_ and until_ > tonumber(ARGV[1]) then return v end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
";

/// Deletes an exchange's claim if it is still pending (never an answer).
const RELEASE_EXCHANGE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^%d+|P$') then return redis.call('DEL', KEYS[1]) end
return 0
";

#[derive(Serialize, Deserialize)]
struct Stored {
    value: String,
    expires_at: u64,
    fetched_at: u64,
}

/// Credentials, leases and dedupe keys in Redis.
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    /// `primary`, `sentinel` or `cluster`.
    mode: &'static str,
    prefix: String,
    changes: broadcast::Sender<(String, Kind)>,
    /// Revocations announced by any instance: (appid, SHA-256 of the token, hex).
    revocations: broadcast::Sender<(String, String)>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn stored_json(credential: &Credential) -> String {
    let stored = Stored {
        value: credential.value.clone(),
        expires_at: credential.expires_at,
        fetched_at: credential.fetched_at,
    };
    serde_json::to_string(&stored).expect("a credential serialises")
}

fn error(e: redis::RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

/// Longest wait for one Redis operation: when Redis is down, callers get an
/// error in bounded time and serve what they hold in memory.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one Redis operation under [`OP_TIMEOUT`].
async fn timed<T>(
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(OP_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| Err(StoreError("redis: no answer within 2 s".into())))
}

impl RedisStore {
    /// Connects to one primary at `url` (see [`RedisStore::open`]).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::open(&RedisOptions::primary(url, prefix)).await
    }

    /// Connects as `options` say (the connection reconnects by itself) and
    /// starts listening for other instances' writes.
    pub async fn open(options: &RedisOptions) -> Result<Self, StoreError> {
        let connection = options.connect().await.map_err(error)?;
        let (changes, _) = broadcast::channel(256);
        let (revocations, _) = broadcast::channel(64);
        let store = Self {
            connection,
            mode: options.topology.name(),
            prefix: options.key_prefix.clone(),
            changes,
            revocations,
        };
        tokio::spawn(listen(
            options.clone(),
            store.channel(),
            store.changes.downgrade(),
            store.revocations.downgrade(),
        ));
        if let RedisTopology::Sentinel { master, .. } = &options.topology {
            tokio::spawn(watch_failovers(
                options.clone(),
                master.clone(),
                store.connection.clone(),
                store.changes.downgrade(),
            ));
        }
        Ok(store)
    }

    /// `SET key value NX PX ttl`: whether the key was free and is now ours.
    /// Sent at most once, as the exchange claim: sent again after it ran, it
    /// would find its own value and answer that the key was taken.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.connection.at_most_once())
            .await
            .map_err(error)?;
        Ok(set.is_some())
    }

    /// `{prefix}{appid:kind}`: the braces are a hash tag, so the credential,
    /// its `:lock` and its `:fence` are in one slot (one script can touch them all).
    fn key(&self, appid: &str, kind: Kind) -> String {
        format!("{}{{{appid}:{kind}}}", self.prefix)
    }

    /// `{prefix}appid:kind`: where wxgate kept a credential before the hash tags.
    fn legacy_key(&self, appid: &str, kind: Kind) -> String {
        format!("{}{appid}:{kind}", self.prefix)
    }

    /// Moves a credential stored under its pre-hash-tag key to its key, unless
    /// a credential fetched later is there already, and deletes the old key if
    /// nobody rewrote it meanwhile (an instance not yet upgraded, whose next
    /// write is moved on the next read in turn). The two keys may be in two
    /// slots: two scripts, each on one key.
    async fn migrate(&self, appid: &str, kind: Kind) -> Result<(), StoreError> {
        let legacy = self.legacy_key(appid, kind);
        let raw: Option<String> = self.connection.clone().get(&legacy).await.map_err(error)?;
        let Some(raw) = raw else { return Ok(()) };
        if let Ok(stored) = serde_json::from_str::<Stored>(&raw) {
            Script::new(SAVE_IF_NEWER)
                .key(self.key(appid, kind))
                .arg(&raw)
                .arg(stored.fetched_at)
                .arg("")
                .arg("")
                .invoke_async::<i64>(&mut self.connection.clone())
                .await
                .map_err(error)?;
            tracing::info!(appid, token.kind = %kind, "moved a credential to its hash-tagged key");
        }
        Script::new(DELETE_IF_EQUAL)
            .key(&legacy)
            .arg(&raw)
            .invoke_async::<i64>(&mut self.connection.clone())
            .await
            .map(drop)
            .map_err(error)
    }

    fn channel(&self) -> String {
        format!("{}changes", self.prefix)
    }
}

/// The prefix of a revocation's message on the change channel:
/// `revoked:{appid}:{sha256}`. (An older instance reads it as a change of an
/// unknown kind and ignores it.)
const REVOKED: &str = "revoked:";

/// Subscribes to the change channel, reconnecting with a pause when Redis goes
/// away; ends once the store is dropped.
async fn listen(
    options: RedisOptions,
    channel: String,
    changes: broadcast::WeakSender<(String, Kind)>,
    revocations: broadcast::WeakSender<(String, String)>,
) {
    use futures_util::StreamExt as _;
    let mut attempt = 0;
    while changes.upgrade().is_some() {
        let pubsub = match options.subscriber(attempt).await {
            Ok(client) => client.get_async_pubsub().await,
            Err(e) => Err(e),
        };
        attempt += 1;
        match pubsub {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        let Some(sender) = changes.upgrade() else {
                            return;
                        };
                        if let Some(revoked) = payload.strip_prefix(REVOKED) {
                            if let (Some((appid, sha256)), Some(revocations)) =
                                (revoked.rsplit_once(':'), revocations.upgrade())
                            {
                                let _ = revocations.send((appid.to_owned(), sha256.to_owned()));
                            }
                            continue;
                        }
                        if let Some((appid, kind)) = payload.rsplit_once(':') {
                            if let Ok(kind) = kind.parse() {
                                let _ = sender.send((appid.to_owned(), kind));
                            }
                        }
                    }
                }
                tracing::warn!(channel, "lost the Redis change channel; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "Redis unavailable for notifications; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Sentinel: listens for the sentinels' `+switch-master` of our primary,
/// counts the failover and lets the old primary go at once (an instance
/// that only reads would otherwise stay on a node turned replica);
/// reconnecting with a pause, it ends once the store is dropped.
async fn watch_failovers(
    options: RedisOptions,
    master: String,
    connection: Connection,
    alive: broadcast::WeakSender<(String, Kind)>,
) {
    use futures_util::StreamExt as _;
    while alive.upgrade().is_some() {
        let sentinel = match options.sentinel_client() {
            Ok(mut sentinel) => sentinel.async_get_sentinel_client().await,
            Err(e) => Err(e),
        };
        let pubsub = match sentinel {
            Ok(client) => client.get_async_pubsub().await,
            Err(e) => Err(e),
        };
        match pubsub {
            Ok(mut pubsub) => {
                if pubsub.subscribe("+switch-master").await.is_ok() {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        if alive.upgrade().is_none() {
                            return;
                        }
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        // `<name> <old ip> <old port> <new ip> <new port>`
                        let fields: Vec<&str> = payload.split(' ').collect();
                        if fields.first() == Some(&master.as_str()) {
                            let primary = fields.get(3..5).map(|f| f.join(":"));
                            tracing::warn!(redis.master = %master, redis.primary = ?primary, "Redis failed over: the sentinels switched the primary");
                            connection.status.failed_over();
                            connection.demoted();
                        }
                    }
                }
                tracing::warn!("lost the sentinels' failover announcements; resubscribing");
            }
            Err(e) => {
                tracing::warn!(error = %e, "sentinels unavailable for failover announcements; retrying")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn load(&self, appid: &str, kind: Kind) -> Result<Option<Credential>, StoreError> {
        timed(async {
            self.migrate(appid, kind).await?;
            let raw: Option<String> = self
                .connection
                .clone()
                .get(self.key(appid, kind))
                .await
                .map_err(error)?;
            raw.map(|raw| {
                serde_json::from_str::<Stored>(&raw)
                    .map(|s| Credential {
                        value: s.value,
                        expires_at: s.expires_at,
                        fetched_at: s.fetched_at,
                    })
                    .map_err(|e| StoreError(format!("redis: unreadable credential: {e}")))
            })
            .transpose()
        })
        .await
    }

    async fn save(
        &self,
        appid: &str,
        kind: Kind,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        timed(async {
            let key = self.key(appid, kind);
            Script::new(SAVE_IF_NEWER)
                .key(&key)
                .arg(stored_json(credential))
                .arg(credential.fetched_at)
                .arg(self.channel())
                .arg(format!("{appid}:{kind}"))
                .invoke_async::<i64>(&mut self.connection.clone())
                .await
                .map(drop)
                .map_err(error)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(async {
            redis::cmd("PING")
                .query_async::<String>(&mut self.connection.clone())
                .await
                .map(drop)
                .map_err(error)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn topology(&self) -> Option<StoreTopology> {
        use std::sync::atomic::Ordering;
        let role = timed(async {
            let mut connection = self.connection.clone();
            if self.mode == "cluster" {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut connection)
                    .await
                    .map_err(error)?;
                let state = info.lines().find_map(|l| l.strip_prefix("cluster_state:"));
                Ok(state.map(|s| s.trim().to_owned()))
            } else {
                let role: Vec<redis::Value> = redis::cmd("ROLE")
                    .query_async(&mut connection)
                    .await
                    .map_err(error)?;
                Ok(role
                    .first()
                    .and_then(|r| redis::from_redis_value::<String>(r).ok()))
            }
        })
        .await
        .ok()
        .flatten();
        if role.as_deref() == Some("slave") {
            self.connection.demoted();
        }
        let status = &self.connection.status;
        let last = *status.last_reconnect.lock().expect("never poisoned");
        Some(StoreTopology {
            mode: self.mode,
            role,
            primary: status.primary.lock().expect("never poisoned").clone(),
            failovers: status.failovers.load(Ordering::Relaxed),
            reconnects: status.reconnects.load(Ordering::Relaxed),
            last_reconnect_secs_ago: last.map(|at| at.elapsed().as_secs()),
        })
    }

    async fn tally(&self, key: &str, period: &str, add: u64) -> Result<u64, StoreError> {
        // One key per period, kept 40 days: long enough for a monthly count.
        let key = format!("{}tally:{key}:{period}", self.prefix);
        timed(async {
            let (n,): (u64,) = redis::pipe()
                .incr(&key, add)
                .expire(&key, 40 * 86_400)
                .ignore()
                .query_async(&mut self.connection.clone())
                .await
                .map_err(error)?;
            Ok(n)
        })
        .await
    }

    async fn claim_exchange(
        &self,
        key: &str,
        now: u64,
        hold: Duration,
    ) -> Result<ExchangeClaim, StoreError> {
        let key = format!("{}exchange:{key}", self.prefix);
        let pending = format!("{}|P", now + hold.as_secs());
        timed(async {
            let standing: Option<String> = Script::new(CLAIM_EXCHANGE)
                .key(&key)
                .arg(now)
                .arg(&pending)
                .arg(hold.as_millis() as u64)
                .invoke_async(&mut self.connection.at_most_once())
                .await
                .map_err(error)?;
            Ok(match standing {
                None => ExchangeClaim::First,
                Some(value) => read_exchange(&value, now).unwrap_or(ExchangeClaim::Pending),
            })
        })
        .await
    }

    async fn answer_exchange(
        &self,
        key: &str,
        answer: &str,
        now: u64,
        until: u64,
    ) -> Result<(), StoreError> {
        let key = format!("{}exchange:{key}", self.prefix);
        // Redis forgets it in real time too, at the latest when the gateway's clock would.
        let keep_ms = until.saturating_sub(now).max(1) * 1000;
        timed(async {
            redis::cmd("SET")
                .arg(&key)
                .arg(format!("{until}|A|{answer}"))
                .arg("PX")
                .arg(keep_ms)
                .query_async::<()>(&mut self.connection.clone())
                .await
                .map_err(error)
        })
        .await
    }

    async fn release_exchange(&self, key: &str) -> Result<(), StoreError> {
        let key = format!("{}exchange:{key}", self.prefix);
        timed(async {
            Script::new(RELEASE_EXCHANGE)
                .key(&key)
                .invoke_async::<i64>(&mut self.connection.clone())
                .await
                .map(drop)
                .map_err(error)
        })
        .await
    }

    async fn exchanged(&self, key: &str, now: u64) -> Result<Option<String>, StoreError> {
        let key = format!("{}exchange:{key}", self.prefix);
        timed(async {
            let value: Option<String> = self.connection.clone().get(&key).await.map_err(error)?;
            Ok(match value.and_then(|v| read_exchange(&v, now)) {
                Some(ExchangeClaim::Answered(answer)) => Some(answer),
                _ => None,
            })
        })
        .await
    }

    async fn note(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}note:{key}", self.prefix);
        timed(async {
            redis::cmd("GET")
                .arg(&key)
                .query_async(&mut self.connection.clone())
                .await
                .map_err(error)
        })
        .await
    }

    async fn set_note(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let key = format!("{}note:{key}", self.prefix);
        timed(async {
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .query_async(&mut self.connection.clone())
                .await
                .map_err(error)
        })
        .await
    }

    async fn set_instance(&self, instance: &str, info: Option<&str>) -> Result<(), StoreError> {
        let key = format!("{}instances", self.prefix);
        let command = match info {
            Some(info) => redis::cmd("HSET").arg(&key).arg(instance).arg(info).clone(),
            None => redis::cmd("HDEL").arg(&key).arg(instance).clone(),
        };
        timed(async {
            command
                .query_async::<()>(&mut self.connection.clone())
                .await
                .map_err(error)
        })
        .await
    }

    async fn instances(&self) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let key = format!("{}instances", self.prefix);
        timed(async {
            redis::cmd("HGETALL")
                .arg(&key)
                .query_async::<Vec<(String, String)>>(&mut self.connection.clone())
                .await
                .map(Some)
                .map_err(error)
        })
        .await
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).expect("an entry serialises");
        let key = format!("{}audit", self.prefix);
        timed(async {
            redis::pipe()
                .lpush(&key, json)
                .ignore()
                .ltrim(&key, 0, AUDIT_KEEP as isize - 1)
                .ignore()
                .query_async::<()>(&mut self.connection.clone())
                .await
                .map_err(error)
        })
        .await
    }

    async fn audit(
        &self,
        appid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let key = format!("{}audit", self.prefix);
        let all: Vec<String> = timed(async {
            self.connection
                .clone()
                .lrange(&key, 0, AUDIT_KEEP as isize - 1)
                .await
                .map_err(error)
        })
        .await?;
        Ok(all
            .iter()
            .filter_map(|json| serde_json::from_str::<AuditEntry>(json).ok())
            .filter(|e| appid.is_none_or(|a| e.appid == a))
            .take(limit)
            .collect())
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        timed(async {
            redis::cmd("SET")
                .arg(format!("{}probe:{}", self.prefix, crate::instance_name()))
                .arg("1")
                .arg("PX")
                .arg(60_000)
                .query_async::<()>(&mut self.connection.clone())
                .await
                .map_err(error)
        })
        .await
    }

    fn shares_pushes(&self) -> bool {
        true
    }

    async fn lease_holder(&self, appid: &str, kind: Kind) -> Result<Option<String>, StoreError> {
        timed(async {
            let owner: Option<String> = redis::cmd("GET")
                .arg(format!("{}:lock", self.key(appid, kind)))
                .query_async(&mut self.connection.clone())
                .await
                .map_err(error)?;
            Ok(owner.map(|o| o.rsplit_once('/').map_or(o.clone(), |(i, _)| i.to_owned())))
        })
        .await
    }

    async fn acquire(
        &self,
        appid: &str,
        kind: Kind,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        timed(async {
            let key = self.key(appid, kind);
            // The instance, then a per-lease random part: the status page names the holder.
            let owner = format!(
                "{}/{}",
                crate::instance_name(),
                hex::encode(rand::random::<[u8; 12]>())
            );
            let fence: u64 = Script::new(ACQUIRE)
                .key(format!("{key}:lock"))
                .key(format!("{key}:fence"))
                .arg(&owner)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(error)?;
            Ok((fence > 0).then_some(Lease { owner, fence }))
        })
        .await
    }

    async fn release(&self, appid: &str, kind: Kind, lease: &Lease) -> Result<(), StoreError> {
        timed(async {
            let key = self.key(appid, kind);
            Script::new(DELETE_IF_EQUAL)
                .key(format!("{key}:lock"))
                .arg(&lease.owner)
                .invoke_async::<i64>(&mut self.connection.clone())
                .await
                .map(drop)
                .map_err(error)
        })
        .await
    }

    async fn save_fenced(
        &self,
        appid: &str,
        kind: Kind,
        credential: &Credential,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        timed(async {
            let key = self.key(appid, kind);
            let written: i64 = Script::new(SAVE_FENCED)
                .key(&key)
                .key(format!("{key}:fence"))
                .arg(lease.fence)
                .arg(stored_json(credential))
                .arg(self.channel())
                .arg(format!("{appid}:{kind}"))
                .arg(credential.fetched_at)
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(error)?;
            Ok(written == 1)
        })
        .await
    }

    fn changes(&self) -> Option<broadcast::Receiver<(String, Kind)>> {
        Some(self.changes.subscribe())
    }

    async fn announce_revocation(&self, appid: &str, sha256: &str) -> Result<(), StoreError> {
        timed(async {
            redis::cmd("PUBLISH")
                .arg(self.channel())
                .arg(format!("{REVOKED}{appid}:{sha256}"))
                .query_async::<i64>(&mut self.connection.clone())
                .await
                .map(drop)
                .map_err(error)
        })
        .await
    }

    fn revocations(&self) -> Option<broadcast::Receiver<(String, String)>> {
        Some(self.revocations.subscribe())
    }

    async fn claim_push(&self, key: &str, ttl: Duration) -> Result<PushClaim, StoreError> {
        timed(async {
            let key = format!("{}push:{key}", self.prefix);
            if self.set_if_absent(&key, "", ttl).await? {
                return Ok(PushClaim::First);
            }
            let answer: Option<String> = self.connection.clone().get(&key).await.map_err(error)?;
            Ok(match answer.as_deref() {
                None | Some("") => PushClaim::Pending,
                Some("-") => PushClaim::Answered(None),
                Some(reply) => PushClaim::Answered(reply.strip_prefix('+').map(str::to_owned)),
            })
        })
        .await
    }

    async fn bind_once(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        timed(async {
            let key = format!("{}bind:{key}", self.prefix);
            if self.set_if_absent(&key, value, ttl).await? {
                return Ok(None);
            }
            self.connection.clone().get(&key).await.map_err(error)
        })
        .await
    }

    async fn answer_push(
        &self,
        key: &str,
        answer: Option<&str>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        timed(async {
            let key = format!("{}push:{key}", self.prefix);
            let value = answer.map_or_else(|| "-".to_owned(), |reply| format!("+{reply}"));
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async::<()>(&mut self.connection.clone())
                .await
                .map_err(error)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written with the key names of wxgate before the hash tags
    /// (`{prefix}appid:kind`) is read after the upgrade with no credential
    /// lost, and the old key is gone once moved; a credential fetched later
    /// under the new key is never replaced by an older one moved in.
    #[tokio::test]
    async fn credentials_under_the_old_key_names_are_moved_on_first_read() {
        let server = wxgate_testkit::RedisServer::start();
        let store = RedisStore::connect(&server.url(), "wxgate:").await.unwrap();
        let mut raw = store.connection.clone();
        let old = |value: &str, fetched_at: u64| {
            stored_json(&Credential {
                value: value.into(),
                expires_at: fetched_at + 7200,
                fetched_at,
            })
        };
        let _: () = raw
            .set("wxgate:wx1:access_token", old("t-old", 100))
            .await
            .unwrap();
        let _: () = raw
            .set("wxgate:wx1:jsapi_ticket", old("j-old", 100))
            .await
            .unwrap();
        let _: () = raw
            .set("wxgate:wx2:access_token", old("stale", 50))
            .await
            .unwrap();
        // wx2 was fetched again since under its new key by an upgraded instance.
        let newer = Credential {
            value: "fresh".into(),
            expires_at: 7400,
            fetched_at: 200,
        };
        store.save("wx2", Kind::AccessToken, &newer).await.unwrap();

        let loaded = store.load("wx1", Kind::AccessToken).await.unwrap().unwrap();
        assert_eq!((loaded.value.as_str(), loaded.fetched_at), ("t-old", 100));
        let ticket = store.load("wx1", Kind::JsapiTicket).await.unwrap().unwrap();
        assert_eq!(ticket.value, "j-old");
        assert_eq!(
            store.load("wx2", Kind::AccessToken).await.unwrap(),
            Some(newer)
        );
        for old_key in [
            "wxgate:wx1:access_token",
            "wxgate:wx1:jsapi_ticket",
            "wxgate:wx2:access_token",
        ] {
            let left: Option<String> = raw.get(old_key).await.unwrap();
            assert_eq!(left, None, "{old_key} is moved");
        }
        let moved: Option<String> = raw.get("wxgate:{wx1:access_token}").await.unwrap();
        assert!(moved.unwrap().contains("t-old"));
        // A second read finds it in its new place.
        assert_eq!(
            store.load("wx1", Kind::AccessToken).await.unwrap(),
            Some(loaded)
        );
    }

    /// After a failover the new primary may have lost fence increments the
    /// old one had not replicated (here: the counter is gone): a holder of a
    /// lease granted before is still refused when the credential stored was
    /// fetched after its own.
    #[tokio::test]
    async fn a_stale_write_is_refused_when_the_fence_was_lost_in_a_failover() {
        let server = wxgate_testkit::RedisServer::start();
        let store = RedisStore::connect(&server.url(), "wxgate:").await.unwrap();
        let ttl = Duration::from_secs(15);
        let kind = Kind::AccessToken;
        let stale = store.acquire("wx1", kind, ttl).await.unwrap().unwrap();
        // The lease and its fence vanish with the old primary; another
        // instance takes a lease on the new one (the counter starts again)
        // and stores what it fetched later.
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut store.connection.clone())
            .await
            .unwrap();
        let newer = store.acquire("wx1", kind, ttl).await.unwrap().unwrap();
        assert!(newer.fence <= stale.fence, "{newer:?} {stale:?}");
        let fresh = Credential {
            value: "fresh".into(),
            expires_at: 7300,
            fetched_at: 100,
        };
        assert!(store
            .save_fenced("wx1", kind, &fresh, &newer)
            .await
            .unwrap());
        let old = Credential {
            value: "old".into(),
            expires_at: 7290,
            fetched_at: 90,
        };
        assert!(!store.save_fenced("wx1", kind, &old, &stale).await.unwrap());
        assert_eq!(store.load("wx1", kind).await.unwrap(), Some(fresh));
    }
}
