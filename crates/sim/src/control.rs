//! The control API under `/sim/`: what tests and developers use to look inside
//! the simulator and to steer it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use crate::config::parse_ip_net;
use crate::faults::Fault;
use crate::push::{self, SimPush};
use crate::Simulator;

/// `GET /sim/stats`
pub(crate) async fn stats(State(sim): State<Simulator>) -> Response {
    Json(sim.stats()).into_response()
}

/// `GET /sim/messages`: customer-service messages received, oldest first.
pub(crate) async fn messages(State(sim): State<Simulator>) -> Response {
    Json(sim.messages()).into_response()
}

/// `POST /sim/faults` with one [`Fault`] or a list of them.
pub(crate) async fn add_faults(State(sim): State<Simulator>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Fault),
        Many(Vec<Fault>),
    }
    let faults = match serde_json::from_slice(&body) {
        Ok(OneOrMany::One(fault)) => vec![fault],
        Ok(OneOrMany::Many(faults)) => faults,
        Err(e) => return bad_request(format!("fault: {e}")),
    };
    let added = faults.len();
    for fault in faults {
        sim.add_fault(fault);
    }
    Json(json!({ "added": added })).into_response()
}

/// `DELETE /sim/faults`: removes every fault rule.
pub(crate) async fn clear_faults(State(sim): State<Simulator>) -> Response {
    sim.faults().clear();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /sim/clock`
pub(crate) async fn clock(State(sim): State<Simulator>) -> Response {
    Json(json!({ "now": sim.clock().now() })).into_response()
}

/// `POST /sim/clock` with `{"advance_secs": S}`: moves virtual time forward.
pub(crate) async fn advance_clock(State(sim): State<Simulator>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct Advance {
        advance_secs: u64,
    }
    match serde_json::from_slice::<Advance>(&body) {
        Ok(a) => Json(json!({ "now": sim.clock().advance(a.advance_secs) })).into_response(),
        Err(e) => bad_request(format!("clock: {e}; expected {{\"advance_secs\": S}}")),
    }
}

/// `PUT /sim/whitelist` with `{"ip_list": ["10.0.0.0/8", …]}` or `{"ip_list": null}`.
pub(crate) async fn set_whitelist(State(sim): State<Simulator>, body: Bytes) -> Response {
    match parse_ip_list(&body) {
        Ok(list) => {
            sim.state().ip_whitelist = list;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(format!("whitelist: {e}")),
    }
}

/// `PUT /sim/wecom/{corpid}/{agent}/trusted_ips` with `{"ip_list": [...]}` or `{"ip_list": null}`.
pub(crate) async fn set_trusted_ips(
    State(sim): State<Simulator>,
    axum::extract::Path((corpid, agent)): axum::extract::Path<(String, String)>,
    body: Bytes,
) -> Response {
    match parse_ip_list(&body).and_then(|list| sim.set_trusted_ips(&corpid, &agent, list)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(format!("trusted_ips: {e}")),
    }
}

/// `POST /sim/wecom/{corpid}/{agent}/invalidate`: ends the app's live token early.
pub(crate) async fn invalidate_wecom_token(
    State(sim): State<Simulator>,
    axum::extract::Path((corpid, agent)): axum::extract::Path<(String, String)>,
) -> Response {
    match sim.invalidate_wecom_token(&corpid, &agent) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(e),
    }
}

pub(crate) fn parse_ip_list(body: &[u8]) -> Result<Option<Vec<ipnet::IpNet>>, String> {
    #[derive(Deserialize)]
    struct List {
        ip_list: Option<Vec<String>>,
    }
    let parsed = serde_json::from_slice::<List>(body).map_err(|e| e.to_string())?;
    parsed
        .ip_list
        .map(|l| {
            l.iter()
                .map(|s| parse_ip_net(s))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
}

/// `POST /sim/push` with a [`crate::push::PushRequest`] and [`crate::push::PushAs`] fields: pushes as WeChat would and returns the outcome.
pub(crate) async fn push(State(sim): State<Simulator>, body: Bytes) -> Response {
    let mut body = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(body) => body,
        Err(e) => return bad_request(format!("push: {e}")),
    };
    // An authorizer's push names its platform, whose token and key seal it.
    if let Err(e) = crate::component::control::fill_authorizer_push(&sim, &mut body) {
        return bad_request(format!("push: {e}"));
    }
    let req = match serde_json::from_value::<SimPush>(body) {
        Ok(req) => req,
        Err(e) => return bad_request(format!("push: {e}")),
    };
    match push::send_as(sim.http(), &req.request, &req.push_as, sim.clock().now()).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

pub(crate) fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}
