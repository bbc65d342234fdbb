//! Hostile input: oversized headers and bodies, entity expansion, path
//! traversal through the proxy, one app's client key used on another.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wxgate_gateway::clock::Clock;
use wxgate_sim::SimApp;
use wxgate_testkit::gateway::{Env, Setup, APPID, CLIENT_KEY};

use crate::figure;

const TOKEN: &str = "security-token";
const OTHER: &str = "wxbbbbbbbbbbbbbbbb";

/// Sends bytes as written and returns the status code (0 if the connection broke).
async fn raw(env: &Env, request: &[u8]) -> u16 {
    let addr = env.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn signed_query(env: &Env) -> String {
    let timestamp = env.clock.now().to_string();
    let signature = wxgate_proto::signature(TOKEN, &timestamp, "n");
    format!("signature={signature}&timestamp={timestamp}&nonce=n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_cleanly() {
    let env = Setup::new()
        .app(&format!("token = \"{TOKEN}\"\nmode = \"plain\""))
        .extra(&format!(
            "[[apps]]\nappid = \"{OTHER}\"\nsecret = \"other-secret\""
        ))
        .sim(|s| s.apps.push(SimApp::new(OTHER, "other-secret")))
        .start()
        .await;
    let host = env.url.trim_start_matches("http://").to_owned();
    // The warm-up's token fetches are the gateway's own, not forwarded calls.
    let warm_up = env.sim.stats().endpoint_calls.values().sum::<u64>();
    let mut results = Vec::new();

    // A 100 KB header.
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    let status = raw(&env, big_header.as_bytes()).await;
    results.push(("100 KB header", status));
    assert_eq!(status, 431);

    // Bodies over max_body_bytes (64 KiB), declared and chunked.
    let query = signed_query(&env);
    let big = vec![b'a'; 200_000];
    let response = env
        .http
        .post(format!("{}/wx/{APPID}?{query}", env.url))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    results.push(("200 KB push", response.status().as_u16()));
    assert_eq!(response.status(), 413);
    // The unread rest of the body makes the connection unusable: the client is told.
    assert_eq!(response.headers()["connection"], "close");
    // Chunked, so no length is declared up front; the server stops reading
    // at the limit and answers (raw: a client would fail on the closed pipe).
    let mut chunked = format!(
        "POST /v1/apps/{APPID}/access_token/refresh HTTP/1.1\r\nHost: {host}\r\n\
         Authorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.chunks(10_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let status = raw(&env, &chunked).await;
    results.push(("200 KB chunked JSON", status));
    assert_eq!(status, 413);

    // Entity expansion (a billion laughs): refused, at once, nothing expanded.
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"lol\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\
                  <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">]>\
                  <xml><ToUserName>&d;</ToUserName><Content>&d;</Content></xml>";
    let started = tokio::time::Instant::now();
    let response = env
        .http
        .post(format!("{}/wx/{APPID}?{query}", env.url))
        .body(laughs)
        .send()
        .await
        .unwrap();
    results.push(("billion laughs", response.status().as_u16()));
    assert_eq!(response.status(), 400);
    assert!(started.elapsed().as_millis() < 500);

    // Traversal through the proxy, raw (no client normalises it away).
    for target in [
        format!("/proxy/{APPID}/cgi-bin/../sim/stats"),
        format!("/proxy/{APPID}/cgi-bin/%2e%2e/%2e%2e/sim/stats"),
        format!("/proxy/{APPID}/cgi-bin/..%2fsim/stats"),
        format!("/proxy/{APPID}//sim/stats"),
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {CLIENT_KEY}\r\nConnection: close\r\n\r\n"
        );
        let status = raw(&env, request.as_bytes()).await;
        results.push(("proxy traversal", status));
        assert!(matches!(status, 400 | 403 | 404), "{target}: {status}");
    }
    assert_eq!(
        env.sim.stats().endpoint_calls.values().sum::<u64>(),
        warm_up,
        "nothing reached WeChat"
    );

    // The client key of APPID on OTHER: refused everywhere.
    for (method, path) in [
        ("GET", format!("/v1/apps/{OTHER}/access_token")),
        ("POST", format!("/v1/apps/{OTHER}/access_token/refresh")),
        ("POST", format!("/v1/apps/{OTHER}/jssdk/signature")),
        ("GET", format!("/proxy/{OTHER}/cgi-bin/get_api_domain_ip")),
    ] {
        let response = env
            .http
            .request(method.parse().unwrap(), format!("{}{path}", env.url))
            .bearer_auth(CLIENT_KEY)
            .json(&serde_json::json!({"invalid_token": "x", "url": "https://example.com/"}))
            .send()
            .await
            .unwrap();
        results.push(("another app's client key", response.status().as_u16()));
        assert_eq!(response.status(), 403, "{path}");
    }
    assert_eq!(env.sim.stats().app(OTHER).calls("/cgi-bin/token"), 0);
    figure("security", format!("{results:?}"));
}

/// `wxgate dev` keeps its SQLite file in a fresh directory of its own (mode
/// 0700, random name), not at a predictable `$TMPDIR` path where another user
/// may have planted a symlink, and removes it on exit.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_keeps_its_store_in_a_private_directory_and_follows_no_planted_link() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim.db");
    // Links where a pid-named file would go, for the pids likely to come next.
    let last_pid: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    for pid in last_pid + 1..last_pid + 200 {
        let link = tmp.path().join(format!("wxgate-dev-{pid}.db"));
        std::os::unix::fs::symlink(&victim, link).unwrap();
    }
    let mut dev = wxgate_testkit::process::Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &[
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--sim-listen",
            "127.0.0.1:0",
        ],
        &[("TMPDIR", tmp.path().to_str().unwrap())],
        None,
    );
    let gateway = dev.url_after("  gateway ");
    let store_line = dev.lines().find(|l| l.starts_with("  store ")).unwrap();
    let store = std::path::PathBuf::from(store_line.trim_start_matches("  store ").trim());
    let response = reqwest::Client::new()
        .get(format!("{gateway}/v1/apps/wxd000000000000001/access_token"))
        .bearer_auth("dev-client-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let dir = store.parent().unwrap();
    assert_ne!(dir, tmp.path(), "{store:?} is directly in $TMPDIR");
    assert!(dir.starts_with(tmp.path()), "{store:?}");
    let meta = std::fs::symlink_metadata(dir).unwrap();
    assert!(meta.is_dir(), "{dir:?} is a real directory, not a link");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{dir:?}");
    assert_eq!(meta.uid(), std::fs::metadata(tmp.path()).unwrap().uid());
    let file = std::fs::symlink_metadata(&store).unwrap();
    assert!(file.is_file(), "{store:?}");
    assert_eq!(file.permissions().mode() & 0o777, 0o600, "{store:?}");
    assert!(!victim.exists(), "a planted link was followed");

    dev.signal("TERM");
    assert!(dev.wait_exit(std::time::Duration::from_secs(10)).success());
    assert!(!dir.exists(), "{dir:?} removed on exit");
    figure(
        "dev store",
        format!("{} (0700 directory, 0600 file)", store.display()),
    );
}

