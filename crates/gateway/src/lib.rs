//! The wxgate server: the token center (中控服务器) and its stores, the client
//! API, the WeChat-compatible endpoints and, as they land, the WeChat-facing
//! push endpoints, the proxy and the operations surface.
//!
//! It is not the protocol (that is `wxgate-proto`, pure) nor a fake of WeChat
//! (that is `wxgate-sim`, used by the tests).
//!
//! # Layout
//! - [`config`]: `wxgate.toml` + environment → [`config::Config`], all problems at once.
//! - [`clock`]: wall time as a dependency ([`clock::SystemClock`], [`clock::ManualClock`]).
//! - [`store`]: where credentials persist ([`store::Store`]: memory, sqlite).
//! - [`token`]: the [`token::TokenCenter`], its background refresher and WeChat's token API.
//! - [`message`]: pushes after verification: dedupe, rules, webhook, late replies.
//! - [`http`]: every route ([`http::router`]) and the one [`http::ApiError`].
//!
//! Start from [`Gateway`].

pub mod clock;
pub mod config;
pub mod http;
pub mod message;
pub mod store;
pub mod token;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{Config, StoreConfig};
use crate::message::Dispatcher;
use crate::store::{MemoryStore, RedisStore, SqliteStore, Store, StoreError};
use crate::token::center::Policy;
use crate::token::refresh::Refreshers;
use crate::token::{TokenCenter, Upstream};

/// Opens the store a configuration names.
pub async fn open_store(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    use secrecy::ExposeSecret;
    Ok(match config {
        StoreConfig::Sqlite { path } => Arc::new(SqliteStore::open(path)?),
        StoreConfig::Memory => Arc::new(MemoryStore::default()),
        StoreConfig::Redis { url, key_prefix } => {
            Arc::new(RedisStore::connect(url.expose_secret(), key_prefix).await?)
        }
    })
}

/// A configured gateway: its state and its background tasks.
#[derive(Debug)]
pub struct Gateway {
    state: http::AppState,
    _refreshers: Refreshers,
}

impl Gateway {
    /// Opens the configured store and builds the gateway.
    pub async fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        policy: Policy,
    ) -> Result<Self, StoreError> {
        let store = open_store(&config.store).await?;
        Ok(Self::with_store(config, store, clock, policy))
    }

    /// Builds the gateway on a given store. Must run inside a tokio runtime:
    /// it starts the background refreshers.
    pub fn with_store(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: Policy,
    ) -> Self {
        let apps = config.apps.into_iter().map(Arc::new).collect();
        let upstream = Upstream::new(&config.upstream);
        let center = TokenCenter::new(apps, store, upstream.clone(), clock, policy);
        let refreshers = center.spawn_refreshers();
        let dispatcher = Dispatcher::new(
            center.clone(),
            upstream,
            Duration::from_millis(config.server.reply_budget_ms),
            Duration::from_millis(config.server.webhook_timeout_ms),
            config.server.timestamp_tolerance_secs + 60,
        );
        let state = http::AppState {
            center,
            clients: Arc::new(config.clients),
            server: Arc::new(config.server),
            dispatcher: Arc::new(dispatcher),
        };
        Self {
            state,
            _refreshers: refreshers,
        }
    }

    /// The token center.
    pub fn center(&self) -> &TokenCenter {
        &self.state.center
    }

    /// The push dispatcher (its counters, for tests and metrics).
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.state.dispatcher
    }

    /// Every route, ready to serve.
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then stops the refreshers.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
