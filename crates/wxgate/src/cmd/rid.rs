//! `wxgate rid RID --app APPID`: what WeChat recorded of a failed call, looked
//! up through the running deployment (`GET /v1/apps/{appid}/rid/{rid}`, which
//! calls `/cgi-bin/openapi/rid/get` with the app's token).

use std::process::ExitCode;

use super::admin_api::{print_refusal, AdminApi, Target};

/// Arguments of `wxgate rid`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The request id, from the end of a WeChat errmsg (`rid: 6425d22a-37dd8402-0c127510`).
    rid: String,
    /// The app that made the call (only its own rids can be looked up).
    #[arg(long = "app")]
    appid: String,
    #[command(flatten)]
    target: Target,
}

/// Prints the recorded call; fails when WeChat or the gateway refused.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let api = AdminApi::new(args.target, "looking a rid up")?;
    let path = format!("/v1/apps/{}/rid/{}", args.appid, args.rid.trim());
    let (status, body) = api.call(reqwest::Method::GET, &path).await?;
    if !status.is_success() {
        print_refusal("rid lookup", status, &body);
        return Ok(ExitCode::FAILURE);
    }
    let request = &body["request"];
    let field = |name: &str| match &request[name] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    println!("invoke_time   {}", field("invoke_time"));
    println!("cost_in_ms    {}", field("cost_in_ms"));
    println!("client_ip     {}", field("client_ip"));
    println!("request_url   {}", field("request_url"));
    println!("request_body  {}", field("request_body"));
    println!("response_body {}", field("response_body"));
    Ok(ExitCode::SUCCESS)
}
