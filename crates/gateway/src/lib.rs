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
//! - [`family`]: what differs between families of owners (Official Accounts, Mini Programs,
//!   WeCom), as one value each; the map is `docs/owner-model.md`.
//! - [`token`]: the [`token::TokenCenter`], its refresher, probe, audit log and diagnostics; the
//!   owners ([`token::owners`], added and removed at run time) and one
//!   [`token::issuer::Issuer`] per family.
//! - [`upstream`]: WeChat's HTTP API: the client, its failures, what errcodes mean.
//! - [`rules`]: static replies to pushes, from the configuration.
//! - [`message`]: pushes after verification: dedupe, rules, webhook, late replies; the
//!   [`message::Inbox`] each owner's pushes arrive at (defined in `inbox`, a leaf the
//!   configuration builds them with).
//! - [`proxy`]: forwards business servers' API calls with the current token.
//! - [`signin`]: user sign-in through the center: each code exchanged with WeChat once.
//! - [`logs`]: how log lines show values from outside (escaped, bounded).
//! - [`connections`]: the accept loop: connection cap, header and idle timeouts, shutdown.
//! - [`http`]: every route ([`http::router`]) and the one [`http::ApiError`].
//!
//! Start from [`Gateway`].

pub mod clients;
pub mod clock;
pub mod config;
pub mod connections;
pub mod family;
pub mod http;
mod inbox;
pub mod logs;
pub mod message;
pub mod metrics;
pub mod platform;
pub mod proxy;
pub mod reload;
pub mod rules;
pub mod signin;
pub mod sources;
pub mod store;
pub mod token;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{Config, StoreConfig};
use crate::message::Dispatcher;
use crate::metrics::Metrics;
use crate::store::{MemoryStore, RedisStore, SqliteStore, Store, StoreError};
use crate::token::center::Policy;
use crate::token::refresh::Refreshers;
use crate::token::{TokenCenter, Upstream};

/// This instance's name, `host:pid`: in logs, metrics, the status page and
/// the Redis lease owner, so operators can tell instances apart.
pub fn instance_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}:{}", std::process::id())
    })
}

/// Opens the store a configuration names.
pub async fn open_store(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config {
        StoreConfig::Sqlite { path } => Arc::new(SqliteStore::open(path)?),
        StoreConfig::Memory => Arc::new(MemoryStore::default()),
        StoreConfig::Redis(options) => Arc::new(RedisStore::open(options).await?),
    })
}

/// A configured gateway: its state and its background tasks.
#[derive(Debug)]
pub struct Gateway {
    state: http::AppState,
    _refreshers: Refreshers,
    /// Keeps the callback IP ranges fresh (`server.trusted_push_sources`).
    _sources: Option<AbortOnDrop>,
    /// Tells the instances sharing the store which configuration this one runs.
    _announcer: Option<AbortOnDrop>,
    /// Keeps each platform's authorizers in step with the store.
    _platforms: Option<AbortOnDrop>,
}

/// Reloads a gateway's configuration (see [`reload`]).
#[derive(Debug, Clone)]
pub struct Reloader(http::AppState);

impl Reloader {
    /// Reads the file again and applies it; an invalid file changes nothing.
    pub async fn reload(&self) -> Result<reload::Reloaded, reload::ReloadError> {
        self.0.reload().await
    }
}

