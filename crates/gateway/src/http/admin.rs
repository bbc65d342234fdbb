//! The status page: `GET /admin` (HTML rendered here from [`status`],
//! then kept live by a small script that swaps in `GET /admin/live.html`,
//! the same rendering of its live part), `POST /admin/login`,
//! `GET /admin/status.json` and the page's stylesheet and script.
//!
//! The page is behind the `[admin]` key and closed (404) when none is set.
//! A request is let in by `Authorization: Bearer <admin key>` or by the
//! session cookie the login form sets, whose value is `ISSUED.MAC` with
//! MAC = hex(HMAC-SHA256(key = admin key, "wxgate-admin-session:ISSUED")): it
//! proves the key was typed without carrying it, lasts [`SESSION_SECS`], and
//! stops working when the key changes. Both are compared in constant time.
//! The key is never logged. A valid session is let in before the throttle is
//! consulted: its MAC cannot be guessed, and failed logins from the same
//! address (anyone's) must not lock a signed-in operator out. The page's
//! forms carry a token bound to the session and are checked for their origin
//! (see [`guard`]).
//!
//! Every answer carries `Cache-Control: no-store`, `X-Frame-Options: DENY` and
//! a Content-Security-Policy that allows only this origin's own files: the
//! CSS and JS are separate routes, so no inline script or style is needed.

mod actions;
mod guard;
mod page;
mod reload;
mod status;
mod timeline;

pub(crate) use reload::reload;

pub(crate) use actions::{
    clear_quota_form, clear_quota_json, quota_json, quota_page, revoke_form, rid_json, rid_page,
    timeline_svg,
};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::throttle::{Check, Peer, Refused};
use super::{ApiError, AppState};
use guard::SignedIn;

/// The session cookie's name.
const COOKIE: &str = "wxgate_admin";
/// What the session cookie's HMAC signs, before the issue time.
const SESSION_MESSAGE: &str = "wxgate-admin-session";
/// How long a login lasts, seconds (12 h).
const SESSION_SECS: u64 = 12 * 3600;
/// Only this origin's own files; no inline code, no framing, forms post here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const APP_CSS: &str = include_str!("admin/app.css");
const APP_JS: &str = include_str!("admin/app.js");

/// Whether a request may see the page.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    /// No admin key is configured: the page is closed.
    Closed,
    /// Neither a valid bearer key nor a valid session cookie.
    Denied,
    /// The peer failed too many credential checks lately: not even checked.
    Refused(Refused),
    /// Let in, by this proof.
    Granted(Proof),
}

/// How a request proved the admin key.
#[derive(Debug, PartialEq, Eq)]
enum Proof {
    /// `Authorization: Bearer <admin key>`: a browser never adds it to a
    /// request another page makes.
    Bearer,
    /// A valid session cookie (its value), which a browser sends whoever
    /// made the request: its posts need the form token too.
    Session(String),
}

/// Checks the session cookie, then the bearer key a request presents. A
/// valid session is let in without consulting the throttle; otherwise a
/// wrong key or cookie counts against the peer (see `throttle`), none at all
/// does not.
fn access(state: &AppState, headers: &HeaderMap, peer: Peer) -> Access {
    let Some(key) = &state.admin_key else {
        return Access::Closed;
    };
    let now = state.now();
    if let Some(session) = session(key.expose_secret(), headers, now) {
        return Access::Granted(Proof::Session(session.to_owned()));
    }
    let presented =
        headers.contains_key(header::AUTHORIZATION) || cookies(headers, COOKIE).next().is_some();
    if !presented {
        return Access::Denied;
    }
    if let Err(refused) = state.throttle.admit(peer, Check::AdminKey, now) {
        return Access::Refused(refused);
    }
    if bearer_matches(key.expose_secret(), headers) {
        Access::Granted(Proof::Bearer)
    } else {
        state.throttle.fail(peer, Check::AdminKey, now);
        Access::Denied
    }
}

/// The answer to a refused peer: 429 with `Retry-After`.
fn too_many(refused: Refused, body: Response) -> Response {
    let mut response = body;
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(refused.retry_after));
    response
}

fn refused_message(refused: Refused) -> String {
    format!(
        "Too many wrong keys from this address: try again in {} s.",
        refused.retry_after
    )
}

/// A session cookie for `key`, still fresh at `now`, or a bearer key.
#[cfg(test)]
fn authorized(key: &str, headers: &HeaderMap, now: u64) -> bool {
    session(key, headers, now).is_some() || bearer_matches(key, headers)
}

/// The value of a session cookie for `key`, still fresh at `now`.
fn session<'a>(key: &str, headers: &'a HeaderMap, now: u64) -> Option<&'a str> {
    cookies(headers, COOKIE).find(|value| session_matches(key, value, now))
}

/// `Authorization: Bearer <key>`.
fn bearer_matches(key: &str, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.is_some_and(|given| key_matches(key, given))
}

