//! Issue #27, reload on the binary: `wxgate serve` reloads on `SIGHUP` and
//! on `wxgate reload` while wrk pushes at full rate, fails no request,
//! answers with a changed rule within a second, fetches nothing again for an
//! unchanged app, and an invalid file changes nothing and is reported
//! problem by problem.

use std::time::Duration;

use serde_json::Value;
use wxgate_gateway::clock::{Clock, SystemClock};
use wxgate_sim::push::{self, Compose, PushAnswer, PushRequest};
use wxgate_testkit::process::Server;

use crate::sha256_hex;

const A: &str = "wx00000000000000aa";
const B: &str = "wx00000000000000bb";
const C: &str = "wx00000000000000cc";
const SECRET: &str = "reload-app-secret-0123";
const TOKEN_1: &str = "server-token-one";
const TOKEN_2: &str = "server-token-two";
const CLIENT_KEY: &str = "reload-client-key-71c4e2a9";
const ADMIN_KEY: &str = "reload-admin-key-2d8f6b31";

/// The configuration: A (plain pushes, `token`, a `ping` rule answering
/// `reply`, and `extra` lines), then the apps `others`.
fn config(sim: &str, db: &str, token: &str, extra: &str, reply: &str, others: &[&str]) -> String {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    // One port for every version of the file: `wxgate reload -c FILE` finds the server there.
    let port = PORT.get_or_init(wxgate_testkit::free_port);
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = {db:?}\n\
         [upstream]\nbase_url = \"{sim}\"\n[admin]\nkey_env = \"WXGATE_ADMIN_KEY\"\n\
         [[apps]]\nappid = \"{A}\"\nsecret = \"{SECRET}\"\ntoken = \"{token}\"\nmode = \"plain\"\n{extra}\n\
         [[apps.rules]]\nkeyword = \"ping\"\nreply = {{ text = \"{reply}\" }}\n"
    );
    for appid in others {
        text.push_str(&format!(
            "[[apps]]\nappid = \"{appid}\"\nsecret = \"{SECRET}\"\n"
        ));
    }
    text.push_str(&format!(
        "[[clients]]\nname = \"ops\"\nkey_sha256 = \"{}\"\napps = [\"*\"]\n",
        sha256_hex(CLIENT_KEY)
    ));
    text
}

/// `count` distinct plain-mode text pushes to A signed with `token`, one per
/// line as bench/lua/w3.lua reads them: `PATH?QUERY<TAB>BODY`.
fn pool(count: u64, token: &str, now: u64) -> String {
    let mut lines = String::new();
    for i in 0..count {
        let (timestamp, nonce) = (now.to_string(), format!("n{i}"));
        let signature = wxgate_proto::signature(token, &timestamp, &nonce);
        let body = format!(
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>\
             <CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[load {i}]]></Content><MsgId>{}</MsgId></xml>",
            9_000_000_000 + i
        );
        lines.push_str(&format!(
            "/wx/{A}?signature={signature}&timestamp={timestamp}&nonce={nonce}\t{body}\n"
        ));
    }
    lines
}

