//! `/cgi-bin/openapi/quota/get`, `/cgi-bin/clear_quota` and `/cgi-bin/clear_quota/v2`:
//! today's use of a quota, and resetting it at most ten times a month.

use serde_json::{json, Value};
use wxgate_sim::SimApp;

use crate::{access_token, errcode, start, start_at, Client, APPID, SECRET};

/// 2026-01-15T00:00:00Z, 08:00 in Beijing.
const JAN_15: u64 = 1_768_435_200;
/// 2026-02-01 00:00 in Beijing (2026-01-31T16:00:00Z).
const FEB_1_BEIJING: u64 = 1_769_875_200;

impl Client {
    async fn quota(&self, token: &str, cgi_path: &str) -> Value {
        let path = format!("/cgi-bin/openapi/quota/get?access_token={token}");
        self.post(&path, json!({ "cgi_path": cgi_path })).await
    }

    async fn clear(&self, token: &str, appid: &str) -> Value {
        let path = format!("/cgi-bin/clear_quota?access_token={token}");
        self.post(&path, json!({ "appid": appid })).await
    }

    async fn clear_v2(&self, appid: &str, appsecret: &str) -> Value {
        let body = json!({ "appid": appid, "appsecret": appsecret });
        self.post("/cgi-bin/clear_quota/v2", body).await
    }
}

#[tokio::test]
async fn quota_get_reports_todays_use_of_the_token_quota() {
    let (sim, wx) = start(|c| c.daily_quota = 5).await;
    let mut token = String::new();
    for _ in 0..3 {
        token = access_token(&wx.token().await);
    }
    let answer = wx.quota(&token, "/cgi-bin/token").await;
    let expected = json!({"daily_limit": 5, "used": 3, "remain": 2});
    assert_eq!(
        answer,
        json!({"errcode": 0, "errmsg": "ok", "quota": expected})
    );
    let stable = wx.quota(&token, "/cgi-bin/stable_token").await;
    assert_eq!(
        stable["quota"],
        json!({"daily_limit": 500_000, "used": 0, "remain": 500_000})
    );
    let ticket = wx
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
        ))
        .await;
    assert_eq!(ticket["errcode"], 0);
    assert_eq!(
        wx.quota(&token, "/cgi-bin/ticket/getticket").await["quota"]["used"],
        1
    );

    // A new Beijing day starts from zero.
    let now = sim.clock().now();
    wx.advance(86_400 - (now + 8 * 3600) % 86_400).await;
    let token = access_token(&wx.token().await);
    assert_eq!(wx.quota(&token, "/cgi-bin/token").await["quota"]["used"], 1);
}

