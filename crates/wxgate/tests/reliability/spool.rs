//! Large uploads through the proxy are spooled to anonymous temporary files:
//! `kill -9` in the middle of one leaves nothing in `$TMPDIR`, uploads in
//! flight together hold at most `proxy.max_spool_bytes`, one caller at most
//! its share of it, and a caller not yet known holds none.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use wxgate_sim::{SimApp, SimConfig, Simulator};
use wxgate_testkit::process::Server;

use crate::figure;

const KEY: &str = "spool-client-key";
/// A second business server's key.
const OTHER_KEY: &str = "spool-other-client-key";

fn config(dir: &std::path::Path, sim: &str, proxy: &str) -> std::path::PathBuf {
    let hash = |key: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
    let path = dir.join("wxgate.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n[upstream]\nbase_url = \"{sim}\"\n\
             [proxy]\n{proxy}\n\
             [[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\n\
             [[clients]]\nname = \"c\"\nkey_sha256 = \"{}\"\napps = [\"*\"]\n\
             [[clients]]\nname = \"other\"\nkey_sha256 = \"{}\"\napps = [\"*\"]\n",
            hash(KEY),
            hash(OTHER_KEY),
        ),
    )
    .unwrap();
    path
}

/// Starts an upload of `declared` bytes, sends `sent` of them and keeps the connection open.
async fn stalled_upload(url: &str, declared: usize, sent: usize) -> tokio::net::TcpStream {
    stalled_request(
        url,
        "/proxy/wx1/cgi-bin/media/upload?type=image",
        KEY,
        declared,
        sent,
    )
    .await
}

/// Starts a POST to `target` declaring `declared` bytes, with `key` as the
/// client key (none when empty), sends `sent` of them and keeps the
/// connection open.
async fn stalled_request(
    url: &str,
    target: &str,
    key: &str,
    declared: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = if key.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {key}\r\n")
    };
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\n\
         {auth}Content-Type: application/octet-stream\r\n\
         Content-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'u'; sent]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// The open files of process `pid` whose path is under `dir` (deleted ones included).
fn open_files_under(pid: u32, dir: &std::path::Path) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .map(|target| target.display().to_string())
        .collect()
}

async fn spool_bytes(http: &reqwest::Client, url: &str) -> u64 {
    wxgate_testkit::metric(http, url, "wxgate_proxy_spool_bytes").await as u64
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_spooled_upload_leaves_no_file_behind() {
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("tmp");
    std::fs::create_dir(&spool_dir).unwrap();
    let config = config(dir.path(), &sim.url(), "");
    let mut server = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", config.to_str().unwrap()],
        &[("TMPDIR", spool_dir.to_str().unwrap())],
        None,
    );
    let url = server.url_after("listening on");
    let _upload = stalled_upload(&url, 8 << 20, 1 << 20).await;
    // Wait until the gateway has its spool file open.
    let pid = server.child.id();
    let open = wxgate_testkit::wait_for(
        Duration::from_secs(5),
        "the upload was never spooled",
        async || Some(open_files_under(pid, &spool_dir)).filter(|open| !open.is_empty()),
    )
    .await;
    assert!(!open.is_empty(), "the upload was never spooled");
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(10));
    let left: Vec<_> = std::fs::read_dir(&spool_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    figure(
        "spool",
        format!(
            "kill -9 mid-upload (spool file open as {open:?}): {} files left in $TMPDIR",
            left.len()
        ),
    );
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_spool_budget_are_refused_with_a_hint_and_forward_nothing() {
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &sim.url(),
        "max_request_bytes = 1000000\nmax_spool_bytes = 1500000",
    );
    let mut server = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", config.to_str().unwrap()],
        &[],
        None,
    );
    let url = server.url_after("listening on");
    let http = reqwest::Client::new();
    // A well-formed upload, which the simulator reads whole before answering.
    let upload = |size: usize| {
        http.post(format!("{url}/proxy/wx1/cgi-bin/media/upload?type=image"))
            .bearer_auth(KEY)
            .header("content-type", "multipart/form-data; boundary=spool-test")
            .body(wxgate_testkit::multipart(
                "spool-test",
                "p.jpg",
                &vec![b'x'; size],
            ))
            .send()
    };
    // One upload holds 1 000 000 of the 1 500 000 bytes while it trickles in.
    let stalled = stalled_upload(&url, 1_000_000, 300_000).await;
    wxgate_testkit::wait_until(
        Duration::from_secs(5),
        "the stalled upload spooled",
        async || spool_bytes(&http, &url).await > 0,
    )
    .await;
    assert_eq!(spool_bytes(&http, &url).await, 1_000_000);

    // Refused on its declared length, before its body is read: the caller hears
    // at once (and with `Expect: 100-continue` never sends the body).
    let mut refused = stalled_upload(&url, 800_000, 0).await;
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_string(&mut refused, &mut answer),
    )
    .await
    .expect("answered without waiting for the body")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["errcode"], 45011, "{body}");
    assert!(
        body["hint"].as_str().unwrap().contains("max_spool_bytes"),
        "{body}"
    );
    assert_eq!(
        sim.stats().endpoint_calls("/cgi-bin/media/upload"),
        0,
        "nothing forwarded"
    );
    // A small one still goes through (kept in memory).
    assert_eq!(upload(10_000).await.unwrap().status(), 200);

    // The stalled upload gives up: its bytes come back, and the large one passes.
    drop(stalled);
    wxgate_testkit::wait_until(
        Duration::from_secs(5),
        "the stalled upload's bytes given back",
        async || spool_bytes(&http, &url).await == 0,
    )
    .await;
    assert_eq!(spool_bytes(&http, &url).await, 0);
    let response = upload(800_000).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    figure(
        "spool",
        "budget 1 500 000 B, 1 000 000 B held by a stalled upload: an 800 000 B upload refused (503, 45011), \
         accepted once the stalled one went away",
    );
}

