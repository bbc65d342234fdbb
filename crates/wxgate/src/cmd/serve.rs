//! `wxgate serve`: the production server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use wxgate_gateway::clock::SystemClock;
use wxgate_gateway::reload::ConfigSource;
use wxgate_gateway::token::center::Policy;
use wxgate_gateway::{Gateway, Reloader};

/// Arguments of `wxgate serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file.
    #[arg(short, long, default_value = "wxgate.toml")]
    config: PathBuf,
}

/// Reloads the configuration on each `SIGHUP`; the outcome goes to the log
/// (an invalid file: every problem, and nothing changed).
fn reload_on_sighup(reloader: Reloader) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!(
                "SIGHUP cannot be watched: reload with POST /admin/reload or wxgate reload"
            );
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            // The reload logs what it did, or why it changed nothing.
            let _ = reloader.reload().await;
        }
    });
    #[cfg(not(unix))]
    let _ = reloader;
}

/// Serves until Ctrl-C or SIGTERM; `SIGHUP` reloads the configuration.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before the configuration: server.max_connections defaults from it.
    let fd_limit = wxgate_gateway::connections::raise_open_file_limit();
    let config = super::load_config(&args.config)?;
    let listen = config.server.listen;
    let apps = config.apps.len();
    let max_connections = config.server.max_connections;
    let gateway = Gateway::new(config, Arc::new(SystemClock), Policy::default())
        .await
        .context("opening the store")?
        .reading_from(ConfigSource::file(&args.config));
    reload_on_sighup(gateway.reloader());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, apps, max_connections, fd_limit, "wxgate serving");
    println!("wxgate listening on http://{}", listener.local_addr()?);
    gateway.serve(listener, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
