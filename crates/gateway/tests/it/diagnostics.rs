//! Issue #17, diagnostics: a rid looked up, the token API's quota, and
//! clear_quota behind its monthly guard, through the admin API and the
//! status page's forms, against the simulator's `/cgi-bin/openapi/*`.

use serde_json::{json, Value};
use wxgate_gateway::clock::Clock;

use crate::{Env, Setup, APPID};

const ADMIN_KEY: &str = "diagnostics-admin-key-0123456789";
const OTHER: &str = "wxother0000000001";

async fn admin(env: &Env, method: reqwest::Method, path: &str) -> (u16, Value) {
    let response = env
        .http
        .request(method, format!("{}{path}", env.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A call to the simulator that WeChat refuses: its errmsg and rid.
async fn failed_call(env: &Env, token: &str) -> (Value, String) {
    let answer: Value = env
        .http
        .post(format!(
            "{}/cgi-bin/message/custom/send?access_token={token}",
            env.sim.url()
        ))
        .json(&json!({ "touser": "", "msgtype": "text", "text": { "content": "hi" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let errmsg = answer["errmsg"].as_str().unwrap();
    let rid = errmsg.rsplit_once("rid: ").unwrap().1.trim().to_owned();
    (answer, rid)
}

#[tokio::test]
async fn a_rid_is_looked_up_with_its_own_apps_token_only() {
    let env = Setup::new()
        .admin(ADMIN_KEY)
        .sim(|c| c.apps.push(wxgate_sim::SimApp::new(OTHER, "other-secret")))
        .start()
        .await;
    let token = env.access_token().await;
    let (answer, rid) = failed_call(&env, &token).await;
    assert_eq!(answer["errcode"], 40003, "{answer}");

    let (status, body) = admin(
        &env,
        reqwest::Method::GET,
        &format!("/v1/apps/{APPID}/rid/{rid}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let request = &body["request"];
    assert!(
        request["response_body"].as_str().unwrap().contains("40003"),
        "{body}"
    );
    assert!(
        request["request_url"]
            .as_str()
            .unwrap()
            .contains("access_token="),
        "{body}"
    );

    // Another app's error cannot be looked up with this app's token.
    let other: Value = env
        .http
        .get(format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={OTHER}&secret=other-secret",
            env.sim.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, other_rid) = failed_call(&env, other["access_token"].as_str().unwrap()).await;
    let (status, body) = admin(
        &env,
        reqwest::Method::GET,
        &format!("/v1/apps/{APPID}/rid/{other_rid}"),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["errcode"], 76003, "{body}");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("only the account"),
        "{body}"
    );

    // Not a rid at all: refused here, WeChat not asked.
    let calls = env.sim.stats().endpoint_calls("/cgi-bin/openapi/rid/get");
    for not_a_rid in ["not_a_rid", "notarid", "0a0b-xyz", "-0a0b", "0a0b--0c0d"] {
        let (status, body) = admin(
            &env,
            reqwest::Method::GET,
            &format!("/v1/apps/{APPID}/rid/{not_a_rid}"),
        )
        .await;
        assert_eq!(status, 400, "{not_a_rid}: {body}");
    }
    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/openapi/rid/get"),
        calls
    );

    // The admin key is required.
    let anonymous = env
        .http
        .get(format!("{}/v1/apps/{APPID}/rid/{rid}", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn the_quota_page_shows_the_token_apis_quota() {
    let env = Setup::new().admin(ADMIN_KEY).start().await;
    let (status, body) = admin(
        &env,
        reqwest::Method::GET,
        &format!("/v1/apps/{APPID}/quota"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cgi_path"], "/cgi-bin/token");
    let quota = &body["quota"];
    let used = env.sim.stats().app(APPID).calls("/cgi-bin/token");
    assert_eq!(quota["used"], used, "{body}");
    assert_eq!(
        quota["remain"].as_u64().unwrap() + used,
        quota["daily_limit"].as_u64().unwrap(),
        "{body}"
    );
    assert_eq!(body["clear_quota"]["used"], 0, "{body}");
    assert_eq!(body["clear_quota"]["limit"], 10, "{body}");
}

/// The daily quota used up: the center stops fetching; a reset through the
/// admin API lets it fetch again at once. The 11th reset in a month is
/// refused by wxgate, without asking WeChat.
#[tokio::test]
async fn clear_quota_unblocks_the_center_and_its_monthly_guard_holds() {
    let env = Setup::new()
        .admin(ADMIN_KEY)
        .sim(|c| c.daily_quota = 1)
        .start()
        .await;
    // The warm-up used the day's one call: the renewal meets 45009, and the
    // token expires with no successor.
    env.advance(7200).await;
    env.settle().await;
    let (status, body) = env
        .client_get(&format!("/v1/apps/{APPID}/access_token"))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "quota_exhausted", "{body}");

    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        &format!("/v1/apps/{APPID}/clear_quota"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clear_quota"]["used"], 1, "{body}");
    env.settle().await;
    let token = env.access_token().await;
    assert_eq!(env.business_call(&token).await, 0);

    for n in 2..=10 {
        let (status, body) = admin(
            &env,
            reqwest::Method::POST,
            &format!("/v1/apps/{APPID}/clear_quota"),
        )
        .await;
        assert_eq!(status, 200, "reset {n}: {body}");
    }
    let calls = env.sim.stats().endpoint_calls("/cgi-bin/clear_quota/v2");
    assert_eq!(calls, 10);
    let (status, body) = admin(
        &env,
        reqwest::Method::POST,
        &format!("/v1/apps/{APPID}/clear_quota"),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "clear_quota_limit", "{body}");
    assert!(body["error"]["retry_at"].as_u64().unwrap() > env.clock.now());
    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/clear_quota/v2"),
        calls,
        "the 11th is refused before WeChat is asked"
    );
    let audit = admin(
        &env,
        reqwest::Method::GET,
        &format!("/v1/audit?appid={APPID}&limit=1000"),
    )
    .await
    .1;
    let clears = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "clear_quota" && e["cause"] == "admin")
        .count();
    assert_eq!(clears, 10, "{audit}");
}

/// The status page's forms: revoke and clear_quota ask for a confirmation
/// first; the timeline is an SVG image of the audit log.
#[tokio::test]
async fn the_pages_forms_confirm_before_acting() {
    let env = Setup::new().admin(ADMIN_KEY).start().await;
    let form = |path: &str, fields: &[(&str, &str)]| {
        env.http
            .post(format!("{}{path}", env.url))
            .bearer_auth(ADMIN_KEY)
            .form(fields)
            .send()
    };
    let before = env.token_calls();
    let asked = form(&format!("/admin/apps/{APPID}/revoke"), &[])
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    let page = asked.text().await.unwrap();
    assert!(
        page.contains(&format!(r#"name="confirm" value="{APPID}""#)),
        "{page}"
    );
    assert_eq!(
        env.token_calls(),
        before,
        "nothing done before the confirmation"
    );
    let done = form(
        &format!("/admin/apps/{APPID}/revoke"),
        &[("confirm", APPID)],
    )
    .await
    .unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Revoked."));
    assert_eq!(env.token_calls(), before + 1);

    let asked = form(&format!("/admin/apps/{APPID}/clear_quota"), &[])
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    assert!(asked.text().await.unwrap().contains("0 used so far"));
    assert_eq!(env.sim.stats().endpoint_calls("/cgi-bin/clear_quota/v2"), 0);

    // Without the admin key: the login form, nothing done.
    let anonymous = env
        .http
        .post(format!("{}/admin/apps/{APPID}/revoke", env.url))
        .form(&[("confirm", APPID)])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(env.token_calls(), before + 1);

    let svg = env
        .http
        .get(format!("{}/admin/apps/{APPID}/timeline.svg", env.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), 200);
    assert_eq!(
        svg.headers()["content-type"],
        "image/svg+xml; charset=utf-8"
    );
    let drawn = svg.text().await.unwrap();
    // Warm-up and revoke: two values, two fetches, one revoke mark.
    assert_eq!(drawn.matches(r#"class="life""#).count(), 2 + 1, "{drawn}");
    assert_eq!(
        drawn.matches(r#"class="mark revoked""#).count(),
        1,
        "{drawn}"
    );
}
