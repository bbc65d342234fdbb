//! WeChat misbehaving: busy answers, timeouts, dropped connections, whitelist
//! and quota errors. The right behaviour and hint for each, and no hammering.

use serde_json::json;
use wxgate_gateway::clock::Clock;
use wxgate_sim::{Fault, FaultAction};

use crate::{Setup, APPID};

/// A fault on the token endpoint only, so business calls at the simulator stay unaffected.
fn fault(action: FaultAction, count: u32) -> Fault {
    Fault {
        path: Some("/cgi-bin/token".into()),
        action,
        count: Some(count),
        rate: None,
    }
}

fn busy() -> FaultAction {
    FaultAction::Errcode {
        errcode: -1,
        errmsg: "system error".into(),
    }
}

#[tokio::test]
async fn a_busy_burst_at_cold_start_backs_off_then_recovers() {
    let env = Setup::new().fault(fault(busy(), 3)).start().await;
    let path = format!("/v1/apps/{APPID}/access_token");
    let (status, body) = env.client_get(&path).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert_eq!(body["error"]["errcode"], -1);
    let retry_at = body["error"]["retry_at"].as_u64().unwrap();
    // While backing off, callers get the error at once and WeChat is not called.
    let before = env.sim.stats().endpoint_calls("/cgi-bin/token");
    for _ in 0..20 {
        assert_eq!(env.client_get(&path).await.0, 503);
    }
    assert_eq!(env.sim.stats().endpoint_calls("/cgi-bin/token"), before);
    // Backoff grows: 1 s, 2 s, 4 s… then the fault is over.
    let mut now = env.clock.now();
    let mut waits = Vec::new();
    let mut next = retry_at;
    loop {
        env.advance(next - now).await;
        now = next;
        waits.push(next);
        let (status, body) = env.client_get(&path).await;
        if status == 200 {
            break;
        }
        next = body["error"]["retry_at"].as_u64().unwrap();
        assert!(next > now, "retry_at moves forward");
    }
    assert_eq!(waits.len(), 3, "three busy answers, then success");
    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/token"),
        4,
        "one call per attempt, no more"
    );
}

#[tokio::test]
async fn failures_during_a_proactive_refresh_keep_the_current_token_in_service() {
    let env = Setup::new().start().await;
    let first = env.access_token().await;
    env.sim.add_fault(fault(busy(), 4));
    env.advance(6600).await; // due: the refresher meets the busy burst
    assert_eq!(
        env.access_token().await,
        first,
        "the old token is served while it is valid"
    );
    assert_eq!(env.business_call(&first).await, 0);
    for _ in 0..10 {
        env.advance(30).await;
    }
    let renewed = env.access_token().await;
    assert_ne!(
        renewed, first,
        "renewed once the burst ended, before expiry"
    );
    assert_eq!(env.sim.stats().invalid_token_calls(), 0);
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_transient() {
    let actions = [
        FaultAction::Delay { ms: 1500 },
        FaultAction::Drop,
        FaultAction::Http { status: 502 },
    ];
    // The warm-up meets the first, each retry of its own the next.
    let env = actions
        .iter()
        .fold(Setup::new(), |setup, action| {
            setup.fault(fault(action.clone(), 1))
        })
        .start()
        .await;
    let path = format!("/v1/apps/{APPID}/access_token");
    for action in actions {
        let (status, body) = env.client_get(&path).await;
        assert_eq!(status, 503, "{action:?}: {body}");
        assert_eq!(body["error"]["code"], "upstream_unavailable", "{action:?}");
        let retry_at = body["error"]["retry_at"].as_u64().unwrap();
        env.advance(retry_at - env.clock.now()).await;
    }
    assert_eq!(env.client_get(&path).await.0, 200);
}

#[tokio::test]
async fn a_whitelist_error_names_the_ip_to_add_and_is_not_retried_in_a_loop() {
    let env = Setup::new()
        .sim(|c| c.ip_whitelist = Some(vec!["10.0.0.0/8".parse().unwrap()]))
        .start()
        .await;
    let path = format!("/v1/apps/{APPID}/access_token");
    let (status, body) = env.client_get(&path).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_config_error");
    assert_eq!(body["error"]["errcode"], 40164);
    let hint = body["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("add 127.0.0.1 to the API IP whitelist"),
        "{hint}"
    );
    for _ in 0..10 {
        env.client_get(&path).await;
        env.advance(10).await;
    }
    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/token"),
        1,
        "no hammering on a config error"
    );
    // The operator fixes the whitelist; wxgate tries again after its pause.
    let url = format!("{}/sim/whitelist", env.sim.url());
    env.http
        .put(url)
        .json(&json!({"ip_list": null}))
        .send()
        .await
        .unwrap();
    env.advance(300).await;
    assert_eq!(env.client_get(&path).await.0, 200);
}

#[tokio::test]
async fn a_wrong_secret_is_a_config_error_with_a_hint() {
    let env = Setup::new()
        .sim(|c| c.apps[0].secret = "another-secret".into())
        .start()
        .await;
    let (status, body) = env
        .client_get(&format!("/v1/apps/{APPID}/access_token"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["errcode"], 40001);
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("AppSecret"),
        "{body}"
    );
}

#[tokio::test]
async fn an_exhausted_quota_stops_fetching_until_beijing_midnight() {
    let env = Setup::new().sim(|c| c.daily_quota = 1).start().await;
    let first = env.access_token().await;
    let path = format!("/v1/apps/{APPID}/access_token/refresh");
    let (status, body) = env
        .client_post(&path, json!({"invalid_token": first}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "quota_exhausted");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("00:00 Beijing"),
        "{body}"
    );
    let retry_at = body["error"]["retry_at"].as_u64().unwrap();
    assert_eq!(
        (retry_at + 8 * 3600) % 86_400,
        0,
        "retry at Beijing midnight"
    );
    // The still-valid token keeps being served meanwhile.
    assert_eq!(env.access_token().await, first);
}
