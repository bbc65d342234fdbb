//! `wxgate dev`: the embedded default. Starts the WeChat simulator with a demo
//! Official Account, a demo Mini Program, a demo WeCom app and a demo Open
//! Platform platform (an Official Account and a Mini Program authorize it at
//! start), and the gateway in front of it on a SQLite file, and prints
//! ready-to-paste commands. No WeChat account, no config file.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wxgate_gateway::clock::SystemClock;
use wxgate_gateway::token::center::Policy;
use wxgate_gateway::Gateway;
use wxgate_sim::{SimApp, SimComponent, SimConfig, SimCorpApp, Simulator};

/// The client key `wxgate dev` accepts (a development key: never reuse it).
const DEV_CLIENT_KEY: &str = "dev-client-key";
/// The demo's admin key, for `/admin`.
const DEV_ADMIN_KEY: &str = "wxgate-dev-admin-key";
/// The demo app's server token and EncodingAESKey, as typed into WeChat's console.
const DEV_TOKEN: &str = "devtoken";
const DEV_AES_KEY: &str = "wxgateDevKey0123456789abcdefghijklmnopqrstu";
/// The demo webhook's signing secret.
const DEV_WEBHOOK_SECRET: &str = "dev-webhook-secret";
/// The demo Mini Program.
const DEV_MINI_APPID: &str = "wxd000000000000002";
const DEV_MINI_SECRET: &str = "demo0mini0secret00000000000000000";
/// The demo WeCom app: corp, agentid, secret.
const DEV_CORPID: &str = "wwd0000000000000a1";
const DEV_AGENTID: &str = "1000002";
const DEV_CORP_SECRET: &str = "demo0wecom0secret0000000000000000000000000";
/// The demo Open Platform platform, and the accounts that authorize it at start.
const DEV_COMPONENT: &str = "wxd0000000000000c1";
const DEV_COMPONENT_SECRET: &str = "demo0component0secret000000000000";
const DEV_AUTHORIZER_OA: &str = "wxd0000000000000a1";
const DEV_AUTHORIZER_MP: &str = "wxd0000000000000b1";

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
    let mut sim_config = SimConfig::with_apps(vec![
        app.clone(),
        SimApp::miniprogram(DEV_MINI_APPID, DEV_MINI_SECRET),
    ]);
    sim_config
        .corps
        .push(SimCorpApp::new(DEV_CORPID, DEV_AGENTID, DEV_CORP_SECRET));
    // Its push URL is the gateway's, set once the gateway listens.
    sim_config.components.push(SimComponent::new(
        DEV_COMPONENT,
        DEV_COMPONENT_SECRET,
        DEV_TOKEN,
        DEV_AES_KEY,
        None,
    ));
    let sim = Simulator::new(sim_config)
        .spawn_on(&args.sim_listen)
        .await
        .with_context(|| format!("starting the simulator on {}", args.sim_listen))?;
    let webhook = demo_webhook().await?;
    let dir = private_dir()?;
    let db = dir.path().join("wxgate.db");
    let toml = format!(
        r#"
[server]
listen = "{listen}"
[store]
backend = "sqlite"
path = {db:?}
[upstream]
base_url = "{sim}"
wecom_base_url = "{sim}"
[admin]
key = "{admin_key}"
[[apps]]
appid = "{appid}"
secret_env = "WXGATE_DEV_SECRET"
token = "{token}"
encoding_aes_key = "{aes_key}"
mode = "safe"
js_domains = ["example.com"]
webhook = "{webhook}"
webhook_secret = "{webhook_secret}"
[[apps.rules]]
event = "subscribe"
reply = {{ text = "Welcome to the wxgate demo!" }}
[[apps.rules]]
keyword = "help"
reply = {{ text = "Send anything: the demo webhook echoes it." }}
[[apps]]
appid = "{mini}"
secret = "{mini_secret}"
type = "miniprogram"
push_format = "json"
token = "{token}"
encoding_aes_key = "{aes_key}"
webhook = "{webhook}"
webhook_secret = "{webhook_secret}"
[[apps.rules]]
keyword = "人工"
reply = {{ transfer_customer_service = true }}
[[wecom]]
corpid = "{corpid}"
agentid = {agentid}
secret = "{corp_secret}"
js_domains = ["example.com"]
token = "{token}"
encoding_aes_key = "{aes_key}"
webhook = "{webhook}"
webhook_secret = "{webhook_secret}"
[[components]]
component_appid = "{component}"
secret = "{component_secret}"
token = "{token}"
encoding_aes_key = "{aes_key}"
js_domains = ["example.com"]
webhook = "{webhook}"
webhook_secret = "{webhook_secret}"
[[components.rules]]
keyword = "help"
reply = {{ text = "An authorizer of the demo platform: send anything, the demo webhook echoes it." }}
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
        token = DEV_TOKEN,
        aes_key = DEV_AES_KEY,
        webhook_secret = DEV_WEBHOOK_SECRET,
        admin_key = DEV_ADMIN_KEY,
        mini = DEV_MINI_APPID,
        mini_secret = DEV_MINI_SECRET,
        corpid = DEV_CORPID,
        agentid = DEV_AGENTID,
        corp_secret = DEV_CORP_SECRET,
        component = DEV_COMPONENT,
        component_secret = DEV_COMPONENT_SECRET,
    );
    let env = BTreeMap::from([("WXGATE_DEV_SECRET".to_owned(), app.secret.clone())]);
    let config = wxgate_gateway::config::load(&toml, &env)?;
    let gateway = Gateway::new(config, Arc::new(SystemClock), Policy::default()).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    // The listener is bound: the platform's pushes wait for the gateway to serve.
    sim.set_component_push_url(DEV_COMPONENT, &format!("{url}/component/{DEV_COMPONENT}"))
        .map_err(anyhow::Error::msg)?;
    let serving = tokio::spawn(gateway.serve(listener, super::shutdown_signal()));
    demo_platform(&sim, &url).await?;
    print_banner(&url, &sim.url(), &app, &db);
    serving.await.context("the gateway stopped")??;
    drop(dir);
    Ok(ExitCode::SUCCESS)
}

