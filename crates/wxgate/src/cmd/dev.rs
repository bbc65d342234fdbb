//! `wxgate dev`: the embedded default. Starts the WeChat simulator with a demo
//! account and the gateway in front of it on a SQLite file, and prints
//! ready-to-paste commands. No WeChat account, no config file.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wxgate_gateway::clock::SystemClock;
use wxgate_gateway::token::center::Policy;
use wxgate_gateway::Gateway;
use wxgate_sim::{SimApp, SimConfig, Simulator};

/// The client key `wxgate dev` accepts (a development key: never reuse it).
const DEV_CLIENT_KEY: &str = "dev-client-key";

/// Arguments of `wxgate dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address of the gateway (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Address of the simulator (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8090")]
    sim_listen: String,
}

/// Runs until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let app = SimApp::demo();
    let sim = Simulator::new(SimConfig::with_apps(vec![app.clone()]))
        .spawn_on(&args.sim_listen)
        .await
        .with_context(|| format!("starting the simulator on {}", args.sim_listen))?;
    let db = std::env::temp_dir().join(format!("wxgate-dev-{}.db", std::process::id()));
    let toml = format!(
        r#"
[server]
listen = "{listen}"
[store]
backend = "sqlite"
path = {db:?}
[upstream]
base_url = "{sim}"
[[apps]]
appid = "{appid}"
secret_env = "WXGATE_DEV_SECRET"
js_domains = ["example.com"]
[[clients]]
name = "dev"
key_sha256 = "{key}"
apps = ["*"]
"#,
        listen = args.listen,
        db = db.display().to_string(),
        sim = sim.url(),
        appid = app.appid,
        key = hex::encode(Sha256::digest(DEV_CLIENT_KEY.as_bytes())),
    );
    let env = BTreeMap::from([("WXGATE_DEV_SECRET".to_owned(), app.secret.clone())]);
    let config = wxgate_gateway::config::load(&toml, &env)?;
    let gateway = Gateway::new(config, Arc::new(SystemClock), Policy::default())?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    print_banner(&url, &sim.url(), &app, &db);
    gateway.serve(listener, super::shutdown_signal()).await?;
    let _ = std::fs::remove_file(&db);
    Ok(ExitCode::SUCCESS)
}

fn print_banner(url: &str, sim: &str, app: &SimApp, db: &std::path::Path) {
    let (appid, secret, key) = (&app.appid, &app.secret, DEV_CLIENT_KEY);
    let auth = format!("-H 'Authorization: Bearer {key}'");
    println!(
        "\
wxgate dev: the gateway in front of a simulated WeChat platform; no WeChat account needed.

  gateway    {url}
  simulator  {sim}   (stands in for https://api.weixin.qq.com)
  demo app   appid {appid}  secret {secret}
  client key {key}
  store      {db}

Try:
  curl {auth} {url}/v1/apps/{appid}/access_token
  curl {auth} {url}/v1/apps/{appid}/jsapi_ticket
  curl {auth} -H 'content-type: application/json' -X POST {url}/v1/apps/{appid}/jssdk/signature -d '{{\"url\":\"https://www.example.com/\"}}'
  curl '{url}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}'
  curl {sim}/sim/stats
  wxgate push --url http://YOUR-SERVER/wechat --token YOUR-TOKEN --text hello

Ctrl-C stops.",
        db = db.display()
    );
}
