//! `wxgate check`: validate a configuration and what WeChat thinks of it.

use std::path::PathBuf;
use std::process::ExitCode;

use wxgate_gateway::clock::{Clock, SystemClock};
use wxgate_gateway::config::{StoreConfig, TokenApi};
use wxgate_gateway::store::Kind;
use wxgate_gateway::token::issuer::{AppIssuer, Issuer};
use wxgate_gateway::token::{Failure, Upstream};

/// Arguments of `wxgate check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file.
    #[arg(short, long, default_value = "wxgate.toml")]
    config: PathBuf,
}

/// Prints one line per check; fails if any check fails.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    println!(
        "ok   {}: configuration valid ({} apps, {} clients)",
        args.config.display(),
        config.apps.len(),
        config.clients.len()
    );
    let upstream = Upstream::new(&config.upstream);
    let mut failed = false;
    let store = match &config.store {
        StoreConfig::Memory => None,
        other => match wxgate_gateway::open_store(other).await {
            Ok(store) => Some(store),
            Err(e) => {
                println!("FAIL store: {e}");
                failed = true;
                None
            }
        },
    };
    for app in config.apps.into_iter().map(std::sync::Arc::new) {
        let issuer = AppIssuer::new(app.clone());
        if app.js_domains.len() > 5 {
            println!(
                "warn {}: {} js_domains; WeChat's console accepts at most 5",
                app.appid,
                app.js_domains.len()
            );
        }
        let result = match app.token_api {
            // A normal stable_token call returns the current token: harmless.
            TokenApi::Stable => issuer
                .fetch_access_token(&upstream, false)
                .await
                .map(|_| "credentials accepted by WeChat".to_owned()),
            // A classic fetch would supersede the deployment's token: check the stored one instead.
            TokenApi::Classic => {
                let stored = match &store {
                    Some(store) => store
                        .load(&app.appid, Kind::AccessToken)
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                };
                match stored.filter(|c| c.is_valid(SystemClock.now())) {
                    Some(c) => issuer.check(&upstream, &c.value).await.map(|()| "stored access_token works".to_owned()),
                    None => Ok("not fetched: a classic /cgi-bin/token call would supersede the running deployment's token".to_owned()),
                }
            }
        };
        match result {
            Ok(what) => println!("ok   {}: {what}", app.appid),
            Err(failure) => {
                failed = true;
                print_failure(&app.appid, &failure);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_failure(appid: &str, failure: &Failure) {
    println!("FAIL {appid}: {failure}");
    if let Some(hint) = &failure.hint {
        println!("     → {hint}");
    }
}
