//! The WeChat-facing endpoint: every push type in every mode through rules and
//! the webhook, retries, late replies, and bad input. Pushes come from the
//! simulator's push sender (acting as WeChat) and from wechatpy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wxgate_gateway::clock::Clock;
use wxgate_proto::{AesKey, MessageCrypto, Reply, ReplyBody};
use wxgate_sim::push::{self, Compose, PushRequest};
use wxgate_sim::PushAnswer;

use crate::{Env, Setup, APPID, T0};

const TOKEN: &str = "server-token-123";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub(crate) const HOOK_SECRET: &str = "hook-secret-xyz";

/// Every push type of the protocol reference (§2.4, §2.5): (name, MsgType, fields).
fn samples() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("text", "text", "<Content><![CDATA[你好 😀]]></Content><MsgId>1001</MsgId>"),
        ("image", "image", "<PicUrl><![CDATA[http://mmbiz/x.jpg]]></PicUrl><MediaId><![CDATA[m]]></MediaId><MsgId>1002</MsgId>"),
        ("voice", "voice", "<MediaId><![CDATA[m]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯]]></Recognition><MsgId>1003</MsgId>"),
        ("video", "video", "<MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>1004</MsgId>"),
        ("shortvideo", "shortvideo", "<MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>1005</MsgId>"),
        ("location", "location", "<Location_X>23.13</Location_X><Location_Y>113.35</Location_Y><Scale>20</Scale><Label><![CDATA[广州]]></Label><MsgId>1006</MsgId>"),
        ("link", "link", "<Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[https://a/]]></Url><MsgId>1007</MsgId>"),
        ("subscribe", "event", "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123]]></EventKey><Ticket><![CDATA[tk]]></Ticket>"),
        ("unsubscribe", "event", "<Event><![CDATA[unsubscribe]]></Event>"),
        ("SCAN", "event", "<Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[123]]></EventKey><Ticket><![CDATA[tk]]></Ticket>"),
        ("LOCATION", "event", "<Event><![CDATA[LOCATION]]></Event><Latitude>23.1</Latitude><Longitude>113.3</Longitude><Precision>119.3</Precision>"),
        ("CLICK", "event", "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[MENU_1]]></EventKey>"),
        ("VIEW", "event", "<Event><![CDATA[VIEW]]></Event><EventKey><![CDATA[https://www.example.com/]]></EventKey><MenuId>1</MenuId>"),
        ("TEMPLATESENDJOBFINISH", "event", "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>"),
        ("MASSSENDJOBFINISH", "event", "<Event><![CDATA[MASSSENDJOBFINISH]]></Event><MsgID>1988</MsgID><Status><![CDATA[send success]]></Status><TotalCount>100</TotalCount>"),
        ("scancode_push", "event", "<Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[k]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>"),
        ("pic_sysphoto", "event", "<Event><![CDATA[pic_sysphoto]]></Event><EventKey><![CDATA[k]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[abc]]></PicMd5Sum></item></PicList></SendPicsInfo>"),
        ("location_select", "event", "<Event><![CDATA[location_select]]></Event><EventKey><![CDATA[k]]></EventKey><SendLocationInfo><Location_X>23</Location_X><Location_Y>113</Location_Y></SendLocationInfo>"),
        ("view_miniprogram", "event", "<Event><![CDATA[view_miniprogram]]></Event><EventKey><![CDATA[pages/index]]></EventKey><MenuId>2</MenuId>"),
        ("subscribe_msg_popup_event", "event", "<Event><![CDATA[subscribe_msg_popup_event]]></Event><SubscribeMsgPopupEvent><List><TemplateId><![CDATA[t1]]></TemplateId></List></SubscribeMsgPopupEvent>"),
        ("miniprogrampage", "miniprogrampage", "<Title><![CDATA[t]]></Title><AppId><![CDATA[wx9]]></AppId><MsgId>1008</MsgId>"),
    ]
}

pub(crate) fn sample_xml(msg_type: &str, fields: &str, create_time: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUser_1]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{fields}</xml>"
    )
}

