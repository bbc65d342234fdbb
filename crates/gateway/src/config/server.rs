//! `[server]`: where wxgate listens, how large and how slow a request may be,
//! the push timing (timestamp tolerance, reply budget, webhook timeout), the
//! connection cap and the trusted reverse proxies. Every value has bounds.

use std::net::SocketAddr;

use super::raw::RawServer;
use super::Problems;

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (default `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// Largest request body accepted, bytes (default 65 536).
    pub max_body_bytes: usize,
    /// Pushes signed further than this from now are rejected, seconds (default 300).
    pub timestamp_tolerance_secs: u64,
    /// Time to answer a push in, webhook included, milliseconds (default 4000;
    /// WeChat gives up after 5000). Past it wxgate answers `success` and
    /// delivers the webhook's reply later as a customer-service message.
    pub reply_budget_ms: u64,
    /// How long a webhook answer is awaited in all, milliseconds (default 30 000).
    pub webhook_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish,
    /// seconds (default 10); then wxgate exits anyway.
    pub shutdown_timeout_secs: u64,
    /// Most pushes remembered for recognising WeChat's retries (default
    /// 10 000, about 10 MB: WeChat's retries come within 15 s, so this covers
    /// them up to about 650 pushes a second). Each is kept for twice the timestamp
    /// tolerance + 60 s (a push may be dated up to the tolerance ahead);
    /// past this many the oldest is forgotten early, so memory stays bounded
    /// under any load.
    pub dedupe_capacity: usize,
    /// Most connections open at once (default 10 000, or the open-file limit
    /// less [`crate::connections::FD_MARGIN`] when that is lower). When all
    /// are taken, the connection idle the longest is closed for a new one.
    pub max_connections: usize,
    /// Time for a request's headers to arrive in full, milliseconds (default
    /// 10 000); slower connections are closed.
    pub header_read_timeout_ms: u64,
    /// A connection with no request under way for this long is closed,
    /// seconds (default 75: above the 60 s nginx keeps upstream connections).
    /// A request's body may take no longer in all.
    pub idle_timeout_secs: u64,
    /// Peers whose forwarded headers (`X-Real-IP`, `X-Forwarded-For`) are
    /// believed: the reverse proxies in front of wxgate (default none). An
    /// address is a /32 (/128).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where pushes (and ownership and URL checks) are accepted from
    /// (default [`PushSources::Any`]).
    pub trusted_push_sources: PushSources,
    /// Time a request's body gets before its first byte, and beyond what it
    /// has earned at `body_min_bytes_per_sec`, milliseconds (default 10 000).
    /// A body that stalls this long is cut, and its connection closed.
    pub body_read_timeout_ms: u64,
    /// The slowest a request's body may arrive on average, bytes a second
    /// (default 1024): each 1024 bytes received earn it one more second. A
    /// 60 000-byte body must be in within 10 + 58.6 s (and the idle timeout);
    /// one sent a byte at a time is cut after about 10 s.
    pub body_min_bytes_per_sec: u64,
}

/// `server.trusted_push_sources`: who may push to `/wx/…`, `/` and `/wecom/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushSources {
    /// Anyone (`"any"`, the default): the signature is the only check.
    #[default]
    Any,
    /// Only WeChat's (or WeCom's) callback IP ranges (`"wechat"`), from
    /// `getcallbackip`, refreshed daily and kept in the store.
    WeChat,
}

impl ServerConfig {
    /// The connection settings the accept loop takes.
    pub fn limits(&self) -> crate::connections::Limits {
        crate::connections::Limits {
            max_connections: self.max_connections,
            header_read_timeout: std::time::Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
            body_read_timeout: std::time::Duration::from_millis(self.body_read_timeout_ms),
            body_min_rate: self.body_min_bytes_per_sec,
            grace: std::time::Duration::from_secs(self.shutdown_timeout_secs),
        }
    }
}

/// The largest `server.max_body_bytes`: the XML reader's own limit.
pub const MAX_PUSH_BODY: usize = 1 << 20;

/// Checks `[server]`, defaults filled in.
pub(super) fn check(raw: RawServer, p: &mut Problems) -> ServerConfig {
    let listen = raw.listen.as_deref().unwrap_or("0.0.0.0:8080");
    let listen = listen.parse().unwrap_or_else(|_| {
        p.add(
            "server.listen",
            format!("{listen:?} is not an address like 0.0.0.0:8080"),
        );
        SocketAddr::from(([0, 0, 0, 0], 8080))
    });
    let max_connections = check_max_connections(
        raw.max_connections,
        crate::connections::open_file_limit(),
        p,
    );
    let server = ServerConfig {
        listen,
        max_body_bytes: raw.max_body_bytes.unwrap_or(65_536),
        timestamp_tolerance_secs: raw.timestamp_tolerance_secs.unwrap_or(300),
        reply_budget_ms: raw.reply_budget_ms.unwrap_or(4000),
        webhook_timeout_ms: raw.webhook_timeout_ms.unwrap_or(30_000),
        shutdown_timeout_secs: raw.shutdown_timeout_secs.unwrap_or(10),
        dedupe_capacity: raw.dedupe_capacity.unwrap_or(10_000),
        max_connections,
        header_read_timeout_ms: raw.header_read_timeout_ms.unwrap_or(10_000),
        idle_timeout_secs: raw.idle_timeout_secs.unwrap_or(75),
        trusted_proxies: check_trusted_proxies(raw.trusted_proxies, p),
        trusted_push_sources: check_push_sources(raw.trusted_push_sources.as_deref(), p),
        body_read_timeout_ms: raw.body_read_timeout_ms.unwrap_or(10_000),
        body_min_bytes_per_sec: raw.body_min_bytes_per_sec.unwrap_or(1024),
    };
    // Every value has sane bounds: a typo must not mean a 16 GiB body buffer,
    // a replay window of years or a shutdown that never ends.
    p.within(
        "server.max_body_bytes",
        server.max_body_bytes,
        1024..=MAX_PUSH_BODY,
        "bytes (pushes are XML of at most 1 MiB)",
    );
    p.within(
        "server.timestamp_tolerance_secs",
        server.timestamp_tolerance_secs,
        30..=3600,
        "seconds (WeChat retries within 15 s; a wide window lets captured pushes be replayed longer)",
    );
    p.within(
        "server.reply_budget_ms",
        server.reply_budget_ms,
        100..=4900,
        "milliseconds (WeChat waits 5000 ms)",
    );
    p.within(
        "server.webhook_timeout_ms",
        server.webhook_timeout_ms,
        100..=600_000,
        "milliseconds",
    );
    p.within(
        "server.shutdown_timeout_secs",
        server.shutdown_timeout_secs,
        1..=300,
        "seconds",
    );
    p.within(
        "server.dedupe_capacity",
        server.dedupe_capacity,
        100..=1_000_000,
        "pushes (each about 1 KB)",
    );
    p.within(
        "server.header_read_timeout_ms",
        server.header_read_timeout_ms,
        100..=120_000,
        "milliseconds",
    );
    p.within(
        "server.idle_timeout_secs",
        server.idle_timeout_secs,
        1..=3600,
        "seconds",
    );
    p.within(
        "server.body_read_timeout_ms",
        server.body_read_timeout_ms,
        100..=120_000,
        "milliseconds",
    );
    p.within(
        "server.body_min_bytes_per_sec",
        server.body_min_bytes_per_sec,
        1..=1_048_576,
        "bytes a second (a body slower than this on average is cut)",
    );
    server
}

/// `server.trusted_proxies`: addresses or CIDR ranges, IPv4-mapped ones
/// unmapped (a peer is unmapped before it is compared).
fn check_trusted_proxies(raw: Vec<String>, p: &mut Problems) -> Vec<ipnet::IpNet> {
    let mut nets = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let parsed = entry.trim().parse::<ipnet::IpNet>().or_else(|_| {
            entry
                .trim()
                .parse::<std::net::IpAddr>()
                .map(|ip| ipnet::IpNet::from(ip.to_canonical()))
        });
        match parsed {
            Ok(net) => nets.push(net.trunc()),
            Err(_) => p.add(
                format!("server.trusted_proxies[{i}]"),
                format!("{entry:?} is not an address or a CIDR range like 10.0.0.0/8"),
            ),
        }
    }
    nets
}

