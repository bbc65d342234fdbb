//! One module per subcommand, and what several of them share.

pub(crate) mod admin_api;
pub(crate) mod check;
pub(crate) mod dev;
pub(crate) mod push;
pub(crate) mod reload;
pub(crate) mod revoke;
pub(crate) mod rid;
pub(crate) mod serve;
pub(crate) mod sign;
pub(crate) mod sim;
pub(crate) mod token;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use wxgate_gateway::config::{self, Config};

/// Loads `path` with the process environment as overrides and secret source.
pub(crate) fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    config::load(&text, &env).with_context(|| format!("checking {}", path.display()))
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
