//! An Open Platform platform (families reference §3.1, §3.2) over real HTTP:
//! its receiver gets the verify ticket every 10 virtual minutes, tickets are
//! good 12 h (61005/61006), component tokens are superseded after 5 min, the
//! platform's whitelist (61004) and faults apply. The helpers here (a
//! receiver that opens pushes as the gateway will, a simulator with one
//! platform) serve `authorizers` and `release_check` too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use serde_json::{json, Value};
use wxgate_proto::{
    open_component_push, AesKey, ComponentInfo, ComponentPush, MessageCrypto, PushQuery,
};
use wxgate_sim::{RunningSim, SimComponent};

use crate::{errcode, Client};

pub(crate) const COMPONENT: &str = "wx9eeba14a01d3807f";
pub(crate) const C_SECRET: &str = "component0secret0000000000000000";
pub(crate) const C_TOKEN: &str = "weixin";
pub(crate) const C_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub(crate) const AUTHORIZER: &str = "wxa000000000000001";
pub(crate) const START: u64 = 1_704_052_800;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) body: String,
}

/// A platform's server: records every request and answers `success`.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) base: String,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
}

async fn record(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    uri: axum::http::Uri,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> &'static str {
    let path = uri.path().to_owned();
    seen.lock().unwrap().push(Seen { path, query, body });
    "success"
}

pub(crate) async fn receiver() -> Receiver {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .fallback(axum::routing::post(record))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { base, seen }
}

impl Receiver {
    /// The component pushes received so far, opened and parsed as the gateway will.
    pub(crate) fn pushes(&self) -> Vec<ComponentPush> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == format!("/component/{COMPONENT}"))
            .map(open)
            .collect()
    }

    pub(crate) async fn wait_pushes(&self, n: usize) -> Vec<ComponentPush> {
        wait_until(|| self.pushes().len() >= n).await;
        self.pushes()
    }
}

pub(crate) fn crypto() -> MessageCrypto {
    MessageCrypto::new(AesKey::try_new(C_KEY).unwrap(), COMPONENT)
}

pub(crate) fn query_of(seen: &Seen) -> PushQuery {
    serde_json::from_value(serde_json::to_value(&seen.query).unwrap()).unwrap()
}

fn open(seen: &Seen) -> ComponentPush {
    assert!(seen.body.contains("<AppId>"), "{}", seen.body);
    assert!(!seen.body.contains("ToUserName"), "{}", seen.body);
    let plain = open_component_push(&crypto(), C_TOKEN, &query_of(seen), &seen.body).unwrap();
    ComponentPush::parse(&plain).unwrap()
}

pub(crate) async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..250 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not done within 5 s");
}

/// A simulator with one platform pushing to `receiver`, its clock standing still.
pub(crate) async fn platform(
    receiver: Option<&Receiver>,
    tweak: impl FnOnce(&mut wxgate_sim::SimConfig),
) -> (RunningSim, Client) {
    let url = receiver.map(|r| format!("{}/component/{COMPONENT}", r.base));
    crate::start_at(START, |c| {
        c.components = vec![SimComponent::new(COMPONENT, C_SECRET, C_TOKEN, C_KEY, url)];
        tweak(c);
    })
    .await
}

impl Client {
    pub(crate) async fn component_token(&self, ticket: &str) -> Value {
        let body = json!({"component_appid": COMPONENT, "component_appsecret": C_SECRET,
                          "component_verify_ticket": ticket});
        self.post("/cgi-bin/component/api_component_token", body)
            .await
    }

    pub(crate) async fn component_call(&self, api: &str, token: &str, body: Value) -> Value {
        let path = format!("/cgi-bin/component/{api}?component_access_token={token}");
        self.post(&path, body).await
    }
}