/// Compares digests, so neither the content nor the length of the key leaks through timing.
fn key_matches(key: &str, given: &str) -> bool {
    let expected: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
    expected.ct_eq(&given).into()
}

/// HMAC-SHA256(key = admin key, msg = "wxgate-admin-session:ISSUED").
fn session_mac(key: &str, issued: u64) -> [u8; 32] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{SESSION_MESSAGE}:{issued}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// `ISSUED.MAC`, signed by `key`, issued at most [`SESSION_SECS`] before `now`.
fn session_matches(key: &str, cookie: &str, now: u64) -> bool {
    let Some((issued, mac)) = cookie.split_once('.') else {
        return false;
    };
    let (Ok(issued), Ok(given)) = (issued.parse::<u64>(), hex::decode(mac)) else {
        return false;
    };
    let fresh = issued <= now.saturating_add(60) && now < issued.saturating_add(SESSION_SECS);
    fresh && bool::from(session_mac(key, issued).as_slice().ct_eq(&given))
}

/// Every value of cookie `name` in the request (a browser may send several).
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(n, _)| *n == name)
        .map(|(_, value)| value.trim())
}

/// The `Set-Cookie` value of a session; `Secure` when the browser came over
/// https (behind a TLS-terminating proxy that says so in `X-Forwarded-Proto`).
fn session_cookie(key: &str, headers: &HeaderMap, now: u64) -> String {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    let value = format!("{now}.{}", hex::encode(session_mac(key, now)));
    format!(
        "{COOKIE}={value}; Max-Age={SESSION_SECS}; HttpOnly; SameSite=Strict; Path=/admin{secure}"
    )
}

/// Adds the headers every admin answer carries.
fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: with it a browser sends `Origin: null` on the
        // page's own posts, which the origin check must refuse.
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn html(status: StatusCode, body: String) -> Response {
    let content_type = (header::CONTENT_TYPE, "text/html; charset=utf-8");
    harden((status, [content_type], body).into_response())
}

fn closed() -> Response {
    html(StatusCode::NOT_FOUND, page::closed())
}

/// `GET /admin`: the status page, or the login form (401).
pub(crate) async fn page(State(state): State<AppState>, signed_in: SignedIn) -> Response {
    let snapshot = status::snapshot(&state).await;
    let form_token = signed_in.form_token.as_deref();
    html(StatusCode::OK, page::status(&snapshot, form_token))
}

/// The login form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    /// The admin key as typed.
    key: String,
}

/// `POST /admin/login` (`key=…`): sets the session cookie and sends the
/// browser back to `/admin` (303), or shows the form again with an error
/// (401; 403 when another page posted it, which is not counted).
pub(crate) async fn login(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Some(key) = &state.admin_key else {
        return closed();
    };
    if let Some(refused) = guard::foreign_login(&headers, &uri) {
        return refused;
    }
    let key = key.expose_secret();
    let now = state.now();
    if let Err(refused) = state.throttle.admit(peer, Check::AdminKey, now) {
        let page = page::login(Some(&refused_message(refused)));
        return too_many(refused, html(StatusCode::TOO_MANY_REQUESTS, page));
    }
    let typed = form.map(|Form(f)| f.key).unwrap_or_default();
    if !key_matches(key, &typed) {
        // Counted, not logged one by one: the throttle warns once per peer.
        tracing::debug!("admin login refused: wrong key");
        state.throttle.fail(peer, Check::AdminKey, now);
        let error = "That is not the admin key.";
        return html(StatusCode::UNAUTHORIZED, page::login(Some(error)));
    }
    tracing::info!("admin login");
    let cookie = session_cookie(key, &headers, now);
    let location = (header::LOCATION, "/admin".to_owned());
    harden(
        (
            StatusCode::SEE_OTHER,
            [location, (header::SET_COOKIE, cookie)],
        )
            .into_response(),
    )
}

/// `GET /admin/live.html`: the page's live part alone (see [`page::live`]),
/// which its script fetches every 5 s.
pub(crate) async fn live_html(State(state): State<AppState>, _: Operator) -> Response {
    html(StatusCode::OK, page::live(&status::snapshot(&state).await))
}

/// `GET /admin/status.json`: the snapshot the page renders.
pub(crate) async fn status_json(State(state): State<AppState>, _: Operator) -> Response {
    harden(Json(status::snapshot(&state).await).into_response())
}

/// A request that proved the admin key (bearer or session cookie), for the
/// admin API; otherwise it is answered with the JSON refusal.
pub(crate) struct Operator;

impl axum::extract::FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        let peer = Peer::of(
            &parts.extensions,
            &parts.headers,
            &state.server.trusted_proxies,
        );
        refusal(state, &parts.headers, peer).map_or(Ok(Operator), Err)
    }
}

