//! Redis goes away for 30 s under steady load on two instances: tokens keep
//! being served from memory, proxied calls keep working, readiness says why,
//! and the postponed renewal happens once Redis is back.

use std::time::Duration;

use wxgate_testkit::gateway::{Env, Setup, APPID, CLIENT_KEY};
use wxgate_testkit::RedisServer;

use crate::figure;

async fn status(env: &Env, url: &str, path: &str) -> u16 {
    env.http
        .get(format!("{url}{path}"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Client-API and proxied calls on every instance for `secs`: (calls, failures).
async fn load(env: &Env, secs: u64) -> (u64, u64) {
    let (mut calls, mut failures) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        for url in env.urls() {
            for path in [
                format!("/v1/apps/{APPID}/access_token"),
                format!("/proxy/{APPID}/cgi-bin/get_api_domain_ip"),
            ] {
                calls += 1;
                if status(env, &url, &path).await != 200 {
                    failures += 1;
                }
            }
        }
        // The load's pace (a round of calls every 100 ms for `secs`): not a wait.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (calls, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_redis_outage_under_load_fails_no_call() {
    let outage: u64 = std::env::var("WXGATE_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut redis = RedisServer::start();
    let mut env = Setup::new().redis(&redis.url()).start().await;
    env.add_instance().await;
    let before = env.access_token().await;
    let (warm_calls, warm_failures) = load(&env, 2).await;
    assert_eq!(warm_failures, 0);

    redis.stop();
    // The renewal falls due during the outage: postponed, not done without the lease.
    env.advance(6600).await;
    let (calls, failures) = load(&env, outage).await;
    let ready = status(&env, &env.url, "/readyz").await;
    assert_eq!(env.access_token().await, before, "served from memory");
    let calls_during = env.token_calls();

    redis.restart();
    let back = tokio::time::Instant::now();
    wxgate_testkit::wait_until(
        Duration::from_secs(15),
        "ready again after Redis came back",
        async || status(&env, &env.url, "/readyz").await == 200,
    )
    .await;
    let ready_after = back.elapsed();
    // The postponed renewal: the refreshers retry with backoff (1–2 s of
    // virtual time); each step's retry is over before the token is looked at.
    let mut renewed = false;
    for _ in 0..60 {
        env.step(2).await;
        if env.access_token().await != before {
            renewed = true;
            break;
        }
    }
    let (after_calls, after_failures) = load(&env, 2).await;
    figure(
        "outage",
        format!(
            "Redis down {outage} s under load on 2 instances: {calls} calls, {failures} failed; /readyz {ready} during, \
             200 again {:.1} s after Redis returned; token calls during the outage {}; renewed after: {renewed}",
            ready_after.as_secs_f64(),
            calls_during - 1
        ),
    );
    assert_eq!(failures, 0, "calls failed during the outage");
    assert_eq!(ready, 503);
    assert_eq!(
        calls_during, 1,
        "no lease-less fetch while the token was valid"
    );
    assert!(renewed, "the postponed renewal happened");
    assert_eq!(after_failures, 0);
    assert!(warm_calls > 0 && after_calls > 0);
    assert_eq!(env.sim.stats().app(APPID).invalid_token_calls, 0);
}
