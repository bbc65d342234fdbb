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
/// serves (WeCom's spend the app's hourly ticket quota). The client API
/// hands these out instead.
pub const CREDENTIAL_PATHS: &[&str] = &[
    "/cgi-bin/token",
    "/cgi-bin/stable_token",
    "/cgi-bin/ticket/getticket",
    "/cgi-bin/gettoken",
    "/cgi-bin/get_jsapi_ticket",
    "/cgi-bin/ticket/get",
];

/// One of WeChat's credential-administration and diagnostic APIs, never
/// forwarded for a token or a client key (issue #24): a rid lookup answers
/// with the URL of the call, token included, so a leaked old token would
/// renew itself; a quota reset spends one of the month's ten; the Open
/// Platform's calls act for other accounts. wxgate's admin API does what an
/// operator needs of them, behind the admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminPath {
    /// The path, and everything below it.
    pub prefix: &'static str,
    /// What to use instead: the hint of the refusal.
    pub instead: &'static str,
}

/// Paths kept behind the admin key, whatever the allow-list says; the first
/// that names a path gives its hint.
pub const ADMIN_PATHS: &[AdminPath] = &[
    AdminPath {
        prefix: "/cgi-bin/openapi/rid/get",
        instead: "look the rid up with the admin key: GET /v1/apps/{appid}/rid/{rid}, \
                  `wxgate rid RID --app APPID` or the status page",
    },
    AdminPath {
        prefix: "/cgi-bin/openapi/quota/get",
        instead: "read the token API's quota with the admin key: GET /v1/apps/{appid}/quota \
                  or the status page",
    },
    AdminPath {
        prefix: "/cgi-bin/openapi",
        instead: "WeChat's diagnostics are wxgate's admin API (admin key): \
                  GET /v1/apps/{appid}/rid/{rid}, GET /v1/apps/{appid}/quota, \
                  POST /v1/apps/{appid}/clear_quota",
    },
    AdminPath {
        prefix: "/cgi-bin/clear_quota",
        instead: "reset the quota with the admin key: POST /v1/apps/{appid}/clear_quota \
                  or the status page (10 resets a month)",
    },
    AdminPath {
        prefix: "/cgi-bin/component",
        instead: "the Open Platform's APIs are not forwarded until wxgate serves the \
                  Open Platform itself",
    },
];

/// `path` percent-decoded, ASCII-lowercased, with empty and `.` segments
/// dropped and trailing dots and spaces cut off each segment: how a lenient
/// server may read it.
fn normal(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut normal = String::with_capacity(decoded.len());
    for segment in decoded.split(['/', '\\']) {
        let segment = segment.trim_end_matches(['.', ' ']);
        if !segment.is_empty() {
            normal.push('/');
            normal.push_str(&segment.to_ascii_lowercase());
        }
    }
    normal
}

