//! The business webhook (docs/webhook.md): the push as JSON, signed with
//! HMAC-SHA256 over `timestamp.body`; the answer is a reply as JSON or 204.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;

use super::Inbox;
use sha2::Sha256;
use wxgate_proto::{Push, ReplyBody};

/// Header with the Unix time the request was signed at.
pub const TIMESTAMP_HEADER: &str = "x-wxgate-timestamp";
/// Header with `sha256=` + hex HMAC-SHA256(secret, `{timestamp}.{body}`).
pub const SIGNATURE_HEADER: &str = "x-wxgate-signature";

/// Why a webhook call gave no reply.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No answer, or a transport error.
    #[error("webhook unreachable: {0}")]
    Transport(String),
    /// An answer other than 2xx.
    #[error("webhook answered HTTP {0}")]
    Status(u16),
    /// A redirect: never followed (the push would go to another host).
    #[error("webhook answered a redirect (HTTP {0}) to {1:.200}; redirects are not followed: configure the final URL")]
    Redirect(u16, String),
    /// A 200 whose body is not a reply.
    #[error("webhook answer is not a reply: {0}")]
    Body(String),
}

/// `sha256=` + hex HMAC-SHA256 of `{timestamp}.{body}` with `secret`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Calls the inbox's webhook with `push`, who sent it (`official`,
/// `miniprogram`, `wecom`) and its push mode (`plain`: its content is not
/// authenticated by WeChat's signature); `Ok(None)` when it answers 204 or an
/// empty body, or the inbox has no webhook.
pub async fn call(
    http: &reqwest::Client,
    app: &Inbox,
    push: &Push,
    now: u64,
    timeout: Duration,
) -> Result<Option<ReplyBody>, WebhookError> {
    let (Some(url), Some(secret)) = (&app.webhook, &app.webhook_secret) else {
        return Ok(None);
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "appid": app.owner,
        "family": app.family.push_name,
        "mode": app.mode.name(),
        "push": push,
    }))
    .expect("a push serialises");
    let response = http
        .post(url.clone())
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(
            SIGNATURE_HEADER,
            signature(secret.expose_secret(), now, &body),
        )
        .body(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| WebhookError::Transport(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        let location = response.headers().get(reqwest::header::LOCATION);
        let location = location.and_then(|l| l.to_str().ok()).unwrap_or("nowhere");
        return Err(WebhookError::Redirect(status, location.to_owned()));
    }
    if !(200..300).contains(&status) {
        return Err(WebhookError::Status(status));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| WebhookError::Transport(e.without_url().to_string()))?;
    if status == 204 || bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| WebhookError::Body(e.to_string()))
}

/// The customer-service message (§6.1) that delivers `reply` to `openid`
/// later (WeCom's `message/send` takes the same fields, plus `agentid`);
/// `None` for a transfer to customer service, which only a passive reply can do.
pub fn custom_message(openid: &str, reply: &ReplyBody) -> Option<serde_json::Value> {
    use serde_json::json;
    let (msgtype, content) = match reply {
        ReplyBody::Text { content } => ("text", json!({ "content": content })),
        ReplyBody::Image { media_id } => ("image", json!({ "media_id": media_id })),
        ReplyBody::Voice { media_id } => ("voice", json!({ "media_id": media_id })),
        ReplyBody::Video {
            media_id,
            title,
            description,
        } => (
            "video",
            json!({ "media_id": media_id, "title": title, "description": description }),
        ),
        ReplyBody::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => (
            "music",
            json!({ "title": title, "description": description, "musicurl": music_url,
                    "hqmusicurl": hq_music_url, "thumb_media_id": thumb_media_id }),
        ),
        ReplyBody::News { articles } => (
            "news",
            json!({ "articles": articles.iter().map(|a| json!({
                "title": a.title, "description": a.description, "url": a.url, "picurl": a.pic_url,
            })).collect::<Vec<_>>() }),
        ),
        ReplyBody::TransferCustomerService { .. } => return None,
    };
    Some(json!({ "touser": openid, "msgtype": msgtype, msgtype: content }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", 1_700_000_000, b"{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
