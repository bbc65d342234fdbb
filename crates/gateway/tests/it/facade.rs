//! The WeChat API façade: an SDK whose base URL is wxgate calls any WeChat API
//! with the token wxgate gave it; wxgate sends the current one (issue #18).

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wxgate_sim::{Fault, FaultAction};

use crate::{Env, Setup, APPID, CLIENT_KEY, SECRET};

const CALLBACK_IP: &str = "/cgi-bin/getcallbackip";
const CUSTOM_SEND: &str = "/cgi-bin/message/custom/send";

/// Every call the simulator answered, token fetches included.
fn upstream_calls(env: &Env) -> u64 {
    env.sim.stats().endpoint_calls.values().sum()
}

/// The token as an SDK gets it: from wxgate's `/cgi-bin/token`.
async fn sdk_token(env: &Env) -> String {
    let answer = env
        .get_json(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
        ))
        .await;
    answer["access_token"].as_str().unwrap().to_owned()
}

/// GETs a path and returns (HTTP status, request id, JSON).
async fn get(env: &Env, path: &str) -> (u16, String, Value) {
    let response = env
        .http
        .get(format!("{}{path}", env.url))
        .send()
        .await
        .unwrap();
    let rid = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (
        response.status().as_u16(),
        rid,
        response.json().await.unwrap(),
    )
}

/// Asserts WeChat's shape for a refusal: HTTP 200, this errcode, errmsg ending in ` rid: <id>`.
fn assert_refusal((status, rid, body): &(u16, String, Value), errcode: i64, what: &str) {
    assert_eq!(
        (*status, body["errcode"].as_i64()),
        (200, Some(errcode)),
        "{what}: {body}"
    );
    let errmsg = body["errmsg"].as_str().unwrap();
    assert!(
        errmsg.ends_with(&format!(" rid: {rid}")),
        "{what}: {errmsg}"
    );
}

