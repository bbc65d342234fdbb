//! Pushing as WeCom and as a Mini Program through `POST /sim/push` (families
//! reference §1.5, §2): what goes on the wire is captured by a small server and
//! opened both by the protocol core and by wechatpy's WeCom crypto (an
//! implementation nobody here wrote).

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::Method;
use serde_json::{json, Value};
use wxgate_proto::{
    open_callback, open_echostr, open_json_push, seal_reply, AesKey, CallbackQuery, MessageCrypto,
    PushMode, PushQuery,
};
use wxgate_sim::{PushAnswer, PushOutcome};

const TOKEN: &str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
const KEY: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
const CORP: &str = "ww1436e0e65a779aee";
const MP: &str = "wx00000000000000a1";

/// One request the server received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    query: HashMap<String, String>,
    body: String,
}

type Answer = Arc<dyn Fn(&Seen) -> String + Send + Sync>;

#[derive(Clone)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Answer,
}

async fn handle(
    State(server): State<Server>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> String {
    let seen = Seen {
        method,
        query,
        body,
    };
    server.seen.lock().unwrap().push(seen.clone());
    (server.answer)(&seen)
}

async fn server(
    answer: impl Fn(&Seen) -> String + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Server {
        seen: seen.clone(),
        answer: Arc::new(answer),
    };
    let app = axum::Router::new()
        .route("/cb", axum::routing::any(handle))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cb", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn sim_push(wx: &crate::Client, request: Value) -> PushOutcome {
    let response = wx
        .http
        .post(format!("{}/sim/push", wx.base))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn corp_crypto() -> MessageCrypto {
    MessageCrypto::new(AesKey::try_new(KEY).unwrap(), CORP)
}

fn callback_query(seen: &Seen) -> CallbackQuery {
    serde_json::from_value(serde_json::to_value(&seen.query).unwrap()).unwrap()
}

/// wechatpy's WeCom crypto (`wechatpy.enterprise.crypto.WeChatCrypto`) on one request.
fn wechatpy(request: &Value) -> Value {
    const SCRIPT: &str = r#"
import json, sys
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.utils import to_text
r = json.load(sys.stdin)
c = WeChatCrypto(r["token"], r["key"], r["corpid"])
q = r["query"]
if r["op"] == "check":
    out = c.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
else:
    msg = r["body"] if r["op"] == "xml" else {"Encrypt": json.loads(r["body"])["Encrypt"]}
    out = c.decrypt_message(msg, q["msg_signature"], q["timestamp"], q["nonce"])
print(json.dumps({"plain": to_text(out)}))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with wechatpy (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "wechatpy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wechatpy_open(op: &str, seen: &Seen) -> String {
    let answer = wechatpy(&json!({
        "op": op, "token": TOKEN, "key": KEY, "corpid": CORP,
        "query": seen.query, "body": seen.body,
    }));
    answer["plain"].as_str().unwrap().to_owned()
}

fn wecom_request(url: &str, message: Value, extra: Value) -> Value {
    let mut request = json!({
        "url": url, "token": TOKEN, "family": "wecom", "corpid": CORP,
        "encoding_aes_key": KEY, "agent_id": 1000002, "message": message, "timeout_ms": 2000,
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    request
}

#[tokio::test]
async fn a_wecom_push_is_encrypted_for_the_corp_and_wechatpy_opens_it() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let (url, seen) = server(|_| String::new()).await;
    let outcome = sim_push(
        &wx,
        wecom_request(
            &url,
            json!({"type": "text", "content": "你好"}),
            json!({"from": "ChenJiaShun"}),
        ),
    )
    .await;
    assert_eq!(outcome.answer, PushAnswer::NoReply, "200 and an empty body");
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.method, Method::POST);
    // msg_signature only: no `signature`, no `encrypt_type` (§1.5).
    let mut keys: Vec<_> = seen.query.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["msg_signature", "nonce", "timestamp"]);
    let envelope = wxgate_proto::xml::parse(&seen.body).unwrap();
    assert_eq!(envelope.child_text("ToUserName"), Some(CORP));
    assert_eq!(envelope.child_text("AgentID"), Some("1000002"));
    let plain = wechatpy_open("xml", &seen);
    assert_eq!(plain, outcome.push_xml);
    let push = wxgate_proto::xml::parse(&plain).unwrap();
    assert_eq!(push.child_text("ToUserName"), Some(CORP));
    assert_eq!(push.child_text("FromUserName"), Some("ChenJiaShun"));
    assert_eq!(push.child_text("Content"), Some("你好"));
    assert_eq!(push.child_text("AgentID"), Some("1000002"));
    // The core agrees, and refuses it for another corp.
    let q = callback_query(&seen);
    assert_eq!(
        open_callback(&corp_crypto(), TOKEN, &q, &seen.body).unwrap(),
        plain
    );
    let other = MessageCrypto::new(AesKey::try_new(KEY).unwrap(), "ww0000000000000002");
    assert!(open_callback(&other, TOKEN, &q, &seen.body).is_err());
}

#[tokio::test]
async fn a_wecom_json_callback_opens_in_wechatpy() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let (url, seen) = server(|_| "success".into()).await;
    let outcome = sim_push(
        &wx,
        wecom_request(
            &url,
            json!({"type": "event", "event": "enter_agent"}),
            json!({"format": "json"}),
        ),
    )
    .await;
    assert_eq!(outcome.answer, PushAnswer::NoReply);
    let seen = seen.lock().unwrap()[0].clone();
    let envelope: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(envelope["ToUserName"], CORP);
    assert_eq!(
        envelope["AgentID"], 1000002,
        "a bare number, as in Tencent's sample"
    );
    let plain: Value = serde_json::from_str(&wechatpy_open("json", &seen)).unwrap();
    assert_eq!(plain["Event"], "enter_agent");
    assert_eq!(plain["AgentID"], 1000002);
    assert!(plain["CreateTime"].is_u64());
}

#[tokio::test]
async fn a_wecom_reply_must_be_encrypted_for_the_corp() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let (url, _) = server(|seen| {
        let plain =
            open_callback(&corp_crypto(), TOKEN, &callback_query(seen), &seen.body).unwrap();
        let push = wxgate_proto::Push::parse(&plain).unwrap();
        let reply = wxgate_proto::Reply::to(
            &push,
            1_700_000_000,
            wxgate_proto::ReplyBody::Text {
                content: "got it".into(),
            },
        );
        seal_reply(
            &PushMode::Safe(corp_crypto()),
            TOKEN,
            &reply.to_xml(),
            "1",
            "2",
            &[5; 16],
        )
    })
    .await;
    let outcome = sim_push(
        &wx,
        wecom_request(&url, json!({"type": "text", "content": "hi"}), json!({})),
    )
    .await;
    match &outcome.answer {
        PushAnswer::Reply { msg_type, xml } => {
            assert_eq!(msg_type, "text");
            assert!(xml.contains("got it"));
        }
        other => panic!("{other:?}"),
    }
    // A plain reply is refused: WeCom always encrypts.
    let (url, _) = server(|_| "<xml><MsgType>text</MsgType></xml>".into()).await;
    let outcome = sim_push(
        &wx,
        wecom_request(&url, json!({"type": "text", "content": "hi"}), json!({})),
    )
    .await;
    assert!(
        matches!(outcome.answer, PushAnswer::Invalid { .. }),
        "{:?}",
        outcome.answer
    );
}

