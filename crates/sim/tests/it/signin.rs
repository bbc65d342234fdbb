//! User sign-in (families reference §4.d, §2): codes handed out by the
//! control API, single-use and valid 5 minutes on the virtual clock; the
//! web exchange, refresh, userinfo and `sns/auth`; `jscode2session`.

use serde_json::{json, Value};
use wxgate_sim::SimApp;

use crate::{errcode, start_at, APPID, SECRET};

const MP: &str = "wx00000000000000a1";
const MP_SECRET: &str = "mpsecret0000000000000000000000ab";
const T0: u64 = 1_704_052_800;

async fn code(wx: &crate::Client, body: Value) -> String {
    let answer = wx.post("/sim/oauth/authorize", body).await;
    answer["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {answer}"))
        .to_owned()
}

async fn exchange(wx: &crate::Client, code: &str) -> Value {
    wx.get(&format!(
        "/sns/oauth2/access_token?appid={APPID}&secret={SECRET}&code={code}&grant_type=authorization_code"
    ))
    .await
}

#[tokio::test]
async fn a_web_code_is_exchanged_once_then_40163() {
    let (sim, wx) = start_at(T0, |_| {}).await;
    let c = code(
        &wx,
        json!({"appid": APPID, "openid": "o1", "scope": "snsapi_userinfo"}),
    )
    .await;
    let answer = exchange(&wx, &c).await;
    assert_eq!(answer["openid"], "o1", "{answer}");
    assert_eq!(answer["scope"], "snsapi_userinfo");
    assert_eq!(answer["expires_in"], 7200);
    assert!(answer["refresh_token"].is_string());
    assert!(answer.get("is_snapshotuser").is_none());
    assert_eq!(errcode(&exchange(&wx, &c).await), 40163);
    assert_eq!(errcode(&exchange(&wx, "nope").await), 40029);
    let stats = sim.stats().app(APPID);
    assert_eq!(stats.calls("/sns/oauth2/access_token"), 3);
    assert_eq!(stats.endpoints["/sns/oauth2/access_token"].errors, 2);
}

#[tokio::test]
async fn a_code_expires_after_five_virtual_minutes() {
    let (_sim, wx) = start_at(T0, |_| {}).await;
    let c = code(&wx, json!({"appid": APPID})).await;
    wx.advance(299).await;
    let fresh = code(&wx, json!({"appid": APPID})).await;
    wx.advance(1).await;
    assert_eq!(errcode(&exchange(&wx, &c).await), 40029, "300 s old");
    assert!(exchange(&wx, &fresh).await["access_token"].is_string());
}

#[tokio::test]
async fn the_secret_is_checked_before_the_code() {
    let (_sim, wx) = start_at(T0, |_| {}).await;
    let c = code(&wx, json!({"appid": APPID})).await;
    let wrong = wx
        .get(&format!(
            "/sns/oauth2/access_token?appid={APPID}&secret=nope&code={c}&grant_type=authorization_code"
        ))
        .await;
    assert_eq!(errcode(&wrong), 40125);
    let unknown = wx
        .get(&format!(
            "/sns/oauth2/access_token?appid=wx9&secret={SECRET}&code={c}&grant_type=authorization_code"
        ))
        .await;
    assert_eq!(errcode(&unknown), 40013);
    // The code is still good: the failed calls did not spend it.
    assert!(exchange(&wx, &c).await["access_token"].is_string());
}