#[tokio::test]
async fn an_sdk_calls_any_api_with_the_token_wxgate_gave_it() {
    let env = Setup::new().start().await;
    let token = sdk_token(&env).await;
    let (status, _, body) = get(&env, &format!("{CALLBACK_IP}?access_token={token}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["ip_list"].as_array().is_some_and(|l| !l.is_empty()),
        "{body}"
    );

    let message = json!({"touser": "oUser1", "msgtype": "text", "text": {"content": "你好"}});
    let response = env
        .http
        .post(format!("{}{CUSTOM_SEND}?access_token={token}", env.url))
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errcode"], 0, "{body}");
    assert_eq!(env.sim.messages().last().unwrap().body, message);
    // An API the simulator does not implement: its answer in WeChat's
    // shape, naming the path (an SDK says why, not "errcode None").
    let (status, _, body) = get(&env, &format!("/cgi-bin/user/get?access_token={token}")).await;
    assert_eq!(
        (status, body["errcode"].as_i64()),
        (200, Some(48001)),
        "{body}"
    );
    assert!(
        body["errmsg"]
            .as_str()
            .unwrap()
            .contains("not simulated: /cgi-bin/user/get"),
        "{body}"
    );

    let stats = env.sim.stats();
    assert_eq!(env.token_calls(), 1, "the SDK fetched no token of its own");
    assert_eq!(stats.app(APPID).calls(CALLBACK_IP), 1);
    assert_eq!(stats.invalid_token_calls(), 0);
    // Counted with the proxy's bounded labels.
    let forwarded = wxgate_testkit::metric(
        &env.http,
        &env.url,
        &format!("wxgate_upstream_calls_total{{endpoint=\"{CUSTOM_SEND}\",errcode=\"0\"}}"),
    )
    .await;
    assert_eq!(forwarded, 1.0);
}

#[tokio::test]
async fn an_unknown_token_is_answered_40001_without_calling_wechat() {
    let env = Setup::new().start().await;
    let warm_up = upstream_calls(&env);
    for token in ["forged", "", "ACCESS_TOKEN%00"] {
        let answer = get(&env, &format!("{CALLBACK_IP}?access_token={token}")).await;
        assert_refusal(&answer, 40001, token);
    }
    let answer = get(&env, CALLBACK_IP).await;
    assert_refusal(&answer, 40001, "no token");
    // Two different tokens in one query: ambiguous, refused.
    let token = sdk_token(&env).await;
    let answer = get(
        &env,
        &format!("{CALLBACK_IP}?access_token={token}&access_token=x"),
    )
    .await;
    assert_refusal(&answer, 40001, "two tokens");
    assert_eq!(
        upstream_calls(&env),
        warm_up,
        "nothing reached the simulator"
    );
}

#[tokio::test]
async fn a_token_invalidated_behind_wxgates_back_costs_one_refresh_and_one_retry() {
    let env = Setup::new().sim(|s| s.grace = 0).start().await;
    let token = sdk_token(&env).await;
    // Someone else fetches a classic token: with no grace, wxgate's dies at once.
    env.fetch_outside().await;
    let (status, _, body) = get(&env, &format!("{CALLBACK_IP}?access_token={token}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["ip_list"].is_array(), "{body}");
    let stats = env.sim.stats().app(APPID);
    // wxgate's first fetch, the outside one, and exactly one refresh.
    assert_eq!(env.token_calls(), 3);
    // The rejected call and exactly one retry.
    assert_eq!(stats.calls(CALLBACK_IP), 2);
    assert_eq!(stats.invalid_token_calls, 1);
    // The SDK's old token is now wxgate's previous one: still taken, the current one sent.
    let (status, _, body) = get(&env, &format!("{CALLBACK_IP}?access_token={token}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.sim.stats().app(APPID).invalid_token_calls, 1);
}

#[tokio::test]
async fn the_previous_token_is_taken_until_it_expires_and_not_after_a_revocation() {
    const ADMIN_KEY: &str = "facade-admin-key-0123456789";
    let env = Setup::new().admin(ADMIN_KEY).start().await;
    let first = sdk_token(&env).await;
    let (status, body) = env
        .client_post(
            &format!("/v1/apps/{APPID}/access_token/refresh"),
            json!({"invalid_token": first}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = sdk_token(&env).await;
    assert_ne!(first, second);
    let (status, _, body) = get(&env, &format!("{CALLBACK_IP}?access_token={first}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["ip_list"].is_array(),
        "the previous token is taken: {body}"
    );
    assert_eq!(
        env.sim.stats().invalid_token_calls(),
        0,
        "the current one was sent"
    );
    // Past WeChat's 5-minute grace for it, still taken: an SDK caches a token
    // for the expires_in it was given, and wxgate renews ahead of that.
    env.advance(301).await;
    let (status, _, body) = get(&env, &format!("{CALLBACK_IP}?access_token={first}")).await;
    assert!(body["ip_list"].is_array(), "{status}: {body}");
    assert_eq!(
        env.sim.stats().invalid_token_calls(),
        0,
        "the current one was sent"
    );
    // Once it has expired, no more.
    env.advance(7200).await;
    let answer = get(&env, &format!("{CALLBACK_IP}?access_token={first}")).await;
    assert_refusal(&answer, 40001, "expired");

    // A revoked token is refused at once, whatever WeChat's grace.
    let leaked = sdk_token(&env).await;
    let response = env
        .http
        .post(format!("{}/v1/apps/{APPID}/access_token/revoke", env.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let answer = get(&env, &format!("{CALLBACK_IP}?access_token={leaked}")).await;
    assert_refusal(&answer, 40001, "revoked");
    let replacement = sdk_token(&env).await;
    assert_ne!(replacement, leaked);
    let (status, _, body) = get(&env, &format!("{CALLBACK_IP}?access_token={replacement}")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_second_rejection_is_answered_in_wechats_shape_not_looped_on() {
    let env = Setup::new().start().await;
    let token = sdk_token(&env).await;
    env.sim.add_fault(Fault {
        path: Some(CALLBACK_IP.into()),
        action: FaultAction::Errcode {
            errcode: 40001,
            errmsg: "invalid credential".into(),
        },
        count: Some(10),
        rate: None,
    });
    let answer = get(&env, &format!("{CALLBACK_IP}?access_token={token}")).await;
    assert_refusal(&answer, 40001, "rejected twice");
    assert_eq!(env.sim.stats().endpoint_calls(CALLBACK_IP), 2);
    assert_eq!(env.token_calls(), 2);
}

/// Sends `request` (a whole request head) as written and returns the raw answer.
async fn raw(env: &Env, request: &str) -> String {
    let addr = env.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn nothing_leaves_for_a_host_other_than_the_upstream() {
    let env = Setup::new().start().await;
    let token = sdk_token(&env).await;
    // A decoy host: any connection to it is a leak.
    let decoy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = decoy.local_addr().unwrap().to_string();
    let peers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let accepted = peers.clone();
    tokio::spawn(async move {
        while let Ok((_, peer)) = decoy.accept().await {
            accepted.lock().unwrap().push(peer);
        }
    });
    let gateway = env.url.trim_start_matches("http://").to_owned();
    let q = format!("access_token={token}");
    let refused = [
        format!("//{host}{CALLBACK_IP}?{q}"),
        format!("//{host}/cgi-bin/getcallbackip?{q}"),
        format!("/cgi-bin/@{host}/getcallbackip?{q}"),
        format!("/cgi-bin/x@{host}?{q}"),
        format!("/cgi-bin/%2F%2F{host}/getcallbackip?{q}"),
        format!("/cgi-bin/..%2f..%2f{host}?{q}"),
        format!("/cgi-bin/../../{host}?{q}"),
        format!("/cgi-bin//getcallbackip?{q}"),
        format!("http://{host}{CALLBACK_IP}?{q}"),
        format!("http://user@{host}{CALLBACK_IP}?{q}"),
        format!("http://{gateway}{CALLBACK_IP}?{q}"),
    ];
    for target in &refused {
        let answer = raw(
            &env,
            &format!("GET {target} HTTP/1.1\r\nHost: {gateway}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 "), "{target}: {answer}");
        let status = &answer[9..12];
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        // WeChat's shape for a path it may be (never -1), or a plain 400/404.
        assert!(
            (status == "200" && !body.contains("\"errcode\":-1") && body.contains("errcode"))
                || status == "400"
                || status == "404",
            "{target}: {answer}"
        );
        assert!(
            !body.contains("ip_list"),
            "{target} was forwarded: {answer}"
        );
    }
    // A Host header naming the decoy changes nothing: the call goes to the upstream.
    let answer = raw(
        &env,
        &format!("GET {CALLBACK_IP}?{q} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(answer.contains("ip_list"), "{answer}");
    assert_eq!(env.sim.stats().endpoint_calls(CALLBACK_IP), 1);
    // A connection of the test's own, made now, is accepted after any the
    // gateway made while answering (the listen queue is in order): once the
    // decoy has it, every leak would have been counted.
    let marker = tokio::net::TcpStream::connect(&host).await.unwrap();
    let marker = marker.local_addr().unwrap();
    wxgate_testkit::wait_until(
        std::time::Duration::from_secs(5),
        "the decoy accepts the test's own connection",
        async || peers.lock().unwrap().contains(&marker),
    )
    .await;
    let leaks = peers
        .lock()
        .unwrap()
        .iter()
        .filter(|p| **p != marker)
        .count();
    assert_eq!(leaks, 0, "a call left for {host}");
}

#[tokio::test]
async fn caller_mistakes_get_wechats_errcodes_never_minus_one() {
    let env = Setup::new().start().await;
    let token = sdk_token(&env).await;
    let warm_up = upstream_calls(&env);
    let send = |method: reqwest::Method, path: &str, body: &'static str| {
        let request = env
            .http
            .request(method, format!("{}{path}", env.url))
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let rid = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            (
                response.status().as_u16(),
                rid,
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    for (method, path, body, errcode) in [
        (
            reqwest::Method::POST,
            "/cgi-bin/stable_token",
            "{not json",
            47001,
        ),
        (reqwest::Method::POST, "/cgi-bin/stable_token", "", 47001),
        (
            reqwest::Method::POST,
            "/cgi-bin/stable_token",
            "[1,2]",
            47001,
        ),
        (reqwest::Method::GET, "/cgi-bin/stable_token", "", 43002),
        (reqwest::Method::POST, "/cgi-bin/token", "", 43001),
        (
            reqwest::Method::DELETE,
            "/cgi-bin/ticket/getticket",
            "",
            43001,
        ),
    ] {
        let answer = send(method.clone(), path, body).await;
        assert_refusal(&answer, errcode, &format!("{method} {path} {body:?}"));
    }
    let twice = format!(
        "/cgi-bin/token?grant_type=client_credential&appid={APPID}&appid={APPID}&secret={SECRET}"
    );
    assert_refusal(&get(&env, &twice).await, 40097, "appid twice");
    for kind in ["foo", "", "JSAPI"] {
        let answer = get(
            &env,
            &format!("/cgi-bin/ticket/getticket?access_token={token}&type={kind}"),
        )
        .await;
        assert_refusal(&answer, 40097, kind);
    }
    // Credential paths in other spellings are never forwarded.
    for (path, errcode) in [
        ("/cgi-bin/Token", 48001),
        ("/cgi-bin/ticket/getticket.", 48001),
        ("/cgi-bin/token/", 40066),
        ("/cgi-bin/%74oken", 40066),
    ] {
        let answer = get(&env, &format!("{path}?access_token={token}")).await;
        assert_refusal(&answer, errcode, path);
    }
    // A user's call with a token that is no user token wxgate handed out
    // (here the app's own): refused as WeChat refuses a bad token, not
    // forwarded (issue #28: only sign-ins made through wxgate are relayed).
    let answer = get(
        &env,
        &format!("/sns/userinfo?access_token={token}&openid=o"),
    )
    .await;
    assert_refusal(&answer, 40001, "/sns/userinfo");
    assert_eq!(
        upstream_calls(&env),
        warm_up,
        "nothing reached the simulator"
    );
    // Not a WeChat path at all: a plain 404, as before.
    let response = env
        .http
        .get(format!("{}/nowhere", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn secret_calls_are_forwarded_only_with_the_apps_secret() {
    let env = Setup::new().start().await;
    let warm_up = upstream_calls(&env);
    let jscode = |appid: &str, secret: &str| {
        format!("/sns/jscode2session?appid={appid}&secret={secret}&js_code=c&grant_type=authorization_code")
    };
    assert_refusal(
        &get(&env, &jscode(APPID, "wrong")).await,
        40125,
        "wrong secret",
    );
    assert_refusal(
        &get(&env, &jscode("wxnope", SECRET)).await,
        40013,
        "unknown app",
    );
    assert_eq!(
        upstream_calls(&env),
        warm_up,
        "nothing reached the simulator"
    );
    // With the secret, an Official Account's jscode2session is refused: its
    // users sign in by web authorization (issue #28, the family's data).
    assert_refusal(
        &get(&env, &jscode(APPID, SECRET)).await,
        48001,
        "an Official Account's jscode2session",
    );
    // Its code exchange goes through the single exchange: WeChat's answer
    // (here 40029 for a made-up code) comes back in WeChat's shape, uncached.
    let response = env
        .http
        .get(format!(
            "{}/sns/oauth2/access_token?appid={APPID}&secret={SECRET}&code=c&grant_type=authorization_code",
            env.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "a user's token is never cached"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errcode"], 40029, "{answer}");
    let metric =
        "wxgate_upstream_calls_total{endpoint=\"/sns/oauth2/access_token\",errcode=\"40029\"}";
    let forwarded = wxgate_testkit::metric(&env.http, &env.url, metric).await;
    assert_eq!(forwarded, 1.0);
    // `/cgi-bin/clear_quota/v2` takes a secret too, but is no longer forwarded
    // (issue #24): see wechats_admin_apis_are_not_forwarded_with_any_token.
    assert_eq!(env.token_calls(), 1);
}

/// Issue #24, item 9: WeChat's credential-administration and diagnostic APIs
/// stay behind the admin key. A rid lookup answers with the URL of the call,
/// current token included (a leaked old token would renew itself), and a quota
/// reset spends one of the month's ten: neither is for any holder of a token,
/// the replaced one included, nor for a client key.
#[tokio::test]
async fn wechats_admin_apis_are_not_forwarded_with_any_token() {
    let env = Setup::new().start().await;
    let old = sdk_token(&env).await;
    let (status, body) = env
        .client_post(
            &format!("/v1/apps/{APPID}/access_token/refresh"),
            json!({"invalid_token": old}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let current = sdk_token(&env).await;
    let before = upstream_calls(&env);
    let blocked = [
        (
            "/cgi-bin/openapi/rid/get",
            json!({"rid": "0a0b0c0d-00000000-00000000"}),
            "/v1/apps/{appid}/rid/",
        ),
        (
            "/cgi-bin/openapi/quota/get",
            json!({"cgi_path": "/cgi-bin/token"}),
            "/v1/apps/{appid}/quota",
        ),
        (
            "/cgi-bin/openapi/quota/clear",
            json!({"cgi_path": "/cgi-bin/token"}),
            "/v1/apps/{appid}/clear_quota",
        ),
        (
            "/cgi-bin/clear_quota",
            json!({"appid": APPID}),
            "/v1/apps/{appid}/clear_quota",
        ),
        (
            "/cgi-bin/clear_quota/v2",
            json!({"appid": APPID, "appsecret": SECRET}),
            "/v1/apps/{appid}/clear_quota",
        ),
        (
            "/cgi-bin/CLEAR_QUOTA",
            json!({"appid": APPID}),
            "/v1/apps/{appid}/clear_quota",
        ),
        (
            "/cgi-bin/component/api_start_push_ticket",
            json!({"component_appid": APPID, "component_secret": SECRET}),
            "Open Platform",
        ),
    ];
    for token in [&current, &old] {
        for (path, body, hint) in &blocked {
            let response = env
                .http
                .post(format!(
                    "{}{path}?access_token={token}&component_access_token=x",
                    env.url
                ))
                .json(body)
                .send()
                .await
                .unwrap();
            let rid = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let cache = response.headers().get("cache-control").cloned();
            let answer = (
                response.status().as_u16(),
                rid,
                response.json::<Value>().await.unwrap(),
            );
            assert_refusal(&answer, 48001, path);
            assert_eq!(cache.unwrap(), "no-store", "{path}");
            let said = answer.2["errmsg"].as_str().unwrap_or_default();
            assert!(said.contains(hint), "{path}: {}", answer.2);
        }
    }
    // The secret call is refused with the right secret in the query too.
    let answer = get(
        &env,
        &format!("/cgi-bin/clear_quota/v2?appid={APPID}&appsecret={SECRET}"),
    )
    .await;
    assert_refusal(
        &answer,
        48001,
        "clear_quota/v2 with the secret in the query",
    );
    // And through /proxy with a client key.
    let response = env
        .http
        .post(format!("{}/proxy/{APPID}/cgi-bin/openapi/rid/get", env.url))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"rid": "0a0b0c0d-00000000-00000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().await.unwrap()["errcode"], 48001);
    assert_eq!(upstream_calls(&env), before, "WeChat was never called");
    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/openapi/rid/get"),
        0
    );
    assert_eq!(env.sim.stats().endpoint_calls("/cgi-bin/clear_quota/v2"), 0);
}

#[tokio::test]
async fn the_proxy_and_the_facade_share_one_engine() {
    let env = Setup::new()
        .extra("[proxy]\nmax_request_bytes = 1000")
        .start()
        .await;
    let token = sdk_token(&env).await;
    // The [proxy] limit applies to the façade too.
    let response = env
        .http
        .post(format!("{}{CUSTOM_SEND}?access_token={token}", env.url))
        .body(vec![b'x'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["errcode"], 45002);
    // And a client key is still what /proxy takes.
    let response = env
        .http
        .get(format!("{}/proxy/{APPID}{CALLBACK_IP}", env.url))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
