//! The Open Platform's endpoints (families §3; `crate::platform` does the
//! work):
//!
//! - `POST /component/{component_appid}`: the platform's pushes (授权事件接收URL):
//!   the verify ticket every 10 minutes, authorization events; `success`.
//! - `GET/POST /component/{component_appid}/wx/{appid}`: its authorizers'
//!   pushes (消息与事件接收URL `…/wx/$APPID$`), with its token and key, as an
//!   app's (`http::wechat`); WeChat's release test (全网发布) from its test
//!   accounts, answered out of the box.
//! - Client API: `GET /v1/components/{id}/component_access_token`,
//!   `POST /v1/components/{id}/authorize_url`, `GET /v1/components/{id}/authorizers`,
//!   `POST /v1/components/{id}/authorizers` `{"auth_code"}` (the code the
//!   authorization page's redirect brings).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;
use wxgate_proto::component::authorize::AuthType;
use wxgate_proto::component::ComponentPush;

use wxgate_proto::component::release_check::{
    is_test_account, release_check_answer, reply_text, ReleaseCheckAnswer,
};

use super::client_api::Client;
use super::owner::PathOwner;
use super::wechat::{self, PushSource};
use super::{ApiError, AppState};
use crate::store::Kind;
use crate::token::TokenError;

/// The platform a path names, configured.
fn platform(
    state: &AppState,
    component: &str,
) -> Result<std::sync::Arc<crate::config::ComponentConfig>, ApiError> {
    state
        .platforms
        .config(component)
        .ok_or_else(|| TokenError::UnknownApp(component.to_owned()).into())
}

/// `POST /component/{component_appid}`.
pub(crate) async fn events(
    State(state): State<AppState>,
    source: super::wechat::PushSource,
    Path(component): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let config = platform(&state, &component)?;
    // From WeChat's callback ranges only, when the server says so.
    if let Some(owner) = state.owners.component_owner(&component) {
        super::wechat::check_source(&state, &owner, source).inspect_err(|e| {
            state.dispatcher.count_rejected(&component, e.code());
        })?;
    }
    let inbox =
        (config.inbox.clone()).ok_or_else(|| ApiError::PushNotConfigured(component.clone()))?;
    let query = query.unwrap_or_default();
    let plain = super::wechat::open_platform_push(&state, &inbox, &query, body)
        .await
        .inspect_err(|e| {
            state.dispatcher.count_rejected(&component, e.code());
            tracing::debug!(component, error = %e, "platform push refused");
        })?;
    let push = ComponentPush::parse(&plain)
        .map_err(|e| ApiError::BadRequest(format!("platform push: {e}")))?;
    if push.component_appid != component {
        return Err(ApiError::BadRequest(format!(
            "a push for platform {} sent to {component}",
            push.component_appid
        )));
    }
    state.platforms.on_push(&component, push).await;
    Ok(wxgate_proto::reply::SUCCESS.into_response())
}

/// `GET /component/{component_appid}/wx/{appid}`: an authorizer's
/// ownership check, or one for WeChat's release-test accounts, checked with
/// the platform's token.
pub(crate) async fn authorizer_verify(
    state: State<AppState>,
    source: PushSource,
    owner: PathOwner,
    Path((component, appid)): Path<(String, String)>,
    query: RawQuery,
) -> Result<Response, ApiError> {
    if !is_test_account(&appid) {
        return wechat::verify(state, source, owner, query).await;
    }
    let inbox = release_check_inbox(&state, &component)?;
    wechat::verify_inbox(&state, &inbox, &query.0.unwrap_or_default())
}

/// `POST /component/{component_appid}/wx/{appid}`: an authorizer's push
/// (`http::wechat`), or WeChat's release test (全网发布, families §3.8)
/// when `appid` is one of its test accounts, which are never authorizers
/// here: answered out of the box, sealed with the platform's token and key.
pub(crate) async fn authorizer_receive(
    state: State<AppState>,
    source: PushSource,
    owner: PathOwner,
    Path((component, appid)): Path<(String, String)>,
    query: RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_test_account(&appid) {
        return wechat::receive(state, source, owner, query, body).await;
    }
    let inbox = release_check_inbox(&state, &component)?;
    let query = query.0.unwrap_or_default();
    let opened = wechat::open_inbox_push(&state, &inbox, &query, body)
        .await
        .inspect_err(|e| {
            state.dispatcher.count_rejected(&component, e.code());
            tracing::debug!(component, appid, error = %e, "release-test push refused");
        })?;
    let reply = match release_check_answer(&opened.push) {
        Some(ReleaseCheckAnswer::ReplyText(text)) => {
            tracing::info!(component, appid, text, "release test: replied");
            Some(reply_text(&opened.push, &text, state.now()))
        }
        Some(ReleaseCheckAnswer::QueryAuthCode { code, openid }) => {
            tracing::info!(component, appid, "release test: exchanging its code");
            let platforms = state.platforms.clone();
            tokio::spawn(async move {
                match platforms
                    .release_check_query_auth(&component, &code, &openid)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(component, appid, "release test: sent <code>_from_api")
                    }
                    Err(e) => {
                        tracing::warn!(component, appid, error = %e, "release test: the customer-service text was not sent")
                    }
                }
            });
            None
        }
        None => None,
    };
    Ok(wechat::seal_inbox_reply(&state, &inbox, &opened, reply))
}

