//! Backoff for credential guessing, shared by every credential check: the
//! admin key (bearer, cookie, login form), client keys and the WeChat-
//! compatible endpoints' app secrets and access tokens.
//!
//! A peer (an IPv4 address, or an IPv6 /64) that fails [`MAX_FAILURES`]
//! checks of one kind — the admin key, or the credentials beyond guessing —
//! within [`WINDOW_SECS`] is *refused* for that kind for [`BACKOFF_SECS`]: 429 on
//! the client API and the admin page, errcode 45011 ("api minute-quota reach
//! limit, retry next minute") on the WeChat-shaped endpoints. What refused
//! means depends on whether the credential can be guessed at all:
//!
//! - Client keys, app secrets and access tokens are far beyond guessing (128
//!   bits and more), so a valid one is **always** accepted: a caller that
//!   presents one is never refused for anyone's failures, its own address's
//!   included (a shared NAT, a misconfigured neighbour, a spoofed header).
//!   A refused peer's *wrong* credentials are answered 429/45011 instead of
//!   401/40001 ([`Check::guessable`] is false: callers check first, then call
//!   [`Throttle::fail`] and [`Throttle::admit`] on the failure path).
//! - The admin key is typed by a person and may be weak: a refused peer's
//!   admin-key checks are refused unchecked, right or wrong (callers call
//!   [`Throttle::admit`] first). That turns thousands of guesses a second
//!   into ten a minute per address. A signed-in operator's session is a
//!   random cookie and is not refused (see the admin page).
//!
//! Failures are logged at debug level; a warning is logged once per peer when
//! it starts being refused. Each refusal counts in
//! `wxgate_credential_checks_refused_total{check}`.
//!
//! Who a peer is: the socket's address, IPv4-mapped IPv6 addresses unmapped
//! first. Forwarded headers (`X-Real-IP`, `X-Forwarded-For`) are believed
//! only from `[server] trusted_proxies` (none by default): a client that
//! writes them itself changes nothing.
//!
//! Memory is bounded: at most [`MAX_PEERS`] peers are tracked. When the table
//! is full, peers whose window and backoff are over are forgotten; if that
//! frees nothing, the least recently failing peers that are not refused are
//! forgotten first. A peer never seen is never refused, so a flood from many
//! addresses cannot lock anyone else out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;

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
    /// An access token on `/cgi-bin/ticket/getticket` and the façade.
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

    /// Whether the credential may be weak enough to guess: then a refused
    /// peer is refused unchecked. Otherwise a valid credential always passes.
    pub(crate) fn guessable(self) -> bool {
        matches!(self, Check::AdminKey)
    }
}

/// Who is checking credentials: an IPv4 address or an IPv6 /64 (one host
/// usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// One address (IPv6: its /64).
    Addr(IpAddr),
    /// No network peer: a request handed to the router in-process (tests,
    /// fuzzing). `Gateway::serve` gives every request its peer, so this
    /// never happens to one from the network; it is not throttled.
    InProcess,
}

/// Whether `ip` is in one of `trusted`.
fn trusts(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// A header's address, unmapped; `None` when absent or not one address.
fn header_ip(headers: &HeaderMap, name: &str) -> Option<IpAddr> {
    let value = headers.get(name)?.to_str().ok()?;
    value
        .trim()
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The client's address: the socket's, or, when the socket is a trusted
/// proxy, what the proxies say. `X-Real-IP` is the address the nearest proxy
/// saw; while that is a trusted proxy too, `X-Forwarded-For` is read from
/// its right end (the hops nearest to wxgate) to the first untrusted address.
/// Every address is unmapped (`::ffff:a.b.c.d` is `a.b.c.d`) before anything
/// is decided about it.
pub(crate) fn client_ip(socket: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut ip = socket.to_canonical();
    if trusted.is_empty() || !trusts(trusted, ip) {
        return ip;
    }
    if let Some(real) = header_ip(headers, "x-real-ip") {
        ip = real;
    }
    if trusts(trusted, ip) {
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(hop) => ip = hop.to_canonical(),
                // A hop that is not an address ends what can be believed.
                Err(_) => break,
            }
            if !trusts(trusted, ip) {
                break;
            }
        }
    }
    ip
}

impl Peer {
    /// The peer of a request: its client address (see [`client_ip`]), an
    /// IPv6 one by its /64.
    pub(crate) fn of(extensions: &Extensions, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let socket = extensions.get::<ConnectInfo<SocketAddr>>();
        Peer::at(socket.map(|s| s.0), headers, trusted)
    }

    /// The peer of a request from `socket` (`None`: in-process).
    pub(crate) fn at(socket: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let Some(socket) = socket else {
            return Peer::InProcess;
        };
        Peer::Addr(match client_ip(socket.ip(), headers, trusted) {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
            v4 => v4,
        })
    }
}

