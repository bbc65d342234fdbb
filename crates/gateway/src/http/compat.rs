//! WeChat-compatible endpoints: an unmodified SDK that only changes its API base
//! URL gets wxgate's shared token instead of fetching (and invalidating) its own.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, RawQuery, State};
use axum::response::Json;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::error::WeChatShape;
use super::throttle::{Check, Peer};
use super::{ApiError, AppState};
use crate::family::WECOM;
use crate::store::Kind;
use crate::token::{Cause, Requester, TokenError};

#[derive(Deserialize, Default)]
pub(crate) struct TokenRequest {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    force_refresh: bool,
}

/// Checks grant_type and the app's own secret, as WeChat does; a wrong one
/// from a peer that failed too often lately is answered 45011 (see `throttle`).
fn authenticate(state: &AppState, peer: Peer, req: &TokenRequest) -> Result<String, ApiError> {
    if req.grant_type.as_deref() != Some("client_credential") {
        return Err(ApiError::InvalidGrant);
    }
    let appid = req.appid.clone().unwrap_or_default();
    check_secret(
        state,
        peer,
        &appid,
        req.secret.as_deref().unwrap_or_default(),
    )?;
    Ok(appid)
}

/// Checks that `appid` is configured and `secret` is its secret (constant
/// time); a wrong one from a peer that failed too often lately is answered
/// 45011 (see `throttle`).
pub(crate) fn check_secret(
    state: &AppState,
    peer: Peer,
    appid: &str,
    secret: &str,
) -> Result<(), ApiError> {
    let now = state.now();
    let Some(app) = state.owners.app(appid) else {
        state.throttle.failed(peer, Check::AppSecret, now)?;
        return Err(TokenError::UnknownApp(appid.to_owned()).into());
    };
    if !bool::from(
        app.secret
            .expose_secret()
            .as_bytes()
            .ct_eq(secret.as_bytes()),
    ) {
        tracing::debug!(appid, "WeChat-compatible call with a wrong secret");
        state.throttle.failed(peer, Check::AppSecret, now)?;
        return Err(ApiError::InvalidSecret);
    }
    Ok(())
}

/// The answer to a credential path called with the wrong method, as WeChat's:
/// HTTP 200, 43001 (`require GET method`) or 43002 (`require POST method`).
pub(crate) async fn require_get() -> WeChatShape {
    ApiError::RequireMethod("GET").into()
}

/// See [`require_get`].
pub(crate) async fn require_post() -> WeChatShape {
    ApiError::RequireMethod("POST").into()
}

fn token_body(credential: &crate::store::Credential, now: u64) -> Json<Value> {
    Json(json!({ "access_token": credential.value, "expires_in": credential.expires_in(now) }))
}

/// `GET /cgi-bin/token?grant_type=client_credential&appid=…&secret=…`
pub(crate) async fn token(
    State(state): State<AppState>,
    peer: Peer,
    query: Result<Query<TokenRequest>, QueryRejection>,
) -> Result<Json<Value>, WeChatShape> {
    // A query that is not WeChat's (a parameter twice, a non-boolean flag): its errcode, not a bare 400.
    let Query(req) = query.map_err(|e| ApiError::InvalidArgs(e.body_text()))?;
    let appid = authenticate(&state, peer, &req)?;
    let credential = state
        .center
        .get(&appid, Kind::AccessToken, &Requester::Sdk)
        .await?;
    Ok(token_body(&credential, state.now()))
}

