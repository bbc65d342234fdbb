//! Unmodified SDKs from the registries pointed at wxgate by their base-URL
//! setting alone (docs/sdk-recipes.md): the token, a JS-SDK ticket, a JSON
//! business call and a 150 KB media upload and download all work, with no
//! token fetch of their own and the current token on every forwarded call.
//! Fails, never skips, when an SDK is missing: scripts/test installs them.

use serde_json::Value;
use wxgate_testkit::sdk;

use crate::{Env, Setup, APPID, SECRET};

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
    assert_eq!(answer["size"], sdk::media().len(), "{sdk}: {answer}");
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

/// Each SDK against its own gateway and simulator: co-wechat-api by `prefix`,
/// wechat-api by `endpoint`, wechatpy by `API_BASE_URL` (and its token-URL quirk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_sdks_work_through_wxgate_by_their_base_url() {
    for &(name, program, script) in sdk::CLIENTS {
        let env = Setup::new().start().await;
        let before = env.token_calls();
        let args = vec![env.url.clone(), APPID.into(), SECRET.into()];
        let answer = sdk::run(program, script, args).await;
        assert_interop(&env, name, &answer, before).await;
    }
}

/// co-wechat-api loops forever on a 40001 from its token URL (each retry
/// fetches a token, whose 40001 it retries…); wxgate answers a wrong secret
/// 40125, as WeChat does, so the SDK stops at once with that error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_stops_co_wechat_api_at_once() {
    let env = Setup::new().start().await;
    let args = vec![env.url.clone(), APPID.into(), "wrong".into()];
    let failed = sdk::try_run("node", "co-wechat-api.js", args)
        .await
        .expect_err("a wrong secret fails");
    assert!(failed.contains("40125"), "{failed}");
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
    let answer = sdk::run("node", "co-wechat-api-send.js", args).await;
    assert_eq!(answer["sent"]["errcode"], 0, "{answer}");
    let stats = env.sim.stats().app(APPID);
    // wxgate's first fetch, the outside one, and exactly one refresh.
    assert_eq!(env.token_calls(), 3);
    // The rejected call and exactly one retry.
    assert_eq!(stats.calls("/cgi-bin/message/custom/send"), 2);
    // The rejected call, and the check that the 40001 was about wxgate's token
    // before a refresh was spent on it (issue 24, item 6).
    assert_eq!(stats.invalid_token_calls, 2);
    assert_eq!(stats.calls("/cgi-bin/get_api_domain_ip"), 1);
}

/// wechat-jssdk by its two URL options: the token and the JS-SDK ticket come
/// from wxgate (no fetch of its own), and its page signature verifies with
/// wxgate's ticket. It makes no business call, so that is all it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_jssdk_signs_with_wxgates_ticket() {
    let env = Setup::new().start().await;
    let before = env.token_calls();
    let args = vec![env.url.clone(), APPID.into(), SECRET.into()];
    let answer = sdk::run("node", "wechat-jssdk.js", args).await;
    assert_eq!(
        answer["token"],
        env.access_token().await.as_str(),
        "{answer}"
    );
    let (_, ours) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    let ticket = ours["jsapi_ticket"].as_str().unwrap();
    assert_eq!(answer["ticket"], ticket, "{answer}");
    let signature = &answer["signature"];
    let expected = wxgate_proto::jssdk::jssdk_signature(
        ticket,
        signature["nonceStr"].as_str().unwrap(),
        &signature["timestamp"].to_string().replace('"', ""),
        answer["url"].as_str().unwrap(),
    );
    assert_eq!(signature["signature"], expected.as_str(), "{answer}");
    assert_eq!(env.token_calls(), before, "wechat-jssdk fetched no token");
    assert_eq!(env.sim.stats().invalid_token_calls(), 0);
}