#[tokio::test]
async fn refresh_userinfo_and_auth_follow_the_user_token() {
    let (_sim, wx) = start_at(T0, |_| {}).await;
    let c = code(
        &wx,
        json!({"appid": APPID, "openid": "o2", "scope": "snsapi_userinfo", "unionid": "u2"}),
    )
    .await;
    let first = exchange(&wx, &c).await;
    assert_eq!(first["unionid"], "u2");
    let token = first["access_token"].as_str().unwrap();
    let info = wx
        .get(&format!(
            "/sns/userinfo?access_token={token}&openid=o2&lang=zh_CN"
        ))
        .await;
    assert_eq!(info["openid"], "o2", "{info}");
    assert_eq!(info["unionid"], "u2");
    assert_eq!(info["sex"], 0);
    let other = wx
        .get(&format!("/sns/userinfo?access_token={token}&openid=o3"))
        .await;
    assert_eq!(errcode(&other), 40003);
    let auth = wx
        .get(&format!("/sns/auth?access_token={token}&openid=o2"))
        .await;
    assert_eq!(errcode(&auth), 0);
    wx.advance(7200).await;
    assert_eq!(
        errcode(
            &wx.get(&format!("/sns/auth?access_token={token}&openid=o2"))
                .await
        ),
        42001
    );
    let rt = first["refresh_token"].as_str().unwrap();
    let refresh = |rt: String| {
        let wx = &wx;
        async move {
            wx.get(&format!(
                "/sns/oauth2/refresh_token?appid={APPID}&grant_type=refresh_token&refresh_token={rt}"
            ))
            .await
        }
    };
    let renewed = refresh(rt.to_owned()).await;
    assert_eq!(renewed["refresh_token"], rt);
    assert_ne!(renewed["access_token"], first["access_token"]);
    let token = renewed["access_token"].as_str().unwrap();
    assert_eq!(
        errcode(
            &wx.get(&format!("/sns/auth?access_token={token}&openid=o2"))
                .await
        ),
        0
    );
    assert_eq!(errcode(&refresh("bogus".into()).await), 40030);
    wx.advance(30 * 86_400).await;
    assert_eq!(errcode(&refresh(rt.to_owned()).await), 42002);
}

#[tokio::test]
async fn base_scope_and_snapshot_users_get_no_userinfo() {
    let (_sim, wx) = start_at(T0, |_| {}).await;
    for body in [
        json!({"appid": APPID, "openid": "o4"}),
        json!({"appid": APPID, "openid": "o4", "scope": "snsapi_userinfo", "snapshot": true}),
    ] {
        let answer = exchange(&wx, &code(&wx, body.clone()).await).await;
        let token = answer["access_token"].as_str().unwrap();
        let info = wx
            .get(&format!("/sns/userinfo?access_token={token}&openid=o4"))
            .await;
        assert_eq!(errcode(&info), 48001, "{body}");
        assert_eq!(
            answer.get("is_snapshotuser").is_some(),
            body["snapshot"] == true,
            "{answer}"
        );
    }
    let blocked = code(&wx, json!({"appid": APPID, "blocked": true})).await;
    assert_eq!(errcode(&exchange(&wx, &blocked).await), 40226);
}

#[tokio::test]
async fn jscode2session_is_a_mini_programs_and_single_use() {
    let (sim, wx) = start_at(T0, |c| c.apps.push(SimApp::miniprogram(MP, MP_SECRET))).await;
    let answer = wx
        .post("/sim/jscode", json!({"appid": MP, "openid": "om"}))
        .await;
    let js_code = answer["code"].as_str().unwrap().to_owned();
    let call = |secret: &str| {
        format!("/sns/jscode2session?appid={MP}&secret={secret}&js_code={js_code}&grant_type=authorization_code")
    };
    assert_eq!(errcode(&wx.get(&call("nope")).await), 40125);
    let session = wx.get(&call(MP_SECRET)).await;
    assert_eq!(session["openid"], "om", "{session}");
    assert_eq!(session["session_key"].as_str().unwrap().len(), 24);
    assert_eq!(errcode(&wx.get(&call(MP_SECRET)).await), 40163);
    assert_eq!(sim.stats().app(MP).calls("/sns/jscode2session"), 3);
    // Web authorization is an Official Account's, wx.login a Mini Program's.
    let (status, _) = wx
        .post_raw("/sim/jscode", json!({"appid": APPID}).to_string())
        .await;
    assert_eq!(status, 400);
    let (status, _) = wx
        .post_raw("/sim/oauth/authorize", json!({"appid": MP}).to_string())
        .await;
    assert_eq!(status, 400);
}
