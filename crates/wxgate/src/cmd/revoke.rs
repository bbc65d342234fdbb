//! `wxgate revoke`: asks the running deployment to revoke an app's access
//! token (`POST /v1/apps/{appid}/access_token/revoke` with the admin key).

use std::process::ExitCode;

use super::admin_api::{print_refusal, AdminApi, Target};

/// Arguments of `wxgate revoke`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The app whose access token leaked.
    appid: String,
    #[command(flatten)]
    target: Target,
}

/// Prints what the gateway did; fails when it refused.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let api = AdminApi::new(args.target, "revoking")?;
    let path = format!("/v1/apps/{}/access_token/revoke", args.appid);
    let (status, body) = api.call(reqwest::Method::POST, &path).await?;
    if !status.is_success() {
        print_refusal("revoke", status, &body);
        return Ok(ExitCode::FAILURE);
    }
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
}
