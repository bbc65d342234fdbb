//! The `wxgate` binary, run as a user would.

mod admin;
mod compose;
mod deploy;
mod docs;
mod facade;
mod nginx;
mod ops;
mod proxy;
mod reload;

use std::process::Command;

use wxgate_testkit::process::Server;

pub(crate) fn wxgate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn sign_prints_the_signature_of_every_vector() {
    for v in vectors()["signature"].as_array().unwrap() {
        let arg = |k: &str| v[k].as_str().unwrap().to_owned();
        let (ok, out, err) = wxgate(&[
            "sign",
            "--token",
            &arg("token"),
            "--timestamp",
            &arg("timestamp"),
            "--nonce",
            &arg("nonce"),
        ]);
        assert!(ok, "{err}");
        assert_eq!(out, format!("signature={}\n", arg("signature")));
    }
}

#[test]
fn sign_with_encrypt_prints_the_msg_signature() {
    for v in vectors()["msg_signature"].as_array().unwrap() {
        let arg = |k: &str| v[k].as_str().unwrap().to_owned();
        let (ok, out, err) = wxgate(&[
            "sign",
            "--token",
            &arg("token"),
            "--timestamp",
            &arg("timestamp"),
            "--nonce",
            &arg("nonce"),
            "--encrypt",
            &arg("encrypt"),
        ]);
        assert!(ok, "{err}");
        let last = out.lines().last().unwrap();
        assert_eq!(last, format!("msg_signature={}", arg("msg_signature")));
    }
}

#[test]
fn sign_without_its_arguments_explains_what_is_missing() {
    let (ok, _, err) = wxgate(&["sign", "--token", "t"]);
    assert!(!ok);
    assert!(err.contains("--timestamp"), "{err}");
}

/// Starts `wxgate` with `args` as a server process.
pub(crate) fn server(args: &[&str]) -> Server {
    Server::start(env!("CARGO_BIN_EXE_wxgate"), args, &[], None)
}