/// One request of a credential check, as a given peer (its `X-Real-IP`: the
/// test's socket is loopback, as a reverse proxy on the host would be).
struct Guess {
    check: &'static str,
    /// (method, path, body) with a wrong credential, then with the right one.
    wrong: (&'static str, String, Option<String>),
    right: (&'static str, String, Option<String>),
    bearer: Option<(&'static str, &'static str)>,
}

/// (HTTP status, WeChat errcode if any, Retry-After if any).
async fn attempt(
    env: &Env,
    peer: &str,
    (method, path, body): &(&'static str, String, Option<String>),
    bearer: Option<&str>,
) -> (u16, Option<i64>, Option<String>) {
    // Redirects not followed: a login answers 303.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = http
        .request(method.parse().unwrap(), format!("{}{path}", env.url))
        .header("x-real-ip", peer);
    if let Some(key) = bearer {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        let form = path.starts_with("/admin/login");
        let content_type = if form {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        request = request
            .header("content-type", content_type)
            .body(body.clone());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let errcode = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["errcode"].as_i64());
    (status, errcode, retry_after)
}

/// The answer's `(status, errcode)` counts as a refusal by the throttle.
fn throttled(
    check: &str,
    (status, errcode, retry_after): &(u16, Option<i64>, Option<String>),
) -> bool {
    use wxgate_gateway::http::BACKOFF_SECS;
    if check.starts_with("/cgi-bin") || check.starts_with("get") {
        (*status, *errcode) == (200, Some(45011))
    } else {
        *status == 429 && retry_after.as_deref() == Some(&BACKOFF_SECS.to_string())
    }
}

/// The answer counts as accepted.
fn accepted((status, errcode, _): &(u16, Option<i64>, Option<String>)) -> bool {
    matches!(status, 200 | 303) && errcode.unwrap_or(0) == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_guessing_is_slowed_and_valid_credentials_still_pass() {
    use wxgate_gateway::http::{BACKOFF_SECS, MAX_FAILURES};
    use wxgate_testkit::gateway::SECRET;
    const ADMIN_KEY: &str = "admin-key-0123456789";
    // The test's socket is loopback, as nginx on the same host would be.
    let env = Setup::new()
        .stable()
        .admin(ADMIN_KEY)
        .server("trusted_proxies = [\"127.0.0.1\"]")
        .start()
        .await;
    let token = env.access_token().await;
    let stable = |secret: &str| {
        format!(r#"{{"grant_type":"client_credential","appid":"{APPID}","secret":"{secret}"}}"#)
    };
    let get = |path: String| ("GET", path, None);
    let guesses = [
        Guess {
            check: "client key",
            wrong: get(format!("/v1/apps/{APPID}/access_token")),
            right: get(format!("/v1/apps/{APPID}/access_token")),
            bearer: Some(("wrong-client-key", CLIENT_KEY)),
        },
        Guess {
            check: "admin login",
            wrong: ("POST", "/admin/login".into(), Some("key=guess".into())),
            right: (
                "POST",
                "/admin/login".into(),
                Some(format!("key={ADMIN_KEY}")),
            ),
            bearer: None,
        },
        Guess {
            check: "admin bearer",
            wrong: get("/admin/status.json".into()),
            right: get("/admin/status.json".into()),
            bearer: Some(("wrong-admin-key-000", ADMIN_KEY)),
        },
        Guess {
            check: "/cgi-bin/token secret",
            wrong: get(format!(
                "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret=guess"
            )),
            right: get(format!(
                "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
            )),
            bearer: None,
        },
        Guess {
            check: "/cgi-bin/stable_token secret",
            wrong: (
                "POST",
                "/cgi-bin/stable_token".into(),
                Some(stable("guess")),
            ),
            right: ("POST", "/cgi-bin/stable_token".into(), Some(stable(SECRET))),
            bearer: None,
        },
        Guess {
            check: "getticket access_token",
            wrong: get("/cgi-bin/ticket/getticket?access_token=guess&type=jsapi".into()),
            right: get(format!(
                "/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
            )),
            bearer: None,
        },
    ];
    for (i, guess) in guesses.iter().enumerate() {
        let peer = format!("203.0.113.{}", i + 1);
        let bystander = format!("198.51.100.{}", i + 1);
        let (wrong_key, right_key) = guess.bearer.unzip();
        let admin = guess.check.starts_with("admin");
        // MAX_FAILURES wrong guesses are checked (and refused as wrong)…
        for _ in 0..MAX_FAILURES {
            let (status, errcode, _) = attempt(&env, &peer, &guess.wrong, wrong_key).await;
            assert!(
                matches!(status, 401) || errcode.is_some_and(|e| e != 45011 && e != -1),
                "{}: {status} {errcode:?}",
                guess.check
            );
        }
        // …then the peer's wrong guesses are refused as such…
        let answer = attempt(&env, &peer, &guess.wrong, wrong_key).await;
        assert!(
            throttled(guess.check, &answer),
            "{}: {answer:?}",
            guess.check
        );
        let answer = attempt(&env, &peer, &guess.right, right_key).await;
        if admin {
            // …and the admin key, which a person chose, is not even checked;
            assert!(
                throttled(guess.check, &answer),
                "{}: {answer:?}",
                guess.check
            );
        } else {
            // …while a client key, secret or token, far beyond guessing, is
            // accepted when right: no caller is refused for a shared address.
            assert!(accepted(&answer), "{}: {answer:?}", guess.check);
        }
        // Another peer is not refused.
        let answer = attempt(&env, &bystander, &guess.right, right_key).await;
        assert!(accepted(&answer), "{}: {answer:?}", guess.check);
    }
    // After the backoff, the right credential works again.
    env.advance(BACKOFF_SECS).await;
    for (i, guess) in guesses.iter().enumerate() {
        let peer = format!("203.0.113.{}", i + 1);
        let right_key = guess.bearer.map(|(_, right)| right);
        let answer = attempt(&env, &peer, &guess.right, right_key).await;
        assert!(
            accepted(&answer),
            "{} after the backoff: {answer:?}",
            guess.check
        );
    }
    let metrics = env.http.get(format!("{}/metrics", env.url)).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    let refusals: Vec<_> = metrics
        .lines()
        .filter(|l| l.starts_with("wxgate_credential_checks_refused_total"))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    // Every kind of check was refused at least once (each series exists from the start).
    assert_eq!(refusals.len(), 4, "{metrics}");
    // One warning per refused peer, not a line per wrong key.
    let logs = wxgate_testkit::logs::text();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("203.0.113."))
        .count();
    assert_eq!(warnings, guesses.len(), "{logs}");
    assert!(!logs
        .lines()
        .any(|l| l.contains("WARN") && l.contains("admin login refused")));
    figure(
        "security",
        format!(
            "credential guessing: {MAX_FAILURES} wrong guesses per peer, then its wrong guesses refused for \
             {BACKOFF_SECS} s (429 / errcode 45011) and its admin-key checks refused unchecked; right client keys, \
             secrets and tokens still accepted; other peers unaffected; {refusals:?}"
        ),
    );
}

/// Sends `request` from the loopback address `from` (any of 127.0.0.0/8 is
/// this host) and returns the status code (0 if the connection broke).
async fn raw_from(env: &Env, from: std::net::Ipv4Addr, request: &str) -> u16 {
    let addr: std::net::SocketAddr = env.url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A GET with a bearer key and any extra header lines, closing the connection.
fn get_with(path: &str, bearer: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: wxgate\r\nAuthorization: Bearer {bearer}\r\n{extra}Connection: close\r\n\r\n"
    )
}

/// The n-th loopback address past 127.1.0.0.
fn loopback(n: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 1, 0, 0)) + n)
}

/// The three attacks on the throttle of the last round, with no reverse proxy
/// configured (the default): spoofed `X-Real-IP` headers, a victim framed by
/// its address in that header, and a table filled from 10,000 real source
/// addresses. Through each, a caller with a valid credential is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_honest_caller_is_refused_through_a_guessing_attack() {
    use wxgate_gateway::http::{MAX_FAILURES, MAX_PEERS};
    const ADMIN_KEY: &str = "admin-key-0123456789";
    let env = Setup::new().admin(ADMIN_KEY).start().await;
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 1);
    let client_path = format!("/v1/apps/{APPID}/access_token");
    let mut figures = Vec::new();

