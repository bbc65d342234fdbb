//! WeCom (families reference §1) over HTTP: tokens per (corpid, secret) that a
//! repeat fetch does not supersede, 40013/40001/40091, trusted IPs (60020 with
//! the caller's IP), 301002 for another app's token, 42001 or 40014 on
//! expiry, the corp and agent tickets and their hourly limits, per-app stats.

use serde_json::{json, Value};
use wxgate_sim::{SimConfig, SimCorpApp, WecomExpiry, WecomRepeat};

use crate::{errcode, start_at, Client};

const CORP: &str = "ww1436e0e65a779aee";
const OA_SECRET: &str = "corpsecret-oa-000000000000000000000";
const HR_SECRET: &str = "corpsecret-hr-000000000000000000000";
const CONTACTS_SECRET: &str = "corpsecret-contacts-00000000000000";
const OTHER_CORP: &str = "ww0000000000000002";
const OTHER_SECRET: &str = "corpsecret-other-corp-000000000000";
const T0: u64 = 1_700_000_000;

fn corps(c: &mut SimConfig) {
    c.corps = vec![
        SimCorpApp::new(CORP, "1000002", OA_SECRET),
        SimCorpApp::new(CORP, "1000003", HR_SECRET),
        SimCorpApp::new(CORP, "contacts", CONTACTS_SECRET),
        SimCorpApp::new(OTHER_CORP, "1000002", OTHER_SECRET),
    ];
}

async fn gettoken(wx: &Client, corpid: &str, secret: &str) -> Value {
    wx.get(&format!(
        "/cgi-bin/gettoken?corpid={corpid}&corpsecret={secret}"
    ))
    .await
}

