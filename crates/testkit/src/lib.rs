//! Test harness shared by wxgate's crates (a dev-dependency only): real
//! servers, started on free loopback ports and stopped when dropped.
//!
//! - [`RedisServer`]: a real `redis-server` (installed by `scripts/test`).
//! - [`gateway`]: the gateway in front of the simulator, in-process ([`gateway::Setup`]).
//! - [`process::Server`]: a server process (`wxgate serve`…), signalled like an operator would.
//! - [`logs`]: everything the gateway logs, captured, to check that no secret gets there.
//! - [`store::WriteSwitch`]: a store whose writes can be made to fail (a full disk).
//! - [`sdk`]: unmodified WeChat SDKs run against a wxgate URL.

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
pub mod store;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` process on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts a throwaway `redis-server` (no persistence).
    ///
    /// # Panics
    /// When `redis-server` is not installed or does not start: tests that need
    /// Redis fail loudly instead of skipping (`scripts/test` installs it).
    pub fn start() -> Self {
        let port = free_port();
        let mut server = Self { child: None, port };
        server.restart();
        server
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
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
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