/// Waits until `{url}/readyz` answers 200 (every credential fetched),
/// failing the test after `secs` seconds with `why()` (e.g. a log).
pub(crate) async fn wait_ready(url: &str, secs: u64, why: impl Fn() -> String) {
    wxgate_testkit::wait_until(
        std::time::Duration::from_secs(secs),
        wxgate_testkit::lazy(|| format!("{url} ready ({})", why())),
        async || {
            let answer = reqwest::get(format!("{url}/readyz")).await;
            answer.is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
}

/// `wxgate dev` on free loopback ports.
pub(crate) fn dev() -> Server {
    server(&[
        "dev",
        "--listen",
        "127.0.0.1:0",
        "--sim-listen",
        "127.0.0.1:0",
    ])
}

#[tokio::test]
async fn sim_serves_the_token_api_and_its_stats() {
    let mut sim = server(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--app",
        "wx1:s3cret",
        "--expires-in",
        "60",
    ]);
    let url = sim.url_after("listening on");
    let token: serde_json::Value = reqwest::get(format!(
        "{url}/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s3cret"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(token["expires_in"], 60, "{token}");
    let stats: serde_json::Value = reqwest::get(format!("{url}/sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["apps"]["wx1"]["tokens_issued"], 1, "{stats}");
}

#[test]
fn sim_rejects_a_malformed_app() {
    let (ok, _, err) = wxgate(&["sim", "--app", "no-secret"]);
    assert!(!ok);
    assert!(err.contains("APPID:SECRET"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_tokens_from_the_gateway_in_front_of_the_simulator() {
    let mut dev = server(&[
        "dev",
        "--listen",
        "127.0.0.1:0",
        "--sim-listen",
        "127.0.0.1:0",
    ]);
    let gateway = dev.url_after("  gateway ");
    let sim = dev.url_after("  simulator ");
    let token_line = dev.lines().find(|l| l.contains("/access_token")).unwrap();
    // The printed command works as printed.
    let key = token_line
        .split("Bearer ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let url = token_line.split_whitespace().last().unwrap();
    assert!(url.starts_with(&gateway), "{token_line}");
    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(token["access_token"].as_str().is_some(), "{token}");
    let stats: serde_json::Value = reqwest::get(format!("{sim}/sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["apps"]["wxd000000000000001"]["stable_tokens_issued"], 1,
        "{stats}"
    );

    // The printed push lines go through the gateway: a rule, then the demo webhook.
    let pushes: Vec<String> = dev
        .lines()
        .filter(|l| l.contains("wxgate push"))
        .take(2)
        .collect();
    run_as_printed(&pushes, &["the demo webhook echoes it", "echo: hello"]).await;

    // WeCom's own token API, with the printed corpsecret.
    let gettoken = dev
        .lines()
        .find(|l| l.contains("/cgi-bin/gettoken"))
        .unwrap();
    let url = gettoken.split('\'').nth(1).unwrap();
    let answer: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["errcode"], 0, "{gettoken}: {answer}");
    assert!(answer["access_token"].is_string(), "{answer}");

    // The WeCom app's and the Mini Program's pushes, as printed.
    let families: Vec<String> = dev
        .lines()
        .filter(|l| {
            l.contains("wxgate push") && (l.contains("--corpid") || l.contains("--miniprogram"))
        })
        .take(2)
        .collect();
    run_as_printed(&families, &["echo: hello", "transfer_customer_service"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_a_demo_platform_its_authorizers_and_the_release_test() {
    let mut dev = dev();
    let gateway = dev.url_after("  gateway ");
    let lines: Vec<String> = dev.lines().take_while(|l| !l.contains("Ctrl-C")).collect();
    let find = |needle: &str| {
        (lines.iter())
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no banner line with {needle}: {lines:#?}"))
            .clone()
    };
    let client = reqwest::Client::new();
    // Each printed curl line with the client key works as printed.
    let get = |line: String| {
        let client = client.clone();
        let gateway = gateway.clone();
        async move {
            let key = line
                .split("Bearer ")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap();
            let url = (line.split_whitespace())
                .find(|w| w.starts_with(&gateway))
                .unwrap_or_else(|| panic!("{line}"));
            let answer = client.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(answer.status(), 200, "{line}");
            answer.json::<serde_json::Value>().await.unwrap()
        }
    };
    let token = get(find("/component_access_token")).await;
    assert!(token["component_access_token"].is_string(), "{token}");
    let list = get(find("/authorizers")).await;
    let authorizers = list["authorizers"].as_array().unwrap();
    assert_eq!(authorizers.len(), 2, "{list}");
    assert!(
        authorizers.iter().all(|a| a["state"] == "authorized"),
        "{list}"
    );
    let mut families: Vec<&str> = (authorizers.iter())
        .map(|a| a["family"].as_str().unwrap())
        .collect();
    families.sort();
    assert_eq!(families, ["miniprogram", "official"], "{list}");
    let authorizer = get(find("(an authorizer's")).await;
    assert!(authorizer["access_token"].is_string(), "{authorizer}");

    // An authorizer's push through the platform's message URL, as printed.
    let push = find("/component/wxd0000000000000c1/wx/");
    run_as_printed(&[push], &["An authorizer of the demo platform"]).await;

    // WeChat's release test, as printed, passes.
    let check = find("/sim/release_check");
    let url = (check.split_whitespace())
        .find(|w| w.ends_with("/sim/release_check"))
        .unwrap();
    let body = check.split('\'').nth(1).unwrap();
    let report: serde_json::Value = client
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["passed"], true, "{report:#}");
}

/// Runs each printed `wxgate …` line as printed; each must succeed and say what is expected of it.
async fn run_as_printed(lines: &[String], expected: &[&str]) {
    assert_eq!(lines.len(), expected.len(), "{lines:?}");
    for (line, expected) in lines.iter().zip(expected) {
        // The program too, as printed: `wxgate` only when PATH finds this binary.
        let mut words = line.split_whitespace().map(str::to_owned);
        let program = words.next().unwrap();
        let args: Vec<String> = words.collect();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(&program)
                .args(&args)
                .output()
                .unwrap_or_else(|e| panic!("{program} as printed does not run: {e}"))
        })
        .await
        .unwrap();
        let (ok, out, err) = (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(ok, "{line}\n{out}{err}");
        assert!(out.contains(expected), "{line}\n{out}");
    }
}

/// A config file for `serve`, `token` and `check`, against a simulator.
fn config_file(dir: &std::path::Path, sim_url: &str, secret: &str) -> std::path::PathBuf {
    let key_sha256 = "a".repeat(64);
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = {db:?}\n[upstream]\nbase_url = \"{sim_url}\"\n\
         [[apps]]\nappid = \"wx1\"\nsecret = \"{secret}\"\ntoken_api = \"stable\"\n\
         [[clients]]\nname = \"c\"\nkey_sha256 = \"{key_sha256}\"\napps = [\"*\"]\n",
        db = dir.join("wxgate.db").display().to_string(),
    );
    let path = dir.join("wxgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

// Multi-threaded: the simulator keeps serving while the test waits on a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_then_token_reads_what_the_deployment_stored() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", "s1"),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &sim.url(), "s1");
    let config = config.to_str().unwrap();
    let (ok, _, err) = wxgate(&["token", "wx1", "-c", config]);
    assert!(!ok && err.contains("no access_token stored"), "{err}");

    let mut serve = server(&["serve", "-c", config]);
    let url = serve.url_after("listening on");
    let compat = format!("{url}/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1");
    let served: serde_json::Value = reqwest::get(compat).await.unwrap().json().await.unwrap();
    let token = served["access_token"].as_str().unwrap().to_owned();
    let (ok, out, err) = wxgate(&["token", "wx1", "-c", config]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("access_token={token}\n")), "{out}");
    let (ok, _, err) = wxgate(&["token", "wx9", "-c", config]);
    assert!(!ok && err.contains("wx9 is not configured"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_explains_configuration_and_credential_problems() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", "s1"),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = config_file(dir.path(), &sim.url(), "s1");
    let (ok, out, err) = wxgate(&["check", "-c", good.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ok   wx1: credentials accepted by WeChat"),
        "{out}"
    );

    let bad = config_file(dir.path(), &sim.url(), "wrong");
    let (ok, out, _) = wxgate(&["check", "-c", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("FAIL wx1: WeChat answered errcode 40125"),
        "{out}"
    );
    assert!(out.contains("AppSecret of wx1 is wrong"), "{out}");

    std::fs::write(
        &bad,
        "[server]\nlisten = \"x\"\n[[apps]]\nappid = \"wx1\"\n",
    )
    .unwrap();
    let (ok, _, err) = wxgate(&["check", "-c", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("server.listen") && err.contains("apps[0].secret"),
        "all problems at once: {err}"
    );
}

/// A WeChat server stand-in that answers `success` and keeps each request line.
fn success_server() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/wechat", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            tx.send(request_line).unwrap();
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nsuccess",
                )
                .unwrap();
        }
    });
    (url, rx)
}

#[test]
fn push_signs_like_wechat_and_reports_the_answer() {
    let (url, requests) = success_server();
    let (ok, out, err) = wxgate(&["push", "--url", &url, "--token", "tok", "--text", "你好"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("answer: no reply"), "{out}");
    let line = requests.recv().unwrap();
    let query = line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split_once('?')
        .unwrap()
        .1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in {query}"))
            .to_owned()
    };
    let verified = wxgate_proto::verify_signature(
        "tok",
        &param("timestamp"),
        &param("nonce"),
        &param("signature"),
    );
    assert!(verified.is_ok(), "{line}");
    assert_eq!(param("openid"), "oUser_wxgate_cli_0001");
}

#[test]
fn push_to_a_server_that_is_down_fails_after_its_retries() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/wechat");
    let (ok, out, _) = wxgate(&[
        "push",
        "--url",
        &url,
        "--token",
        "t",
        "--event",
        "CLICK",
        "--event-key",
        "K",
        "--retries",
        "1",
        "--timeout-ms",
        "300",
    ]);
    assert!(!ok);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("delivery ")).count(),
        2,
        "{out}"
    );
    assert!(out.contains("every delivery failed"), "{out}");
    let (ok, _, err) = wxgate(&["push", "--url", &url, "--token", "t"]);
    assert!(!ok && err.contains("--text"), "{err}");
}

#[test]
fn push_as_wecom_sends_only_a_msg_signature_and_an_encrypted_envelope() {
    let (url, requests) = success_server();
    let key = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
    let (ok, out, err) = wxgate(&[
        "push",
        "--url",
        &url,
        "--token",
        "tok",
        "--corpid",
        "ww1436e0e65a779aee",
        "--aes-key",
        key,
        "--agentid",
        "1000002",
        "--text",
        "hi",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("answer: no reply"), "{out}");
    let line = requests.recv().unwrap();
    let query = line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split_once('?')
        .unwrap()
        .1;
    let mut names: Vec<_> = query
        .split('&')
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["msg_signature", "nonce", "timestamp"], "{line}");
    // The URL check with a server that answers `success` instead of the echo fails.
    let (url, _requests) = success_server();
    let (ok, out, _) = wxgate(&[
        "push",
        "--url",
        &url,
        "--token",
        "tok",
        "--corpid",
        "ww1436e0e65a779aee",
        "--aes-key",
        key,
        "--verify-url",
    ]);
    assert!(!ok);
    assert!(
        out.contains("INVALID") && out.contains("not the echo"),
        "{out}"
    );
    // A Mini Program's JSON push: `success` is a valid answer.
    let (url, requests) = success_server();
    let (ok, out, err) = wxgate(&[
        "push",
        "--url",
        &url,
        "--token",
        "tok",
        "--miniprogram",
        "--format",
        "json",
        "--appid",
        "wx00000000000000a1",
        "--aes-key",
        key,
        "--event",
        "debug_demo",
    ]);
    assert!(ok, "{out}{err}");
    assert!(requests.recv().unwrap().contains("encrypt_type=aes"));
}

#[tokio::test]
async fn sim_serves_wecom_apps_and_mini_programs() {
    let mut sim = server(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--app",
        "wxmp:mpsecret:miniprogram",
        "--corp",
        "ww1:1000002:corpsecret",
        "--corp",
        "ww1:contacts:contactsecret",
        "--wecom-expired-40014",
    ]);
    let url = sim.url_after("listening on");
    let get = |path: String| async move {
        reqwest::get(path)
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let wecom = get(format!(
        "{url}/cgi-bin/gettoken?corpid=ww1&corpsecret=corpsecret"
    ))
    .await;
    assert_eq!(wecom["errcode"], 0, "{wecom}");
    let contacts = get(format!(
        "{url}/cgi-bin/gettoken?corpid=ww1&corpsecret=contactsecret"
    ))
    .await;
    assert_ne!(contacts["access_token"], wecom["access_token"]);
    let mp = get(format!(
        "{url}/cgi-bin/token?grant_type=client_credential&appid=wxmp&secret=mpsecret"
    ))
    .await;
    let ticket = get(format!(
        "{url}/cgi-bin/ticket/getticket?type=jsapi&access_token={}",
        mp["access_token"].as_str().unwrap()
    ))
    .await;
    assert_eq!(ticket["errcode"], 48001, "{ticket}");
    let stats = get(format!("{url}/sim/stats")).await;
    assert_eq!(stats["wecom"]["ww1/1000002"]["tokens_issued"], 1, "{stats}");
    assert_eq!(
        stats["wecom"]["ww1/contacts"]["tokens_issued"], 1,
        "{stats}"
    );
    assert_eq!(stats["apps"]["wxmp"]["tokens_issued"], 1, "{stats}");
    assert_eq!(
        stats["apps"].as_object().unwrap().len(),
        1,
        "no demo account: {stats}"
    );
}

#[test]
fn sim_rejects_a_malformed_corp_or_app_type() {
    let (ok, _, err) = wxgate(&["sim", "--corp", "ww1:1000002"]);
    assert!(!ok);
    assert!(err.contains("CORPID:AGENT:SECRET"), "{err}");
    let (ok, _, err) = wxgate(&["sim", "--app", "wx1:s:game"]);
    assert!(!ok);
    assert!(err.contains("miniprogram"), "{err}");
}

/// Four real `wxgate serve` processes on one Redis, 1,000 concurrent cold
/// requests spread over them: one upstream token call in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_serve_processes_on_one_redis_make_one_upstream_call() {
    let redis = wxgate_testkit::RedisServer::start();
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", "s1"),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = "cluster-client-key";
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"redis\"\nurl = \"{}\"\n\
         [upstream]\nbase_url = \"{}\"\n[[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\ntoken_api = \"classic\"\n\
         [[clients]]\nname = \"c\"\nkey_sha256 = \"{}\"\napps = [\"*\"]\n",
        redis.url(),
        sim.url(),
        sha256_hex(key),
    );
    let config = dir.path().join("wxgate.toml");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let mut servers: Vec<Server> = (0..4).map(|_| server(&["serve", "-c", config])).collect();
    let urls: Vec<String> = servers
        .iter_mut()
        .map(|s| s.url_after("listening on"))
        .collect();
    let client = reqwest::Client::new();
    let calls = (0..1000).map(|i| {
        let url = format!("{}/v1/apps/wx1/access_token", urls[i % 4]);
        let client = client.clone();
        async move {
            let body: serde_json::Value = client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"))
                .to_owned()
        }
    });
    let tokens: std::collections::HashSet<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        sim.stats().app("wx1").calls("/cgi-bin/token"),
        1,
        "one upstream call for four processes"
    );
}

pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// `wxgate serve` with app `wx1` (secret `s1`, classic) against the simulator
/// at `sim` and admin key `admin_key`: its directory, configuration file,
/// process and URL.
fn serve_wx1(sim: &str, admin_key: &str) -> (tempfile::TempDir, String, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n\
         [upstream]\nbase_url = \"{sim}\"\n[admin]\nkey = \"{admin_key}\"\n\
         [[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\ntoken_api = \"classic\"\n",
    );
    let config = dir.path().join("wxgate.toml");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut serve = server(&["serve", "-c", &config]);
    let url = serve.url_after("listening on");
    (dir, config, serve, url)
}

/// Issue #17: `wxgate revoke APPID` asks the running deployment, with the
/// admin key from its configuration, and says what was done; an unknown app
/// is refused with the gateway's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_asks_the_running_deployment() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", "s1"),
    ]))
    .await
    .unwrap();
    let (_dir, config, _serve, url) = serve_wx1(&sim.url(), "cli-revoke-admin-key-0001");
    let run = |appid: &'static str| {
        let (config, url) = (config.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            wxgate(&["revoke", appid, "-c", &config, "--url", &url])
        })
    };
    let (ok, stdout, stderr) = run("wx1").await.unwrap();
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("(classic token)"), "{stdout}");
    assert!(stdout.contains("5-minute grace"), "{stdout}");
    assert_eq!(
        sim.stats().app("wx1").calls("/cgi-bin/token"),
        2,
        "the warm-up and the revocation's fetch"
    );
    let (ok, _, stderr) = run("wxnotconfigured").await.unwrap();
    assert!(!ok);
    assert!(stderr.contains("revoke refused (HTTP 404)"), "{stderr}");
}

