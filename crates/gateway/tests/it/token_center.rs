//! The token center's promises, proved against the simulator's counters.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use wxgate_gateway::clock::Clock;

use crate::{Env, Setup, APPID};

async fn cold_start_shares_one_fetch(setup: Setup) {
    let env = Arc::new(setup.start().await);
    let calls = (0..1000).map(|_| {
        let env = env.clone();
        tokio::spawn(async move { env.access_token().await })
    });
    let tokens: HashSet<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    assert_eq!(env.token_calls(), 1, "exactly one upstream token call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_cold_requests_make_one_classic_fetch() {
    cold_start_shares_one_fetch(Setup::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_cold_requests_make_one_stable_fetch() {
    cold_start_shares_one_fetch(Setup::new().stable()).await;
}

/// Business calls every minute of a virtual day, each with the token the
/// gateway serves at that moment: WeChat must never reject one.
async fn a_virtual_day(env: &Env) -> u64 {
    let mut rejected = Vec::new();
    for minute in 0..24 * 60 {
        let token = env.access_token().await;
        let errcode = env.business_call(&token).await;
        if errcode != 0 {
            rejected.push((minute, errcode));
        }
        env.advance(60).await;
    }
    assert_eq!(rejected, [], "business calls rejected (minute, errcode)");
    assert_eq!(env.sim.stats().invalid_token_calls(), 0);
    env.token_calls()
}

#[tokio::test]
async fn over_a_virtual_day_classic_tokens_are_renewed_ahead_and_never_rejected() {
    let env = Setup::new().start().await;
    let calls = a_virtual_day(&env).await;
    // One fetch at the start, then one every lifetime − refresh_ahead = 6600 s.
    assert_eq!(calls, 1 + 86_400 / 6_600, "upstream calls in 24 h");
}

#[tokio::test]
async fn over_a_virtual_day_stable_tokens_are_renewed_in_their_last_minutes() {
    let env = Setup::new().stable().start().await;
    let calls = a_virtual_day(&env).await;
    let issued = env.sim.stats().app(APPID).stable_tokens_issued;
    // WeChat hands out a new stable token only in the last 300 s: about one per 6900 s.
    assert_eq!(issued, 1 + 86_400 / 6_910, "stable tokens issued in 24 h");
    assert!(
        calls <= 2 * issued + 1,
        "{calls} calls for {issued} tokens: no hot loop"
    );
}

#[tokio::test]
async fn a_restart_within_validity_costs_no_upstream_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Setup::new()
        .sqlite(&dir.path().join("wxgate.db"))
        .start()
        .await;
    let before = env.access_token().await;
    let (_, ticket_before) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    env.advance(3000).await;
    env.start_gateway().await;
    assert_eq!(env.access_token().await, before);
    let (_, ticket_after) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    assert_eq!(ticket_after["jsapi_ticket"], ticket_before["jsapi_ticket"]);
    assert_eq!(ticket_after["expires_in"], 7200 - 3000);
    let stats = env.sim.stats().app(APPID);
    assert_eq!(
        (stats.tokens_issued, stats.tickets_issued),
        (1, 1),
        "no fetch after the restart"
    );
    // And the restarted gateway still renews on time.
    env.advance(3600).await;
    assert_ne!(env.access_token().await, before);
    assert_eq!(env.sim.stats().app(APPID).tokens_issued, 2);
}

#[tokio::test]
async fn compare_and_refresh_replaces_only_the_current_token_and_is_rate_limited() {
    let env = Setup::new().start().await;
    let a = env.access_token().await;
    let path = format!("/v1/apps/{APPID}/access_token/refresh");
    let (status, fresh) = env.client_post(&path, json!({"invalid_token": a})).await;
    assert_eq!(status, 200, "{fresh}");
    let b = fresh["access_token"].as_str().unwrap().to_owned();
    assert_ne!(a, b);
    // A second server reporting the same stale token gets the new one, no new fetch.
    let (_, again) = env.client_post(&path, json!({"invalid_token": a})).await;
    assert_eq!(again["access_token"], b.as_str());
    assert_eq!(env.token_calls(), 2);
    // Reporting the new one at once is rate-limited, to protect the daily quota.
    let (status, limited) = env.client_post(&path, json!({"invalid_token": b})).await;
    assert_eq!(status, 429, "{limited}");
    assert_eq!(limited["error"]["code"], "refresh_rate_limited");
    env.advance(30).await;
    let (status, _) = env.client_post(&path, json!({"invalid_token": b})).await;
    assert_eq!(status, 200);
    assert_eq!(env.token_calls(), 3);
    let (status, bad) = env.client_post(&path, json!({"token": "x"})).await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test]
async fn tickets_follow_the_access_token_rules() {
    let env = Setup::new().start().await;
    let (status, jsapi) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    assert_eq!(status, 200, "{jsapi}");
    let (_, card) = env
        .client_get(&format!("/v1/apps/{APPID}/wx_card_ticket"))
        .await;
    assert_ne!(jsapi["jsapi_ticket"], card["wx_card_ticket"]);
    assert_eq!(env.sim.stats().app(APPID).tickets_issued, 2);
    assert_eq!(
        env.token_calls(),
        1,
        "both tickets were fetched with the one shared token"
    );
    // Tickets renew ahead of expiry like tokens.
    env.advance(6600).await;
    let (_, renewed) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    assert_ne!(renewed["jsapi_ticket"], jsapi["jsapi_ticket"]);
    assert_eq!(env.sim.stats().invalid_token_calls(), 0);
}

/// Regression (review): with `expires_in` shorter than `refresh_ahead`, renewals
/// fell due at once, every time, and burned the daily quota in a loop.
#[tokio::test]
async fn a_lifetime_shorter_than_refresh_ahead_renews_at_half_life_not_in_a_loop() {
    let env = Setup::new().sim(|c| c.expires_in = 300).start().await;
    let first = env.access_token().await;
    for _ in 0..60 {
        env.advance(60).await;
        assert_eq!(env.business_call(&env.access_token().await).await, 0);
    }
    assert_ne!(env.access_token().await, first);
    // One hour at one renewal per 150 s (half of 300 s): 1 + 24 calls, not thousands.
    assert!(
        env.token_calls() <= 1 + 3600 / 150,
        "{} calls",
        env.token_calls()
    );
}

/// Forced refreshes until the day's budget is spent: how many succeeded, and the refusal.
async fn force_until_refused(env: &Env) -> (u32, serde_json::Value) {
    let path = format!("/v1/apps/{APPID}/access_token/refresh");
    let mut token = env.access_token().await;
    for forced in 0..1000 {
        let (status, body) = env
            .client_post(&path, json!({ "invalid_token": token }))
            .await;
        if status != 200 {
            assert_eq!(status, 429, "{body}");
            return (forced, body);
        }
        token = body["access_token"].as_str().unwrap().to_owned();
        env.advance(31).await;
    }
    panic!("forced refreshes were never refused");
}

/// Issue #16 (17): forced refreshes have a daily budget per credential (100;
/// a stable token WeChat's own 20), so reports of "invalid" tokens every 30 s
/// cannot spend the classic token's 2,000-a-day quota. It resets at midnight, Beijing time.
#[tokio::test]
async fn forced_refreshes_have_a_daily_budget() {
    let env = Setup::new().start().await;
    let (forced, refused) = force_until_refused(&env).await;
    assert_eq!(forced, 100);
    assert_eq!(env.token_calls(), 101);
    assert_eq!(refused["error"]["code"], "refresh_rate_limited");
    // 2024-01-02 00:00 Beijing time.
    assert_eq!(refused["error"]["retry_at"], 1_704_124_800);
    assert!(
        refused["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("the day's 100 forced refreshes"),
        "{refused}"
    );
    let stable = Setup::new().stable().start().await;
    let (forced, refused) = force_until_refused(&stable).await;
    assert_eq!(forced, 20, "{refused}");
    // Past midnight the budget is back.
    let now = stable.clock.now();
    stable.advance(1_704_124_800 - now).await;
    let (forced, _) = force_until_refused(&stable).await;
    assert_eq!(forced, 20);
}

/// Issue #16 (1): WeChat answering `expires_in: 1` burned the day's quota
/// (2,000 calls in a second for one client request). A lifetime under a
/// minute is a failure, retried with backoff, and never drives the schedule.
#[tokio::test]
async fn an_implausibly_short_lifetime_is_a_failure_not_a_loop() {
    let env = Setup::new().sim(|c| c.expires_in = 1).start().await;
    let path = format!("/v1/apps/{APPID}/access_token");
    let (status, body) = env.client_get(&path).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("implausibly short expires_in (1 s"),
        "{body}"
    );
    // A client asking every second for a minute: a handful of calls, not thousands.
    for _ in 0..60 {
        env.advance(1).await;
        env.client_get(&path).await;
    }
    println!(
        "[hardening] expires_in 1, a client request every second for 60 s: {} token calls",
        env.token_calls()
    );
    assert!(env.token_calls() <= 8, "{} calls", env.token_calls());
}

/// Issue #16 (1): the shortest believed lifetime still renews no more than
/// once a minute (1,440 a day at worst, under the 2,000-a-day quota).
#[tokio::test]
async fn renewals_are_at_least_a_minute_apart() {
    let env = Setup::new().sim(|c| c.expires_in = 60).start().await;
    env.access_token().await;
    for _ in 0..60 * 6 {
        env.advance(10).await;
    }
    // One hour: the first fetch and one renewal a minute.
    assert!(env.token_calls() <= 61, "{} calls", env.token_calls());
}

fn busy(count: u32) -> wxgate_sim::Fault {
    wxgate_sim::Fault {
        path: Some("/cgi-bin/token".into()),
        action: wxgate_sim::FaultAction::Errcode {
            errcode: -1,
            errmsg: "system error".into(),
        },
        count: Some(count),
        rate: None,
    }
}

async fn readyz(env: &Env) -> u16 {
    env.http
        .get(format!("{}/readyz", env.url))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Issue #17: WeChat busy three times at a cold start and no client asking:
/// the center retries by itself (1 s, 2 s, 4 s) and holds a valid token
/// within 10 s, after 4 calls; readiness follows.
#[tokio::test]
async fn a_cold_start_heals_itself_without_a_client_request() {
    let env = Setup::new().fault(busy(3)).start().await;
    assert_eq!(readyz(&env).await, 503, "no token yet");
    let mut waited = 0;
    while env.center().status()[0].expires_at.is_none() {
        assert!(waited < 10, "no token after {waited} s");
        env.advance(1).await;
        waited += 1;
    }
    let calls = env.sim.stats().endpoint_calls("/cgi-bin/token");
    println!("[warm-up] busy x3 at a cold start: a token after {waited} virtual s, {calls} calls");
    assert_eq!(calls, 4);
    assert_eq!(readyz(&env).await, 200);
    let token = env.access_token().await;
    assert_eq!(env.business_call(&token).await, 0);
    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/token"),
        4,
        "the client was served the warm token"
    );
}

/// Issue #17: every app's access token is fetched at start, before any
/// client asks; a restart on SQLite loads them all and calls WeChat 0 times.
#[tokio::test]
async fn every_app_is_warm_at_start_and_a_restart_on_sqlite_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let others = ["wx0000000000000002", "wx0000000000000003"];
    let mut setup = Setup::new().sqlite(&dir.path().join("warm.db"));
    for appid in others {
        setup = setup
            .extra(&format!(
                "[[apps]]\nappid = \"{appid}\"\nsecret = \"s-{appid}\"\ntoken_api = \"classic\""
            ))
            .sim(|c| {
                c.apps
                    .push(wxgate_sim::SimApp::new(appid, format!("s-{appid}")))
            });
    }
    let mut env = setup.start().await;
    let stats = env.sim.stats();
    for appid in std::iter::once(APPID).chain(others) {
        assert_eq!(
            stats.app(appid).calls("/cgi-bin/token"),
            1,
            "{appid} fetched at start"
        );
    }
    assert_eq!(readyz(&env).await, 200);
    let before: u64 = env.sim.stats().endpoint_calls.values().sum();
    env.start_gateway().await;
    let after: u64 = env.sim.stats().endpoint_calls.values().sum();
    assert_eq!(after, before, "a restart on SQLite calls WeChat 0 times");
    assert!(env
        .center()
        .status()
        .iter()
        .filter(|s| s.kind == wxgate_gateway::store::Kind::AccessToken)
        .all(|s| s.expires_at.is_some()));
    assert_eq!(readyz(&env).await, 200);
}

/// The access token the gateway holds now (read from its center, not through
/// the client API, so no client request is made).
fn held_token(env: &Env) -> String {
    env.center()
        .status()
        .into_iter()
        .find(|s| s.appid == APPID && s.kind == wxgate_gateway::store::Kind::AccessToken)
        .and_then(|s| s.value)
        .expect("an access token is held")
}

/// The token held once it differs from `old`: the probe's calls take real
/// time, so this waits (up to 5 s, the virtual clock standing still).
async fn replaced(env: &Env, old: &str) -> String {
    wxgate_testkit::wait_for(
        std::time::Duration::from_secs(5),
        "not replaced without a client request",
        async || Some(held_token(env)).filter(|held| held != old),
    )
    .await
}

/// Advances the clocks by `secs` one second at a time, each second's probe
/// round (when one falls due) over before the next.
async fn pass(env: &Env, secs: u64) {
    for _ in 0..secs {
        env.step(1).await;
    }
}

/// Issue #17: a classic token fetched by another program supersedes
/// wxgate's; once WeChat's 300 s grace is over the probe sees the rejection
/// and replaces it within the probe interval + 5 s, with no client request.
#[tokio::test]
async fn the_probe_replaces_a_classic_token_another_program_superseded() {
    let env = Setup::new().probe(60).start().await;
    let ours = held_token(&env);
    env.fetch_outside().await;
    pass(&env, 290).await;
    assert_eq!(held_token(&env), ours, "still valid during the grace");
    pass(&env, 10 + 60 + 5).await;
    let replaced = replaced(&env, &ours).await;
    assert_eq!(env.business_call(&replaced).await, 0);
    let name = format!("wxgate_probe_rejections_total{{appid=\"{APPID}\"}}");
    assert_eq!(
        wxgate_testkit::metric(&env.http, &env.url, &name).await,
        1.0
    );
}

/// Issue #17: the same for a stable token another program force-refreshed.
#[tokio::test]
async fn the_probe_replaces_a_stable_token_another_program_force_refreshed() {
    let env = Setup::new().stable().probe(60).start().await;
    let ours = held_token(&env);
    let forced: serde_json::Value = env
        .http
        .post(format!("{}/cgi-bin/stable_token", env.sim.url()))
        .json(&json!({"grant_type": "client_credential", "appid": APPID, "secret": crate::SECRET, "force_refresh": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(forced["access_token"].is_string(), "{forced}");
    pass(&env, 30 + 60 + 5).await;
    let replaced = replaced(&env, &ours).await;
    assert_eq!(env.business_call(&replaced).await, 0);
}

/// Issue #17: over a virtual day with WeChat busy now and then and another
/// program invalidating the token once, every upstream token call has
/// exactly one audit entry, with its cause; `GET /v1/audit` needs the admin key.
#[tokio::test]
async fn every_upstream_token_call_has_one_audit_entry_with_its_cause() {
    const ADMIN_KEY: &str = "audit-admin-key-0123456789";
    let env = Setup::new()
        .probe(60)
        .fault(busy(2))
        .admin(ADMIN_KEY)
        .start()
        .await;
    for hour in 0..24 {
        if hour == 5 {
            env.sim.add_fault(busy(3));
        }
        // 3,150 s before wxgate's next renewal, so only the probe can notice.
        if hour == 12 {
            env.fetch_outside().await;
        }
        pass_quickly(&env, 3600).await;
    }
    let audit = env
        .admin_get(&format!("/v1/audit?appid={APPID}&limit=1000"), ADMIN_KEY)
        .await
        .1;
    let entries = audit["entries"].as_array().unwrap();
    let fetches: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["event"] == "fetch" && e["kind"] == "access_token")
        .collect();
    // Every call to the token endpoint but the other program's own.
    let calls = env.sim.stats().endpoint_calls("/cgi-bin/token") - 1;
    assert_eq!(
        fetches.len() as u64,
        calls,
        "one entry per upstream token call"
    );
    let causes = |cause: &str| fetches.iter().filter(|e| e["cause"] == cause).count();
    println!(
        "[audit] a virtual day: {calls} token calls; warm_up {}, retry {}, schedule {}, probe {}",
        causes("warm_up"),
        causes("retry"),
        causes("schedule"),
        causes("probe")
    );
    // The oldest: the warm-up met two busy answers, then retried.
    let oldest = fetches.last().unwrap();
    assert_eq!(oldest["cause"], "warm_up");
    assert_eq!(oldest["result"], "transient");
    assert_eq!(oldest["errcode"], -1);
    assert_eq!(causes("warm_up"), 1);
    assert_eq!(causes("retry"), 2 + 3, "each busy answer retried by itself");
    assert!(causes("schedule") >= 12, "renewals every 6,600 s");
    assert_eq!(causes("probe"), 1, "the token another program superseded");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["event"] == "probe_rejection")
            .count(),
        1
    );
    let refused = env
        .http
        .get(format!("{}/v1/audit", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // The day on /admin's timeline: a mark per fetch, failure and probe rejection.
    let svg = env
        .http
        .get(format!("{}/admin/apps/{APPID}/timeline.svg", env.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marks = |class: &str| svg.matches(&format!(r#"class="mark {class}""#)).count();
    // Both rows (access token and jsapi ticket): one mark per audit entry.
    let count = |event: &str, ok: bool| {
        entries
            .iter()
            .filter(|e| e["event"] == event && (e["result"] == "ok") == ok)
            .count()
    };
    assert_eq!(marks("failed"), count("fetch", false), "{svg}");
    assert_eq!(marks("fetched"), count("fetch", true), "{svg}");
    assert_eq!(marks("probe-rejection"), 1, "{svg}");
    assert_eq!(
        marks("failed"),
        5 + 2,
        "the token's 5, the ticket's 2 at the warm-up"
    );
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline-day.svg");
    std::fs::write(&path, &svg).unwrap();
    println!("[audit] the day's timeline: {}", path.display());
}

/// Issue #17: the audit log names who caused each fetch: a client by its
/// `[[clients]] name`, its compare-and-refresh, an SDK on the compatible
/// endpoints, and the proxy's 40001 (with the client behind it).
#[tokio::test]
async fn the_audit_log_names_the_client_an_sdk_and_the_proxys_40001() {
    const ADMIN_KEY: &str = "audit-admin-key-0123456789";
    let env = Setup::new().admin(ADMIN_KEY).start().await;
    // The card ticket is fetched on demand: by the client "shop".
    let (status, body) = env
        .client_get(&format!("/v1/apps/{APPID}/wx_card_ticket"))
        .await;
    assert_eq!(status, 200, "{body}");
    // The client reports the token rejected.
    let token = env.access_token().await;
    let (status, body) = env
        .client_post(
            &format!("/v1/apps/{APPID}/access_token/refresh"),
            json!({ "invalid_token": token }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Another program supersedes the token; past the grace, the proxy meets 40001.
    env.fetch_outside().await;
    env.advance(301).await;
    let proxied = env
        .http
        .get(format!("{}/proxy/{APPID}/cgi-bin/getcallbackip", env.url))
        .bearer_auth(crate::CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    // An SDK forces a stable token refresh through the compatible endpoint.
    env.advance(301).await;
    let forced: serde_json::Value = env
        .http
        .post(format!("{}/cgi-bin/stable_token", env.url))
        .json(&json!({
            "grant_type": "client_credential",
            "appid": APPID,
            "secret": crate::SECRET,
            "force_refresh": true,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(forced["access_token"].is_string(), "{forced}");
    let audit = env
        .admin_get(&format!("/v1/audit?appid={APPID}"), ADMIN_KEY)
        .await
        .1;
    let fetches: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|e| e["event"] == "fetch")
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap().to_owned();
            (field("kind"), field("cause"))
        })
        .collect();
    let expected = [
        ("access_token", "warm_up"),
        ("jsapi_ticket", "warm_up"),
        ("wx_card_ticket", "request:client:shop"),
        ("access_token", "compare_and_refresh:client:shop"),
        ("access_token", "proxy_40001:client:shop"),
        ("access_token", "compare_and_refresh:sdk"),
    ]
    .map(|(k, c)| (k.to_owned(), c.to_owned()));
    assert_eq!(fetches, expected, "{audit}");
}

/// Advances the clocks by `secs` in steps of 30 s, each step's probe round
/// (when one falls due) over before the next.
async fn pass_quickly(env: &Env, secs: u64) {
    for _ in 0..secs / 30 {
        env.step(30).await;
    }
}

const REVOKE_ADMIN_KEY: &str = "revoke-admin-key-0123456789";

async fn revoke(env: &Env) -> (u16, serde_json::Value) {
    let response = env
        .http
        .post(format!("{}/v1/apps/{APPID}/access_token/revoke", env.url))
        .bearer_auth(REVOKE_ADMIN_KEY)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Issue #17: revoking a leaked stable token takes two forced refreshes 30 s
/// apart; right after the second, WeChat answers the leaked token 40001
/// while the new one works. A client key may not revoke.
#[tokio::test]
async fn a_revoked_stable_token_answers_40001_right_after() {
    let env = Setup::new().stable().admin(REVOKE_ADMIN_KEY).start().await;
    let leaked = env.access_token().await;
    let by_client = env
        .http
        .post(format!("{}/v1/apps/{APPID}/access_token/revoke", env.url))
        .bearer_auth(crate::CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(by_client.status(), 401);
    let (status, body) = revoke(&env).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["token_api"], "stable");
    let second_at = body["revoked_at"].as_u64().unwrap();
    assert_eq!(second_at, env.clock.now() + 30, "{body}");
    let replacement = env.access_token().await;
    assert_ne!(replacement, leaked);
    env.advance(30).await;
    // The second forced refresh runs in the background: wait for it in real time.
    wxgate_testkit::wait_until(
        std::time::Duration::from_secs(5),
        "no second refresh",
        async || env.access_token().await != replacement,
    )
    .await;
    assert_eq!(
        env.business_call(&leaked).await,
        40001,
        "the leaked token is dead"
    );
    let current = env.access_token().await;
    assert_eq!(env.business_call(&current).await, 0);
    let audit = env
        .admin_get(&format!("/v1/audit?appid={APPID}"), REVOKE_ADMIN_KEY)
        .await
        .1;
    let admin_fetches = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "fetch" && e["cause"] == "admin")
        .count();
    assert_eq!(admin_fetches, 2, "{audit}");
}

/// Issue #17: a revocation that would pass the day's 20 forced stable
/// refreshes is refused with a clear error, before any of it is done.
#[tokio::test]
async fn a_revocation_that_would_pass_the_days_forced_refreshes_is_refused() {
    let env = Setup::new().stable().admin(REVOKE_ADMIN_KEY).start().await;
    let path = format!("/v1/apps/{APPID}/access_token/refresh");
    for _ in 0..19 {
        let token = env.access_token().await;
        let (status, body) = env
            .client_post(&path, json!({ "invalid_token": token }))
            .await;
        assert_eq!(status, 200, "{body}");
        env.advance(31).await;
    }
    let before = env.token_calls();
    let (status, body) = revoke(&env).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "refresh_rate_limited");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("the day's 20 forced refreshes"),
        "{body}"
    );
    assert_eq!(env.token_calls(), before, "nothing was done");
}

/// Issue #17: a classic token is revoked by one new fetch; WeChat's 5-minute
/// grace for the old one cannot be shortened, and the answer says so.
#[tokio::test]
async fn a_classic_revocation_replaces_the_token_and_says_the_grace_remains() {
    let env = Setup::new().admin(REVOKE_ADMIN_KEY).start().await;
    let leaked = env.access_token().await;
    let (status, body) = revoke(&env).await;
    assert_eq!(status, 202, "{body}");
    assert!(
        body["note"].as_str().unwrap().contains("5-minute grace"),
        "{body}"
    );
    assert_eq!(env.token_calls(), 2);
    assert_ne!(env.access_token().await, leaked);
    env.advance(301).await;
    assert_eq!(env.business_call(&leaked).await, 40001);
}
