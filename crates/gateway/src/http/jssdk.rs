//! `POST /v1/apps/{appid}/jssdk/signature`: `wx.config` parameters for a page
//! on one of the app's JS safe domains (protocol reference §5.2–5.3).

use axum::extract::{Path, State};
use axum::response::Json;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use super::client_api::Client;
use super::{ApiError, AppState};
use crate::store::Kind;

#[derive(Deserialize)]
pub(crate) struct SignatureRequest {
    url: String,
}

/// The parameters `wx.config` takes, plus the URL that was signed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignatureAnswer {
    app_id: String,
    timestamp: String,
    nonce_str: String,
    signature: String,
    url: String,
}

/// Signs `url` (its `#` fragment dropped) with the app's jsapi_ticket.
pub(crate) async fn signature(
    State(state): State<AppState>,
    client: Client,
    Path(appid): Path<String>,
    body: Result<Json<SignatureRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<SignatureAnswer>, ApiError> {
    client.check(&state, &appid)?;
    let Json(request) = body.map_err(|e| ApiError::json(e, r#"{"url": "…"}"#))?;
    let app = state
        .center
        .app(&appid)
        .ok_or_else(|| crate::token::TokenError::UnknownApp(appid.clone()))?;
    check_domain(&request.url, &app.js_domains)?;
    let ticket = state
        .center
        .get(&appid, Kind::JsapiTicket, &client.requester(&state))
        .await?;
    let timestamp = state.center.now().to_string();
    let nonce = Alphanumeric.sample_string(&mut rand::rng(), 16);
    let signature = wxgate_proto::jssdk_signature(&ticket.value, &nonce, &timestamp, &request.url);
    Ok(Json(SignatureAnswer {
        url: wxgate_proto::jssdk::signed_url(&request.url).to_owned(),
        app_id: appid,
        timestamp,
        nonce_str: nonce,
        signature,
    }))
}

/// The page's host must equal a JS safe domain or be under one; http(s) only.
fn check_domain(url: &str, domains: &[String]) -> Result<(), ApiError> {
    let parsed =
        url::Url::parse(url).map_err(|e| ApiError::BadRequest(format!("url {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::UrlNotAllowed(format!(
            "{url:?}: only http and https pages can use the JS-SDK"
        )));
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let allowed = domains.iter().any(|d| {
        host == *d
            || host
                .strip_suffix(d.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    });
    if allowed {
        Ok(())
    } else {
        Err(ApiError::UrlNotAllowed(format!(
            "{host:?} is not on this app's JS safe domains ({domains:?})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::check_domain;

    #[test]
    fn hosts_must_equal_or_be_under_a_safe_domain() {
        let domains = ["example.com".to_owned()];
        for ok in [
            "https://example.com/",
            "http://www.example.com/a?b#c",
            "https://a.b.example.com:8443/",
        ] {
            assert!(check_domain(ok, &domains).is_ok(), "{ok}");
        }
        for bad in [
            "https://badexample.com/",
            "https://example.com.evil.cn/",
            "ftp://example.com/",
            "javascript:alert(1)",
        ] {
            assert!(check_domain(bad, &domains).is_err(), "{bad}");
        }
        assert!(check_domain("not a url", &domains).is_err());
    }
}
