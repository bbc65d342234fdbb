//! Diagnostics and quota over HTTP: `rid/get`, `quota/get`, `clear_quota`,
//! `clear_quota/v2`, and the middleware that records the request behind every
//! error answer for `rid/get`.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::api::{error_of, Params};
use crate::error::{Answered, RidOf};
use crate::rids::{CallRecord, MAX_BODY};
use crate::state::path;
use crate::state::plain_ip;
use crate::Simulator;

type Caller = ConnectInfo<SocketAddr>;

/// `POST /cgi-bin/openapi/rid/get?access_token=…` `{"rid"}`: the request behind an error answer.
pub(crate) async fn rid_get(
    sim: State<Simulator>,
    caller: Caller,
    q: Params,
    body: Bytes,
) -> Response {
    with_token(sim, caller, q, path::RID_GET, |state, appid, now| {
        let (_, result) = state.rid_get(appid, &body, now);
        result.map(|call| json!({ "errcode": 0, "errmsg": "ok", "request": call }))
    })
}

/// `POST /cgi-bin/openapi/quota/get?access_token=…` `{"cgi_path"}`
pub(crate) async fn quota_get(
    sim: State<Simulator>,
    caller: Caller,
    q: Params,
    body: Bytes,
) -> Response {
    with_token(sim, caller, q, path::QUOTA_GET, |state, appid, now| {
        let (_, result) = state.quota_get(appid, &body, now);
        result.map(|quota| json!({ "errcode": 0, "errmsg": "ok", "quota": quota }))
    })
}

/// `POST /cgi-bin/clear_quota?access_token=…` `{"appid"}`
pub(crate) async fn clear_quota(
    sim: State<Simulator>,
    caller: Caller,
    q: Params,
    body: Bytes,
) -> Response {
    with_token(sim, caller, q, path::CLEAR_QUOTA, |state, appid, now| {
        let (_, result) = state.clear_quota(appid, &body, now);
        result.map(|()| json!({ "errcode": 0, "errmsg": "ok" }))
    })
}

/// `POST /cgi-bin/clear_quota/v2` with `appid` and `appsecret`, in the body or the query.
pub(crate) async fn clear_quota_v2(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let now = sim.clock().now();
    let (_, result) = sim.state().clear_quota_v2(&q, &body, caller.ip(), now);
    match result {
        Ok(()) => Json(json!({ "errcode": 0, "errmsg": "ok" })).into_response(),
        Err(answered) => answered.into_response(),
    }
}

/// A token-authenticated call: `answer` runs with the token's appid.
fn with_token(
    State(sim): State<Simulator>,
    caller: Caller,
    Query(q): Params,
    api: &'static str,
    answer: impl FnOnce(&mut crate::state::State, String, u64) -> Result<Value, Answered>,
) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    let token = q.get("access_token").map(String::as_str);
    let appid = match state.authorize(api, token, caller.ip(), now) {
        Ok(appid) => appid,
        Err(outcome) => return error_of(outcome),
    };
    match answer(&mut state, appid, now) {
        Ok(value) => Json(value).into_response(),
        Err(answered) => answered.into_response(),
    }
}

/// Records the request behind every error answer an API gives (not injected
/// faults, which never reach it), under the rid of its errmsg.
pub(crate) async fn record_rids(
    State(sim): State<Simulator>,
    request: Request,
    next: Next,
) -> Response {
    let started = tokio::time::Instant::now();
    let invoke_time = sim.clock().now();
    let request_url = request.uri().query().unwrap_or_default().to_owned();
    let client_ip = request
        .extensions()
        .get::<Caller>()
        .map(|c| plain_ip(c.ip()).to_string())
        .unwrap_or_default();
    let (request, request_body) = peek_body(request).await;
    let mut response = next.run(request).await;
    let Some(RidOf { rid, appid }) = response.extensions_mut().remove::<RidOf>() else {
        return response;
    };
    let (parts, body) = response.into_parts();
    // An error answer is a small JSON object built in memory.
    let sent = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let call = CallRecord {
        invoke_time,
        cost_in_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        request_url,
        request_body,
        response_body: String::from_utf8_lossy(&sent).into_owned(),
        client_ip,
    };
    sim.state().record_rid(rid, appid, call);
    Response::from_parts(parts, Body::from(sent))
}

/// The request with its body intact, and the body as text when it is small and
/// not multipart (else ""); a larger body is passed on as it streams.
async fn peek_body(request: Request) -> (Request, String) {
    if !worth_keeping(request.headers()) {
        return (request, String::new());
    }
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut read: Vec<Bytes> = Vec::new();
    let mut size = 0;
    while let Some(chunk) = stream.next().await {
        let unfinished = match chunk {
            Ok(chunk) if size + chunk.len() <= MAX_BODY => {
                size += chunk.len();
                read.push(chunk);
                continue;
            }
            Ok(chunk) => Ok(chunk),
            Err(e) => Err(e),
        };
        // Too large or broken: hand on what was read, then the rest as it comes.
        let head = futures_util::stream::iter(read.into_iter().map(Ok));
        let rest = futures_util::stream::once(async move { unfinished }).chain(stream);
        let body = Body::from_stream(head.chain(rest));
        return (Request::from_parts(parts, body), String::new());
    }
    let bytes = read.concat();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (Request::from_parts(parts, Body::from(bytes)), text)
}

/// False for multipart uploads and bodies declared larger than [`MAX_BODY`].
fn worth_keeping(headers: &HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let multipart = header(CONTENT_TYPE).is_some_and(|t| {
        t.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    });
    let large = header(CONTENT_LENGTH)
        .and_then(|n| n.trim().parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64);
    !multipart && !large
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request whose body streams in `chunks` of `size` bytes, with no Content-Length.
    fn streamed(chunks: usize, size: usize) -> (Request, Vec<u8>) {
        let parts: Vec<Bytes> = (0..chunks)
            .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; size]))
            .collect();
        let whole = parts.concat();
        let stream = futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
        (Request::new(Body::from_stream(stream)), whole)
    }

    async fn body_of(request: Request) -> Vec<u8> {
        let bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await;
        bytes.unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_small_streamed_body_is_kept_and_passed_on() {
        let (request, whole) = streamed(4, 1000);
        let (request, text) = peek_body(request).await;
        assert_eq!(text.as_bytes(), whole.as_slice());
        assert_eq!(body_of(request).await, whole);
    }

    #[tokio::test]
    async fn a_large_streamed_body_is_passed_on_whole_and_kept_as_nothing() {
        let (request, whole) = streamed(40, 1000);
        let (request, text) = peek_body(request).await;
        assert_eq!(text, "");
        assert_eq!(body_of(request).await, whole);
    }
}