/// The JSON refusal of an admin-only endpoint (an [`ApiError`], as every
/// other endpoint's); `None` when the admin key is given.
fn refusal(state: &AppState, headers: &HeaderMap, peer: Peer) -> Option<Response> {
    let error = match access(state, headers, peer) {
        Access::Refused(too) => ApiError::from(too),
        Access::Closed => ApiError::AdminClosed,
        Access::Denied => ApiError::AdminUnauthorized,
        Access::Granted(_) => return None,
    };
    Some(harden(error.into_response()))
}

/// `GET /v1/audit?appid=&limit=` (admin key): the audit log, newest first
/// (`limit` default 100, at most 1000).
pub(crate) async fn audit(
    State(state): State<AppState>,
    _: Operator,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match state.center.audit_log(q.appid.as_deref(), limit).await {
        Ok(entries) => harden(Json(json!({ "entries": entries })).into_response()),
        Err(e) => harden(ApiError::StoreUnavailable(e.to_string()).into_response()),
    }
}

/// `POST /v1/apps/{appid}/access_token/revoke` (admin key): revokes a leaked
/// access token (see [`crate::token::revoke`]); 202 with what was done and
/// when WeChat stops accepting the revoked token.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    _: Operator,
    axum::extract::Path(appid): axum::extract::Path<String>,
) -> Response {
    match state.center.revoke(&appid).await {
        Ok(done) => harden((StatusCode::ACCEPTED, Json(done)).into_response()),
        Err(e) => harden(ApiError::from(e).into_response()),
    }
}

/// The query of `GET /v1/audit`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct AuditQuery {
    appid: Option<String>,
    limit: Option<usize>,
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let content_type: (HeaderName, &str) = (header::CONTENT_TYPE, content_type);
    harden(([content_type], body).into_response())
}

/// `GET /admin/app.css`: the page's stylesheet (public: it holds no data).
pub(crate) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /admin/app.js`: the page's script (public: it holds no data).
pub(crate) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_bearer_key_lets_in_and_a_wrong_one_does_not() {
        let now = 1_700_000_000;
        assert!(authorized(
            "k3y",
            &headers(&[("authorization", "Bearer k3y")]),
            now
        ));
        assert!(!authorized(
            "k3y",
            &headers(&[("authorization", "Bearer k3")]),
            now
        ));
        assert!(!authorized(
            "k3y",
            &headers(&[("authorization", "k3y")]),
            now
        ));
        assert!(!authorized("k3y", &headers(&[]), now));
    }

    #[test]
    fn the_session_cookie_is_the_hmac_of_the_key_and_its_issue_time_and_expires() {
        // HMAC-SHA256(key = "k3y", "wxgate-admin-session:1700000000"), computed independently:
        // printf wxgate-admin-session:1700000000 | openssl dgst -sha256 -hmac k3y
        let issued = 1_700_000_000;
        let mac = hex::encode(session_mac("k3y", issued));
        assert_eq!(
            mac,
            "8eca1468268005fe1ffa89d243dc55d31caa4fa92fa76d69ae43eeaaa2c0d36d"
        );
        let value = format!("{issued}.{mac}");
        let cookie = format!("a=b; {COOKIE}={value}; c=d");
        assert!(authorized(
            "k3y",
            &headers(&[("cookie", &cookie)]),
            issued + 10
        ));
        assert!(!authorized(
            "other",
            &headers(&[("cookie", &cookie)]),
            issued + 10
        ));
        // Expired after 12 h; a cookie from the future is not accepted either.
        assert!(!authorized(
            "k3y",
            &headers(&[("cookie", &cookie)]),
            issued + SESSION_SECS
        ));
        assert!(!authorized(
            "k3y",
            &headers(&[("cookie", &cookie)]),
            issued - 3600
        ));
        // Moving the issue time forward breaks the MAC.
        let moved = format!("{COOKIE}={}.{mac}", issued + 3600);
        assert!(!authorized(
            "k3y",
            &headers(&[("cookie", &moved)]),
            issued + 3700
        ));
        let forged = format!("{COOKIE}={issued}.{}", hex::encode(Sha256::digest(b"k3y")));
        assert!(!authorized(
            "k3y",
            &headers(&[("cookie", &forged)]),
            issued + 10
        ));
        let short = format!("{COOKIE}=abcd");
        assert!(!authorized(
            "k3y",
            &headers(&[("cookie", &short)]),
            issued + 10
        ));
    }

    #[test]
    fn the_cookie_is_secure_only_behind_https_and_says_its_age() {
        let plain = session_cookie("k", &headers(&[]), 5);
        assert!(
            plain.contains("Max-Age=43200; HttpOnly; SameSite=Strict; Path=/admin"),
            "{plain}"
        );
        assert!(!plain.contains("Secure"), "{plain}");
        let tls = session_cookie("k", &headers(&[("x-forwarded-proto", "https")]), 5);
        assert!(tls.ends_with("; Secure"), "{tls}");
    }
}