/// The platform's own inbox (its token and key, receiveid its appid), for
/// the release test's pushes.
fn release_check_inbox(
    state: &AppState,
    component: &str,
) -> Result<std::sync::Arc<crate::message::Inbox>, ApiError> {
    let config = platform(state, component)?;
    config
        .inbox
        .clone()
        .ok_or_else(|| ApiError::PushNotConfigured(component.to_owned()))
}

/// `GET /v1/components/{component_appid}/component_access_token`.
pub(crate) async fn component_access_token(
    State(state): State<AppState>,
    client: Client,
    Path(component): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    client.check(&state, &component)?;
    platform(&state, &component)?;
    let token = state
        .center
        .get(&component, Kind::AccessToken, &client.requester(&state))
        .await?;
    let now = state.now();
    Ok(Json(json!({
        "component_access_token": token.value,
        "expires_in": token.expires_in(now),
        "expires_at": token.expires_at,
    })))
}

/// The body of `POST /v1/components/{id}/authorize_url`.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthorizeRequest {
    redirect_uri: String,
    /// 1 Official Accounts, 2 Mini Programs, 3 both (WeChat's numbers).
    auth_type: Option<u8>,
    biz_appid: Option<String>,
}

/// `POST /v1/components/{component_appid}/authorize_url`.
pub(crate) async fn authorize_url(
    State(state): State<AppState>,
    client: Client,
    Path(component): Path<String>,
    body: Result<Json<AuthorizeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::platform::AuthorizeUrl>, ApiError> {
    client.check(&state, &component)?;
    platform(&state, &component)?;
    let Json(request) = body.map_err(|e| {
        ApiError::json(
            e,
            r#"{"redirect_uri": "https://…", "auth_type": 3, "biz_appid": "wx…"}"#,
        )
    })?;
    let redirect = url::Url::parse(&request.redirect_uri)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "redirect_uri: an http(s) URL on the platform's 授权发起页域名".into(),
            )
        })?;
    let auth_type = match request.auth_type {
        None => None,
        Some(1) => Some(AuthType::Official),
        Some(2) => Some(AuthType::Miniprogram),
        Some(3) => Some(AuthType::Both),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "auth_type {other}: use 1 (Official Accounts), 2 (Mini Programs) or 3 (both)"
            )))
        }
    };
    let url = state
        .platforms
        .authorize_url(&component, redirect.as_str(), auth_type, request.biz_appid)
        .await?;
    Ok(Json(url))
}

/// `GET /v1/components/{component_appid}/authorizers`.
pub(crate) async fn authorizers(
    State(state): State<AppState>,
    client: Client,
    Path(component): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    client.check(&state, &component)?;
    platform(&state, &component)?;
    let list = state.platforms.authorizers(&component).await;
    Ok(Json(json!({ "authorizers": list })))
}

/// The body of `POST /v1/components/{id}/authorizers`.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthCode {
    auth_code: String,
}

/// `POST /v1/components/{component_appid}/authorizers` `{"auth_code"}`:
/// the code the authorization page's redirect brought (`?auth_code=`),
/// exchanged once (the `authorized` push brings the same one).
pub(crate) async fn authorized(
    State(state): State<AppState>,
    client: Client,
    Path(component): Path<String>,
    body: Result<Json<AuthCode>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::platform::Authorized>, ApiError> {
    client.check(&state, &component)?;
    platform(&state, &component)?;
    let Json(AuthCode { auth_code }) =
        body.map_err(|e| ApiError::json(e, r#"{"auth_code": "queryauthcode@@@…"}"#))?;
    let done = state
        .platforms
        .exchange(&component, auth_code.trim())
        .await
        .map_err(ApiError::Upstream)?;
    Ok(Json(done))
}