#[tokio::test]
async fn the_wecom_url_check_fans_out_an_encrypted_echostr() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let (url, seen) =
        server(|seen| open_echostr(&corp_crypto(), TOKEN, &callback_query(seen)).unwrap()).await;
    let outcome = sim_push(
        &wx,
        wecom_request(&url, json!({"type": "verify_url", "fanout": 3}), json!({})),
    )
    .await;
    let PushAnswer::Verified { echo } = &outcome.answer else {
        panic!("{:?}", outcome.answer)
    };
    assert_eq!(outcome.attempts.len(), 3);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "three identical GETs");
    assert!(seen
        .iter()
        .all(|s| s.method == Method::GET && s.query == seen[0].query));
    let echostr = &seen[0].query["echostr"];
    assert_ne!(echostr, echo, "the echostr is encrypted");
    assert_eq!(wechatpy_open("check", &seen[0]), *echo);
    // An answer with a trailing newline fails the check, as WeCom's console does.
    let (url, _) = server(|seen| {
        format!(
            "{}\n",
            open_echostr(&corp_crypto(), TOKEN, &callback_query(seen)).unwrap()
        )
    })
    .await;
    let outcome = sim_push(
        &wx,
        wecom_request(&url, json!({"type": "verify_url"}), json!({})),
    )
    .await;
    match outcome.answer {
        PushAnswer::Invalid { reason, .. } => assert!(reason.contains("whitespace"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_official_url_check_sends_a_plain_echostr() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let (url, seen) = server(|seen| {
        let q = &seen.query;
        wxgate_proto::verify_signature(TOKEN, &q["timestamp"], &q["nonce"], &q["signature"])
            .unwrap();
        q["echostr"].clone()
    })
    .await;
    let request = json!({"url": url, "token": TOKEN, "message": {"type": "verify_url"}});
    let outcome = sim_push(&wx, request).await;
    assert_eq!(
        outcome.answer,
        PushAnswer::Verified {
            echo: seen.lock().unwrap()[0].query["echostr"].clone()
        }
    );
}

fn mp_request(url: &str, message: Value) -> Value {
    json!({
        "url": url, "token": TOKEN, "family": "miniprogram", "format": "json", "mode": "safe",
        "appid": MP, "encoding_aes_key": KEY, "message": message, "timeout_ms": 2000,
        "to": "gh_97417a04a28d",
    })
}

fn mp_mode() -> PushMode {
    PushMode::Safe(MessageCrypto::new(AesKey::try_new(KEY).unwrap(), MP))
}

fn mp_query(seen: &Seen) -> PushQuery {
    serde_json::from_value(serde_json::to_value(&seen.query).unwrap()).unwrap()
}

#[tokio::test]
async fn a_mini_program_pushes_safe_mode_json() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let (url, seen) = server(|_| "success".into()).await;
    let outcome = sim_push(
        &wx,
        mp_request(&url, json!({"type": "event", "event": "debug_demo"})),
    )
    .await;
    assert_eq!(outcome.answer, PushAnswer::NoReply);
    let seen = seen.lock().unwrap()[0].clone();
    let envelope: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(
        envelope.as_object().unwrap().len(),
        2,
        "only ToUserName and Encrypt: {envelope}"
    );
    assert_eq!(envelope["ToUserName"], "gh_97417a04a28d");
    assert_eq!(seen.query["encrypt_type"], "aes");
    assert!(seen.query.contains_key("signature") && seen.query.contains_key("msg_signature"));
    let plain = open_json_push(&mp_mode(), TOKEN, &mp_query(&seen), &seen.body).unwrap();
    assert_eq!(plain, outcome.push_xml);
    let plain: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(plain["MsgType"], "event");
    assert_eq!(plain["Event"], "debug_demo");
    assert!(plain["CreateTime"].is_u64(), "{plain}");
}

#[tokio::test]
async fn a_mini_program_accepts_only_plain_success_or_a_transfer() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let crypto = MessageCrypto::new(AesKey::try_new(KEY).unwrap(), MP);
    let sealed = move |xml: &str| {
        seal_reply(
            &PushMode::Safe(crypto.clone()),
            TOKEN,
            xml,
            "1",
            "2",
            &[9; 16],
        )
    };
    let transfer = |seen: &Seen| {
        let plain: Value = serde_json::from_str(
            &open_json_push(&mp_mode(), TOKEN, &mp_query(seen), &seen.body).unwrap(),
        )
        .unwrap();
        format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName>\
             <CreateTime>1</CreateTime><MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>",
            plain["FromUserName"].as_str().unwrap(),
            plain["ToUserName"].as_str().unwrap()
        )
    };
    let seal = sealed.clone();
    let (url, _) = server(move |seen| seal(&transfer(seen))).await;
    let outcome = sim_push(
        &wx,
        mp_request(&url, json!({"type": "text", "content": "人工"})),
    )
    .await;
    match &outcome.answer {
        PushAnswer::Reply { msg_type, .. } => assert_eq!(msg_type, "transfer_customer_service"),
        other => panic!("{other:?}"),
    }
    let seal = sealed.clone();
    let (url, _) = server(move |_| seal("success")).await;
    let outcome = sim_push(
        &wx,
        mp_request(&url, json!({"type": "text", "content": "x"})),
    )
    .await;
    match outcome.answer {
        PushAnswer::Invalid { reason, .. } => {
            assert!(reason.contains("encrypted success"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let seal = sealed.clone();
    let (url, _) = server(move |_| {
        seal("<xml><ToUserName>o</ToUserName><FromUserName>gh</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content></xml>")
    })
    .await;
    let outcome = sim_push(
        &wx,
        mp_request(&url, json!({"type": "text", "content": "x"})),
    )
    .await;
    match outcome.answer {
        PushAnswer::Invalid { reason, .. } => {
            assert!(reason.contains("transfer_customer_service"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
