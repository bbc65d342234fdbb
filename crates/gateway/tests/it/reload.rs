//! Issue #27, reload: the configuration read again while the server runs
//! (`POST /admin/reload`; `SIGHUP` and `wxgate reload` are tested on the
//! binary in `crates/wxgate/tests/cli/reload.rs`).

use serde_json::Value;
use wxgate_gateway::clock::Clock;
use wxgate_sim::{AppKind, SimApp};
use wxgate_testkit::RedisServer;

use crate::pushes::{app_toml, push_xml, reply_text, sample_xml};
use crate::{Env, Setup, APPID, CLIENT_KEY};

const ADMIN: &str = "reload-admin-key-0123456789abcdef";
const B: &str = "wx00000000000000bb";
const B_SECRET: &str = "b-secret-0123456789";
const C: &str = "wx00000000000000cc";
const C_SECRET: &str = "c-secret-0123456789";

async fn reload(env: &Env, base: &str) -> (u16, Value) {
    let answer = env
        .http
        .post(format!("{base}/admin/reload"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// A client that may use every app, those added and removed by reloads among them.
const OPS_KEY: &str = "reload-ops-client-key-0123456789";

async fn client_get(env: &Env, appid: &str) -> (u16, Value) {
    let answer = env
        .http
        .get(format!("{}/v1/apps/{appid}/access_token", env.url))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn ping(env: &Env) -> String {
    // A fresh MsgId each time, so no answer comes from the dedupe cache.
    let fields = format!(
        "<Content><![CDATA[ping]]></Content><MsgId>{}</MsgId>",
        next_msg_id()
    );
    let xml = sample_xml("text", &fields, env.clock.now());
    reply_text(&push_xml(env, "safe", &xml).await)
}

fn next_msg_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(7_000_000_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn setup(file: &std::path::Path) -> Setup {
    Setup::new()
        .admin(ADMIN)
        .app(&app_toml("safe"))
        .app("[[apps.rules]]\nkeyword = \"ping\"\nreply = { text = \"old rule\" }")
        .other_app(B, B_SECRET, AppKind::Official)
        .sim(|s| s.apps.push(SimApp::new(C, C_SECRET)))
        .extra(&format!(
            "[[clients]]\nname = \"ops\"\nkey_sha256 = \"{}\"\napps = [\"*\"]\n",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(OPS_KEY))
        ))
        .config_file(file)
}

/// The file with B replaced by C and the rule's answer changed.
fn changed(toml: &str) -> String {
    toml.replace(B, C)
        .replace(B_SECRET, C_SECRET)
        .replace("old rule", "new rule")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_changes_and_removes_apps_and_an_app_added_back_reuses_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wxgate.toml");
    let env = setup(&file).start().await;
    let original = env.toml();
    let before = env.get_json("/readyz").await["config"].clone();
    assert_eq!(before.as_str().map(str::len), Some(12), "{before}");
    assert_eq!(client_get(&env, B).await.0, 200);
    assert_eq!(ping(&env).await, "old rule");
    let tokens = |appid: &str| env.sim.stats().app(appid).tokens_issued;
    assert_eq!((tokens(APPID), tokens(B), tokens(C)), (1, 1, 0));

    std::fs::write(&file, changed(&original)).unwrap();
    let (status, done) = reload(&env, &env.url).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["added"], serde_json::json!([C]), "{done}");
    assert_eq!(done["removed"], serde_json::json!([B]), "{done}");
    assert_eq!(done["changed"], serde_json::json!([APPID]), "{done}");
    assert_eq!(done["clients"], serde_json::json!(["shop"]), "{done}");
    assert_eq!(done["restart_required"], serde_json::json!([]), "{done}");
    assert_eq!(done["previous"], before, "{done}");
    let after = env.get_json("/readyz").await["config"].clone();
    assert_eq!(after, done["fingerprint"]);
    assert_ne!(after, before);

    // The new rule answers the next push; the app's token was not fetched again.
    assert_eq!(ping(&env).await, "new rule");
    env.settle().await;
    assert_eq!(tokens(APPID), 1, "an unchanged credential is kept");
    // The added app is warmed at once and served; the removed one is a clear 404.
    assert_eq!(tokens(C), 1);
    assert_eq!(client_get(&env, C).await.0, 200);
    let (status, body) = client_get(&env, B).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(B),
        "{body}"
    );
    // Its gauges go with it.
    let metrics = env.http.get(format!("{}/metrics", env.url)).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    let gauge = |appid: &str| {
        metrics.lines().any(|l| {
            l.starts_with("wxgate_credential_expires_in_seconds")
                && l.contains(&format!("appid=\"{appid}\""))
        })
    };
    assert!(gauge(C) && !gauge(B), "{metrics}");
    let info = format!("wxgate_config_info{{fingerprint={after}}} 1");
    assert!(metrics.lines().any(|l| l == info), "{info} in {metrics}");
    assert!(
        !metrics.contains(&format!("fingerprint={before}")),
        "{metrics}"
    );
    let applied = "wxgate_config_reloads_total{result=\"applied\"} 1";
    assert!(metrics.lines().any(|l| l == applied), "{metrics}");

    // A day later: the removed app was never renewed, the others were.
    for _ in 0..12 {
        env.step(7200).await;
    }
    assert_eq!(tokens(B), 1, "no upstream call for a removed app");
    assert!(tokens(APPID) > 1 && tokens(C) > 1);

    // Added back a day later: its stored token has expired, so one fetch.
    std::fs::write(&file, &original).unwrap();
    let (status, done) = reload(&env, &env.url).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["added"], serde_json::json!([B]), "{done}");
    assert_eq!(
        done["fingerprint"], before,
        "the same file, the same fingerprint"
    );
    env.settle().await;
    assert_eq!(tokens(B), 2);
    // Removed and added back within its token's life: the stored one is served.
    let (_, b_token) = client_get(&env, B).await;
    std::fs::write(&file, changed(&original)).unwrap();
    assert_eq!(reload(&env, &env.url).await.0, 200);
    env.step(600).await;
    std::fs::write(&file, &original).unwrap();
    assert_eq!(reload(&env, &env.url).await.0, 200);
    env.settle().await;
    assert_eq!(
        tokens(B),
        2,
        "added back within its token's life: 0 upstream calls"
    );
    let (status, again) = client_get(&env, B).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["access_token"], b_token["access_token"]);
}

