//! Issue #26: an Open Platform platform kept by the center, against the
//! simulator's platform: the verify ticket pushed to `/component/{appid}`,
//! the component token fetched with it, accounts authorizing the platform
//! (by push and by the redirect's code), their tokens served as apps',
//! refresh tokens rotated and recovered, revocations, and restarts that
//! cost no call.

use serde_json::{json, Value};
use wxgate_sim::SimComponent;

use crate::{Env, Setup};

pub(crate) const COMPONENT: &str = "wxc0000000000000c1";
pub(crate) const COMPONENT_SECRET: &str = "component-secret-0123456789abcdef";
pub(crate) const TOKEN: &str = "platform-token";
pub(crate) const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub(crate) const OA: &str = "wxa0000000000000a1";
pub(crate) const MP: &str = "wxb0000000000000b1";
/// A client that may use every credential, the platform's and its authorizers'.
pub(crate) const OPS_KEY: &str = "platform-ops-client-key-0123456789";
/// A client scoped to the platform only (its authorizers follow).
const PLATFORM_KEY: &str = "platform-scoped-client-key-012345";

pub(crate) fn setup() -> Setup {
    let hash = |key: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key));
    Setup::new()
        .sim(|s| {
            s.components.push(SimComponent::new(
                COMPONENT,
                COMPONENT_SECRET,
                TOKEN,
                KEY,
                None,
            ))
        })
        .extra(&format!(
            "[[components]]\ncomponent_appid = \"{COMPONENT}\"\nsecret = \"{COMPONENT_SECRET}\"\n\
             token = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\njs_domains = [\"example.com\"]\n\
             [[components.rules]]\nkeyword = \"ping\"\nreply = {{ text = \"pong from the platform\" }}\n\
             [[clients]]\nname = \"ops\"\nkey_sha256 = \"{}\"\napps = [\"*\"]\n\
             [[clients]]\nname = \"platform\"\nkey_sha256 = \"{}\"\napps = [\"{COMPONENT}\"]\n",
            hash(OPS_KEY),
            hash(PLATFORM_KEY)
        ))
}

