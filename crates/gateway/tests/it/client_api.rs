//! The client API's authentication, scoping and JS-SDK signing.

use serde_json::json;

use crate::{Env, Setup, APPID, CLIENT_KEY};

async fn status_with_key(env: &Env, path: &str, key: Option<&str>) -> u16 {
    let mut request = env.http.get(format!("{}{path}", env.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn only_known_client_keys_in_scope_get_tokens() {
    let env = Setup::new().start().await;
    let path = format!("/v1/apps/{APPID}/access_token");
    assert_eq!(status_with_key(&env, &path, None).await, 401);
    assert_eq!(status_with_key(&env, &path, Some("wrong-key")).await, 401);
    assert_eq!(status_with_key(&env, &path, Some(CLIENT_KEY)).await, 200);
    // The client is scoped to APPID only.
    assert_eq!(
        status_with_key(&env, "/v1/apps/wxother/access_token", Some(CLIENT_KEY)).await,
        403
    );
    let (status, body) = env.client_get(&format!("/v1/apps/{APPID}/nonsense")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(env.token_calls(), 1);
}

#[tokio::test]
async fn access_token_answers_carry_expiry() {
    let env = Setup::new().start().await;
    let (_, body) = env
        .client_get(&format!("/v1/apps/{APPID}/access_token"))
        .await;
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(body["expires_at"], crate::T0 + 7200);
    env.advance(100).await;
    let (_, body) = env
        .client_get(&format!("/v1/apps/{APPID}/access_token"))
        .await;
    assert_eq!(body["expires_in"], 7100);
}

#[tokio::test]
async fn jssdk_signatures_verify_with_the_ticket_and_respect_safe_domains() {
    let env = Setup::new().start().await;
    let path = format!("/v1/apps/{APPID}/jssdk/signature");
    let url = "https://m.example.com/app/index.html?from=menu#/orders";
    let (status, config) = env.client_post(&path, json!({ "url": url })).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["appId"], APPID);
    assert_eq!(
        config["url"],
        "https://m.example.com/app/index.html?from=menu"
    );
    let (_, ticket) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    let expected = wxgate_proto::jssdk_signature(
        ticket["jsapi_ticket"].as_str().unwrap(),
        config["nonceStr"].as_str().unwrap(),
        config["timestamp"].as_str().unwrap(),
        url,
    );
    assert_eq!(config["signature"], expected.as_str());

    let (status, body) = env
        .client_post(&path, json!({"url": "https://evil.example.org/"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "url_not_allowed");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("js_domains"));
    let (status, _) = env.client_post(&path, json!({"page": "x"})).await;
    assert_eq!(status, 400);
}

/// Every answer that carries (or could carry) a token, a ticket or a
/// signature says `Cache-Control: no-store`, success and error alike.
#[tokio::test]
async fn credential_answers_are_never_cached() {
    let env = Setup::new().stable().start().await;
    let token = env.access_token().await;
    let url = |path: &str| format!("{}{path}", env.url);
    let http = &env.http;
    let key = Some(CLIENT_KEY);
    let secret = crate::SECRET;
    let requests = vec![
        (
            key,
            http.get(url(&format!("/v1/apps/{APPID}/access_token"))),
        ),
        (
            key,
            http.get(url(&format!("/v1/apps/{APPID}/jsapi_ticket"))),
        ),
        (
            None,
            http.get(url(&format!("/v1/apps/{APPID}/access_token"))),
        ),
        (
            key,
            http.post(url(&format!("/v1/apps/{APPID}/access_token/refresh")))
                .json(&json!({"invalid_token": "old"})),
        ),
        (
            key,
            http.post(url(&format!("/v1/apps/{APPID}/jssdk/signature")))
                .json(&json!({"url": "https://example.com/a"})),
        ),
        (
            None,
            http.get(url(&format!(
                "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={secret}"
            ))),
        ),
        (
            None,
            http.post(url("/cgi-bin/stable_token")).json(
                &json!({"grant_type": "client_credential", "appid": APPID, "secret": secret}),
            ),
        ),
        (
            None,
            http.get(url(&format!(
                "/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
            ))),
        ),
        (None, http.get(url("/admin"))),
    ];
    for (key, request) in requests {
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = request.send().await.unwrap();
        let what = format!("{} {}", response.status(), response.url().path());
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
    }
}