/// `POST /cgi-bin/stable_token` with WeChat's JSON body. `force_refresh` forces
/// a new token (rate-limited; when limited, the current token is returned, as
/// WeChat does for forced calls less than 30 s apart).
pub(crate) async fn stable_token(
    State(state): State<AppState>,
    peer: Peer,
    body: Bytes,
) -> Result<Json<Value>, WeChatShape> {
    let req: TokenRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::DataFormat(e.to_string()))?;
    let appid = authenticate(&state, peer, &req)?;
    let center = &state.center;
    let mut credential = center
        .get(&appid, Kind::AccessToken, &Requester::Sdk)
        .await?;
    if req.force_refresh {
        match center
            .refresh(
                &appid,
                Kind::AccessToken,
                &credential.value,
                Cause::CompareAndRefresh(Requester::Sdk),
            )
            .await
        {
            Ok(fresh) => credential = fresh,
            Err(TokenError::RateLimited { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(token_body(&credential, state.now()))
}

/// `GET /cgi-bin/gettoken?corpid=…&corpsecret=…` (WeCom): the token of the
/// corp's app whose secret this is (a token belongs to corpid and secret).
pub(crate) async fn wecom_token(
    State(state): State<AppState>,
    peer: Peer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, WeChatShape> {
    let corpid = q.get("corpid").map(String::as_str).unwrap_or_default();
    let secret = q.get("corpsecret").map(String::as_str).unwrap_or_default();
    let now = state.now();
    let mut known_corp = false;
    let mut owner = None;
    // Every app of the corp is compared, in constant time each.
    for app in state.owners.wecom_apps_of(corpid) {
        known_corp = true;
        if bool::from(
            app.secret
                .expose_secret()
                .as_bytes()
                .ct_eq(secret.as_bytes()),
        ) {
            owner = Some(app.key.clone());
        }
    }
    let Some(owner) = owner else {
        state
            .throttle
            .failed(peer, Check::AppSecret, now)
            .map_err(ApiError::from)?;
        let error = if known_corp {
            ApiError::InvalidCorpSecret
        } else {
            TokenError::UnknownApp(format!("{corpid}/")).into()
        };
        return Err(error.into());
    };
    let credential = state
        .center
        .get(&owner, Kind::AccessToken, &Requester::Sdk)
        .await?;
    Ok(Json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "access_token": credential.value,
        "expires_in": credential.expires_in(now),
    })))
}

/// `GET /cgi-bin/get_jsapi_ticket?access_token=…` (WeCom): the corp's jsapi_ticket.
pub(crate) async fn wecom_jsapi_ticket(
    state: State<AppState>,
    peer: Peer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, WeChatShape> {
    wecom_ticket_for(state, peer, &q, Kind::JsapiTicket).await
}

/// `GET /cgi-bin/ticket/get?access_token=…&type=agent_config` (WeCom): the app's ticket.
pub(crate) async fn wecom_agent_ticket(
    state: State<AppState>,
    peer: Peer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, WeChatShape> {
    if q.get("type").map(String::as_str) != Some("agent_config") {
        return Err(ApiError::InvalidArgs("type must be agent_config".into()).into());
    }
    wecom_ticket_for(state, peer, &q, Kind::AgentConfigTicket).await
}

async fn wecom_ticket_for(
    State(state): State<AppState>,
    peer: Peer,
    q: &HashMap<String, String>,
    kind: Kind,
) -> Result<Json<Value>, WeChatShape> {
    serve_ticket(&state, peer, q, kind, |owner| {
        state.owners.get(owner).is_some_and(|o| o.family == &WECOM)
    })
    .await
}

/// A ticket for the presented access token's owner, when `family` accepts
/// it (an Official Account's token on WeChat's ticket API, a WeCom app's on
/// WeCom's).
async fn serve_ticket(
    state: &AppState,
    peer: Peer,
    q: &HashMap<String, String>,
    kind: Kind,
    family: impl Fn(&str) -> bool,
) -> Result<Json<Value>, WeChatShape> {
    let token = q
        .get("access_token")
        .map(String::as_str)
        .unwrap_or_default();
    let now = state.now();
    let owner = state
        .center
        .appid_of_presented_token(token)
        .filter(|owner| family(owner));
    let Some(owner) = owner else {
        state
            .throttle
            .failed(peer, Check::AccessToken, now)
            .map_err(ApiError::from)?;
        return Err(ApiError::InvalidToken.into());
    };
    let ticket = state.center.get(&owner, kind, &Requester::Sdk).await?;
    Ok(Json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "ticket": ticket.value,
        "expires_in": ticket.expires_in(state.now()),
    })))
}

