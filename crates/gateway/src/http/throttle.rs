//! Backoff for credential guessing, shared by every credential check: the
//! admin key (bearer, cookie, login form), client keys and the WeChat-
//! compatible endpoints' app secrets and access tokens.
//!
//! A peer (an IPv4 address, or an IPv6 /64) that fails [`MAX_FAILURES`]
//! checks within [`WINDOW_SECS`] is refused every credential check, right or
//! wrong, for [`BACKOFF_SECS`]: 429 on the client API and the admin page,
//! errcode 45011 ("api minute-quota reach limit, retry next minute") on the
//! WeChat-shaped endpoints. That turns thousands of guesses a second into
//! ten a minute per peer. Failures are logged at debug level; a warning is
//! logged once per peer when it starts being refused. Each refusal counts in
//! `wxgate_credential_checks_refused_total{check}`.
//!
//! Behind a reverse proxy on the same host every peer is the proxy, so a
//! request from a loopback address is attributed to its `X-Real-IP` when it
//! has one (deploy/nginx.conf sets it, replacing any the client sent).
//!
//! Memory is bounded: at most [`MAX_PEERS`] peers are tracked; when the
//! table is full, peers whose window and backoff are over are forgotten, and
//! if that frees nothing, new peers share one entry, so a flood from many
//! addresses is throttled as one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

use crate::metrics::{CheckLabels, Metrics};

/// Failed checks a peer may make within [`WINDOW_SECS`].
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in, seconds.
pub const WINDOW_SECS: u64 = 60;
/// How long a peer is refused after too many failures, seconds.
pub const BACKOFF_SECS: u64 = 60;
/// Most peers tracked at once.
pub const MAX_PEERS: usize = 10_000;

/// Which credential was checked (the metric's `check` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The admin key: bearer, session cookie or login form.
    AdminKey,
    /// A client key on the client API.
    ClientKey,
    /// An app secret on `/cgi-bin/token` or `/cgi-bin/stable_token`.
    AppSecret,
    /// An access token on `/cgi-bin/ticket/getticket`.
    AccessToken,
}

impl Check {
    fn label(self) -> &'static str {
        match self {
            Check::AdminKey => "admin_key",
            Check::ClientKey => "client_key",
            Check::AppSecret => "app_secret",
            Check::AccessToken => "access_token",
        }
    }
}

/// Who is guessing: an IPv4 address, an IPv6 /64 (one host usually holds a
/// whole /64), or the shared entry of peers past [`MAX_PEERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// One address (IPv6: its /64).
    Addr(IpAddr),
    /// Every peer not tracked on its own.
    Shared,
    /// No network peer: a request handed to the router in-process (tests,
    /// fuzzing). `Gateway::serve` gives every request its peer, so this
    /// never happens to one from the network; it is not throttled.
    InProcess,
}

impl Peer {
    /// The peer of a request: its socket address, or its `X-Real-IP` when
    /// the socket is loopback (a reverse proxy on this host).
    pub(crate) fn of(extensions: &Extensions, headers: &HeaderMap) -> Self {
        let Some(ConnectInfo(socket)) = extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Peer::InProcess;
        };
        let mut ip = socket.ip();
        if ip.is_loopback() {
            let real = headers
                .get("x-real-ip")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if let Some(real) = real {
                ip = real;
            }
        }
        Peer::Addr(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(prefix))
                }
            },
            v4 => v4,
        })
    }
}

impl<S: Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer::of(&parts.extensions, &parts.headers))
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Addr(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            Peer::Addr(v4) => write!(f, "{v4}"),
            Peer::Shared => f.write_str("(peers past the tracking limit)"),
            Peer::InProcess => f.write_str("(in-process)"),
        }
    }
}

/// A refused check: the peer may try again in this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Seconds until the backoff ends.
    pub(crate) retry_after: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: u64,
    failures: u32,
    refused_until: u64,
}

impl Entry {
    fn expired(&self, now: u64) -> bool {
        now >= self.refused_until && now >= self.window_start + WINDOW_SECS
    }
}

/// Failed credential checks per peer; one per gateway.
#[derive(Debug)]
pub struct Throttle {
    peers: Mutex<HashMap<Peer, Entry>>,
    metrics: Arc<Metrics>,
}

