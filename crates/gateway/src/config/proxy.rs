//! `[proxy]`: what business servers may reach through `/proxy/{appid}/…`.

use super::raw::RawProxy;
use super::Problems;

/// Path prefixes forwarded by default: WeChat's Official Account APIs.
pub const DEFAULT_ALLOW_PATHS: &[&str] = &[
    "/cgi-bin/",
    "/datacube/",
    "/card/",
    "/customservice/",
    "/merchant/",
    "/semantic/",
    "/wxa/",
];

/// Paths never forwarded, whatever the allow-list says: each issues a
/// credential, and a classic token fetch would invalidate the one wxgate
/// serves. The client API hands these out instead.
pub const CREDENTIAL_PATHS: &[&str] = &[
    "/cgi-bin/token",
    "/cgi-bin/stable_token",
    "/cgi-bin/ticket/getticket",
];

/// `[proxy]`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Upstream path prefixes that may be called (default [`DEFAULT_ALLOW_PATHS`]).
    pub allow_paths: Vec<String>,
    /// Largest request body forwarded, bytes (default 33 554 432 = 32 MiB:
    /// WeChat's largest media upload is 20 MB). Bodies over 64 KiB are spooled
    /// to a temporary file (`$TMPDIR`), so memory stays flat and the body can
    /// be sent again after a token refresh.
    pub max_request_bytes: u64,
    /// Largest response passed back, bytes (default 67 108 864 = 64 MiB).
    pub max_response_bytes: u64,
    /// Time for the whole upstream exchange, bodies included, milliseconds
    /// (default 60 000).
    pub timeout_ms: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            allow_paths: DEFAULT_ALLOW_PATHS.iter().map(|&p| p.to_owned()).collect(),
            max_request_bytes: 32 << 20,
            max_response_bytes: 64 << 20,
            timeout_ms: 60_000,
        }
    }
}

pub(super) fn check(raw: RawProxy, p: &mut Problems) -> ProxyConfig {
    let defaults = ProxyConfig::default();
    let config = ProxyConfig {
        allow_paths: raw.allow_paths.unwrap_or(defaults.allow_paths),
        max_request_bytes: raw.max_request_bytes.unwrap_or(defaults.max_request_bytes),
        max_response_bytes: raw
            .max_response_bytes
            .unwrap_or(defaults.max_response_bytes),
        timeout_ms: raw.timeout_ms.unwrap_or(defaults.timeout_ms),
    };
    for (i, prefix) in config.allow_paths.iter().enumerate() {
        let safe = prefix.starts_with('/')
            && !prefix.split('/').any(|s| s == "." || s == "..")
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b));
        if !safe {
            p.add(
                format!("proxy.allow_paths[{i}]"),
                format!("{prefix:?}: use a path prefix like \"/cgi-bin/\""),
            );
        }
    }
    if !(1000..=600_000).contains(&config.timeout_ms) {
        p.add("proxy.timeout_ms", "use 1000 to 600000 milliseconds");
    }
    for (name, value) in [
        ("max_request_bytes", config.max_request_bytes),
        ("max_response_bytes", config.max_response_bytes),
    ] {
        if value == 0 {
            p.add(format!("proxy.{name}"), "must be more than 0");
        }
    }
    config
}
