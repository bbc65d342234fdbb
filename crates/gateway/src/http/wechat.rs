//! The endpoints WeChat and WeCom call: `GET /wx/{appid}` (ownership check)
//! and `POST /wx/{appid}` (pushes), also at `/` when exactly one app is
//! configured; `GET/POST /wecom/{corpid}/{agent}` (WeCom's URL check, with an
//! encrypted `echostr`, and its callbacks, always encrypted).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use wxgate_proto::{
    body_format, open_callback, open_echostr, open_signed_json_push, open_signed_push,
    push_from_json, seal_reply, BodyFormat, CallbackQuery, MessageCrypto, Push, PushQuery,
};

use super::owner::WecomApp;
use super::{ApiError, AppState};
use crate::message::{Inbox, Sender};
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
        let [signature, timestamp, nonce, echostr, openid, encrypt_type, msg_signature] =
            read_query(
                query,
                [
                    "signature",
                    "timestamp",
                    "nonce",
                    "echostr",
                    "openid",
                    "encrypt_type",
                    "msg_signature",
                ],
            )?;
        Ok(WeChatQuery {
            push: PushQuery {
                signature: required(signature, "signature")?,
                timestamp: required(timestamp, "timestamp")?,
                nonce: required(nonce, "nonce")?,
                openid,
                encrypt_type,
                msg_signature,
            },
            echostr,
        })
    }
}

impl<S: Sync> FromRequestParts<S> for WeChatQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        WeChatQuery::parse(parts.uri.query().unwrap_or_default())
    }
}

/// The query WeCom adds to `/wecom/{corpid}/{agent}`: `msg_signature`,
/// `timestamp`, `nonce`, and the encrypted `echostr` on a URL check.
#[derive(Debug)]
pub(crate) struct WeComQuery(CallbackQuery);

impl WeComQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let [msg_signature, timestamp, nonce, echostr] =
            read_query(query, ["msg_signature", "timestamp", "nonce", "echostr"])?;
        Ok(WeComQuery(CallbackQuery {
            msg_signature: required(msg_signature, "msg_signature")?,
            timestamp: required(timestamp, "timestamp")?,
            nonce: required(nonce, "nonce")?,
            echostr,
        }))
    }
}

impl<S: Sync> FromRequestParts<S> for WeComQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        WeComQuery::parse(parts.uri.query().unwrap_or_default())
    }
}

/// The values of the parameters `names`, in their order; others are ignored,
/// and one of `names` given twice is refused.
fn read_query<const N: usize>(
    query: &str,
    names: [&str; N],
) -> Result<[Option<String>; N], ApiError> {
    let mut values = [const { None }; N];
    for (name, value) in query_pairs(query) {
        let Some(i) = names.iter().position(|n| *n == name) else {
            continue;
        };
        if values[i].replace(value.into_owned()).is_some() {
            return Err(ApiError::BadRequest(format!(
                "query parameter {name} is given more than once"
            )));
        }
    }
    Ok(values)
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

/// The inbox of the configured `owner`, or why it takes no pushes (no server token).
fn inbox_of(state: &AppState, owner: &str) -> Result<Arc<Inbox>, ApiError> {
    state
        .dispatcher
        .inbox(owner)
        .cloned()
        .ok_or_else(|| ApiError::PushNotConfigured(owner.to_owned()))
}

/// The inbox of the Official Account or Mini Program `appid` (never a WeCom
/// app's: those take only WeCom's envelope, at `/wecom/…`).
fn app_inbox(state: &AppState, appid: &str) -> Result<Arc<Inbox>, ApiError> {
    if state.center.owners().app(appid).is_none() {
        return Err(TokenError::UnknownApp(appid.to_owned()).into());
    }
    inbox_of(state, appid)
}

/// A WeCom inbox's crypto (receiveid = the corpid). The configuration builds
/// every WeCom inbox encrypted; one without would take no callbacks.
fn crypto(inbox: &Inbox) -> Result<&MessageCrypto, ApiError> {
    inbox
        .mode
        .crypto()
        .ok_or_else(|| ApiError::PushNotConfigured(inbox.owner.clone()))
}

/// Refuses a push or ownership check signed further than
/// `server.timestamp_tolerance_secs` from now.
fn check_fresh(state: &AppState, timestamp: &str) -> Result<(), ApiError> {
    let tolerance = state.server.timestamp_tolerance_secs;
    if wxgate_proto::timestamp_is_fresh(timestamp, state.dispatcher.now(), tolerance) {
        Ok(())
    } else {
        Err(ApiError::StaleTimestamp)
    }
}

/// The echo, as WeChat and WeCom want it: the bare text (no quotes, BOM or
/// newline), never sniffed as HTML.
fn echo(text: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (headers, text).into_response()
}

/// `GET /wx/{appid}`: answers `echostr` when the signature matches and is
/// fresh (§1.2).
pub(crate) async fn verify(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    q: WeChatQuery,
) -> Result<Response, ApiError> {
    let echostr = required(q.echostr, "echostr")?;
    signed_inbox(&state, &appid, &q.push)?;
    tracing::debug!(appid, "server ownership check passed");
    Ok(echo(echostr))
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
        Ok((inbox, body)) => open(&inbox, &q, &body).map(|push| (inbox, push, body)),
        Err(e) => Err(e),
    };
    let opened = match result {
        // WeChat's signature covers the body only through msg_signature.
        Ok((inbox, push, body)) if q.msg_signature.is_none() => state
            .dispatcher
            .bind_unsigned_body(&appid, &q, &body)
            .await
            .map(|()| (inbox, push))
            .map_err(ApiError::from),
        other => other.map(|(inbox, push, _)| (inbox, push)),
    };
    let (inbox, push) = opened.inspect_err(|e| refused(&state, &appid, e))?;
    let answer = state.dispatcher.answer(inbox.clone(), push).await;
    Ok(answer_push(&state, &inbox, &q.nonce, answer))
}