/// Whether the normal path is `prefix` or below it.
fn names(normal: &str, prefix: &str) -> bool {
    normal
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` names one of [`CREDENTIAL_PATHS`], however it is spelled:
/// compared percent-decoded, ASCII-lowercased, with empty and `.` segments
/// dropped and trailing dots and spaces cut off each segment (`/cgi-bin/Token`,
/// `/cgi-bin/ticket/GetTicket.`, `/cgi-bin/%74oken/`), and including
/// anything below one (`/cgi-bin/token/x`). A server may well route such
/// spellings to the same handler; none is a business API.
pub fn is_credential_path(path: &str) -> bool {
    let normal = normal(path);
    CREDENTIAL_PATHS.iter().any(|c| names(&normal, c))
}

/// The [`ADMIN_PATHS`] entry `path` names, however it is spelled (as
/// [`is_credential_path`] reads it).
pub fn admin_path(path: &str) -> Option<&'static AdminPath> {
    let normal = normal(path);
    ADMIN_PATHS.iter().find(|a| names(&normal, a.prefix))
}

/// `[proxy]`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Upstream path prefixes that may be called (default [`DEFAULT_ALLOW_PATHS`]).
    pub allow_paths: Vec<String>,
    /// Largest request body forwarded, bytes (default 33 554 432 = 32 MiB:
    /// WeChat's largest media upload is 20 MB). Bodies over 64 KiB are spooled
    /// to an anonymous temporary file in `$TMPDIR` (nothing left behind by a
    /// crash), so memory stays flat and the body can be sent again after a
    /// token refresh.
    pub max_request_bytes: u64,
    /// Largest response passed back, bytes (default 67 108 864 = 64 MiB).
    pub max_response_bytes: u64,
    /// Most bytes spooled to temporary files by all requests in flight
    /// together (default 268 435 456 = 256 MiB; at least `max_request_bytes`,
    /// at most 64 GiB). A body that would pass it is refused with HTTP 503.
    pub max_spool_bytes: u64,
    /// Most of `max_spool_bytes` one caller (a client key on `/proxy`, an
    /// app on the façade) may hold at once (default a quarter of it, but at
    /// least `max_request_bytes`; at most `max_spool_bytes`), so one caller's
    /// uploads, stalled or not, cannot leave the others none. Past it, 503.
    pub max_spool_bytes_per_caller: u64,
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
            max_spool_bytes: 256 << 20,
            max_spool_bytes_per_caller: 64 << 20,
            timeout_ms: 60_000,
        }
    }
}

pub(super) fn check(raw: RawProxy, p: &mut Problems) -> ProxyConfig {
    let defaults = ProxyConfig::default();
    let mut config = ProxyConfig {
        allow_paths: raw.allow_paths.unwrap_or(defaults.allow_paths),
        max_request_bytes: raw.max_request_bytes.unwrap_or(defaults.max_request_bytes),
        max_response_bytes: raw
            .max_response_bytes
            .unwrap_or(defaults.max_response_bytes),
        max_spool_bytes: raw.max_spool_bytes.unwrap_or(defaults.max_spool_bytes),
        // Derived from the two above unless given: set below.
        max_spool_bytes_per_caller: 0,
        timeout_ms: raw.timeout_ms.unwrap_or(defaults.timeout_ms),
    };
    config.max_spool_bytes_per_caller = raw.max_spool_bytes_per_caller.unwrap_or(
        (config.max_spool_bytes / 4)
            .max(config.max_request_bytes)
            .min(config.max_spool_bytes),
    );
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
    if !(config.max_request_bytes..=MAX_SPOOL_BYTES).contains(&config.max_spool_bytes) {
        p.add(
            "proxy.max_spool_bytes",
            format!(
                "use proxy.max_request_bytes ({}) to {MAX_SPOOL_BYTES} bytes: at least one largest body must fit",
                config.max_request_bytes
            ),
        );
    }
    if !(config.max_request_bytes..=config.max_spool_bytes)
        .contains(&config.max_spool_bytes_per_caller)
    {
        p.add(
            "proxy.max_spool_bytes_per_caller",
            format!(
                "use proxy.max_request_bytes ({}) to proxy.max_spool_bytes ({}) bytes",
                config.max_request_bytes, config.max_spool_bytes
            ),
        );
    }
    config
}

/// The largest `proxy.max_spool_bytes` accepted: 64 GiB.
const MAX_SPOOL_BYTES: u64 = 64 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_paths_match_in_any_spelling_and_name_what_to_use() {
        for (path, hint) in [
            ("/cgi-bin/openapi/rid/get", "/v1/apps/{appid}/rid/{rid}"),
            ("/cgi-bin/OpenAPI/Rid/Get.", "/v1/apps/{appid}/rid/{rid}"),
            ("/cgi-bin/openapi/quota/get", "GET /v1/apps/{appid}/quota"),
            (
                "/cgi-bin/openapi/quota/clear",
                "POST /v1/apps/{appid}/clear_quota",
            ),
            ("/cgi-bin/clear_quota", "POST /v1/apps/{appid}/clear_quota"),
            (
                "/cgi-bin/clear_quota/v2",
                "POST /v1/apps/{appid}/clear_quota",
            ),
            (
                "/cgi-bin/%63lear_quota",
                "POST /v1/apps/{appid}/clear_quota",
            ),
            ("/cgi-bin/component/api_create_preauthcode", "Open Platform"),
        ] {
            let found = admin_path(path).unwrap_or_else(|| panic!("{path}"));
            assert!(found.instead.contains(hint), "{path}: {}", found.instead);
        }
        for path in [
            "/cgi-bin/clear_quotas",
            "/cgi-bin/message/custom/send",
            "/wxa/openapi/rid/get",
            "/cgi-bin/components",
        ] {
            assert_eq!(admin_path(path), None, "{path}");
        }
    }

    #[test]
    fn credential_paths_match_in_any_spelling() {
        for path in [
            "/cgi-bin/token",
            "/cgi-bin/Token",
            "/cgi-bin/token.",
            "/cgi-bin/token/",
            "/cgi-bin//token",
            "/cgi-bin/./token",
            "/cgi-bin/%74oken",
            "/cgi-bin/%54OKEN%2e",
            "/cgi-bin/token/more",
            "/cgi-bin\\token",
            "/cgi-bin/stable_token",
            "/CGI-BIN/STABLE_TOKEN",
            "/cgi-bin/ticket/getticket",
            "/cgi-bin/ticket/GetTicket",
            "/cgi-bin/ticket/getticket.",
            "/cgi-bin/ticket%2Fgetticket",
        ] {
            assert!(is_credential_path(path), "{path}");
        }
        for path in [
            "/cgi-bin/tokens",
            "/cgi-bin/get_api_domain_ip",
            "/cgi-bin/ticket",
            "/cgi-bin/ticket/getticketx",
            "/cgi-bin/user/token",
        ] {
            assert!(!is_credential_path(path), "{path}");
        }
    }
}
