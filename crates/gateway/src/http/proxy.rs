//! `ANY /proxy/{appid}/{path…}`: WeChat's API with wxgate's token added
//! (see [`crate::proxy`]). Refusals happen before anything is forwarded.
//! One of the engine's two fronts: this one authenticates a client key; the
//! façade ([`super::facade`]) the access token or secret an SDK presents.

use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::client_api::Client;
use super::error::ProxyShape;
use super::{ApiError, AppState};
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
    client.check(&state, &appid)?;
    if state.center.app(&appid).is_none() {
        return Err(ApiError::Token(TokenError::UnknownApp(appid)).into());
    }
    let prefix_len = "/proxy/".len() + appid.len();
    let rest = request.uri().path().get(prefix_len..).unwrap_or_default();
    let path = upstream_path(rest, &state.proxy_config.allow_paths)?;
    let outgoing = outgoing(&state, request, path).await?;
    let response = state
        .proxy
        .forward(&state.center, &appid, &client.requester(&state), &outgoing)
        .await
        .map_err(ApiError::Upstream)?;
    Ok(response.into_response())
}

/// The request to forward to `path`: its method, query, headers, and its
/// body taken in within `proxy.max_request_bytes` and `proxy.timeout_ms`.
pub(crate) async fn outgoing(
    state: &AppState,
    request: Request,
    path: String,
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
        Spooled::read(body, limit, state.proxy.spool(), declared),
    )
    .await
    .map_err(|_| SpoolError::Read("the request body stalled past proxy.timeout_ms".into()))??;
    Ok(Outgoing {
        host: crate::proxy::Host::WeChat,
        method: parts.method,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        path,
    })
}
