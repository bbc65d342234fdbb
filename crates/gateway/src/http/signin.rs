//! User sign-in for business servers (client API) and for SDKs (the façade):
//!
//! - `GET /v1/apps/{appid}/oauth/authorize_url?redirect_uri&scope&state` → `{"url"}`;
//! - `POST /v1/apps/{appid}/oauth/exchange` `{"code"}` → the user's openid and tokens;
//! - `POST /v1/apps/{appid}/oauth/refresh` `{"refresh_token"}`;
//! - `GET /v1/apps/{appid}/oauth/userinfo?access_token&openid&lang`;
//! - `POST /v1/apps/{appid}/jscode2session` `{"js_code"}` → `{"openid","unionid"?,"session_key"}`;
//! - on the façade, WeChat's own paths for these (`/sns/…`), answered in
//!   WeChat's shape: the code exchanges for a configured app whose secret
//!   matches, through the same single exchange; refresh for a configured
//!   app; userinfo and `sns/auth` with a user token wxgate handed out.
//!
//! Which owner signs users in which way is its family's data.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::client_api::Client;
use super::owner::PathOwner;
use super::throttle::{Check, Peer};
use super::{compat, ApiError, AppState};
use crate::family::{CodeExchange, FAMILIES, JSCODE2SESSION, WEB_OAUTH};
use crate::signin::exchange::not_supported;
use crate::signin::{authorize, read_answer, SNAPSHOT_HINT};
use crate::token::owners::Owner;
use crate::token::TokenError;

/// The owner's exchange `exchange`, or why its family has none.
fn exchange_of(owner: &Owner, exchange: &CodeExchange) -> Result<&'static CodeExchange, ApiError> {
    (owner.family.exchange(exchange.name)).ok_or_else(|| not_supported(owner, exchange.name).into())
}

/// The client's owner, in its scope and configured.
fn owner_for(
    state: &AppState,
    client: &Client,
    owner: &PathOwner,
) -> Result<std::sync::Arc<Owner>, ApiError> {
    client.check(state, owner.key()?)?;
    owner.known()
}

/// WeChat's answer as the client API gives it: its fields, a snapshot-page
/// user flagged with a `hint`; an errcode as an error with its hint.
fn client_answer(owner: &Owner, answer: &str) -> Result<Json<Value>, ApiError> {
    let mut fields: Map<String, Value> = read_answer(owner.family, &owner.key, answer)?;
    if fields.get("is_snapshotuser").and_then(Value::as_i64) == Some(1) {
        fields.insert("hint".into(), SNAPSHOT_HINT.into());
    }
    Ok(Json(Value::Object(fields)))
}

#[derive(Deserialize)]
pub(crate) struct AuthorizeQuery {
    redirect_uri: String,
    scope: Option<String>,
    state: String,
}

/// `GET /v1/apps/{appid}/oauth/authorize_url?redirect_uri&scope&state` →
/// `{"url"}`; 422 when `redirect_uri` is not on the app's `oauth_domains`.
pub(crate) async fn authorize_url(
    State(state): State<AppState>,
    client: Client,
    owner: PathOwner,
    query: Result<Query<AuthorizeQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let owner = owner_for(&state, &client, &owner)?;
    exchange_of(&owner, &WEB_OAUTH)?;
    let Query(q) = query.map_err(|e| {
        ApiError::BadRequest(format!(
            "{e}; expected ?redirect_uri=…&scope=snsapi_base|snsapi_userinfo&state=…"
        ))
    })?;
    let domains = owner.app.as_ref().map_or(&[][..], |a| &a.oauth_domains);
    let scope = q.scope.as_deref().unwrap_or("snsapi_base");
    let url = authorize::authorize_url(&owner.key, &q.redirect_uri, scope, &q.state, domains)?;
    Ok(Json(serde_json::json!({ "url": url })))
}

#[derive(Deserialize)]
pub(crate) struct CodeBody {
    code: String,
}

