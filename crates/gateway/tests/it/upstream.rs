//! A hostile upstream (the simulator redirecting, or answering without end):
//! redirects are refused, not followed, and answers are read only so far.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use wxgate_sim::{Fault, FaultAction};

use crate::{Setup, APPID, CLIENT_KEY};

/// A listener that records whatever reaches it (connections and bytes) and never answers.
struct Sink {
    url: String,
    /// Connections and bytes that reached it.
    arrived: Arc<AtomicU64>,
    /// The peer of every connection accepted, in order.
    peers: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Sink {
    /// What reached the sink up to now. A connection of the test's own, made
    /// now, is accepted after any made earlier (the listen queue is in
    /// order): once the sink has it, every earlier one has been counted.
    async fn arrived_so_far(&self) -> u64 {
        let marker = tokio::net::TcpStream::connect(self.url.trim_start_matches("http://"))
            .await
            .unwrap();
        let marker = marker.local_addr().unwrap();
        wxgate_testkit::wait_until(
            Duration::from_secs(5),
            "the sink accepts the test's own connection",
            async || self.peers.lock().unwrap().contains(&marker),
        )
        .await;
        // Less the marker's own connection (it sends nothing).
        self.arrived.load(Ordering::SeqCst) - 1
    }
}

async fn sink() -> Sink {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let arrived = Arc::new(AtomicU64::new(0));
    let peers = Arc::new(Mutex::new(Vec::new()));
    let (counter, accepted) = (arrived.clone(), peers.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            accepted.lock().unwrap().push(peer);
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    counter.fetch_add(n as u64, Ordering::SeqCst);
                }
            });
        }
    });
    Sink {
        url,
        arrived,
        peers,
    }
}

/// The simulator redirecting every call to `path` to `target`.
fn redirect(path: &str, target: &str) -> Fault {
    Fault {
        path: Some(path.into()),
        action: FaultAction::Redirect {
            location: format!("{target}/steal"),
        },
        count: None,
        rate: None,
    }
}

#[tokio::test]
async fn a_redirect_on_a_token_fetch_is_not_followed() {
    for stable in [false, true] {
        let thief = sink().await;
        let setup = if stable {
            Setup::new().stable()
        } else {
            Setup::new()
        };
        let path = if stable {
            "/cgi-bin/stable_token"
        } else {
            "/cgi-bin/token"
        };
        let env = setup.fault(redirect(path, &thief.url)).start().await;
        let (status, body) = env
            .client_get(&format!("/v1/apps/{APPID}/access_token"))
            .await;
        assert_eq!(status, 502, "stable={stable}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("redirect (HTTP 307)") && message.contains("not followed"),
            "{body}"
        );
        assert!(body["error"]["hint"].as_str().unwrap().contains("base_url"));
        assert_eq!(
            thief.arrived_so_far().await,
            0,
            "stable={stable}: the secret went to the redirect's target"
        );
    }
}

#[tokio::test]
async fn a_redirect_on_a_proxied_post_is_not_followed() {
    let thief = sink().await;
    let env = Setup::new()
        .fault(redirect("/cgi-bin/media/upload", &thief.url))
        .extra("[proxy]\ntimeout_ms = 2000")
        .start()
        .await;
    // In memory (replayable, so an HTTP client would re-send it) and spooled to a file.
    for size in [1_000, 300_000] {
        let response = env
            .http
            .post(format!(
                "{}/proxy/{APPID}/cgi-bin/media/upload?type=image",
                env.url
            ))
            .bearer_auth(CLIENT_KEY)
            .body(vec![b'm'; size])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502, "{size} bytes");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["errmsg"]
                .as_str()
                .unwrap()
                .contains("redirect (HTTP 307)"),
            "{body}"
        );
        assert!(
            body["hint"].as_str().unwrap().contains("base_url"),
            "{body}"
        );
    }
    assert_eq!(
        thief.arrived_so_far().await,
        0,
        "the upload went to the redirect's target"
    );
}

#[tokio::test]
async fn an_endless_token_answer_is_cut_off_early() {
    // The warm-up meets the endless answer first; the client gets its outcome.
    let started = tokio::time::Instant::now();
    let env = Setup::new()
        .fault(Fault {
            path: Some("/cgi-bin/token".into()),
            action: FaultAction::Endless,
            count: None,
            rate: None,
        })
        .start()
        .await;
    let (status, body) = env
        .client_get(&format!("/v1/apps/{APPID}/access_token"))
        .await;
    let elapsed = started.elapsed();
    // Once the simulator has noticed every hang-up, what it produced is final.
    wxgate_testkit::wait_until(
        Duration::from_secs(5),
        "the endless answers ended",
        async || env.sim.stats().fault_streams_open == 0,
    )
    .await;
    let produced = env.sim.stats().fault_bytes_sent;
    eprintln!(
        "endless answer: refused after {elapsed:?}, {produced} bytes produced by the upstream"
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        elapsed < Duration::from_secs(1),
        "{elapsed:?}: no quicker than the timeout"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over 65536 bytes"),
        "{body}"
    );
    // Socket buffers hold a few MiB; reading on would take hundreds.
    assert!(produced < 16 << 20, "{produced} bytes produced");
}