/// Issue #24, item 10: an admin key on the command line is in the process
/// list of every user of the host. `--admin-key KEY` is refused before
/// anything is asked, with what to use instead; `--admin-key-file` and
/// `WXGATE_ADMIN_KEY` work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_key_is_never_taken_from_the_command_line() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", "s1"),
    ]))
    .await
    .unwrap();
    let key = "cli-argv-admin-key-0001";
    let (dir, _config, _serve, url) = serve_wx1(&sim.url(), key);
    let key_file = dir.path().join("admin.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let run = |args: Vec<String>, env_key: Option<&'static str>| {
        tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wxgate"));
            command.args(&args).env_remove("WXGATE_ADMIN_KEY");
            if let Some(key) = env_key {
                command.env("WXGATE_ADMIN_KEY", key);
            }
            let out = command.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.success(), stderr)
        })
    };
    let revoke = |extra: &[&str]| {
        let mut args: Vec<String> = ["revoke", "wx1", "--url", &url]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let fetches = || sim.stats().app("wx1").calls("/cgi-bin/token");
    wxgate_testkit::wait_until(
        std::time::Duration::from_secs(10),
        "the warm-up fetch",
        async || fetches() >= 1,
    )
    .await;

    for args in [
        revoke(&["--admin-key", key]),
        revoke(&[&format!("--admin-key={key}")]),
    ] {
        let (ok, stderr) = run(args, None).await.unwrap();
        assert!(!ok, "{stderr}");
        assert!(stderr.contains("WXGATE_ADMIN_KEY"), "{stderr}");
        assert!(stderr.contains("--admin-key-file"), "{stderr}");
        assert!(!stderr.contains(key), "the key is not repeated: {stderr}");
    }
    // Even when the environment holds the same key: the one on argv is refused.
    let (ok, stderr) = run(revoke(&["--admin-key", key]), Some(key)).await.unwrap();
    assert!(!ok, "{stderr}");
    assert_eq!(fetches(), 1, "nothing was revoked");

    let (ok, stderr) = run(
        revoke(&["--admin-key-file", key_file.to_str().unwrap()]),
        None,
    )
    .await
    .unwrap();
    assert!(ok, "{stderr}");
    assert_eq!(fetches(), 2, "revoked with the key from the file");
    // `wxgate rid` the same way: the key from the environment is let in (WeChat does not know this rid).
    let rid = [
        "rid",
        "0a0b0c0d-00000000-00000000",
        "--app",
        "wx1",
        "--url",
        &url,
    ];
    let rid: Vec<String> = rid.iter().map(|a| (*a).to_owned()).collect();
    let (ok, stderr) = run(rid.clone(), Some(key)).await.unwrap();
    assert!(!ok && stderr.contains("errcode 76001"), "{stderr}");
    let mut argv = rid;
    argv.extend(["--admin-key".to_owned(), key.to_owned()]);
    let (ok, stderr) = run(argv, None).await.unwrap();
    assert!(!ok && !stderr.contains("76001"), "{stderr}");
    assert!(stderr.contains("--admin-key-file"), "{stderr}");
}

