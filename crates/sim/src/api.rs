//! The simulated `/cgi-bin/…` API: thin handlers over [`crate::state::State`],
//! and the middleware that injects faults before them.

use std::collections::HashMap;
use std::net::SocketAddr;
use wxgate_proto::errcode;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, MethodRouter};
use serde_json::json;

use crate::error::{Answered, WxError};
use crate::faults::FaultAction;
use crate::state::{path, Issued, Outcome, TokenRequest};
use crate::Simulator;

pub(crate) type Params = Query<HashMap<String, String>>;
type Caller = ConnectInfo<SocketAddr>;

/// `GET /cgi-bin/token?grant_type=client_credential&appid=…&secret=…`
pub(crate) async fn token(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(req): Query<TokenRequest>,
) -> Response {
    let now = sim.clock().now();
    let (_, result) = sim.state().classic_token(&req, caller.ip(), now);
    token_response(result)
}

/// `POST /cgi-bin/stable_token` with a JSON body.
pub(crate) async fn stable_token(
    State(sim): State<Simulator>,
    caller: Caller,
    body: Bytes,
) -> Response {
    let now = sim.clock().now();
    let Ok(req) = serde_json::from_slice::<TokenRequest>(&body) else {
        let mut state = sim.state();
        let (_, result) = state.answer::<()>(
            path::STABLE_TOKEN,
            None,
            Err(WxError::of(errcode::DATA_FORMAT)),
        );
        return result.map_or_else(IntoResponse::into_response, |()| {
            StatusCode::OK.into_response()
        });
    };
    let (_, result) = sim.state().stable_token(&req, caller.ip(), now);
    token_response(result)
}

fn token_response(result: Result<Issued, Answered>) -> Response {
    match result {
        // Token answers carry no errcode on success (§6.2).
        Ok(issued) => Json(json!({"access_token": issued.value, "expires_in": issued.expires_in}))
            .into_response(),
        Err(err) => err.into_response(),
    }
}

