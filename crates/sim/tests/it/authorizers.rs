//! Authorizers of an Open Platform platform (families reference §3.3–3.7):
//! authorization by the page and by push, single-use and expiring codes,
//! refresh-token rotation, unauthorization, the list that recovers refresh
//! tokens, and an authorizer's calls and pushes.

use serde_json::json;
use wxgate_proto::{open_push, ComponentInfo, Push, PushMode};

use crate::component::{
    authorize, component_token, crypto, platform, query_of, receiver, AUTHORIZER, COMPONENT,
    C_TOKEN, START,
};
use crate::errcode;

#[tokio::test]
async fn an_administrator_authorizes_and_the_code_is_exchanged_once() {
    let r = receiver().await;
    let (sim, wx) = platform(Some(&r), |_| {}).await;
    let token = component_token(&sim, &wx).await;
    let pre = wx
        .component_call(
            "api_create_preauthcode",
            &token,
            json!({"component_appid": COMPONENT}),
        )
        .await;
    let pre = pre["pre_auth_code"].as_str().unwrap();
    let auth = wx
        .post(
            "/sim/authorize",
            json!({"component_appid": COMPONENT, "pre_auth_code": pre, "authorizer_appid": AUTHORIZER,
                   "type": "official", "redirect_uri": "https://biz.example.com/done"}),
        )
        .await;
    let code = auth["authorization_code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("queryauthcode@@@"));
    assert_eq!(auth["info_type"], "authorized");
    assert_eq!(auth["expires_in"], 600);
    let redirect = auth["redirect_url"].as_str().unwrap();
    assert!(redirect.starts_with("https://biz.example.com/done?auth_code=queryauthcode%40%40%40"));
    assert!(redirect.ends_with("&expires_in=600"));
    assert_eq!(auth["push"]["acknowledged"], true);
    // The same code by push (families §3.7).
    let pushes = r.wait_pushes(2).await;
    let ComponentInfo::Authorized(a) = &pushes[1].info else {
        panic!("{pushes:?}")
    };
    assert_eq!(
        (a.authorizer_appid.as_str(), a.authorization_code.as_str()),
        (AUTHORIZER, code.as_str())
    );
    assert_eq!(
        (a.pre_auth_code.as_str(), a.authorization_code_expired_time),
        (pre, START + 600)
    );

    let exchange = json!({"component_appid": COMPONENT, "authorization_code": code});
    let answer = wx
        .component_call("api_query_auth", &token, exchange.clone())
        .await;
    let info = &answer["authorization_info"];
    assert_eq!(info["authorizer_appid"], AUTHORIZER);
    assert_eq!(info["expires_in"], 7200);
    assert_eq!(info["func_info"][0]["funcscope_category"]["id"], 1);
    let access = info["authorizer_access_token"].as_str().unwrap();
    let refresh = info["authorizer_refresh_token"].as_str().unwrap();
    assert_eq!(
        errcode(&wx.component_call("api_query_auth", &token, exchange).await),
        61009,
        "a code is single-use"
    );
    // The authorizer's token works on the ordinary APIs like an app's.
    assert_eq!(wx.use_token(access).await, 0);
    let ticket = wx
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={access}&type=jsapi"
        ))
        .await;
    assert_eq!(ticket["errcode"], 0);
    let sent = wx
        .post(
            &format!("/cgi-bin/message/custom/send?access_token={access}"),
            json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}}),
        )
        .await;
    assert_eq!(sent["errcode"], 0);
    assert_eq!(sim.messages()[0].appid, AUTHORIZER);

    // A refresh: a new access token; the previous one works for the grace period.
    let refresh_body = json!({"component_appid": COMPONENT, "authorizer_appid": AUTHORIZER,
                              "authorizer_refresh_token": refresh});
    let renewed = wx
        .component_call("api_authorizer_token", &token, refresh_body.clone())
        .await;
    assert_eq!(
        renewed["authorizer_refresh_token"], refresh,
        "not rotated by default"
    );
    let renewed_access = renewed["authorizer_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(renewed_access, access);
    wx.advance(300).await;
    assert_eq!(wx.use_token(access).await, 40001);
    assert_eq!(wx.use_token(&renewed_access).await, 0);
    let stats = sim.stats();
    assert_eq!(stats.app(AUTHORIZER).invalid_token_calls, 1);
    assert_eq!(stats.app(AUTHORIZER).authorizer_tokens_issued, 2);
    assert_eq!(stats.component(COMPONENT).authorizer_tokens_issued, 2);

    // Authorizing again: `updateauthorized`, and the current token stops (observed, §3.5).
    let again = wx
        .post(
            "/sim/authorize",
            json!({"component_appid": COMPONENT, "authorizer_appid": AUTHORIZER}),
        )
        .await;
    assert_eq!(again["info_type"], "updateauthorized");
    assert_eq!(wx.use_token(&renewed_access).await, 40001);
    let pushes = r.wait_pushes(3).await;
    assert_eq!(pushes[2].info.info_type(), "updateauthorized");
    // An unknown pre_auth_code is refused.
    let bad = wx
        .http
        .post(format!("{}/sim/authorize", wx.base))
        .json(&json!({"component_appid": COMPONENT, "authorizer_appid": AUTHORIZER, "pre_auth_code": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn an_expired_authorization_code_answers_61010() {
    let (sim, wx) = platform(None, |_| {}).await;
    let token = component_token(&sim, &wx).await;
    let auth = wx
        .post(
            "/sim/authorize",
            json!({"component_appid": COMPONENT, "authorizer_appid": AUTHORIZER}),
        )
        .await;
    assert!(auth["push"].is_null(), "no push URL, no push");
    wx.advance(600).await;
    let answer = wx
        .component_call(
            "api_query_auth",
            &token,
            json!({"component_appid": COMPONENT, "authorization_code": auth["authorization_code"]}),
        )
        .await;
    assert_eq!(errcode(&answer), 61010);
}

#[tokio::test]
async fn a_rotated_refresh_token_keeps_working_five_minutes_then_61023() {
    let (sim, wx) = platform(None, |_| {}).await;
    let token = component_token(&sim, &wx).await;
    let (_, refresh) = authorize(&wx, &token, AUTHORIZER).await;
    let put = wx
        .http
        .put(format!("{}/sim/component/{COMPONENT}/rotation", wx.base))
        .json(&json!({"rotation": "once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let body = |rt: &str| {
        json!({"component_appid": COMPONENT, "authorizer_appid": AUTHORIZER,
               "authorizer_refresh_token": rt})
    };
    let rotated = wx
        .component_call("api_authorizer_token", &token, body(&refresh))
        .await;
    let new_refresh = rotated["authorizer_refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_refresh, refresh);
    // Within the grace the old one still refreshes (and gets the current one back).
    wx.advance(299).await;
    let old = wx
        .component_call("api_authorizer_token", &token, body(&refresh))
        .await;
    assert_eq!(old["authorizer_refresh_token"], new_refresh.as_str());
    wx.advance(1).await;
    let late = wx
        .component_call("api_authorizer_token", &token, body(&refresh))
        .await;
    assert_eq!(errcode(&late), 61023);
    assert!(late["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("refresh_token is invalid"));
    let current = wx
        .component_call("api_authorizer_token", &token, body(&new_refresh))
        .await;
    assert_eq!(
        current["authorizer_refresh_token"],
        new_refresh.as_str(),
        "`once` is spent"
    );
    assert_eq!(
        errcode(
            &wx.component_call("api_authorizer_token", &token, body("lost"))
                .await
        ),
        61023
    );
    assert_eq!(sim.stats().component(COMPONENT).refresh_tokens_rotated, 1);
}

#[tokio::test]
async fn unauthorizing_stops_the_tokens_and_pushes_unauthorized() {
    let r = receiver().await;
    let (sim, wx) = platform(Some(&r), |_| {}).await;
    let token = component_token(&sim, &wx).await;
    let (access, refresh) = authorize(&wx, &token, AUTHORIZER).await;
    let answer = wx
        .post(
            "/sim/unauthorize",
            json!({"component_appid": COMPONENT, "authorizer_appid": AUTHORIZER}),
        )
        .await;
    assert_eq!(answer["push"]["info_type"], "unauthorized");
    let pushes = r.wait_pushes(3).await;
    assert_eq!(
        pushes[2].info,
        ComponentInfo::Unauthorized {
            authorizer_appid: AUTHORIZER.into()
        }
    );
    assert_eq!(wx.use_token(&access).await, 40001);
    assert_eq!(sim.stats().app(AUTHORIZER).invalid_token_calls, 1);
    let refreshed = wx
        .component_call(
            "api_authorizer_token",
            &token,
            json!({"component_appid": COMPONENT, "authorizer_appid": AUTHORIZER,
                   "authorizer_refresh_token": refresh}),
        )
        .await;
    assert_eq!(errcode(&refreshed), 61003);
    let info = wx
        .component_call(
            "api_get_authorizer_info",
            &token,
            json!({"component_appid": COMPONENT, "authorizer_appid": AUTHORIZER}),
        )
        .await;
    assert_eq!(errcode(&info), 61003);
}

#[tokio::test]
async fn the_authorizer_list_pages_and_recovers_refresh_tokens() {
    let (sim, wx) = platform(None, |_| {}).await;
    let token = component_token(&sim, &wx).await;
    let (_, rt1) = authorize(&wx, &token, "wxa000000000000001").await;
    wx.advance(1).await;
    let (_, rt2) = authorize(&wx, &token, "wxa000000000000002").await;
    wx.advance(1).await;
    // Authorized but the code never exchanged: no refresh token yet (§3.6).
    wx.post(
        "/sim/authorize",
        json!({"component_appid": COMPONENT, "authorizer_appid": "wxa000000000000003", "type": "miniprogram"}),
    )
    .await;
    let page = |offset: u64, count: u64| {
        let wx = &wx;
        let token = token.clone();
        async move {
            wx.component_call(
                "api_get_authorizer_list",
                &token,
                json!({"component_appid": COMPONENT, "offset": offset, "count": count}),
            )
            .await
        }
    };
    let first = page(0, 2).await;
    assert_eq!(first["total_count"], 3);
    assert_eq!(first["list"][0]["refresh_token"], rt1.as_str());
    assert_eq!(first["list"][1]["refresh_token"], rt2.as_str());
    assert_eq!(first["list"][0]["auth_time"], START);
    let rest = page(2, 2).await;
    assert_eq!(rest["list"].as_array().unwrap().len(), 1);
    assert_eq!(rest["list"][0]["authorizer_appid"], "wxa000000000000003");
    assert_eq!(rest["list"][0]["refresh_token"], "");
    assert_eq!(errcode(&page(0, 501).await), 40097);
    let info = wx
        .component_call(
            "api_get_authorizer_info",
            &token,
            json!({"component_appid": COMPONENT, "authorizer_appid": "wxa000000000000003"}),
        )
        .await;
    assert!(info["authorizer_info"]["MiniProgramInfo"].is_object());
    assert_eq!(
        info["authorization_info"]["authorizer_appid"],
        "wxa000000000000003"
    );
}

#[tokio::test]
async fn an_authorizer_push_is_sealed_with_the_platform_token_and_key() {
    let r = receiver().await;
    let (_sim, wx) = platform(None, |_| {}).await;
    let url = format!("{}/component/{COMPONENT}/wx/{AUTHORIZER}", r.base);
    let outcome = wx
        .post(
            "/sim/push",
            json!({"url": url, "component_appid": COMPONENT, "message": {"type": "text", "content": "你好"}}),
        )
        .await;
    assert_eq!(outcome["answer"]["result"], "no_reply", "{outcome}");
    let seen = r.seen.lock().unwrap()[0].clone();
    let mode = PushMode::Safe(crypto());
    let plain = open_push(&mode, C_TOKEN, &query_of(&seen), &seen.body).unwrap();
    let push = Push::parse(&plain).unwrap();
    assert!(
        matches!(push.kind, wxgate_proto::PushKind::Text { ref content, .. } if content == "你好")
    );
}

#[tokio::test]
async fn calls_for_an_authorizer_are_checked_against_the_platform_whitelist() {
    // The account's own whitelist (here: nobody) does not apply to the platform's calls.
    let (sim, wx) = platform(None, |c| {
        c.ip_whitelist = Some(vec!["10.0.0.1/32".parse().unwrap()])
    })
    .await;
    let token = component_token(&sim, &wx).await;
    let (access, _) = authorize(&wx, &token, AUTHORIZER).await;
    assert_eq!(wx.use_token(&access).await, 0);
    wx.http
        .put(format!("{}/sim/component/{COMPONENT}/whitelist", wx.base))
        .json(&json!({"ip_list": ["10.0.0.0/8"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(wx.use_token(&access).await, 61004);
}