async fn token_of(wx: &Client, secret: &str) -> String {
    let answer = gettoken(wx, CORP, secret).await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn agent_get(wx: &Client, token: &str, agentid: &str) -> Value {
    wx.get(&format!(
        "/cgi-bin/agent/get?access_token={token}&agentid={agentid}"
    ))
    .await
}

/// WeCom's errmsg form: `…, hint: […], from ip: …, more info at …?e=CODE`, no rid.
fn assert_wecom_errmsg(answer: &Value, code: i64) {
    assert_eq!(errcode(answer), code, "{answer}");
    let errmsg = answer["errmsg"].as_str().unwrap();
    assert!(errmsg.contains(", hint: ["), "{errmsg}");
    assert!(errmsg.contains("from ip: 127.0.0.1"), "{errmsg}");
    assert!(
        errmsg.ends_with(&format!(
            "more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
        )),
        "{errmsg}"
    );
    assert!(!errmsg.contains(" rid: "), "{errmsg}");
}

#[tokio::test]
async fn a_repeat_gettoken_returns_the_same_live_token() {
    let (sim, wx) = start_at(T0, corps).await;
    let first = gettoken(&wx, CORP, OA_SECRET).await;
    assert_eq!(first["errcode"], 0);
    assert_eq!(first["errmsg"], "ok");
    assert_eq!(first["expires_in"], 7200);
    let token = first["access_token"].as_str().unwrap().to_owned();
    wx.advance(1000).await;
    let again = gettoken(&wx, CORP, OA_SECRET).await;
    assert_eq!(
        again["access_token"],
        token.as_str(),
        "no new token while valid"
    );
    assert_eq!(again["expires_in"], 6200, "the remaining lifetime");
    assert_eq!(agent_get(&wx, &token, "1000002").await["errcode"], 0);
    // At expiry the next fetch mints a new one; the old one is 42001.
    wx.advance(6200).await;
    assert_wecom_errmsg(&agent_get(&wx, &token, "1000002").await, 42001);
    let renewed = token_of(&wx, OA_SECRET).await;
    assert_ne!(renewed, token);
    let stats = sim.stats().wecom(&format!("{CORP}/1000002"));
    assert_eq!(stats.tokens_issued, 2, "a repeat fetch issues nothing");
    assert_eq!(stats.calls("/cgi-bin/gettoken"), 3);
    assert_eq!(stats.invalid_token_calls, 1);
}

#[tokio::test]
async fn repeat_fetches_may_report_the_full_lifetime() {
    let (_sim, wx) = start_at(T0, |c| {
        corps(c);
        c.wecom_repeat = WecomRepeat::Full;
    })
    .await;
    let token = token_of(&wx, OA_SECRET).await;
    wx.advance(1000).await;
    let again = gettoken(&wx, CORP, OA_SECRET).await;
    assert_eq!(again["access_token"], token.as_str());
    assert_eq!(again["expires_in"], 7200);
}

#[tokio::test]
async fn each_secret_of_a_corp_has_its_own_token() {
    let (sim, wx) = start_at(T0, corps).await;
    let oa = token_of(&wx, OA_SECRET).await;
    let hr = token_of(&wx, HR_SECRET).await;
    let contacts = token_of(&wx, CONTACTS_SECRET).await;
    assert_ne!(oa, hr);
    assert_ne!(oa, contacts);
    // Both work, for their own app.
    assert_eq!(agent_get(&wx, &oa, "1000002").await["agentid"], 1000002);
    assert_eq!(agent_get(&wx, &hr, "1000003").await["agentid"], 1000003);
    let stats = sim.stats();
    assert_eq!(stats.wecom(&format!("{CORP}/1000002")).tokens_issued, 1);
    assert_eq!(stats.wecom(&format!("{CORP}/1000003")).tokens_issued, 1);
    assert_eq!(stats.wecom(&format!("{CORP}/contacts")).tokens_issued, 1);
}

#[tokio::test]
async fn another_apps_token_is_301002() {
    let (sim, wx) = start_at(T0, corps).await;
    let oa = token_of(&wx, OA_SECRET).await;
    let answer = agent_get(&wx, &oa, "1000003").await;
    assert_wecom_errmsg(&answer, 301002);
    assert!(answer["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("not allow operate another agent with this accesstoken."));
    let send = |agentid: u64| {
        json!({"touser": "ChenJiaShun", "msgtype": "text", "agentid": agentid,
               "text": {"content": "hi"}})
    };
    let url = format!("/cgi-bin/message/send?access_token={oa}");
    assert_wecom_errmsg(&wx.post(&url, send(1000003)).await, 301002);
    let sent = wx.post(&url, send(1000002)).await;
    assert_eq!(sent["errcode"], 0, "{sent}");
    assert_eq!(sim.messages().len(), 1);
    assert_eq!(sim.messages()[0].appid, format!("{CORP}/1000002"));
    // A special secret's token has no agent at all.
    let contacts = token_of(&wx, CONTACTS_SECRET).await;
    assert_eq!(errcode(&agent_get(&wx, &contacts, "1000002").await), 301002);
}

#[tokio::test]
async fn unknown_corps_and_wrong_secrets_are_refused() {
    let (sim, wx) = start_at(T0, corps).await;
    assert_wecom_errmsg(&gettoken(&wx, "ww_nobody", OA_SECRET).await, 40013);
    assert_wecom_errmsg(&gettoken(&wx, CORP, "wrong").await, 40001);
    // The secret of another corp's app: 40091 (families §1.2).
    assert_wecom_errmsg(&gettoken(&wx, CORP, OTHER_SECRET).await, 40091);
    assert_eq!(
        errcode(&wx.get(&format!("/cgi-bin/gettoken?corpid={CORP}")).await),
        41004
    );
    assert_eq!(errcode(&wx.get("/cgi-bin/gettoken").await), 41002);
    assert_wecom_errmsg(&agent_get(&wx, "not-a-token", "1000002").await, 40014);
    // Nothing was issued; an Official Account token API call is not WeCom's.
    let stats = sim.stats();
    assert_eq!(stats.wecom(&format!("{CORP}/1000002")).tokens_issued, 0);
    assert_eq!(stats.unattributed.calls("/cgi-bin/gettoken"), 5);
}

#[tokio::test]
async fn an_untrusted_ip_gets_60020_naming_it() {
    let (sim, wx) = start_at(T0, |c| {
        corps(c);
        c.corps[0].trusted_ips = Some(vec!["10.0.0.0/8".parse().unwrap()]);
    })
    .await;
    // gettoken itself is not IP-checked; the token's API calls are.
    let oa = token_of(&wx, OA_SECRET).await;
    let answer = agent_get(&wx, &oa, "1000002").await;
    assert_wecom_errmsg(&answer, 60020);
    let errmsg = answer["errmsg"].as_str().unwrap();
    assert!(
        errmsg.starts_with("not allow to access from your ip, hint: ["),
        "{errmsg}"
    );
    // wxgate_proto reads the IP out of it the way the families doc says.
    let ip = errmsg
        .split("from ip: ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert_eq!(ip, "127.0.0.1");
    // The other app of the corp has no list; trusting the caller lets the first in.
    let hr = token_of(&wx, HR_SECRET).await;
    assert_eq!(agent_get(&wx, &hr, "1000003").await["errcode"], 0);
    let put = wx
        .http
        .put(format!("{}/sim/wecom/{CORP}/1000002/trusted_ips", wx.base))
        .json(&json!({"ip_list": ["127.0.0.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    assert_eq!(agent_get(&wx, &oa, "1000002").await["errcode"], 0);
    sim.set_trusted_ips(CORP, "1000002", Some(vec!["10.1.0.0/16".parse().unwrap()]))
        .unwrap();
    assert_eq!(errcode(&agent_get(&wx, &oa, "1000002").await), 60020);
    assert!(sim.set_trusted_ips(CORP, "nope", None).is_err());
}

#[tokio::test]
async fn an_expired_token_can_be_answered_40014() {
    let (_sim, wx) = start_at(T0, |c| {
        corps(c);
        c.wecom_expiry = WecomExpiry::Invalid40014;
    })
    .await;
    let oa = token_of(&wx, OA_SECRET).await;
    wx.advance(7199).await;
    assert_eq!(agent_get(&wx, &oa, "1000002").await["errcode"], 0);
    wx.advance(1).await;
    let answer = agent_get(&wx, &oa, "1000002").await;
    assert_wecom_errmsg(&answer, 40014);
    assert!(answer["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("invalid access_token, hint"));
}

#[tokio::test]
async fn corp_and_agent_tickets() {
    let (sim, wx) = start_at(T0, corps).await;
    let oa = token_of(&wx, OA_SECRET).await;
    let corp = wx
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={oa}"))
        .await;
    let agent = wx
        .get(&format!(
            "/cgi-bin/ticket/get?access_token={oa}&type=agent_config"
        ))
        .await;
    for answer in [&corp, &agent] {
        assert_eq!(answer["errcode"], 0, "{answer}");
        assert_eq!(answer["errmsg"], "ok");
        assert_eq!(answer["expires_in"], 7200);
        assert!(answer["ticket"].as_str().unwrap().len() > 20);
    }
    assert_ne!(corp["ticket"], agent["ticket"]);
    let bad_type = wx
        .get(&format!("/cgi-bin/ticket/get?access_token={oa}&type=jsapi"))
        .await;
    assert_eq!(errcode(&bad_type), 40097);
    // An Official Account's getticket does not take a WeCom token.
    let oa_api = wx
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={oa}&type=jsapi"
        ))
        .await;
    assert_eq!(errcode(&oa_api), 40001);
    wx.advance(7200).await;
    let expired = wx
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={oa}"))
        .await;
    assert_eq!(errcode(&expired), 42001);
    let stats = sim.stats().wecom(&format!("{CORP}/1000002"));
    assert_eq!(stats.tickets_issued, 2);
    assert_eq!(stats.calls("/cgi-bin/get_jsapi_ticket"), 2);
    assert_eq!(stats.calls("/cgi-bin/ticket/get"), 2);
}

#[tokio::test]
async fn tickets_are_limited_per_app_and_per_corp_each_hour() {
    let (_sim, wx) = start_at(T0 - T0 % 3600, |c| {
        corps(c);
        c.wecom_tickets_per_app_hour = 2;
        c.wecom_tickets_per_corp_hour = 3;
    })
    .await;
    let oa = token_of(&wx, OA_SECRET).await;
    let hr = token_of(&wx, HR_SECRET).await;
    let corp_ticket = |t: &str| format!("/cgi-bin/get_jsapi_ticket?access_token={t}");
    let agent_ticket = |t: &str| format!("/cgi-bin/ticket/get?access_token={t}&type=agent_config");
    assert_eq!(wx.get(&corp_ticket(&oa)).await["errcode"], 0);
    assert_eq!(wx.get(&corp_ticket(&oa)).await["errcode"], 0);
    assert_wecom_errmsg(&wx.get(&corp_ticket(&oa)).await, 45009);
    // The agent ticket counts apart; the corp's third corp ticket comes from another app.
    assert_eq!(wx.get(&agent_ticket(&oa)).await["errcode"], 0);
    assert_eq!(wx.get(&corp_ticket(&hr)).await["errcode"], 0);
    assert_eq!(
        errcode(&wx.get(&corp_ticket(&hr)).await),
        45009,
        "corp limit"
    );
    wx.advance(3600).await;
    assert_eq!(wx.get(&corp_ticket(&hr)).await["errcode"], 0, "a new hour");
}

#[tokio::test]
async fn getcallbackip_answers_a_wecom_token_as_wecom() {
    let (_sim, wx) = start_at(T0, corps).await;
    let oa = token_of(&wx, OA_SECRET).await;
    let answer = wx
        .get(&format!("/cgi-bin/getcallbackip?access_token={oa}"))
        .await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    assert_eq!(answer["errmsg"], "ok");
    assert!(!answer["ip_list"].as_array().unwrap().is_empty());
    // The Official Account's answer has no errcode.
    let oa_token = crate::access_token(&wx.token().await);
    let answer = wx
        .get(&format!("/cgi-bin/getcallbackip?access_token={oa_token}"))
        .await;
    assert!(answer.get("errcode").is_none(), "{answer}");
}

#[tokio::test]
async fn wecom_may_end_a_token_early() {
    let (sim, wx) = start_at(T0, corps).await;
    let oa = token_of(&wx, OA_SECRET).await;
    let hr = token_of(&wx, HR_SECRET).await;
    let (status, _) = wx
        .post_raw(
            &format!("/sim/wecom/{CORP}/1000002/invalidate"),
            String::new(),
        )
        .await;
    assert_eq!(status, 204);
    assert_wecom_errmsg(&agent_get(&wx, &oa, "1000002").await, 40014);
    // Only that app's token; the next gettoken mints a new one.
    assert_eq!(agent_get(&wx, &hr, "1000003").await["errcode"], 0);
    let renewed = token_of(&wx, OA_SECRET).await;
    assert_ne!(renewed, oa);
    assert_eq!(agent_get(&wx, &renewed, "1000002").await["errcode"], 0);
    assert!(sim.invalidate_wecom_token(CORP, "nope").is_err());
    assert_eq!(
        sim.stats()
            .wecom(&format!("{CORP}/1000002"))
            .invalid_token_calls,
        1
    );
}

#[tokio::test]
async fn each_api_is_rate_limited_per_corp() {
    let (_sim, wx) = start_at(T0 - T0 % 3600, |c| {
        corps(c);
        c.wecom_api_per_corp_minute = 2;
        c.wecom_api_per_corp_hour = 3;
    })
    .await;
    let oa = token_of(&wx, OA_SECRET).await;
    let hr = token_of(&wx, HR_SECRET).await;
    assert_eq!(agent_get(&wx, &oa, "1000002").await["errcode"], 0);
    // The limit is the corp's: another app of it shares it.
    assert_eq!(agent_get(&wx, &hr, "1000003").await["errcode"], 0);
    assert_wecom_errmsg(&agent_get(&wx, &oa, "1000002").await, 45009);
    // Another API has its own count.
    let ips = wx
        .get(&format!("/cgi-bin/getcallbackip?access_token={oa}"))
        .await;
    assert_eq!(ips["errcode"], 0, "{ips}");
    wx.advance(60).await;
    assert_eq!(
        agent_get(&wx, &oa, "1000002").await["errcode"],
        0,
        "a new minute"
    );
    assert_eq!(
        errcode(&agent_get(&wx, &oa, "1000002").await),
        45009,
        "the hour's 3 are used"
    );
    wx.advance(3600).await;
    let oa = token_of(&wx, OA_SECRET).await;
    assert_eq!(
        agent_get(&wx, &oa, "1000002").await["errcode"],
        0,
        "a new hour"
    );
}
