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

/// A path never forwarded, with what to use instead (the refusal's hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedPath {
    /// The path, and everything below it.
    pub prefix: &'static str,
    /// What to use instead: the hint of the refusal.
    pub instead: &'static str,
}

/// What an Official Account's or Mini Program's credential path is refused with.
const USE_CLIENT_API: &str =
    "get credentials from the client API (GET /v1/apps/{appid}/access_token); \
                              fetching them directly would invalidate the token wxgate serves";
/// The same for WeCom's (a repeated gettoken leaves the live token valid).
const USE_WECOM_CLIENT_API: &str = "get WeCom credentials from the client API \
                                    (GET /v1/wecom/{corpid}/{agent}/access_token, jsapi_ticket, \
                                    agent_config_ticket): wxgate keeps them for every instance";

/// What the Open Platform's credential paths are refused with, spelled otherwise
/// than the WeChat-compatible endpoints that answer them.
const USE_COMPONENT_CLIENT_API: &str = "get the platform's credentials from wxgate: \
     POST /cgi-bin/component/api_component_token (WeChat-compatible, the platform's secret), \
     GET /v1/components/{component_appid}/component_access_token, GET /v1/apps/{authorizer_appid}/access_token";

/// The Open Platform's APIs: forwarded by the façade only, for a
/// `component_access_token` wxgate issued (see `http::facade`).
pub const COMPONENT_PREFIX: &str = "/cgi-bin/component";

/// Paths never forwarded, whatever the allow-list says: each issues a
/// credential, and a classic token fetch would invalidate the one wxgate
/// serves (WeCom's spend the app's hourly ticket quota). The client API
/// hands these out instead.
pub const CREDENTIAL_PATHS: &[ReservedPath] = &[
    ReservedPath {
        prefix: "/cgi-bin/token",
        instead: USE_CLIENT_API,
    },
    ReservedPath {
        prefix: "/cgi-bin/stable_token",
        instead: USE_CLIENT_API,
    },
    ReservedPath {
        prefix: "/cgi-bin/ticket/getticket",
        instead: USE_CLIENT_API,
    },
    ReservedPath {
        prefix: "/cgi-bin/gettoken",
        instead: USE_WECOM_CLIENT_API,
    },
    ReservedPath {
        prefix: "/cgi-bin/get_jsapi_ticket",
        instead: USE_WECOM_CLIENT_API,
    },
    ReservedPath {
        prefix: "/cgi-bin/ticket/get",
        instead: USE_WECOM_CLIENT_API,
    },
    ReservedPath {
        prefix: "/cgi-bin/component/api_component_token",
        instead: USE_COMPONENT_CLIENT_API,
    },
    ReservedPath {
        prefix: "/cgi-bin/component/api_authorizer_token",
        instead: USE_COMPONENT_CLIENT_API,
    },
];

/// WeChat's credential-administration and diagnostic APIs, never
/// forwarded for a token or a client key (issue #24): a rid lookup answers
/// with the URL of the call, token included, so a leaked old token would
/// renew itself; a quota reset spends one of the month's ten; the Open
/// Platform's calls act for other accounts. wxgate's admin API does what an
/// operator needs of them, behind the admin key.
///
/// Paths kept behind the admin key, whatever the allow-list says; the first
/// that names a path gives its hint.
pub const ADMIN_PATHS: &[ReservedPath] = &[
    ReservedPath {
        prefix: "/cgi-bin/openapi/rid/get",
        instead: "look the rid up with the admin key: GET /v1/apps/{appid}/rid/{rid}, \
                  `wxgate rid RID --app APPID` or the status page",
    },
    ReservedPath {
        prefix: "/cgi-bin/openapi/quota/get",
        instead: "read the token API's quota with the admin key: GET /v1/apps/{appid}/quota \
                  or the status page",
    },
    ReservedPath {
        prefix: "/cgi-bin/openapi",
        instead: "WeChat's diagnostics are wxgate's admin API (admin key): \
                  GET /v1/apps/{appid}/rid/{rid}, GET /v1/apps/{appid}/quota, \
                  POST /v1/apps/{appid}/clear_quota",
    },
    ReservedPath {
        prefix: "/cgi-bin/clear_quota",
        instead: "reset the quota with the admin key: POST /v1/apps/{appid}/clear_quota \
                  or the status page (10 resets a month)",
    },
    ReservedPath {
        prefix: "/cgi-bin/component/api_start_push_ticket",
        instead: "it takes the platform's secret; wxgate asks WeChat to push the Open Platform's \
                  verify ticket itself, whenever none came for 20 minutes",
    },
    ReservedPath {
        prefix: COMPONENT_PREFIX,
        instead: "the Open Platform's APIs are forwarded by the WeChat API façade only, with the \
                  component_access_token wxgate serves \
                  (GET /v1/components/{component_appid}/component_access_token)",
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

/// Why a path is never forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// It issues a credential ([`CREDENTIAL_PATHS`]).
    Credential(&'static ReservedPath),
    /// It is one of WeChat's admin APIs ([`ADMIN_PATHS`]).
    Admin(&'static ReservedPath),
}

/// Whether `path` is never forwarded, and why, however it is spelled:
/// compared percent-decoded, ASCII-lowercased, with empty and `.` segments
/// dropped and trailing dots and spaces cut off each segment (`/cgi-bin/Token`,
/// `/cgi-bin/ticket/GetTicket.`, `/cgi-bin/%74oken/`), and including
/// anything below one (`/cgi-bin/token/x`). A server may well route such
/// spellings to the same handler; none is a business API. The path is
/// normalised once for both tables.
pub fn reserved(path: &str) -> Option<Reserved> {
    let normal = normal(path);
    let find = |table: &'static [ReservedPath]| table.iter().find(|r| names(&normal, r.prefix));
    find(CREDENTIAL_PATHS)
        .map(Reserved::Credential)
        .or_else(|| find(ADMIN_PATHS).map(Reserved::Admin))
}

/// Whether `path` names one of [`CREDENTIAL_PATHS`] (see [`reserved`]).
pub fn is_credential_path(path: &str) -> bool {
    matches!(reserved(path), Some(Reserved::Credential(_)))
}

/// The [`ADMIN_PATHS`] entry `path` names (see [`reserved`]).
pub fn admin_path(path: &str) -> Option<&'static ReservedPath> {
    match reserved(path) {
        Some(Reserved::Admin(admin)) => Some(admin),
        _ => None,
    }
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
            ("/cgi-bin/component/api_start_push_ticket", "verify ticket"),
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
            "/cgi-bin/component/api_component_token",
            "/cgi-bin/component/API_Authorizer_Token.",
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
