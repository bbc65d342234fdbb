//! The WeChat-facing endpoints: `GET /wx/{appid}` (ownership check) and
//! `POST /wx/{appid}` (pushes), also at `/` when exactly one app is configured.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use wxgate_proto::{open_push, seal_reply, Push, PushQuery};

use super::{ApiError, AppState};
use crate::config::AppConfig;
use crate::token::TokenError;

/// The query WeChat adds to `/wx/{appid}`: the push's signed parameters, plus
/// `echostr` on an ownership check.
///
/// Read straight from the query string, not through serde: on the hottest
/// routes serde's extraction was the largest single cost (`bench/RESULTS.md`).
/// Unknown parameters are ignored; a known one given twice is refused, so
/// that what is checked is what is used.
#[derive(Debug, Default)]
pub(crate) struct WeChatQuery {
    push: PushQuery,
    echostr: Option<String>,
}

impl WeChatQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let (mut signature, mut timestamp, mut nonce) = (None, None, None);
        let mut q = WeChatQuery::default();
        for (name, value) in query_pairs(query) {
            let slot = match &*name {
                "signature" => &mut signature,
                "timestamp" => &mut timestamp,
                "nonce" => &mut nonce,
                "echostr" => &mut q.echostr,
                "openid" => &mut q.push.openid,
                "encrypt_type" => &mut q.push.encrypt_type,
                "msg_signature" => &mut q.push.msg_signature,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(ApiError::BadRequest(format!(
                    "query parameter {name} is given more than once"
                )));
            }
        }
        q.push.signature = required(signature, "signature")?;
        q.push.timestamp = required(timestamp, "timestamp")?;
        q.push.nonce = required(nonce, "nonce")?;
        Ok(q)
    }
}

/// The query's name/value pairs, decoded as `application/x-www-form-urlencoded`.
/// WeChat's parameters need no decoding, so a pair without `%` or `+` is
/// borrowed as is and only the others go through the decoder.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            if pair.bytes().any(|b| b == b'%' || b == b'+') {
                url::form_urlencoded::parse(pair.as_bytes())
                    .next()
                    .unwrap_or_default()
            } else {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (Cow::Borrowed(name), Cow::Borrowed(value))
            }
        })
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::BadRequest(format!("missing query parameter {name}")))
}

impl<S: Sync> FromRequestParts<S> for WeChatQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        WeChatQuery::parse(parts.uri.query().unwrap_or_default())
    }
}

/// The app and its server token, or why pushes cannot be taken for it.
fn app_with_token(state: &AppState, appid: &str) -> Result<(Arc<AppConfig>, String), ApiError> {
    let app = state
        .center
        .app(appid)
        .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?
        .clone();
    let token = app
        .token
        .as_ref()
        .ok_or_else(|| ApiError::PushNotConfigured(appid.to_owned()))?
        .expose_secret()
        .to_owned();
    Ok((app, token))
}

/// Refuses a push or ownership check signed further than
/// `server.timestamp_tolerance_secs` from now.
fn check_fresh(state: &AppState, timestamp: &str) -> Result<(), ApiError> {
    let tolerance = state.server.timestamp_tolerance_secs;
    if wxgate_proto::timestamp_is_fresh(timestamp, state.center.now(), tolerance) {
        Ok(())
    } else {
        Err(ApiError::StaleTimestamp)
    }
}

/// `GET /wx/{appid}`: answers `echostr` when the signature matches and is
/// fresh (§1.2).
pub(crate) async fn verify(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    q: WeChatQuery,
) -> Result<Response, ApiError> {
    let echostr = required(q.echostr, "echostr")?;
    let (_, token) = app_with_token(&state, &appid)?;
    let q = q.push;
    check_fresh(&state, &q.timestamp)?;
    wxgate_proto::verify_signature(&token, &q.timestamp, &q.nonce, &q.signature)
        .map_err(|_| ApiError::Push(wxgate_proto::EnvelopeError::Signature))?;
    tracing::debug!(appid, "server ownership check passed");
    // The echo is the caller's own text: plain text, never sniffed as HTML.
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    Ok((headers, echostr).into_response())
}

/// `POST /wx/{appid}`: checks, decrypts, dedupes and answers a push (§2, §3).
pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    q: WeChatQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let q = q.push;
    let result = match read_signed_body(&state, &appid, &q, body).await {
        Ok(body) => open(&state, &appid, &q, &body).map(|opened| (opened, body)),
        Err(e) => Err(e),
    };
    let opened = match result {
        // WeChat's signature covers the body only through msg_signature.
        Ok((opened, body)) if q.msg_signature.is_none() => state
            .dispatcher
            .bind_unsigned_body(&appid, &q, &body)
            .await
            .map(|()| opened)
            .map_err(ApiError::from),
        other => other.map(|(opened, _)| opened),
    };
    let (app, token, push) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            // At debug level: anyone can send refused pushes. Operators see
            // them counted in the metrics and summed up once a minute.
            state.dispatcher.count_rejected(&appid, e.code());
            tracing::debug!(appid, error = %e, "push refused");
            return Err(e);
        }
    };
    let answer = state.dispatcher.answer(app.clone(), push).await;
    let Some(reply) = answer else {
        return Ok((
            [(header::CONTENT_TYPE, "text/plain")],
            wxgate_proto::reply::SUCCESS,
        )
            .into_response());
    };
    let now = state.center.now().to_string();
    let sealed = seal_reply(
        &app.push_mode,
        &token,
        &reply,
        &now,
        &q.nonce,
        &rand::random(),
    );
    Ok(([(header::CONTENT_TYPE, "application/xml")], sealed).into_response())
}

