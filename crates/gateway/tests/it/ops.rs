//! Operations: metrics checked against the simulator's own counts, readiness
//! with hints, request ids.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use wxgate_sim::{Fault, FaultAction};

use crate::pushes::{app_toml, push_xml, sample_xml};
use crate::{Env, Setup, APPID, T0};

/// `name{labels} value` lines of a metric, as (labels, value).
fn series(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .map(|l| {
            let (head, value) = l.rsplit_once(' ').unwrap();
            (head.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// The sum of a metric over the series whose labels contain every `filter`.
fn sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    series(text, name)
        .into_iter()
        .filter(|(labels, _)| filters.iter().all(|f| labels.contains(f)))
        .map(|(_, v)| v)
        .sum()
}

async fn scrape(env: &Env) -> String {
    let response = env
        .http
        .get(format!("{}/metrics", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics"));
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_scripted_run_match_what_the_simulator_recorded() {
    let env = Setup::new()
        .app(&app_toml("plain"))
        .app("[[apps.rules]]\nkeyword = \"help\"\nreply = { text = \"menu\" }")
        .start()
        .await;
    // Tokens: a cold fetch, then a compare-and-refresh.
    let token = env.access_token().await;
    for _ in 0..5 {
        env.access_token().await;
    }
    let (status, _) = env
        .client_post(
            &format!("/v1/apps/{APPID}/access_token/refresh"),
            json!({ "invalid_token": token }),
        )
        .await;
    assert_eq!(status, 200);
    // A ticket, for a JS-SDK signature.
    let (status, _) = env
        .client_post(
            &format!("/v1/apps/{APPID}/jssdk/signature"),
            json!({ "url": "https://example.com/page" }),
        )
        .await;
    assert_eq!(status, 200);
    // Proxied calls, two of them answered -1 by WeChat.
    env.sim.add_fault(Fault {
        path: Some("/cgi-bin/get_api_domain_ip".into()),
        action: FaultAction::Errcode {
            errcode: -1,
            errmsg: "system error".into(),
        },
        count: Some(2),
        rate: None,
    });
    for _ in 0..3 {
        let response = env
            .http
            .get(format!(
                "{}/proxy/{APPID}/cgi-bin/get_api_domain_ip",
                env.url
            ))
            .bearer_auth(crate::CLIENT_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Pushes: two answered by the rule (one of them delivered twice), one with nothing to say.
    let help = sample_xml("text", "<Content>help</Content><MsgId>1</MsgId>", T0);
    push_xml(&env, "plain", &help).await;
    push_xml(&env, "plain", &help).await;
    let help2 = sample_xml("text", "<Content>help</Content><MsgId>2</MsgId>", T0);
    push_xml(&env, "plain", &help2).await;
    let other = sample_xml("text", "<Content>hi</Content><MsgId>3</MsgId>", T0);
    push_xml(&env, "plain", &other).await;

    let text = scrape(&env).await;
    let stats = env.sim.stats();
    // Every call wxgate made, by endpoint, is a call the simulator received.
    let mut seen = BTreeMap::new();
    for (labels, value) in series(&text, "wxgate_upstream_calls_total") {
        let endpoint = labels
            .split("endpoint=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        *seen.entry(endpoint).or_insert(0.0) += value;
    }
    let expected: BTreeMap<String, f64> = stats
        .endpoint_calls
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64))
        .collect();
    assert_eq!(seen, expected, "{text}");
    assert_eq!(seen["/cgi-bin/token"], 2.0);
    assert_eq!(
        sum(
            &text,
            "wxgate_upstream_calls_total",
            &["get_api_domain_ip", "errcode=\"-1\""]
        ),
        2.0
    );
    // Fetches by result match what the simulator issued.
    let issued = stats.app(APPID);
    assert_eq!(
        sum(
            &text,
            "wxgate_refreshes_total",
            &["result=\"ok\"", "kind=\"access_token\""]
        ),
        issued.tokens_issued as f64
    );
    assert_eq!(
        sum(
            &text,
            "wxgate_refreshes_total",
            &["result=\"ok\"", "kind=\"jsapi_ticket\""]
        ),
        issued.tickets_issued as f64
    );
    // Pushes by outcome.
    assert_eq!(
        sum(&text, "wxgate_pushes_total", &["outcome=\"rule\""]),
        2.0
    );
    assert_eq!(
        sum(&text, "wxgate_pushes_total", &["outcome=\"no_reply\""]),
        1.0
    );
    assert_eq!(
        sum(&text, "wxgate_pushes_total", &["outcome=\"duplicate\""]),
        1.0
    );
    assert_eq!(sum(&text, "wxgate_dedupe_hits_total", &[]), 1.0);
    // Gauges read at scrape time.
    assert_eq!(
        sum(
            &text,
            "wxgate_credential_expires_in_seconds",
            &["kind=\"access_token\""]
        ),
        7200.0
    );
    assert_eq!(sum(&text, "wxgate_ready", &[]), 1.0);
    assert_eq!(
        sum(&text, "wxgate_fetches_today", &["kind=\"access_token\""]),
        issued.tokens_issued as f64
    );
    assert_eq!(
        sum(&text, "wxgate_refresh_lease_held", &[]),
        0.0,
        "no fetch under way"
    );
    // Request durations by route pattern, never by raw path.
    assert!(
        sum(
            &text,
            "wxgate_http_request_duration_seconds_count",
            &["route=\"/wx/{appid}\""]
        ) >= 4.0
    );
    let current = env.access_token().await;
    assert!(
        !text.contains(&token) && !text.contains(&current),
        "no credential in the metrics"
    );
}

async fn readyz(env: &Env) -> (u16, Value) {
    let response = env
        .http
        .get(format!("{}/readyz", env.url))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn readiness_flips_with_a_whitelist_hint_and_back() {
    let env = Setup::new().start().await;
    env.access_token().await;
    assert_eq!(readyz(&env).await.0, 200);

    // WeChat starts refusing this server's IP; the renewal falls due.
    let put = env
        .http
        .put(format!("{}/sim/whitelist", env.sim.url()))
        .json(&json!({ "ip_list": ["10.0.0.0/8"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    env.advance(6600).await;
    let (status, body) = readyz(&env).await;
    assert_eq!(status, 503, "{body}");
    let reason = &body["reasons"][0];
    assert_eq!(reason["appid"], APPID);
    assert_eq!(reason["errcode"], 40164);
    assert!(
        reason["hint"]
            .as_str()
            .unwrap()
            .contains("add 127.0.0.1 to the API IP whitelist"),
        "{body}"
    );

    // The operator fixes the whitelist; the paused renewal retries and succeeds.
    let put = env
        .http
        .put(format!("{}/sim/whitelist", env.sim.url()))
        .json(&json!({ "ip_list": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    env.advance(300).await;
    let (status, body) = readyz(&env).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_sane_one_is_kept() {
    let env = Setup::new().start().await;
    let fresh = env
        .http
        .get(format!("{}/healthz", env.url))
        .send()
        .await
        .unwrap();
    let id = fresh.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 16);
    let kept = env
        .http
        .get(format!("{}/healthz", env.url))
        .header("x-request-id", "lb-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "lb-abc-123");
    let replaced = env
        .http
        .get(format!("{}/healthz", env.url))
        .header("x-request-id", "bad id\twith junk")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id\twith junk");
}

/// Issue #16 (2): a store that refuses writes (a full disk) is visible on
/// `/readyz`, `/metrics` and `/admin`; the current token is kept (a renewal it
/// could not persist would be lost at a restart) until writes work again.
#[tokio::test]
async fn a_store_that_cannot_write_turns_readiness_red_and_keeps_the_current_token() {
    let switch = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = switch.clone();
    let env = Setup::new()
        .wrap_store(move |store| {
            let wrapped = wxgate_testkit::store::WriteSwitch::new(store);
            *slot.lock().unwrap() = Some(wrapped.clone());
            wrapped
        })
        .start()
        .await;
    let switch = switch.lock().unwrap().clone().unwrap();
    let token = env.access_token().await;
    assert_eq!(readyz(&env).await.0, 200);

    switch.refuse_writes(true);
    env.advance(6600).await;
    let (status, body) = readyz(&env).await;
    assert_eq!(status, 503, "{body}");
    let reason = &body["reasons"][0];
    assert_eq!(reason["problem"], "store cannot write", "{body}");
    assert!(
        reason["error"].as_str().unwrap().contains("disk is full"),
        "{body}"
    );
    assert_eq!(env.token_calls(), 1, "no fetch it could not persist");
    assert_eq!(
        env.access_token().await,
        token,
        "the current token is served"
    );
    let failures =
        wxgate_testkit::metric(&env.http, &env.url, "wxgate_store_write_failures_total").await;
    assert!(failures >= 1.0, "{failures}");

    switch.refuse_writes(false);
    env.advance(60).await;
    assert_eq!(env.token_calls(), 2, "renewed once writes work again");
    assert_ne!(env.access_token().await, token);
    let (status, body) = readyz(&env).await;
    assert_eq!(status, 200, "{body}");
}
