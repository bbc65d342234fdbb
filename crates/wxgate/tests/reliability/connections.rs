//! Connection floods against a real `wxgate serve` held to 1024 open files
//! (`prlimit`): 2,000 idle keep-alive connections, 500 slowloris ones and
//! 50 requests whose body never arrives in full; and 950 connections whose
//! request bodies trickle in, reopened as soon as they are closed.
//! The server caps its connections below the limit, closing the idle one
//! first, then the one whose body is furthest behind; `/healthz`, pushes and
//! the client API keep answering; idle and half-sent connections are closed
//! by the idle, header and body timeouts; and a half-sent request does not
//! hold shutdown.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use wxgate_gateway::clock::{Clock, SystemClock};
use wxgate_sim::{SimApp, SimConfig, Simulator};
use wxgate_testkit::process::Server;

use crate::figure;

const TOKEN: &str = "flood-token";
const CLIENT_KEY: &str = "flood-client-key";
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
             [[apps]]\nappid = \"wx1\"\nsecret = \"s1\"\ntoken = \"{TOKEN}\"\nmode = \"plain\"\n\
             [[clients]]\nname = \"biz\"\nkey_sha256 = \"{}\"\napps = [\"wx1\"]\n",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                CLIENT_KEY.as_bytes()
            )),
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

/// A simulator, and `wxgate serve` in front of it under the file limit.
struct Started {
    /// The gateway's process.
    pid: u32,
    url: String,
    /// `url`'s host and port.
    addr: String,
    /// What must live as long as the test.
    _running: (wxgate_sim::RunningSim, tempfile::TempDir, Server),
}

