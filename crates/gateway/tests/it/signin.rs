//! Issue #28: user sign-in through the center. Each code is exchanged with
//! WeChat once (the simulator counts the calls), whoever asks and however
//! often: a repeat, concurrent callers, a second instance on Redis, an SDK
//! on the façade; web authorization for Official Accounts, jscode2session
//! for Mini Programs; the secret in no answer and no log line.

use std::sync::Arc;

use serde_json::{json, Value};
use wxgate_sim::{AppKind, Fault, FaultAction};
use wxgate_testkit::RedisServer;

use crate::{Env, Setup, APPID, CLIENT_KEY, SECRET};

const MP: &str = "wx00000000000000a1";
const MP_SECRET: &str = "mpsecret0000000000000000000000ab";
const OAUTH: &str = "/sns/oauth2/access_token";
const JSCODE: &str = "/sns/jscode2session";

/// An Official Account whose sign-in redirects go to www.example.com.
fn official() -> Setup {
    Setup::new().app("oauth_domains = [\"www.example.com\"]")
}

/// A code as WeChat's authorization page (or `wx.login`, on `/sim/jscode`) hands it out.
async fn code_from(env: &Env, control: &str, body: Value) -> String {
    let answer: Value = (env.http.post(format!("{}{control}", env.sim.url())))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code: {answer}"))
        .to_owned()
}

async fn web_code(env: &Env, openid: &str) -> String {
    let body = json!({"appid": APPID, "openid": openid, "scope": "snsapi_userinfo"});
    code_from(env, "/sim/oauth/authorize", body).await
}