/// `GET /cgi-bin/ticket/getticket?access_token=…&type=jsapi|wx_card`
pub(crate) async fn ticket(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
) -> Response {
    let now = sim.clock().now();
    let outcome = sim.state().ticket(
        q.get("access_token").map(String::as_str),
        q.get("type").map(String::as_str),
        caller.ip(),
        now,
    );
    match outcome.1 {
        Ok(issued) => Json(json!({
            "errcode": 0, "errmsg": "ok", "ticket": issued.value, "expires_in": issued.expires_in,
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

/// `GET /cgi-bin/getcallbackip`: where pushes come from. Both hosts have it:
/// a WeCom token gets WeCom's answer.
pub(crate) async fn callback_ip(sim: State<Simulator>, caller: Caller, q: Params) -> Response {
    let token = q.get("access_token").cloned().unwrap_or_default();
    if sim.state().wecom.is_token(&token) {
        return crate::wecom::callback_ip(&sim, &token, caller.0);
    }
    ip_list(
        sim,
        caller,
        q,
        path::CALLBACK_IP,
        &["127.0.0.1", "101.226.103.0/25"],
    )
}

/// `GET /cgi-bin/get_api_domain_ip`: the addresses behind api.weixin.qq.com.
pub(crate) async fn api_domain_ip(sim: State<Simulator>, caller: Caller, q: Params) -> Response {
    ip_list(
        sim,
        caller,
        q,
        path::API_DOMAIN_IP,
        &["127.0.0.1", "101.89.47.18"],
    )
}

fn ip_list(
    sim: State<Simulator>,
    caller: Caller,
    q: Params,
    api: &'static str,
    list: &[&str],
) -> Response {
    authorized(sim, caller, q, api, json!({ "ip_list": list }))
}

/// `POST /cgi-bin/component/getprivacysetting?access_token=…`: a Mini
/// Program's privacy settings (none set here), for its `access_token`, which
/// its platform holds as an authorizer's.
pub(crate) async fn privacy_setting(sim: State<Simulator>, caller: Caller, q: Params) -> Response {
    let answer = json!({
        "errcode": 0, "errmsg": "ok", "code_exist": 0,
        "privacy_list": [], "setting_list": [], "update_time": 0,
    });
    authorized(sim, caller, q, path::PRIVACY_SETTING, answer)
}

/// `answer` to a call of `api` with a valid `access_token`, WeChat's error otherwise.
fn authorized(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
    api: &'static str,
    answer: serde_json::Value,
) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    match state.authorize(
        api,
        q.get("access_token").map(String::as_str),
        caller.ip(),
        now,
    ) {
        Ok(appid) => {
            let _ = state.answer::<()>(api, Some(appid), Ok(()));
            Json(answer).into_response()
        }
        Err(outcome) => error_of(outcome),
    }
}

/// `POST /cgi-bin/message/custom/send?access_token=…`: recorded, see `GET /sim/messages`.
pub(crate) async fn custom_send(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    let token = q.get("access_token").map(String::as_str);
    let appid = match state.authorize(path::CUSTOM_SEND, token, caller.ip(), now) {
        Ok(appid) => appid,
        Err(outcome) => return error_of(outcome),
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        let (_, result) = state.answer::<()>(
            path::CUSTOM_SEND,
            Some(appid),
            Err(WxError::of(errcode::DATA_FORMAT)),
        );
        return result.map_or_else(IntoResponse::into_response, |()| {
            StatusCode::OK.into_response()
        });
    };
    match state
        .custom_send(appid, body, token.unwrap_or_default(), now)
        .1
    {
        Ok(()) => Json(json!({"errcode": 0, "errmsg": "ok"})).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The error answer of a failed [`crate::state::State::authorize`].
pub(crate) fn error_of(outcome: Outcome<Issued>) -> Response {
    match outcome.1 {
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(err) => err.into_response(),
    }
}

/// A GET API: another method answers HTTP 200 with 43001 `require GET method`, as WeChat does.
pub(crate) fn get_api<H, T>(api: &'static str, handler: H) -> MethodRouter<Simulator>
where
    H: Handler<T, Simulator>,
    T: 'static,
{
    get(handler).fallback(move |sim: State<Simulator>| {
        wrong_method(sim, api, WxError::of(errcode::REQUIRE_GET))
    })
}

/// A POST API: another method answers HTTP 200 with 43002 `require POST method`.
pub(crate) fn post_api<H, T>(api: &'static str, handler: H) -> MethodRouter<Simulator>
where
    H: Handler<T, Simulator>,
    T: 'static,
{
    post(handler).fallback(move |sim: State<Simulator>| {
        wrong_method(sim, api, WxError::of(errcode::REQUIRE_POST))
    })
}

/// The method is checked before anything else, so the call concerns no known account.
async fn wrong_method(State(sim): State<Simulator>, api: &'static str, err: WxError) -> Response {
    let (_, result) = sim.state().answer::<()>(api, None, Err(err));
    result.map_or_else(IntoResponse::into_response, |()| {
        StatusCode::OK.into_response()
    })
}

/// Applies the first matching fault rule, if any, before the API sees the call.
pub(crate) async fn inject_faults(
    State(sim): State<Simulator>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    *sim.state().endpoint_calls.entry(path.clone()).or_default() += 1;
    let fault = sim.faults().next(&path);
    let Some(action) = fault else {
        return next.run(request).await;
    };
    sim.state().faults_injected += 1;
    tracing::debug!(path, ?action, "injecting fault");
    match action {
        FaultAction::Errcode { errcode, errmsg } => WxError::new(errcode, errmsg).into_response(),
        FaultAction::Delay { ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            next.run(request).await
        }
        FaultAction::Http { status } => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::BAD_GATEWAY)
            .into_response(),
        FaultAction::Redirect { location } => {
            // Read the body first, as a server that redirects after taking the
            // request does: the client sees the 307, not a broken pipe.
            let _ = axum::body::to_bytes(request.into_body(), 64 << 20).await;
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            )
                .into_response()
        }
        FaultAction::Endless => {
            /// Counts the answer in `fault_streams_open` while it is being written.
            struct Open(Simulator);
            impl Drop for Open {
                fn drop(&mut self) {
                    let mut state = self.0.state();
                    state.fault_streams_open = state.fault_streams_open.saturating_sub(1);
                }
            }
            sim.state().fault_streams_open += 1;
            let open = Open(sim.clone());
            let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
            let head = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"{\"access_token\":\""))
            });
            let endless = futures_util::stream::repeat_with(move || {
                let Open(sim) = &open;
                sim.state().fault_bytes_sent += chunk.len() as u64;
                Ok(chunk.clone())
            });
            let mut response = Response::new(Body::from_stream(futures_util::StreamExt::chain(
                head, endless,
            )));
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        FaultAction::Drop => {
            // The body fails before its first byte: hyper aborts the connection.
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fault: drop",
                ))
            });
            Response::new(Body::from_stream(broken))
        }
    }
}

/// Any other path: under WeChat's API roots, 48001 `api unauthorized` (what
/// WeChat answers for an API the account may not call), with a hint naming
/// the path the simulator does not implement, so an SDK pointed at it says
/// why; elsewhere a plain 404.
pub(crate) async fn not_simulated(uri: axum::http::Uri) -> Response {
    if !wxgate_proto::api::is_api_path(uri.path()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut error = WxError::of(errcode::API_UNAUTHORIZED);
    error.errmsg = format!("{} hint: [not simulated: {}]", error.errmsg, uri.path());
    error.into_response()
}