/// Counts a refused push. At debug level only: anyone can send refused
/// pushes; operators see them in the metrics and summed up once a minute.
fn refused(state: &AppState, owner: &str, e: &ApiError) {
    state.dispatcher.count_rejected(owner, e.code());
    tracing::debug!(owner, error = %e, "push refused");
}

/// The HTTP answer to a push: its reply sealed as the inbox's mode wants, or
/// no reply: `success`, never encrypted (a Mini Program breaks on an
/// encrypted one, §2), and for WeCom an empty body (§1.5).
fn answer_push(state: &AppState, inbox: &Inbox, nonce: &str, reply: Option<String>) -> Response {
    let Some(reply) = reply else {
        let body = match inbox.sender {
            Sender::WeCom { .. } => "",
            Sender::Official | Sender::MiniProgram => wxgate_proto::reply::SUCCESS,
        };
        return ([(header::CONTENT_TYPE, "text/plain")], body).into_response();
    };
    let now = state.dispatcher.now().to_string();
    let sealed = seal_reply(
        &inbox.mode,
        inbox.token.expose_secret(),
        &reply,
        &now,
        nonce,
        &rand::random(),
    );
    ([(header::CONTENT_TYPE, "application/xml")], sealed).into_response()
}

/// The push's body, read only once the query's `signature` (which WeChat
/// always sends, and which needs no body) and timestamp check out, so an
/// unsigned request never gets a body buffered; at most `server.max_body_bytes`.
async fn read_signed_body(
    state: &AppState,
    appid: &str,
    q: &PushQuery,
    body: Body,
) -> Result<(Arc<Inbox>, Bytes), ApiError> {
    let inbox = signed_inbox(state, appid, q)?;
    Ok((inbox, read_body(state, body).await?))
}

/// The inbox of `appid`, once the query's `signature` (over token,
/// timestamp and nonce) checks out and its timestamp is fresh.
fn signed_inbox(state: &AppState, appid: &str, q: &PushQuery) -> Result<Arc<Inbox>, ApiError> {
    let inbox = app_inbox(state, appid)?;
    check_fresh(state, &q.timestamp)?;
    wxgate_proto::verify_signature(
        inbox.token.expose_secret(),
        &q.timestamp,
        &q.nonce,
        &q.signature,
    )
    .map_err(|_| ApiError::Push(wxgate_proto::EnvelopeError::Signature))?;
    Ok(inbox)
}

/// A push's body, at most `server.max_body_bytes`.
async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
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

/// Opens an Official Account's or Mini Program's push, its `signature`
/// checked already ([`signed_inbox`]). A Mini Program's may
/// be JSON (its console's choice); both formats are read, so a switch there
/// loses nothing.
fn open(inbox: &Inbox, q: &PushQuery, body: &[u8]) -> Result<Push, ApiError> {
    let body = utf8(body)?;
    let token = inbox.token.expose_secret();
    if inbox.sender == Sender::MiniProgram && body_format(body) == BodyFormat::Json {
        let json = open_signed_json_push(&inbox.mode, token, q, body)?;
        return Ok(push_from_json(&json)?);
    }
    let xml = open_signed_push(&inbox.mode, token, q, body)?;
    read_push(&xml)
}

fn utf8(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))
}

fn read_push(xml: &str) -> Result<Push, ApiError> {
    Push::parse(xml).map_err(|e| ApiError::BadRequest(format!("push: {e}")))
}

/// The one app, for the `/` mount.
fn single_app(state: &AppState) -> Result<String, ApiError> {
    let mut ids = state.center.owners().appids();
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

/// `GET /wecom/{corpid}/{agent}`: WeCom's URL check (§1.5): `msg_signature`
/// covers the encrypted `echostr`; the answer is its plaintext. Stateless, so
/// the identical checks WeCom sends from several addresses at once all pass.
pub(crate) async fn wecom_verify(
    State(state): State<AppState>,
    WecomApp(owner): WecomApp,
    WeComQuery(q): WeComQuery,
) -> Result<Response, ApiError> {
    let inbox = inbox_of(&state, &owner)?;
    check_fresh(&state, &q.timestamp)?;
    let plain = open_echostr(crypto(&inbox)?, inbox.token.expose_secret(), &q)?;
    tracing::debug!(owner = %inbox.owner, "WeCom URL check passed");
    Ok(echo(plain))
}

/// `POST /wecom/{corpid}/{agent}`: a WeCom callback, XML or JSON, always
/// encrypted; answered like a push, a reply sealed for the corp.
pub(crate) async fn wecom_receive(
    State(state): State<AppState>,
    WecomApp(owner): WecomApp,
    WeComQuery(q): WeComQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let inbox = inbox_of(&state, &owner)?;
    let opened = async {
        check_fresh(&state, &q.timestamp)?;
        let body = read_body(&state, body).await?;
        let plain = open_callback(
            crypto(&inbox)?,
            inbox.token.expose_secret(),
            &q,
            utf8(&body)?,
        )?;
        match body_format(&plain) {
            BodyFormat::Json => Ok(push_from_json(&plain)?),
            BodyFormat::Xml => read_push(&plain),
        }
    };
    let push = opened
        .await
        .inspect_err(|e| refused(&state, &inbox.owner, e))?;
    let answer = state.dispatcher.answer(inbox.clone(), push).await;
    Ok(answer_push(&state, &inbox, &q.nonce, answer))
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
