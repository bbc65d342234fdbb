//! Operations endpoints: liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{json, Value};

use super::AppState;
use crate::metrics::CredentialLabels;
use crate::store::Kind;
use crate::token::FailureClass;

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when the store answers and every app's access token
/// is usable and renewable; 503 with the reasons and what to do otherwise.
/// An app is not ready when it has no valid access token after a failed
/// fetch, or when its renewal fails for a reason only an operator can fix
/// (40164 whitelist, wrong secret…), even while the current token lasts, or
/// when WeChat rejects its access token and it could not be replaced.
/// Reasons carry the errcode and wxgate's hint, not WeChat's message.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let reasons = readiness(&state).await;
    state.metrics.ready.set(i64::from(reasons.is_empty()));
    if reasons.is_empty() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        let body = json!({ "status": "not_ready", "reasons": reasons });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// Why the instance is not ready; empty when it is. Pings the store.
pub(crate) async fn readiness(state: &AppState) -> Vec<Value> {
    let reachable = match state.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            false
        }
    };
    state.center.recheck_store_writes().await;
    reasons(state, reachable)
}

/// Why the instance is not ready, given whether the store answered.
pub(crate) fn reasons(state: &AppState, store_reachable: bool) -> Vec<Value> {
    let mut reasons = Vec::new();
    if !store_reachable {
        reasons.push(json!({
            "problem": "store unreachable",
            "hint": "check the store (Redis or the SQLite file); valid tokens are still served from memory",
        }));
    }
    if let Some((since, error)) = state.center.store_write_error() {
        reasons.push(json!({
            "problem": "store cannot write",
            "error": error,
            "since": since,
            "hint": "free space or fix permissions (SQLite) or memory (Redis); credentials are served from memory meanwhile and would be fetched again after a restart",
        }));
    }
    let now = state.now();
    for slot in state.center.status() {
        let usable = slot.expires_at.is_some_and(|at| now < at);
        if slot.kind == Kind::AccessToken && !usable && slot.last_failure.is_none() {
            reasons.push(json!({
                "appid": slot.appid,
                "kind": slot.kind.as_str(),
                "problem": "warming up: no access_token yet",
                "hint": "fetched at start and retried by itself; wait a moment",
            }));
            continue;
        }
        let Some(failure) = &slot.last_failure else {
            continue;
        };
        let problem = match (slot.kind, usable, failure.class) {
            _ if slot.rejected => "rejected by WeChat and not yet replaced",
            (Kind::AccessToken, false, _) => "no usable access_token",
            (_, true, FailureClass::Config) => {
                "renewal refused by WeChat; the current value expires soon"
            }
            _ => continue,
        };
        reasons.push(json!({
            "appid": slot.appid,
            "kind": slot.kind.as_str(),
            "problem": problem,
            "errcode": failure.errcode,
            "hint": failure.hint,
        }));
    }
    reasons
}

/// `GET /metrics`: Prometheus text. Credential gauges are read at scrape time.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let now = state.now() as i64;
    for slot in state.center.status() {
        let labels = CredentialLabels {
            appid: slot.appid.clone(),
            kind: slot.kind.as_str().to_owned(),
        };
        if let Some(expires_at) = slot.expires_at {
            metrics
                .expires_in
                .get_or_create(&labels)
                .set(expires_at as i64 - now);
        }
        metrics
            .lease_held
            .get_or_create(&labels)
            .set(i64::from(slot.lease_held));
        metrics
            .fetches_today
            .get_or_create(&labels)
            .set(slot.fetches_today as i64);
    }
    metrics
        .ready
        .set(i64::from(readiness(&state).await.is_empty()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}
