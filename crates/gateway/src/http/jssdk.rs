//! `POST /v1/apps/{appid}/jssdk/signature`: `wx.config` parameters for a page
//! on one of the app's JS safe domains (protocol reference §5.2–5.3), and
//! `POST /v1/wecom/{corpid}/{agent}/jssdk/signature`: WeCom's `wx.config`
//! (corp ticket) and `wx.agentConfig` (the app's ticket), each with its own
//! nonce and timestamp (families reference §1.4).

use axum::extract::State;
use axum::response::Json;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use super::client_api::Client;
use super::owner::PathOwner;
use super::{ApiError, AppState};
use crate::family::JsSdk;
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

/// The signature answer: `wx.config`'s parameters, or for WeCom both `wx.config`'s and `wx.agentConfig`'s.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Signatures {
    /// The family's `wx.config`.
    Config(SignatureAnswer),
    /// WeCom's pair.
    WeCom(WecomSignatures),
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

/// Signs `url` (its `#` fragment dropped) as the owner's family wants: with
/// the jsapi_ticket for `wx.config`; for WeCom also with the app's
/// agent_config ticket for `wx.agentConfig`, each with its own nonce and timestamp.
pub(crate) async fn signature(
    State(state): State<AppState>,
    client: Client,
    owner: PathOwner,
    body: Result<Json<SignatureRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Signatures>, ApiError> {
    client.check(&state, owner.key()?)?;
    let Json(request) = body.map_err(|e| ApiError::json(e, r#"{"url": "…"}"#))?;
    let owner = owner.known()?;
    // A family without the JS-SDK (a Mini Program) says so, before any
    // domain check could suggest adding one.
    if !owner.family.kinds.contains(&Kind::JsapiTicket) {
        return Err(crate::token::TokenError::NotIssued {
            owner: owner.key.clone(),
            kind: Kind::JsapiTicket,
            why: owner.family.lacks,
        }
        .into());
    }
    let agentid = match owner.family.js_sdk {
        JsSdk::Config => None,
        JsSdk::ConfigAndAgentConfig => Some(owner.agentid.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{} is a special secret, not an app with an agentid: it has no JS-SDK",
                owner.key
            ))
        })?),
    };
    check_domain(&request.url, &owner.js_domains)?;
    let by = client.requester(&state);
    let sign = |ticket: &str| {
        let timestamp = state.now().to_string();
        let nonce = Alphanumeric.sample_string(&mut rand::rng(), 16);
        let signature = wxgate_proto::jssdk_signature(ticket, &nonce, &timestamp, &request.url);
        (timestamp, nonce, signature)
    };
    let ticket = state.center.get(&owner.key, Kind::JsapiTicket, &by).await?;
    // The id wx.config names: the appid, or WeCom's corpid.
    let app_id = owner.corp().unwrap_or(&owner.key).to_owned();
    let (timestamp, nonce_str, signature) = sign(&ticket.value);
    let config = SignatureAnswer {
        url: wxgate_proto::jssdk::signed_url(&request.url).to_owned(),
        app_id,
        timestamp,
        nonce_str,
        signature,
    };
    let Some(agentid) = agentid else {
        return Ok(Json(Signatures::Config(config)));
    };
    let agent_ticket = (state.center)
        .get(&owner.key, Kind::AgentConfigTicket, &by)
        .await?;
    let (timestamp, nonce_str, signature) = sign(&agent_ticket.value);
    Ok(Json(Signatures::WeCom(WecomSignatures {
        agent_config: AgentConfig {
            corpid: config.app_id.clone(),
            agentid,
            timestamp,
            nonce_str,
            signature,
        },
        config,
    })))
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
