//! `ANY /proxy/{appid}/{path…}`: WeChat's API with wxgate's token added
//! (see [`crate::proxy`]); `ANY /proxy/{corpid}/{agent}/{path…}`: WeCom's,
//! with the WeCom app's token. Refusals happen before anything is forwarded.
//! One of the engine's two fronts: this one authenticates a client key; the
//! façade ([`super::facade`]) the access token or secret an SDK presents.

use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::client_api::Client;
use super::error::ProxyShape;
use super::{ApiError, AppState};
use crate::family::Api;
use crate::proxy::{upstream_path, Outgoing, SpoolError, Spooled};
use crate::token::TokenError;

/// Forwards the call, or says in WeChat's shape (plus a hint) why not.
pub(crate) async fn forward(
    State(state): State<AppState>,
    client: Result<Client, ApiError>,
    Path((appid, _)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ProxyShape> {
    let client = client?;
    let (owner, host, prefix) = target(&state, &appid, request.uri().path());
    client.check(&state, &owner)?;
    let Some(prefix_len) = prefix else {
        return Err(ApiError::Token(TokenError::UnknownApp(owner)).into());
    };
    let rest = request.uri().path().get(prefix_len..).unwrap_or_default();
    let path = upstream_path(rest, &state.proxy_config.allow_paths)?;
    let caller = format!("client {}", client.name(&state));
    let mut outgoing = outgoing(&state, request, path, &caller).await?;
    outgoing.api = host;
    let response = state
        .proxy
        .forward(&state.center, &owner, &client.requester(&state), &outgoing)
        .await
        .map_err(ApiError::Upstream)?;
    Ok(response.into_response())
}

/// Whose call it is and where it goes: an app's (`/proxy/{appid}/…`, to
/// WeChat), else a WeCom app's (`/proxy/{corpid}/{agent}/…`, to WeCom); with
/// the length of the path's prefix before the API path, `None` when neither
/// is configured (the owner is then what the caller named, for the refusal).
fn target(state: &AppState, first: &str, path: &str) -> (String, Api, Option<usize>) {
    let prefix = "/proxy/".len() + first.len();
    let owners = &state.owners;
    if let Some(owner) = owners.app_owner(first) {
        return (owner.key.clone(), owner.family.api, Some(prefix));
    }
    let rest = path.get(prefix + 1..).unwrap_or_default();
    let agent = rest.split('/').next().unwrap_or_default();
    match owners.wecom_owner(first, agent) {
        Some(owner) => (
            owner.key.clone(),
            owner.family.api,
            Some(prefix + 1 + agent.len()),
        ),
        None if !owners.wecom_apps_of(first).is_empty() => {
            (format!("{first}/{agent}"), Api::WeCom, None)
        }
        None => (first.to_owned(), Api::WeChat, None),
    }
}

/// The request to forward to `path`: its method, query, headers, and its
/// body taken in within `proxy.max_request_bytes` and `proxy.timeout_ms`,
/// spooled within `caller`'s share of the spool. Call it only once the
/// caller is known.
pub(crate) async fn outgoing(
    state: &AppState,
    request: Request,
    path: String,
    caller: &str,
) -> Result<Outgoing, ApiError> {
    let limit = state.proxy_config.max_request_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(SpoolError::TooLarge { limit }.into());
    }
    let (parts, body) = request.into_parts();
    // A client that stalls its upload is cut off after the proxy's timeout.
    let body = tokio::time::timeout(
        state.proxy.timeout(),
        Spooled::read(
            body,
            limit,
            &state.proxy.spool().for_caller(caller),
            declared,
        ),
    )
    .await
    .map_err(|_| SpoolError::Read("the request body stalled past proxy.timeout_ms".into()))??;
    Ok(Outgoing {
        api: Api::WeChat,
        token_param: "access_token",
        method: parts.method,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        path,
    })
}