async fn exchange_at(env: &Env, base: &str, code: &str) -> (u16, Value) {
    let response = (env.http)
        .post(format!("{base}/v1/apps/{APPID}/oauth/exchange"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn exchange(env: &Env, code: &str) -> (u16, Value) {
    exchange_at(env, &env.url, code).await
}

/// A façade GET, as an SDK sends it: WeChat's shape.
async fn facade_get(env: &Env, path_and_query: &str) -> Value {
    (env.http.get(format!("{}{path_and_query}", env.url)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn calls(env: &Env, path: &str) -> u64 {
    env.sim.stats().endpoint_calls(path)
}

#[tokio::test]
async fn a_code_exchanged_twice_gets_the_same_answer_from_one_upstream_call() {
    let env = official().start().await;
    let code = web_code(&env, "oUser1").await;
    let (status, first) = exchange(&env, &code).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["openid"], "oUser1");
    assert_eq!(first["scope"], "snsapi_userinfo");
    assert!(first["refresh_token"].is_string(), "{first}");
    assert!(first.get("errcode").is_none(), "{first}");
    let (status, again) = exchange(&env, &code).await;
    assert_eq!((status, &again), (200, &first), "a double redirect");
    // An SDK on the façade with the same code gets the same, in WeChat's shape.
    let sdk = facade_get(
        &env,
        &format!("{OAUTH}?appid={APPID}&secret={SECRET}&code={code}&grant_type=authorization_code"),
    )
    .await;
    assert_eq!(sdk["access_token"], first["access_token"], "{sdk}");
    assert_eq!(calls(&env, OAUTH), 1, "one call to WeChat for one code");

    let metrics = (env
        .http
        .get(format!("{}/metrics", env.url))
        .send()
        .await
        .unwrap())
    .text()
    .await
    .unwrap();
    for (result, n) in [("exchanged", 1), ("cached", 2)] {
        let line = format!(
            "wxgate_signin_exchanges_total{{appid=\"{APPID}\",exchange=\"oauth\",result=\"{result}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn concurrent_exchanges_of_one_code_make_one_upstream_call() {
    let env = Arc::new(official().start().await);
    let code = web_code(&env, "oUser2").await;
    // WeChat takes its time, so every exchange is under way at once.
    env.sim.add_fault(Fault {
        path: Some(OAUTH.into()),
        action: FaultAction::Delay { ms: 300 },
        count: None,
        rate: None,
    });
    let exchanges = (0..8).map(|_| {
        let (env, code) = (env.clone(), code.clone());
        tokio::spawn(async move { exchange(&env, &code).await })
    });
    let answers: Vec<(u16, Value)> = futures_util::future::join_all(exchanges)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for answer in &answers {
        assert_eq!(answer, &answers[0]);
    }
    assert_eq!(answers[0].0, 200, "{:?}", answers[0]);
    assert_eq!(calls(&env, OAUTH), 1);
}

/// SQLite keeps the answer across a restart: the redirect that comes again
/// after a deploy gets it too.
#[tokio::test]
async fn a_restart_on_sqlite_keeps_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = official()
        .sqlite(&dir.path().join("wxgate.db"))
        .start()
        .await;
    let code = web_code(&env, "oUser13").await;
    let (status, first) = exchange(&env, &code).await;
    assert_eq!(status, 200, "{first}");
    env.start_gateway().await;
    assert_eq!(exchange(&env, &code).await, (200, first));
    assert_eq!(calls(&env, OAUTH), 1);
}

/// The first caller hangs up while WeChat is answering: the code is spent
/// at WeChat, so its answer must not be lost with the request.
#[tokio::test]
async fn a_caller_hanging_up_mid_exchange_loses_no_code() {
    let env = official().start().await;
    let code = web_code(&env, "oUser12").await;
    env.sim.add_fault(Fault {
        path: Some(OAUTH.into()),
        action: FaultAction::Delay { ms: 400 },
        count: Some(1),
        rate: None,
    });
    let gave_up = (env.http)
        .post(format!("{}/v1/apps/{APPID}/oauth/exchange", env.url))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({ "code": code }))
        .timeout(std::time::Duration::from_millis(100))
        .send()
        .await;
    assert!(gave_up.is_err(), "the caller hung up first");
    let (status, body) = exchange(&env, &code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["openid"], "oUser12");
    assert_eq!(calls(&env, OAUTH), 1);
}

#[tokio::test]
async fn after_five_virtual_minutes_a_code_is_40029_with_a_hint() {
    let env = official().start().await;
    let code = web_code(&env, "oUser3").await;
    assert_eq!(exchange(&env, &code).await.0, 200);
    let unused = web_code(&env, "oUser4").await;
    env.advance(299).await;
    assert_eq!(
        exchange(&env, &code).await.0,
        200,
        "kept for the code's 5 minutes"
    );
    env.advance(1).await;
    for code in [&code, &unused] {
        let (status, body) = exchange(&env, code).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_code", "{body}");
        assert_eq!(body["error"]["errcode"], 40029, "{body}");
        let hint = body["error"]["hint"].as_str().unwrap();
        assert!(hint.contains("5 minutes"), "{hint}");
    }
    assert_eq!(
        calls(&env, OAUTH),
        3,
        "the kept answer lapsed with the code"
    );
}

#[tokio::test]
async fn a_redirect_outside_oauth_domains_is_422_and_nothing_goes_to_wechat() {
    let env = official().start().await;
    let url = |redirect: &str| {
        let redirect =
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>();
        format!("/v1/apps/{APPID}/oauth/authorize_url?redirect_uri={redirect}&scope=snsapi_userinfo&state=abc123")
    };
    for outside in [
        "https://evil.example.net/cb",
        "https://example.com/cb",
        "https://www.example.com:8443/cb",
    ] {
        let (status, body) = env.client_get(&url(outside)).await;
        assert_eq!(status, 422, "{outside}: {body}");
        assert_eq!(body["error"]["code"], "redirect_uri_not_allowed", "{body}");
        assert!(body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("oauth_domains"));
    }
    let (status, body) = env.client_get(&url("https://www.example.com/cb?x=1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["url"],
        format!(
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid={APPID}\
             &redirect_uri=https%3A%2F%2Fwww.example.com%2Fcb%3Fx%3D1&response_type=code\
             &scope=snsapi_userinfo&state=abc123#wechat_redirect"
        )
    );
    let sns: u64 = env
        .sim
        .stats()
        .endpoint_calls
        .iter()
        .filter(|(path, _)| path.starts_with("/sns/"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(sns, 0, "nothing was sent to WeChat");
}

#[tokio::test]
async fn two_instances_on_redis_exchange_a_code_once() {
    let redis = RedisServer::start();
    let mut env = official().redis(&redis.url()).start().await;
    env.add_instance().await;
    let urls = env.urls();
    let env = Arc::new(env);
    let code = web_code(&env, "oUser5").await;
    let (status, first) = exchange_at(&env, &urls[0], &code).await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = exchange_at(&env, &urls[1], &code).await;
    assert_eq!(second, first, "the second instance answers from Redis");
    assert_eq!(calls(&env, OAUTH), 1);

    // Concurrent exchanges spread over both instances: one call.
    let code = web_code(&env, "oUser6").await;
    env.sim.add_fault(Fault {
        path: Some(OAUTH.into()),
        action: FaultAction::Delay { ms: 300 },
        count: None,
        rate: None,
    });
    let exchanges = (0..6).map(|i| {
        let (env, code, base) = (env.clone(), code.clone(), urls[i % 2].clone());
        tokio::spawn(async move { exchange_at(&env, &base, &code).await })
    });
    let answers: Vec<(u16, Value)> = futures_util::future::join_all(exchanges)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers[0].0, 200, "{:?}", answers[0]);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(calls(&env, OAUTH), 2, "one call per code");
}

#[tokio::test]
async fn wechats_refusals_come_with_fitting_statuses_and_hints() {
    let env = official().start().await;
    // A code already exchanged elsewhere, not through wxgate.
    let code = web_code(&env, "oUser7").await;
    let direct = format!(
        "{}{OAUTH}?appid={APPID}&secret={SECRET}&code={code}&grant_type=authorization_code",
        env.sim.url()
    );
    env.http.get(direct).send().await.unwrap();
    let (status, body) = exchange(&env, &code).await;
    assert_eq!(
        (status, &body["error"]["errcode"]),
        (409, &json!(40163)),
        "{body}"
    );
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("not through wxgate"));

    let blocked = code_from(
        &env,
        "/sim/oauth/authorize",
        json!({"appid": APPID, "blocked": true}),
    )
    .await;
    let (status, body) = exchange(&env, &blocked).await;
    assert_eq!(
        (status, &body["error"]["errcode"]),
        (403, &json!(40226)),
        "{body}"
    );

    // A snapshot-page user is signed in, flagged.
    let snapshot = code_from(
        &env,
        "/sim/oauth/authorize",
        json!({"appid": APPID, "snapshot": true}),
    )
    .await;
    let (status, body) = exchange(&env, &snapshot).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_snapshotuser"], 1);
    assert!(body["hint"].as_str().unwrap().contains("快照页"), "{body}");

    // WeChat's minute quota: 429, and not kept (the retry calls again).
    let code = web_code(&env, "oUser8").await;
    env.sim.add_fault(Fault {
        path: Some(OAUTH.into()),
        action: FaultAction::Errcode {
            errcode: 45011,
            errmsg: "api minute-quota reach limit".into(),
        },
        count: Some(1),
        rate: None,
    });
    let before = calls(&env, OAUTH);
    let (status, body) = exchange(&env, &code).await;
    assert_eq!(
        (status, &body["error"]["errcode"]),
        (429, &json!(45011)),
        "{body}"
    );
    assert_eq!(exchange(&env, &code).await.0, 200);
    assert_eq!(calls(&env, OAUTH), before + 2);

    // Refresh and userinfo through the center.
    let (_, signed) = exchange(&env, &web_code(&env, "oUser9").await).await;
    let (status, renewed) = env
        .client_post(
            &format!("/v1/apps/{APPID}/oauth/refresh"),
            json!({"refresh_token": signed["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(renewed["access_token"], signed["access_token"]);
    let token = renewed["access_token"].as_str().unwrap();
    let (status, info) = env
        .client_get(&format!(
            "/v1/apps/{APPID}/oauth/userinfo?access_token={token}&openid=oUser9&lang=zh_CN"
        ))
        .await;
    assert_eq!((status, &info["openid"]), (200, &json!("oUser9")), "{info}");
    let (status, body) = env
        .client_post(
            &format!("/v1/apps/{APPID}/oauth/refresh"),
            json!({"refresh_token": "bogus"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["errcode"]),
        (400, &json!(40030)),
        "{body}"
    );
}

#[tokio::test]
async fn base_scope_gets_no_userinfo_and_a_month_old_refresh_token_is_42002() {
    let env = official().start().await;
    let base = code_from(
        &env,
        "/sim/oauth/authorize",
        json!({"appid": APPID, "openid": "oBase"}),
    )
    .await;
    let (status, signed) = exchange(&env, &base).await;
    assert_eq!(
        (status, &signed["scope"]),
        (200, &json!("snsapi_base")),
        "{signed}"
    );
    let token = signed["access_token"].as_str().unwrap();
    let (status, body) = env
        .client_get(&format!(
            "/v1/apps/{APPID}/oauth/userinfo?access_token={token}&openid=oBase"
        ))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("scope_insufficient")),
        "{body}"
    );
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("snsapi_userinfo"));

    env.advance(30 * 86_400).await;
    let (status, body) = env
        .client_post(
            &format!("/v1/apps/{APPID}/oauth/refresh"),
            json!({"refresh_token": signed["refresh_token"]}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["errcode"]),
        (400, &json!(42002)),
        "{body}"
    );
    assert!(
        body["error"]["hint"].as_str().unwrap().contains("30 days"),
        "{body}"
    );
}

#[tokio::test]
async fn wechatpy_oauth_signs_a_user_in_through_the_facade() {
    let env = official().start().await;
    let args = vec![env.url.clone(), APPID.into(), SECRET.into(), env.sim.url()];
    let answer = wxgate_testkit::sdk::run("python3", "wechatpy_oauth.py", args).await;
    let url = answer["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("https://open.weixin.qq.com/connect/oauth2/authorize?appid={APPID}&redirect_uri=https%3A%2F%2Fwww.example.com%2Fsigned-in&response_type=code&scope=snsapi_userinfo&state=s1")),
        "{url}"
    );
    assert_eq!(answer["first"]["openid"], "oWechatpyUser", "{answer}");
    assert_eq!(
        answer["again"], answer["first"],
        "a double redirect: the same answer"
    );
    assert_eq!(answer["info"]["openid"], "oWechatpyUser", "{answer}");
    assert_eq!(answer["valid"], true, "{answer}");
    assert!(answer["refreshed"]["access_token"].is_string(), "{answer}");
    assert_eq!(calls(&env, OAUTH), 1);
    assert_eq!(calls(&env, "/sns/userinfo"), 1);
    assert!(!answer.to_string().contains(SECRET));

    // A user token wxgate never handed out is not relayed.
    let stranger = facade_get(&env, "/sns/userinfo?access_token=ua1_forged&openid=o1").await;
    assert_eq!(stranger["errcode"], 40001, "{stranger}");
    assert_eq!(calls(&env, "/sns/userinfo"), 1);
}

#[tokio::test]
async fn jscode2session_is_a_mini_programs_and_exchanged_once() {
    let env = Setup::new()
        .other_app(MP, MP_SECRET, AppKind::Miniprogram)
        .start()
        .await;
    let js_code = code_from(&env, "/sim/jscode", json!({"appid": MP, "openid": "oMini"})).await;
    let path = format!("/v1/apps/{MP}/jscode2session");
    let (status, first) = env.client_post(&path, json!({"js_code": js_code})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["openid"], "oMini");
    assert!(first["session_key"].is_string());
    let (_, again) = env.client_post(&path, json!({"js_code": js_code})).await;
    assert_eq!(again, first);
    let sdk = facade_get(
        &env,
        &format!("{JSCODE}?appid={MP}&secret={MP_SECRET}&js_code={js_code}&grant_type=authorization_code"),
    )
    .await;
    assert_eq!(sdk["session_key"], first["session_key"], "{sdk}");
    assert_eq!(calls(&env, JSCODE), 1);

    // Web authorization is an Official Account's.
    let (status, body) = env
        .client_post(
            &format!("/v1/apps/{MP}/oauth/exchange"),
            json!({"code": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "sign_in_not_supported", "{body}");
    let oauth = facade_get(
        &env,
        &format!("{OAUTH}?appid={MP}&secret={MP_SECRET}&code=x&grant_type=authorization_code"),
    )
    .await;
    assert_eq!(oauth["errcode"], 48001, "{oauth}");
    assert_eq!(calls(&env, OAUTH), 0);
}

#[tokio::test]
async fn an_official_account_asking_jscode2session_is_told_its_way() {
    let env = official().start().await;
    let (status, body) = env
        .client_post(
            &format!("/v1/apps/{APPID}/jscode2session"),
            json!({"js_code": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("web authorization"),
        "{body}"
    );
    assert_eq!(calls(&env, JSCODE), 0);
}

#[tokio::test]
async fn the_secret_appears_in_no_answer_no_log_line_and_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wxgate.db");
    let env = official().sqlite(&db).start().await;
    let mut answers = Vec::new();
    let code = web_code(&env, "oUser10").await;
    answers.push(exchange(&env, &code).await.1);
    answers.push(exchange(&env, &code).await.1);
    // WeChat failing: the error names no URL (the secret is in its query).
    env.sim.add_fault(Fault {
        path: Some(OAUTH.into()),
        action: FaultAction::Drop,
        count: Some(1),
        rate: None,
    });
    let code = web_code(&env, "oUser11").await;
    let (status, failed) = exchange(&env, &code).await;
    assert_eq!(status, 502, "{failed}");
    answers.push(failed);
    answers.push(
        facade_get(
            &env,
            &format!(
                "{OAUTH}?appid={APPID}&secret={SECRET}&code={code}&grant_type=authorization_code"
            ),
        )
        .await,
    );
    answers.push(
        facade_get(
            &env,
            &format!(
                "{OAUTH}?appid={APPID}&secret=wrong&code={code}&grant_type=authorization_code"
            ),
        )
        .await,
    );
    for answer in &answers {
        assert!(!answer.to_string().contains(SECRET), "{answer}");
    }
    let logs = crate::logs::text();
    assert!(
        logs.contains("sign-in code exchange"),
        "the sign-in was logged"
    );
    assert!(!logs.contains(SECRET), "the secret in the logs");
    // The store keeps the answers (and the codes' digests), never the secret.
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "the secret in the store");
        assert!(!text.contains(&code), "a code in the store");
    }
}

#[test]
fn oauth_domains_are_checked_like_js_domains() {
    let toml = "[[apps]]\nappid = \"wxmp\"\nsecret = \"s\"\ntype = \"miniprogram\"\n\
                oauth_domains = [\"example.com\"]\n\
                [[apps]]\nappid = \"wxoa\"\nsecret = \"s\"\n\
                oauth_domains = [\"https://www.example.com\", \"a.example.com\", \"b.example.com\"]\n";
    let error = wxgate_gateway::config::load(toml, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("apps[0].oauth_domains"), "{error}");
    assert!(error.contains("jscode2session"), "{error}");
    assert!(error.contains("apps[1].oauth_domains[0]"), "{error}");
    assert!(error.contains("at most 2"), "{error}");
    let fine =
        "[[apps]]\nappid = \"wxoa\"\nsecret = \"s\"\noauth_domains = [\"WWW.example.com\"]\n";
    let config = wxgate_gateway::config::load(fine, &Default::default()).unwrap();
    assert_eq!(config.apps[0].oauth_domains, ["www.example.com"]);
}