/// Gets the demo platform going: its first verify ticket pushed to the
/// gateway (the component token is fetched with it), then an Official
/// Account and a Mini Program authorize it, as an administrator would on
/// WeChat's authorization page; waits until the gateway serves their tokens.
async fn demo_platform(sim: &wxgate_sim::RunningSim, url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    sim.push_due_tickets().await;
    let ready = |path: String| {
        let http = http.clone();
        async move {
            for _ in 0..100 {
                let answer = http.get(&path).bearer_auth(DEV_CLIENT_KEY).send().await;
                if answer.is_ok_and(|a| a.status().is_success()) {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            anyhow::bail!("the demo platform did not start: {path} never answered")
        }
    };
    ready(format!(
        "{url}/v1/components/{DEV_COMPONENT}/component_access_token"
    ))
    .await?;
    for (appid, kind) in [
        (DEV_AUTHORIZER_OA, "official"),
        (DEV_AUTHORIZER_MP, "miniprogram"),
    ] {
        let body = serde_json::json!({
            "component_appid": DEV_COMPONENT,
            "authorizer_appid": appid,
            "type": kind,
        });
        http.post(format!("{}/sim/authorize", sim.url()))
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("authorizing the demo platform for {appid}"))?;
        ready(format!("{url}/v1/apps/{appid}/access_token")).await?;
    }
    Ok(())
}

/// A fresh directory for the demo's SQLite file, this user's only: a random
/// name under `$TMPDIR` made with mkdir, which fails on anything already
/// there (a planted symlink included) and is retried with another name;
/// mode 0700. Removed, with the file, when dropped.
fn private_dir() -> anyhow::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("wxgate-dev-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder
        .tempdir()
        .context("creating a private directory for the demo's store")
}

/// The demo business server: checks wxgate's signature and echoes text messages.
async fn demo_webhook() -> anyhow::Result<String> {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Json, Response};
    use wxgate_gateway::message::webhook::{signature, SIGNATURE_HEADER, TIMESTAMP_HEADER};

    async fn echo(headers: HeaderMap, body: String) -> Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let timestamp: u64 = header(TIMESTAMP_HEADER).parse().unwrap_or(0);
        if header(SIGNATURE_HEADER) != signature(DEV_WEBHOOK_SECRET, timestamp, body.as_bytes()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        match request["push"]["content"].as_str() {
            Some(text) => {
                Json(serde_json::json!({"type": "text", "content": format!("echo: {text}")}))
                    .into_response()
            }
            None => StatusCode::NO_CONTENT.into_response(),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhook", listener.local_addr()?);
    let app = axum::Router::new().route("/webhook", axum::routing::post(echo));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// How to run this very binary from a shell: `wxgate` when that is what
/// `PATH` finds, else its path (`cargo run` leaves it under `target/`).
fn command_name() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "wxgate".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .filter_map(|dir| std::fs::canonicalize(dir.join("wxgate")).ok())
            .next()
            .is_some_and(|found| found == me)
    });
    let path = me.display().to_string();
    if on_path {
        "wxgate".into()
    } else if path.contains(char::is_whitespace) {
        format!("'{path}'")
    } else {
        path
    }
}

