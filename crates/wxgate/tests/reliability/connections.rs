//! Connection floods against a real `wxgate serve` held to 1024 open files
//! (`prlimit`): 2,000 idle keep-alive connections, 500 slowloris ones and
//! 50 requests whose body never arrives in full.
//! The server caps its connections below the limit, closing the idle one
//! first; `/healthz` and pushes keep answering within 100 ms; idle and
//! half-sent connections are closed by the idle and header timeouts; and a
//! half-sent request does not hold shutdown.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use wxgate_gateway::clock::{Clock, SystemClock};
use wxgate_sim::{SimApp, SimConfig, Simulator};
use wxgate_testkit::process::Server;

use crate::figure;

const TOKEN: &str = "flood-token";
const FD_LIMIT: u64 = 1024;
const IDLE: usize = 2000;
const SLOWLORIS: usize = 500;
const SLOW_BODIES: usize = 50;

/// Raises this test process's own open-file limit to its hard limit: it
/// holds the 2,500 client sockets.
fn raise_own_fd_limit() {
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .expect("sh runs");
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status()
        .expect("prlimit (util-linux) is installed");
    assert!(status.success());
}

/// `wxgate serve` under `prlimit --nofile=1024:1024` with `server_toml` added.
fn serve_limited(dir: &Path, sim_url: &str, server_toml: &str) -> (Server, String) {
    let config = dir.join("wxgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_timeout_secs = 10\n{server_toml}\n\
             [store]\nbackend = \"memory\"\n[upstream]\nbase_url = \"{sim_url}\"\n\
             [[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\ntoken = \"{TOKEN}\"\nmode = \"plain\"\n"
        ),
    )
    .unwrap();
    let nofile = format!("--nofile={FD_LIMIT}:{FD_LIMIT}");
    let mut server = Server::start(
        "prlimit",
        &[
            &nofile,
            env!("CARGO_BIN_EXE_wxgate"),
            "serve",
            "-c",
            config.to_str().unwrap(),
        ],
        &[],
        None,
    );
    let url = server.url_after("listening on");
    (server, url)
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// An idle connection: it sends nothing, or (`request`) makes one request
/// and keeps the connection alive. `None` if the server closed it first.
async fn idle_connection(addr: String, request: bool) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(&addr).await.ok()?;
    if request {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut answer = [0u8; 512];
        let n = stream.read(&mut answer).await.ok()?;
        return (n > 0).then_some(stream);
    }
    Some(stream)
}

/// A connection that sends its request's headers a line at a time, never finishing.
async fn slowloris(addr: String) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(&addr).await.ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .ok()?;
    Some(stream)
}

/// A push whose body arrives in part, never in full: the request is under
/// way, so only the body deadline (the idle timeout) ends it.
async fn slow_body(addr: String) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(&addr).await.ok()?;
    let head = "POST /wx/wx1?signature=x&timestamp=1&nonce=n HTTP/1.1\r\nHost: x\r\n\
                Content-Length: 1000\r\n\r\n<xml>";
    stream.write_all(head.as_bytes()).await.ok()?;
    Some(stream)
}

