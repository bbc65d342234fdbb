//! Several instances on one Redis (a real `redis-server` on a free port): one
//! upstream fetch however the requests are spread, the same upstream calls
//! over a day as a single instance, shared dedupe, and Redis outages.

use std::sync::Arc;
use std::time::Duration;

use wxgate_gateway::clock::Clock;
use wxgate_gateway::store::{Credential, Kind, RedisStore, Store};
use wxgate_sim::{AppKind, WecomRepeat};
use wxgate_testkit::RedisServer;

use crate::pushes::{app_toml, push_to, reply_text, sample_xml, start_hook, HOOK_SECRET};
use crate::{Env, Setup, APPID, CLIENT_KEY, T0};

async fn cluster(redis: &RedisServer, instances: usize, setup: Setup) -> Env {
    let mut env = setup.redis(&redis.url()).start().await;
    for _ in 1..instances {
        env.add_instance().await;
    }
    env
}

async fn token_from(env: &Env, base: &str) -> String {
    token_at(env, base, &format!("/v1/apps/{APPID}/access_token")).await
}

/// The access token the instance at `base` serves on the client-API `path`.
async fn token_at(env: &Env, base: &str, path: &str) -> String {
    let url = format!("{base}{path}");
    let response = env
        .http
        .get(url)
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

/// What only the Redis store does beyond the store contract (leases, fences
/// and push claims are checked on every backend by the contract tests in
/// `store.rs`): it tells the other instances of a write, and a write made
/// without a lease never replaces a credential fetched later.
#[tokio::test]
async fn the_redis_store_announces_writes_and_keeps_the_latest_fetch() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url(), "contract:")
        .await
        .unwrap();
    let other = RedisStore::connect(&redis.url(), "contract:")
        .await
        .unwrap();
    let mut changes = other.changes().unwrap();

    let lease = store
        .acquire("wx1", Kind::AccessToken, Duration::from_secs(15))
        .await
        .unwrap()
        .expect("free lease");
    let credential = Credential {
        value: "t1".into(),
        expires_at: 7200,
        fetched_at: 10,
    };
    assert!(store
        .save_fenced("wx1", Kind::AccessToken, &credential, &lease)
        .await
        .unwrap());
    let notified = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(notified, ("wx1".to_owned(), Kind::AccessToken));
    assert_eq!(
        other.load("wx1", Kind::AccessToken).await.unwrap(),
        Some(credential.clone())
    );

    // A write without a lease (Redis was down when its fetch began) never
    // replaces a credential fetched later.
    let older = Credential {
        value: "older".into(),
        expires_at: 7000,
        fetched_at: 5,
    };
    store.save("wx1", Kind::AccessToken, &older).await.unwrap();
    assert_eq!(
        store
            .load("wx1", Kind::AccessToken)
            .await
            .unwrap()
            .unwrap()
            .value,
        "t1"
    );
    let newer = Credential {
        value: "newer".into(),
        expires_at: 9000,
        fetched_at: 20,
    };
    store.save("wx1", Kind::AccessToken, &newer).await.unwrap();
    assert_eq!(
        store.load("wx1", Kind::AccessToken).await.unwrap(),
        Some(newer)
    );
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_on_a_cold_start_make_one_upstream_call() {
    let redis = RedisServer::start();
    let env = Arc::new(cluster(&redis, 4, Setup::new()).await);
    let urls = env.urls();
    let calls = (0..1000).map(|i| {
        let (env, base) = (env.clone(), urls[i % urls.len()].clone());
        tokio::spawn(async move { token_from(&env, &base).await })
    });
    let tokens: std::collections::HashSet<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(tokens.len(), 1, "every instance serves the same token");
    assert_eq!(env.token_calls(), 1, "exactly one upstream call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_over_a_virtual_day_make_the_calls_of_one() {
    let redis = RedisServer::start();
    let env = cluster(&redis, 4, Setup::new()).await;
    let urls = env.urls();
    let mut rejected = Vec::new();
    for minute in 0..24 * 60 {
        let token = token_from(&env, &urls[minute % urls.len()]).await;
        let errcode = env.business_call(&token).await;
        if errcode != 0 {
            rejected.push((minute, errcode));
        }
        env.advance(60).await;
    }
    assert_eq!(rejected, [], "business calls rejected (minute, errcode)");
    assert_eq!(env.sim.stats().invalid_token_calls(), 0);
    assert_eq!(
        env.token_calls(),
        1 + 86_400 / 6_600,
        "the same as a single instance"
    );
}

/// A virtual 24 h on Redis with 2 instances and all three families (an
/// Official Account, a Mini Program, two WeCom apps of one corp): upstream
/// calls equal the ideal, 0 invalid-token uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_over_a_virtual_day_with_every_family_make_the_ideal_calls() {
    a_day_with_every_family(WecomRepeat::Remaining).await;
}

