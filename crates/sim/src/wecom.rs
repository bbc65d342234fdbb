//! The simulated WeCom API (qyapi.weixin.qq.com, families reference §1): thin
//! handlers over the WeCom rules of [`crate::state::State`]. WeCom answers
//! errors and successes with `errcode`/`errmsg` and no ` rid: …` suffix.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use wxgate_proto::errcode;

use crate::api::Params;
use crate::error::WxError;
use crate::state::{path, wecom_error, WecomTicket};
use crate::Simulator;

type Caller = ConnectInfo<SocketAddr>;

fn error(err: WxError) -> Response {
    Json(json!({"errcode": err.errcode, "errmsg": err.errmsg})).into_response()
}

/// `GET /cgi-bin/gettoken?corpid=…&corpsecret=…`
pub(crate) async fn gettoken(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
) -> Response {
    let now = sim.clock().now();
    let (_, result) = sim.state().wecom_token(
        q.get("corpid").map(String::as_str),
        q.get("corpsecret").map(String::as_str),
        caller.ip(),
        now,
    );
    match result {
        // Unlike the Official Account's, WeCom's success carries errcode 0 (§1.1).
        Ok(issued) => Json(json!({
            "errcode": 0, "errmsg": "ok",
            "access_token": issued.value, "expires_in": issued.expires_in,
        }))
        .into_response(),
        Err(err) => error(err),
    }
}

/// `GET /cgi-bin/get_jsapi_ticket?access_token=…`: the corp ticket.
pub(crate) async fn jsapi_ticket(sim: State<Simulator>, caller: Caller, q: Params) -> Response {
    ticket(sim, caller, q, WecomTicket::Corp)
}

/// `GET /cgi-bin/ticket/get?access_token=…&type=agent_config`: the app's ticket.
pub(crate) async fn agent_ticket(sim: State<Simulator>, caller: Caller, q: Params) -> Response {
    ticket(sim, caller, q, WecomTicket::Agent)
}

fn ticket(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
    kind: WecomTicket,
) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    let api = kind.api();
    let token = q.get("access_token").map(String::as_str);
    let key = match state.wecom_authorize(api, token, caller.ip(), now) {
        Ok(key) => key,
        Err(err) => return error(err),
    };
    if kind == WecomTicket::Agent && q.get("type").map(String::as_str) != Some("agent_config") {
        let err = wecom_error(errcode::INVALID_ARGS, caller.ip(), now);
        let _ = state.wecom_answer::<()>(api, Some(key), Err(err.clone()));
        return error(err);
    }
    match state.wecom_ticket(key, kind, caller.ip(), now).1 {
        Ok(issued) => Json(json!({
            "errcode": 0, "errmsg": "ok", "ticket": issued.value, "expires_in": issued.expires_in,
        }))
        .into_response(),
        Err(err) => error(err),
    }
}

/// `GET /cgi-bin/agent/get?access_token=…&agentid=…`: a cheap call for probes.
pub(crate) async fn agent_get(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    let token = q.get("access_token").map(String::as_str);
    let key = match state.wecom_authorize(path::WECOM_AGENT_GET, token, caller.ip(), now) {
        Ok(key) => key,
        Err(err) => return error(err),
    };
    let agentid = q.get("agentid").map(String::as_str);
    match state.wecom_agent_get(key, agentid, caller.ip(), now).1 {
        Ok(body) => Json(body).into_response(),
        Err(err) => error(err),
    }
}

/// `POST /cgi-bin/message/send?access_token=…`: recorded, see `GET /sim/messages`.
pub(crate) async fn send(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    let token = q.get("access_token").map(String::as_str);
    let key = match state.wecom_authorize(path::WECOM_SEND, token, caller.ip(), now) {
        Ok(key) => key,
        Err(err) => return error(err),
    };
    let body = serde_json::from_slice(&body).ok();
    match state.wecom_send(key, body, caller.ip(), now).1 {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => error(err),
    }
}

/// `GET /cgi-bin/getcallbackip` with a WeCom token: WeCom's answer carries errcode 0 (§1.5).
pub(crate) fn callback_ip(sim: &Simulator, token: &str, caller: SocketAddr) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    match state.wecom_authorize(path::CALLBACK_IP, Some(token), caller.ip(), now) {
        Ok(key) => {
            let _ = state.wecom_answer::<()>(path::CALLBACK_IP, Some(key), Ok(()));
            Json(json!({
                "ip_list": ["127.0.0.1", "182.254.11.176", "101.226.103.0/25"],
                "errcode": 0, "errmsg": "ok",
            }))
            .into_response()
        }
        Err(err) => error(err),
    }
}
