//! The WeChat API façade: an unmodified SDK whose API base URL is wxgate gets
//! every call served. The credential endpoints answer from the token center
//! (see `compat`); every other WeChat API path is forwarded by the proxy's
//! engine ([`crate::proxy`]), the façade being its second front:
//!
//! - a call with an `access_token` is forwarded when that token is one wxgate
//!   issued (current, or the one it replaced until that one expires), with the *current*
//!   token sent, one compare-and-refresh and one retry as for `/proxy`; any
//!   other token is answered 40001 without calling WeChat;
//! - user sign-in (`http::signin`): the calls that authenticate with appid
//!   and secret, the code exchanges (`/sns/oauth2/access_token`,
//!   `/sns/jscode2session`), are served for a configured app whose secret
//!   matches, through the single exchange (each code traded with WeChat
//!   once, WeChat's answer handed back as it came); the refresh for a
//!   configured app; userinfo and `sns/auth` only with a user token wxgate
//!   handed out;
//! - the Open Platform's calls (`/cgi-bin/component/…`) are forwarded when
//!   their `component_access_token` is one wxgate issued for a configured
//!   platform, with the current one sent, as for an `access_token`; any other
//!   is answered 40001 without calling WeChat. Such a call with an
//!   `access_token` instead (an authorizer's: a Mini Program's privacy
//!   settings; or the platform's in the newer docs' spelling) is served as
//!   any token's call. Its credential-issuing calls
//!   are answered by `compat` (`api_component_token`, `api_authorizer_token`);
//!   `api_start_push_ticket`, which takes the secret, is refused;
//! - WeChat's credential-administration and diagnostic APIs (`openapi/*`,
//!   `clear_quota*`: [`crate::config::ADMIN_PATHS`]) are never
//!   forwarded, whatever the token or secret: 48001 with a hint naming the
//!   admin API that does the same behind the admin key.
//!
//! The upstream URL is always `upstream.base_url` and the checked path; the
//! request's `Host` and any authority in its target are never used. Refusals
//! are in WeChat's shape (HTTP 200, `{"errcode","errmsg"}`), never `-1`.

use axum::extract::{Request, State};
use axum::http::{StatusCode, Version};
use axum::response::{IntoResponse, Response};

use super::error::WeChatShape;
use super::throttle::{Check, Peer};
use super::{ApiError, AppState};
use crate::config::COMPONENT_PREFIX;
use crate::proxy::{upstream_path, PathError};
use crate::token::Requester;

/// The router's fallback: WeChat API paths are served, anything else is a 404.
pub(crate) async fn forward(
    State(state): State<AppState>,
    peer: Peer,
    request: Request,
) -> Response {
    let path = request.uri().path();
    // Under WeChat's roots an unknown path is answered in WeChat's shape.
    let wechat = wxgate_proto::api::is_api_path(path)
        || state
            .proxy_config
            .allow_paths
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()));
    if !wechat {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = match serve(&state, peer, request).await {
        Ok(response) => response,
        Err(e) => WeChatShape(e).into_response(),
    };
    // The call held a token or a secret: its answer is the caller's alone.
    super::no_store(&mut response);
    response
}

async fn serve(state: &AppState, peer: Peer, request: Request) -> Result<Response, ApiError> {
    // `GET http://host/… HTTP/1.1`: refused rather than quietly ignored.
    if request.uri().scheme().is_some() && request.version() <= Version::HTTP_11 {
        return Err(PathError::Malformed(request.uri().to_string()).into());
    }
    let raw = request.uri().path().to_owned();
    // User sign-in: each code exchanged once, user tokens only wxgate's.
    let query = request.uri().query().map(str::to_owned);
    if let Some(answer) = super::signin::facade(state, peer, &raw, query.as_deref()).await {
        return answer;
    }
    let allow = &state.proxy_config.allow_paths;
    let path = match upstream_path(&raw, allow) {
        // The Open Platform's business calls, for a platform's token.
        Err(PathError::AdminOnly { path, .. }) if is_component_call(&path) => {
            if !allow.iter().any(|prefix| path.starts_with(prefix.as_str())) {
                return Err(PathError::NotAllowed(path).into());
            }
            // Under the platform's root, an authorizer's calls (a Mini
            // Program's privacy settings) carry its `access_token`, and the
            // newer docs spell the platform's own token so: served as any
            // token's call, the owner known from the token.
            let query = request.uri().query();
            if param(query, "component_access_token").is_some()
                || param(query, "access_token").is_none()
            {
                return serve_component(state, peer, request, path).await;
            }
            path
        }
        other => other?,
    };
    let presented = param(request.uri().query(), "access_token").unwrap_or_default();
    let now = state.now();
    let Some(appid) = state.center.appid_of_presented_token(&presented) else {
        state.throttle.failed(peer, Check::AccessToken, now)?;
        tracing::debug!(path, "façade call with a token wxgate did not issue");
        return Err(ApiError::InvalidToken);
    };
    let mut outgoing = super::proxy::outgoing(state, request, path, &caller(&appid)).await?;
    if let Some(issuer) = state.owners.issuer(&appid) {
        outgoing.api = issuer.family().api;
    }
    let response = state
        .proxy
        .forward(&state.center, &appid, &Requester::Sdk, &outgoing)
        .await
        .map_err(ApiError::Upstream)?;
    Ok(response.into_response())
}

/// Whether the plain `path` is one of the Open Platform's business APIs:
/// under `/cgi-bin/component/`, and none of the reserved ones (the
/// credential-issuing ones, answered by `compat`, and `api_start_push_ticket`,
/// which takes the secret).
fn is_component_call(path: &str) -> bool {
    crate::config::admin_path(path).is_some_and(|r| r.prefix == COMPONENT_PREFIX)
}

/// Forwards a platform's call: its `component_access_token` must be one
/// wxgate issued for a configured platform (40001 otherwise, WeChat not
/// called); the current one is sent instead, with the one compare-and-refresh
/// and retry of every proxied call.
async fn serve_component(
    state: &AppState,
    peer: Peer,
    request: Request,
    path: String,
) -> Result<Response, ApiError> {
    let component = super::compat::component_of_presented_token(state, peer, request.uri().query())
        .inspect_err(|_| {
            tracing::debug!(
                path,
                "façade call with a component token wxgate did not issue"
            );
        })?;
    let mut outgoing = super::proxy::outgoing(state, request, path, &caller(&component)).await?;
    outgoing.token_param = "component_access_token";
    let response = state
        .proxy
        .forward(&state.center, &component, &Requester::Sdk, &outgoing)
        .await
        .map_err(ApiError::Upstream)?;
    Ok(response.into_response())
}

/// Whose share of the spool a façade call's body is held in: its app's.
fn caller(appid: &str) -> String {
    format!("app {appid}")
}

/// A query parameter, decoded; `None` when absent. Given twice with two
/// values, it is ambiguous: `None` as well.
pub(crate) fn param(query: Option<&str>, name: &str) -> Option<String> {
    let mut values = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned());
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::param;

    #[test]
    fn parameters_are_decoded_and_ambiguity_is_refused() {
        assert_eq!(
            param(Some("a=1&access_token=x%2By"), "access_token").as_deref(),
            Some("x+y")
        );
        assert_eq!(
            param(Some("access%5Ftoken=t"), "access_token").as_deref(),
            Some("t")
        );
        assert_eq!(
            param(Some("access_token=a&access_token=a"), "access_token").as_deref(),
            Some("a")
        );
        assert_eq!(
            param(Some("access_token=a&access_token=b"), "access_token"),
            None
        );
        assert_eq!(param(None, "access_token"), None);
    }
}
