//! A real `wxgate serve` process: its logs hold no secret, and SIGTERM lets
//! in-flight requests finish before it exits.

use std::time::Duration;

use wxgate_gateway::clock::{Clock, SystemClock};
use wxgate_sim::push::{self, Compose, PushRequest};
use wxgate_testkit::process::Server;

use crate::sha256_hex;

const SECRET: &str = "app-secret-0c5b1e9a7d";
const SERVER_TOKEN: &str = "server-token-5f2e8a";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const HOOK_SECRET: &str = "hook-secret-93b1d7";
const CLIENT_KEY: &str = "client-key-71c4e2a9";
const ADMIN_KEY: &str = "admin-key-2d8f6b31";

/// A `wxgate serve` process, its URL and its log file.
struct Serve {
    server: Server,
    url: String,
    logs: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts `wxgate serve` on the simulator with every kind of secret configured,
/// logging at debug level in `format` to a file.
fn serve(sim_url: &str, format: &str) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_timeout_secs = 5\n[store]\npath = {db:?}\n\
         [upstream]\nbase_url = \"{sim_url}\"\n[admin]\nkey_env = \"WXGATE_ADMIN_KEY\"\n\
         [[apps]]\nappid = \"wx1\"\nsecret_env = \"WX_SECRET\"\ntoken = \"{SERVER_TOKEN}\"\n\
         encoding_aes_key = \"{AES_KEY}\"\nmode = \"safe\"\njs_domains = [\"example.com\"]\n\
         webhook = \"http://127.0.0.1:9/hook\"\nwebhook_secret = \"{HOOK_SECRET}\"\n\
         [[clients]]\nname = \"c\"\nkey_sha256 = \"{hash}\"\napps = [\"wx1\"]\n",
        db = dir.path().join("wxgate.db").display().to_string(),
        hash = sha256_hex(CLIENT_KEY),
    );
    let config = dir.path().join("wxgate.toml");
    std::fs::write(&config, text).unwrap();
    let logs = dir.path().join("stderr.log");
    let mut server = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &[
            "--log-format",
            format,
            "serve",
            "-c",
            config.to_str().unwrap(),
        ],
        &[
            ("RUST_LOG", "debug"),
            ("WX_SECRET", SECRET),
            ("WXGATE_ADMIN_KEY", ADMIN_KEY),
        ],
        Some(&logs),
    );
    let url = server.url_after("listening on");
    Serve {
        server,
        url,
        logs,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_at_debug_level_hold_no_secret_and_json_lines_carry_request_ids() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", SECRET),
    ]))
    .await
    .unwrap();
    let mut serve = serve(&sim.url(), "json");
    let http = reqwest::Client::new();
    let get = |path: &str, key: &str| {
        http.get(format!("{}{path}", serve.url))
            .bearer_auth(key)
            .send()
    };
    let token: serde_json::Value = get("/v1/apps/wx1/access_token", CLIENT_KEY)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let ticket: serde_json::Value = get("/v1/apps/wx1/jsapi_ticket", CLIENT_KEY)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["jsapi_ticket"].as_str().unwrap().to_owned();
    assert_eq!(
        get("/v1/apps/wx1/access_token", "wrong-key")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get("/proxy/wx1/cgi-bin/get_api_domain_ip", CLIENT_KEY)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get("/admin/status.json", ADMIN_KEY).await.unwrap().status(),
        200
    );
    assert_eq!(
        get("/admin/status.json", "wrong-admin-key")
            .await
            .unwrap()
            .status(),
        401
    );
    // A safe-mode push; the webhook is down, so its failure is logged too.
    let request = PushRequest {
        url: format!("{}/wx/wx1", serve.url),
        token: SERVER_TOKEN.into(),
        mode: "safe".into(),
        appid: Some("wx1".into()),
        encoding_aes_key: Some(AES_KEY.into()),
        message: Compose::Text {
            content: "hello".into(),
        },
        from: "oUser".into(),
        to: "gh_1".into(),
        timeout_ms: 5000,
        retries: 0,
    };
    push::send(&push::client(), &request, SystemClock.now())
        .await
        .unwrap();
    // A refused refresh: WeChat answers with a wrong-secret error.
    sim.add_fault(wxgate_sim::Fault {
        path: Some("/cgi-bin/stable_token".into()),
        action: wxgate_sim::FaultAction::Errcode {
            errcode: 40125,
            errmsg: "invalid appsecret".into(),
        },
        count: Some(1),
        rate: None,
    });
    let refresh = http
        .post(format!("{}/v1/apps/wx1/access_token/refresh", serve.url))
        .bearer_auth(CLIENT_KEY)
        .json(&serde_json::json!({ "invalid_token": token }))
        .send()
        .await
        .unwrap();
    assert!(refresh.status().is_client_error() || refresh.status().is_server_error());

    serve.server.signal("TERM");
    assert!(serve.server.wait_exit(Duration::from_secs(10)).success());
    let logs = std::fs::read_to_string(&serve.logs).unwrap();
    assert!(logs.lines().count() > 10, "{logs}");
    for (name, secret) in [
        ("app secret", SECRET),
        ("server token", SERVER_TOKEN),
        ("AES key", AES_KEY),
        ("webhook secret", HOOK_SECRET),
        ("client key", CLIENT_KEY),
        ("admin key", ADMIN_KEY),
        ("access token", token.as_str()),
        ("jsapi ticket", ticket.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {name} is in the logs:\n{logs}");
    }
    let mut with_request_id = 0;
    let mut routes_with_id = std::collections::BTreeSet::new();
    for line in logs.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if entry["span"]["request_id"].is_string() {
            with_request_id += 1;
            if let Some(route) = entry["fields"]["route"].as_str() {
                routes_with_id.insert(route.to_owned());
            }
        }
    }
    assert!(with_request_id > 0, "no line carries a request id:\n{logs}");
    // The routes answered off the connection (pushes, credential reads) as
    // well as the router's.
    for route in [
        "/wx/{appid}",
        "/v1/apps/{appid}/{kind}",
        "/admin/status.json",
    ] {
        assert!(
            routes_with_id.contains(route),
            "no line of {route} carries a request id: {routes_with_id:?}\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_within_the_bound_then_exits() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", SECRET),
    ]))
    .await
    .unwrap();
    let mut serve = serve(&sim.url(), "human");
    let http = reqwest::Client::new();
    let warm = http
        .get(format!("{}/v1/apps/wx1/access_token", serve.url))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    // Two proxied calls: WeChat answers one in 1.5 s, the other in 8 s, past
    // the 5 s shutdown_timeout_secs.
    sim.add_fault(wxgate_sim::Fault {
        path: Some("/cgi-bin/get_api_domain_ip".into()),
        action: wxgate_sim::FaultAction::Delay { ms: 1500 },
        count: Some(1),
        rate: None,
    });
    let proxied = |http: &reqwest::Client| {
        http.get(format!("{}/proxy/wx1/cgi-bin/get_api_domain_ip", serve.url))
            .bearer_auth(CLIENT_KEY)
            .send()
    };
    let calls = || sim.stats().endpoint_calls("/cgi-bin/get_api_domain_ip");
    let slow = tokio::spawn(proxied(&http));
    // Each call has met its fault (taken when it reaches WeChat) before the next.
    wxgate_testkit::wait_until(
        Duration::from_secs(5),
        "the first call at WeChat",
        async || calls() >= 1,
    )
    .await;
    sim.add_fault(wxgate_sim::Fault {
        path: Some("/cgi-bin/get_api_domain_ip".into()),
        action: wxgate_sim::FaultAction::Delay { ms: 8000 },
        count: Some(1),
        rate: None,
    });
    let too_slow = tokio::spawn(proxied(&http));
    wxgate_testkit::wait_until(
        Duration::from_secs(5),
        "the second call at WeChat",
        async || calls() >= 2,
    )
    .await;
    let signalled = tokio::time::Instant::now();
    serve.server.signal("TERM");
    let answer = slow
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["ip_list"].is_array(), "{body}");
    let status = serve.server.wait_exit(Duration::from_secs(10));
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_millis(7500),
        "exited {took:?} after SIGTERM; the bound is 5 s"
    );
    assert!(too_slow.await.unwrap().is_err(), "cut off at the bound");
    // And nothing is accepted any more.
    assert!(http
        .get(format!("{}/healthz", serve.url))
        .send()
        .await
        .is_err());
    let logs = std::fs::read_to_string(&serve.logs).unwrap();
    assert!(logs.contains("stopped"), "{logs}");
}