/// The push's body, read only once the query's `signature` (which WeChat
/// always sends, and which needs no body) and timestamp check out, so an
/// unsigned request never gets a body buffered; at most `server.max_body_bytes`.
async fn read_signed_body(
    state: &AppState,
    appid: &str,
    q: &PushQuery,
    body: Body,
) -> Result<Bytes, ApiError> {
    let (_, token) = app_with_token(state, appid)?;
    check_fresh(state, &q.timestamp)?;
    wxgate_proto::verify_signature(&token, &q.timestamp, &q.nonce, &q.signature)
        .map_err(|_| ApiError::Push(wxgate_proto::EnvelopeError::Signature))?;
    axum::body::to_bytes(body, state.server.max_body_bytes)
        .await
        .map_err(|e| {
            let e = e.into_inner();
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::BodyTooLarge
            } else {
                ApiError::BadRequest(format!("body could not be read: {e}"))
            }
        })
}

fn open(
    state: &AppState,
    appid: &str,
    q: &PushQuery,
    body: &[u8],
) -> Result<(Arc<AppConfig>, String, Push), ApiError> {
    let (app, token) = app_with_token(state, appid)?;
    let body =
        std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    let xml = open_push(&app.push_mode, &token, q, body)?;
    let push = Push::parse(&xml).map_err(|e| ApiError::BadRequest(format!("push: {e}")))?;
    Ok((app, token, push))
}

/// The one app, for the `/` mount.
fn single_app(state: &AppState) -> Result<String, ApiError> {
    let mut ids = state.center.appids();
    match (ids.next(), ids.next()) {
        (Some(only), None) => Ok(only.to_owned()),
        _ => Err(ApiError::BadRequest(
            "several apps are configured: use /wx/{appid}".into(),
        )),
    }
}

/// `GET /` with exactly one app.
pub(crate) async fn verify_root(
    state: State<AppState>,
    q: WeChatQuery,
) -> Result<Response, ApiError> {
    let appid = single_app(&state)?;
    verify(state, Path(appid), q).await
}

/// `POST /` with exactly one app.
pub(crate) async fn receive_root(
    state: State<AppState>,
    q: WeChatQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let appid = single_app(&state)?;
    receive(state, Path(appid), q, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_request(query: &str) -> String {
        match WeChatQuery::parse(query) {
            Err(ApiError::BadRequest(why)) => why,
            other => panic!("{query}: expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn reads_every_parameter_percent_decoded() {
        let q = WeChatQuery::parse(
            "signature=s%31&timestamp=1700000000&nonce=n+1&echostr=a%2Bb%3D\
             &openid=o&encrypt_type=aes&msg_signature=m&other=x&other=y",
        )
        .unwrap();
        assert_eq!(q.push.signature, "s1");
        assert_eq!(q.push.timestamp, "1700000000");
        assert_eq!(q.push.nonce, "n 1");
        assert_eq!(q.echostr.as_deref(), Some("a+b="));
        assert_eq!(q.push.openid.as_deref(), Some("o"));
        assert_eq!(q.push.encrypt_type.as_deref(), Some("aes"));
        assert_eq!(q.push.msg_signature.as_deref(), Some("m"));
    }

    proptest::proptest! {
        #[test]
        fn decodes_any_query_as_the_form_decoder_does(query in "[a-z0-9=&%+A-F\\x{e9}]{0,40}") {
            let ours: Vec<_> = query_pairs(&query).collect();
            let theirs: Vec<_> = url::form_urlencoded::parse(query.as_bytes()).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn decodes_like_the_form_decoder() {
        for query in [
            "signature=a&timestamp=1&nonce=2&echostr=x%20y+z&&=v&k",
            "signature=%E4%BD%A0&timestamp=1&nonce=2&echostr=%FF%zz&a=b=c",
        ] {
            let ours: Vec<_> = query_pairs(query).collect();
            let theirs: Vec<_> = url::form_urlencoded::parse(query.as_bytes()).collect();
            assert_eq!(ours, theirs, "{query}");
        }
    }

    #[test]
    fn optional_parameters_may_be_absent() {
        let q = WeChatQuery::parse("signature=s&timestamp=1&nonce=2").unwrap();
        assert_eq!(q.echostr, None);
        assert_eq!(q.push.encrypt_type, None);
        assert_eq!(q.push.msg_signature, None);
    }

    #[test]
    fn refuses_missing_and_repeated_parameters() {
        assert_eq!(bad_request(""), "missing query parameter signature");
        assert_eq!(
            bad_request("signature=s&timestamp=1"),
            "missing query parameter nonce"
        );
        assert_eq!(
            bad_request("signature=s&timestamp=1&nonce=2&timestamp=3"),
            "query parameter timestamp is given more than once"
        );
        assert_eq!(
            bad_request("signature=s&timestamp=1&nonce=2&msg_%73ignature=a&msg_signature=b"),
            "query parameter msg_signature is given more than once"
        );
    }
}