#[tokio::test]
async fn quota_get_refuses_unknown_paths_and_paths_without_a_quota() {
    let (_sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let unknown = wx.quota(&token, "/cgi-bin/no/such/api").await;
    assert_eq!(errcode(&unknown), 76021, "{unknown}");
    assert!(unknown["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("cgi_path not found, please check rid: "));
    let unlimited = wx.quota(&token, "/cgi-bin/user/info").await;
    assert_eq!(errcode(&unlimited), 76022, "{unlimited}");
    assert!(unlimited["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("could not use this cgi_path,no permission rid: "));
    let no_path = wx
        .post(
            &format!("/cgi-bin/openapi/quota/get?access_token={token}"),
            json!({}),
        )
        .await;
    assert_eq!(errcode(&no_path), 47001);
    assert_eq!(errcode(&wx.quota("forged", "/cgi-bin/token").await), 40001);
}

#[tokio::test]
async fn clear_quota_lets_an_app_blocked_by_45009_fetch_again() {
    let (sim, wx) = start(|c| c.daily_quota = 2).await;
    access_token(&wx.token().await);
    let token = access_token(&wx.token().await);
    assert_eq!(errcode(&wx.token().await), 45009);

    let foreign = wx.clear(&token, "wx00000000000000ff").await;
    assert_eq!(errcode(&foreign), 40013);
    assert_eq!(errcode(&wx.token().await), 45009);

    let cleared = wx.clear(&token, APPID).await;
    assert_eq!(cleared, json!({"errcode": 0, "errmsg": "ok"}));
    let token = access_token(&wx.token().await);
    assert_eq!(wx.quota(&token, "/cgi-bin/token").await["quota"]["used"], 1);
    assert_eq!(sim.stats().app(APPID).quota_clears, 1);
}

#[tokio::test]
async fn clear_quota_leaves_the_forced_stable_refreshes_counted() {
    let (_sim, wx) = start(|c| c.force_refresh_per_day = 1).await;
    let first = access_token(&wx.stable(true).await);
    let token = access_token(&wx.token().await);
    assert_eq!(wx.clear(&token, APPID).await["errcode"], 0);
    wx.advance(30).await;
    assert_eq!(
        access_token(&wx.stable(true).await),
        first,
        "still one forced refresh a day"
    );
}

#[tokio::test]
async fn clear_quota_v2_takes_the_secret_in_the_body_or_the_query_without_a_token() {
    let (sim, wx) = start(|c| {
        c.daily_quota = 1;
        c.apps.push(SimApp::new(
            "wx00000000000000ff",
            "ffffffffffffffffffffffffffffffff",
        ));
    })
    .await;
    access_token(&wx.token().await);
    assert_eq!(errcode(&wx.token().await), 45009);

    let in_body = wx.clear_v2(APPID, SECRET).await;
    assert_eq!(in_body, json!({"errcode": 0, "errmsg": "ok"}));
    access_token(&wx.token().await);
    assert_eq!(errcode(&wx.token().await), 45009);

    let query = format!("/cgi-bin/clear_quota/v2?appid={APPID}&appsecret={SECRET}");
    let (status, in_query) = wx.post_raw(&query, String::new()).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&in_query).unwrap()["errcode"],
        0
    );
    access_token(&wx.token().await);

    let wrong = wx.clear_v2(APPID, "wrong").await;
    assert_eq!(errcode(&wrong), 40125);
    assert!(wrong["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("invalid appsecret rid: "));
    let crossed = wx.clear_v2("wx00000000000000ff", SECRET).await;
    assert_eq!(errcode(&crossed), 40125, "another account's secret");
    assert_eq!(errcode(&wx.clear_v2("wxnope", SECRET).await), 40013);
    let (_, no_secret) = wx
        .post_raw(
            &format!("/cgi-bin/clear_quota/v2?appid={APPID}"),
            String::new(),
        )
        .await;
    assert_eq!(errcode(&serde_json::from_str(&no_secret).unwrap()), 41004);
    assert_eq!(sim.stats().app(APPID).quota_clears, 2);
    assert_eq!(sim.stats().app("wx00000000000000ff").quota_clears, 0);
}

#[tokio::test]
async fn the_eleventh_clear_of_a_beijing_month_is_refused_until_the_next() {
    let (sim, wx) = start_at(JAN_15, |_| {}).await;
    let token = access_token(&wx.token().await);
    for n in 0..10 {
        let answer = if n % 2 == 0 {
            wx.clear(&token, APPID).await
        } else {
            wx.clear_v2(APPID, SECRET).await
        };
        assert_eq!(answer["errcode"], 0, "clear {}: {answer}", n + 1);
    }
    for refused in [
        wx.clear(&token, APPID).await,
        wx.clear_v2(APPID, SECRET).await,
    ] {
        assert_eq!(errcode(&refused), 48006, "{refused}");
        let errmsg = refused["errmsg"].as_str().unwrap();
        assert!(errmsg.starts_with("forbid to clear quota because of reaching the limit rid: "));
    }
    // Still January in Beijing one second before midnight of February 1.
    wx.advance(FEB_1_BEIJING - 1 - JAN_15).await;
    assert_eq!(errcode(&wx.clear_v2(APPID, SECRET).await), 48006);
    wx.advance(1).await;
    assert_eq!(wx.clear_v2(APPID, SECRET).await["errcode"], 0);
    assert_eq!(sim.stats().app(APPID).quota_clears, 11);
}
