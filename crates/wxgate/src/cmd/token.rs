//! `wxgate token`: the access_token the deployment serves, read from its store.

use std::path::PathBuf;
use std::process::ExitCode;

use wxgate_gateway::clock::{Clock, SystemClock};
use wxgate_gateway::config::StoreConfig;
use wxgate_gateway::store::Kind;

/// Arguments of `wxgate token`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The app.
    appid: String,
    /// The deployment's configuration file.
    #[arg(short, long, default_value = "wxgate.toml")]
    config: PathBuf,
}

/// Prints `access_token=…` and its remaining lifetime; fails when none is valid.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    anyhow::ensure!(
        config.apps.iter().any(|a| a.appid == args.appid),
        "{} is not configured in {}",
        args.appid,
        args.config.display()
    );
    if config.store == StoreConfig::Memory {
        anyhow::bail!("the memory store lives inside the server process; nothing to read");
    }
    let store = wxgate_gateway::open_store(&config.store).await?;
    let now = SystemClock.now();
    match store.load(&args.appid, Kind::AccessToken).await? {
        Some(c) if c.is_valid(now) => {
            println!("access_token={}", c.value);
            println!("expires_in={}", c.expires_in(now));
            Ok(ExitCode::SUCCESS)
        }
        Some(_) => anyhow::bail!(
            "the stored access_token of {} has expired: is the deployment running?",
            args.appid
        ),
        None => anyhow::bail!(
            "no access_token stored for {} yet: it is fetched on first use",
            args.appid
        ),
    }
}