/// [`Started`], with `server_toml` in the gateway's `[server]`.
async fn started(server_toml: &str) -> Started {
    let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s1")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = serve_limited(dir.path(), &sim.url(), server_toml);
    let addr = url.trim_start_matches("http://").to_owned();
    Started {
        pid: server.child.id(),
        url,
        addr,
        _running: (sim, dir, server),
    }
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

/// One signed plain-mode push: its status and answer.
async fn push(
    http: &reqwest::Client,
    url: &str,
    msg_id: usize,
) -> Result<(u16, String), reqwest::Error> {
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
        .await?;
    Ok((
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_under_1024_files_leaves_health_and_pushes_answering() {
    let _alone = crate::EXCLUSIVE.lock().await;
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
            let (status, body) = push(&http, &url, i).await.unwrap();
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
    // The gateway has taken all three in once it answers a request on a
    // connection opened after them (the listen queue is in order).
    let healthz = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(healthz.status(), 200);
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

/// Sends one request on `stream` and reads its answer's first bytes; the
/// answer's status line, empty if the server had closed the connection.
async fn request_on(stream: &mut TcpStream) -> String {
    let sent = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = [0u8; 512];
    let n = match sent {
        Ok(()) => stream.read(&mut answer).await.unwrap_or(0),
        Err(_) => 0,
    };
    let answer = String::from_utf8_lossy(&answer[..n]);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// The header timeout runs from the accept for a connection's first
/// request and from a request's first bytes after that, not from the end
/// of the request before: a keep-alive connection idle for longer than the
/// header timeout (and less than the idle timeout) still serves its next
/// request, as nginx expects of the upstreams it keeps connections to. A
/// request whose headers trickle in is cut at the header timeout (never
/// before), as is a new connection that sends nothing, and both are
/// counted; an idle keep-alive is closed at the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_timeout_cuts_slow_headers_and_spares_idle_keep_alives() {
    let Started { url, addr, .. } =
        &started("header_read_timeout_ms = 300\nidle_timeout_secs = 2").await;
    let mut keep_alive = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(request_on(&mut keep_alive).await, "HTTP/1.1 200 OK");

    // A connection that sends nothing: its first request is due at once.
    let silent = TcpStream::connect(&addr).await.unwrap();
    // Headers that trickle in, a byte every 50 ms, never finishing.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let cut = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if slow.write_all(b"X").await.is_err() || started.elapsed() > Duration::from_secs(2) {
            break started.elapsed();
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => panic!("an answer to unfinished headers: {:?}", &buf[..n]),
            Err(_) => {}
        }
    };
    assert!(
        cut >= Duration::from_millis(300) && cut < Duration::from_millis(1000),
        "trickling headers cut after {cut:?} (header timeout 300 ms)"
    );
    assert!(
        closed_within(silent, Duration::from_secs(1)).await,
        "a connection that sent nothing outlived the header timeout"
    );
    let http = reqwest::Client::new();
    let timeouts =
        wxgate_testkit::metric(&http, url, "wxgate_connections_header_timeouts_total").await;
    assert_eq!(timeouts, 2.0);

    // The keep-alive connection, idle for twice the header timeout and
    // more, still answers.
    tokio::time::sleep_until(started + Duration::from_millis(700)).await;
    let idle = started.elapsed();
    assert_eq!(
        request_on(&mut keep_alive).await,
        "HTTP/1.1 200 OK",
        "a keep-alive connection idle for {idle:?} (header timeout 300 ms, idle timeout 2 s) was closed"
    );
    // And is closed at the idle timeout.
    let waiting = Instant::now();
    assert!(closed_within(keep_alive, Duration::from_secs(4)).await);
    let closed = waiting.elapsed();
    assert!(
        closed >= Duration::from_millis(1900),
        "an idle connection closed after {closed:?} (idle timeout 2 s)"
    );
    figure(
        "connections",
        format!(
            "header timeout 300 ms: trickling headers cut after {} ms; a keep-alive idle {} ms still answered; \
             closed {} ms after its last answer (idle timeout 2 s)",
            cut.as_millis(),
            idle.as_millis(),
            closed.as_millis()
        ),
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    crate::status_kib(pid, "VmRSS")
}

/// Opens `count` connections, 50 at a time, each sending `GET path` and
/// reading its whole answer, and keeps them open (idle keep-alives).
async fn idle_after(addr: &str, path: &str, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count / 50 {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (addr, path) = (addr.to_owned(), path.to_owned());
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(&addr).await.unwrap();
                    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                    stream.write_all(request.as_bytes()).await.unwrap();
                    let mut answer = Vec::new();
                    let mut buf = [0u8; 16 * 1024];
                    // The head, then as many body bytes as it announced.
                    let body_len = loop {
                        let n = stream.read(&mut buf).await.unwrap();
                        assert!(n > 0, "closed before answering {path}");
                        answer.extend_from_slice(&buf[..n]);
                        let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
                        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .expect("a content-length")
                            .trim()
                            .parse::<usize>()
                            .unwrap();
                        break end + 4 + length;
                    };
                    while answer.len() < body_len {
                        let n = stream.read(&mut buf).await.unwrap();
                        assert!(n > 0, "closed while answering {path}");
                        answer.extend_from_slice(&buf[..n]);
                    }
                    stream
                })
            })
            .collect();
        for task in tasks {
            held.push(task.await.unwrap());
        }
    }
    held
}