/// The platform's first ticket (pushed at start) and a component token.
pub(crate) async fn component_token(sim: &RunningSim, wx: &Client) -> String {
    wait_until(|| sim.component_ticket(COMPONENT).is_some()).await;
    let ticket = sim.component_ticket(COMPONENT).unwrap();
    let answer = wx.component_token(&ticket).await;
    answer["component_access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

/// Authorizes `appid` through `/sim/authorize` and exchanges its code: (access token, refresh token).
pub(crate) async fn authorize(wx: &Client, token: &str, appid: &str) -> (String, String) {
    let auth = wx
        .post(
            "/sim/authorize",
            json!({"component_appid": COMPONENT, "authorizer_appid": appid}),
        )
        .await;
    let code = auth["authorization_code"].as_str().unwrap();
    let answer = wx
        .component_call(
            "api_query_auth",
            token,
            json!({"component_appid": COMPONENT, "authorization_code": code}),
        )
        .await;
    let info = &answer["authorization_info"];
    (
        info["authorizer_access_token"].as_str().unwrap().to_owned(),
        info["authorizer_refresh_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test]
async fn the_ticket_is_pushed_at_start_and_every_ten_virtual_minutes() {
    let r = receiver().await;
    let (sim, wx) = platform(Some(&r), |_| {}).await;
    let first = r.wait_pushes(1).await;
    let ComponentInfo::VerifyTicket { ticket } = &first[0].info else {
        panic!("{first:?}")
    };
    assert!(ticket.starts_with("ticket@@@"));
    assert_eq!(Some(ticket.clone()), sim.component_ticket(COMPONENT));
    assert_eq!(first[0].component_appid, COMPONENT);
    assert_eq!(first[0].create_time, START);
    // The query is signed like any push, with encrypt_type=aes (families §3.1).
    let seen = r.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.query["encrypt_type"], "aes");
    assert!(seen.query.contains_key("signature") && seen.query.contains_key("msg_signature"));

    wx.advance(599).await;
    assert!(
        sim.push_due_tickets().await.is_empty(),
        "not due before 10 minutes"
    );
    wx.advance(1).await;
    let pushes = r.wait_pushes(2).await;
    assert!(matches!(&pushes[1].info, ComponentInfo::VerifyTicket { ticket: t } if t != ticket));
    let stats = wx.stats().await.component(COMPONENT);
    assert_eq!(stats.tickets_pushed, 2);
    wait_until(|| sim.stats().component(COMPONENT).pushes_acknowledged == 2).await;
    let records: Vec<Value> = wx
        .http
        .get(format!("{}/sim/component/pushes", wx.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["info_type"], "component_verify_ticket");
    assert_eq!(records[1]["acknowledged"], true);
}

#[tokio::test]
async fn a_component_token_needs_a_ticket_of_this_platform_younger_than_12_hours() {
    let (sim, wx) = platform(None, |c| c.component_daily_quota = 3).await;
    wait_until(|| sim.component_ticket(COMPONENT).is_some()).await;
    let ticket = sim.component_ticket(COMPONENT).unwrap();
    assert_eq!(errcode(&wx.component_token("ticket@@@forged").await), 61006);
    let wrong_secret = json!({"component_appid": COMPONENT, "component_appsecret": "x",
                              "component_verify_ticket": ticket});
    let answer = wx
        .post("/cgi-bin/component/api_component_token", wrong_secret)
        .await;
    assert_eq!(errcode(&answer), 40125);
    let unknown = json!({"component_appid": "wx0", "component_appsecret": C_SECRET,
                         "component_verify_ticket": ticket});
    let answer = wx
        .post("/cgi-bin/component/api_component_token", unknown)
        .await;
    assert_eq!(errcode(&answer), 61011);
    assert!(answer["errmsg"].as_str().unwrap().contains(" rid: "));

    let first = wx.component_token(&ticket).await;
    assert_eq!(first["expires_in"], 7200);
    // The ticket stays good until its 12 h are over, whatever was pushed since.
    wx.advance(43_199).await;
    assert!(wx.component_token(&ticket).await["component_access_token"].is_string());
    wx.advance(1).await;
    assert_eq!(errcode(&wx.component_token(&ticket).await), 61005);
    // The daily quota (3 here) counts successful fetches.
    wait_until(|| sim.component_ticket(COMPONENT).as_deref() != Some(ticket.as_str())).await;
    let fresh = sim.component_ticket(COMPONENT).unwrap();
    assert!(wx.component_token(&fresh).await["component_access_token"].is_string());
    assert_eq!(errcode(&wx.component_token(&fresh).await), 45009);
    let stats = sim.stats().component(COMPONENT);
    assert_eq!(stats.component_tokens_issued, 3);
    assert_eq!(stats.calls("/cgi-bin/component/api_component_token"), 7);
}

#[tokio::test]
async fn a_new_component_token_supersedes_the_previous_after_five_minutes() {
    let (sim, wx) = platform(None, |_| {}).await;
    let old = component_token(&sim, &wx).await;
    let ticket = sim.component_ticket(COMPONENT).unwrap();
    let new = wx.component_token(&ticket).await["component_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let preauth = |t: String| {
        let wx = &wx;
        async move {
            wx.component_call(
                "api_create_preauthcode",
                &t,
                json!({"component_appid": COMPONENT}),
            )
            .await
        }
    };
    wx.advance(299).await;
    let answer = preauth(old.clone()).await;
    assert!(answer["pre_auth_code"]
        .as_str()
        .unwrap()
        .starts_with("preauthcode@@@"));
    assert_eq!(answer["expires_in"], 1800);
    wx.advance(1).await;
    assert_eq!(errcode(&preauth(old).await), 40001);
    assert!(preauth(new.clone()).await["pre_auth_code"].is_string());
    assert_eq!(errcode(&preauth(String::new()).await), 41001);
    assert_eq!(sim.stats().component(COMPONENT).invalid_token_calls, 1);
    // Another platform's appid in the body.
    let other = wx
        .component_call(
            "api_create_preauthcode",
            &new,
            json!({"component_appid": "wx0"}),
        )
        .await;
    assert_eq!(errcode(&other), 61011);
    // A platform's appid has no /cgi-bin/token (families §3.2).
    let answer = wx
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={COMPONENT}&secret={C_SECRET}"
        ))
        .await;
    assert_eq!(errcode(&answer), 61024);
}

#[tokio::test]
async fn api_start_push_ticket_pushes_one_at_once() {
    let r = receiver().await;
    let (sim, wx) = platform(Some(&r), |_| {}).await;
    r.wait_pushes(1).await;
    let body = json!({"component_appid": COMPONENT, "component_secret": C_SECRET});
    let answer = wx
        .post("/cgi-bin/component/api_start_push_ticket", body)
        .await;
    assert_eq!(answer, json!({"errcode": 0, "errmsg": "ok"}));
    let pushes = r.wait_pushes(2).await;
    assert_eq!(pushes[1].info.info_type(), "component_verify_ticket");
    let wrong = json!({"component_appid": COMPONENT, "component_secret": "nope"});
    let answer = wx
        .post("/cgi-bin/component/api_start_push_ticket", wrong)
        .await;
    assert_eq!(errcode(&answer), 40125);
    let stats = sim.stats().component(COMPONENT);
    assert_eq!(stats.calls("/cgi-bin/component/api_start_push_ticket"), 2);
}

#[tokio::test]
async fn component_apis_check_the_platform_whitelist_and_take_faults() {
    let (sim, wx) = platform(None, |_| {}).await;
    wait_until(|| sim.component_ticket(COMPONENT).is_some()).await;
    let ticket = sim.component_ticket(COMPONENT).unwrap();
    let put = wx
        .http
        .put(format!("{}/sim/component/{COMPONENT}/whitelist", wx.base))
        .json(&json!({"ip_list": ["10.0.0.0/8"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let answer = wx.component_token(&ticket).await;
    assert_eq!(errcode(&answer), 61004);
    let errmsg = answer["errmsg"].as_str().unwrap();
    assert_eq!(
        wxgate_proto::component_request_ip(errmsg),
        Some("127.0.0.1")
    );
    wx.http
        .put(format!("{}/sim/component/{COMPONENT}/whitelist", wx.base))
        .json(&json!({"ip_list": null}))
        .send()
        .await
        .unwrap();
    wx.post(
        "/sim/faults",
        json!({"path": "/cgi-bin/component/api_component_token", "kind": "errcode", "errcode": -1, "count": 1}),
    )
    .await;
    assert_eq!(errcode(&wx.component_token(&ticket).await), -1);
    assert!(wx.component_token(&ticket).await["component_access_token"].is_string());
    assert_eq!(sim.stats().faults_injected, 1);
}
