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

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One primary: `redis://[user:password@]host:port/db` or `rediss://…`.
    Primary(String),
    /// Redis Cluster, reached through these seed nodes (`redis://h:7000`…);
    /// the rest of the cluster is discovered from them.
    Cluster(Vec<String>),
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
#[derive(Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Where.
    pub topology: RedisTopology,
    /// The ACL user, when not in the URL.
    pub username: Option<String>,
    /// The password, when not in the URL.
    pub password: Option<String>,
    /// TLS material for `rediss://` URLs (none: the system's roots).
    pub tls: RedisTls,
    /// Prefix of every key (`wxgate:`).
    pub key_prefix: String,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.topology {
            RedisTopology::Primary(_) => "primary",
            RedisTopology::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisOptions")
            .field("topology", &kind)
            .field("username", &self.username)
            .field("tls", &self.tls)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisOptions {
    /// One primary at `url`, no TLS material, no separate credentials.
    pub fn primary(url: &str, key_prefix: &str) -> Self {
        Self {
            topology: RedisTopology::Primary(url.to_owned()),
            username: None,
            password: None,
            tls: RedisTls::default(),
            key_prefix: key_prefix.to_owned(),
        }
    }

    /// A client for one node's `url`, with the credentials and TLS material.
    pub(super) fn client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        let mut info = url.into_connection_info()?;
        if self.username.is_some() {
            info.redis.username.clone_from(&self.username);
        }
        if self.password.is_some() {
            info.redis.password.clone_from(&self.password);
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
            RedisTopology::Primary(url) => vec![url.clone()],
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
                let manager = ConnectionManager::new_with_config(self.client(url)?, config).await?;
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
                    builder = builder.username(user.clone());
                }
                if let Some(password) = &self.password {
                    builder = builder.password(password.clone());
                }
                if seeds.iter().any(|s| s.starts_with("rediss://")) {
                    builder = builder
                        .tls(redis::cluster::TlsMode::Secure)
                        .certs(self.certificates());
                }
                let connection = builder.build()?.get_async_connection().await?;
                Ok(Connection::Cluster(connection))
            }
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
