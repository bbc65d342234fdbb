//! A push storm: 10,000 pushes, 30% of them delivered again, in random order
//! and 64 at a time. Each push reaches the webhook once; every delivery of it
//! gets the same reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use wxgate_gateway::clock::Clock;
use wxgate_proto::{Reply, ReplyBody};
use wxgate_testkit::gateway::{Setup, APPID};

use crate::figure;

const TOKEN: &str = "storm-token";
const PUSHES: u64 = 10_000;

/// The webhook: counts calls per MsgId and answers with a reply naming it.
async fn start_hook(calls: Arc<Mutex<HashMap<String, u32>>>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let calls = calls.clone();
            async move {
                let request: serde_json::Value = serde_json::from_str(&body).unwrap();
                let msg_id = request["push"]["msg_id"].as_str().unwrap().to_owned();
                *calls.lock().unwrap().entry(msg_id.clone()).or_default() += 1;
                axum::Json(
                    serde_json::json!({"type": "text", "content": format!("reply to {msg_id}")}),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pushes_with_retries_are_each_handled_once() {
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let hook = start_hook(calls.clone()).await;
    let env = Setup::new()
        .app(&format!(
            "token = \"{TOKEN}\"\nmode = \"plain\"\nwebhook = \"{hook}\"\nwebhook_secret = \"storm-hook-secret\""
        ))
        .start()
        .await;
    let mut deliveries: Vec<u64> = (0..PUSHES).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    deliveries.extend((0..PUSHES).filter(|i| i % 10 < 3));
    deliveries.shuffle(&mut rng);
    let retries = deliveries.len() as u64 - PUSHES;

    let now = env.clock.now();
    let timestamp = now.to_string();
    // Each push signed with a nonce of its own, as WeChat does (a plain-mode
    // body is bound to its signed query); a retry repeats its push's query.
    let url = |i: u64| {
        let nonce = format!("storm{i}");
        format!(
            "{}/wx/{APPID}?signature={}&timestamp={timestamp}&nonce={nonce}",
            env.url,
            wxgate_proto::signature(TOKEN, &timestamp, &nonce)
        )
    };
    let answers: Vec<(u64, String)> = futures_util::stream::iter(deliveries)
        .map(|i| {
            let (http, url) = (env.http.clone(), url(i));
            async move {
                let xml = format!(
                    "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser{i}]]></FromUserName>\
                     <CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
                     <Content><![CDATA[storm {i}]]></Content><MsgId>{}</MsgId></xml>",
                    1_000_000 + i
                );
                let response = http.post(url).body(xml).send().await.unwrap();
                assert_eq!(response.status(), 200);
                (i, response.text().await.unwrap())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let mut replies: HashMap<u64, String> = HashMap::new();
    let mut mismatched = 0;
    for (i, xml) in answers {
        let content = match Reply::parse(&xml).unwrap().body {
            ReplyBody::Text { content } => content,
            other => panic!("{other:?}"),
        };
        assert_eq!(content, format!("reply to {}", 1_000_000 + i));
        if replies
            .insert(i, content.clone())
            .is_some_and(|first| first != content)
        {
            mismatched += 1;
        }
    }
    let calls = calls.lock().unwrap();
    let handled_twice = calls.values().filter(|&&n| n > 1).count();
    figure(
        "storm",
        format!(
            "{PUSHES} pushes + {retries} retries (64 concurrent, random order): webhook calls {}, pushes handled more than once {handled_twice}, retries answered differently {mismatched}",
            calls.values().sum::<u32>()
        ),
    );
    assert_eq!(calls.len() as u64, PUSHES);
    assert_eq!(handled_twice, 0);
    assert_eq!(mismatched, 0);
    assert_eq!(replies.len() as u64, PUSHES);
}