/// A background task stopped with its owner.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
        let inboxes = reload::inboxes_of(&config);
        let running = Arc::new(reload::Running::new(&config, clock.now()));
        let metrics = Arc::new(Metrics::new(instance_name()));
        metrics.config_running(&config.fingerprint.whole);
        let wecom_owners: Vec<String> = config.wecom.iter().map(|w| w.owner()).collect();
        metrics.start_at_zero(
            (config.apps.iter().map(|a| a.appid.as_str()))
                .chain(wecom_owners.iter().map(String::as_str)),
            inboxes.iter().map(|inbox| inbox.owner.as_str()),
            (inboxes.iter().filter(|inbox| inbox.previous.is_some()))
                .map(|inbox| inbox.owner.as_str()),
        );
        let source_check = config.server.trusted_push_sources == config::PushSources::WeChat;
        if source_check {
            metrics.start_source_check_at_zero(inboxes.iter().map(|inbox| inbox.owner.as_str()));
        }
        let apps = config.apps.into_iter().map(Arc::new).collect();
        let policy = Policy {
            probe_interval: config.upstream.probe_interval_secs,
            ..policy
        };
        let upstream = Upstream::new(&config.upstream).with_metrics(metrics.clone());
        let wecom = config.wecom.into_iter().map(Arc::new).collect();
        let components = (config.components.iter().cloned().map(Arc::new)).collect();
        let center = TokenCenter::new(
            token::owners::Owners::new(apps, wecom, components),
            store.clone(),
            upstream.clone(),
            clock.clone(),
            policy,
            metrics.clone(),
        );
        let refreshers = center.spawn_refreshers();
        let sources = Arc::new(sources::CallbackRanges::new(source_check));
        let sources_task = sources.spawn(center.clone(), upstream.clone());
        let dispatcher = Dispatcher::new(
            center.clone(),
            upstream.clone(),
            inboxes,
            Duration::from_millis(config.server.reply_budget_ms),
            Duration::from_millis(config.server.webhook_timeout_ms),
            // A push is accepted until its timestamp is `tolerance` old, and its
            // timestamp may be `tolerance` ahead of its arrival: remember it
            // until then, and a minute more.
            2 * config.server.timestamp_tolerance_secs + 60,
            config.server.dedupe_capacity,
        );
        let dispatcher = Arc::new(dispatcher);
        let platforms = platform::Platforms::new(
            center.clone(),
            upstream.clone(),
            dispatcher.clone(),
            &config.components,
        );
        // Each platform's authorizers, from the store, then kept in step with it.
        let platforms_task = platforms.any().then(|| AbortOnDrop(platforms.spawn_sync()));
        let proxy = proxy::Proxy::new(&upstream, &config.proxy, metrics.clone());
        let signin = signin::SignIn::new(upstream, store.clone(), clock.clone(), metrics.clone());
        let state = http::AppState::new(http::Shared {
            owners: center.owners().clone(),
            center,
            clock,
            store,
            proxy,
            signin: Arc::new(signin),
            proxy_config: Arc::new(config.proxy),
            admin_key: config.admin_key.map(Arc::new),
            throttle: http::Throttle::new(metrics.clone()),
            sources,
            metrics,
            clients: arc_swap::ArcSwap::from_pointee(clients::Clients::new(config.clients)),
            running,
            server: Arc::new(config.server),
            dispatcher,
            platforms,
        });
        let announcer = state.store.shares_pushes().then(|| {
            let (running, store, clock) = (
                state.running.clone(),
                state.store.clone(),
                state.clock.clone(),
            );
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    running.announce(store.as_ref(), clock.now()).await;
                    clock.sleep_until(clock.now() + reload::ANNOUNCE_SECS).await;
                }
            }))
        });
        Self {
            state,
            _refreshers: refreshers,
            _sources: sources_task.map(AbortOnDrop),
            _announcer: announcer,
            _platforms: platforms_task,
        }
    }

    /// Reloads read the configuration from `source` (`wxgate serve -c FILE`).
    pub fn reading_from(self, source: reload::ConfigSource) -> Self {
        self.state.running.read_from(source);
        self
    }

    /// A handle that reloads the configuration (`SIGHUP`), usable while the gateway serves.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.state.clone())
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

    /// Serves on `listener` until `shutdown` completes (see [`connections`]
    /// for the connection cap and timeouts). Then it stops accepting, closes
    /// idle connections (half-sent requests included), lets requests under
    /// way finish for up to `server.shutdown_timeout_secs`, waits (up to 5 s)
    /// for credential fetches under way so their leases are released, and
    /// stops the refreshers.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Every platform's authorizers served from the first request on
        // (requests wait in the listener's queue meanwhile).
        if self.state.platforms.any() {
            // From the store only: looking a lost list up at WeChat (see
            // `Platforms::recover`) waits for the background sync.
            self.state.platforms.sync(false).await;
        }
        let limits = self.state.server.limits();
        let metrics = self.state.metrics.clone();
        let front = http::Front::new(self.state.clone(), self.router());
        connections::serve(listener, Arc::new(front), limits, metrics, shutdown).await;
        let Gateway {
            state,
            _refreshers,
            _sources,
            _announcer,
            _platforms,
        } = self;
        drop(_announcer);
        if state.store.shares_pushes() {
            // Gone: the other instances need not wait for this one to fall silent.
            let _ = state.store.set_instance(state.running.name(), None).await;
        }
        let held = state.center.quiesce(Duration::from_secs(5)).await;
        // Stopped while no fetch can start, so none is cut off half-way.
        drop(_refreshers);
        drop(held);
        tracing::info!("stopped");
        Ok(())
    }
}