impl Throttle {
    /// An empty table counting refusals in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            peers: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Whether `peer` may have a credential checked at `now` (Unix seconds).
    pub(crate) fn admit(&self, peer: Peer, check: Check, now: u64) -> Result<(), Refused> {
        if peer == Peer::InProcess {
            return Ok(());
        }
        let peers = self.peers.lock().expect("throttle lock");
        let tracked = peers
            .get(&peer)
            .or_else(|| (peers.len() >= MAX_PEERS).then(|| peers.get(&Peer::Shared))?);
        match tracked {
            Some(entry) if entry.refused_until > now => {
                self.metrics
                    .credential_checks_refused
                    .get_or_create(&CheckLabels {
                        check: check.label(),
                    })
                    .inc();
                Err(Refused {
                    retry_after: entry.refused_until - now,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records a failed check by `peer` at `now`.
    pub(crate) fn fail(&self, peer: Peer, check: Check, now: u64) {
        if peer == Peer::InProcess {
            return;
        }
        let mut peers = self.peers.lock().expect("throttle lock");
        let mut key = peer;
        if !peers.contains_key(&key) && peers.len() >= MAX_PEERS {
            peers.retain(|_, entry| !entry.expired(now));
            if peers.len() >= MAX_PEERS {
                key = Peer::Shared;
            }
        }
        let entry = peers.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            refused_until: 0,
        });
        if now >= entry.window_start + WINDOW_SECS {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        let failures = entry.failures;
        tracing::debug!(peer = %key, check = check.label(), failures, "credential check failed");
        if failures >= MAX_FAILURES {
            entry.refused_until = now + BACKOFF_SECS;
            entry.window_start = now;
            entry.failures = 0;
            tracing::warn!(
                peer = %key,
                check = check.label(),
                failures,
                window_secs = WINDOW_SECS,
                backoff_secs = BACKOFF_SECS,
                "too many failed credential checks: refusing this peer's checks for a while"
            );
        }
    }

    /// Peers tracked now (bounded by [`MAX_PEERS`] + 1).
    pub fn tracked(&self) -> usize {
        self.peers.lock().expect("throttle lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u32) -> Peer {
        Peer::Addr(IpAddr::from(n.to_be_bytes()))
    }

    fn throttle() -> Throttle {
        Throttle::new(Arc::new(Metrics::new("test")))
    }

    #[test]
    fn a_peer_is_refused_after_too_many_failures_until_the_backoff_passes() {
        let t = throttle();
        let (a, b) = (peer(1), peer(2));
        for _ in 0..MAX_FAILURES - 1 {
            t.fail(a, Check::ClientKey, 100);
        }
        assert_eq!(t.admit(a, Check::AdminKey, 100), Ok(()));
        t.fail(a, Check::AdminKey, 110);
        // Refused for every check, right or wrong; other peers are not.
        assert_eq!(
            t.admit(a, Check::AppSecret, 110),
            Err(Refused {
                retry_after: BACKOFF_SECS
            })
        );
        assert_eq!(t.admit(b, Check::AppSecret, 110), Ok(()));
        assert!(t
            .admit(a, Check::ClientKey, 110 + BACKOFF_SECS - 1)
            .is_err());
        assert_eq!(t.admit(a, Check::ClientKey, 110 + BACKOFF_SECS), Ok(()));
        let metrics = t.metrics.encode();
        assert!(
            metrics.contains("wxgate_credential_checks_refused_total{check=\"client_key\"} 1"),
            "{metrics}"
        );
    }

    #[test]
    fn failures_spread_beyond_the_window_are_not_refused() {
        let t = throttle();
        let a = peer(1);
        for i in 0..3 * u64::from(MAX_FAILURES) {
            t.fail(a, Check::ClientKey, i * (WINDOW_SECS / 5));
            assert_eq!(t.admit(a, Check::ClientKey, i * (WINDOW_SECS / 5)), Ok(()));
        }
    }

    #[test]
    fn memory_is_bounded_and_peers_past_the_limit_share_one_entry() {
        let t = throttle();
        for n in 0..MAX_PEERS as u32 + 500 {
            t.fail(peer(n), Check::ClientKey, 0);
        }
        assert_eq!(t.tracked(), MAX_PEERS + 1);
        // The untracked ones are throttled together.
        for n in 0..MAX_FAILURES {
            t.fail(peer(1_000_000 + n), Check::ClientKey, 1);
        }
        assert!(t.admit(peer(2_000_000), Check::ClientKey, 1).is_err());
        assert_eq!(t.admit(peer(5), Check::ClientKey, 1), Ok(()));
        // Once their windows are over, old peers are forgotten to make room.
        t.fail(
            peer(3_000_000),
            Check::ClientKey,
            WINDOW_SECS + BACKOFF_SECS,
        );
        assert!(t.tracked() <= 2, "{}", t.tracked());
    }

    #[test]
    fn ipv6_peers_are_counted_by_their_64() {
        let mut extensions = Extensions::new();
        let socket: SocketAddr = "[2001:db8:1:2:aaaa::1]:5000".parse().unwrap();
        extensions.insert(ConnectInfo(socket));
        let headers = HeaderMap::new();
        let expected: IpAddr = "2001:db8:1:2::".parse().unwrap();
        assert_eq!(Peer::of(&extensions, &headers), Peer::Addr(expected));
        // Behind a proxy on this host: its X-Real-IP.
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo("127.0.0.1:1".parse::<SocketAddr>().unwrap()));
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", "203.0.113.7".parse().unwrap());
        let real: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(Peer::of(&extensions, &headers), Peer::Addr(real));
        // Handed to the router in-process: no peer, not throttled.
        assert_eq!(Peer::of(&Extensions::new(), &headers), Peer::InProcess);
        let t = throttle();
        for _ in 0..2 * MAX_FAILURES {
            t.fail(Peer::InProcess, Check::AdminKey, 0);
        }
        assert_eq!(t.admit(Peer::InProcess, Check::AdminKey, 0), Ok(()));
        assert_eq!(t.tracked(), 0);
        // From elsewhere, the header is not believed.
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo("198.51.100.1:1".parse::<SocketAddr>().unwrap()));
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(Peer::of(&extensions, &headers), Peer::Addr(other));
    }
}
