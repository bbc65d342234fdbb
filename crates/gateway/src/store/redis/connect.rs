//! Reaching Redis as production runs it: one primary (`redis://` or
//! `rediss://`), Redis Cluster (seed nodes), with TLS (a CA file, a client
//! certificate) and an ACL user and password given apart from the URL.
//!
//! Every topology ends up behind one [`Connection`], which the store's
//! commands and scripts run on without knowing which it is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, TlsCertificates, Value};
use secrecy::{ExposeSecret, SecretString};

/// Where Redis is.
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// One primary: `redis://[user:password@]host:port/db` or `rediss://…`
    /// (a secret: it may hold a password).
    Primary(SecretString),
    /// Redis Sentinel: these sentinels (`redis://h:26379`…) name the
    /// current primary of `master`.
    Sentinel {
        /// The sentinels' URLs.
        sentinels: Vec<String>,
        /// The monitored primary's name.
        master: String,
    },
    /// Redis Cluster, reached through these seed nodes (`redis://h:7000`…);
    /// the rest of the cluster is discovered from them.
    Cluster(Vec<String>),
}

impl PartialEq for RedisTopology {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Primary(a), Self::Primary(b)) => a.expose_secret() == b.expose_secret(),
            (
                Self::Sentinel { sentinels, master },
                Self::Sentinel {
                    sentinels: s,
                    master: m,
                },
            ) => sentinels == s && master == m,
            (Self::Cluster(a), Self::Cluster(b)) => a == b,
            _ => false,
        }
    }
}

impl RedisTopology {
    /// `primary`, `sentinel` or `cluster`: on `/readyz`, `/metrics`, `/admin`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Primary(_) => "primary",
            Self::Sentinel { .. } => "sentinel",
            Self::Cluster(_) => "cluster",
        }
    }
}

/// TLS material, each a PEM file's contents.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// The CA that signed the server's certificate (`tls_ca_file`); the
    /// system's roots when absent.
    pub ca: Option<Vec<u8>>,
    /// A client certificate and its key (`tls_cert_file`, `tls_key_file`),
    /// for servers that require one (`tls-auth-clients yes`).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .finish()
    }
}

/// How to reach Redis and how to name the keys.
#[derive(Clone)]
pub struct RedisOptions {
    /// Where.
    pub topology: RedisTopology,
    /// The ACL user, when not in the URL.
    pub username: Option<SecretString>,
    /// The password, when not in the URL.
    pub password: Option<SecretString>,
    /// TLS material for `rediss://` URLs (none: the system's roots).
    pub tls: RedisTls,
    /// Prefix of every key (`wxgate:`).
    pub key_prefix: String,
}

impl PartialEq for RedisOptions {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Option<SecretString>, b: &Option<SecretString>| {
            a.as_ref().map(|s| s.expose_secret()) == b.as_ref().map(|s| s.expose_secret())
        };
        self.topology == other.topology
            && same(&self.username, &other.username)
            && same(&self.password, &other.password)
            && self.tls == other.tls
            && self.key_prefix == other.key_prefix
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("topology", &self.topology.name())
            .field("tls", &self.tls)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisOptions {
    /// One primary at `url`, no TLS material, no separate credentials.
    pub fn primary(url: &str, key_prefix: &str) -> Self {
        Self {
            topology: RedisTopology::Primary(SecretString::from(url.to_owned())),
            username: None,
            password: None,
            tls: RedisTls::default(),
            key_prefix: key_prefix.to_owned(),
        }
    }

    /// A client for one node's `url`, with the credentials and TLS material.
    pub(super) fn client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        let mut info = url.into_connection_info()?;
        if let Some(user) = &self.username {
            info.redis.username = Some(user.expose_secret().to_owned());
        }
        if let Some(password) = &self.password {
            info.redis.password = Some(password.expose_secret().to_owned());
        }
        match info.addr {
            redis::ConnectionAddr::TcpTls { .. } => {
                redis::Client::build_with_tls(info, self.certificates())
            }
            _ => redis::Client::open(info),
        }
    }

    fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.tls.client.clone().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }
            }),
            root_cert: self.tls.ca.clone(),
        }
    }

    /// A client of the node to subscribe to the change channel through, on
    /// the `attempt`-th try: the primary (Sentinel: the current one, whose
    /// replicas also pass PUBLISH on), or the seed nodes in turn (a cluster
    /// broadcasts a non-sharded PUBLISH to every node).
    pub(super) async fn subscriber(&self, attempt: usize) -> redis::RedisResult<redis::Client> {
        match &self.topology {
            RedisTopology::Primary(url) => self.client(url.expose_secret()),
            RedisTopology::Cluster(seeds) => self.client(&seeds[attempt % seeds.len()]),
            RedisTopology::Sentinel { .. } => self.sentinel_client()?.async_get_client().await,
        }
    }

    /// A client that asks the sentinels which node is the primary.
    pub(super) fn sentinel_client(&self) -> redis::RedisResult<redis::sentinel::SentinelClient> {
        use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
        let RedisTopology::Sentinel { sentinels, master } = &self.topology else {
            unreachable!("only called for Sentinel")
        };
        let infos = sentinels
            .iter()
            .map(|url| url.as_str().into_connection_info())
            .collect::<redis::RedisResult<Vec<_>>>()?;
        let tls = infos
            .iter()
            .any(|i| matches!(i.addr, redis::ConnectionAddr::TcpTls { .. }));
        let mut builder = SentinelClientBuilder::new(
            infos.iter().map(|i| i.addr.clone()),
            master.clone(),
            SentinelServerType::Master,
        )?;
        if let Some(password) = infos.iter().find_map(|i| i.redis.password.clone()) {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if let Some(user) = infos.iter().find_map(|i| i.redis.username.clone()) {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(user) = &self.username {
            builder = builder.set_client_to_redis_username(user.expose_secret().to_owned());
        }
        if let Some(password) = &self.password {
            builder = builder.set_client_to_redis_password(password.expose_secret().to_owned());
        }
        if tls {
            builder = builder
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_certificates(self.certificates())
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_redis_certificates(self.certificates());
        }
        builder.build()
    }

    /// A cluster client that sends a command again up to `retries` times.
    fn cluster_client(
        &self,
        seeds: &[String],
        retries: u32,
    ) -> redis::RedisResult<redis::cluster::ClusterClient> {
        let mut builder = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2))
            .retries(retries)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if let Some(user) = &self.username {
            builder = builder.username(user.expose_secret().to_owned());
        }
        if let Some(password) = &self.password {
            builder = builder.password(password.expose_secret().to_owned());
        }
        if seeds.iter().any(|s| s.starts_with("rediss://")) {
            builder = builder
                .tls(redis::cluster::TlsMode::Secure)
                .certs(self.certificates());
        }
        builder.build()
    }

    /// Connects (the connection reconnects by itself afterwards).
    pub(super) async fn connect(&self) -> redis::RedisResult<Connection> {
        let status = Arc::new(Status::default());
        let link = match &self.topology {
            RedisTopology::Primary(url) => {
                let client = self.client(url.expose_secret())?;
                let address = client.get_connection_info().addr.to_string();
                *status.primary.lock().expect("never poisoned") = Some(address);
                Link::Primary(ConnectionManager::new_with_config(client, manager_config()).await?)
            }
            RedisTopology::Cluster(seeds) => {
                // redis-rs sends a command again after a lost connection or a
                // timeout, which may have run: the claims go through a second
                // connection that does not (see `Connection::at_most_once`).
                let retried = self.cluster_client(seeds, 3)?;
                let once = self.cluster_client(seeds, 0)?;
                Link::Cluster(Box::new(ClusterLink {
                    retried: retried.get_async_connection().await?,
                    once: once.get_async_connection().await?,
                }))
            }
            RedisTopology::Sentinel { .. } => Link::Sentinel(Arc::new(SentinelLink {
                sentinel: tokio::sync::Mutex::new(self.sentinel_client()?),
                current: Mutex::new(None),
            })),
        };
        let connection = Connection {
            link,
            status,
            once: false,
        };
        if let Link::Sentinel(sentinel) = &connection.link {
            sentinel.current(&connection.status).await?;
        }
        Ok(connection)
    }
}

/// A connection manager's settings: each attempt bounded, reconnects close together.
fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(2)
        // Reconnect attempts back off 100 ms, 200 ms… at most 1 s apart: without
        // the cap, redis-rs waits minutes before it notices Redis is back.
        .set_factor(100)
        .set_max_delay(1000)
}