impl axum::extract::FromRequestParts<super::AppState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer::of(
            &parts.extensions,
            &parts.headers,
            &state.server.trusted_proxies,
        ))
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Addr(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            Peer::Addr(v4) => write!(f, "{v4}"),
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
    last_failure: u64,
}

impl Entry {
    fn expired(&self, now: u64) -> bool {
        now >= self.refused_until && now >= self.window_start + WINDOW_SECS
    }

    /// Which entries go first when the table is full: those not refused,
    /// then the least recently failing.
    fn keep_rank(&self, now: u64) -> (bool, u64) {
        (self.refused_until > now, self.last_failure)
    }
}

/// Failed credential checks per peer; one per gateway.
#[derive(Debug)]
pub struct Throttle {
    /// Failures by peer and by whether the credential is guessable: wrong
    /// client keys (a misconfigured business server) never refuse the admin
    /// key from the same address, nor the reverse.
    peers: Mutex<HashMap<(Peer, bool), Entry>>,
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

    /// Whether `peer` is not refused at `now` (Unix seconds). For a
    /// [guessable](Check::guessable) credential, ask before checking it;
    /// for the others, ask only once a check failed (see the module docs).
    pub(crate) fn admit(&self, peer: Peer, check: Check, now: u64) -> Result<(), Refused> {
        if peer == Peer::InProcess {
            return Ok(());
        }
        let peers = self.peers.lock().expect("throttle lock");
        match peers.get(&(peer, check.guessable())) {
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
        let key = (peer, check.guessable());
        if !peers.contains_key(&key) && peers.len() >= MAX_PEERS {
            make_room(&mut peers, now);
        }
        let entry = peers.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            refused_until: 0,
            last_failure: now,
        });
        if now >= entry.window_start + WINDOW_SECS {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.last_failure = now;
        let failures = entry.failures;
        tracing::debug!(%peer, check = check.label(), failures, "credential check failed");
        if failures >= MAX_FAILURES {
            entry.refused_until = now + BACKOFF_SECS;
            entry.window_start = now;
            entry.failures = 0;
            tracing::warn!(
                %peer,
                check = check.label(),
                failures,
                window_secs = WINDOW_SECS,
                backoff_secs = BACKOFF_SECS,
                "too many failed credential checks: refusing this peer's failed (and admin-key) checks for a while"
            );
        }
    }

    /// Records a failed check of a credential that is not
    /// [guessable](Check::guessable), and answers whether the peer was
    /// refused already: the failure is then answered 429/45011 rather than
    /// as a wrong credential (and, counted, keeps a persistent guesser
    /// refused).
    pub(crate) fn failed(&self, peer: Peer, check: Check, now: u64) -> Result<(), Refused> {
        debug_assert!(!check.guessable(), "{check:?} is checked after admit");
        let refused = self.admit(peer, check, now);
        self.fail(peer, check, now);
        refused
    }

    /// Peers tracked now (at most [`MAX_PEERS`]).
    pub fn tracked(&self) -> usize {
        self.peers.lock().expect("throttle lock").len()
    }
}

