//! `[upstream]`: the API bases of WeChat and WeCom (or a simulator's), the
//! per-call timeout and how often current tokens are probed.

use super::raw::RawUpstream;
use super::Problems;

/// `[upstream]`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// WeChat's API base (default `https://api.weixin.qq.com`), or a simulator.
    pub base_url: url::Url,
    /// WeCom's API base (default `https://qyapi.weixin.qq.com`), or a simulator.
    pub wecom_base_url: url::Url,
    /// Per-call timeout, milliseconds (default 5000).
    pub timeout_ms: u64,
    /// How often each current access token is checked with a cheap call,
    /// seconds (default 60; 0 turns the probe off).
    pub probe_interval_secs: u64,
}

/// Checks `[upstream]`, defaults filled in.
pub(super) fn check(raw: RawUpstream, p: &mut Problems) -> UpstreamConfig {
    let base = raw
        .base_url
        .as_deref()
        .unwrap_or("https://api.weixin.qq.com");
    let base_url = match url::Url::parse(base) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            u
        }
        parsed => {
            let why = parsed.map_or_else(
                |e| e.to_string(),
                |_| "use an http(s) URL with a host and nothing after the path".into(),
            );
            p.add("upstream.base_url", format!("{base:?}: {why}"));
            url::Url::parse("https://api.weixin.qq.com").expect("a valid URL")
        }
    };
    let wecom_base = raw
        .wecom_base_url
        .as_deref()
        .unwrap_or("https://qyapi.weixin.qq.com");
    let wecom_base_url = match url::Url::parse(wecom_base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        _ => {
            p.add(
                "upstream.wecom_base_url",
                format!("{wecom_base:?}: use an http(s) URL with a host"),
            );
            url::Url::parse("https://qyapi.weixin.qq.com").expect("a valid URL")
        }
    };
    let upstream = UpstreamConfig {
        base_url,
        wecom_base_url,
        timeout_ms: raw.timeout_ms.unwrap_or(5000),
        probe_interval_secs: raw.probe_interval_secs.unwrap_or(60),
    };
    if upstream.probe_interval_secs != 0 {
        p.within(
            "upstream.probe_interval_secs",
            upstream.probe_interval_secs,
            10..=86_400,
            "seconds (or 0: no probe)",
        );
    }
    p.within(
        "upstream.timeout_ms",
        upstream.timeout_ms,
        100..=10_000,
        "milliseconds (refresh leases last 30 s)",
    );
    upstream
}
