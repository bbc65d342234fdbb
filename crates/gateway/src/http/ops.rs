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
/// With Redis, `store` shows its topology (mode, role, primary, failovers
/// and reconnects seen).
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = readiness(&state).await;
    state.metrics.ready.set(i64::from(readiness.is_ready()));
    // Which configuration this instance runs: instances that disagree show it.
    let config = state.running.fingerprint();
    let topology = state.store.topology().await;
    if readiness.is_ready() {
        let mut body = json!({ "status": "ready", "config": config });
        if let Some(topology) = topology {
            body["store"] = json!(topology);
        }
        return Json(body).into_response();
    }
    let mut body = json!({
        "status": "not_ready",
        "config": config,
        "reasons": readiness.listed,
        "reasons_total": readiness.total,
        "warming_up": readiness.warming_up,
    });
    if let Some(topology) = topology {
        body["store"] = json!(topology);
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// Why the instance is not ready. Probed every few seconds: with many
/// owners failing at once (an outage of 200,000 apps) listing, or even
/// holding, every reason would make each answer tens of megabytes, so the
/// first [`MAX_REASONS`] (by owner and kind) are listed and the rest counted.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    /// The first reasons, sorted.
    pub(crate) listed: Vec<Value>,
    /// How many reasons there are.
    pub(crate) total: usize,
    /// How many of them are access tokens still warming up.
    pub(crate) warming_up: usize,
}

impl Readiness {
    /// Whether nothing stands in the way.
    pub(crate) fn is_ready(&self) -> bool {
        self.total == 0
    }
}

/// Reasons listed in one `/readyz` answer; `reasons_total` counts them all.
const MAX_REASONS: usize = 100;

/// The reason of an access token not fetched yet.
const WARMING_UP: &str = "warming up: no access_token yet";

/// Why the instance is not ready; nothing when it is. Pings the store.
pub(crate) async fn readiness(state: &AppState) -> Readiness {
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
pub(crate) fn reasons(state: &AppState, store_reachable: bool) -> Readiness {
    let mut readiness = Readiness::default();
    // Instance-wide reasons first, then the credentials' by owner and kind:
    // the first MAX_REASONS of those are kept in a max-heap by that key.
    let mut first: std::collections::BinaryHeap<(String, Kind, HeapValue)> =
        std::collections::BinaryHeap::new();
    if !store_reachable {
        readiness.listed.push(json!({
            "problem": "store unreachable",
            "hint": "check the store (Redis or the SQLite file); valid tokens are still served from memory",
        }));
    }
    if let Some((since, error)) = state.center.store_write_error() {
        readiness.listed.push(json!({
            "problem": "store cannot write",
            "error": error,
            "since": since,
            "hint": "free space or fix permissions (SQLite) or memory (Redis); credentials are served from memory meanwhile and would be fetched again after a restart",
        }));
    }
    readiness.total = readiness.listed.len();
    let now = state.now();
    state.center.for_each_status(|slot| {
        let usable = slot.expires_at.is_some_and(|at| now < at);
        let reason = if slot.kind == Kind::AccessToken && !usable && slot.last_failure.is_none() {
            readiness.warming_up += 1;
            (WARMING_UP, None)
        } else {
            let Some(failure) = &slot.last_failure else {
                return;
            };
            let problem = match (slot.kind, usable, failure.class) {
                _ if slot.rejected => "rejected by WeChat and not yet replaced",
                (Kind::VerifyTicket, _, _) => crate::token::platform::NO_TICKET,
                (Kind::AccessToken, false, _) => "no usable access_token",
                (_, true, FailureClass::Config) => {
                    "renewal refused by WeChat; the current value expires soon"
                }
                _ => return,
            };
            (problem, Some(failure))
        };
        readiness.total += 1;
        let key = (slot.appid, slot.kind);
        if first.len() == MAX_REASONS
            && first
                .peek()
                .is_some_and(|top| (&top.0, top.1) <= (&key.0, key.1))
        {
            return;
        }
        let value = match reason {
            (problem, None) => json!({
                "appid": key.0,
                "kind": key.1.as_str(),
                "problem": problem,
                "hint": "fetched at start and retried by itself; wait a moment",
            }),
            (problem, Some(failure)) => json!({
                "appid": key.0,
                "kind": key.1.as_str(),
                "problem": problem,
                "errcode": failure.errcode,
                "hint": failure.hint,
            }),
        };
        first.push((key.0, key.1, HeapValue(value)));
        if first.len() > MAX_REASONS {
            first.pop();
        }
    });
    let mut first = first.into_vec();
    first.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    readiness
        .listed
        .extend(first.into_iter().map(|(_, _, HeapValue(v))| v));
    readiness
}

/// A reason in the heap, ordered by its key alone.
#[derive(Debug)]
struct HeapValue(Value);

impl PartialEq for HeapValue {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HeapValue {}

impl PartialOrd for HeapValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HeapValue {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// `GET /metrics`: Prometheus text. Credential gauges are read at scrape time.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let now = state.now() as i64;
    // Set afresh from the credentials there are now: an owner removed by a
    // reload leaves no gauge behind, frozen at its last value.
    metrics.expires_in.clear();
    metrics.lease_held.clear();
    metrics.fetches_today.clear();
    state.center.for_each_status(|slot| {
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
    });
    metrics
        .ready
        .set(i64::from(readiness(&state).await.is_ready()));
    if let Some(topology) = state.store.topology().await {
        metrics.store_topology(&topology, state.now());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}