/// What the connection has seen: for `/readyz`, `/metrics` and `/admin`.
#[derive(Debug, Default)]
pub(super) struct Status {
    /// The last command failed for want of a connection.
    down: AtomicBool,
    /// Connections regained after a loss.
    pub(super) reconnects: AtomicU64,
    /// Failovers the sentinels announced (`+switch-master`).
    pub(super) failovers: AtomicU64,
    /// When the last reconnect happened.
    pub(super) last_reconnect: Mutex<Option<tokio::time::Instant>>,
    /// The primary's address (Sentinel: the one it named last).
    pub(super) primary: Mutex<Option<String>>,
}

impl Status {
    fn observe<T>(&self, result: &redis::RedisResult<T>) {
        match result {
            Err(e) if lost(e) => self.down.store(true, Ordering::Relaxed),
            Err(_) => {}
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    self.reconnected();
                }
            }
        }
    }

    fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        *self.last_reconnect.lock().expect("never poisoned") = Some(tokio::time::Instant::now());
    }

    /// Sentinel named `address` the primary.
    fn primary_is(&self, address: &str) {
        let mut primary = self.primary.lock().expect("never poisoned");
        if primary.as_deref().is_some_and(|p| p != address) {
            tracing::info!(
                redis.primary = address,
                "writing to the primary Sentinel names now"
            );
        }
        *primary = Some(address.to_owned());
    }

    /// The sentinels announced a failover (`+switch-master`).
    pub(super) fn failed_over(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether an error means the node is gone or no longer the primary.
fn lost(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.kind() == redis::ErrorKind::ReadOnly
}

/// Whether `e` shows that the command did not run, so sending it again
/// cannot run it twice: refused before it was sent (no connection), or
/// answered with an error Redis gives instead of running it (a replica's
/// `READONLY`, `MASTERDOWN`, `LOADING`; a cluster's `MOVED`, `ASK`,
/// `TRYAGAIN`, `CLUSTERDOWN`). After a timeout or a connection lost once
/// the command was sent, whether it ran is unknown.
fn did_not_run(e: &redis::RedisError) -> bool {
    use redis::ErrorKind::{
        Ask, BusyLoadingError, ClusterDown, MasterDown, Moved, ReadOnly, TryAgain,
    };
    e.is_connection_refusal()
        || matches!(
            e.kind(),
            ReadOnly | MasterDown | BusyLoadingError | TryAgain | ClusterDown | Moved | Ask
        )
}

/// Sentinel: whether to ask the sentinels again after `e`. Anything but an
/// answer to the command itself (a wrong type, an error raised by a script):
/// besides a lost or demoted primary, a connection manager that gave up
/// reconnecting, `MASTERDOWN`, `LOADING`… all mean another node may be the
/// primary by now.
fn ask_again(e: &redis::RedisError) -> bool {
    use redis::ErrorKind::{NoScriptError, ResponseError, TypeError};
    lost(e) || !matches!(e.kind(), ResponseError | NoScriptError | TypeError)
}

/// The primary Sentinel names, reached through a connection manager that is
/// replaced when the primary is lost or turns replica.
pub(super) struct SentinelLink {
    sentinel: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
    current: Mutex<Option<(String, ConnectionManager)>>,
}

impl SentinelLink {
    /// The current primary's connection, asking the sentinels when there is none.
    async fn current(&self, status: &Status) -> redis::RedisResult<(String, ConnectionManager)> {
        if let Some(current) = self.current.lock().expect("never poisoned").clone() {
            return Ok(current);
        }
        let mut sentinel = self.sentinel.lock().await;
        if let Some(current) = self.current.lock().expect("never poisoned").clone() {
            return Ok(current);
        }
        let client = sentinel.async_get_client().await?;
        let address = client.get_connection_info().addr.to_string();
        let manager = ConnectionManager::new_with_config(client, manager_config()).await?;
        status.primary_is(&address);
        let current = (address, manager);
        *self.current.lock().expect("never poisoned") = Some(current.clone());
        Ok(current)
    }

    /// Drops the connection to `address` (lost, or no longer the primary).
    fn forget(&self, address: &str) {
        let mut current = self.current.lock().expect("never poisoned");
        if current.as_ref().is_some_and(|(a, _)| a == address) {
            *current = None;
        }
    }

    /// Sends `cmd` to the primary; when the primary is lost or demoted, asks
    /// the sentinels again and sends it once more, unless `once` and it may
    /// have run already.
    async fn command(&self, status: &Status, cmd: &Cmd, once: bool) -> redis::RedisResult<Value> {
        let (address, mut manager) = self.current(status).await?;
        match manager.req_packed_command(cmd).await {
            Err(e) if ask_again(&e) => {
                self.forget(&address);
                if once && !did_not_run(&e) {
                    return Err(e);
                }
                self.current(status).await?.1.req_packed_command(cmd).await
            }
            result => result,
        }
    }

    async fn commands(
        &self,
        status: &Status,
        cmd: &Pipeline,
        offset: usize,
        count: usize,
        once: bool,
    ) -> redis::RedisResult<Vec<Value>> {
        let (address, mut manager) = self.current(status).await?;
        match manager.req_packed_commands(cmd, offset, count).await {
            Err(e) if ask_again(&e) => {
                self.forget(&address);
                if once && !did_not_run(&e) {
                    return Err(e);
                }
                let (_, mut manager) = self.current(status).await?;
                manager.req_packed_commands(cmd, offset, count).await
            }
            result => result,
        }
    }
}

/// A connection to one primary, the primary Sentinel names, or a cluster;
/// cheap to clone, reconnects by itself.
#[derive(Clone)]
pub(super) struct Connection {
    link: Link,
    /// What it has seen (shared by its clones).
    pub(super) status: Arc<Status>,
    /// Sends no command twice (see [`Connection::at_most_once`]).
    once: bool,
}

#[derive(Clone)]
enum Link {
    /// One primary, behind a connection manager (which never sends a
    /// command again: after a lost connection it reconnects for the next).
    Primary(ConnectionManager),
    /// A cluster: each command goes to the node of its keys' slot.
    Cluster(Box<ClusterLink>),
    /// Sentinel: the primary it names.
    Sentinel(Arc<SentinelLink>),
}

/// A cluster's two connections: one that sends a command again after any
/// error redis-rs deems worth it, one that never does.
#[derive(Clone)]
struct ClusterLink {
    retried: ClusterConnection,
    once: ClusterConnection,
}

impl ClusterLink {
    async fn command(&mut self, cmd: &Cmd, once: bool) -> redis::RedisResult<Value> {
        if !once {
            return self.retried.req_packed_command(cmd).await;
        }
        match self.once.req_packed_command(cmd).await {
            Err(e) if did_not_run(&e) => self.once.req_packed_command(cmd).await,
            result => result,
        }
    }

    async fn commands(
        &mut self,
        cmd: &Pipeline,
        offset: usize,
        count: usize,
        once: bool,
    ) -> redis::RedisResult<Vec<Value>> {
        if !once {
            return self.retried.req_packed_commands(cmd, offset, count).await;
        }
        match self.once.req_packed_commands(cmd, offset, count).await {
            Err(e) if did_not_run(&e) => self.once.req_packed_commands(cmd, offset, count).await,
            result => result,
        }
    }
}

impl Connection {
    /// This connection for a command that must not run twice (a claim: sent
    /// again after it ran, it would find its own claim and read it as
    /// another instance's). Sentinel's failover and a cluster's redirections
    /// still send it again when the error shows it did not run; after a
    /// timeout or a connection lost with the command sent, the error goes
    /// to the caller, whose fallback (handle the push here, exchange
    /// without the shared cache) is right whether the command ran or not.
    /// A claim that can tell its own (the refresh lease) is better sent
    /// again on the plain connection.
    pub(super) fn at_most_once(&self) -> Self {
        Self {
            once: true,
            ..self.clone()
        }
    }

    /// Sentinel: lets the primary go when it says it is a replica now (an
    /// instance that only read since a failover still talks to the old one);
    /// the next command asks the sentinels again.
    pub(super) fn demoted(&self) {
        if let Link::Sentinel(sentinel) = &self.link {
            // Not `forget`: that would take the lock again.
            *sentinel.current.lock().expect("never poisoned") = None;
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = match &mut self.link {
                Link::Primary(c) => c.req_packed_command(cmd).await,
                Link::Cluster(c) => c.command(cmd, self.once).await,
                Link::Sentinel(s) => s.command(&self.status, cmd, self.once).await,
            };
            self.status.observe(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = match &mut self.link {
                Link::Primary(c) => c.req_packed_commands(cmd, offset, count).await,
                Link::Cluster(c) => c.commands(cmd, offset, count, self.once).await,
                Link::Sentinel(s) => {
                    s.commands(&self.status, cmd, offset, count, self.once)
                        .await
                }
            };
            self.status.observe(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Primary(c) => c.get_db(),
            Link::Cluster(c) => c.retried.get_db(),
            Link::Sentinel(_) => 0,
        }
    }
}
