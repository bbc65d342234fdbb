//! Operations endpoints: liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use super::AppState;
use crate::store::Kind;

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the store answers and no app is without a usable access
/// token after a failed fetch; 503 with the reasons otherwise. The endpoint is
/// public, so reasons name the problem and its errcode, not WeChat's message
/// (which may carry this server's address); the logs have the details.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    if let Err(e) = state.center.store().ping().await {
        tracing::warn!(error = %e, "readiness: store unreachable");
        reasons.push("store unreachable".to_owned());
    }
    let now = state.center.now();
    for slot in state.center.status() {
        let usable = slot.expires_at.is_some_and(|at| now < at);
        if let (Kind::AccessToken, false, Some(failure)) = (slot.kind, usable, &slot.last_failure) {
            let errcode = failure
                .errcode
                .map_or_else(String::new, |c| format!(" (errcode {c})"));
            reasons.push(format!("{}: no usable access_token{errcode}", slot.appid));
        }
    }
    if reasons.is_empty() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        let body = json!({ "status": "not_ready", "reasons": reasons });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}
