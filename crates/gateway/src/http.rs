//! The HTTP surface. [`router`] lists every route; handlers live in one file per area.

mod admin;
mod client_api;
mod compat;
mod direct;
mod error;
mod facade;
mod jssdk;
mod observe;
mod ops;
mod owner;
mod platform;
mod proxy;
mod router;
mod signin;
mod throttle;
mod wechat;

use std::sync::Arc;

pub use direct::Front;
pub use error::ApiError;
pub(crate) use ops::reasons;
pub use router::router;
pub use throttle::{Throttle, BACKOFF_SECS, MAX_FAILURES, MAX_PEERS, WINDOW_SECS};

use crate::clock::Clock;
use crate::config::{ProxyConfig, ServerConfig};
use crate::message::Dispatcher;
use crate::store::Store;
use crate::token::owners::Owners;
use crate::token::TokenCenter;

/// What every handler can reach: one `Arc`, so the clone each extractor
/// makes is one atomic increment. Its fields are [`Shared`]'s.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The token center: credentials, and nothing else.
    pub center: TokenCenter,
    /// Who has credentials (the center's own registry, shared).
    pub owners: Arc<Owners>,
    /// The clock everything runs on.
    pub clock: Arc<dyn Clock>,
    /// The store behind the center.
    pub store: Arc<dyn Store>,
    /// Business servers allowed to use the client API (replaced by a reload).
    pub clients: arc_swap::ArcSwap<crate::clients::Clients>,
    /// `[server]` settings.
    pub server: Arc<ServerConfig>,
    /// Handles verified pushes.
    pub dispatcher: Arc<Dispatcher>,
    /// Forwards `/proxy/…` calls.
    pub proxy: crate::proxy::Proxy,
    /// User sign-in: each code exchanged with WeChat once.
    pub signin: Arc<crate::signin::SignIn>,
    /// `[proxy]` settings.
    pub proxy_config: Arc<ProxyConfig>,
    /// The key that opens `/admin`; the page is closed without one.
    pub admin_key: Option<Arc<secrecy::SecretString>>,
    /// This instance's metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Failed credential checks per peer.
    pub throttle: Throttle,
    /// Where pushes may come from (`server.trusted_push_sources`).
    pub sources: Arc<crate::sources::CallbackRanges>,
    /// The configuration as it runs, and its reloads.
    pub running: Arc<crate::reload::Running>,
    /// The Open Platform platforms and their authorizers.
    pub platforms: Arc<crate::platform::Platforms>,
}

impl Shared {
    /// The current time of the gateway's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Reads the configuration file again and applies it (see [`crate::reload`]).
    pub async fn reload(&self) -> Result<crate::reload::Reloaded, crate::reload::ReloadError> {
        let targets = crate::reload::Targets {
            center: &self.center,
            dispatcher: &self.dispatcher,
            platforms: &self.platforms,
            clients: &self.clients,
            source_check: self.sources.is_on(),
        };
        let reloaded = self.running.reload(targets, self.now()).await?;
        if self.store.shares_pushes() {
            self.running.announce(self.store.as_ref(), self.now()).await;
        }
        Ok(reloaded)
    }
}

/// `Cache-Control: no-store` on an answer that holds a credential or a
/// secret: it is the caller's alone.
pub(crate) fn no_store(response: &mut axum::response::Response) {
    // A static, validated once: `HeaderValue::from_static` outside a const
    // context checks every byte on every call.
    static NO_STORE: axum::http::HeaderValue = axum::http::HeaderValue::from_static("no-store");
    (response.headers_mut()).insert(axum::http::header::CACHE_CONTROL, NO_STORE.clone());
}