pub(crate) async fn call(
    env: &Env,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = env
        .http
        .request(method, format!("{}{path}", env.url))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn get(env: &Env, path: &str) -> (u16, Value) {
    call(env, reqwest::Method::GET, path, OPS_KEY, None).await
}

/// Points the simulator's pushes at the gateway and delivers the first ticket.
pub(crate) async fn connect(env: &Env) {
    let url = format!("{}/component/{COMPONENT}", env.url);
    env.sim.set_component_push_url(COMPONENT, &url).unwrap();
    let pushed = env.sim.push_due_tickets().await;
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert!(pushed[0].acknowledged, "{pushed:?}");
    env.settle().await;
}

/// Plays an administrator authorizing the platform for `appid`.
pub(crate) async fn authorize(env: &Env, appid: &str, kind: &str) -> Value {
    let answer = env
        .http
        .post(format!("{}/sim/authorize", env.sim.url()))
        .json(&json!({ "component_appid": COMPONENT, "authorizer_appid": appid, "type": kind }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    answer.json().await.unwrap()
}

/// Moves both clocks on by `secs`, delivering the ticket pushes that fall
/// due (WeChat's every 10 minutes; the simulator's own loop runs on real
/// seconds, which a test does not wait for).
pub(crate) async fn step(env: &Env, secs: u64) {
    env.step(secs).await;
    env.sim.push_due_tickets().await;
    env.settle().await;
}

pub(crate) fn calls(env: &Env, path: &str) -> u64 {
    env.sim.stats().endpoint_calls(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_the_component_token_and_authorizers_are_kept_by_the_center() {
    let env = setup().start().await;
    // No ticket yet: the component token cannot be fetched, and /readyz says why.
    let (status, body) = get(
        &env,
        &format!("/v1/components/{COMPONENT}/component_access_token"),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    // Not a refusal: the ticket and the token that needs it are awaited,
    // counted as such, and never logged as an error.
    for kind in ["component_verify_ticket", "access_token"] {
        let awaiting = format!(
            "wxgate_refreshes_total{{appid=\"{COMPONENT}\",kind=\"{kind}\",result=\"awaiting_push\"}}"
        );
        let count = wxgate_testkit::metric(&env.http, &env.url, &awaiting).await;
        assert!(count >= 1.0, "{awaiting}: {count}");
    }
    let logs = crate::logs::text();
    let errors: Vec<_> = (logs.lines())
        .filter(|line| line.contains("ERROR") && line.contains("pushed yet"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    connect(&env).await;
    let (status, token) = get(
        &env,
        &format!("/v1/components/{COMPONENT}/component_access_token"),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(calls(&env, "/cgi-bin/component/api_component_token"), 1);
    // Served from memory.
    get(
        &env,
        &format!("/v1/components/{COMPONENT}/component_access_token"),
    )
    .await;
    assert_eq!(calls(&env, "/cgi-bin/component/api_component_token"), 1);

    // An Official Account authorizes: the authorized push brings the code,
    // the answer to its exchange the account's tokens.
    authorize(&env, OA, "official").await;
    env.settle().await;
    assert_eq!(calls(&env, "/cgi-bin/component/api_query_auth"), 1);
    let (status, oa) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    assert_eq!(status, 200, "{oa}");
    assert_eq!(
        calls(&env, "/cgi-bin/component/api_authorizer_token"),
        0,
        "the token came with the authorization"
    );
    // The platform-scoped client may use its authorizers; its ticket works too.
    let (status, ticket) = call(
        &env,
        reqwest::Method::GET,
        &format!("/v1/apps/{OA}/jsapi_ticket"),
        PLATFORM_KEY,
        None,
    )
    .await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(env.sim.stats().app(OA).invalid_token_calls, 0);
    // A Mini Program too, its family told by WeChat's account info.
    authorize(&env, MP, "miniprogram").await;
    env.settle().await;
    let (status, list) = get(&env, &format!("/v1/components/{COMPONENT}/authorizers")).await;
    assert_eq!(status, 200, "{list}");
    let families: Vec<(&str, &str)> = (list["authorizers"].as_array().unwrap().iter())
        .map(|a| (a["appid"].as_str().unwrap(), a["family"].as_str().unwrap()))
        .collect();
    assert_eq!(families, [(OA, "official"), (MP, "miniprogram")], "{list}");
    let (status, _) = get(&env, &format!("/v1/apps/{MP}/jsapi_ticket")).await;
    assert_eq!(status, 404, "a Mini Program has no JS-SDK ticket");

    // Sign-in through a platform is not served yet: said so, nothing sent
    // to WeChat with a secret the authorizer does not have.
    let (status, body) = get(
        &env,
        &format!("/v1/apps/{OA}/oauth/authorize_url?redirect_uri=https%3A%2F%2Fexample.com%2Fcb&scope=snsapi_base&state=s1"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "sign_in_not_supported", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("platform"),
        "{body}"
    );
    // A refresh token is never served.
    let (status, _) = get(&env, &format!("/v1/apps/{OA}/authorizer_refresh_token")).await;
    assert_eq!(status, 400);

    // The account revokes: a clear error, not "unknown".
    let answer = env
        .http
        .post(format!("{}/sim/unauthorize", env.sim.url()))
        .json(&json!({ "component_appid": COMPONENT, "authorizer_appid": OA }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let (status, body) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "authorization_revoked", "{body}");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("authorize"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_sqlite_reuses_the_ticket_the_component_token_and_every_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = setup().sqlite(&dir.path().join("wxgate.db")).start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    authorize(&env, MP, "miniprogram").await;
    env.settle().await;
    let before = env.sim.stats();
    let (_, oa) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;

    env.start_gateway().await;
    // Every authorizer is back, served from the store: no call at all.
    let (status, again) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["access_token"], oa["access_token"]);
    let (status, _) = get(&env, &format!("/v1/apps/{MP}/access_token")).await;
    assert_eq!(status, 200);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_kept_and_a_lost_one_recovered_without_a_new_authorization() {
    let env = setup().start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    env.settle().await;
    // WeChat hands out a new refresh token with every renewal from now on.
    let answer = env
        .http
        .put(format!(
            "{}/sim/component/{COMPONENT}/rotation",
            env.sim.url()
        ))
        .json(&json!({ "rotation": "every_call" }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    // Two days of renewals: each one's new refresh token is the next one's.
    for _ in 0..24 {
        step(&env, 7200).await;
    }
    let renewals = calls(&env, "/cgi-bin/component/api_authorizer_token");
    assert!(renewals >= 20, "{renewals}");
    assert_eq!(
        calls(&env, "/cgi-bin/component/api_get_authorizer_list"),
        0,
        "never lost"
    );
    let (status, _) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    assert_eq!(status, 200);
    assert_eq!(env.sim.stats().app(OA).invalid_token_calls, 0);
}

/// Issue #26: a crash between WeChat's answer carrying a new refresh token
/// and the store write loses the new one (here: the process stops and the
/// store is put back as it was before that write); the authorizer recovers
/// with no new authorization (its old token in its grace, else
/// `api_get_authorizer_list`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_lost_between_wechats_answer_and_the_store_is_recovered() {
    use wxgate_gateway::store::{Kind, SqliteStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wxgate.db");
    let mut env = setup().sqlite(&db).start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    env.settle().await;
    let stored = || {
        let store = SqliteStore::open(&db).unwrap();
        async move { store.load(OA, Kind::RefreshToken).await.unwrap().unwrap() }
    };
    let first = stored().await;
    let answer = env
        .http
        .put(format!(
            "{}/sim/component/{COMPONENT}/rotation",
            env.sim.url()
        ))
        .json(&json!({ "rotation": "every_call" }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    // The renewal's answer carries a new refresh token, which is stored…
    step(&env, 6700).await;
    assert!(calls(&env, "/cgi-bin/component/api_authorizer_token") >= 1);
    let second = stored().await;
    assert_ne!(second.value, first.value, "rotated");
    // …but the process dies before the write: the store holds the old one.
    env.stop_gateway();
    let store = SqliteStore::open(&db).unwrap();
    store.save(OA, Kind::RefreshToken, &first).await.unwrap();
    env.start_gateway().await;
    // The restarted gateway listens elsewhere: WeChat's pushes follow it.
    let url = format!("{}/component/{COMPONENT}", env.url);
    env.sim.set_component_push_url(COMPONENT, &url).unwrap();
    // The next renewal, long past the old refresh token's 5-minute grace.
    step(&env, 7200).await;
    let (status, body) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        calls(&env, "/cgi-bin/component/api_get_authorizer_list") >= 1,
        "recovered from the list"
    );
    assert_eq!(
        calls(&env, "/cgi-bin/component/api_query_auth"),
        1,
        "no new authorization"
    );
    // And kept: a day later it still renews without the list.
    let listed = calls(&env, "/cgi-bin/component/api_get_authorizer_list");
    for _ in 0..12 {
        step(&env, 7200).await;
    }
    assert_eq!(
        calls(&env, "/cgi-bin/component/api_get_authorizer_list"),
        listed
    );
    let (status, body) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    assert_eq!(status, 200, "{body}");
}

/// Issue #26: no ticket push for 20 minutes → `api_start_push_ticket`, and
/// `/readyz` says so; the next push clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_minutes_without_a_ticket_push_ask_wechat_for_one_and_readyz_says_so() {
    let env = setup().start().await;
    connect(&env).await;
    let asked = calls(&env, "/cgi-bin/component/api_start_push_ticket");
    // WeChat can no longer reach the gateway (its pushes go nowhere).
    env.sim
        .set_component_push_url(COMPONENT, "http://127.0.0.1:9/component")
        .unwrap();
    env.step(1260).await;
    assert!(calls(&env, "/cgi-bin/component/api_start_push_ticket") > asked);
    let ready = env
        .http
        .get(format!("{}/readyz", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("component_verify_ticket"), "{body}");
    assert!(reasons.contains("api_start_push_ticket"), "{body}");
    // The component token still lasts: served meanwhile.
    let (status, _) = get(
        &env,
        &format!("/v1/components/{COMPONENT}/component_access_token"),
    )
    .await;
    assert_eq!(status, 200);
    // Reachable again: the next push clears the reason.
    connect(&env).await;
    let ready = env
        .http
        .get(format!("{}/readyz", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
}

/// `/admin` shows each platform: when its last verify ticket came, its
/// component token, and its authorizers with their state and family; each
/// authorizer has its card and its 24 h timeline too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_platform_its_ticket_token_and_authorizers() {
    const ADMIN_KEY: &str = "platform-admin-key-0123456789";
    let env = setup().admin(ADMIN_KEY).start().await;
    connect(&env).await;
    get(
        &env,
        &format!("/v1/components/{COMPONENT}/component_access_token"),
    )
    .await;
    authorize(&env, OA, "official").await;
    authorize(&env, MP, "miniprogram").await;
    env.settle().await;
    let answer = env
        .http
        .post(format!("{}/sim/unauthorize", env.sim.url()))
        .json(&json!({ "component_appid": COMPONENT, "authorizer_appid": MP }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    env.settle().await;

    let (status, snapshot) = env.admin_get("/admin/status.json", ADMIN_KEY).await;
    assert_eq!(status, 200, "{snapshot}");
    let platform = &snapshot["platforms"][0];
    assert_eq!(platform["component_appid"], COMPONENT, "{snapshot}");
    assert_eq!(platform["ticket_fetched_at"], crate::T0, "{platform}");
    assert_eq!(
        platform["token"]["kind"], "component_access_token",
        "{platform}"
    );
    assert_eq!(platform["token"]["last_result"], "ok", "{platform}");
    let masked = platform["token"]["masked"].as_str().unwrap();
    assert!(masked.contains('…'), "{masked}");
    let authorizers = platform["authorizers"].as_array().unwrap();
    let state_of = |appid: &str| {
        let a = authorizers.iter().find(|a| a["appid"] == appid).unwrap();
        (a["state"].as_str().unwrap(), a["family"].as_str().unwrap())
    };
    assert_eq!(state_of(OA), ("authorized", "official"), "{platform}");
    assert_eq!(state_of(MP), ("revoked", "miniprogram"), "{platform}");
    // The served authorizer is an app card of its own.
    let cards: Vec<&str> = (snapshot["apps"].as_array().unwrap().iter())
        .map(|a| a["appid"].as_str().unwrap())
        .collect();
    assert!(
        cards.contains(&OA) && cards.contains(&COMPONENT),
        "{cards:?}"
    );

    // The page renders it, and the authorizer's timeline.
    let page = env
        .http
        .get(format!("{}/admin", env.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(r#"data-component="{COMPONENT}""#)),
        "{page}"
    );
    assert!(page.contains(&format!(r#"<tr data-authorizer="{OA}">"#)));
    assert!(page.contains(&format!("/admin/apps/{OA}/timeline.svg")));
    let svg = env
        .http
        .get(format!("{}/admin/apps/{OA}/timeline.svg", env.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), 200);
}

/// Issue #26: a store that lost everything (a flushed Redis; here a new
/// memory store at a restart) recovers the platform's authorizers and their
/// refresh tokens from `api_get_authorizer_list`: no new authorization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizers_lost_with_the_store_are_recovered_from_wechats_list() {
    let mut env = setup().start().await;
    connect(&env).await;
    authorize(&env, OA, "official").await;
    authorize(&env, MP, "miniprogram").await;
    env.settle().await;
    // A restart on an empty store: nothing known, not even the ticket.
    env.start_gateway().await;
    assert_eq!(
        get(&env, &format!("/v1/apps/{OA}/access_token")).await.0,
        404
    );
    connect(&env).await;
    step(&env, crate::platform_sync_secs()).await;
    let (status, body) = get(&env, &format!("/v1/apps/{OA}/access_token")).await;
    assert_eq!(status, 200, "{body}");
    let (status, list) = get(&env, &format!("/v1/components/{COMPONENT}/authorizers")).await;
    assert_eq!(status, 200);
    let families: Vec<(&str, &str)> = (list["authorizers"].as_array().unwrap().iter())
        .map(|a| (a["appid"].as_str().unwrap(), a["family"].as_str().unwrap()))
        .collect();
    assert_eq!(families, [(OA, "official"), (MP, "miniprogram")], "{list}");
    assert_eq!(
        calls(&env, "/cgi-bin/component/api_query_auth"),
        2,
        "no new authorization"
    );
    assert_eq!(calls(&env, "/cgi-bin/component/api_get_authorizer_list"), 1);
    // Recovered once: the next syncs read the store.
    step(&env, 3 * crate::platform_sync_secs()).await;
    assert_eq!(calls(&env, "/cgi-bin/component/api_get_authorizer_list"), 1);
}
