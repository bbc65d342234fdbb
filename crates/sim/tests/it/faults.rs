//! `POST /sim/faults`: busy answers, delays, dropped connections and 5xx, for
//! the next N calls or a fraction of them.

use std::time::Duration;

use serde_json::json;

use crate::{access_token, errcode, start};

#[tokio::test]
async fn errcode_faults_last_for_their_count() {
    let (_sim, wx) = start(|_| {}).await;
    let added = wx
        .post(
            "/sim/faults",
            json!({"path": "/cgi-bin/token", "kind": "errcode", "errcode": -1, "count": 2}),
        )
        .await;
    assert_eq!(added["added"], 1);
    assert_eq!(errcode(&wx.token().await), -1);
    // Other paths are untouched.
    access_token(&wx.stable(false).await);
    assert_eq!(errcode(&wx.token().await), -1);
    access_token(&wx.token().await);
    let stats = wx.stats().await;
    assert_eq!(stats.faults_injected, 2);
    assert_eq!(stats.app(crate::APPID).tokens_issued, 1);
}

#[tokio::test]
async fn delays_drops_and_http_errors_reach_the_client() {
    let (_sim, wx) = start(|_| {}).await;
    let faults = json!([
        {"kind": "delay", "ms": 400, "count": 1},
        {"kind": "drop", "count": 1},
        {"kind": "http", "status": 502, "count": 1},
    ]);
    assert_eq!(wx.post("/sim/faults", faults).await["added"], 3);
    let url = format!(
        "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        wx.base,
        crate::APPID,
        crate::SECRET
    );
    let slow = wx
        .http
        .get(&url)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(slow.unwrap_err().is_timeout());
    let dropped = async {
        wx.http
            .get(&url)
            .send()
            .await?
            .json::<serde_json::Value>()
            .await
    }
    .await;
    assert!(
        dropped.is_err(),
        "a dropped connection is a transport error: {dropped:?}"
    );
    let status = wx.http.get(&url).send().await.unwrap().status();
    assert_eq!(status, 502);
    access_token(&wx.token().await);
}

#[tokio::test]
async fn rate_faults_hit_a_steady_fraction_and_delete_clears_them() {
    let (_sim, wx) = start(|c| c.daily_quota = 100).await;
    wx.post(
        "/sim/faults",
        json!({"kind": "errcode", "errcode": -1, "rate": 0.5}),
    )
    .await;
    let mut failed = 0;
    for _ in 0..10 {
        failed += i32::from(wx.token().await.get("errcode").is_some());
    }
    assert_eq!(failed, 5);
    let url = format!("{}/sim/faults", wx.base);
    assert_eq!(wx.http.delete(url).send().await.unwrap().status(), 204);
    for _ in 0..4 {
        access_token(&wx.token().await);
    }
}

#[tokio::test]
async fn bad_fault_requests_are_explained() {
    let (_sim, wx) = start(|_| {}).await;
    let url = format!("{}/sim/faults", wx.base);
    let response = wx
        .http
        .post(url)
        .json(&json!({"kind": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("fault"), "{body}");
}

/// A hostile upstream on demand: a redirect elsewhere, and an answer that
/// never ends (its bytes counted), both set through `POST /sim/faults`.
#[tokio::test]
async fn redirects_and_endless_answers_reach_the_client() {
    let (_sim, wx) = start(|_| {}).await;
    let faults = json!([
        {"kind": "redirect", "location": "http://elsewhere.example/steal", "count": 1},
        {"kind": "endless", "count": 1},
    ]);
    assert_eq!(wx.post("/sim/faults", faults).await["added"], 2);
    let url = format!(
        "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        wx.base,
        crate::APPID,
        crate::SECRET
    );
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirected = no_follow.get(&url).send().await.unwrap();
    assert_eq!(redirected.status(), 307);
    assert_eq!(
        redirected.headers()["location"],
        "http://elsewhere.example/steal"
    );
    let mut endless = no_follow.get(&url).send().await.unwrap();
    assert_eq!(endless.status(), 200);
    let mut read = 0;
    while read < 1 << 20 {
        read += endless.chunk().await.unwrap().expect("it never ends").len();
    }
    drop(endless);
    assert!(wx.stats().await.fault_bytes_sent >= 1 << 20);
}
