//! The SQLite file missing or corrupt at start: wxgate starts anyway. A
//! corrupt file is moved aside (logged as an error, kept for inspection) and
//! the credentials are fetched again, one call per app.

use wxgate_sim::{SimApp, SimConfig, Simulator};
use wxgate_testkit::process::Server;

use crate::figure;

const KEY: &str = "sqlite-client-key";

fn config(dir: &std::path::Path, sim: &str) -> std::path::PathBuf {
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(KEY.as_bytes()));
    let path = dir.join("wxgate.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = {db:?}\n[upstream]\nbase_url = \"{sim}\"\n\
             [[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\n\
             [[clients]]\nname = \"c\"\nkey_sha256 = \"{hash}\"\napps = [\"*\"]\n",
            db = dir.join("wxgate.db").display().to_string(),
        ),
    )
    .unwrap();
    path
}

async fn serve_and_fetch(config: &std::path::Path, logs: &std::path::Path) -> (Server, String) {
    let mut server = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", config.to_str().unwrap()],
        &[],
        Some(logs),
    );
    let url = server.url_after("listening on");
    let response = reqwest::Client::new()
        .get(format!("{url}/v1/apps/wx1/access_token"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    (server, body["access_token"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_store_file_costs_one_fetch_and_loses_nothing_else() {
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &sim.url());
    let db = dir.path().join("wxgate.db");
    let logs = dir.path().join("stderr.log");

    // Missing: created, one fetch.
    let (server, first) = serve_and_fetch(&config, &logs).await;
    drop(server);
    assert!(db.exists());
    // Restarted on the intact file: no fetch.
    let (server, again) = serve_and_fetch(&config, &logs).await;
    drop(server);
    assert_eq!(again, first);
    let calls = || sim.stats().app("wx1").calls("/cgi-bin/stable_token");
    assert_eq!(calls(), 1);

    // Corrupt: overwritten with garbage (a half-written copy, a disk error…).
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::write(&db, b"this is not a database, it is garbage ".repeat(300)).unwrap();
    let (server, after) = serve_and_fetch(&config, &logs).await;
    drop(server);
    let log = std::fs::read_to_string(&logs).unwrap();
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("wxgate.db.corrupt-"))
        .collect();
    figure(
        "sqlite",
        format!(
            "missing file: created, 1 fetch; intact restart: 0 fetches; corrupt file: moved aside to {aside:?}, \
             {} fetch, the token served again works: {}",
            calls() - 1,
            after == first
        ),
    );
    assert_eq!(aside.len(), 1, "the corrupt file is kept for inspection");
    assert!(log.contains("moved it aside"), "{log}");
    // stable_token hands out the same token again: nothing a business server holds breaks.
    assert_eq!(after, first);
    assert_eq!(calls(), 2, "one fetch to start over");
}
