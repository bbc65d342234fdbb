//! WeChat's errcodes for bad requests, the IP whitelist, and customer-service sends.

use serde_json::json;

use crate::{access_token, errcode, start, APPID, SECRET};

#[tokio::test]
async fn token_requests_fail_with_wechat_errcodes() {
    let (_sim, wx) = start(|_| {}).await;
    let cases = [
        (
            format!("grant_type=password&appid={APPID}&secret={SECRET}"),
            40002,
        ),
        (
            format!("grant_type=client_credential&secret={SECRET}"),
            41002,
        ),
        (
            format!("grant_type=client_credential&appid=wxnope&secret={SECRET}"),
            40013,
        ),
        (format!("grant_type=client_credential&appid={APPID}"), 41004),
        (
            format!("grant_type=client_credential&appid={APPID}&secret=wrong"),
            40001,
        ),
    ];
    for (query, expected) in cases {
        let answer = wx.get(&format!("/cgi-bin/token?{query}")).await;
        assert_eq!(errcode(&answer), expected, "{query}: {answer}");
    }
    let stable = wx
        .post(
            "/cgi-bin/stable_token",
            json!({"grant_type": "client_credential", "appid": APPID, "secret": "wrong"}),
        )
        .await;
    assert_eq!(errcode(&stable), 40125);
    let url = format!("{}/cgi-bin/stable_token", wx.base);
    let not_json = wx.http.post(url).body("{").send().await.unwrap();
    let not_json: serde_json::Value = not_json.json().await.unwrap();
    assert_eq!(errcode(&not_json), 47001);
    let stats = wx.stats().await;
    assert_eq!(stats.app(APPID).endpoints["/cgi-bin/token"].errors, 2);
    assert_eq!(stats.unattributed.endpoints["/cgi-bin/token"].errors, 3);
}

#[tokio::test]
async fn callers_outside_the_whitelist_get_40164_naming_their_ip() {
    let (_sim, wx) = start(|c| c.ip_whitelist = Some(vec!["10.0.0.0/8".parse().unwrap()])).await;
    let refused = wx.token().await;
    assert_eq!(errcode(&refused), 40164);
    let errmsg = refused["errmsg"].as_str().unwrap();
    assert!(
        errmsg.starts_with("invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist rid: "),
        "{errmsg}"
    );
    // The core extracts the address an operator must add.
    assert_eq!(wxgate_proto::whitelist_ip(errmsg), Some("127.0.0.1"));

    let url = format!("{}/sim/whitelist", wx.base);
    let set = wx
        .http
        .put(&url)
        .json(&json!({"ip_list": ["127.0.0.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    let token = access_token(&wx.token().await);
    // Token-authenticated APIs are whitelisted too (§4.1).
    let bad = wx
        .http
        .put(&url)
        .json(&json!({"ip_list": ["not-an-ip"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    wx.http
        .put(&url)
        .json(&json!({"ip_list": ["192.168.0.0/16"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(wx.use_token(&token).await, 40164);
}

#[tokio::test]
async fn customer_service_messages_are_recorded() {
    let (sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let path = format!("/cgi-bin/message/custom/send?access_token={token}");
    let message = json!({"touser": "oUser1", "msgtype": "text", "text": {"content": "迟到的回复"}});
    let ok = wx.post(&path, message.clone()).await;
    assert_eq!(ok, json!({"errcode": 0, "errmsg": "ok"}));
    let no_user = wx
        .post(&path, json!({"msgtype": "text", "text": {"content": "x"}}))
        .await;
    assert_eq!(errcode(&no_user), 40003);
    let bad_type = wx
        .post(&path, json!({"touser": "o", "msgtype": "fax"}))
        .await;
    assert_eq!(errcode(&bad_type), 40008);
    let forged = wx
        .post(
            "/cgi-bin/message/custom/send?access_token=forged",
            message.clone(),
        )
        .await;
    assert_eq!(errcode(&forged), 40001);

    let recorded: Vec<wxgate_sim::CustomMessage> = wx
        .http
        .get(format!("{}/sim/messages", wx.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].body, message);
    assert_eq!(recorded[0].appid, APPID);
    assert_eq!(sim.messages(), recorded);
    assert_eq!(sim.stats().app(APPID).custom_messages, 1);
}

#[tokio::test]
async fn ip_lists_answer_with_a_valid_token() {
    let (_sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let ips = wx
        .get(&format!("/cgi-bin/getcallbackip?access_token={token}"))
        .await;
    assert!(ips["ip_list"]
        .as_array()
        .unwrap()
        .iter()
        .any(|ip| ip == "127.0.0.1"));
    let ips = wx
        .get(&format!("/cgi-bin/get_api_domain_ip?access_token={token}"))
        .await;
    assert!(!ips["ip_list"].as_array().unwrap().is_empty());
}