/// Frees room in a full table: entries that are over first; then an eighth
/// of the table, those not refused and least recently failing first (one
/// pass for many insertions, so a flood does not pay a scan per address).
fn make_room(peers: &mut HashMap<(Peer, bool), Entry>, now: u64) {
    peers.retain(|_, entry| !entry.expired(now));
    if peers.len() < MAX_PEERS {
        return;
    }
    let mut ranks: Vec<(bool, u64)> = peers.values().map(|e| e.keep_rank(now)).collect();
    let cut = MAX_PEERS / 8;
    let (_, &mut threshold, _) = ranks.select_nth_unstable(cut);
    let mut dropped = 0;
    peers.retain(|_, entry| {
        let drop = dropped < cut && entry.keep_rank(now) <= threshold;
        dropped += usize::from(drop);
        !drop
    });
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

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn peer_of(socket: &str, headers: &[(&str, &str)], trusted: &[IpNet]) -> Peer {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(socket.parse::<SocketAddr>().unwrap()));
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        Peer::of(&extensions, &map, trusted)
    }

    fn addr(ip: &str) -> Peer {
        Peer::Addr(ip.parse().unwrap())
    }

    #[test]
    fn a_peer_is_refused_after_too_many_failures_until_the_backoff_passes() {
        let t = throttle();
        let (a, b) = (peer(1), peer(2));
        for _ in 0..MAX_FAILURES - 1 {
            t.fail(a, Check::ClientKey, 100);
        }
        assert_eq!(t.admit(a, Check::AppSecret, 100), Ok(()));
        t.fail(a, Check::AccessToken, 110);
        // Refused for the credentials beyond guessing; other peers are not,
        // and neither is this peer's admin key: its failures are its own.
        assert_eq!(t.admit(a, Check::AdminKey, 110), Ok(()));
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
        // Wrong admin keys refuse the admin key only.
        for _ in 0..MAX_FAILURES {
            t.fail(b, Check::AdminKey, 200);
        }
        assert!(t.admit(b, Check::AdminKey, 200).is_err());
        assert_eq!(t.admit(b, Check::ClientKey, 200), Ok(()));
        let metrics = t.metrics.encode();
        assert!(
            metrics.contains("wxgate_credential_checks_refused_total{check=\"client_key\"} 1"),
            "{metrics}"
        );
    }

    #[test]
    fn only_the_admin_key_is_guessable() {
        assert!(Check::AdminKey.guessable());
        for check in [Check::ClientKey, Check::AppSecret, Check::AccessToken] {
            assert!(!check.guessable(), "{check:?}");
        }
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
    fn a_full_table_refuses_no_new_peer_and_keeps_the_refused_ones() {
        let t = throttle();
        // A guesser, refused.
        let guesser = peer(u32::MAX);
        for _ in 0..MAX_FAILURES {
            t.fail(guesser, Check::AdminKey, 0);
        }
        // A flood of one failure each from many addresses fills the table.
        for n in 0..MAX_PEERS as u32 + 5_000 {
            t.fail(peer(n), Check::ClientKey, 1);
            assert!(t.tracked() <= MAX_PEERS, "{}", t.tracked());
        }
        // A never-seen peer is not refused, with the table full.
        assert_eq!(t.admit(peer(2_000_000_000), Check::AdminKey, 2), Ok(()));
        // Nor is one that failed a few times after the table filled up.
        for _ in 0..MAX_FAILURES - 1 {
            t.fail(peer(2_000_000_001), Check::AdminKey, 2);
        }
        assert_eq!(t.admit(peer(2_000_000_001), Check::AdminKey, 2), Ok(()));
        // The guesser was kept through the flood: still refused.
        assert!(t.admit(guesser, Check::AdminKey, 2).is_err());
        // Once their windows are over, old peers are forgotten to make room,
        // and no newer one is.
        let later = 2 + WINDOW_SECS + BACKOFF_SECS;
        let room = MAX_PEERS - t.tracked();
        for n in 0..=room as u32 {
            t.fail(peer(3_000_000_000 + n), Check::ClientKey, later);
        }
        assert_eq!(t.tracked(), room + 1);
    }

    #[test]
    fn ipv6_peers_are_counted_by_their_64_and_mapped_ones_unmapped() {
        assert_eq!(
            peer_of("[2001:db8:1:2:aaaa::1]:5000", &[], &[]),
            addr("2001:db8:1:2::")
        );
        assert_eq!(
            peer_of("[::ffff:198.51.100.9]:1", &[], &[]),
            addr("198.51.100.9")
        );
        // Handed to the router in-process: no peer, not throttled.
        assert_eq!(
            Peer::of(&Extensions::new(), &HeaderMap::new(), &[]),
            Peer::InProcess
        );
        let t = throttle();
        for _ in 0..2 * MAX_FAILURES {
            t.fail(Peer::InProcess, Check::AdminKey, 0);
        }
        assert_eq!(t.admit(Peer::InProcess, Check::AdminKey, 0), Ok(()));
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn forwarded_headers_are_believed_only_from_trusted_proxies() {
        let real = [("x-real-ip", "203.0.113.7")];
        // None trusted (the default): a loopback peer's header is its own words.
        assert_eq!(peer_of("127.0.0.1:1", &real, &[]), addr("127.0.0.1"));
        // Trusted: the proxy's X-Real-IP.
        let local = nets(&["127.0.0.1/32"]);
        assert_eq!(peer_of("127.0.0.1:1", &real, &local), addr("203.0.113.7"));
        // From a dual-stack listener the proxy is ::ffff:127.0.0.1: unmapped first.
        assert_eq!(
            peer_of("[::ffff:127.0.0.1]:1", &real, &local),
            addr("203.0.113.7")
        );
        // A mapped address in the header is unmapped too.
        assert_eq!(
            peer_of(
                "127.0.0.1:1",
                &[("x-real-ip", "::ffff:203.0.113.8")],
                &local
            ),
            addr("203.0.113.8")
        );
        // An untrusted peer's headers are ignored.
        assert_eq!(
            peer_of("198.51.100.1:1", &real, &local),
            addr("198.51.100.1")
        );
        // A chain: load balancer 10.0.0.2 → nginx 127.0.0.1 → wxgate. The
        // client's own X-Forwarded-For entries (left of the first untrusted
        // hop) are not believed.
        let chain = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let headers = [
            ("x-real-ip", "10.0.0.2"),
            ("x-forwarded-for", "1.1.1.1, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.2"),
        ];
        assert_eq!(
            peer_of("127.0.0.1:1", &headers, &chain),
            addr("203.0.113.9")
        );
        // A garbled hop ends the walk at the last trusted address.
        let garbled = [("x-forwarded-for", "203.0.113.9, nonsense")];
        assert_eq!(peer_of("10.0.0.2:1", &garbled, &chain), addr("10.0.0.2"));
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(peer_of("127.0.0.1:1", &[], &local), addr("127.0.0.1"));
    }
}