#[tokio::test]
async fn an_invalid_file_changes_nothing_and_every_problem_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wxgate.toml");
    let env = setup(&file).start().await;
    let before = env.get_json("/readyz").await["config"].clone();
    // Two problems at once: an unknown setting, and an AES key of the wrong length.
    let broken = env
        .toml()
        .replace(B, C)
        .replace(
            "refresh_ahead_secs = 600\n",
            "refresh_ahead_secs = 600\nrefresh_ahaed = 1\n",
        )
        .replace("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "too-short");
    std::fs::write(&file, broken).unwrap();
    let (status, refused) = reload(&env, &env.url).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_config", "{refused}");
    let problems = refused["error"]["problems"].as_array().unwrap();
    let fields: Vec<&str> = problems
        .iter()
        .filter_map(|p| p["field"].as_str())
        .collect();
    assert!(
        fields.iter().any(|f| f.contains("refresh_ahaed")),
        "{refused}"
    );
    assert!(
        fields.iter().any(|f| f.contains("encoding_aes_key")),
        "{refused}"
    );
    assert!(refused["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("nothing was changed"));
    // Nothing changed: the same fingerprint, B still served, C still unknown.
    assert_eq!(env.get_json("/readyz").await["config"], before);
    assert_eq!(client_get(&env, B).await.0, 200);
    assert_eq!(client_get(&env, C).await.0, 404);
    assert_eq!(ping(&env).await, "old rule");
    let status = env.admin_get("/admin/status.json", ADMIN).await.1;
    let failure = status["config"]["last_failure"][1].as_str().unwrap();
    assert!(failure.contains("refresh_ahaed"), "{status}");
    // An unreadable file is refused the same way.
    std::fs::remove_file(&file).unwrap();
    let (status, refused) = reload(&env, &env.url).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "config_unreadable", "{refused}");
    let metrics = env.http.get(format!("{}/metrics", env.url)).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    let refused = "wxgate_config_reloads_total{result=\"refused\"} 2";
    assert!(metrics.lines().any(|l| l == refused), "{metrics}");
    // A client key is no admin key.
    let answer = env
        .http
        .post(format!("{}/admin/reload", env.url))
        .bearer_auth(CLIENT_KEY);
    assert_eq!(answer.send().await.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn a_gateway_started_without_a_file_says_there_is_nothing_to_reload() {
    let env = Setup::new().admin(ADMIN).start().await;
    let (status, refused) = reload(&env, &env.url).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "no_config_file", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_with_different_files_each_show_both_fingerprints() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    let mut env = setup(&first).redis(&redis.url()).start().await;
    let other = changed(&env.toml());
    env.add_instance_with(&other, &second).await;
    let urls = env.urls();
    let fingerprint = async |url: &str| {
        let ready = env.http.get(format!("{url}/readyz")).send().await.unwrap();
        let ready: Value = ready.json().await.unwrap();
        ready["config"].as_str().unwrap().to_owned()
    };
    let (a, b) = (fingerprint(&urls[0]).await, fingerprint(&urls[1]).await);
    assert_ne!(a, b);
    for url in &urls {
        let status: Value = env
            .http
            .get(format!("{url}/admin/status.json"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut seen: Vec<&str> = (status["instances"].as_array().unwrap().iter())
            .map(|i| i["fingerprint"].as_str().unwrap())
            .collect();
        seen.sort_unstable();
        let mut both = vec![a.as_str(), b.as_str()];
        both.sort_unstable();
        assert_eq!(seen, both, "{url}: {status}");
    }
    // The first instance reloads the second's file: they agree, and both say so.
    std::fs::write(&first, &other).unwrap();
    assert_eq!(reload(&env, &urls[0]).await.0, 200);
    assert_eq!(fingerprint(&urls[0]).await, b);
    let status = env.admin_get("/admin/status.json", ADMIN).await.1;
    let seen: Vec<&str> = (status["instances"].as_array().unwrap().iter())
        .map(|i| i["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(seen, [b.as_str(), b.as_str()], "{status}");
}

#[tokio::test]
async fn wecom_apps_are_removed_and_added_back_by_a_reload_like_apps() {
    const CORP: &str = "wwreload000000001";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wxgate.toml");
    let env = Setup::new()
        .admin(ADMIN)
        .wecom(CORP, "1000002", "secret-of-1000002")
        .wecom(CORP, "1000003", "secret-of-1000003")
        .config_file(&file)
        .start()
        .await;
    let get = async |agent: &str| {
        env.client_get(&format!("/v1/wecom/{CORP}/{agent}/access_token"))
            .await
    };
    let calls = |agent: &str| {
        (env.sim.stats().wecom(&format!("{CORP}/{agent}"))).calls("/cgi-bin/gettoken")
    };
    let (status, first) = get("1000003").await;
    assert_eq!(status, 200, "{first}");
    let original = env.toml();
    // Without the second app (and without it in the client's scope).
    let without = original
        .replace(
            &format!(
                "[[wecom]]\ncorpid = \"{CORP}\"\nagentid = 1000003\nsecret = \"secret-of-1000003\"\njs_domains = [\"example.com\"]\n"
            ),
            "",
        )
        .replace(&format!(", \"{CORP}/1000003\""), "");
    assert_ne!(without, original);
    std::fs::write(&file, &without).unwrap();
    let (status, done) = reload(&env, &env.url).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        done["removed"],
        serde_json::json!([format!("{CORP}/1000003")]),
        "{done}"
    );
    assert_eq!(get("1000003").await.0, 404);
    assert_eq!(get("1000002").await.0, 200);
    // Back, within its token's life: served from the store, no call to WeCom.
    std::fs::write(&file, &original).unwrap();
    let (status, done) = reload(&env, &env.url).await;
    assert_eq!(status, 200, "{done}");
    env.settle().await;
    let (status, again) = get("1000003").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["access_token"], first["access_token"]);
    assert_eq!((calls("1000002"), calls("1000003")), (1, 1));
}
