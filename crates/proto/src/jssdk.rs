//! JS-SDK `wx.config` signature (protocol reference §5.2).

use crate::signature::Sha1;

/// The URL that is signed: the page URL without `#` and what follows, otherwise
/// byte for byte as the browser has it (no escaping, no normalisation).
pub fn signed_url(url: &str) -> &str {
    url.split_once('#').map_or(url, |(before, _)| before)
}

/// `signature` for `wx.config`: SHA-1 of
/// `jsapi_ticket=…&noncestr=…&timestamp=…&url=…` with the fragment removed.
pub fn jssdk_signature(jsapi_ticket: &str, noncestr: &str, timestamp: &str, url: &str) -> String {
    let mut hasher = Sha1::new();
    for part in [
        "jsapi_ticket=",
        jsapi_ticket,
        "&noncestr=",
        noncestr,
        "&timestamp=",
        timestamp,
        "&url=",
        signed_url(url),
    ] {
        hasher.update(part.as_bytes());
    }
    crate::signature::lower_hex(hasher.finalize())
}
