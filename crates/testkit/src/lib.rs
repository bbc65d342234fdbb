//! Test harness shared by wxgate's crates (a dev-dependency only): real
//! servers, started on free loopback ports and stopped when dropped.
//!
//! - [`RedisServer`]: a real `redis-server` (installed by `scripts/test`).
//! - [`gateway`]: the gateway in front of the simulator, in-process ([`gateway::Setup`]).
//! - [`process::Server`]: a server process (`wxgate serve`…), signalled like an operator would.
//! - [`logs`]: everything the gateway logs, captured, to check that no secret gets there.
//! - [`store::WriteSwitch`]: a store whose writes can be made to fail (a full disk).
//! - [`sdk`]: unmodified WeChat SDKs run against a wxgate URL.
//! - [`wait_until`], [`wait_for`]: wait for a condition, with a deadline, instead of sleeping.

pub mod gateway;
pub mod logs;
pub mod sdk;

/// The value of the metric line `name` (with its labels, as written) that
/// the gateway at `base` serves on `/metrics`; panics, showing them all, when
/// there is none.
pub async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}
pub mod process;
pub mod redis;
pub mod store;

use std::fmt::Display;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` process on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// More `redis-server` arguments (TLS, cluster mode…), kept for restarts.
    extra: Vec<String>,
    /// A config file, given first (a sentinel's: it rewrites it).
    config: Option<String>,
    /// Its working directory: whatever it writes (a replica's snapshot)
    /// stays out of the source tree.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a throwaway `redis-server` (no persistence).
    ///
    /// # Panics
    /// When `redis-server` is not installed or does not start: tests that need
    /// Redis fail loudly instead of skipping (`scripts/test` installs it).
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// Starts one with more `redis-server` arguments (`--tls-port`…); it
    /// also listens on a plain port, which says when it is up.
    pub fn start_with(extra: Vec<String>) -> Self {
        let port = free_port();
        let mut server = Self {
            child: None,
            port,
            extra,
            config: None,
            dir: tempfile::tempdir().expect("a temporary dir"),
        };
        server.restart();
        server
    }

    /// Starts `redis-server CONFIG --sentinel` on a free port, its config
    /// made by `config(port)` and written to `path` (the sentinel rewrites it).
    pub fn start_sentinel(path: &std::path::Path, config: impl FnOnce(u16) -> String) -> Self {
        let port = free_port();
        std::fs::write(path, config(port)).expect("the sentinel's config is written");
        let mut server = Self {
            child: None,
            port,
            extra: vec!["--sentinel".into()],
            config: Some(path.display().to_string()),
            dir: tempfile::tempdir().expect("a temporary dir"),
        };
        server.restart();
        server
    }

    /// Its plain port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (to test an outage); [`RedisServer::restart`] brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(&self.config)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (scripts/test runs apt-get install -y redis-server)")
            });
        self.child = Some(child);
        // Up to 10 s (500 × 20 ms), counted in attempts: no clock needed.
        let ready = (0..500).any(|_| {
            let up = self.ping();
            if !up {
                std::thread::sleep(Duration::from_millis(20));
            }
            up
        });
        assert!(
            ready,
            "redis-server did not answer PING on port {}",
            self.port
        );
    }

    fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("+PONG")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `multipart/form-data` body with one file field `media` (WeChat's media
/// upload), named `file_name`, of type `image/jpeg`.
pub fn multipart(boundary: &str, file_name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{file_name}\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// How often [`wait_for`] looks again.
const POLL: Duration = Duration::from_millis(5);

/// Waits until `probe` gives a value and returns it, looking every 5 ms;
/// panics, saying `what` was awaited, when `within` passes first.
///
/// For what happens in real time (a request in flight, a background task, a
/// process): the deadline is on tokio's clock, so do not use it on a paused
/// one while real I/O is pending (tokio would jump the clock to the deadline).
/// Never a way to show that something does *not* happen: for that, use a
/// virtual clock or a marker ordered after the event.
pub async fn wait_for<T>(
    within: Duration,
    what: impl Display,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still waiting after {within:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A message made only when shown (what a [`wait_for`] that failed was
/// waiting for, with the state it found).
pub fn lazy(message: impl Fn() -> String) -> impl Display {
    struct Lazy<F>(F);
    impl<F: Fn() -> String> Display for Lazy<F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&(self.0)())
        }
    }
    Lazy(message)
}

/// Waits until `condition` holds (see [`wait_for`]).
pub async fn wait_until(
    within: Duration,
    what: impl Display,
    mut condition: impl AsyncFnMut() -> bool,
) {
    wait_for(within, what, async || condition().await.then_some(())).await;
}
