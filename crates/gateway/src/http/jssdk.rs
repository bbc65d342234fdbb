//! `POST /v1/apps/{appid}/jssdk/signature`: `wx.config` parameters for a page
//! on one of the app's JS safe domains (protocol reference §5.2–5.3), and
//! `POST /v1/wecom/{corpid}/{agent}/jssdk/signature`: WeCom's `wx.config`
//! (corp ticket) and `wx.agentConfig` (the app's ticket), each with its own
//! nonce and timestamp (families reference §1.4).

use axum::extract::{Path, State};
use axum::response::Json;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use super::client_api::Client;
use super::owner::WecomApp;
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
        .owners()
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

/// `wx.agentConfig`'s parameters.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentConfig {
    corpid: String,
    agentid: u64,
    timestamp: String,
    nonce_str: String,
    signature: String,
}

/// Both WeCom signatures for one page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WecomSignatures {
    config: SignatureAnswer,
    agent_config: AgentConfig,
}

/// Signs `url` for WeCom with the corp's jsapi_ticket (`config`) and the
/// app's agent_config ticket (`agentConfig`).
pub(crate) async fn wecom_signature(
    State(state): State<AppState>,
    client: Client,
    WecomApp(owner): WecomApp,
    body: Result<Json<SignatureRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<WecomSignatures>, ApiError> {
    client.check(&state, &owner)?;
    let Json(request) = body.map_err(|e| ApiError::json(e, r#"{"url": "…"}"#))?;
    let app = state
        .center
        .owners()
        .wecom_app(&owner)
        .expect("a resolved owner is configured");
    let agentid = app.agentid.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{owner} is a special secret, not an app with an agentid: it has no JS-SDK"
        ))
    })?;
    check_domain(&request.url, &app.js_domains)?;
    let by = client.requester(&state);
    let corp_ticket = state.center.get(&owner, Kind::JsapiTicket, &by).await?;
    let agent_ticket = state
        .center
        .get(&owner, Kind::AgentConfigTicket, &by)
        .await?;
    let sign = |ticket: &str| {
        let timestamp = state.center.now().to_string();
        let nonce = Alphanumeric.sample_string(&mut rand::rng(), 16);
        let signature = wxgate_proto::jssdk_signature(ticket, &nonce, &timestamp, &request.url);
        (timestamp, nonce, signature)
    };
    let (timestamp, nonce_str, signature) = sign(&corp_ticket.value);
    let config = SignatureAnswer {
        url: wxgate_proto::jssdk::signed_url(&request.url).to_owned(),
        app_id: app.corpid.clone(),
        timestamp,
        nonce_str,
        signature,
    };
    let (timestamp, nonce_str, signature) = sign(&agent_ticket.value);
    Ok(Json(WecomSignatures {
        config,
        agent_config: AgentConfig {
            corpid: app.corpid.clone(),
            agentid,
            timestamp,
            nonce_str,
            signature,
        },
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