/// `server.trusted_push_sources`: `"any"` (the default) or `"wechat"`.
fn check_push_sources(raw: Option<&str>, p: &mut Problems) -> PushSources {
    match raw.map(str::trim) {
        None | Some("any") => PushSources::Any,
        Some("wechat") => PushSources::WeChat,
        Some(other) => {
            p.add(
                "server.trusted_push_sources",
                format!(
                    "{other:?} is not \"wechat\" (only WeChat's callback IP ranges) or \"any\" (the default)"
                ),
            );
            PushSources::Any
        }
    }
}

/// `server.max_connections`, given or by default, kept below the open-file
/// limit (`fd_limit`) less [`crate::connections::FD_MARGIN`]: past the limit a
/// server cannot accept at all, so a cap above it protects nothing.
fn check_max_connections(given: Option<usize>, fd_limit: Option<u64>, p: &mut Problems) -> usize {
    use crate::connections::FD_MARGIN;
    const DEFAULT: usize = 10_000;
    const MIN: usize = 16;
    let ceiling = fd_limit
        .map(|limit| usize::try_from(limit.saturating_sub(FD_MARGIN)).unwrap_or(usize::MAX));
    let Some(given) = given else {
        let chosen = ceiling.map_or(DEFAULT, |c| c.min(DEFAULT));
        if chosen < MIN {
            p.add(
                "server.max_connections",
                format!(
                    "the open-file limit (ulimit -n) is {}: raise it to at least {}",
                    fd_limit.unwrap_or_default(),
                    MIN as u64 + FD_MARGIN
                ),
            );
        }
        return chosen.max(MIN);
    };
    if !(MIN..=1_000_000).contains(&given) {
        p.add("server.max_connections", "use 16 to 1000000");
    } else if let (Some(ceiling), Some(limit)) = (ceiling, fd_limit) {
        if given > ceiling {
            p.add(
                "server.max_connections",
                format!(
                    "{given} is over the open-file limit (ulimit -n: {limit}) less {FD_MARGIN} \
                     for the rest: use at most {ceiling}, or raise the limit (LimitNOFILE= in the unit)"
                ),
            );
        }
    }
    given
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_sources_are_any_by_default_and_a_typo_is_a_problem() {
        let mut p = Problems::default();
        assert_eq!(check_push_sources(None, &mut p), PushSources::Any);
        assert_eq!(check_push_sources(Some("any"), &mut p), PushSources::Any);
        assert_eq!(
            check_push_sources(Some("wechat"), &mut p),
            PushSources::WeChat
        );
        assert!(p.0.is_empty(), "{:?}", p.0);
        check_push_sources(Some("wechta"), &mut p);
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.0[0].0, "server.trusted_push_sources");
        assert!(p.0[0].1.contains("\"wechat\""), "{:?}", p.0);
    }

    #[test]
    fn max_connections_stays_below_the_open_file_limit() {
        let mut p = Problems::default();
        // By default: 10 000, or the limit less the margin when that is lower.
        assert_eq!(check_max_connections(None, Some(1_048_576), &mut p), 10_000);
        assert_eq!(check_max_connections(None, Some(1024), &mut p), 896);
        assert_eq!(check_max_connections(None, None, &mut p), 10_000);
        assert_eq!(check_max_connections(Some(500), Some(1024), &mut p), 500);
        assert!(p.0.is_empty(), "{:?}", p.0);
        // Given above it, or out of range: a problem saying what to do.
        check_max_connections(Some(2000), Some(1024), &mut p);
        check_max_connections(Some(1), None, &mut p);
        check_max_connections(None, Some(100), &mut p);
        let problems: Vec<_> = p.0.iter().map(|(_, why)| why.as_str()).collect();
        assert!(problems[0].contains("use at most 896"), "{problems:?}");
        assert!(problems[1].contains("use 16 to"), "{problems:?}");
        assert!(
            problems[2].contains("raise it to at least 144"),
            "{problems:?}"
        );
    }
}