    // 1. Spoofed headers from one address: a new X-Real-IP each time is not
    // a new peer. Admin-key guesses past the first MAX_FAILURES are refused
    // unchecked.
    let started = tokio::time::Instant::now();
    let mut checked = 0;
    let tries = 200u32;
    for n in 0..tries {
        let spoof = format!("X-Real-IP: 203.0.{}.{}\r\n", n / 250, n % 250);
        let status = raw_from(
            &env,
            attacker,
            &get_with("/admin/status.json", "admin-guess-000000", &spoof),
        )
        .await;
        assert!(matches!(status, 401 | 429), "{status}");
        checked += u32::from(status == 401);
    }
    let rate = f64::from(tries) / started.elapsed().as_secs_f64();
    assert_eq!(
        checked, MAX_FAILURES,
        "admin-key guesses checked with spoofed headers"
    );
    figures.push(format!(
        "spoofed X-Real-IP: {checked} of {tries} admin-key guesses checked ({rate:.0} requests/s sent)"
    ));
    // The attacker's own address with the right client key: answered.
    let status = raw_from(&env, attacker, &get_with(&client_path, CLIENT_KEY, "")).await;
    assert_eq!(status, 200, "a valid client key from the guessing address");

    // 2. A victim framed by name: wrong admin keys "from" 127.0.0.2 in the
    // header do not count against 127.0.0.2.
    let victim = std::net::Ipv4Addr::new(127, 0, 0, 2);
    for _ in 0..2 * MAX_FAILURES {
        let framed = get_with(
            "/admin/status.json",
            "admin-guess-000000",
            "X-Real-IP: 127.0.0.2\r\n",
        );
        raw_from(&env, attacker, &framed).await;
    }
    let status = raw_from(&env, victim, &get_with("/admin/status.json", ADMIN_KEY, "")).await;
    assert_eq!(status, 200, "the framed victim with the right admin key");

