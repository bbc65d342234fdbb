//! Issue #26: WeChat's release test (全网发布, families §3.8), played by the
//! simulator's `POST /sim/release_check` against a platform's message URL
//! `/component/{component_appid}/wx/$APPID$`, passes out of the box for
//! both test accounts, which never become authorizers.

use serde_json::{json, Value};

use crate::platform::{connect, setup, COMPONENT, OPS_KEY, TOKEN};
use crate::Env;

async fn release_check(env: &Env, kind: &str) -> Value {
    let url = format!("{}/component/{COMPONENT}/wx/$APPID$", env.url);
    let answer = env
        .http
        .post(format!("{}/sim/release_check", env.sim.url()))
        .json(&json!({ "component_appid": COMPONENT, "url": url, "type": kind, "wait_ms": 5000 }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    answer.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_check_passes_for_both_test_accounts() {
    let env = setup().start().await;
    connect(&env).await;
    for (kind, appid) in [
        ("official", "wx570bc396a51b8ff8"),
        ("miniprogram", "wxd101a85aa106f53e"),
    ] {
        let report = release_check(&env, kind).await;
        assert_eq!(report["authorizer_appid"], appid, "{report}");
        assert_eq!(report["passed"], true, "{report:#}");
        let steps: Vec<&str> = (report["steps"].as_array().unwrap().iter())
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["text", "event", "query_auth_code"], "{report}");
        // Never an authorizer: not listed, its token not served.
        let list = env
            .http
            .get(format!("{}/v1/components/{COMPONENT}/authorizers", env.url))
            .bearer_auth(OPS_KEY)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(list["authorizers"], json!([]), "{list}");
        let token = env
            .http
            .get(format!("{}/v1/apps/{appid}/access_token", env.url))
            .bearer_auth(OPS_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 404);
    }
    // The component token came from the center: fetched once, with the ticket.
    assert_eq!(
        env.sim
            .stats()
            .endpoint_calls("/cgi-bin/component/api_component_token"),
        1
    );
    assert_eq!(
        env.sim
            .stats()
            .endpoint_calls("/cgi-bin/component/api_query_auth"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_accounts_ownership_check_is_answered_with_the_platforms_token() {
    let env = setup().start().await;
    let timestamp = crate::T0.to_string();
    let signature = wxgate_proto::signature(TOKEN, &timestamp, "n1");
    let url = |signature: &str| {
        format!(
            "{}/component/{COMPONENT}/wx/wxd101a85aa106f53e?signature={signature}&timestamp={timestamp}&nonce=n1&echostr=e42",
            env.url
        )
    };
    let answer = env.http.get(url(&signature)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "e42");
    let answer = env.http.get(url("0")).send().await.unwrap();
    assert!(answer.status().is_client_error(), "{}", answer.status());
    // Another platform's URL is not this one's.
    let other = format!(
        "{}/component/wxc0000000000000ff/wx/wxd101a85aa106f53e?signature={signature}&timestamp={timestamp}&nonce=n1&echostr=e42",
        env.url
    );
    let answer = env.http.get(other).send().await.unwrap();
    assert_eq!(answer.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_test_push_not_sealed_with_the_platforms_token_is_refused() {
    let env = setup().start().await;
    connect(&env).await;
    let url = format!(
        "{}/component/{COMPONENT}/wx/wx570bc396a51b8ff8?signature=0&timestamp={}&nonce=1",
        env.url,
        crate::T0
    );
    let answer = env.http.post(url).body("<xml/>").send().await.unwrap();
    assert!(answer.status().is_client_error(), "{}", answer.status());
}
