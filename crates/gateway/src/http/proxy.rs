//! `ANY /proxy/{appid}/{path…}`: WeChat's API with wxgate's token added
//! (see [`crate::proxy`]). Refusals happen before anything is forwarded.

use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::client_api::Client;
use super::error::ProxyShape;
use super::{ApiError, AppState};
use crate::proxy::{upstream_path, Outgoing, Spooled};
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
    let limit = state.proxy_config.max_request_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(crate::proxy::SpoolError::TooLarge { limit }.into());
    }
    let (parts, body) = request.into_parts();
    let outgoing = Outgoing {
        method: parts.method,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        // A client that stalls its upload is cut off after the proxy's timeout.
        body: tokio::time::timeout(
            state.proxy.timeout(),
            Spooled::read(body, limit, state.proxy.spool(), declared),
        )
        .await
        .map_err(|_| {
            crate::proxy::SpoolError::Read("the request body stalled past proxy.timeout_ms".into())
        })??,
        path,
    };
    let response = state
        .proxy
        .forward(&state.center, &appid, &client.requester(&state), &outgoing)
        .await
        .map_err(ApiError::Upstream)?;
    Ok(response.into_response())
}
