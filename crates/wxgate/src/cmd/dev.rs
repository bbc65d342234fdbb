//! `wxgate dev`: the embedded default. Starts the WeChat simulator with a demo
//! account and prints ready-to-paste commands. No WeChat account, no config.
//! The gateway (token center, `/wx/{appid}`) joins here as it lands.

use std::process::ExitCode;

use anyhow::Context as _;
use wxgate_sim::{SimApp, SimConfig, Simulator};

/// Arguments of `wxgate dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address of the simulator (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8090")]
    sim_listen: String,
}

/// Runs until Ctrl-C.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let app = SimApp::demo();
    let sim = Simulator::new(SimConfig::with_apps(vec![app.clone()]))
        .spawn_on(&args.sim_listen)
        .await
        .with_context(|| format!("starting the simulator on {}", args.sim_listen))?;
    let url = sim.url();
    let (appid, secret) = (&app.appid, &app.secret);
    println!(
        "\
wxgate dev: a simulated WeChat platform, no WeChat account needed.

  simulator  {url}   (stands in for https://api.weixin.qq.com)
  demo app   appid {appid}  secret {secret}

Try:
  curl '{url}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}'
  curl -X POST {url}/cgi-bin/stable_token -d '{{\"grant_type\":\"client_credential\",\"appid\":\"{appid}\",\"secret\":\"{secret}\"}}'
  curl {url}/sim/stats
  curl -X POST {url}/sim/clock -d '{{\"advance_secs\":7200}}'
  curl -X POST {url}/sim/faults -d '{{\"kind\":\"errcode\",\"errcode\":-1,\"count\":3}}'
  wxgate push --url http://YOUR-SERVER/wechat --token YOUR-TOKEN --text hello

Ctrl-C stops."
    );
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}
