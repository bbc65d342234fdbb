//! Reaching Redis as production runs it: one primary (`redis://` or
//! `rediss://`), Redis Cluster (seed nodes), with TLS (a CA file, a client
//! certificate) and an ACL user and password given apart from the URL.
//!
//! Every topology ends up behind one [`Connection`], which the store's
//! commands and scripts run on without knowing which it is.

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

    /// The nodes to subscribe through: the primary, or each seed in turn.
    pub(super) fn nodes(&self) -> Vec<String> {
        match &self.topology {
            RedisTopology::Primary(url) => vec![url.expose_secret().to_owned()],
            RedisTopology::Sentinel { .. } => Vec::new(),
            RedisTopology::Cluster(seeds) => seeds.clone(),
        }
    }

    /// Connects (the connection reconnects by itself afterwards).
    pub(super) async fn connect(&self) -> redis::RedisResult<Connection> {
        match &self.topology {
            RedisTopology::Primary(url) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_secs(2))
                    .set_response_timeout(Duration::from_secs(2))
                    .set_number_of_retries(2)
                    // Reconnect attempts back off 100 ms, 200 ms… at most 1 s apart: without
                    // the cap, redis-rs waits minutes before it notices Redis is back.
                    .set_factor(100)
                    .set_max_delay(1000);
                let client = self.client(url.expose_secret())?;
                let manager = ConnectionManager::new_with_config(client, config).await?;
                Ok(Connection::Primary(manager))
            }
            RedisTopology::Cluster(seeds) => {
                let mut builder = redis::cluster::ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(Duration::from_secs(2))
                    .retries(3)
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
                let connection = builder.build()?.get_async_connection().await?;
                Ok(Connection::Cluster(connection))
            }
            RedisTopology::Sentinel { .. } => Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "Sentinel is not supported yet",
            ))),
        }
    }
}

/// A connection to one primary or to a cluster; cheap to clone, reconnects
/// by itself.
#[derive(Clone)]
pub(super) enum Connection {
    /// One primary, behind a connection manager.
    Primary(ConnectionManager),
    /// A cluster: each command goes to the node of its keys' slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Primary(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Primary(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Primary(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