/// The same day when WeCom reports a repeated token with a full 7200 s (the
/// other reading of its undocumented behaviour, families §1.1): wxgate keeps
/// the expiry it was first told, so it never serves a token WeCom has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_day_when_wecom_repeats_a_token_with_a_full_lifetime() {
    a_day_with_every_family(WecomRepeat::Full).await;
}

async fn a_day_with_every_family(repeat: WecomRepeat) {
    const MINI: &str = "wx9876543210fedcba";
    const CORP: &str = "ww0123456789abcdef";
    const AGENTS: [(&str, &str); 2] = [
        ("1000002", "secret-of-1000002"),
        ("1000003", "secret-of-1000003"),
    ];
    let redis = RedisServer::start();
    let setup = Setup::new()
        .other_app(
            MINI,
            "fedcba9876543210fedcba9876543210",
            AppKind::Miniprogram,
        )
        .wecom(CORP, AGENTS[0].0, AGENTS[0].1)
        .wecom(CORP, AGENTS[1].0, AGENTS[1].1)
        .sim(|c| c.wecom_repeat = repeat);
    let env = cluster(&redis, 2, setup).await;
    let urls = env.urls();
    let mut rejected = Vec::new();
    for minute in 0..24 * 60 {
        let base = &urls[minute % urls.len()];
        for appid in [APPID, MINI] {
            let token = token_at(&env, base, &format!("/v1/apps/{appid}/access_token")).await;
            let errcode = env.business_call(&token).await;
            if errcode != 0 {
                rejected.push((minute, appid.to_owned(), errcode));
            }
        }
        for (agent, _) in AGENTS {
            let path = format!("/v1/wecom/{CORP}/{agent}/access_token");
            let token = token_at(&env, base, &path).await;
            let message = serde_json::json!({
                "touser": "@all", "agentid": agent, "msgtype": "text",
                "text": { "content": format!("minute {minute}") },
            });
            let answer: serde_json::Value = env
                .http
                .post(format!(
                    "{}/cgi-bin/message/send?access_token={token}",
                    env.sim.url()
                ))
                .json(&message)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let errcode = answer["errcode"].as_i64().unwrap_or(0);
            if errcode != 0 {
                rejected.push((minute, format!("{CORP}/{agent}"), errcode));
            }
        }
        env.advance(60).await;
    }
    assert_eq!(
        rejected,
        [],
        "business calls rejected (minute, credential, errcode)"
    );
    let stats = env.sim.stats();
    assert_eq!(stats.invalid_token_calls(), 0, "{stats:?}");

    // The ideal, per credential. Every token lives 7200 s (WeChat and WeCom
    // alike); renewals are refresh_ahead_secs = 600 s early, without jitter in tests.
    const DAY: u64 = 86_400;
    const LIFETIME: u64 = 7_200;
    const REFRESH_AHEAD: u64 = 600;
    // A classic token (Official Account, Mini Program): a new one on every
    // call, so one at the start and one every 6600 s, whatever the instance.
    let classic = 1 + DAY / (LIFETIME - REFRESH_AHEAD);
    // WeCom returns the live token (with what is left of its lifetime) until
    // it expires (families §1.1, the simulator's default): a new one at the
    // start and at each expiry; an earlier gettoken only repeats the live token.
    let wecom = 1 + DAY / LIFETIME;
    let mut calls = Vec::new();
    let mut ideal = Vec::new();
    for appid in [APPID, MINI] {
        let app = stats.app(appid);
        assert_eq!(app.invalid_token_calls, 0, "{appid}: {app:?}");
        calls.push((appid.to_owned(), app.calls("/cgi-bin/token")));
        ideal.push((appid.to_owned(), classic));
    }
    for (agent, _) in AGENTS {
        let key = format!("{CORP}/{agent}");
        let app = stats.wecom(&key);
        assert_eq!(app.invalid_token_calls, 0, "{key}: {app:?}");
        assert_eq!(app.custom_messages, 24 * 60, "{key}: {app:?}");
        calls.push((key.clone(), app.calls("/cgi-bin/gettoken")));
        ideal.push((key, wecom));
    }
    assert_eq!(calls, ideal, "upstream token fetches per credential");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_landing_on_another_instance_gets_the_same_answer() {
    let redis = RedisServer::start();
    let (hook_url, hook) = start_hook(Duration::from_millis(300)).await;
    let setup = Setup::new().app(&app_toml("safe")).app(&format!(
        "webhook = \"{hook_url}\"\nwebhook_secret = \"{HOOK_SECRET}\""
    ));
    let env = cluster(&redis, 2, setup).await;
    let xml = sample_xml(
        "text",
        "<Content><![CDATA[twice]]></Content><MsgId>31337</MsgId>",
        T0,
    );
    let urls = env.urls();
    let now = env.clock.now();
    // The retry lands on the other instance while the first delivery is at
    // the webhook (which takes 300 ms): sent once the webhook has it.
    let (a, b) = tokio::join!(push_to(&urls[0], now, "safe", &xml), async {
        wxgate_testkit::wait_until(
            Duration::from_secs(5),
            "the first delivery at the webhook",
            async || !hook.seen.lock().unwrap().is_empty(),
        )
        .await;
        push_to(&urls[1], now, "safe", &xml).await
    });
    assert_eq!(reply_text(&a), "hook:text");
    assert_eq!(reply_text(&b), "hook:text");
    assert_eq!(
        reply_text(&push_to(&urls[1], now, "safe", &xml).await),
        "hook:text"
    );
    assert_eq!(
        hook.seen.lock().unwrap().len(),
        1,
        "the webhook saw the push once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_redis_outage_valid_tokens_are_served_and_readiness_says_why() {
    let mut redis = RedisServer::start();
    let env = cluster(&redis, 1, Setup::new()).await;
    let before = env.access_token().await;
    let ready = env
        .http
        .get(format!("{}/readyz", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    redis.stop();
    assert_eq!(env.access_token().await, before, "served from memory");
    let ready = env
        .http
        .get(format!("{}/readyz", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["reasons"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("store unreachable"),
        "{body}"
    );
    // The renewal falls due while Redis is down: postponed, the valid token still served.
    env.advance(6600).await;
    assert_eq!(env.access_token().await, before);
    assert_eq!(
        env.token_calls(),
        1,
        "no lockless fetch while the current token is valid"
    );

    redis.restart();
    wxgate_testkit::wait_until(
        Duration::from_secs(15),
        "ready again after Redis came back",
        async || {
            let ready = env.http.get(format!("{}/readyz", env.url)).send();
            ready.await.unwrap().status() == 200
        },
    )
    .await;
    // The postponed renewal happens once Redis is back.
    for _ in 0..10 {
        env.advance(10).await;
    }
    assert_ne!(env.access_token().await, before);
    assert_eq!(env.token_calls(), 2);
    assert_eq!(env.sim.stats().invalid_token_calls(), 0);
}

/// Issue #24 item 10d: with Redis and two instances, a revocation on one ends
/// the revoked token on both: within 1 s the façade of each refuses it (the
/// other had adopted the replacement and kept the revoked token as its
/// previous one, honoured until its expiry), and takes the replacement.
#[tokio::test]
async fn a_revoked_token_is_refused_by_every_instances_facade_within_a_second() {
    const ADMIN_KEY: &str = "redis-admin-key-0123456789";
    let redis = RedisServer::start();
    let env = cluster(&redis, 2, Setup::new().admin(ADMIN_KEY)).await;
    let urls = env.urls();
    let leaked = token_from(&env, &urls[0]).await;
    assert_eq!(token_from(&env, &urls[1]).await, leaked);
    let facade = |base: &str, token: &str| {
        let url = format!("{base}/cgi-bin/getcallbackip?access_token={token}");
        let http = env.http.clone();
        async move {
            let answer: serde_json::Value =
                http.get(url).send().await.unwrap().json().await.unwrap();
            answer
        }
    };
    for base in &urls {
        let answer = facade(base, &leaked).await;
        assert!(answer["ip_list"].is_array(), "taken before: {answer}");
    }
    let revoked = env
        .http
        .post(format!("{}/v1/apps/{APPID}/access_token/revoke", urls[0]))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 202);
    let started = tokio::time::Instant::now();
    for base in &urls {
        // Within 1 s of the revocation, for both instances together.
        let left = Duration::from_secs(1).saturating_sub(started.elapsed());
        wxgate_testkit::wait_until(
            left,
            format!("{base} to refuse the revoked token"),
            async || facade(base, &leaked).await["errcode"] == 40001,
        )
        .await;
    }
    println!(
        "[redis] the revoked token was refused by both instances {} ms after the revocation",
        started.elapsed().as_millis()
    );
    let replacement = token_from(&env, &urls[0]).await;
    assert_ne!(replacement, leaked);
    for base in &urls {
        assert_eq!(token_from(&env, base).await, replacement);
        let answer = facade(base, &replacement).await;
        assert!(answer["ip_list"].is_array(), "{base}: {answer}");
    }
}
