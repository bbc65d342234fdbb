//! `GET /cgi-bin/user/info`: every openid is a subscriber, described by a record
//! derived from the appid and openid alone, so repeated calls agree.

use std::net::SocketAddr;
use wxgate_proto::errcode;

use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{json, Value};

use crate::api::{error_of, Params};
use crate::error::WxError;
use crate::state::path;
use crate::Simulator;

/// 2020-01-01T00:00:00Z: subscribe times fall in the three years after it.
const FIRST_SUBSCRIBE: u64 = 1_577_836_800;
const SUBSCRIBE_SPAN: u64 = 3 * 365 * 86_400;

/// `GET /cgi-bin/user/info?access_token=…&openid=…&lang=zh_CN`
pub(crate) async fn info(
    State(sim): State<Simulator>,
    caller: ConnectInfo<SocketAddr>,
    Query(q): Params,
) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    let token = q.get("access_token").map(String::as_str);
    let appid = match state.authorize(path::USER_INFO, token, caller.ip(), now) {
        Ok(appid) => appid,
        Err(outcome) => return error_of(outcome),
    };
    let result = match q.get("openid").filter(|o| !o.is_empty()) {
        Some(openid) => Ok(subscriber(&appid, openid, now)),
        None => Err(WxError::of(errcode::INVALID_OPENID)),
    };
    match state.answer(path::USER_INFO, Some(appid), result).1 {
        Ok(record) => Json(record).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The record WeChat returns since 2021-12-27: no nickname, avatar, sex or
/// region any more, and no `unionid` (the simulated accounts are bound to no
/// Open Platform account).
fn subscriber(appid: &str, openid: &str, now: u64) -> Value {
    let hash = fnv1a([appid.as_bytes(), b"\0", openid.as_bytes()]);
    let subscribe_time = (FIRST_SUBSCRIBE + hash % SUBSCRIBE_SPAN).min(now);
    json!({
        "subscribe": 1,
        "openid": openid,
        "language": "zh_CN",
        "subscribe_time": subscribe_time,
        "remark": "",
        "groupid": 0,
        "tagid_list": [],
        "subscribe_scene": "ADD_SCENE_QR_CODE",
        "qr_scene": 0,
        "qr_scene_str": "",
    })
}

/// 64-bit FNV-1a: stable across runs and Rust versions, unlike `DefaultHasher`.
fn fnv1a<const N: usize>(parts: [&[u8]; N]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}