/// `POST /v1/apps/{appid}/oauth/exchange` `{"code"}` →
/// `{"openid","unionid"?,"access_token","refresh_token","expires_in","scope","is_snapshotuser"?}`.
pub(crate) async fn oauth_exchange(
    State(state): State<AppState>,
    client: Client,
    owner: PathOwner,
    body: Result<Json<CodeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let owner = owner_for(&state, &client, &owner)?;
    let exchange = exchange_of(&owner, &WEB_OAUTH)?;
    let Json(body) = body.map_err(|e| ApiError::json(e, r#"{"code": "…"}"#))?;
    let exchanged = state.signin.exchange(&owner, exchange, &body.code).await?;
    client_answer(&owner, &exchanged.answer)
}

#[derive(Deserialize)]
pub(crate) struct JsCodeBody {
    js_code: String,
}

/// `POST /v1/apps/{appid}/jscode2session` `{"js_code"}` →
/// `{"openid","unionid"?,"session_key"}`: a Mini Program's `wx.login`.
pub(crate) async fn jscode2session(
    State(state): State<AppState>,
    client: Client,
    owner: PathOwner,
    body: Result<Json<JsCodeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let owner = owner_for(&state, &client, &owner)?;
    let exchange = exchange_of(&owner, &JSCODE2SESSION)?;
    let Json(body) = body.map_err(|e| ApiError::json(e, r#"{"js_code": "…"}"#))?;
    let exchanged = state
        .signin
        .exchange(&owner, exchange, &body.js_code)
        .await?;
    client_answer(&owner, &exchanged.answer)
}

#[derive(Deserialize)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

/// `POST /v1/apps/{appid}/oauth/refresh` `{"refresh_token"}` → a new user access token.
pub(crate) async fn oauth_refresh(
    State(state): State<AppState>,
    client: Client,
    owner: PathOwner,
    body: Result<Json<RefreshBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let owner = owner_for(&state, &client, &owner)?;
    let exchange = exchange_of(&owner, &WEB_OAUTH)?;
    let Json(body) = body.map_err(|e| ApiError::json(e, r#"{"refresh_token": "…"}"#))?;
    let answer = (state.signin)
        .refresh(&owner, exchange, &body.refresh_token)
        .await?;
    client_answer(&owner, &answer)
}

#[derive(Deserialize)]
pub(crate) struct UserinfoQuery {
    access_token: String,
    openid: String,
    lang: Option<String>,
}

/// `GET /v1/apps/{appid}/oauth/userinfo?access_token&openid&lang` → WeChat's profile record.
pub(crate) async fn oauth_userinfo(
    State(state): State<AppState>,
    client: Client,
    owner: PathOwner,
    query: Result<Query<UserinfoQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let owner = owner_for(&state, &client, &owner)?;
    let exchange = exchange_of(&owner, &WEB_OAUTH)?;
    let Query(q) = query.map_err(|e| {
        ApiError::BadRequest(format!("{e}; expected ?access_token=…&openid=…&lang=zh_CN"))
    })?;
    let endpoint = exchange
        .userinfo
        .ok_or_else(|| not_supported(&owner, "userinfo"))?;
    let lang = q.lang.as_deref().unwrap_or("zh_CN");
    let query = [
        ("access_token", q.access_token.as_str()),
        ("openid", &q.openid),
        ("lang", lang),
    ];
    let answer = state.signin.user_call(&owner, endpoint, &query).await?;
    client_answer(&owner, &answer)
}

/// What a façade path is to sign-in, from the families' data.
enum FacadePath {
    /// A code exchange (appid + secret).
    Exchange,
    /// A refresh (appid, no secret).
    Refresh,
    /// A call with a user access token (userinfo, `sns/auth`).
    UserToken(&'static str),
}

fn facade_path(path: &str) -> Option<FacadePath> {
    let exchanges = FAMILIES.iter().flat_map(|f| f.sign_in.iter());
    for exchange in exchanges {
        if exchange.endpoint == path {
            return Some(FacadePath::Exchange);
        }
        if exchange.refresh == Some(path) {
            return Some(FacadePath::Refresh);
        }
        if let Some(endpoint) = [exchange.userinfo, exchange.auth]
            .into_iter()
            .flatten()
            .find(|e| *e == path)
        {
            return Some(FacadePath::UserToken(endpoint));
        }
    }
    None
}

/// Serves a façade call on a sign-in path (`None`: not one), in WeChat's
/// shape: WeChat's answer as it came, or wxgate's refusal.
pub(crate) async fn facade(
    state: &AppState,
    peer: Peer,
    path: &str,
    query: Option<&str>,
) -> Option<Result<Response, ApiError>> {
    let role = facade_path(path)?;
    let param = |name: &str| super::facade::param(query, name).unwrap_or_default();
    let appid = param("appid");
    let answer = match role {
        FacadePath::Exchange => {
            let secret = super::facade::param(query, "secret")
                .or_else(|| super::facade::param(query, "appsecret"))
                .unwrap_or_default();
            facade_exchange(state, peer, path, &appid, &secret, &param).await
        }
        FacadePath::Refresh => facade_refresh(state, peer, &appid, &param).await,
        FacadePath::UserToken(endpoint) => facade_user_call(state, peer, endpoint, &param).await,
    };
    Some(answer.map(wechat_answer))
}

async fn facade_exchange(
    state: &AppState,
    peer: Peer,
    path: &str,
    appid: &str,
    secret: &str,
    param: &(dyn Fn(&str) -> String + Sync),
) -> Result<String, ApiError> {
    compat::check_secret(state, peer, appid, secret)?;
    let owner = known_app(state, appid)?;
    let exchange = owner.family.exchange_at(path).ok_or_else(|| {
        let asked = FAMILIES.iter().flat_map(|f| f.sign_in.iter());
        let asked = asked.into_iter().find(|e| e.endpoint == path);
        not_supported(&owner, asked.map_or("sign-in", |e| e.name))
    })?;
    if param("grant_type") != "authorization_code" {
        return Err(ApiError::InvalidGrant);
    }
    let code = param(exchange.code_param);
    Ok(state.signin.exchange(&owner, exchange, &code).await?.answer)
}

async fn facade_refresh(
    state: &AppState,
    peer: Peer,
    appid: &str,
    param: &(dyn Fn(&str) -> String + Sync),
) -> Result<String, ApiError> {
    let owner = known_app(state, appid)?;
    let exchange = exchange_of(&owner, &WEB_OAUTH)?;
    if param("grant_type") != "refresh_token" {
        return Err(ApiError::InvalidGrant);
    }
    // Anyone may relay a refresh (WeChat's own takes no secret): what is
    // no refresh token is not sent on, and refusals count against the peer.
    let refresh_token = param("refresh_token");
    let plausible = (1..=512).contains(&refresh_token.len())
        && (refresh_token.bytes()).all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !plausible {
        state
            .throttle
            .failed(peer, Check::AccessToken, state.now())?;
        return Err(ApiError::BadRequest(
            "refresh_token is not one WeChat issues".into(),
        ));
    }
    let answer = state
        .signin
        .refresh(&owner, exchange, &refresh_token)
        .await?;
    let refused = serde_json::from_str::<serde_json::Value>(&answer)
        .is_ok_and(|a| a["errcode"].as_i64().is_some_and(|c| c != 0));
    if refused {
        state
            .throttle
            .failed(peer, Check::AccessToken, state.now())?;
    }
    Ok(answer)
}

/// A user-token call is forwarded only with a token wxgate handed out (so
/// wxgate relays nobody else's calls), for that token's app.
async fn facade_user_call(
    state: &AppState,
    peer: Peer,
    endpoint: &'static str,
    param: &(dyn Fn(&str) -> String + Sync),
) -> Result<String, ApiError> {
    let token = param("access_token");
    let owner = match state.signin.user_token_owner(&token).await {
        Some(appid) => state.owners.app_owner(&appid),
        None => None,
    };
    let Some(owner) = owner else {
        state
            .throttle
            .failed(peer, Check::AccessToken, state.now())?;
        // 40001, as WeChat answers a bad token: the SDK signs the user in again.
        return Err(ApiError::InvalidToken);
    };
    let (openid, lang) = (param("openid"), param("lang"));
    let mut query = vec![
        ("access_token", token.as_str()),
        ("openid", openid.as_str()),
    ];
    if !lang.is_empty() {
        query.push(("lang", lang.as_str()));
    }
    Ok(state.signin.user_call(&owner, endpoint, &query).await?)
}

fn known_app(state: &AppState, appid: &str) -> Result<std::sync::Arc<Owner>, ApiError> {
    (state.owners.app_owner(appid)).ok_or_else(|| TokenError::UnknownApp(appid.to_owned()).into())
}

/// WeChat's JSON answer, as it came.
fn wechat_answer(answer: String) -> Response {
    let mut response = answer.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}