/// `GET /cgi-bin/ticket/getticket?access_token=…&type=jsapi|wx_card`, for an
/// access token wxgate handed out (the current one, or the one it replaced until that one expires).
pub(crate) async fn ticket(
    State(state): State<AppState>,
    peer: Peer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, WeChatShape> {
    let kind = match q.get("type").map(String::as_str) {
        Some("jsapi") => Kind::JsapiTicket,
        Some("wx_card") => Kind::WxCardTicket,
        _ => return Err(ApiError::InvalidArgs("type must be jsapi or wx_card".into()).into()),
    };
    // An Official Account's or Mini Program's token: WeCom tokens have their own ticket APIs.
    serve_ticket(&state, peer, &q, kind, |appid| {
        state.owners.app(appid).is_some()
    })
    .await
}

/// The body of `POST /cgi-bin/component/api_component_token`.
#[derive(Deserialize, Default)]
pub(crate) struct ComponentTokenRequest {
    component_appid: Option<String>,
    component_appsecret: Option<String>,
    /// The caller's ticket: ignored (WeChat pushes wxgate its own).
    #[serde(default, rename = "component_verify_ticket")]
    _ticket: Option<String>,
}

/// Checks that `component` is a configured platform and `secret` its
/// secret (constant time); a wrong one from a peer that failed too often
/// lately is answered 45011 (see `throttle`). WeChat's errcodes: 61011 for
/// an unknown platform, 40125 for a wrong secret (families §3.2).
fn check_component_secret(
    state: &AppState,
    peer: Peer,
    component: &str,
    secret: &str,
) -> Result<(), ApiError> {
    let now = state.now();
    let Some(owner) = state.owners.component_owner(component) else {
        state.throttle.failed(peer, Check::AppSecret, now)?;
        return Err(ApiError::InvalidComponent(component.to_owned()));
    };
    if !bool::from(
        owner
            .secret
            .expose_secret()
            .as_bytes()
            .ct_eq(secret.as_bytes()),
    ) {
        tracing::debug!(
            component,
            "WeChat-compatible call with a wrong platform secret"
        );
        state.throttle.failed(peer, Check::AppSecret, now)?;
        return Err(ApiError::InvalidSecret);
    }
    Ok(())
}

/// `POST /cgi-bin/component/api_component_token` with WeChat's body: the
/// platform's `component_access_token` as the center holds it, for the
/// platform's secret. The caller's verify ticket is ignored: the center's
/// token was fetched with the one WeChat pushed to wxgate, and WeChat is
/// never called while the center holds a valid token.
pub(crate) async fn component_token(
    State(state): State<AppState>,
    peer: Peer,
    body: Bytes,
) -> Result<Json<Value>, WeChatShape> {
    let req: ComponentTokenRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::DataFormat(e.to_string()))?;
    let component = req.component_appid.unwrap_or_default();
    check_component_secret(
        &state,
        peer,
        &component,
        req.component_appsecret.as_deref().unwrap_or_default(),
    )?;
    let token = state
        .center
        .get(&component, Kind::AccessToken, &Requester::Sdk)
        .await?;
    Ok(Json(json!({
        "component_access_token": token.value,
        "expires_in": token.expires_in(state.now()),
    })))
}

/// The body of `POST /cgi-bin/component/api_authorizer_token`.
#[derive(Deserialize, Default)]
pub(crate) struct AuthorizerTokenRequest {
    component_appid: Option<String>,
    authorizer_appid: Option<String>,
    /// The caller's refresh token: ignored (the center keeps the current one).
    #[serde(default, rename = "authorizer_refresh_token")]
    _refresh_token: Option<String>,
}

/// The platform whose `component_access_token` the query presents: one
/// wxgate issued for a configured platform (the current one, or the one it
/// replaced until that one expires). Anything else is 40001, WeChat not called.
pub(crate) fn component_of_presented_token(
    state: &AppState,
    peer: Peer,
    query: Option<&str>,
) -> Result<String, ApiError> {
    let presented = super::facade::param(query, "component_access_token").unwrap_or_default();
    let platforms = state.platforms.component_appids();
    let component = (state.center).presented_by(&presented, platforms.iter().map(String::as_str));
    match component {
        Some(component) => Ok(component),
        None => {
            state
                .throttle
                .failed(peer, Check::AccessToken, state.now())?;
            Err(ApiError::InvalidComponentToken)
        }
    }
}

/// `POST /cgi-bin/component/api_authorizer_token?component_access_token=…`
/// with WeChat's body: the authorizer's access token as the center holds it,
/// and the refresh token the center keeps (the caller's is ignored: the
/// center rotates it). Authenticated by the presented component token,
/// which must be the named platform's.
pub(crate) async fn authorizer_token(
    State(state): State<AppState>,
    peer: Peer,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, WeChatShape> {
    let component = component_of_presented_token(&state, peer, query.as_deref())?;
    let req: AuthorizerTokenRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::DataFormat(e.to_string()))?;
    if req.component_appid.as_deref() != Some(component.as_str()) {
        // Another platform's appid with this platform's token: as WeChat, 40001.
        return Err(ApiError::InvalidComponentToken.into());
    }
    let appid = req.authorizer_appid.unwrap_or_default();
    let served = (state.owners.app_owner(&appid)).filter(|o| o.platform() == Some(&component));
    if served.is_none() {
        if let Some(revoked) = state.owners.revoked(&appid) {
            return Err(revoked.into());
        }
        return Err(ApiError::NotAuthorizer { appid, component }.into());
    }
    let center = &state.center;
    let token = center
        .get(&appid, Kind::AccessToken, &Requester::Sdk)
        .await?;
    let refresh = center
        .get(&appid, Kind::RefreshToken, &Requester::Sdk)
        .await?;
    Ok(Json(json!({
        "authorizer_access_token": token.value,
        "expires_in": token.expires_in(state.now()),
        "authorizer_refresh_token": refresh.value,
    })))
}
