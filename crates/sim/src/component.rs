//! The simulated Open Platform API (`/cgi-bin/component/…`, families reference
//! §3): thin handlers over the component rules of `State`.
//! Errors are WeChat's usual `{"errcode","errmsg"}` with ` rid: …`.
//!
//! - [`push`]: the pushes to a platform's authorization-event URL (the ticket
//!   every 10 virtual minutes, authorization events) and their records.
//! - `control`: `/sim/authorize`, `/sim/unauthorize`, `/sim/release_check` and
//!   the platform settings under `/sim/component/`.
//! - `release_check`: WeChat's automated release test (全网发布).

pub(crate) mod control;
pub mod push;
mod release_check;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{json, Value};
use wxgate_proto::component::api::ComponentToken;

use crate::api::Params;
use crate::error::Answered;
use crate::state::{path, ComponentBody};
use crate::Simulator;

pub use push::ComponentPushRecord;

type Caller = ConnectInfo<SocketAddr>;

fn body_of(body: &[u8]) -> ComponentBody {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// `POST /cgi-bin/component/api_start_push_ticket` `{"component_appid","component_secret"}`:
/// a ticket push at once (sent after the answer, as WeChat does).
pub(crate) async fn start_push_ticket(
    State(sim): State<Simulator>,
    caller: Caller,
    body: Bytes,
) -> Response {
    let now = sim.clock().now();
    let result = sim
        .state()
        .start_push_ticket(&body_of(&body), caller.ip(), now);
    match result {
        Ok(_) => {
            let pusher = sim.clone();
            tokio::spawn(async move { pusher.push_due_tickets().await });
            Json(json!({"errcode": 0, "errmsg": "ok"})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /cgi-bin/component/api_component_token`.
pub(crate) async fn component_token(
    State(sim): State<Simulator>,
    caller: Caller,
    body: Bytes,
) -> Response {
    let now = sim.clock().now();
    let result = sim
        .state()
        .component_token(&body_of(&body), caller.ip(), now);
    match result {
        Ok(issued) => Json(ComponentToken {
            component_access_token: issued.value,
            expires_in: issued.expires_in,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// A call authenticated by `?component_access_token=` (the newer documentation
/// names it `access_token`; both are taken).
fn with_token(
    sim: &Simulator,
    caller: Caller,
    q: &Params,
    api: &'static str,
    body: &[u8],
    call: impl FnOnce(&mut crate::state::State, &str, &ComponentBody, u64) -> Result<Value, Answered>,
) -> Response {
    let now = sim.clock().now();
    let token = q
        .get("component_access_token")
        .or_else(|| q.get("access_token"))
        .map(String::as_str);
    let mut state = sim.state();
    let result = state
        .component_authorize(api, token, caller.ip(), now)
        .and_then(|component| call(&mut state, &component, &body_of(body), now));
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /cgi-bin/component/api_create_preauthcode` `{"component_appid"}`.
pub(crate) async fn create_preauthcode(
    State(sim): State<Simulator>,
    caller: Caller,
    q: Params,
    body: Bytes,
) -> Response {
    with_token(
        &sim,
        caller,
        &q,
        path::COMPONENT_PREAUTHCODE,
        &body,
        |s, c, b, now| s.create_preauthcode(c, b, now),
    )
}

/// `POST /cgi-bin/component/api_query_auth` `{"component_appid","authorization_code"}`.
pub(crate) async fn query_auth(
    State(sim): State<Simulator>,
    caller: Caller,
    q: Params,
    body: Bytes,
) -> Response {
    with_token(
        &sim,
        caller,
        &q,
        path::COMPONENT_QUERY_AUTH,
        &body,
        |s, c, b, now| s.query_auth(c, b, now),
    )
}

/// `POST /cgi-bin/component/api_authorizer_token`.
pub(crate) async fn authorizer_token(
    State(sim): State<Simulator>,
    caller: Caller,
    q: Params,
    body: Bytes,
) -> Response {
    with_token(
        &sim,
        caller,
        &q,
        path::COMPONENT_AUTHORIZER_TOKEN,
        &body,
        |s, c, b, now| s.authorizer_token(c, b, now),
    )
}

/// `POST /cgi-bin/component/api_get_authorizer_list` `{"component_appid","offset","count"}`.
pub(crate) async fn authorizer_list(
    State(sim): State<Simulator>,
    caller: Caller,
    q: Params,
    body: Bytes,
) -> Response {
    with_token(
        &sim,
        caller,
        &q,
        path::COMPONENT_AUTHORIZER_LIST,
        &body,
        |s, c, b, _| s.authorizer_list(c, b),
    )
}

/// `POST /cgi-bin/component/api_get_authorizer_info` `{"component_appid","authorizer_appid"}`.
pub(crate) async fn authorizer_info(
    State(sim): State<Simulator>,
    caller: Caller,
    q: Params,
    body: Bytes,
) -> Response {
    with_token(
        &sim,
        caller,
        &q,
        path::COMPONENT_AUTHORIZER_INFO,
        &body,
        |s, c, b, _| s.authorizer_info(c, b),
    )
}