/// Waits until the server closes `stream`; false after `limit`.
async fn closed_within(mut stream: TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// One signed plain-mode push, answered `success`.
async fn push(http: &reqwest::Client, url: &str, msg_id: usize) -> (u16, String) {
    let timestamp = SystemClock.now().to_string();
    // A nonce per push, as WeChat sends: a plain-mode body is bound to its signed query.
    let nonce = format!("n{msg_id}");
    let signature = wxgate_proto::signature(TOKEN, &timestamp, &nonce);
    let body = format!(
        "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
         <CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[hi]]></Content><MsgId>{msg_id}</MsgId></xml>"
    );
    let response = http
        .post(format!(
            "{url}/wx/wx1?signature={signature}&timestamp={timestamp}&nonce={nonce}"
        ))
        .body(body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_under_1024_files_leaves_health_and_pushes_answering() {
    raise_own_fd_limit();
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = serve_limited(
        dir.path(),
        &sim.url(),
        "header_read_timeout_ms = 500\nidle_timeout_secs = 5",
    );
    let pid = server.child.id();
    let addr = url.trim_start_matches("http://").to_owned();
    let started = Instant::now();

    // 2,000 idle connections (the first 100 after one request, kept alive),
    // then 500 slowloris ones; 100 connecting at a time.
    let mut peak_fds = 0;
    let mut idle = Vec::new();
    for batch in 0..IDLE / 100 {
        let tasks: Vec<_> = (0..100)
            .map(|_| tokio::spawn(idle_connection(addr.clone(), batch == 0)))
            .collect();
        for task in tasks {
            idle.push(task.await.unwrap());
        }
        peak_fds = peak_fds.max(fds(pid));
    }
    let answered = idle.iter().take(100).filter(|s| s.is_some()).count();
    let mut slow = Vec::new();
    for _ in 0..SLOWLORIS / 100 {
        let tasks: Vec<_> = (0..100)
            .map(|_| tokio::spawn(slowloris(addr.clone())))
            .collect();
        for task in tasks {
            slow.push(task.await.unwrap());
        }
        peak_fds = peak_fds.max(fds(pid));
    }
    let mut bodies = Vec::new();
    for _ in 0..SLOW_BODIES {
        bodies.push(slow_body(addr.clone()).await);
    }
    let opened = started.elapsed();
    peak_fds = peak_fds.max(fds(pid));

    // While they are held: /healthz and pushes, each on a new connection.
    // Timed out rather than hung, should the server stop accepting.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let sent = Instant::now();
        if i % 2 == 0 {
            let response = http.get(format!("{url}/healthz")).send().await.unwrap();
            assert_eq!(response.status(), 200);
        } else {
            let (status, body) = push(&http, &url, i).await;
            assert_eq!((status, body.as_str()), (200, "success"));
        }
        slowest = slowest.max(sent.elapsed());
        peak_fds = peak_fds.max(fds(pid));
    }
    assert!(
        slowest < Duration::from_millis(100),
        "slowest answer during the flood: {slowest:?}"
    );
    assert!(
        peak_fds < FD_LIMIT as usize,
        "the server held {peak_fds} files"
    );

    // Every connection still open is closed by the server: slowloris after
    // 0.5 s (header timeout), idle ones and half-sent bodies after 5 s (idle
    // timeout).
    let waiting = Instant::now();
    let held: Vec<_> = idle
        .into_iter()
        .chain(slow)
        .chain(bodies)
        .flatten()
        .collect();
    let still_open = held.len();
    let checks: Vec<_> = held
        .into_iter()
        .map(|s| tokio::spawn(closed_within(s, Duration::from_secs(7))))
        .collect();
    for check in checks {
        assert!(
            check.await.unwrap(),
            "a connection outlived the idle timeout"
        );
    }
    let all_closed = waiting.elapsed();
    let evicted = wxgate_testkit::metric(&http, &url, "wxgate_connections_evicted_total").await;
    let after = fds(pid);
    figure(
        "connections",
        format!(
            "{IDLE} idle + {SLOWLORIS} slowloris + {SLOW_BODIES} half-sent bodies under a {FD_LIMIT}-file limit, opened in {:.2} s \
             ({answered} of the first 100 answered before going idle); server files at most {peak_fds}; \
             slowest /healthz or push meanwhile {:.1} ms; the {still_open} still open all closed within {:.2} s; \
             idle connections closed to make room {evicted}; files after {after}",
            opened.as_secs_f64(),
            slowest.as_secs_f64() * 1000.0,
            all_closed.as_secs_f64(),
        ),
    );
    assert!(after < 64, "files left open: {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_does_not_hold_shutdown() {
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Default header and idle timeouts (10 s, 60 s); a 10 s shutdown grace.
    let (mut server, url) = serve_limited(dir.path(), &sim.url(), "");
    let addr = url.trim_start_matches("http://").to_owned();
    let half = slowloris(addr.clone()).await.unwrap();
    let half_body = slow_body(addr.clone()).await.unwrap();
    let keep_alive = idle_connection(addr, true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    server.signal("TERM");
    let status = tokio::task::spawn_blocking(move || server.wait_exit(Duration::from_secs(2)))
        .await
        .unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    figure(
        "connections",
        format!(
            "shutdown with half-sent headers, a half-sent body and an idle keep-alive open: exited in {} ms (grace 10 s)",
            took.as_millis()
        ),
    );
    for stream in [half, half_body, keep_alive] {
        assert!(closed_within(stream, Duration::from_millis(100)).await);
    }
}
