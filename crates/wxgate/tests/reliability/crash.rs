//! `kill -9` of an instance in the middle of a refresh: it holds the lease,
//! WeChat has answered, and its write to Redis is stuck. The lease expires by
//! itself; then exactly one instance refreshes; no token is served invalid.

use std::io::Write;
use std::time::Duration;

use wxgate_sim::{Fault, FaultAction, SimApp, SimConfig, Simulator};
use wxgate_testkit::process::Server;
use wxgate_testkit::RedisServer;

use crate::figure;

const KEY: &str = "crash-client-key";

fn serve(config: &std::path::Path) -> (Server, String) {
    let mut server = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", config.to_str().unwrap()],
        &[],
        None,
    );
    let url = server.url_after("listening on");
    (server, url)
}

/// Pauses every write command on Redis for `ms` (reads still answer).
fn pause_writes(redis: &RedisServer, ms: u64) {
    let port = redis
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    write!(stream, "CLIENT PAUSE {ms} WRITE\r\n").unwrap();
    let mut answer = [0u8; 5];
    std::io::Read::read_exact(&mut stream, &mut answer).unwrap();
    assert_eq!(&answer, b"+OK\r\n");
}

async fn token(http: &reqwest::Client, url: &str) -> (u16, Option<String>) {
    let response = http
        .get(format!("{url}/v1/apps/wx1/access_token"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["access_token"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_refresh_loses_nothing() {
    let redis = RedisServer::start();
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxgate.toml");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(KEY.as_bytes()));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"redis\"\nurl = \"{}\"\n\
             [upstream]\nbase_url = \"{}\"\n[[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\ntoken_api = \"classic\"\n\
             [[clients]]\nname = \"c\"\nkey_sha256 = \"{hash}\"\napps = [\"*\"]\n",
            redis.url(),
            sim.url()
        ),
    )
    .unwrap();
    // A's warm-up takes the lease and asks WeChat, which answers after 1.5 s;
    // meanwhile Redis stops taking writes, so A's write waits; A is killed
    // before it lands. B, started just after, waits on A's lease.
    sim.add_fault(Fault {
        path: Some("/cgi-bin/token".into()),
        action: FaultAction::Delay { ms: 1500 },
        count: Some(1),
        rate: None,
    });
    let (mut a, a_url) = serve(&config);
    // A asks WeChat only once it holds the lease.
    wxgate_testkit::wait_until(
        Duration::from_secs(10),
        "A's warm-up asking WeChat",
        async || sim.stats().endpoint_calls("/cgi-bin/token") >= 1,
    )
    .await;
    let (_b, b_url) = serve(&config);
    let http = reqwest::Client::new();
    let cold = tokio::spawn({
        let (http, url) = (http.clone(), a_url.clone());
        async move {
            let sent = http
                .get(format!("{url}/v1/apps/wx1/access_token"))
                .bearer_auth(KEY)
                .send();
            sent.await.is_err()
        }
    });
    // Before WeChat answers A (1.5 s after it asked): A's write will wait.
    pause_writes(&redis, 3000);
    wxgate_testkit::wait_until(Duration::from_secs(5), "WeChat answering A", async || {
        sim.stats().app("wx1").tokens_issued >= 1
    })
    .await;
    assert_eq!(sim.stats().app("wx1").tokens_issued, 1, "WeChat answered A");
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5));
    assert!(cold.await.unwrap(), "A died before answering");
    let killed_at = tokio::time::Instant::now();

    // B, and A restarted, both want the token: the dead lease blocks them
    // until it expires (30 s), then exactly one of them refreshes.
    let (_a2, a2_url) = serve(&config);
    let (from_b, from_a2) = tokio::join!(token(&http, &b_url), token(&http, &a2_url));
    let waited = killed_at.elapsed();
    let (status_b, token_b) = from_b;
    let (status_a2, token_a2) = from_a2;
    assert_eq!((status_b, status_a2), (200, 200));
    assert_eq!(token_b, token_a2, "both serve the one new token");
    let token = token_b.unwrap();
    let business: serde_json::Value = http
        .get(format!(
            "{}/cgi-bin/get_api_domain_ip?access_token={token}",
            sim.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        business["ip_list"].is_array(),
        "the served token works: {business}"
    );
    let stats = sim.stats().app("wx1");
    figure(
        "crash",
        format!(
            "kill -9 between WeChat's answer and the Redis write: served again after {:.1} s (the lease's 30 s), \
             token calls {} (the lost one + exactly 1 refresh), invalid-token uses {}",
            waited.as_secs_f64(),
            stats.calls("/cgi-bin/token"),
            stats.invalid_token_calls
        ),
    );
    assert_eq!(
        stats.calls("/cgi-bin/token"),
        2,
        "one refresh after the lease expired"
    );
    assert_eq!(stats.invalid_token_calls, 0);
    assert!(waited < Duration::from_secs(40));
}
