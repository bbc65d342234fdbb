//! The HTTP surface. [`router`] lists every route; handlers live in one file per area.

mod client_api;
mod compat;
mod error;
mod jssdk;
mod ops;
mod router;
mod wechat;

use std::sync::Arc;

pub use error::ApiError;
pub use router::router;

use crate::config::{ClientConfig, ServerConfig};
use crate::message::Dispatcher;
use crate::token::TokenCenter;

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The token center.
    pub center: TokenCenter,
    /// Business servers allowed to use the client API.
    pub clients: Arc<Vec<ClientConfig>>,
    /// `[server]` settings.
    pub server: Arc<ServerConfig>,
    /// Handles verified pushes.
    pub dispatcher: Arc<Dispatcher>,
}
