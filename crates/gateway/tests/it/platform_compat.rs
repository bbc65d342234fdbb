//! Issue #26, the Open Platform's WeChat-compatible side: an Open Platform
//! SDK pointed at wxgate gets the center's component token
//! (`api_component_token`, for the platform's secret) and its authorizers'
//! tokens (`api_authorizer_token`, for a component token wxgate issued), and
//! its other component calls are forwarded with the current component
//! token; an authorizer's access token works through the façade as any
//! app's. Unmodified wechatpy `WeChatComponent` proves it.

use serde_json::{json, Value};
use wxgate_testkit::sdk;

use crate::platform::{
    authorize, calls, connect, get, setup, step, COMPONENT, COMPONENT_SECRET, KEY, MP, OA,
};
use crate::Env;

const COMPONENT_TOKEN: &str = "/cgi-bin/component/api_component_token";
const AUTHORIZER_TOKEN: &str = "/cgi-bin/component/api_authorizer_token";
const AUTHORIZER_INFO: &str = "/cgi-bin/component/api_get_authorizer_info";

async fn post(env: &Env, path: &str, body: &Value) -> Value {
    let answer = env
        .http
        .post(format!("{}{path}", env.url))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}: WeChat's shape is HTTP 200");
    answer.json().await.unwrap()
}