/// What A answers to `ping` signed with `token`.
async fn ping(url: &str, token: &str) -> String {
    let request = PushRequest {
        url: format!("{url}/wx/{A}"),
        token: token.into(),
        mode: "plain".into(),
        appid: None,
        encoding_aes_key: None,
        message: Compose::Text {
            content: "ping".into(),
        },
        from: "oUser_1".into(),
        to: "gh_1".into(),
        timeout_ms: 5000,
        retries: 0,
    };
    let outcome = push::send(&push::client(), &request, SystemClock.now())
        .await
        .unwrap();
    match outcome.answer {
        PushAnswer::Reply { xml, .. } => match wxgate_proto::Reply::parse(&xml).unwrap().body {
            wxgate_proto::ReplyBody::Text { content } => content,
            other => panic!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

fn reload_command(config: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .arg("reload")
        .args(["-c", config.to_str().unwrap()])
        .args(extra)
        .env("WXGATE_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_full_load_fail_no_request_and_an_invalid_file_changes_nothing() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(
        [A, B, C]
            .iter()
            .map(|&appid| wxgate_sim::SimApp::new(appid, SECRET))
            .collect(),
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wxgate.db").display().to_string();
    let file = dir.path().join("wxgate.toml");
    std::fs::write(&file, config(&sim.url(), &db, TOKEN_1, "", "old", &[B])).unwrap();
    let mut server = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", file.to_str().unwrap()],
        &[("WXGATE_ADMIN_KEY", ADMIN_KEY)],
        Some(&dir.path().join("stderr.log")),
    );
    let url = server.url_after("listening on");
    let http = reqwest::Client::new();
    // Stable tokens (the default token API), each one a fetch.
    let tokens = |appid: &str| sim.stats().app(appid).stable_tokens_issued;
    wxgate_testkit::wait_until(Duration::from_secs(10), "A and B warmed", async || {
        tokens(A) == 1 && tokens(B) == 1
    })
    .await;
    assert_eq!(ping(&url, TOKEN_1).await, "old");

    // Full load: wrk sends a pool of distinct pushes signed with the first token.
    let data = dir.path().join("pushes.txt");
    std::fs::write(&data, pool(20_000, TOKEN_1, SystemClock.now())).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/lua/w3.lua");
    let lua_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/lua/?.lua");
    let wrk = std::process::Command::new("wrk")
        .args(["-t1", "-c32", "-d8s", "-s", script, &url, "--"])
        .arg(&data)
        .arg("0")
        .env("LUA_PATH", lua_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wrk runs (scripts/test installs it)");
    let pushes = async || {
        let metrics = http.get(format!("{url}/metrics")).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        (text.lines())
            .filter(|l| l.starts_with("wxgate_pushes_total{") && l.contains(A))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    wxgate_testkit::wait_until(Duration::from_secs(10), "the load under way", async || {
        pushes().await > 200.0
    })
    .await;

    // While it runs: the token rotated (the previous one still accepted), the
    // rule changed, B removed, C added; by `wxgate reload`.
    let rotated = format!("token_previous = \"{TOKEN_1}\"");
    std::fs::write(
        &file,
        config(&sim.url(), &db, TOKEN_2, &rotated, "new", &[C]),
    )
    .unwrap();
    let (ok, out, err) = reload_command(&file, &[]);
    assert!(ok, "{out}{err}");
    let reloaded_at = tokio::time::Instant::now();
    assert!(out.contains(&format!("added: {C}")), "{out}");
    assert!(out.contains(&format!("removed: {B}")), "{out}");
    assert!(out.contains(&format!("changed: {A}")), "{out}");
    assert_eq!(ping(&url, TOKEN_2).await, "new");
    eprintln!(
        "the new rule answered {:?} after wxgate reload returned",
        reloaded_at.elapsed()
    );
    assert!(
        reloaded_at.elapsed() < Duration::from_secs(1),
        "the new rule answered {:?} after the reload",
        reloaded_at.elapsed()
    );
    let (status, gone) = {
        let answer = http
            .get(format!("{url}/v1/apps/{B}/access_token"))
            .bearer_auth(CLIENT_KEY)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    };
    assert_eq!(status, 404, "{gone}");

    // SIGHUP does the same.
    std::fs::write(
        &file,
        config(&sim.url(), &db, TOKEN_2, &rotated, "hup", &[C]),
    )
    .unwrap();
    server.signal("HUP");
    wxgate_testkit::wait_until(Duration::from_secs(2), "the SIGHUP reload", async || {
        ping(&url, TOKEN_2).await == "hup"
    })
    .await;

    // An invalid file: every problem printed, non-zero exit, nothing changed.
    let ready: Value = http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let broken = config(
        &sim.url(),
        &db,
        TOKEN_2,
        "mode_typo = 1\nrefresh_ahead_secs = 0",
        "x",
        &[C],
    );
    std::fs::write(&file, broken).unwrap();
    let (ok, out, err) = reload_command(&file, &[]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("not reloaded") && err.contains("apps[0].mode_typo"),
        "{err}"
    );
    assert!(err.contains("apps[0].refresh_ahead_secs"), "{err}");
    // Asked without reading the file here, the server refuses it the same way.
    let (ok, out, err) = reload_command(&file, &["--url", &url]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("HTTP 422") && err.contains("apps[0].mode_typo"),
        "{err}"
    );
    assert!(err.contains("apps[0].refresh_ahead_secs"), "{err}");
    assert_eq!(ping(&url, TOKEN_2).await, "hup");
    let after: Value = http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["config"], ready["config"]);

    // The load saw no failure; nothing was fetched again for the unchanged
    // app, nothing for the removed one, once for the added one.
    let wrk = tokio::task::spawn_blocking(move || wrk.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&wrk.stdout);
    let summary = (stdout.lines())
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .unwrap_or_else(|| {
            panic!(
                "no summary from wrk: {stdout}{}",
                String::from_utf8_lossy(&wrk.stderr)
            )
        });
    let summary: Value = serde_json::from_str(summary).unwrap();
    eprintln!("wrk during the reloads: {summary}");
    assert!(summary["requests"].as_u64().unwrap() > 1_000, "{summary}");
    for (kind, count) in summary["errors"].as_object().unwrap() {
        assert_eq!(count, 0, "{kind} errors under load: {summary}");
    }
    assert_eq!((tokens(A), tokens(B), tokens(C)), (1, 1, 1));
}
