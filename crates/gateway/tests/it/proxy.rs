//! The API proxy: business servers call WeChat through wxgate without a token.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wxgate_sim::{Fault, FaultAction};

use crate::{Env, Setup, APPID, CLIENT_KEY};

const DOMAIN_IP: &str = "/cgi-bin/get_api_domain_ip";

async fn proxied(
    env: &Env,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = env
        .http
        .request(method, format!("{}/proxy/{APPID}{path}", env.url))
        .bearer_auth(CLIENT_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Every call the simulator answered, token fetches included.
fn upstream_calls(env: &Env) -> u64 {
    env.sim.stats().endpoint_calls.values().sum()
}

#[tokio::test]
async fn a_proxied_call_succeeds_without_the_caller_sending_a_token() {
    let env = Setup::new().start().await;
    let (status, body) = proxied(&env, reqwest::Method::GET, DOMAIN_IP, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["ip_list"].as_array().is_some_and(|l| !l.is_empty()),
        "{body}"
    );

    // A POST with a JSON body, and an access_token of the caller's own, which is replaced.
    let message = json!({"touser": "oUser1", "msgtype": "text", "text": {"content": "你好"}});
    let path = "/cgi-bin/message/custom/send?access_token=stale-one";
    let (status, body) = proxied(&env, reqwest::Method::POST, path, Some(message.clone())).await;
    assert_eq!((status, body["errcode"].as_i64()), (200, Some(0)), "{body}");
    assert_eq!(env.sim.messages().last().unwrap().body, message);

    // Query parameters pass through as sent.
    let path = "/cgi-bin/user/info?openid=oUser1&lang=zh_CN";
    let (status, body) = proxied(&env, reqwest::Method::GET, path, None).await;
    assert_eq!(
        (status, body["openid"].as_str()),
        (200, Some("oUser1")),
        "{body}"
    );

    let stats = env.sim.stats();
    assert_eq!(env.token_calls(), 1);
    assert_eq!(stats.app(APPID).invalid_token_calls, 0);
}

#[tokio::test]
async fn a_token_invalidated_behind_wxgates_back_costs_one_refresh_and_one_retry() {
    let env = Setup::new().sim(|s| s.grace = 0).start().await;
    let (status, _) = proxied(&env, reqwest::Method::GET, DOMAIN_IP, None).await;
    assert_eq!(status, 200);
    // Someone else fetches a classic token: with no grace, wxgate's dies at once.
    env.fetch_outside().await;

    let (status, body) = proxied(&env, reqwest::Method::GET, DOMAIN_IP, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["ip_list"].is_array(), "{body}");
    let stats = env.sim.stats().app(APPID);
    // wxgate's first fetch, the outside one, and exactly one refresh.
    assert_eq!(env.token_calls(), 3);
    // The first call, the rejected one and exactly one retry.
    assert_eq!(stats.calls(DOMAIN_IP), 3);
    assert_eq!(stats.invalid_token_calls, 1);
}

#[tokio::test]
async fn a_second_rejection_is_answered_not_looped_on() {
    let env = Setup::new().start().await;
    env.access_token().await;
    env.sim.add_fault(Fault {
        path: Some(DOMAIN_IP.into()),
        action: FaultAction::Errcode {
            errcode: 40001,
            errmsg: "invalid credential".into(),
        },
        count: Some(10),
        rate: None,
    });
    let (status, body) = proxied(&env, reqwest::Method::GET, DOMAIN_IP, None).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errcode"], 40001);
    assert!(
        body["hint"].as_str().unwrap().contains("another program"),
        "{body}"
    );
    assert_eq!(env.sim.stats().endpoint_calls(DOMAIN_IP), 2);
    assert_eq!(env.token_calls(), 2);
}

async fn status_of(env: &Env, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = env.http.get(format!("{}{path}", env.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Sends a request line as written: reqwest would normalise `..` and `%2e%2e` away.
async fn raw_status(env: &Env, target: &str) -> u16 {
    let addr = env.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {CLIENT_KEY}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer[9..12].parse().unwrap()
}

#[tokio::test]
async fn refusals_are_clear_and_forward_nothing() {
    let env = Setup::new()
        .extra("[proxy]\nmax_request_bytes = 1000")
        .start()
        .await;
    // The warm-up's token fetch is the gateway's own, not a forwarded call.
    let warm_up = upstream_calls(&env);
    let path = format!("/proxy/{APPID}{DOMAIN_IP}");
    let (status, body) = status_of(&env, &path, None).await;
    assert_eq!(
        (status, body["errcode"].as_i64()),
        (401, Some(41001)),
        "{body}"
    );
    assert!(body["hint"].is_string());
    assert_eq!(status_of(&env, &path, Some("wrong-key")).await.0, 401);
    // The client is granted APPID only.
    let (status, body) = status_of(
        &env,
        &format!("/proxy/wxother{DOMAIN_IP}"),
        Some(CLIENT_KEY),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_i64()),
        (403, Some(48001)),
        "{body}"
    );
    // Outside the allow-list, and the credential endpoints.
    for (target, hint) in [
        (
            format!("/proxy/{APPID}/sns/oauth2/access_token"),
            "proxy.allow_paths",
        ),
        (format!("/proxy/{APPID}/cgi-bin/token"), "client API"),
        (format!("/proxy/{APPID}/cgi-bin/stable_token"), "client API"),
    ] {
        let (status, body) = status_of(&env, &target, Some(CLIENT_KEY)).await;
        assert_eq!(
            (status, body["errcode"].as_i64()),
            (403, Some(48001)),
            "{target}: {body}"
        );
        assert!(body["hint"].as_str().unwrap().contains(hint), "{body}");
    }
    // Traversal, encoded or not, and empty segments.
    for target in [
        format!("/proxy/{APPID}/cgi-bin/../sim/stats"),
        format!("/proxy/{APPID}/cgi-bin/%2e%2e/sim/stats"),
        format!("/proxy/{APPID}/cgi-bin/%2fsim"),
        format!("/proxy/{APPID}/cgi-bin//token"),
        format!("/proxy/{APPID}/cgi-bin/./token"),
    ] {
        let status = raw_status(&env, &target).await;
        assert!(
            status == 400 || status == 403 || status == 404,
            "{target}: {status}"
        );
    }
    // Too large, by declared length.
    let response = env
        .http
        .post(format!(
            "{}/proxy/{APPID}/cgi-bin/message/custom/send",
            env.url
        ))
        .bearer_auth(CLIENT_KEY)
        .body(vec![b'x'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errcode"], 45002);
    assert!(body["hint"].as_str().unwrap().contains("max_request_bytes"));

    assert_eq!(
        upstream_calls(&env),
        warm_up,
        "nothing reached the simulator"
    );
}

async fn upload(env: &Env, data: &[u8]) -> (u16, Value) {
    let boundary = "proxy-test-boundary";
    let response = env
        .http
        .post(format!(
            "{}/proxy/{APPID}/cgi-bin/media/upload?type=image",
            env.url
        ))
        .bearer_auth(CLIENT_KEY)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(wxgate_testkit::multipart(boundary, "p.jpg", data))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_spooled_upload_is_sent_again_whole_after_a_token_rejection() {
    let env = Setup::new().sim(|s| s.grace = 0).start().await;
    env.access_token().await;
    env.fetch_outside().await;
    // 300 KB: over the 64 KiB kept in memory, so the retry reads the temporary file again.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (status, body) = upload(&env, &data).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/media/upload"),
        2,
        "rejected, then retried"
    );
    let media_id = body["media_id"].as_str().unwrap();
    let download = env
        .http
        .get(format!(
            "{}/proxy/{APPID}/cgi-bin/media/get?media_id={media_id}",
            env.url
        ))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.bytes().await.unwrap().as_ref(),
        data.as_slice(),
        "the retry sent every byte"
    );
}

#[tokio::test]
async fn an_answer_over_the_response_limit_is_refused() {
    let env = Setup::new()
        .extra("[proxy]\nmax_response_bytes = 1000")
        .start()
        .await;
    let (status, body) = upload(&env, &[42u8; 5000]).await;
    assert_eq!(status, 200, "{body}");
    let media_id = body["media_id"].as_str().unwrap();
    let (status, body) = proxied(
        &env,
        reqwest::Method::GET,
        &format!("/cgi-bin/media/get?media_id={media_id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_i64()),
        (502, Some(-1)),
        "{body}"
    );
    assert!(
        body["hint"]
            .as_str()
            .unwrap()
            .contains("max_response_bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn credential_paths_are_refused_however_they_are_spelled() {
    let env = Setup::new().start().await;
    // The warm-up's token fetch is the gateway's own, not a forwarded call.
    let warm_up = upstream_calls(&env);
    for path in [
        "/cgi-bin/token",
        "/cgi-bin/stable_token",
        "/cgi-bin/ticket/getticket",
        "/cgi-bin/Token",
        "/cgi-bin/TOKEN",
        "/cgi-bin/token.",
        "/cgi-bin/Stable_Token",
        "/cgi-bin/ticket/GetTicket",
        "/cgi-bin/ticket/getticket.",
        "/cgi-bin/ticket/GETTICKET..",
        "/cgi-bin/token/x",
    ] {
        let (status, body) =
            status_of(&env, &format!("/proxy/{APPID}{path}"), Some(CLIENT_KEY)).await;
        assert_eq!(
            (status, body["errcode"].as_i64()),
            (403, Some(48001)),
            "{path}: {body}"
        );
        assert!(
            body["hint"].as_str().unwrap().contains("client API"),
            "{path}: {body}"
        );
    }
    // Encoded or with a trailing slash: refused as well (not plain paths).
    for path in [
        "/cgi-bin/%74oken",
        "/cgi-bin/Token/",
        "/cgi-bin/ticket%2fgetticket",
    ] {
        let status = raw_status(&env, &format!("/proxy/{APPID}{path}")).await;
        assert!(status == 400 || status == 403, "{path}: {status}");
    }
    assert_eq!(
        upstream_calls(&env),
        warm_up,
        "nothing reached the simulator"
    );
}
