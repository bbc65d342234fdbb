//! Mini Programs (families reference §2): the Official Account's token APIs,
//! an IP whitelist that covers only the AppSecret APIs, and no JS-SDK tickets.

use serde_json::json;
use wxgate_sim::SimApp;

use crate::{access_token, errcode, start, APPID, SECRET};

const MP: &str = "wx00000000000000a1";
const MP_SECRET: &str = "mpsecret0000000000000000000000ab";

async fn mp_token(wx: &crate::Client) -> String {
    access_token(
        &wx.get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={MP}&secret={MP_SECRET}"
        ))
        .await,
    )
}

async fn set_whitelist(wx: &crate::Client, list: serde_json::Value) {
    let put = wx
        .http
        .put(format!("{}/sim/whitelist", wx.base))
        .json(&json!({ "ip_list": list }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
}

#[tokio::test]
async fn a_mini_program_gets_tokens_like_an_official_account() {
    let (sim, wx) = start(|c| c.apps.push(SimApp::miniprogram(MP, MP_SECRET))).await;
    let classic = mp_token(&wx).await;
    let stable = wx
        .post(
            "/cgi-bin/stable_token",
            json!({"grant_type": "client_credential", "appid": MP, "secret": MP_SECRET}),
        )
        .await;
    assert_eq!(stable["expires_in"], 7200, "{stable}");
    assert_ne!(access_token(&stable), classic);
    // A second classic fetch supersedes the first after the grace, as for an OA.
    let second = mp_token(&wx).await;
    assert_ne!(second, classic);
    let stats = sim.stats().app(MP);
    assert_eq!(stats.tokens_issued, 2);
    assert_eq!(stats.stable_tokens_issued, 1);
    let wrong = wx
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={MP}&secret=nope"
        ))
        .await;
    assert_eq!(errcode(&wrong), 40001);
}

#[tokio::test]
async fn the_whitelist_covers_only_a_mini_programs_appsecret_apis() {
    let (_sim, wx) = start(|c| c.apps.push(SimApp::miniprogram(MP, MP_SECRET))).await;
    let mp = mp_token(&wx).await;
    let oa = access_token(&wx.token().await);
    set_whitelist(&wx, json!(["10.0.0.0/8"])).await;
    // Token-authenticated calls: the Mini Program passes, the Official Account does not.
    assert_eq!(wx.use_token(&mp).await, 0);
    assert_eq!(wx.use_token(&oa).await, 40164);
    // The AppSecret API is checked for both.
    let answer = wx
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={MP}&secret={MP_SECRET}"
        ))
        .await;
    assert_eq!(errcode(&answer), 40164, "{answer}");
    let answer = wx
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
        ))
        .await;
    assert_eq!(errcode(&answer), 40164);
}

#[tokio::test]
async fn a_mini_program_has_no_js_sdk_tickets() {
    let (sim, wx) = start(|c| c.apps.push(SimApp::miniprogram(MP, MP_SECRET))).await;
    let mp = mp_token(&wx).await;
    for kind in ["jsapi", "wx_card"] {
        let answer = wx
            .get(&format!(
                "/cgi-bin/ticket/getticket?access_token={mp}&type={kind}"
            ))
            .await;
        assert_eq!(errcode(&answer), 48001, "{answer}");
        assert!(answer["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("api unauthorized rid: "));
    }
    let other = wx
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={mp}&type=x"
        ))
        .await;
    assert_eq!(errcode(&other), 40097);
    // The Official Account beside it still gets one.
    let oa = access_token(&wx.token().await);
    let ticket = wx
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={oa}&type=jsapi"
        ))
        .await;
    assert_eq!(ticket["errcode"], 0);
    let stats = sim.stats();
    assert_eq!(stats.app(MP).tickets_issued, 0);
    assert_eq!(
        stats.app(MP).endpoints["/cgi-bin/ticket/getticket"].errors,
        3
    );
}
