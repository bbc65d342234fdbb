//! Hostile input: oversized headers and bodies, entity expansion, path
//! traversal through the proxy, one app's client key used on another.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wxgate_gateway::clock::Clock;
use wxgate_sim::SimApp;
use wxgate_testkit::gateway::{Env, Setup, APPID, CLIENT_KEY};

use crate::figure;

const TOKEN: &str = "security-token";
const OTHER: &str = "wxbbbbbbbbbbbbbbbb";

/// Sends bytes as written and returns the status code (0 if the connection broke).
async fn raw(env: &Env, request: &[u8]) -> u16 {
    let addr = env.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn signed_query(env: &Env) -> String {
    let timestamp = env.clock.now().to_string();
    let signature = wxgate_proto::signature(TOKEN, &timestamp, "n");
    format!("signature={signature}&timestamp={timestamp}&nonce=n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_cleanly() {
    let env = Setup::new()
        .app(&format!("token = \"{TOKEN}\"\nmode = \"plain\""))
        .extra(&format!(
            "[[apps]]\nappid = \"{OTHER}\"\nsecret = \"other-secret\""
        ))
        .sim(|s| s.apps.push(SimApp::new(OTHER, "other-secret")))
        .start()
        .await;
    let host = env.url.trim_start_matches("http://").to_owned();
    // The warm-up's token fetches are the gateway's own, not forwarded calls.
    let warm_up = env.sim.stats().endpoint_calls.values().sum::<u64>();
    let mut results = Vec::new();

    // A 100 KB header.
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    let status = raw(&env, big_header.as_bytes()).await;
    results.push(("100 KB header", status));
    assert_eq!(status, 431);

    // Bodies over max_body_bytes (64 KiB), declared and chunked.
    let query = signed_query(&env);
    let big = vec![b'a'; 200_000];
    let response = env
        .http
        .post(format!("{}/wx/{APPID}?{query}", env.url))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    results.push(("200 KB push", response.status().as_u16()));
    assert_eq!(response.status(), 413);
    // Chunked, so no length is declared up front; the server stops reading
    // at the limit and answers (raw: a client would fail on the closed pipe).
    let mut chunked = format!(
        "POST /v1/apps/{APPID}/access_token/refresh HTTP/1.1\r\nHost: {host}\r\n\
         Authorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.chunks(10_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let status = raw(&env, &chunked).await;
    results.push(("200 KB chunked JSON", status));
    assert_eq!(status, 413);

    // Entity expansion (a billion laughs): refused, at once, nothing expanded.
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"lol\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\
                  <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">]>\
                  <xml><ToUserName>&d;</ToUserName><Content>&d;</Content></xml>";
    let started = tokio::time::Instant::now();
    let response = env
        .http
        .post(format!("{}/wx/{APPID}?{query}", env.url))
        .body(laughs)
        .send()
        .await
        .unwrap();
    results.push(("billion laughs", response.status().as_u16()));
    assert_eq!(response.status(), 400);
    assert!(started.elapsed().as_millis() < 500);

    // Traversal through the proxy, raw (no client normalises it away).
    for target in [
        format!("/proxy/{APPID}/cgi-bin/../sim/stats"),
        format!("/proxy/{APPID}/cgi-bin/%2e%2e/%2e%2e/sim/stats"),
        format!("/proxy/{APPID}/cgi-bin/..%2fsim/stats"),
        format!("/proxy/{APPID}//sim/stats"),
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {CLIENT_KEY}\r\nConnection: close\r\n\r\n"
        );
        let status = raw(&env, request.as_bytes()).await;
        results.push(("proxy traversal", status));
        assert!(matches!(status, 400 | 403 | 404), "{target}: {status}");
    }
    assert_eq!(
        env.sim.stats().endpoint_calls.values().sum::<u64>(),
        warm_up,
        "nothing reached WeChat"
    );

    // The client key of APPID on OTHER: refused everywhere.
    for (method, path) in [
        ("GET", format!("/v1/apps/{OTHER}/access_token")),
        ("POST", format!("/v1/apps/{OTHER}/access_token/refresh")),
        ("POST", format!("/v1/apps/{OTHER}/jssdk/signature")),
        ("GET", format!("/proxy/{OTHER}/cgi-bin/get_api_domain_ip")),
    ] {
        let response = env
            .http
            .request(method.parse().unwrap(), format!("{}{path}", env.url))
            .bearer_auth(CLIENT_KEY)
            .json(&serde_json::json!({"invalid_token": "x", "url": "https://example.com/"}))
            .send()
            .await
            .unwrap();
        results.push(("another app's client key", response.status().as_u16()));
        assert_eq!(response.status(), 403, "{path}");
    }
    assert_eq!(env.sim.stats().app(OTHER).calls("/cgi-bin/token"), 0);
    figure("security", format!("{results:?}"));
}