/// Issue #17: `wxgate rid RID --app APPID` shows what WeChat recorded of a
/// failed call, through the running deployment; another app's rid is
/// refused with WeChat's errcode and wxgate's hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rid_looks_a_failed_call_up_through_the_deployment() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", "s1"),
        wxgate_sim::SimApp::new("wx2", "s2"),
    ]))
    .await
    .unwrap();
    let (_dir, config, _serve, url) = serve_wx1(&sim.url(), "cli-rid-admin-key-0001");
    let http = reqwest::Client::new();
    // A failed call by wx2 (not managed here): its rid is not wx1's to see.
    let token: serde_json::Value = http
        .get(format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid=wx2&secret=s2",
            sim.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed: serde_json::Value = http
        .get(format!(
            "{}/cgi-bin/ticket/getticket?access_token={}&type=nonsense",
            sim.url(),
            token["access_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(failed["errcode"], 40097, "{failed}");
    let rid = failed["errmsg"]
        .as_str()
        .unwrap()
        .rsplit_once("rid: ")
        .unwrap()
        .1
        .to_owned();
    let run = |app: &'static str, rid: String| {
        let (config, url) = (config.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            wxgate(&["rid", &rid, "--app", app, "-c", &config, "--url", &url])
        })
    };
    let (ok, _, stderr) = run("wx1", rid.clone()).await.unwrap();
    assert!(!ok);
    assert!(stderr.contains("errcode 76003"), "{stderr}");
    assert!(stderr.contains("hint: only the account"), "{stderr}");

    // wx1's own failed call, made with the token wxgate holds.
    let held: serde_json::Value = http
        .get(format!(
            "{url}/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed: serde_json::Value = http
        .get(format!(
            "{}/cgi-bin/ticket/getticket?access_token={}&type=nonsense",
            sim.url(),
            held["access_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rid = failed["errmsg"]
        .as_str()
        .unwrap()
        .rsplit_once("rid: ")
        .unwrap()
        .1
        .to_owned();
    let (ok, stdout, stderr) = run("wx1", rid).await.unwrap();
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("response_body"), "{stdout}");
    assert!(stdout.contains("40097"), "{stdout}");
    assert!(stdout.contains("type=nonsense"), "{stdout}");
}

/// A user of `wxgate dev` has no configuration file: `--url` and
/// `WXGATE_ADMIN_KEY` are enough for `wxgate rid`, and without either the
/// error says what to give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rid_needs_no_configuration_file_given_the_url_and_the_admin_key() {
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new("wx1", "s1"),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n\
         [upstream]\nbase_url = \"{}\"\n[admin]\nkey = \"cli-rid-admin-key-0002\"\n\
         [[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\ntoken_api = \"classic\"\n",
        sim.url(),
    );
    let config = dir.path().join("wxgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut serve = server(&["serve", "-c", config.to_str().unwrap()]);
    let url = serve.url_after("listening on");
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |with_key: bool| {
        let (url, cwd) = (url.clone(), elsewhere.path().to_owned());
        tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wxgate"));
            command
                .args([
                    "rid",
                    "0a0b0c0d-00000000-00000000",
                    "--app",
                    "wx1",
                    "--url",
                    &url,
                ])
                .current_dir(cwd)
                .env_remove("WXGATE_ADMIN_KEY");
            if with_key {
                command.env("WXGATE_ADMIN_KEY", "cli-rid-admin-key-0002");
            }
            let out = command.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.success(), stderr)
        })
    };
    // The key, no file: WeChat is asked (and does not know this rid).
    let (ok, stderr) = run(true).await.unwrap();
    assert!(!ok);
    assert!(stderr.contains("errcode 76001"), "{stderr}");
    // Neither: the error says what to give.
    let (ok, stderr) = run(false).await.unwrap();
    assert!(!ok);
    assert!(stderr.contains("WXGATE_ADMIN_KEY"), "{stderr}");
}
