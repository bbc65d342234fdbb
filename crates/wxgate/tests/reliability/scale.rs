//! Issue #24 item 10c: a configuration of 200,000 apps starts and serves
//! under a 1.5 GB address-space limit (`prlimit --as`). Before, it aborted
//! out of memory: every app had a slot and a refresher task for each of its
//! three credentials, and 200,000 warm-up fetches were in flight at once.
//! Now a credential nobody keeps warm gets its slot when first asked for, and
//! at most 64 renewals run at once.

use std::fmt::Write as _;
use std::time::Duration;

use wxgate_testkit::process::Server;

use crate::figure;

const APPS: usize = 200_000;
/// 1.5 GiB of address space, as the limit.
const LIMIT: &str = "--as=1610612736";

/// The peak resident size of `pid`, kB (`VmHWM`).
fn peak_rss_kb(pid: u32) -> u64 {
    crate::status_kib(pid, "VmHWM")
}

#[tokio::test]
async fn two_hundred_thousand_apps_start_and_serve_under_a_one_and_a_half_gigabyte_limit() {
    let _alone = crate::EXCLUSIVE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Every app's warm-up fetch fails at once (nothing listens on port 1):
    // the failures' records and backoffs are held too, as in an outage.
    let mut config = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n\
         [upstream]\nbase_url = \"http://127.0.0.1:1\"\nprobe_interval_secs = 0\n",
    );
    for i in 0..APPS {
        writeln!(
            config,
            "[[apps]]\nappid = \"wx{i:016x}\"\nsecret = \"secret-{i:026}\""
        )
        .unwrap();
    }
    let path = dir.path().join("wxgate.toml");
    std::fs::write(&path, config).unwrap();
    let mut server = Server::start(
        "prlimit",
        &[
            LIMIT,
            env!("CARGO_BIN_EXE_wxgate"),
            "serve",
            "-c",
            path.to_str().unwrap(),
        ],
        &[("RUST_LOG", "off")],
        None,
    );
    let url = server.url_after("listening");
    let pid = server.child.id();
    let http = reqwest::Client::new();
    // Serving, and still alive once every app's warm-up has had its first
    // try (each is then a reason /readyz counts, none still warming up).
    let health = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let failed = wxgate_testkit::wait_for(
        Duration::from_secs(300),
        "every app's warm-up tried",
        async || {
            let answer = http.get(format!("{url}/readyz")).send().await.ok()?;
            let body: serde_json::Value = answer.json().await.ok()?;
            let total = body["reasons_total"].as_u64()?;
            let failed = total - body["warming_up"].as_u64()?;
            (failed >= APPS as u64).then_some(failed)
        },
    )
    .await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "wxgate exited under the limit"
    );
    let peak = peak_rss_kb(pid);
    figure(
        "scale",
        format!(
            "{APPS} apps: serving under prlimit {LIMIT}, peak RSS {} MB, {failed} warm-ups \
             tried (and failed: no upstream)",
            peak / 1024
        ),
    );
    assert!(peak < 1_572_864, "peak RSS {peak} kB");
}
