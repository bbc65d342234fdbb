//! `wxgate serve`: the production server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use wxgate_gateway::clock::SystemClock;
use wxgate_gateway::token::center::Policy;
use wxgate_gateway::Gateway;

/// Arguments of `wxgate serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file.
    #[arg(short, long, default_value = "wxgate.toml")]
    config: PathBuf,
}

/// Serves until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before the configuration: server.max_connections defaults from it.
    let fd_limit = wxgate_gateway::connections::raise_open_file_limit();
    let config = super::load_config(&args.config)?;
    let listen = config.server.listen;
    let apps = config.apps.len();
    let max_connections = config.server.max_connections;
    let gateway = Gateway::new(config, Arc::new(SystemClock), Policy::default())
        .await
        .context("opening the store")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, apps, max_connections, fd_limit, "wxgate serving");
    println!("wxgate listening on http://{}", listener.local_addr()?);
    gateway.serve(listener, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
