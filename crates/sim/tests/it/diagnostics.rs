//! `/cgi-bin/openapi/rid/get`: the request behind an error answer, for its own
//! account only, for seven days.

use serde_json::{json, Value};
use wxgate_sim::{Fault, FaultAction, SimApp};

use crate::{access_token, errcode, rid, start, Client, APPID, SECRET};

const OTHER: &str = "wx00000000000000ff";
const OTHER_SECRET: &str = "ffffffffffffffffffffffffffffffff";

async fn rid_get(wx: &Client, token: &str, rid: &str) -> Value {
    let path = format!("/cgi-bin/openapi/rid/get?access_token={token}");
    wx.post(&path, json!({ "rid": rid })).await
}

#[tokio::test]
async fn a_rid_looked_up_by_its_account_returns_the_request_as_answered() {
    let (sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let query = format!("access_token={token}");
    let sent = r#"{"msgtype":"text","text":{"content":"no touser"}}"#;
    let called_at = sim.clock().now();
    let (status, answered) = wx
        .post_raw(
            &format!("/cgi-bin/message/custom/send?{query}"),
            sent.to_owned(),
        )
        .await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&answered).unwrap();
    assert_eq!(errcode(&answer), 40003);

    let found = rid_get(&wx, &token, &rid(&answer)).await;
    assert_eq!(found["errcode"], 0, "{found}");
    assert_eq!(found["errmsg"], "ok");
    let request = &found["request"];
    assert_eq!(request["request_url"], query.as_str());
    assert_eq!(request["request_body"], sent);
    assert_eq!(request["response_body"], answered.as_str());
    assert_eq!(request["client_ip"], "127.0.0.1");
    assert_eq!(request["invoke_time"], called_at);
    assert!(request["cost_in_ms"].is_u64(), "{request}");
}

#[tokio::test]
async fn a_token_fetch_refused_for_quota_is_found_by_the_same_account() {
    let (_sim, wx) = start(|c| c.daily_quota = 1).await;
    let token = access_token(&wx.token().await);
    let refused = wx.token().await;
    assert_eq!(errcode(&refused), 45009);
    let found = rid_get(&wx, &token, &rid(&refused)).await;
    let request = &found["request"];
    let url = request["request_url"].as_str().unwrap();
    assert!(
        url.starts_with("grant_type=client_credential&appid="),
        "{url}"
    );
    assert_eq!(request["request_body"], "");
    let response: Value = serde_json::from_str(request["response_body"].as_str().unwrap()).unwrap();
    assert_eq!(response, refused);
}