/// The business server behind the webhook: checks the signature, records the
/// push, waits `delay`, and answers `hook:<name>`.
#[derive(Clone, Default)]
pub(crate) struct Hook {
    pub(crate) seen: Arc<Mutex<Vec<Value>>>,
    delay: Duration,
}

async fn hook(
    axum::extract::State(hook): axum::extract::State<Hook>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let timestamp = headers["x-wxgate-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    if headers["x-wxgate-signature"] != expected.as_str() {
        return (axum::http::StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let request: Value = serde_json::from_str(&body).unwrap();
    hook.seen.lock().unwrap().push(request.clone());
    // A slow business server is what these tests are about (a reply past
    // the budget, a retry while the first delivery is still out): not a wait.
    tokio::time::sleep(hook.delay).await;
    let push = &request["push"];
    let name = push["event"]
        .as_str()
        .or(push["msg_type"].as_str())
        .unwrap()
        .to_owned();
    axum::Json(json!({"type": "text", "content": format!("hook:{name}")})).into_response()
}

pub(crate) async fn start_hook(delay: Duration) -> (String, Hook) {
    let state = Hook {
        delay,
        ..Hook::default()
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

pub(crate) fn app_toml(mode: &str) -> String {
    format!("token = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\nmode = \"{mode}\"")
}

/// Pushes `xml` to the gateway as WeChat would in `mode`.
pub(crate) async fn push_xml(env: &Env, mode: &str, xml: &str) -> wxgate_sim::PushOutcome {
    push_to(&env.url, env.clock.now(), mode, xml).await
}

/// Pushes `xml` to the gateway at `base` as WeChat would at `now` in `mode`.
pub(crate) async fn push_to(
    base: &str,
    now: u64,
    mode: &str,
    xml: &str,
) -> wxgate_sim::PushOutcome {
    let request = PushRequest {
        url: format!("{base}/wx/{APPID}"),
        token: TOKEN.into(),
        mode: mode.into(),
        appid: Some(APPID.into()),
        encoding_aes_key: Some(AES_KEY.into()),
        message: Compose::Xml { xml: xml.into() },
        from: "oUser_1".into(),
        to: "gh_0123456789ab".into(),
        timeout_ms: 5000,
        retries: 0,
    };
    push::send(&push::client(), &request, now).await.unwrap()
}

pub(crate) fn reply_text(outcome: &wxgate_sim::PushOutcome) -> String {
    match &outcome.answer {
        PushAnswer::Reply { xml, .. } => match Reply::parse(xml).unwrap().body {
            ReplyBody::Text { content } => content,
            other => panic!("{other:?}"),
        },
        other => panic!(
            "expected a reply, got {other:?} after {:?}",
            outcome.attempts
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_type_round_trips_through_rules_and_the_webhook_in_every_mode() {
    let samples = samples();
    let mut rules = String::new();
    for (name, msg_type, _) in &samples {
        let condition = if *msg_type == "event" {
            format!("event = \"{name}\"")
        } else {
            format!("msg_type = \"{msg_type}\"")
        };
        rules.push_str(&format!(
            "[[apps.rules]]\n{condition}\nreply = {{ text = \"rule:{name}\" }}\n"
        ));
    }
    for mode in ["plain", "compat", "safe"] {
        let by_rules = Setup::new().app(&app_toml(mode)).app(&rules).start().await;
        let (hook_url, hook) = start_hook(Duration::ZERO).await;
        let by_hook = Setup::new()
            .app(&app_toml(mode))
            .app(&format!(
                "webhook = \"{hook_url}\"\nwebhook_secret = \"{HOOK_SECRET}\""
            ))
            .start()
            .await;
        for (i, (name, msg_type, fields)) in samples.iter().enumerate() {
            let xml = sample_xml(msg_type, fields, T0 + i as u64);
            assert_eq!(
                reply_text(&push_xml(&by_rules, mode, &xml).await),
                format!("rule:{name}"),
                "{mode} {name}"
            );
            assert_eq!(
                reply_text(&push_xml(&by_hook, mode, &xml).await),
                format!("hook:{name}"),
                "{mode} {name}"
            );
        }
        let seen = hook.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), samples.len(), "{mode}");
        assert_eq!(seen[0]["appid"], APPID);
        assert_eq!(seen[0]["push"]["content"], "你好 😀");
        assert_eq!(seen[0]["push"]["msg_id"], "1001");
        assert_eq!(seen[2]["push"]["recognition"], "腾讯");
        assert_eq!(seen[7]["push"]["qr_scene"], "123");
        assert_eq!(
            seen[16]["push"]["extra"]["SendPicsInfo"]["PicList"]["item"]["PicMd5Sum"],
            "abc"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_deliveries_of_one_push_call_the_webhook_once_and_get_one_reply() {
    let (hook_url, hook) = start_hook(Duration::from_millis(300)).await;
    let env = Setup::new()
        .app(&app_toml("safe"))
        .app(&format!(
            "webhook = \"{hook_url}\"\nwebhook_secret = \"{HOOK_SECRET}\""
        ))
        .start()
        .await;
    let xml = sample_xml(
        "text",
        "<Content><![CDATA[retry]]></Content><MsgId>777</MsgId>",
        T0,
    );
    let env = Arc::new(env);
    let deliveries = (0..3).map(|_| {
        let (env, xml) = (env.clone(), xml.clone());
        tokio::spawn(async move { push_xml(&env, "safe", &xml).await })
    });
    let outcomes = futures_util::future::join_all(deliveries).await;
    for outcome in outcomes {
        assert_eq!(reply_text(&outcome.unwrap()), "hook:text");
    }
    // A later retry gets the cached reply.
    assert_eq!(reply_text(&push_xml(&env, "safe", &xml).await), "hook:text");
    assert_eq!(
        hook.seen.lock().unwrap().len(),
        1,
        "the webhook saw the push once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_webhook_reply_goes_out_as_a_customer_service_message() {
    let (hook_url, _hook) = start_hook(Duration::from_millis(1200)).await;
    let env = Setup::new()
        .server("reply_budget_ms = 200")
        .app(&app_toml("safe"))
        .app(&format!(
            "webhook = \"{hook_url}\"\nwebhook_secret = \"{HOOK_SECRET}\""
        ))
        .start()
        .await;
    let xml = sample_xml(
        "text",
        "<Content><![CDATA[slow]]></Content><MsgId>888</MsgId>",
        T0,
    );
    let outcome = push_xml(&env, "safe", &xml).await;
    assert_eq!(
        outcome.answer,
        PushAnswer::NoReply,
        "WeChat got success in time"
    );
    assert!(
        outcome.attempts[0].elapsed_ms < 1000,
        "{:?}",
        outcome.attempts
    );
    let message = wxgate_testkit::wait_for(
        Duration::from_secs(10),
        "no customer-service message",
        async || env.sim.messages().into_iter().next(),
    )
    .await;
    assert_eq!(message.appid, APPID);
    assert_eq!(
        message.body,
        json!({"touser": "oUser_1", "msgtype": "text", "text": {"content": "hook:text"}})
    );
}

/// A signed request as WeChat would send it, possibly tampered with.
struct Raw {
    query: Vec<(String, String)>,
    body: String,
}

fn signed(timestamp: u64, body: &str) -> Raw {
    let (ts, nonce) = (timestamp.to_string(), "4242".to_string());
    let signature = wxgate_proto::signature(TOKEN, &ts, &nonce);
    Raw {
        query: vec![
            ("signature".into(), signature),
            ("timestamp".into(), ts),
            ("nonce".into(), nonce),
        ],
        body: body.into(),
    }
}

fn sealed_safe(appid: &str, xml: &str, mangle: impl Fn(String) -> String) -> Raw {
    let crypto = MessageCrypto::new(AesKey::try_new(AES_KEY).unwrap(), appid);
    let encrypt = mangle(crypto.encrypt(&[9; 16], xml.as_bytes()));
    let ts = T0.to_string();
    let mut raw = signed(T0, &format!("<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"));
    raw.query.push(("encrypt_type".into(), "aes".into()));
    raw.query.push((
        "msg_signature".into(),
        wxgate_proto::msg_signature(TOKEN, &ts, "4242", &encrypt),
    ));
    raw
}

async fn post(env: &Env, raw: Raw) -> (u16, String) {
    let response = env
        .http
        .post(format!("{}/wx/{APPID}", env.url))
        .query(&raw.query)
        .body(raw.body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_leaks_no_secret() {
    let safe = Setup::new().app(&app_toml("safe")).start().await;
    let plain = Setup::new().app(&app_toml("plain")).start().await;
    let text = sample_xml("text", "<Content>hi</Content><MsgId>1</MsgId>", T0);

    let mut unsigned = signed(T0, &text);
    unsigned.query.retain(|(k, _)| k != "signature");
    let mut forged = signed(T0, &text);
    forged.query[0].1 = "0".repeat(40);
    let cases: Vec<(&str, &Env, Raw, u16, &str)> = vec![
        ("missing signature", &plain, unsigned, 400, "signature"),
        ("bad signature", &plain, forged, 401, "bad_signature"),
        ("stale timestamp", &plain, signed(T0 - 301, &text), 401, "stale_timestamp"),
        ("malformed XML", &plain, signed(T0, "<xml><ToUserName>"), 400, "malformed XML"),
        (
            "entity expansion",
            &plain,
            signed(T0, "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><xml><ToUserName>&b;</ToUserName></xml>"),
            400,
            "document type",
        ),
        ("plain push to a safe app", &safe, signed(T0, &text), 400, "expected a safe mode"),
        ("wrong appid inside", &safe, sealed_safe("wxffffffffffffffff", &text, |e| e), 400, "appid mismatch"),
        ("truncated ciphertext", &safe, sealed_safe(APPID, &text, |e| e[..e.len() - 24].to_owned()), 400, "bad_push"),
        ("garbage ciphertext", &safe, sealed_safe(APPID, &text, |_| "not*base64".into()), 400, "base64"),
    ];
    for (what, env, raw, status, needle) in cases {
        let (got, body) = post(env, raw).await;
        assert_eq!(got, status, "{what}: {body}");
        assert!(body.contains(needle), "{what}: {body}");
    }
    let big = signed(T0, &"x".repeat(10 << 20));
    assert_eq!(post(&plain, big).await.0, 413, "a 10 MB body");

    // The ownership check.
    let mut check = signed(T0, "");
    check
        .query
        .push(("echostr".into(), "4375120948345356249".into()));
    let url = format!("{}/wx/{APPID}", plain.url);
    let ok = plain
        .http
        .get(&url)
        .query(&check.query)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "4375120948345356249");
    check.query[0].1 = "f".repeat(40);
    assert_eq!(
        plain
            .http
            .get(&url)
            .query(&check.query)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // With one app, the root URL works too.
    check.query[0].1 = wxgate_proto::signature(TOKEN, &T0.to_string(), "4242");
    let root = plain
        .http
        .get(format!("{}/", plain.url))
        .query(&check.query)
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 200);

    // A valid push still works after all that.
    let (status, body) = post(&plain, signed(T0, &text)).await;
    assert_eq!((status, body.as_str()), (200, "success"));
    let logs = crate::logs::text();
    assert!(logs.contains("push refused"), "refusals are logged");
    for secret in [
        TOKEN,
        AES_KEY,
        crate::SECRET,
        crate::CLIENT_KEY,
        HOOK_SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}

/// wechatpy builds a safe-mode push, posts it, and decrypts wxgate's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpy_pushes_and_reads_the_encrypted_reply() {
    let env = Setup::new()
        .app(&app_toml("safe"))
        .app("[[apps.rules]]\nkeyword = \"你好\"\nreply = { text = \"欢迎 😀\" }")
        .start()
        .await;
    let script = r#"
import hashlib, json, sys, requests, xmltodict
from wechatpy.crypto import WeChatCrypto
url, token, key, appid, ts = sys.argv[1:6]
crypto = WeChatCrypto(token, key, appid)
msg = ("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser_py]]></FromUserName>"
       "<CreateTime>%s</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content>"
       "<MsgId>99</MsgId></xml>" % ts)
env = xmltodict.parse(crypto.encrypt_message(msg, "1234", ts))["xml"]
body = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt></xml>" % env["Encrypt"]
signature = hashlib.sha1("".join(sorted([token, ts, "1234"])).encode()).hexdigest()
params = {"signature": signature, "timestamp": ts, "nonce": "1234", "openid": "oUser_py",
          "encrypt_type": "aes", "msg_signature": env["MsgSignature"]}
r = requests.post(url, params=params, data=body.encode())
reply = xmltodict.parse(r.text)["xml"]
plain = crypto.decrypt_message(r.text, reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"])
print(json.dumps({"status": r.status_code, "reply": xmltodict.parse(plain)["xml"]}, ensure_ascii=False))
"#;
    let args = [
        format!("{}/wx/{APPID}", env.url),
        TOKEN.into(),
        AES_KEY.into(),
        APPID.into(),
        T0.to_string(),
    ];
    let answer = crate::wechatpy(script, args.into()).await;
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["reply"]["Content"], "欢迎 😀");
    assert_eq!(answer["reply"]["ToUserName"], "oUser_py");
    assert_eq!(answer["reply"]["MsgType"], "text");
}

fn webhook_setup(hook_url: &str, mode: &str) -> Setup {
    Setup::new().app(&app_toml(mode)).app(&format!(
        "webhook = \"{hook_url}\"\nwebhook_secret = \"{HOOK_SECRET}\""
    ))
}

/// Issue #16 (3): two different events of one user in one second (two menu
/// clicks, two template results) are two pushes: both reach the webhook,
/// while a retry of either still does not.
#[tokio::test]
async fn different_events_of_one_user_in_one_second_all_reach_the_webhook() {
    let (hook_url, hook) = start_hook(Duration::ZERO).await;
    let env = webhook_setup(&hook_url, "safe").start().await;
    let events = [
        "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[menu_a]]></EventKey>",
        "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[menu_b]]></EventKey>",
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>1001</MsgID><Status><![CDATA[success]]></Status>",
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>1002</MsgID><Status><![CDATA[success]]></Status>",
    ];
    for fields in events {
        let xml = sample_xml("event", fields, T0);
        let name = if fields.contains("CLICK") {
            "CLICK"
        } else {
            "TEMPLATESENDJOBFINISH"
        };
        let reply = reply_text(&push_xml(&env, "safe", &xml).await);
        assert_eq!(reply, format!("hook:{name}"));
        // WeChat's retry of the same event is answered from the first delivery.
        push_xml(&env, "safe", &xml).await;
    }
    let seen = hook.seen.lock().unwrap();
    let keys: Vec<_> = seen
        .iter()
        .map(|r| {
            let push = &r["push"];
            format!(
                "{}{}",
                push["event_key"].as_str().unwrap_or(""),
                push["msg_id"]
            )
        })
        .collect();
    assert_eq!(seen.len(), 4, "each event once: {keys:?}");
    assert!(seen.iter().all(|r| r["mode"] == "safe"), "{seen:?}");
}

/// Issue #16 (7): a push dated ahead of time is remembered until its own
/// timestamp leaves the accepted window, so replaying it later is recognised.
#[tokio::test]
async fn a_future_dated_push_replayed_after_its_arrival_window_is_still_a_duplicate() {
    let (hook_url, hook) = start_hook(Duration::ZERO).await;
    let env = webhook_setup(&hook_url, "plain").start().await;
    let xml = sample_xml(
        "text",
        "<Content>later</Content><MsgId>4242</MsgId>",
        T0 + 300,
    );
    assert_eq!(post(&env, signed(T0 + 300, &xml)).await.0, 200);
    // Past the old window (tolerance + 60 s from arrival), still within the
    // timestamp's tolerance: the replay is accepted by the signature checks…
    env.advance(361).await;
    let (status, body) = post(&env, signed(T0 + 300, &xml)).await;
    assert_eq!(status, 200, "{body}");
    // …and recognised as the push already handled.
    assert_eq!(hook.seen.lock().unwrap().len(), 1);
}

/// Issue #16 (6): in plain mode the signature does not cover the body; the
/// first body seen with a signed query is bound to it. WeChat's retry passes,
/// another body under a captured URL is refused, and the webhook is told the
/// push came in plain mode.
#[tokio::test]
async fn a_captured_plain_mode_url_cannot_carry_another_body() {
    let (hook_url, hook) = start_hook(Duration::ZERO).await;
    let env = webhook_setup(&hook_url, "plain").start().await;
    let genuine = sample_xml("text", "<Content>hi</Content><MsgId>1</MsgId>", T0);
    let forged = sample_xml("text", "<Content>pay me</Content><MsgId>2</MsgId>", T0);
    let (status, reply) = post(&env, signed(T0, &genuine)).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("hook:text"), "{reply}");
    // WeChat's retry: the same body, the same answer.
    assert_eq!(post(&env, signed(T0, &genuine)).await, (200, reply));
    // The captured URL with another body.
    let (status, body) = post(&env, signed(T0, &forged)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("body_mismatch"), "{body}");
    let seen = hook.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["mode"], "plain");
    assert_eq!(seen[0]["push"]["content"], "hi");
}

/// Issue #16 (5): refused pushes are at debug level, summed up in at most one
/// warning a minute per app; text from the request (an appid with a newline
/// or a terminal escape) never forges a log line.
#[tokio::test]
async fn refused_pushes_neither_flood_nor_forge_log_lines() {
    const FLOODED: &str = "wxf100d0000000000f";
    let env = Setup::new()
        .extra(&format!(
            "[[apps]]\nappid = \"{FLOODED}\"\nsecret = \"s\"\ntoken = \"{TOKEN}\"\nmode = \"plain\""
        ))
        .start()
        .await;
    let text = sample_xml("text", "<Content>hi</Content><MsgId>1</MsgId>", T0);
    let mut forged = signed(T0, &text);
    forged.query[0].1 = "0".repeat(40);
    for _ in 0..300 {
        let response = env
            .http
            .post(format!("{}/wx/{FLOODED}", env.url))
            .query(&forged.query)
            .body(forged.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let hostile = env
        .http
        .post(format!("{}/wx/wx%0AERROR%20forged%20line%1B%5B2J", env.url))
        .query(&forged.query)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status(), 404);

    let logs = crate::logs::text();
    let warnings = logs
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains(FLOODED))
        .collect::<Vec<_>>();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("last_reason=\"bad_signature\""),
        "{warnings:?}"
    );
    assert!(
        logs.contains("ERROR forged line"),
        "the refusal is logged at debug"
    );
    assert!(
        !logs.lines().any(|l| l.starts_with("ERROR forged")),
        "a request forged a log line"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "a terminal escape reached the log"
    );
}

/// Issue #16 (11): the signature is in the query, so a push that fails it is
/// refused before its body is read: a request declaring a large body and
/// sending a trickle is answered 401 at once, nothing buffered.
#[tokio::test]
async fn a_badly_signed_push_is_refused_before_its_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Setup::new()
        .app(&app_toml("plain"))
        .server("max_body_bytes = 1048576")
        .start()
        .await;
    let addr = env.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let ts = T0.to_string();
    let request = format!(
        "POST /wx/{APPID}?signature={}&timestamp={ts}&nonce=n HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Length: 1000000\r\n\r\n<xml>",
        "0".repeat(40)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 12];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    assert_eq!(
        &answer[9..12],
        b"401",
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// The ownership check takes the same freshness window as pushes (a captured
/// signed URL cannot be replayed later), and its echo is plain text that a
/// browser will not sniff as HTML.
#[tokio::test]
async fn the_ownership_check_is_fresh_only_and_echoes_plain_text() {
    let env = Setup::new().app(&app_toml("plain")).start().await;
    let url = format!("{}/wx/{APPID}", env.url);
    let check = |timestamp: u64| {
        let mut raw = signed(timestamp, "");
        raw.query
            .push(("echostr".into(), "<script>alert(1)</script>".into()));
        env.http.get(&url).query(&raw.query).send()
    };
    let fresh = check(T0 - 300).await.unwrap();
    assert_eq!(fresh.status(), 200);
    let headers = fresh.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(fresh.text().await.unwrap(), "<script>alert(1)</script>");
    for stale in [T0 - 301, T0 + 301, 0] {
        let answer = check(stale).await.unwrap();
        assert_eq!(answer.status(), 401, "signed at {stale}");
        assert!(answer.text().await.unwrap().contains("stale_timestamp"));
    }
}
