//! Unmodified SDKs from the registries pointed at wxgate by their base-URL
//! setting alone (docs/sdk-recipes.md): the token, a JS-SDK ticket, a JSON
//! business call and a 150 KB media upload and download all work, with no
//! token fetch of their own and the current token on every forwarded call.
//! Fails, never skips, when an SDK is missing: scripts/test installs them.

use serde_json::Value;

use crate::{Env, Setup, APPID, SECRET};

/// The bytes every SDK uploads (as tests/sdk/media.js makes them).
fn media() -> Vec<u8> {
    (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// What every SDK run must show, at the simulator and in its own answers.
async fn assert_interop(env: &Env, sdk: &str, answer: &Value, token_calls_before: u64) {
    let shared = env.access_token().await;
    assert_eq!(answer["token"], shared.as_str(), "{sdk}: {answer}");
    let (_, ours) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    assert_eq!(answer["ticket"], ours["jsapi_ticket"], "{sdk}: {answer}");
    assert_eq!(answer["sent"]["errcode"], 0, "{sdk}: {answer}");
    let sent = env.sim.messages().last().unwrap().body.clone();
    assert!(
        sent["text"]["content"].as_str().unwrap().contains(sdk),
        "{sdk}: {sent}"
    );
    assert!(answer["upload"]["media_id"].is_string(), "{sdk}: {answer}");
    assert_eq!(answer["size"], media().len(), "{sdk}: {answer}");
    assert_eq!(answer["same"], true, "{sdk}: the download is the upload");
    let stats = env.sim.stats();
    assert_eq!(
        env.token_calls(),
        token_calls_before,
        "{sdk} caused no token fetch"
    );
    assert_eq!(
        stats.invalid_token_calls(),
        0,
        "{sdk}: the current token, always"
    );
    assert_eq!(stats.app(APPID).calls("/cgi-bin/message/custom/send"), 1);
    assert_eq!(stats.app(APPID).calls("/cgi-bin/media/upload"), 1);
    assert_eq!(stats.app(APPID).calls("/cgi-bin/media/get"), 1);
}

/// Runs `tests/sdk/{script}` with Node.js and reads the JSON it prints.
async fn node(script: &'static str, args: Vec<String>) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdk");
    assert!(
        std::path::Path::new(dir).join("node_modules").is_dir(),
        "the SDKs are not installed: scripts/test runs npm ci --prefix tests/sdk"
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(format!("{dir}/{script}"))
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .expect("node must be installed (scripts/test installs it)");
    assert!(
        output.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{script}: {e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_wechat_api_works_through_wxgate_by_its_prefix() {
    let env = Setup::new().start().await;
    let before = env.token_calls();
    let args = vec![env.url.clone(), APPID.into(), SECRET.into()];
    let answer = node("co-wechat-api.js", args).await;
    assert_interop(&env, "co-wechat-api", &answer, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_api_works_through_wxgate_by_its_endpoint() {
    let env = Setup::new().start().await;
    let before = env.token_calls();
    let args = vec![env.url.clone(), APPID.into(), SECRET.into()];
    let answer = node("wechat-api.js", args).await;
    assert_interop(&env, "wechat-api", &answer, before).await;
}

/// wechatpy 1.8.18: `API_BASE_URL`, plus its one quirk: `fetch_access_token`
/// hard-codes WeChat's token URL, so the subclass makes that call use the base URL too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpy_works_through_wxgate_by_its_api_base_url() {
    let env = Setup::new().start().await;
    let before = env.token_calls();
    let script = r#"
import io, json, sys
from wechatpy import WeChatClient
class Client(WeChatClient):
    API_BASE_URL = sys.argv[1] + "/cgi-bin/"
    def fetch_access_token(self):
        params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
        return self._fetch_access_token(url=self.API_BASE_URL + "token", params=params)
client = Client(sys.argv[2], sys.argv[3])
token = client.access_token
ticket = client.jsapi.get_ticket()
sent = client.message.send_text("oUser1", "hello from wechatpy")
data = bytes(i * 7 % 251 for i in range(150000))
photo = io.BytesIO(data)
photo.name = "photo.jpg"
upload = client.media.upload("image", photo)
download = client.media.download(upload["media_id"]).content
print(json.dumps({"token": token, "ticket": ticket["ticket"], "sent": sent, "upload": upload,
                  "size": len(download), "same": download == data}))
"#;
    let args = vec![env.url.clone(), APPID.into(), SECRET.into()];
    let answer = crate::wechatpy(script, args).await;
    assert_interop(&env, "wechatpy", &answer, before).await;
}

/// A token invalidated behind wxgate's back (another program fetched one):
/// the SDK's next business call, with the token it holds, still succeeds:
/// wxgate refreshes once and retries once; the SDK sees no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdks_call_survives_a_token_invalidated_behind_wxgates_back() {
    let env = Setup::new().sim(|s| s.grace = 0).start().await;
    let held = env.access_token().await;
    env.fetch_outside().await;
    let args = vec![env.url.clone(), APPID.into(), SECRET.into(), held];
    let answer = node("co-wechat-api-send.js", args).await;
    assert_eq!(answer["sent"]["errcode"], 0, "{answer}");
    let stats = env.sim.stats().app(APPID);
    // wxgate's first fetch, the outside one, and exactly one refresh.
    assert_eq!(env.token_calls(), 3);
    // The rejected call and exactly one retry.
    assert_eq!(stats.calls("/cgi-bin/message/custom/send"), 2);
    assert_eq!(stats.invalid_token_calls, 1);
}
