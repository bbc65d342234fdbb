//! Issue #24 item 6: a rejection is about the token only when it is. WeChat
//! answers 40001 for any bad credential in a call (a bogus
//! `component_access_token`, say), so a forced refresh is spent only once a
//! check confirms that WeChat refuses wxgate's token itself.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wxgate_gateway::clock::Clock;
use wxgate_sim::{Fault, FaultAction};

use crate::{Env, Setup, APPID, CLIENT_KEY, SECRET};

const ADMIN_KEY: &str = "rejections-admin-key-0123456789";
/// A business API that stays forwarded by `/proxy` and the façade.
const USER_INFO: &str = "/cgi-bin/user/info";
/// The probe's call.
const DOMAIN_IP: &str = "/cgi-bin/get_api_domain_ip";

/// WeChat answers the next `count` calls to `path` with 40001, whatever the token.
fn answer_40001(env: &Env, path: &str, count: u32) {
    env.sim.add_fault(Fault {
        path: Some(path.into()),
        action: FaultAction::Errcode {
            errcode: wxgate_proto::errcode::INVALID_CREDENTIAL,
            errmsg: "invalid credential, access_token is invalid or not latest".into(),
        },
        count: Some(count),
        rate: None,
    });
}

/// `count` calls at once (at most 64 in flight), each a GET of `url` with
/// `key` as bearer if given: every answer's (status, JSON).
async fn many(env: &Arc<Env>, count: usize, url: String, key: Option<&str>) -> Vec<(u16, Value)> {
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let calls = (0..count).map(|_| {
        let (env, url, limit) = (env.clone(), url.clone(), limit.clone());
        let key = key.map(str::to_owned);
        tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let mut request = env.http.get(url);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json().await.unwrap())
        })
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// The `event`/`cause` of the app's access-token audit entries, oldest first.
async fn audit_of_access_token(env: &Env) -> Vec<(String, String)> {
    let audit = env
        .admin_get(&format!("/v1/audit?appid={APPID}&limit=1000"), ADMIN_KEY)
        .await
        .1;
    audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .rev()
        .filter(|e| e["kind"] == "access_token")
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap_or_default().to_owned();
            (field("event"), field("cause"))
        })
        .collect()
}

