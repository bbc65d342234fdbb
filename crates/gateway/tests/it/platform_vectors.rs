//! Issue #26: the component vectors of `testdata/vectors-families.json`
//! (WeChat's own pushes, verified elsewhere) decrypt through the events
//! endpoint, and a restart on Redis reuses every platform credential.

use serde_json::Value;
use wxgate_sim::SimComponent;
use wxgate_testkit::RedisServer;

use crate::platform::{authorize, connect, get, setup, COMPONENT, MP, OA};
use crate::Setup;

const ADMIN_KEY: &str = "vectors-admin-key-0123456789abcdef";

fn component_vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors-families.json"
    );
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vectors: Vec<Value> = all
        .into_iter()
        .filter(|v| {
            v["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("component-"))
        })
        .collect();
    assert_eq!(
        vectors.len(),
        2,
        "the verify ticket and the unauthorized event"
    );
    vectors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_component_vectors_decrypt_through_the_events_endpoint() {
    for v in component_vectors() {
        let field = |k: &str| v[k].as_str().unwrap().to_owned();
        let (appid, token, key) = (
            field("receiveid"),
            field("token"),
            field("encoding_aes_key"),
        );
        let timestamp = field("timestamp");
        let env = Setup::new()
            .starting_at(timestamp.parse().unwrap())
            .admin(ADMIN_KEY)
            .sim(|s| {
                s.components.push(SimComponent::new(
                    &appid,
                    "vector-secret",
                    &token,
                    &key,
                    None,
                ))
            })
            .extra(&format!(
                "[[components]]\ncomponent_appid = \"{appid}\"\nsecret = \"vector-secret\"\n\
                 token = \"{token}\"\nencoding_aes_key = \"{key}\"\n"
            ))
            .start()
            .await;
        let nonce = field("nonce");
        let signature = wxgate_proto::signature(&token, &timestamp, &nonce);
        let url = format!(
            "{}/component/{appid}?signature={signature}&timestamp={timestamp}&nonce={nonce}&encrypt_type=aes&msg_signature={}",
            env.url,
            field("msg_signature")
        );
        let body = format!(
            "<xml><AppId><![CDATA[{appid}]]></AppId><Encrypt><![CDATA[{}]]></Encrypt></xml>",
            field("encrypt")
        );
        let answer = env
            .http
            .post(url.clone())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{}", v["id"]);
        assert_eq!(answer.text().await.unwrap(), "success");
        match v["id"].as_str().unwrap() {
            "component-verify-ticket" => {
                // Kept: an audit entry of the pushed ticket.
                let (status, audit) = env
                    .admin_get(&format!("/v1/audit?appid={appid}&limit=100"), ADMIN_KEY)
                    .await;
                assert_eq!(status, 200, "{audit}");
                let kept = (audit["entries"].as_array().unwrap().iter())
                    .any(|e| e["kind"] == "component_verify_ticket" && e["event"] == "push");
                assert!(kept, "{audit}");
            }
            "component-unauthorized" => {
                // The revocation is known (the account was never served here).
                let revoked = env
                    .http
                    .get(format!("{}/admin/status.json", env.url))
                    .bearer_auth(ADMIN_KEY)
                    .send()
                    .await
                    .unwrap();
                let snapshot: Value = revoked.json().await.unwrap();
                let listed = snapshot["platforms"][0]["authorizers"].to_string();
                assert!(
                    listed.contains("wx1234567890123456") && listed.contains("revoked"),
                    "{snapshot}"
                );
            }
            other => panic!("{other}"),
        }
        // A byte changed in the ciphertext: refused, not acted on.
        let tampered = body.replacen("<![CDATA[", "<![CDATA[A", 2);
        let answer = env.http.post(url).body(tampered).send().await.unwrap();
        assert!(answer.status().is_client_error(), "{}", answer.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_redis_reuses_the_ticket_the_component_token_and_every_authorizer() {
    let redis = RedisServer::start();
    let mut env = setup().redis(&redis.url()).start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    authorize(&env, MP, "miniprogram").await;
    env.settle().await;
    let before = env.sim.stats();
    let (_, oa) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    env.start_gateway().await;
    let (status, again) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["access_token"], oa["access_token"]);
    assert_eq!(
        get(&env, &format!("/v1/apps/{MP}/access_token")).await.0,
        200
    );
    let (status, _) = get(
        &env,
        &format!("/v1/components/{COMPONENT}/component_access_token"),
    )
    .await;
    assert_eq!(status, 200);
    env.settle().await;
    let after = env.sim.stats();
    for path in [
        "/cgi-bin/component/api_component_token",
        "/cgi-bin/component/api_authorizer_token",
        "/cgi-bin/component/api_query_auth",
        "/cgi-bin/component/api_get_authorizer_list",
        "/cgi-bin/component/api_start_push_ticket",
    ] {
        assert_eq!(
            after.endpoint_calls(path),
            before.endpoint_calls(path),
            "{path}"
        );
    }
}
