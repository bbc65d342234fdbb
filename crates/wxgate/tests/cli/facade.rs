//! A real `wxgate serve` in front of the simulator, and unmodified SDKs from
//! the registries pointed at it by their base URL alone (issue #18): each gets
//! the token, a JS-SDK ticket, a customer-service message and a 150 KB media
//! upload and download through, with no token fetch of its own.

use crate::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_sdks_work_through_wxgate_serve() {
    let (appid, secret) = ("wx1", "s1");
    let config = wxgate_sim::SimConfig::with_apps(vec![wxgate_sim::SimApp::new(appid, secret)]);
    let sim = wxgate_sim::Simulator::spawn(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = {db:?}\n[upstream]\nbase_url = \"{sim}\"\n\
         [[apps]]\nappid = \"{appid}\"\nsecret = \"{secret}\"\n",
        db = dir.path().join("wxgate.db").display().to_string(),
        sim = sim.url(),
    );
    let config = dir.path().join("wxgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut serve = server(&["serve", "-c", config.to_str().unwrap()]);
    let url = serve.url_after("listening on");
    let http = reqwest::Client::new();
    let token_url =
        format!("{url}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}");
    let shared: serde_json::Value = http
        .get(&token_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shared = shared["access_token"].as_str().unwrap().to_owned();
    // Token fetches of either API (wxgate's default is stable_token).
    let fetches = |stats: &wxgate_sim::Stats| {
        let app = stats.app(appid);
        app.calls("/cgi-bin/token") + app.calls("/cgi-bin/stable_token")
    };
    let token_fetches = fetches(&sim.stats());
    assert_eq!(token_fetches, 1, "wxgate's own warm-up fetch");

    for &(name, program, script) in wxgate_testkit::sdk::CLIENTS {
        let sends = sim.stats().app(appid).calls("/cgi-bin/message/custom/send");
        let args = vec![url.clone(), appid.into(), secret.into()];
        let answer = wxgate_testkit::sdk::run(program, script, args).await;
        assert_eq!(answer["token"], shared.as_str(), "{name}: {answer}");
        assert!(
            answer["ticket"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: {answer}"
        );
        assert_eq!(answer["sent"]["errcode"], 0, "{name}: {answer}");
        assert_eq!(answer["size"], 150_000, "{name}: {answer}");
        assert_eq!(answer["same"], true, "{name}: the download is the upload");
        let stats = sim.stats();
        assert_eq!(fetches(&stats), token_fetches, "{name} fetched no token");
        assert_eq!(
            stats.app(appid).calls("/cgi-bin/message/custom/send"),
            sends + 1,
            "{name}"
        );
        assert_eq!(
            stats.invalid_token_calls(),
            0,
            "{name}: the current token on every call"
        );
    }
}
