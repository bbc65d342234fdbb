//! `POST /sim/release_check`: WeChat's release test (全网发布, families
//! reference §3.8) against a platform server written with the protocol core's
//! release-check answers, and against one that gets them wrong.

use std::sync::Arc;

use axum::extract::{Query, State};
use serde_json::{json, Value};
use wxgate_proto::component::release_check::{
    custom_message, release_check_answer, reply_text, ReleaseCheckAnswer,
};
use wxgate_proto::{open_push, seal_reply, Push, PushMode, PushQuery};

use crate::component::{component_token, crypto, platform, COMPONENT, C_TOKEN};

/// What the platform server knows: the simulator and its component token.
struct Platform {
    sim: String,
    token: String,
    /// Answer the test text wrongly.
    broken: bool,
}

async fn message(
    State(p): State<Arc<Platform>>,
    Query(query): Query<PushQuery>,
    body: String,
) -> String {
    let mode = PushMode::Safe(crypto());
    let push = Push::parse(&open_push(&mode, C_TOKEN, &query, &body).unwrap()).unwrap();
    match release_check_answer(&push) {
        Some(ReleaseCheckAnswer::ReplyText(text)) => {
            let text = if p.broken { "nope".to_owned() } else { text };
            let xml = reply_text(&push, &text, push.create_time);
            seal_reply(&mode, C_TOKEN, &xml, &query.timestamp, "1", &[3; 16])
        }
        Some(ReleaseCheckAnswer::QueryAuthCode { code, openid }) => {
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let auth: Value = http
                    .post(format!(
                        "{}/cgi-bin/component/api_query_auth?component_access_token={}",
                        p.sim, p.token
                    ))
                    .json(&json!({"component_appid": COMPONENT, "authorization_code": code}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let token = auth["authorization_info"]["authorizer_access_token"]
                    .as_str()
                    .unwrap();
                http.post(format!(
                    "{}/cgi-bin/message/custom/send?access_token={token}",
                    p.sim
                ))
                .json(&custom_message(&openid, &code))
                .send()
                .await
                .unwrap();
            });
            String::new()
        }
        None => "success".to_owned(),
    }
}

async fn check(broken: bool) -> Value {
    check_as(broken, "official").await
}

async fn check_as(broken: bool, kind: &str) -> Value {
    let (sim, wx) = platform(None, |_| {}).await;
    let token = component_token(&sim, &wx).await;
    let state = Arc::new(Platform {
        sim: sim.url(),
        token,
        broken,
    });
    let app = axum::Router::new()
        .route(
            "/component/{component}/wx/{appid}",
            axum::routing::post(message),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/component/{COMPONENT}/wx/$APPID$",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let report = wx
        .post(
            "/sim/release_check",
            json!({"component_appid": COMPONENT, "url": url, "wait_ms": 5000, "type": kind}),
        )
        .await;
    drop(sim);
    report
}

#[tokio::test]
async fn the_release_check_passes_a_server_answering_as_documented() {
    let report = check(false).await;
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["authorizer_appid"], "wx570bc396a51b8ff8");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["text", "event", "query_auth_code"]);
    assert!(report["url"]
        .as_str()
        .unwrap()
        .ends_with("/wx/wx570bc396a51b8ff8"));
}

#[tokio::test]
async fn the_release_check_reports_a_wrong_reply() {
    let report = check(true).await;
    assert_eq!(report["passed"], false);
    assert_eq!(report["steps"][0]["passed"], false);
    let detail = report["steps"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("\"nope\""), "{detail}");
    assert_eq!(report["steps"][2]["passed"], true, "{report:#}");
}

#[tokio::test]
async fn the_release_check_runs_as_the_test_mini_program_too() {
    let report = check_as(false, "miniprogram").await;
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["authorizer_appid"], "wxd101a85aa106f53e");
}
