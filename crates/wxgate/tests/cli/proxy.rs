//! A real `wxgate serve` process proxying 20 MB each way, with its memory measured.

use sha2::{Digest, Sha256};

use crate::{server, sha256_hex};

/// The peak and current resident set of a process, KiB (`VmHWM`, `VmRSS`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

const MB20: usize = 20_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_megabytes_up_and_down_pass_through_in_bounded_memory() {
    let mut config = wxgate_sim::SimConfig::with_apps(vec![wxgate_sim::SimApp::new("wx1", "s1")]);
    config.media_max_bytes = Some(32 << 20);
    let sim = wxgate_sim::Simulator::spawn(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = "proxy-client-key";
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = {db:?}\n[upstream]\nbase_url = \"{sim}\"\n\
         [[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\n\
         [[clients]]\nname = \"c\"\nkey_sha256 = \"{hash}\"\napps = [\"wx1\"]\n",
        db = dir.path().join("wxgate.db").display().to_string(),
        sim = sim.url(),
        hash = sha256_hex(key),
    );
    let config = dir.path().join("wxgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut serve = server(&["serve", "-c", config.to_str().unwrap()]);
    let url = serve.url_after("listening on");
    let pid = serve.child.id();
    let http = reqwest::Client::new();

    // Warm up: a token, a small proxied call.
    let warm = http
        .get(format!("{url}/proxy/wx1/cgi-bin/get_api_domain_ip"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let (idle_peak, idle_rss) = memory_kib(pid);

    let data: Vec<u8> = (0..MB20).map(|i| (i * 31 % 251) as u8).collect();
    let digest = hex::encode(Sha256::digest(&data));
    let boundary = "wxgate-proxy-test-boundary";
    let upload = http
        .post(format!("{url}/proxy/wx1/cgi-bin/media/upload?type=image"))
        .bearer_auth(key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(wxgate_testkit::multipart(boundary, "big.jpg", &data))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    let uploaded: serde_json::Value = upload.json().await.unwrap();
    let media_id = uploaded["media_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{uploaded}"));
    drop(data);

    let mut download = http
        .get(format!(
            "{url}/proxy/wx1/cgi-bin/media/get?media_id={media_id}"
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "image/jpeg");
    let mut hasher = Sha256::new();
    let mut received = 0;
    while let Some(chunk) = download.chunk().await.unwrap() {
        received += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(received, MB20);
    assert_eq!(hex::encode(hasher.finalize()), digest);

    let (peak, rss) = memory_kib(pid);
    let growth = peak.saturating_sub(idle_peak);
    eprintln!(
        "wxgate serve memory: idle peak {idle_peak} KiB (rss {idle_rss}), after 20 MB up + 20 MB down \
         peak {peak} KiB (rss {rss}): +{growth} KiB"
    );
    assert!(
        growth < 8 * 1024,
        "peak RSS grew by {growth} KiB moving 40 MB; bodies must stream"
    );
    assert_eq!(sim.stats().app("wx1").calls("/cgi-bin/stable_token"), 1);
}
