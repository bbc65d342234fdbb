//! User sign-in's HTTP side: `/sns/…` as WeChat serves it, and the control
//! calls that hand out codes as the authorization page and `wx.login` do
//! (`POST /sim/oauth/authorize`, `POST /sim/jscode`). The rules are
//! `state::signin`'s.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Json, Response};
use serde_json::Value;

use crate::api::Params;
use crate::config::AppKind;
use crate::control::bad_request;
use crate::error::Answered;
use crate::state::{path, CodeRequest, Grant};
use crate::Simulator;

/// `POST /sim/oauth/authorize` with `{"appid","openid"?,"scope"?,"unionid"?,
/// "snapshot"?,"blocked"?}`: the user consents on WeChat's page; answers
/// `{"code","openid","expires_in"}` (the redirect's `code`).
pub(crate) async fn authorize(sim: State<Simulator>, body: Bytes) -> Response {
    grant(sim, body, AppKind::Official)
}

/// `POST /sim/jscode` with `{"appid","openid"?,"unionid"?,"blocked"?}`: what
/// `wx.login` gives a Mini Program.
pub(crate) async fn jscode(sim: State<Simulator>, body: Bytes) -> Response {
    grant(sim, body, AppKind::Miniprogram)
}

fn grant(State(sim): State<Simulator>, body: Bytes, kind: AppKind) -> Response {
    let grant = match serde_json::from_slice::<Grant>(&body) {
        Ok(grant) => grant,
        Err(e) => return bad_request(format!("{e}; expected {{\"appid\": \"…\"}}")),
    };
    let now = sim.clock().now();
    match sim.state().grant_code(grant, kind, now) {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => bad_request(e),
    }
}

/// `GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`
pub(crate) async fn oauth_access_token(
    State(sim): State<Simulator>,
    Query(req): Query<CodeRequest>,
) -> Response {
    let now = sim.clock().now();
    let outcome = sim.state().exchange_code(&req, AppKind::Official, now);
    respond(outcome.1)
}

/// `GET /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code`
pub(crate) async fn jscode2session(
    State(sim): State<Simulator>,
    Query(req): Query<CodeRequest>,
) -> Response {
    let now = sim.clock().now();
    let outcome = sim.state().exchange_code(&req, AppKind::Miniprogram, now);
    respond(outcome.1)
}

/// `GET /sns/oauth2/refresh_token?appid&grant_type=refresh_token&refresh_token`
pub(crate) async fn refresh_token(State(sim): State<Simulator>, Query(q): Params) -> Response {
    let now = sim.clock().now();
    let get = |name: &str| q.get(name).map(String::as_str);
    let outcome =
        sim.state()
            .refresh_user_token(get("appid"), get("grant_type"), get("refresh_token"), now);
    respond(outcome.1)
}

/// `GET /sns/userinfo?access_token&openid&lang`
pub(crate) async fn userinfo(sim: State<Simulator>, q: Params) -> Response {
    by_user_token(sim, q, path::SNS_USERINFO)
}

/// `GET /sns/auth?access_token&openid`
pub(crate) async fn auth(sim: State<Simulator>, q: Params) -> Response {
    by_user_token(sim, q, path::SNS_AUTH)
}

fn by_user_token(State(sim): State<Simulator>, Query(q): Params, api: &'static str) -> Response {
    let now = sim.clock().now();
    let get = |name: &str| q.get(name).map(String::as_str);
    let outcome = sim
        .state()
        .user_of_token(api, get("access_token"), get("openid"), now);
    respond(outcome.1)
}

fn respond(result: Result<Value, Answered>) -> Response {
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => err.into_response(),
    }
}
