//! Pushing as WeChat does, through `POST /sim/push`, to a small business server
//! built on the protocol core (a WeChat *server*, not a fake of WeChat).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use wxgate_proto::{
    open_push, seal_reply, AesKey, MessageCrypto, Push, PushKind, PushMode, PushQuery, Reply,
    ReplyBody,
};
use wxgate_sim::{PushAnswer, PushOutcome};

const TOKEN: &str = "biztoken";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wxb11529c136998cb6";

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Echo,
    Success,
    Garbage,
    PlainInSafeMode,
    WrongNames,
    /// Echo, but only after sleeping this long on the first `n` deliveries.
    SlowFirst(u32, u64),
}

#[derive(Clone)]
struct Biz {
    mode: PushMode,
    behaviour: Behaviour,
    received: Arc<Mutex<Vec<Push>>>,
}

async fn handle(State(biz): State<Biz>, Query(q): Query<PushQuery>, body: String) -> Response {
    let xml = match open_push(&biz.mode, TOKEN, &q, &body) {
        Ok(xml) => xml,
        Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    };
    let push = Push::parse(&xml).unwrap();
    let delivery = {
        let mut received = biz.received.lock().unwrap();
        received.push(push.clone());
        received.len() as u32
    };
    let content = match &push.kind {
        PushKind::Text { content, .. } => format!("echo: {content}"),
        PushKind::Event(event) => format!("event: {}", event.name()),
        other => format!("got {}", other.msg_type()),
    };
    let mut reply = Reply::to(&push, 1_700_000_000, ReplyBody::Text { content });
    match biz.behaviour {
        Behaviour::Success => return "success".into_response(),
        Behaviour::Garbage => return "<xml><oops".into_response(),
        Behaviour::PlainInSafeMode => return reply.to_xml().into_response(),
        Behaviour::WrongNames => reply.to_user_name = "someone_else".into(),
        Behaviour::SlowFirst(n, ms) if delivery <= n => {
            // A business server too slow for WeChat's 5 s is what is tested
            // (the simulator's retries): not a wait for anything.
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        _ => {}
    }
    seal_reply(
        &biz.mode,
        TOKEN,
        &reply.to_xml(),
        "1700000000",
        "77",
        &[3; 16],
    )
    .into_response()
}

fn mode(name: &str) -> PushMode {
    let crypto = || MessageCrypto::new(AesKey::try_new(KEY).unwrap(), APPID);
    match name {
        "plain" => PushMode::Plain,
        "compat" => PushMode::Compat(crypto()),
        _ => PushMode::Safe(crypto()),
    }
}

async fn biz_server(mode_name: &str, behaviour: Behaviour) -> (String, Arc<Mutex<Vec<Push>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let biz = Biz {
        mode: mode(mode_name),
        behaviour,
        received: received.clone(),
    };
    let app = axum::Router::new()
        .route("/wx", axum::routing::post(handle))
        .with_state(biz);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wx", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

async fn sim_push(
    wx: &crate::Client,
    url: &str,
    mode: &str,
    message: Value,
    extra: Value,
) -> PushOutcome {
    let mut request = json!({
        "url": url, "token": TOKEN, "mode": mode, "appid": APPID, "encoding_aes_key": KEY,
        "message": message, "timeout_ms": 300,
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
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

fn reply_content(outcome: &PushOutcome) -> String {
    match &outcome.answer {
        PushAnswer::Reply { msg_type, xml } => {
            assert_eq!(msg_type, "text");
            match Reply::parse(xml).unwrap().body {
                ReplyBody::Text { content } => content,
                other => panic!("{other:?}"),
            }
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[tokio::test]
async fn pushes_round_trip_in_every_mode() {
    let (_sim, wx) = crate::start(|_| {}).await;
    for mode in ["plain", "compat", "safe"] {
        let (url, received) = biz_server(mode, Behaviour::Echo).await;
        let text = json!({"type": "text", "content": "你好 😀"});
        let outcome = sim_push(&wx, &url, mode, text, json!({})).await;
        assert_eq!(reply_content(&outcome), "echo: 你好 😀", "{mode}");
        assert_eq!(outcome.attempts.len(), 1);
        let event = json!({"type": "event", "event": "subscribe", "event_key": "qrscene_42"});
        let outcome = sim_push(&wx, &url, mode, event, json!({})).await;
        assert_eq!(reply_content(&outcome), "event: subscribe", "{mode}");
        let received = received.lock().unwrap();
        assert_eq!(received.len(), 2);
        assert!(matches!(&received[1].kind, PushKind::Event(e) if e.qr_scene() == Some("42")));
    }
}

#[tokio::test]
async fn a_slow_server_gets_the_same_push_again_up_to_three_deliveries() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let (url, received) = biz_server("safe", Behaviour::SlowFirst(2, 600)).await;
    let outcome = sim_push(
        &wx,
        &url,
        "safe",
        json!({"type": "text", "content": "retry me"}),
        json!({}),
    )
    .await;
    assert_eq!(outcome.attempts.len(), 3);
    assert_eq!(outcome.attempts[0].error.as_deref(), Some("timeout"));
    assert_eq!(reply_content(&outcome), "echo: retry me");
    let keys: Vec<_> = received
        .lock()
        .unwrap()
        .iter()
        .map(Push::dedupe_key)
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "same MsgId on every delivery: {keys:?}"
    );

    let (url, _) = biz_server("plain", Behaviour::SlowFirst(10, 600)).await;
    let outcome = sim_push(
        &wx,
        &url,
        "plain",
        json!({"type": "text", "content": "x"}),
        json!({"retries": 1}),
    )
    .await;
    assert_eq!(outcome.attempts.len(), 2);
    assert_eq!(outcome.answer, PushAnswer::Unanswered);
}

#[tokio::test]
async fn answers_are_judged_as_wechat_judges_them() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let text = || json!({"type": "text", "content": "hi"});
    let (url, _) = biz_server("safe", Behaviour::Success).await;
    assert_eq!(
        sim_push(&wx, &url, "safe", text(), json!({})).await.answer,
        PushAnswer::NoReply
    );
    for (mode, behaviour, why) in [
        ("plain", Behaviour::Garbage, "malformed XML"),
        (
            "safe",
            Behaviour::PlainInSafeMode,
            "expected a safe mode message",
        ),
        ("compat", Behaviour::WrongNames, "reply goes from"),
    ] {
        let (url, _) = biz_server(mode, behaviour).await;
        match sim_push(&wx, &url, mode, text(), json!({})).await.answer {
            PushAnswer::Invalid { reason, .. } => assert!(reason.contains(why), "{mode}: {reason}"),
            other => panic!("{mode}: expected invalid, got {other:?}"),
        }
    }
    // A server that is down: every delivery fails.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/wx", l.local_addr().unwrap())
    };
    let outcome = sim_push(&wx, &closed, "plain", text(), json!({})).await;
    assert_eq!(outcome.attempts.len(), 3);
    assert_eq!(outcome.answer, PushAnswer::Unanswered);
    // A wrong token is refused by the server with 401, and reported.
    let (url, _) = biz_server("plain", Behaviour::Echo).await;
    let outcome = sim_push(
        &wx,
        &url,
        "plain",
        text(),
        json!({"token": "wrong", "retries": 0}),
    )
    .await;
    assert_eq!(outcome.attempts[0].status, Some(401));
}

#[tokio::test]
async fn push_settings_errors_are_explained() {
    let (_sim, wx) = crate::start(|_| {}).await;
    let request = json!({"url": "http://127.0.0.1:1/", "token": "t", "mode": "safe",
        "message": {"type": "text", "content": "x"}});
    let response = wx
        .http
        .post(format!("{}/sim/push", wx.base))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("encoding_aes_key"),
        "{body}"
    );
}
