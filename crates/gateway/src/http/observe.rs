//! One middleware around every request: a request id (the caller's
//! `X-Request-Id` when it is sane, else a new one) on every line logged
//! while answering ([`logs::in_request`]) and in the answer, the duration
//! by route in the metrics, one log line per failure, and 431 for headers
//! over [`MAX_HEADER_BYTES`] (hyper alone would take about 400 KB).

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::logs::{self, RequestId};
use crate::metrics::{route_label, RouteLabels};

/// Largest total size of a request's headers, bytes (nginx's default is 32 KiB too).
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The header carrying the request id.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's id if it is short and plain, else a fresh random one.
pub(crate) fn request_id(headers: &HeaderMap) -> RequestId {
    let given = headers
        .get(&REQUEST_ID)
        .and_then(|v| RequestId::new(v.as_bytes()));
    given.unwrap_or_else(|| RequestId::hex(fresh_id()))
}

/// `id` as the answer's `X-Request-Id` header.
pub(crate) fn id_header(id: &RequestId) -> HeaderValue {
    HeaderValue::from_bytes(id.as_bytes()).expect("a request id is a valid header value")
}

/// A request id no other request of this process gets, unrelated to the
/// last one: a counter from a random start, through a bijective mixer
/// (SplitMix64's), so ids differ across restarts and never repeat within
/// 2^64 requests. An id names a request in the logs; nothing trusts it,
/// so it needs no cryptographic generator per request.
fn fresh_id() -> u64 {
    static NEXT: std::sync::LazyLock<std::sync::atomic::AtomicU64> =
        std::sync::LazyLock::new(|| rand::random::<u64>().into());
    let mut z = NEXT
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Wraps every request.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = tokio::time::Instant::now();
    if let Some(refused) = headers_too_large(request.headers()) {
        return refused;
    }
    let id = request_id(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| route_label(p.as_str()));
    let method = request.method().clone();
    let mut response = logs::in_request(id, next.run(request)).await;
    let elapsed = started.elapsed();
    let status = response.status();
    response
        .headers_mut()
        .insert(REQUEST_ID.clone(), id_header(&id));
    state
        .metrics
        .http_seconds
        .get_or_create(&RouteLabels {
            route,
            method: method_label(&method),
            status: status_label(status),
        })
        .observe(elapsed.as_secs_f64());
    logs::with_request(id, || log_answer(&method, route, status, elapsed));
    response
}

/// 431 when a request's headers exceed [`MAX_HEADER_BYTES`] in all.
pub(crate) fn headers_too_large(headers: &HeaderMap) -> Option<Response> {
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (bytes > MAX_HEADER_BYTES).then(|| {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large\n",
        )
            .into_response()
    })
}

/// The line every answer gets, within [`logs::with_request`] (which gives
/// it the request's id): a failure (5xx) as a warning, the rest at debug level.
pub(crate) fn log_answer(
    method: &Method,
    route: &str,
    status: StatusCode,
    elapsed: std::time::Duration,
) {
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(%method, route, status = status.as_u16(), ms, "request failed");
    } else {
        tracing::debug!(%method, route, status = status.as_u16(), ms, "request");
    }
}

/// Known methods by name; anything else as `other` (bounded labels).
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The statuses wxgate answers with, by code; anything else by class.
pub(crate) fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        204 => "204",
        303 => "303",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        422 => "422",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => match other / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_request_ids_are_distinct_hex_and_a_plain_given_one_is_kept() {
        let none = HeaderMap::new();
        let ids: std::collections::HashSet<_> = (0..10_000)
            .map(|_| request_id(&none).as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        let mut given = HeaderMap::new();
        given.insert(REQUEST_ID.clone(), HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&given).as_str(), "abc-123");
        assert_eq!(id_header(&request_id(&given)), "abc-123");
        for refused in ["a b", "", "é"] {
            given.insert(REQUEST_ID.clone(), HeaderValue::from_str(refused).unwrap());
            assert_eq!(request_id(&given).as_str().len(), 16, "{refused:?} kept");
        }
        let longest = "a".repeat(logs::MAX_REQUEST_ID);
        given.insert(REQUEST_ID.clone(), HeaderValue::from_str(&longest).unwrap());
        assert_eq!(request_id(&given).as_str(), longest);
        let longer = "a".repeat(logs::MAX_REQUEST_ID + 1);
        given.insert(REQUEST_ID.clone(), HeaderValue::from_str(&longer).unwrap());
        assert_eq!(request_id(&given).as_str().len(), 16);
    }
}