/// A well-formed upload of `size` bytes through the proxy with `key`.
async fn upload(http: &reqwest::Client, url: &str, key: &str, size: usize) -> reqwest::Response {
    http.post(format!("{url}/proxy/wx1/cgi-bin/media/upload?type=image"))
        .bearer_auth(key)
        .header("content-type", "multipart/form-data; boundary=spool-test")
        .body(wxgate_testkit::multipart(
            "spool-test",
            "p.jpg",
            &vec![b'x'; size],
        ))
        .send()
        .await
        .unwrap()
}

/// Reads what the gateway answered on `stream` within `limit`: `None` if it
/// has not answered.
async fn answer_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(limit, async {
        loop {
            match tokio::io::AsyncReadExt::read(stream, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (read.is_ok() || !answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
}

/// Issue 24, item 2: the façade's secret paths read (and spooled) a body
/// before checking the secret, so 8 requests declaring 32 MiB, with no
/// secret, held the whole spool and a business server's 1 MiB upload got 503.
/// Now the secret in the query is checked first, and `clear_quota/v2` (an
/// admin API, item 9) is refused before anything is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_without_a_secret_to_the_secret_paths_hold_none_of_the_spool() {
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &sim.url(),
        "max_request_bytes = 1000000\nmax_spool_bytes = 1500000",
    );
    let mut server = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", config.to_str().unwrap()],
        &[],
        None,
    );
    let url = server.url_after("listening on");
    let http = reqwest::Client::new();
    let targets = [
        "/sns/jscode2session?appid=wx1&js_code=c&grant_type=authorization_code",
        "/sns/oauth2/access_token?appid=wx1&code=c&grant_type=authorization_code",
        "/sns/jscode2session?appid=wx1&secret=wrong&js_code=c",
        "/cgi-bin/clear_quota/v2",
    ];
    let mut strangers = Vec::new();
    for target in targets {
        strangers.push(stalled_request(&url, target, "", 1_000_000, 300_000).await);
    }
    // Each stranger is answered at once, with WeChat's refusal, its body
    // unread: once all four are answered, the gateway has decided on each,
    // so what the spool holds now is all they ever hold.
    let mut errcodes = Vec::new();
    for (target, stream) in targets.iter().zip(&mut strangers) {
        let answer = answer_within(stream, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("{target}: not answered"));
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default())
                .unwrap_or_else(|_| panic!("{target}: {answer}"));
        errcodes.push(body["errcode"].as_i64().unwrap_or(0));
    }
    let held = spool_bytes(&http, &url).await;
    // Their connections still open.
    let response = upload(&http, &url, KEY, 800_000).await;
    let status = response.status();
    assert_eq!(
        status,
        200,
        "a business server's upload while strangers' uploads hold {held} spooled bytes: {:?}",
        response.text().await
    );
    assert_eq!(held, 0, "spooled bytes held by callers not known");
    drop(strangers);
    assert_eq!(errcodes, [40125, 40125, 40125, 48001], "{targets:?}");
    assert_eq!(sim.stats().endpoint_calls("/sns/jscode2session"), 0);
    figure(
        "spool",
        format!(
            "budget 1 500 000 B; 4 strangers declaring 1 000 000 B to the secret paths (no or a wrong secret; \
             clear_quota/v2, an admin API): spooled bytes {held}, answered at once with errcodes {errcodes:?}; \
             a client's 800 000 B upload meanwhile {status}"
        ),
    );
}

/// Issue 24, item 2: one caller cannot hold all of the spool. Client `c`
/// starts three uploads of 1,000,000 bytes that stall (the budget is
/// 3,000,000); its share (a quarter, but at least one largest body) is
/// 1,000,000, so the second and third are refused, and client `other`'s
/// upload still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_the_spool_another_needs() {
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &sim.url(),
        "max_request_bytes = 1000000\nmax_spool_bytes = 3000000",
    );
    let mut server = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", config.to_str().unwrap()],
        &[],
        None,
    );
    let url = server.url_after("listening on");
    let http = reqwest::Client::new();
    let mut stalled = Vec::new();
    // The first is taken in before the others come.
    stalled.push(stalled_upload(&url, 1_000_000, 300_000).await);
    wxgate_testkit::wait_until(
        Duration::from_secs(5),
        "the first upload taken in",
        async || spool_bytes(&http, &url).await == 1_000_000,
    )
    .await;
    for _ in 0..2 {
        stalled.push(stalled_upload(&url, 1_000_000, 300_000).await);
    }
    let held = spool_bytes(&http, &url).await;
    let response = upload(&http, &url, OTHER_KEY, 800_000).await;
    let status = response.status();
    assert_eq!(
        status,
        200,
        "another client's upload while one client holds {held} spooled bytes: {:?}",
        response.text().await
    );
    assert_eq!(held, 1_000_000, "one client's share");
    let mut refused = 0;
    for stream in &mut stalled {
        if let Some(answer) = answer_within(stream, Duration::from_millis(200)).await {
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            assert!(answer.contains("45011"), "{answer}");
            assert!(answer.contains("max_spool_bytes_per_caller"), "{answer}");
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "the uploads past the client's share");
    figure(
        "spool",
        format!(
            "budget 3 000 000 B, per caller 1 000 000 B: one client's 3 stalled 1 000 000 B uploads hold {held} B \
             ({refused} refused 503/45011); another client's 800 000 B upload {status}"
        ),
    );
}