fn print_banner(url: &str, sim: &str, app: &SimApp, db: &std::path::Path) {
    let (appid, secret, key) = (&app.appid, &app.secret, DEV_CLIENT_KEY);
    let wxgate = command_name();
    let auth = format!("-H 'Authorization: Bearer {key}'");
    println!(
        "\
wxgate dev: the gateway in front of a simulated WeChat platform; no WeChat account needed.

  gateway    {url}
  simulator  {sim}   (stands in for https://api.weixin.qq.com)
  demo app   appid {appid}  secret {secret}
  Mini Program appid {mini}  secret {mini_secret}
  WeCom app  {corpid}/{agentid}  corpsecret {corp_secret}
  client key {key}
  status     {url}/admin   (admin key {admin_key})
  store      {db}

Try:
  curl {auth} {url}/v1/apps/{appid}/access_token
  curl {auth} {url}/v1/apps/{appid}/jsapi_ticket
  curl {auth} -H 'content-type: application/json' -X POST {url}/v1/apps/{appid}/jssdk/signature -d '{{\"url\":\"https://www.example.com/\"}}'
  curl '{url}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}'
  curl '{url}/cgi-bin/getcallbackip?access_token=TOKEN'   (any WeChat API, with the token above: an SDK's base URL)
  curl {auth} '{url}/proxy/{appid}/cgi-bin/user/info?openid=oDemoUser&lang=zh_CN'
  curl {url}/metrics
  {wxgate} push --url {url}/wx/{appid} --token {token} --appid {appid} --aes-key {aes_key} --text help
  {wxgate} push --url {url}/wx/{appid} --token {token} --appid {appid} --aes-key {aes_key} --text hello
  {wxgate} push --url {url}/wx/{appid} --token {token} --appid {appid} --aes-key {aes_key} --event subscribe
  curl {auth} {url}/v1/apps/{mini}/access_token   (the Mini Program's)
  curl {auth} {url}/v1/wecom/{corpid}/{agentid}/access_token   (the WeCom app's)
  curl '{url}/cgi-bin/gettoken?corpid={corpid}&corpsecret={corp_secret}'   (WeCom's token API, for WeCom SDKs)
  curl {auth} -H 'content-type: application/json' -X POST {url}/v1/wecom/{corpid}/{agentid}/jssdk/signature -d '{{\"url\":\"https://www.example.com/\"}}'
  {wxgate} push --url {url}/wecom/{corpid}/{agentid} --token {token} --corpid {corpid} --aes-key {aes_key} --agentid {agentid} --text hello
  {wxgate} push --url {url}/wx/{mini} --token {token} --appid {mini} --aes-key {aes_key} --miniprogram --format json --text 人工
  curl {auth} {url}/v1/components/{component}/component_access_token   (the demo Open Platform platform's)
  curl {auth} {url}/v1/components/{component}/authorizers
  curl {auth} {url}/v1/apps/{oa}/access_token   (an authorizer's, Official Account; {mp} is a Mini Program)
  {wxgate} push --url {url}/component/{component}/wx/{oa} --token {token} --appid {component} --aes-key {aes_key} --text help
  curl -X POST {sim}/sim/release_check -d '{{\"component_appid\":\"{component}\",\"url\":\"{url}/component/{component}/wx/$APPID$\"}}'   (WeChat's release test, 全网发布)
  curl {sim}/sim/stats
  WXGATE_ADMIN_KEY={admin_key} {wxgate} rid RID --app {appid} --url {url}   (RID: the end of an errmsg)

Ctrl-C stops.",
        db = db.display(),
        token = DEV_TOKEN,
        aes_key = DEV_AES_KEY,
        admin_key = DEV_ADMIN_KEY,
        mini = DEV_MINI_APPID,
        mini_secret = DEV_MINI_SECRET,
        corpid = DEV_CORPID,
        agentid = DEV_AGENTID,
        corp_secret = DEV_CORP_SECRET,
        component = DEV_COMPONENT,
        oa = DEV_AUTHORIZER_OA,
        mp = DEV_AUTHORIZER_MP,
    );
}