/// The component token the client API serves.
async fn component_token(env: &Env) -> String {
    let (status, body) = get(
        env,
        &format!("/v1/components/{COMPONENT}/component_access_token"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["component_access_token"].as_str().unwrap().to_owned()
}

/// A refusal in WeChat's shape: the errcode, never -1, and the rid suffix.
fn assert_refused(answer: &Value, errcode: i64, what: &str) {
    assert_eq!(answer["errcode"], errcode, "{what}: {answer}");
    let errmsg = answer["errmsg"].as_str().unwrap_or_default();
    assert!(errmsg.contains(" rid: "), "{what}: {answer}");
}

fn token_body(secret: &str) -> Value {
    json!({
        "component_appid": COMPONENT,
        "component_appsecret": secret,
        "component_verify_ticket": "ticket@@@the-callers-own",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_component_token_serves_the_centers_token_to_holders_of_the_platforms_secret() {
    let env = setup().start().await;
    connect(&env).await;
    let ours = component_token(&env).await;
    let answer = post(&env, COMPONENT_TOKEN, &token_body(COMPONENT_SECRET)).await;
    assert_eq!(answer["component_access_token"], ours.as_str(), "{answer}");
    let expires_in = answer["expires_in"].as_u64().unwrap();
    assert!((1..=7200).contains(&expires_in), "{answer}");
    // Again: still the center's, and WeChat was asked once, by wxgate.
    let again = post(&env, COMPONENT_TOKEN, &token_body(COMPONENT_SECRET)).await;
    assert_eq!(again["component_access_token"], ours.as_str());
    assert_eq!(calls(&env, COMPONENT_TOKEN), 1);

    // The caller's mistakes, in WeChat's shape with WeChat's errcodes.
    let wrong = post(&env, COMPONENT_TOKEN, &token_body("wrong-secret")).await;
    assert_refused(&wrong, 40125, "a wrong secret");
    let mut unknown = token_body(COMPONENT_SECRET);
    unknown["component_appid"] = "wxcnotaplatform".into();
    assert_refused(
        &post(&env, COMPONENT_TOKEN, &unknown).await,
        61011,
        "an unknown platform",
    );
    // An app's appid is no platform either.
    unknown["component_appid"] = crate::APPID.into();
    assert_refused(
        &post(&env, COMPONENT_TOKEN, &unknown).await,
        61011,
        "an app",
    );
    let response = env
        .http
        .post(format!("{}{COMPONENT_TOKEN}", env.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_refused(&response.json().await.unwrap(), 47001, "a malformed body");
    let answer = env.get_json(COMPONENT_TOKEN).await;
    assert_refused(&answer, 43002, "GET");
    assert_eq!(calls(&env, COMPONENT_TOKEN), 1, "WeChat never asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_authorizer_token_serves_the_centers_tokens_for_a_component_token_wxgate_issued() {
    use wxgate_gateway::store::{Kind, SqliteStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wxgate.db");
    let env = setup().sqlite(&db).start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    env.settle().await;
    let ct = component_token(&env).await;
    let (_, oa) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    let body = |appid: &str| {
        json!({
            "component_appid": COMPONENT,
            "authorizer_appid": appid,
            "authorizer_refresh_token": "the-callers-stale-one",
        })
    };
    let path = |token: &str| format!("{AUTHORIZER_TOKEN}?component_access_token={token}");
    let answer = post(&env, &path(&ct), &body(OA)).await;
    assert_eq!(
        answer["authorizer_access_token"], oa["access_token"],
        "{answer}"
    );
    assert!(answer["expires_in"].as_u64().unwrap() > 0, "{answer}");
    let stored = SqliteStore::open(&db)
        .unwrap()
        .load(OA, Kind::RefreshToken)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        answer["authorizer_refresh_token"],
        stored.value.as_str(),
        "the center's refresh token, not the caller's"
    );

    // Tokens wxgate did not issue for this platform: 40001, WeChat not called.
    for (token, what) in [
        ("forged", "a forged token"),
        (
            oa["access_token"].as_str().unwrap(),
            "an authorizer's token",
        ),
    ] {
        assert_refused(&post(&env, &path(token), &body(OA)).await, 40001, what);
    }
    let mut other = body(OA);
    other["component_appid"] = "wxcanotherplatform".into();
    assert_refused(
        &post(&env, &path(&ct), &other).await,
        40001,
        "another platform's appid",
    );
    let response = env
        .http
        .post(format!("{}{}", env.url, path(&ct)))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_refused(&response.json().await.unwrap(), 47001, "a malformed body");
    // An account that never authorized the platform.
    let answer = post(&env, &path(&ct), &body(MP)).await;
    assert_refused(&answer, 61003, "not an authorizer");
    // A revoked authorizer: 61003, and what to do.
    let revoked = env
        .http
        .post(format!("{}/sim/unauthorize", env.sim.url()))
        .json(&json!({ "component_appid": COMPONENT, "authorizer_appid": OA }))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let answer = post(&env, &path(&ct), &body(OA)).await;
    assert_refused(&answer, 61003, "revoked");
    assert!(
        answer["errmsg"].as_str().unwrap().contains("authorize_url"),
        "{answer}"
    );
    assert_eq!(
        calls(&env, AUTHORIZER_TOKEN),
        0,
        "every answer came from the center"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_forwards_a_platforms_calls_with_the_current_component_token() {
    let env = setup().start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    env.settle().await;
    let held = component_token(&env).await;
    let info = json!({ "component_appid": COMPONENT, "authorizer_appid": OA });
    let path = |token: &str| format!("{AUTHORIZER_INFO}?component_access_token={token}");
    let before = calls(&env, AUTHORIZER_INFO);
    let answer = post(&env, &path(&held), &info).await;
    assert_eq!(
        answer["authorization_info"]["authorizer_appid"], OA,
        "{answer}"
    );
    assert_eq!(calls(&env, AUTHORIZER_INFO), before + 1);

    // A component token wxgate did not issue: 40001, WeChat not called.
    let answer = post(&env, &path("forged"), &info).await;
    assert_refused(&answer, 40001, "a forged component token");
    let answer = post(&env, AUTHORIZER_INFO, &info).await;
    assert_refused(&answer, 40001, "no component token");
    assert_eq!(calls(&env, AUTHORIZER_INFO), before + 1);
    // The call that takes the secret stays refused.
    let answer = post(
        &env,
        &format!("/cgi-bin/component/api_start_push_ticket?component_access_token={held}"),
        &json!({ "component_appid": COMPONENT, "component_secret": COMPONENT_SECRET }),
    )
    .await;
    assert_refused(&answer, 48001, "api_start_push_ticket");
    assert!(
        answer["errmsg"].as_str().unwrap().contains("verify ticket"),
        "{answer}"
    );

    // Another program fetches a component token behind wxgate's back; once
    // the superseded one's 5 minutes are over, WeChat rejects wxgate's. The
    // SDK's call with the token it holds still succeeds: one refresh, one retry.
    let ticket: Value = env
        .http
        .get(format!(
            "{}/sim/component/{COMPONENT}/ticket",
            env.sim.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rival = env
        .http
        .post(format!("{}{COMPONENT_TOKEN}", env.sim.url()))
        .json(&json!({
            "component_appid": COMPONENT,
            "component_appsecret": COMPONENT_SECRET,
            "component_verify_ticket": ticket["ticket"],
        }))
        .send()
        .await
        .unwrap();
    let rival: Value = rival.json().await.unwrap();
    assert!(rival["component_access_token"].is_string(), "{rival}");
    step(&env, 301).await;
    let fetches = calls(&env, COMPONENT_TOKEN);
    let invalid = env.sim.stats().component(COMPONENT).invalid_token_calls;
    let answer = post(&env, &path(&held), &info).await;
    assert_eq!(
        answer["authorization_info"]["authorizer_appid"], OA,
        "{answer}"
    );
    assert_eq!(calls(&env, COMPONENT_TOKEN), fetches + 1, "one refresh");
    assert_eq!(
        env.sim.stats().component(COMPONENT).invalid_token_calls,
        invalid + 1,
        "the rejected call only: the retry had the new token"
    );
    let current = component_token(&env).await;
    assert_ne!(current, held);
    // The held one, replaced but not expired, is still taken from the SDK.
    let answer = post(&env, &path(&held), &info).await;
    assert_eq!(
        answer["authorization_info"]["authorizer_appid"], OA,
        "{answer}"
    );
    assert_eq!(
        env.sim.stats().component(COMPONENT).invalid_token_calls,
        invalid + 1
    );
}

/// Authorizers are owners: their access token works through the façade
/// like any app's, swapped for the current one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorizers_access_token_works_through_the_facade() {
    let env = setup().start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    env.settle().await;
    let (_, oa) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    let token = oa["access_token"].as_str().unwrap();
    let answer = env
        .get_json(&format!("/cgi-bin/get_api_domain_ip?access_token={token}"))
        .await;
    assert!(answer["ip_list"].is_array(), "{answer}");
    let sent = post(
        &env,
        &format!("/cgi-bin/message/custom/send?access_token={token}"),
        &json!({"touser": "oUser1", "msgtype": "text", "text": {"content": "from an authorizer"}}),
    )
    .await;
    assert_eq!(sent["errcode"], 0, "{sent}");
    let stats = env.sim.stats().app(OA);
    assert_eq!(stats.calls("/cgi-bin/get_api_domain_ip"), 1);
    assert_eq!(stats.calls("/cgi-bin/message/custom/send"), 1);
    assert_eq!(stats.invalid_token_calls, 0);
}

/// Under the platform's root, a Mini Program's privacy settings are called
/// with the authorizer's `access_token`: forwarded with its current one, as
/// any token's call; a token wxgate did not issue is 40001, WeChat not
/// called. A platform call spelling its component token `access_token` (the
/// newer docs) is served the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_platforms_root_an_access_token_is_an_authorizers_or_the_platforms() {
    const PRIVACY: &str = "/cgi-bin/component/getprivacysetting";
    let env = setup().start().await;
    connect(&env).await;
    authorize(&env, MP, "miniprogram").await;
    env.settle().await;
    let (_, mp) = get(&env, &format!("/v1/apps/{MP}/access_token")).await;
    let token = mp["access_token"].as_str().unwrap();
    let body = json!({ "privacy_ver": 2 });
    let answer = post(&env, &format!("{PRIVACY}?access_token={token}"), &body).await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    assert!(answer["setting_list"].is_array(), "{answer}");
    let stats = env.sim.stats().app(MP);
    assert_eq!(stats.calls(PRIVACY), 1);
    assert_eq!(stats.invalid_token_calls, 0);

    let answer = post(&env, &format!("{PRIVACY}?access_token=forged"), &body).await;
    assert_refused(&answer, 40001, "a forged access token");
    assert_eq!(
        env.sim.stats().app(MP).calls(PRIVACY),
        1,
        "WeChat not called"
    );

    // The newer docs' spelling of a platform's own call, `access_token` for
    // the component token, is the platform's token all the same.
    let held = component_token(&env).await;
    let before = calls(&env, AUTHORIZER_INFO);
    let info = json!({ "component_appid": COMPONENT, "authorizer_appid": MP });
    let answer = post(
        &env,
        &format!("{AUTHORIZER_INFO}?access_token={held}"),
        &info,
    )
    .await;
    assert_eq!(
        answer["authorization_info"]["authorizer_appid"], MP,
        "{answer}"
    );
    assert_eq!(calls(&env, AUTHORIZER_INFO), before + 1);
}

/// wechatpy's `WeChatComponent`, unmodified, pointed at wxgate by its
/// `API_BASE_URL`: its component token and an authorizer's are wxgate's,
/// its own ticket and refresh token ignored, and WeChat is asked for no
/// token on its behalf. Fails, never skips, when wechatpy is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_wechatpy_component_shares_wxgates_component_and_authorizer_tokens() {
    let env = setup().start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    env.settle().await;
    let ct = component_token(&env).await;
    let (_, oa) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    let before = env.sim.stats();
    let args = vec![
        env.url.clone(),
        COMPONENT.into(),
        COMPONENT_SECRET.into(),
        OA.into(),
        KEY.into(),
    ];
    let answer = sdk::run("python3", "wechatpy_component.py", args).await;
    assert_eq!(answer["token"], ct.as_str(), "{answer}");
    assert_eq!(
        answer["fetched"]["component_access_token"],
        ct.as_str(),
        "{answer}"
    );
    assert_eq!(answer["authorizer_token"], oa["access_token"], "{answer}");
    assert_eq!(
        answer["refreshed"]["authorizer_access_token"], oa["access_token"],
        "{answer}"
    );
    let refresh = answer["refreshed"]["authorizer_refresh_token"]
        .as_str()
        .unwrap();
    assert_ne!(refresh, "the-callers-stale-refresh-token", "{answer}");
    assert_eq!(
        answer["info"]["authorization_info"]["authorizer_appid"], OA,
        "{answer}"
    );
    assert!(answer["ips"].is_array(), "{answer}");
    let after = env.sim.stats();
    for path in [COMPONENT_TOKEN, AUTHORIZER_TOKEN] {
        assert_eq!(
            after.endpoint_calls(path),
            before.endpoint_calls(path),
            "{path}: no fetch on wechatpy's behalf"
        );
    }
    assert_eq!(
        after.endpoint_calls(AUTHORIZER_INFO),
        before.endpoint_calls(AUTHORIZER_INFO) + 1
    );
    assert_eq!(after.component(COMPONENT).invalid_token_calls, 0);
    assert_eq!(after.app(OA).invalid_token_calls, 0);
    assert_eq!(after.app(OA).calls("/cgi-bin/getcallbackip"), 1);
}