    // A misconfigured business server sharing the operator's address: its
    // wrong client keys do not refuse the operator's admin key.
    let shared = std::net::Ipv4Addr::new(127, 0, 0, 5);
    for _ in 0..2 * MAX_FAILURES {
        raw_from(
            &env,
            shared,
            &get_with(&client_path, "wrong-client-key", ""),
        )
        .await;
    }
    let status = raw_from(&env, shared, &get_with("/admin/status.json", ADMIN_KEY, "")).await;
    assert_eq!(
        status, 200,
        "the admin key from an address with wrong client keys"
    );

    // 3. A full table: one failure from each of 10,000 addresses, then more.
    let started = tokio::time::Instant::now();
    let addresses = MAX_PEERS as u32 + 500;
    let mut checked = 0u32;
    for n in 0..addresses {
        let status = raw_from(
            &env,
            loopback(n),
            &get_with(&client_path, "wrong-client-key", ""),
        )
        .await;
        checked += u32::from(status == 401);
    }
    let rate = f64::from(addresses) / started.elapsed().as_secs_f64();
    assert_eq!(
        checked, addresses,
        "each new address's first guess is checked"
    );
    figures.push(format!(
        "{addresses} source addresses: each gets {MAX_FAILURES} guesses a minute ({rate:.0} requests/s sent)"
    ));
    // A never-seen operator, with the right admin key, and a never-seen
    // business server with its client key: answered.
    let operator = std::net::Ipv4Addr::new(127, 0, 0, 3);
    let status = raw_from(
        &env,
        operator,
        &get_with("/admin/status.json", ADMIN_KEY, ""),
    )
    .await;
    assert_eq!(status, 200, "a new operator with the table full");
    let business = std::net::Ipv4Addr::new(127, 0, 0, 4);
    let status = raw_from(&env, business, &get_with(&client_path, CLIENT_KEY, "")).await;
    assert_eq!(status, 200, "a new business server with the table full");
    figure(
        "security",
        format!("throttle under attack: {}", figures.join("; ")),
    );
}