/// An idle keep-alive connection holds no more after a larger answer than
/// after a tiny one: the answer is not kept in the connection's write
/// buffer. (With hyper's `writev` off, each answer's body is copied into
/// that buffer, which keeps its largest size for the connection's life: a
/// stranger could make every connection hold the largest answer anyone may
/// ask for, such as `/metrics` or the status page's style sheet.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_keeps_no_copy_of_its_last_answer() {
    const EACH: usize = 300;
    let _alone = crate::EXCLUSIVE.lock().await;
    raise_own_fd_limit();
    let Started { pid, url, addr, .. } = &started("idle_timeout_secs = 60").await;
    let pid = *pid;
    // The largest answer this gateway gives anyone (hyper's write buffer
    // starts at 8 KiB).
    let large = "/admin/app.css";
    let large_len = reqwest::get(format!("{url}{large}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    assert!(large_len > 8 * 1024, "{large} is {large_len} bytes");
    // Warm the allocator once, so the two measured batches start alike.
    drop(idle_after(addr, "/healthz", EACH).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let tiny = idle_after(addr, "/healthz", EACH).await;
    let after_tiny = rss_kib(pid);
    let held = idle_after(addr, large, EACH).await;
    let after_large = rss_kib(pid);
    let per_tiny = (after_tiny.saturating_sub(before)) as f64 / EACH as f64;
    let per_large = (after_large.saturating_sub(after_tiny)) as f64 / EACH as f64;
    figure(
        "connections",
        format!(
            "memory held per idle keep-alive: {per_tiny:.1} KiB after /healthz, {per_large:.1} KiB after \
             {large} ({large_len} bytes), {EACH} connections each"
        ),
    );
    // What the larger answer leaves is less than the answer's own size: no
    // copy of it is kept (measured: 6 KiB more under hyper's default, 15 KiB
    // with `writev` off, for a 9.5 KiB answer).
    let large_kib = large_len as f64 / 1024.0;
    assert!(
        per_large < per_tiny + large_kib,
        "an idle connection holds {per_large:.1} KiB after a {large_len}-byte answer, \
         {per_tiny:.1} KiB after a 2-byte one"
    );
    drop((tiny, held));
}

/// What the slow-body attackers did.
#[derive(Default)]
struct Attack {
    stop: AtomicBool,
    /// Connections opened, their request's head and first body byte sent.
    opened: AtomicUsize,
    /// Connections the server answered or closed.
    cut: AtomicUsize,
}

/// A request declaring a 60,000-byte body to a route that reads it before
/// checking anything, of which one byte is sent.
async fn stalled_body(addr: &str) -> Option<TcpStream> {
    let head = "POST /cgi-bin/stable_token HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{";
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(head.as_bytes()).await.ok()?;
    Some(stream)
}

/// One attacker's connection, again and again until `attack.stop`: a
/// [`stalled_body`], then one more byte every 500 ms.
async fn trickling_body(addr: String, attack: Arc<Attack>) {
    let mut buf = [0u8; 1024];
    while !attack.stop.load(Ordering::Relaxed) {
        let Some(mut stream) = stalled_body(&addr).await else {
            // The attack's pace when refused (not a wait for anything).
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        attack.opened.fetch_add(1, Ordering::Relaxed);
        loop {
            tokio::select! {
                _ = stream.read(&mut buf) => break,
                // The trickle itself: a byte every 500 ms is the attack.
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    if attack.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if stream.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            }
        }
        attack.cut.fetch_add(1, Ordering::Relaxed);
        // Reopened at once, as the attack in issue 24 did (a short pause
        // keeps this test process from spinning).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One probe on a new connection: `/healthz`, a signed push or the client
/// API, by `i`. The error says which failed and how.
async fn probe(http: &reqwest::Client, url: &str, i: usize) -> Result<(), String> {
    let what = ["healthz", "push", "client API"][i % 3];
    let outcome = match i % 3 {
        0 => http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .map(|r| r.status().as_u16()),
        1 => match push(http, url, 1000 + i).await {
            Ok((200, body)) if body == "success" => return Ok(()),
            Ok((status, body)) => return Err(format!("push {i}: {status} {body}")),
            Err(e) => Err(e),
        },
        _ => http
            .get(format!("{url}/v1/apps/wx1/access_token"))
            .bearer_auth(CLIENT_KEY)
            .send()
            .await
            .map(|r| r.status().as_u16()),
    };
    match outcome {
        Ok(200) => Ok(()),
        Ok(status) => Err(format!("{what} {i}: status {status}")),
        Err(e) => Err(format!("{what} {i}: {e:?}")),
    }
}

/// Issue 24, item 1: 950 connections each declaring a 60,000-byte body and
/// trickling it, reopened when closed, against a server whose file limit
/// allows 896 connections. Before, every slot was held (a busy connection
/// was never evicted) and each probe's connection was closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_on_every_connection_leave_pushes_and_the_client_api_answering() {
    let _alone = crate::EXCLUSIVE.lock().await;
    const ATTACKERS: usize = 950;
    const PROBES: usize = 30;
    raise_own_fd_limit();
    // The default body timeout (10 s): within the probes' few seconds only
    // eviction makes room.
    let Started { pid, url, addr, .. } = &started("").await;
    let pid = *pid;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // Before the attack: the token is fetched once, so probes measure the
    // gateway, not the first fetch.
    probe(&http, url, 2).await.unwrap();

    let attack = Arc::new(Attack::default());
    let started = Instant::now();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| tokio::spawn(trickling_body(addr.clone(), attack.clone())))
        .collect();
    wxgate_testkit::wait_until(
        Duration::from_secs(20),
        "the attack could not open its connections",
        async || attack.opened.load(Ordering::Relaxed) >= ATTACKERS,
    )
    .await;
    let opened_in = started.elapsed();
    let mut peak_fds = fds(pid);

    let mut slowest = Duration::ZERO;
    let mut failures = Vec::new();
    for i in 0..PROBES {
        let sent = Instant::now();
        if let Err(e) = probe(&http, url, i).await {
            failures.push(e);
        }
        slowest = slowest.max(sent.elapsed());
        peak_fds = peak_fds.max(fds(pid));
        // Probes spread over the attack (its pace, not a wait for anything).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attacked_for = started.elapsed();
    attack.stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.abort();
    }
    let evicted = wxgate_testkit::metric(&http, url, "wxgate_connections_evicted_total").await;
    let opened = attack.opened.load(Ordering::Relaxed);
    let cut = attack.cut.load(Ordering::Relaxed);
    figure(
        "connections",
        format!(
            "{ATTACKERS} connections trickling 60,000-byte bodies (1 byte / 500 ms, reopened when closed) against \
             a {FD_LIMIT}-file limit (896 connections), all open after {:.2} s; {PROBES} probes over {:.1} s \
             (/healthz, signed pushes, client API, each a new connection): {} failed, slowest {:.1} ms; \
             attack connections opened {opened}, closed by the server {cut} (evicted to make room {evicted}); \
             server files at most {peak_fds}",
            opened_in.as_secs_f64(),
            attacked_for.as_secs_f64(),
            failures.len(),
            slowest.as_secs_f64() * 1000.0,
        ),
    );
    assert!(
        failures.is_empty(),
        "probes refused during the attack: {failures:#?}"
    );
    // Answered, not refused, and without waiting for an eviction timeout
    // (the body timeout is 10 s). The attack's reconnections keep the
    // listen queue full at times, so a probe's SYN may be dropped once and
    // resent by the kernel a second later (seen in loaded full runs:
    // 1,015 ms; 15–26 ms alone): one retransmission is tolerated, two are not.
    assert!(
        slowest < Duration::from_millis(1_500),
        "slowest answer during the attack: {slowest:?}"
    );
    assert!(
        peak_fds < FD_LIMIT as usize,
        "the server held {peak_fds} files"
    );
}

/// A body that stalls, or trickles in under `body_min_bytes_per_sec`, is
/// cut after `body_read_timeout_ms` (not the idle timeout); one arriving at
/// a steady pace past that time is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_below_the_floor_rate_is_cut_and_a_steady_one_is_not() {
    let Started { addr, .. } = &started(
        "idle_timeout_secs = 30\nbody_read_timeout_ms = 1000\nbody_min_bytes_per_sec = 100",
    )
    .await;
    let stalled = stalled_body(addr).await.unwrap();
    let sent = Instant::now();
    assert!(
        closed_within(stalled, Duration::from_secs(5)).await,
        "a stalled body held its connection"
    );
    let stalled_cut = sent.elapsed();
    assert!(
        stalled_cut >= Duration::from_millis(900),
        "cut too early: {stalled_cut:?}"
    );

    // About 900 bytes at 300 bytes a second (three times the floor): 3 s,
    // three times the read timeout, and answered in full.
    let mut steady = TcpStream::connect(&addr).await.unwrap();
    let timestamp = SystemClock.now().to_string();
    let signature = wxgate_proto::signature(TOKEN, &timestamp, "steady");
    let body = format!(
        "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
         <CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{}]]></Content><MsgId>77</MsgId></xml>",
        "x".repeat(700),
    );
    let head = format!(
        "POST /wx/wx1?signature={signature}&timestamp={timestamp}&nonce=steady HTTP/1.1\r\nHost: x\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    steady.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for chunk in body.as_bytes().chunks(30) {
        steady.write_all(chunk).await.unwrap();
        // A slow but steady client is what is tested: 30 bytes every 100 ms.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let mut answer = String::new();
    steady.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("success"), "{answer}");
    figure(
        "connections",
        format!(
            "body_read_timeout 1 s, floor 100 B/s: a stalled body cut after {} ms; a {}-byte push sent at \
             300 B/s over {:.1} s answered `success`",
            stalled_cut.as_millis(),
            body.len(),
            took.as_secs_f64(),
        ),
    );
}
