//! The status page of a real `wxgate serve` process, driven in headless
//! Chromium by `tests/browser/admin.mjs` (login, app cards, live countdowns,
//! a revoke auto-posted by a page on another port refused, an Open Platform
//! platform with an authorizer, a full-page screenshot at `target/admin.png`).

use std::path::{Path, PathBuf};
use std::process::Command;

use wxgate_testkit::process::Server;

use crate::sha256_hex;

const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "scripts/test installs them: Chromium through apt-get, \
                       the browser test's npm package with `npm ci --prefix tests/browser`";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Fails (never skips) when node, the npm package or Chromium is missing.
fn require_browser_tools(root: &Path) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "node is missing; {INSTALL}"
    );
    let package = root.join("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        package.exists(),
        "{} is missing; {INSTALL}",
        package.display()
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; {INSTALL}"
    );
}

/// `target/admin.png`, beside the `debug` folder that holds the binary under test.
fn screenshot_path() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_wxgate"));
    bin.ancestors().nth(2).unwrap().join("admin.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_logs_in_and_counts_down_in_a_real_browser() {
    let root = repo_root();
    require_browser_tools(&root);
    let apps = ["wxa1b2c3d4e5f60001", "wxa1b2c3d4e5f60002"];
    // And a WeCom app: its card and timeline too (its owner id has a slash).
    let (corp, agent) = ("wwa1b2c3d4e5f60003", "1000002");
    let mut sim_config = wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new(apps[0], "s1"),
        wxgate_sim::SimApp::new(apps[1], "s2"),
    ]);
    sim_config
        .corps
        .push(wxgate_sim::SimCorpApp::new(corp, agent, "s3"));
    // And an Open Platform platform, an Official Account authorizing it.
    let (component, authorizer) = ("wxc1b2c3d4e5f60004", "wxa1b2c3d4e5f60005");
    let (component_token, component_key) = (
        "platform-token",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    );
    sim_config.components.push(wxgate_sim::SimComponent::new(
        component,
        "s4",
        component_token,
        component_key,
        None,
    ));
    let sim = wxgate_sim::Simulator::spawn(sim_config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (client_key, admin_key) = ("admin-test-client-key", "admin-test-key-5f2c");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = {db:?}\n[upstream]\nbase_url = \"{sim}\"\n\
         wecom_base_url = \"{sim}\"\n\
         [admin]\nkey_env = \"WXGATE_ADMIN_KEY\"\n\
         [[apps]]\nappid = \"{a0}\"\nsecret = \"s1\"\ntoken_api = \"stable\"\ntoken = \"push-token\"\n\
         [[apps]]\nappid = \"{a1}\"\nsecret = \"s2\"\ntoken_api = \"classic\"\n\
         [[wecom]]\ncorpid = \"{corp}\"\nagentid = {agent}\nsecret = \"s3\"\n\
         [[components]]\ncomponent_appid = \"{component}\"\nsecret = \"s4\"\n\
         token = \"{component_token}\"\nencoding_aes_key = \"{component_key}\"\n\
         [[clients]]\nname = \"c\"\nkey_sha256 = \"{hash}\"\napps = [\"*\"]\n",
        db = dir.path().join("wxgate.db").display().to_string(),
        sim = sim.url(),
        a0 = apps[0],
        a1 = apps[1],
        hash = sha256_hex(client_key),
    );
    let config = dir.path().join("wxgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut serve = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", config.to_str().unwrap()],
        &[("WXGATE_ADMIN_KEY", admin_key)],
        None,
    );
    let url = serve.url_after("listening on");

    // The platform's first ticket, then an authorization.
    let http = reqwest::Client::new();
    sim.set_component_push_url(component, &format!("{url}/component/{component}"))
        .unwrap();
    sim.push_due_tickets().await;
    let mut served = false;
    for _ in 0..100 {
        let answer = http
            .get(format!(
                "{url}/v1/components/{component}/component_access_token"
            ))
            .bearer_auth(client_key)
            .send()
            .await
            .unwrap();
        if answer.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served, "the platform's ticket never reached the gateway");
    let answer = http
        .post(format!("{}/sim/authorize", sim.url()))
        .json(&serde_json::json!({
            "component_appid": component, "authorizer_appid": authorizer, "type": "official"
        }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let mut served = false;
    for _ in 0..100 {
        let answer = http
            .get(format!("{url}/v1/apps/{authorizer}/access_token"))
            .bearer_auth(client_key)
            .send()
            .await
            .unwrap();
        if answer.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served, "the authorizer is not served");

    // A token for each app, so that each card has a countdown.
    for appid in apps {
        let response = http
            .get(format!("{url}/v1/apps/{appid}/access_token"))
            .bearer_auth(client_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    let screenshot = screenshot_path();
    let mut node = Command::new("node");
    node.arg(root.join("tests/browser/admin.mjs"))
        .args(["--url", &url, "--screenshot", screenshot.to_str().unwrap()])
        // The revoke button is tried on the last one: an Official Account's.
        .args(["--app", &format!("{corp}/{agent}")])
        .args(apps.iter().flat_map(|appid| ["--app", appid]))
        .args(["--platform", &format!("{component}:{authorizer}")])
        .env("WXGATE_ADMIN_KEY", admin_key);
    let out = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("running node");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}{stderr}",
        out.status
    );
    eprintln!("{stdout}");
    // The revoke button really replaced the last (classic) app's token, and
    // the forged post from another port before it did not (that would be 3).
    assert_eq!(sim.stats().app(apps[1]).tokens_issued, 2, "{stdout}");
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}