/// Issue #24 item 6: 20 calls 31 s apart, then 200 and 2,000 at once
/// through `/proxy`, and 20 through the façade, each answered 40001 by WeChat
/// about another credential of the call (wxgate's stable token is fine):
/// WeChat's answer goes back as it is and not one forced refresh is spent.
/// The checks cost one probe call per call 31 s apart, one per batch at once.
/// The admin's revoke still has the day's budget.
#[tokio::test]
async fn a_strangers_40001s_about_another_credential_spend_no_forced_refresh() {
    let env = Arc::new(Setup::new().stable().admin(ADMIN_KEY).start().await);
    let token = env.access_token().await;
    assert_eq!(env.token_calls(), 1, "the warm-up");
    let query = "openid=oUser1&component_access_token=bogus";
    let proxy_url = format!("{}/proxy/{APPID}{USER_INFO}?{query}", env.url);
    // The attack: 20 calls, 31 s apart (WeChat's least between two
    // forced refreshes), each would have spent one of the day's 20.
    answer_40001(&env, USER_INFO, 20);
    for n in 1..=20 {
        let answer = many(&env, 1, proxy_url.clone(), Some(CLIENT_KEY)).await;
        assert_eq!(
            env.token_calls(),
            1,
            "no refresh after {n} calls 31 s apart"
        );
        assert_eq!(answer[0].1["errcode"], 40001, "WeChat's answer as it is");
        env.advance(31).await;
    }
    let mut probes = env.sim.stats().endpoint_calls(DOMAIN_IP);
    assert_eq!(probes, 20, "one check a call, 31 s apart");
    // Then at once: 200 and 2,000 calls.
    for batch in [200, 2000] {
        answer_40001(&env, USER_INFO, batch as u32);
        let answers = many(&env, batch, proxy_url.clone(), Some(CLIENT_KEY)).await;
        assert_eq!(env.token_calls(), 1, "no refresh for {batch} calls");
        for (status, body) in &answers {
            assert_eq!(
                (*status, body["errcode"].as_i64()),
                (200, Some(40001)),
                "{body}"
            );
        }
        probes += 1;
        assert_eq!(
            env.sim.stats().endpoint_calls(DOMAIN_IP),
            probes,
            "one check for {batch} calls at once"
        );
        // Past the check's reuse, so the next batch checks again.
        env.advance(10).await;
    }
    // The façade, with the token an SDK holds: the same.
    answer_40001(&env, USER_INFO, 20);
    let facade_url = format!("{}{USER_INFO}?access_token={token}&{query}", env.url);
    for (status, body) in many(&env, 20, facade_url, None).await {
        assert_eq!(
            (status, body["errcode"].as_i64()),
            (200, Some(40001)),
            "{body}"
        );
    }
    assert_eq!(env.token_calls(), 1, "no refresh through the façade");
    assert_eq!(env.access_token().await, token, "the token is the same");
    assert_eq!(env.business_call(&token).await, 0, "and still works");
    assert_eq!(
        env.sim.stats().app(APPID).stable_tokens_issued,
        1,
        "WeChat issued no other token"
    );
    let audit = audit_of_access_token(&env).await;
    assert_eq!(
        audit,
        [("fetch".to_owned(), "warm_up".to_owned())],
        "no forced refresh in the audit log"
    );
    let refreshes =
        format!("wxgate_refreshes_total{{appid=\"{APPID}\",kind=\"access_token\",result=\"ok\"}}");
    assert_eq!(
        wxgate_testkit::metric(&env.http, &env.url, &refreshes).await,
        1.0
    );
    let ready = env
        .http
        .get(format!("{}/readyz", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // The budget is whole: the admin's revoke takes its two forced refreshes.
    let revoked = env
        .http
        .post(format!("{}/v1/apps/{APPID}/access_token/revoke", env.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 202);
}

/// Issue #24 item 6: another program force-refreshes the stable token. A
/// business call through `/proxy` that meets the rejection is answered after
/// one check and one compare-and-refresh; a second invalidation, met by no
/// call, is replaced by the probe within its interval.
#[tokio::test]
async fn a_real_invalidation_is_still_replaced_at_once() {
    let env = Arc::new(
        Setup::new()
            .stable()
            .probe(60)
            .admin(ADMIN_KEY)
            .start()
            .await,
    );
    let first = env.access_token().await;
    force_refresh_outside(&env).await;
    // WeChat honours the replaced stable token 30 s more.
    env.advance(31).await;
    assert_eq!(env.business_call(&first).await, 40001, "invalidated");
    let url = format!("{}/proxy/{APPID}{USER_INFO}?openid=oUser1", env.url);
    let answers = many(&env, 50, url, Some(CLIENT_KEY)).await;
    for (status, body) in &answers {
        assert_eq!(
            (*status, body["openid"].as_str()),
            (200, Some("oUser1")),
            "{body}"
        );
    }
    let second = env.access_token().await;
    assert_ne!(second, first);
    // wxgate's warm-up, the other program's, and one compare-and-refresh.
    assert_eq!(env.token_calls(), 3);
    let fetches: Vec<_> = audit_of_access_token(&env)
        .await
        .into_iter()
        .filter(|(event, _)| event == "fetch")
        .collect();
    assert_eq!(
        fetches,
        [("fetch", "warm_up"), ("fetch", "proxy_40001:client:shop")]
            .map(|(e, c)| (e.to_owned(), c.to_owned())),
    );

    // Again, with no call to meet it: the probe replaces it.
    env.advance(30).await;
    force_refresh_outside(&env).await;
    // WeChat ends wxgate's token 30 s later.
    let dies_at = env.clock.now() + 30;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let replaced = loop {
        let current = env.access_token().await;
        if current != second {
            break current;
        }
        assert!(tokio::time::Instant::now() < deadline, "not replaced");
        env.advance(1).await;
    };
    let took = env.clock.now() - dies_at;
    println!("[rejections] a token invalidated outside was replaced {took} s after WeChat ended it (probe every 60 s)");
    assert!(took <= 60, "within one probe interval: {took} s");
    assert_eq!(env.business_call(&replaced).await, 0);
    assert_eq!(env.token_calls(), 5);
}

/// Another program force-refreshes the app's stable token at the simulator.
async fn force_refresh_outside(env: &Env) {
    let forced: Value = env
        .http
        .post(format!("{}/cgi-bin/stable_token", env.sim.url()))
        .json(&json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(forced["access_token"].is_string(), "{forced}");
}

/// Issue #24 item 6: WeChat rejects the token once the day's forced
/// refreshes are spent, so it cannot be replaced: `/readyz` and the status
/// page say so, with a hint, instead of taking it for a usable one.
#[tokio::test]
async fn a_rejected_token_that_cannot_be_replaced_is_not_ready() {
    // WeChat allows one forced refresh more than wxgate, for the other program.
    let env = Setup::new()
        .stable()
        .sim(|s| s.force_refresh_per_day = 21)
        .probe(60)
        .admin(ADMIN_KEY)
        .start()
        .await;
    // wxgate's 20 forced refreshes of the day spent by a client's compare-and-refresh.
    let path = format!("/v1/apps/{APPID}/access_token/refresh");
    for _ in 0..20 {
        let token = env.access_token().await;
        let (status, body) = env
            .client_post(&path, json!({ "invalid_token": token }))
            .await;
        assert_eq!(status, 200, "{body}");
        env.advance(31).await;
    }
    // Another program force-refreshes: wxgate's token dies 30 s later, and
    // wxgate may not force another today.
    let held = env.access_token().await;
    force_refresh_outside(&env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let reasons = loop {
        env.advance(5).await;
        let ready = env
            .http
            .get(format!("{}/readyz", env.url))
            .send()
            .await
            .unwrap();
        if ready.status() == 503 {
            break ready.json::<Value>().await.unwrap()["reasons"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "still ready");
    };
    assert_eq!(env.business_call(&held).await, 40001, "the token is dead");
    let reason = &reasons[0];
    assert_eq!(reason["appid"], APPID, "{reasons}");
    assert_eq!(
        reason["problem"], "rejected by WeChat and not yet replaced",
        "{reasons}"
    );
    assert!(
        reason["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{reasons}"
    );
    // Business servers are not handed the dead token as if it worked.
    let (status, body) = env
        .client_get(&format!("/v1/apps/{APPID}/access_token"))
        .await;
    println!("[rejections] client API while rejected: {status} {body}");
    assert_ne!(status, 200, "{body}");
    assert!(!body.to_string().contains(&held), "{body}");
    let status = env.admin_get("/admin/status.json", ADMIN_KEY).await.1;
    let text = status.to_string();
    assert!(text.contains("\"last_result\":\"rejected\""), "{status}");
}
