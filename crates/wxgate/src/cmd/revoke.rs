//! `wxgate revoke`: asks the running deployment to revoke an app's access
//! token (`POST /v1/apps/{appid}/access_token/revoke` with the admin key).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use secrecy::ExposeSecret;

/// Arguments of `wxgate revoke`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The app whose access token leaked.
    appid: String,
    /// The deployment's configuration file (its listen address and admin key).
    #[arg(short, long, default_value = "wxgate.toml")]
    config: PathBuf,
    /// The gateway's base URL, when not `server.listen` on this host.
    #[arg(long)]
    url: Option<String>,
}

/// Prints what the gateway did; fails when it refused.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let key = config
        .admin_key
        .as_ref()
        .context("revoking needs the admin key: set [admin] key_env (or key_file)")?;
    let base = args.url.unwrap_or_else(|| {
        let mut listen = config.server.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{listen}")
    });
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/apps/{}/access_token/revoke",
            base.trim_end_matches('/'),
            args.appid
        ))
        .bearer_auth(key.expose_secret())
        .send()
        .await
        .with_context(|| format!("calling the gateway at {base}: is it running?"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        println!(
            "revoked {} ({} token)",
            body["revoked"].as_str().unwrap_or("?"),
            body["token_api"].as_str().unwrap_or("?")
        );
        println!(
            "replacement {}",
            body["replacement"].as_str().unwrap_or("?")
        );
        println!("{}", body["note"].as_str().unwrap_or(""));
        Ok(ExitCode::SUCCESS)
    } else {
        let error = &body["error"];
        eprintln!(
            "revoke refused (HTTP {}): {}",
            status.as_u16(),
            error["message"].as_str().unwrap_or("no reason given")
        );
        if let Some(hint) = error["hint"].as_str() {
            eprintln!("hint: {hint}");
        }
        Ok(ExitCode::FAILURE)
    }
}