#[tokio::test]
async fn another_accounts_rid_and_an_unattributed_rid_answer_76003() {
    let (_sim, wx) = start(|c| c.apps.push(SimApp::new(OTHER, OTHER_SECRET))).await;
    let mine = access_token(&wx.token().await);
    let other = wx
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={OTHER}&secret={OTHER_SECRET}"
        ))
        .await;
    let other = access_token(&other);
    let bad_user = wx
        .get(&format!("/cgi-bin/user/info?access_token={mine}"))
        .await;
    assert_eq!(errcode(&bad_user), 40003);
    let forged = wx.get("/cgi-bin/user/info?access_token=forged").await;
    assert_eq!(errcode(&forged), 40001);

    let refused = rid_get(&wx, &other, &rid(&bad_user)).await;
    assert_eq!(errcode(&refused), 76003, "{refused}");
    assert!(refused["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("could not query this rid,no permission rid: "));
    assert!(refused.get("request").is_none());
    assert_eq!(errcode(&rid_get(&wx, &mine, &rid(&forged)).await), 76003);
    // The owner still gets it.
    assert_eq!(rid_get(&wx, &mine, &rid(&bad_user)).await["errcode"], 0);
}

#[tokio::test]
async fn a_rid_is_forgotten_after_seven_days() {
    let (_sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let failed = wx
        .get(&format!(
            "/cgi-bin/media/get?access_token={token}&media_id=x"
        ))
        .await;
    assert_eq!(errcode(&failed), 40007);
    wx.advance(7 * 86_400 - 1).await;
    let token = access_token(&wx.token().await);
    assert_eq!(rid_get(&wx, &token, &rid(&failed)).await["errcode"], 0);
    wx.advance(1).await;
    let gone = rid_get(&wx, &token, &rid(&failed)).await;
    assert_eq!(errcode(&gone), 76001, "{gone}");
    assert!(gone["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("rid not found rid: "));
}

#[tokio::test]
async fn malformed_unknown_and_unauthorized_lookups_are_refused() {
    let (_sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    for malformed in ["", "abc", "61725984-6126f6f9", "61725984-6126f6f9-040f19cz"] {
        let answer = rid_get(&wx, &token, malformed).await;
        assert_eq!(errcode(&answer), 76002, "{malformed:?}: {answer}");
        assert!(answer["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("rid is error rid: "));
    }
    assert_eq!(
        errcode(&rid_get(&wx, &token, "61725984-6126f6f9-040f19c4").await),
        76001
    );
    let path = format!("/cgi-bin/openapi/rid/get?access_token={token}");
    let (_, not_json) = wx.post_raw(&path, "{".to_owned()).await;
    let not_json: Value = serde_json::from_str(&not_json).unwrap();
    assert_eq!(errcode(&not_json), 47001);
    assert_eq!(
        errcode(&rid_get(&wx, "forged", "61725984-6126f6f9-040f19c4").await),
        40001
    );
    let missing = wx
        .post("/cgi-bin/openapi/rid/get", json!({"rid": "x"}))
        .await;
    assert_eq!(errcode(&missing), 41001);
}

#[tokio::test]
async fn an_injected_faults_rid_is_not_recorded() {
    let (sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    sim.add_fault(Fault {
        path: Some("/cgi-bin/getcallbackip".to_owned()),
        action: FaultAction::Errcode {
            errcode: -1,
            errmsg: "system error".to_owned(),
        },
        count: Some(1),
        rate: None,
    });
    let busy = wx
        .get(&format!("/cgi-bin/getcallbackip?access_token={token}"))
        .await;
    assert_eq!(errcode(&busy), -1);
    assert_eq!(errcode(&rid_get(&wx, &token, &rid(&busy)).await), 76001);
}

#[tokio::test]
async fn large_and_multipart_bodies_are_kept_as_empty_strings() {
    let (_sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    // 20 KiB: the API still reads all of it (no touser → 40003), the record keeps "".
    let large = json!({"msgtype": "text", "text": {"content": "字".repeat(7000)}});
    let path = format!("/cgi-bin/message/custom/send?access_token={token}");
    let answer = wx.post(&path, large).await;
    assert_eq!(errcode(&answer), 40003);
    let found = rid_get(&wx, &token, &rid(&answer)).await;
    assert_eq!(found["request"]["request_body"], "");

    let gif = crate::media::media("a.gif", None, b"GIF89a");
    let answer = wx
        .upload(&format!("access_token={token}&type=sticker"), &[gif])
        .await;
    assert_eq!(errcode(&answer), 40004);
    let found = rid_get(&wx, &token, &rid(&answer)).await;
    assert_eq!(found["request"]["request_body"], "");
    assert!(found["request"]["request_url"]
        .as_str()
        .unwrap()
        .ends_with("&type=sticker"));
}

#[tokio::test]
async fn a_stable_token_error_is_recorded_with_its_body() {
    let (_sim, wx) = start(|_| {}).await;
    let sent =
        json!({"grant_type": "client_credential", "appid": APPID, "secret": "wrong"}).to_string();
    let (_, answered) = wx.post_raw("/cgi-bin/stable_token", sent.clone()).await;
    let answer: Value = serde_json::from_str(&answered).unwrap();
    assert_eq!(errcode(&answer), 40125);
    let body = json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET});
    let token = access_token(&wx.post("/cgi-bin/stable_token", body).await);
    let found = rid_get(&wx, &token, &rid(&answer)).await;
    assert_eq!(found["request"]["request_body"], sent.as_str());
    assert_eq!(found["request"]["request_url"], "");
    assert_eq!(found["request"]["response_body"], answered.as_str());
}
