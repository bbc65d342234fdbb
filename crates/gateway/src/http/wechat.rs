//! The endpoints WeChat and WeCom call: `GET /wx/{appid}` (ownership check)
//! and `POST /wx/{appid}` (pushes), also at `/` when exactly one app is
//! configured; `GET/POST /wecom/{corpid}/{agent}` (WeCom's URL check, with an
//! encrypted `echostr`, and its callbacks, always encrypted).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use wxgate_proto::{
    body_format, open_callback, open_echostr, open_signed_json_push, open_signed_push,
    push_from_json, seal_reply, BodyFormat, CallbackError, CallbackQuery, EnvelopeError,
    MessageCrypto, Push, PushMode, PushQuery,
};

use super::owner::PathOwner;
use super::throttle::client_ip;
use super::{ApiError, AppState};
use crate::family::Envelope;
use crate::inbox::Keys;
use crate::message::Inbox;
use crate::token::owners::Owner;

/// The query WeChat adds to `/wx/{appid}`: the push's signed parameters, plus
/// `echostr` on an ownership check.
///
/// Read straight from the query string, not through serde: on the hottest
/// routes serde's extraction was the largest single cost (`bench/RESULTS.md`).
/// Unknown parameters are ignored; a known one given twice is refused, so
/// that what is checked is what is used. Values are borrowed from the
/// query unless they had to be decoded.
#[derive(Debug, Default)]
pub(crate) struct WeChatQuery<'a> {
    push: Query<'a>,
    echostr: Option<Cow<'a, str>>,
}

/// A push's query as read from a request: borrowed where it can be.
type Query<'a> = PushQuery<Cow<'a, str>>;

impl<'a> WeChatQuery<'a> {
    fn parse(query: &'a str) -> Result<Self, ApiError> {
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

/// The query WeCom adds to `/wecom/{corpid}/{agent}`: `msg_signature`,
/// `timestamp`, `nonce`, and the encrypted `echostr` on a URL check.
#[derive(Debug)]
pub(crate) struct WeComQuery(CallbackQuery);

impl WeComQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let [msg_signature, timestamp, nonce, echostr] =
            read_query(query, ["msg_signature", "timestamp", "nonce", "echostr"])?;
        Ok(WeComQuery(CallbackQuery {
            msg_signature: required(msg_signature, "msg_signature")?.into_owned(),
            timestamp: required(timestamp, "timestamp")?.into_owned(),
            nonce: required(nonce, "nonce")?.into_owned(),
            echostr: echostr.map(Cow::into_owned),
        }))
    }
}

/// The values of the parameters `names`, in their order; others are ignored,
/// and one of `names` given twice is refused. WeChat's parameters need no
/// decoding: a query without `%` or `+` (one vector search finds out) is
/// read in place, each pair's end found by one more search and its name
/// matched by its first byte before it is compared; any other goes through
/// the form decoder ([`read_decoded`]).
fn read_query<'a, const N: usize>(
    query: &'a str,
    names: [&str; N],
) -> Result<[Option<Cow<'a, str>>; N], ApiError> {
    if memchr::memchr2(b'%', b'+', query.as_bytes()).is_some() {
        return read_decoded(query, names);
    }
    let mut values = [const { None }; N];
    let mut put = |i: usize, value: &'a str| match values[i].replace(Cow::Borrowed(value)) {
        None => Ok(()),
        Some(_) => Err(repeated(names[i])),
    };
    let mut rest = query;
    while !rest.is_empty() {
        let end = memchr::memchr(b'&', rest.as_bytes()).unwrap_or(rest.len());
        // `&` is ASCII: slicing at it keeps to char boundaries.
        let pair = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        let found =
            (names.iter().enumerate()).find_map(|(i, name)| Some((i, value_in(pair, name)?)));
        if let Some((i, value)) = found {
            put(i, value)?;
        }
    }
    Ok(values)
}

/// [`read_query`] through the form decoder (`application/x-www-form-urlencoded`).
fn read_decoded<'a, const N: usize>(
    query: &'a str,
    names: [&str; N],
) -> Result<[Option<Cow<'a, str>>; N], ApiError> {
    let mut values = [const { None }; N];
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if let Some(i) = names.iter().position(|n| *n == name) {
            if values[i].replace(value).is_some() {
                return Err(repeated(names[i]));
            }
        }
    }
    Ok(values)
}

fn repeated(name: &str) -> ApiError {
    ApiError::BadRequest(format!("query parameter {name} is given more than once"))
}

/// The value of `pair` (`name=value`, or `name` alone: an empty value) if
/// its name is `name`, which holds no `=`.
fn value_in<'p>(pair: &'p str, name: &str) -> Option<&'p str> {
    // The first byte first: most names differ there, and that needs no call.
    if pair.as_bytes().first() != name.as_bytes().first() {
        return None;
    }
    let rest = pair.strip_prefix(name)?;
    match rest.as_bytes().first() {
        None => Some(""),
        Some(b'=') => Some(&rest[1..]),
        Some(_) => None,
    }
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::BadRequest(format!("missing query parameter {name}")))
}

/// The inbox of `owner`, or why it takes no pushes (no server token).
fn inbox_of(state: &AppState, owner: &Owner) -> Result<Arc<Inbox>, ApiError> {
    state
        .dispatcher
        .inbox(&owner.key)
        .ok_or_else(|| ApiError::PushNotConfigured(owner.key.clone()))
}

/// A WeCom inbox's crypto (receiveid = the corpid) with the key `keys`
/// names. The configuration builds every WeCom inbox encrypted; one without
/// would take no callbacks.
fn crypto(inbox: &Inbox, keys: Keys) -> Result<&MessageCrypto, ApiError> {
    inbox
        .mode(keys)
        .crypto()
        .ok_or_else(|| ApiError::PushNotConfigured(inbox.owner.clone()))
}

/// Where opening an envelope failed, as far as a rotation is concerned: the
/// signature (another token may match) or the decryption (another key may).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    Signature,
    Decryption,
    Other,
}

impl Failed {
    fn of(e: &EnvelopeError) -> Self {
        match e {
            EnvelopeError::Signature | EnvelopeError::MsgSignature => Failed::Signature,
            EnvelopeError::Decrypt(_) => Failed::Decryption,
            _ => Failed::Other,
        }
    }

    fn of_callback(e: &CallbackError) -> Self {
        match e {
            CallbackError::Envelope(e) => Failed::of(e),
            CallbackError::Json(_) => Failed::Other,
        }
    }
}

/// Opens an envelope with the inbox's current token and key (from `keys`
/// on), and during a rotation, once that failed, with the previous token
/// (when a signature failed) and the previous key (when the decryption
/// did). The hot path is the first call: nothing else is tried while the
/// current token and key work. On failure the first error is the answer,
/// as without a rotation.
fn open_rotating<T, E>(
    inbox: &Inbox,
    mut keys: Keys,
    failed: impl Fn(&E) -> Failed,
    open: impl Fn(&str, &PushMode) -> Result<T, E>,
) -> Result<(T, Keys), E> {
    let first = match open(inbox.token(keys), inbox.mode(keys)) {
        Ok(opened) => return Ok((opened, keys)),
        Err(e) => e,
    };
    let mut why = failed(&first);
    loop {
        match why {
            Failed::Signature if !keys.previous_token && inbox.previous_token().is_some() => {
                keys.previous_token = true;
            }
            Failed::Decryption if !keys.previous_key && inbox.previous_mode().is_some() => {
                keys.previous_key = true;
            }
            _ => return Err(first),
        }
        match open(inbox.token(keys), inbox.mode(keys)) {
            Ok(opened) => return Ok((opened, keys)),
            Err(e) => why = failed(&e),
        }
    }
}

/// Refuses a push or ownership check signed further than
/// `server.timestamp_tolerance_secs` from now.
fn check_fresh(state: &AppState, timestamp: &str) -> Result<(), ApiError> {
    let tolerance = state.server.timestamp_tolerance_secs;
    if wxgate_proto::timestamp_is_fresh(timestamp, state.now(), tolerance) {
        Ok(())
    } else {
        Err(ApiError::StaleTimestamp)
    }
}

/// The echo, as WeChat and WeCom want it: the bare text (no quotes, BOM or
/// newline), never sniffed as HTML.
fn echo(text: String) -> Response {
    static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
    let mut response = typed(&TEXT_UTF8, text);
    (response.headers_mut()).insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
    response
}

// The content types of the answers here, as statics: validated once, where
// `HeaderValue::from_static` outside a const context checks every byte on
// every answer.
static TEXT_UTF8: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static TEXT: HeaderValue = HeaderValue::from_static("text/plain");
static XML: HeaderValue = HeaderValue::from_static("application/xml");

/// A 200 answer of `body` as `content_type`, built in place (the tuple
/// `IntoResponse` costs a header map rebuilt per push).
fn typed(content_type: &HeaderValue, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    (response.headers_mut()).insert(header::CONTENT_TYPE, content_type.clone());
    response
}

/// `GET /wx/{appid}` and `GET /wecom/{corpid}/{agent}`: the ownership
/// check, as the owner's family's envelope has it. WeChat's (§1.2): answer
/// `echostr` when `signature` matches and is fresh. WeCom's (families §1.5):
/// `msg_signature` covers the encrypted `echostr`, the answer is its
/// plaintext; stateless, so the identical checks WeCom sends from several
/// addresses at once all pass.
pub(crate) async fn verify(
    State(state): State<AppState>,
    source: PushSource,
    owner: PathOwner,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    verify_at(&state, source, &owner, query.as_deref().unwrap_or_default())
}

/// [`verify`], for a path owner and query however they were read (the
/// axum route, or [`super::direct`]).
pub(crate) fn verify_at(
    state: &AppState,
    source: PushSource,
    owner: &PathOwner,
    query: &str,
) -> Result<Response, ApiError> {
    let owner = owner.known()?;
    check_source(state, &owner, source).inspect_err(|e| refused(state, &owner.key, e))?;
    let echo_text = match owner.family.envelope {
        Envelope::WeChat { .. } => {
            let q = WeChatQuery::parse(query)?;
            let echostr = required(q.echostr, "echostr")?;
            signed_inbox(state, &owner, &q.push)?;
            echostr.into_owned()
        }
        Envelope::WeCom => {
            let WeComQuery(q) = WeComQuery::parse(query)?;
            let inbox = inbox_of(state, &owner)?;
            check_fresh(state, &q.timestamp)?;
            crypto(&inbox, Keys::default())?;
            let opened = open_rotating(&inbox, Keys::default(), Failed::of, |token, mode| {
                // Every WeCom mode has a crypto (checked above).
                let crypto = mode.crypto().ok_or(EnvelopeError::Missing("crypto"))?;
                open_echostr(crypto, token, &q)
            });
            opened?.0
        }
    };
    tracing::debug!(owner = %owner.key, "server ownership check passed");
    Ok(echo(echo_text))
}

/// `POST /wx/{appid}` and `POST /wecom/{corpid}/{agent}`: checks, decrypts,
/// dedupes and answers a push (§2, §3; a WeCom callback, XML or JSON, always
/// encrypted, answered with a reply sealed for the corp).
pub(crate) async fn receive(
    State(state): State<AppState>,
    source: PushSource,
    owner: PathOwner,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    receive_at(
        &state,
        source,
        &owner,
        query.as_deref().unwrap_or_default(),
        body,
    )
    .await
}

/// [`receive`], for a path owner and query however they were read (the
/// axum route, or [`super::direct`]).
pub(crate) async fn receive_at(
    state: &AppState,
    source: PushSource,
    owner: &PathOwner,
    query: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let owner = owner
        .known()
        .inspect_err(|e| refused(state, owner.named(), e))?;
    check_source(state, &owner, source).inspect_err(|e| refused(state, &owner.key, e))?;
    let (inbox, push, keys, nonce) = match owner.family.envelope {
        Envelope::WeChat { json } => {
            let q = WeChatQuery::parse(query)?.push;
            let opened = receive_signed(state, &owner, &q, body, json).await;
            let (inbox, push, keys) = opened.inspect_err(|e| refused(state, &owner.key, e))?;
            (inbox, push, keys, q.nonce)
        }
        Envelope::WeCom => {
            let WeComQuery(q) = WeComQuery::parse(query)?;
            let inbox = inbox_of(state, &owner)?;
            let opened = receive_encrypted(state, &inbox, &q, body).await;
            let (push, keys) = opened.inspect_err(|e| refused(state, &owner.key, e))?;
            (inbox, push, keys, Cow::Owned(q.nonce))
        }
    };
    if keys.any_previous() {
        state.dispatcher.count_previous_key(&owner.key);
    }
    let answer = state.dispatcher.answer(inbox.clone(), push).await;
    Ok(answer_push(state, &owner, &inbox, keys, &nonce, answer))
}

/// A push in WeChat's envelope: the body read once the query's signature
/// checks out, opened, and (when `msg_signature` does not cover it) bound to
/// its query, so a replayed query cannot carry another body. With the
/// push, which token and key opened it.
async fn receive_signed(
    state: &AppState,
    owner: &Owner,
    q: &Query<'_>,
    body: Body,
    json: bool,
) -> Result<(Arc<Inbox>, Push, Keys), ApiError> {
    let (inbox, keys) = signed_inbox(state, owner, q)?;
    let body = read_body(state, body).await?;
    let (push, keys) = open(&inbox, keys, q, &body, json)?;
    // WeChat's signature covers the body only through msg_signature.
    if q.msg_signature.is_none() {
        (state.dispatcher)
            .bind_unsigned_body(&owner.key, q, &body)
            .await?;
    }
    Ok((inbox, push, keys))
}

/// A WeCom callback: fresh, its body decrypted for the corp (during a
/// rotation, with the token and key that work); with the push, which ones.
async fn receive_encrypted(
    state: &AppState,
    inbox: &Inbox,
    q: &CallbackQuery,
    body: Body,
) -> Result<(Push, Keys), ApiError> {
    check_fresh(state, &q.timestamp)?;
    let body = read_body(state, body).await?;
    let body = utf8(&body)?;
    crypto(inbox, Keys::default())?;
    let (plain, keys) = open_rotating(
        inbox,
        Keys::default(),
        Failed::of_callback,
        |token, mode| {
            // Every WeCom mode has a crypto (checked above).
            let crypto = mode.crypto().ok_or(EnvelopeError::Missing("crypto"))?;
            open_callback(crypto, token, q, body)
        },
    )?;
    let push = match body_format(&plain) {
        BodyFormat::Json => push_from_json(&plain)?,
        BodyFormat::Xml => read_push(&plain)?,
    };
    Ok((push, keys))
}

/// `POST /component/{component_appid}`'s envelope (families §3.1): fresh,
/// `signature` and `msg_signature` checked, always encrypted for the
/// platform (`<AppId>`, not `<ToUserName>`), opened with the platform's
/// token and key (during a rotation, the previous ones); the plaintext.
pub(crate) async fn open_platform_push(
    state: &AppState,
    inbox: &Inbox,
    query: &str,
    body: Body,
) -> Result<String, ApiError> {
    let q = WeChatQuery::parse(query)?.push;
    // Fresh and signed before the body is read, as every push.
    let keys = check_signed(state, inbox, &q)?;
    crypto(inbox, keys)?;
    let body = read_body(state, body).await?;
    let body = utf8(&body)?;
    // The token is settled by `signature`: only the key may change.
    let decryption = |e: &EnvelopeError| match Failed::of(e) {
        Failed::Decryption => Failed::Decryption,
        _ => Failed::Other,
    };
    let (plain, keys) = open_rotating(inbox, keys, decryption, |token, mode| {
        let crypto = mode.crypto().ok_or(EnvelopeError::Missing("crypto"))?;
        wxgate_proto::component::open_component_push(crypto, token, &q, body)
    })?;
    if keys.any_previous() {
        state.dispatcher.count_previous_key(&inbox.owner);
    }
    Ok(plain)
}

/// A push opened with a given inbox's token and key rather than its path
/// owner's (WeChat's release-test accounts at a platform's message URL,
/// `http::platform`): the push, and what [`seal_inbox_reply`] needs.
pub(crate) struct InboxPush {
    pub(crate) push: Push,
    keys: Keys,
    nonce: String,
}

/// `GET …`'s ownership check against `inbox`'s token: the `echostr` to echo.
pub(crate) fn verify_inbox(
    state: &AppState,
    inbox: &Inbox,
    query: &str,
) -> Result<Response, ApiError> {
    let q = WeChatQuery::parse(query)?;
    let echostr = required(q.echostr, "echostr")?;
    check_signed(state, inbox, &q.push)?;
    Ok(echo(echostr.into_owned()))
}

/// A push in WeChat's envelope opened with `inbox`'s token and key (during
/// a rotation, the previous ones), checked as [`receive`] checks an app's:
/// signed, fresh, and bound to its query when `msg_signature` does not
/// cover the body.
pub(crate) async fn open_inbox_push(
    state: &AppState,
    inbox: &Inbox,
    query: &str,
    body: Body,
) -> Result<InboxPush, ApiError> {
    let q = WeChatQuery::parse(query)?.push;
    let keys = check_signed(state, inbox, &q)?;
    let body = read_body(state, body).await?;
    let (push, keys) = open(inbox, keys, &q, &body, false)?;
    if q.msg_signature.is_none() {
        (state.dispatcher)
            .bind_unsigned_body(&inbox.owner, &q, &body)
            .await?;
    }
    if keys.any_previous() {
        state.dispatcher.count_previous_key(&inbox.owner);
    }
    Ok(InboxPush {
        push,
        keys,
        nonce: q.nonce.into_owned(),
    })
}

/// The answer to an [`InboxPush`]: `reply` sealed with the token and key
/// that opened it, or `success` (never encrypted).
pub(crate) fn seal_inbox_reply(
    state: &AppState,
    inbox: &Inbox,
    opened: &InboxPush,
    reply: Option<String>,
) -> Response {
    let Some(reply) = reply else {
        return typed(&TEXT, wxgate_proto::reply::SUCCESS);
    };
    seal(state, inbox, opened.keys, &opened.nonce, &reply)
}

fn seal(state: &AppState, inbox: &Inbox, keys: Keys, nonce: &str, reply: &str) -> Response {
    let mut now = itoa::Buffer::new();
    let sealed = seal_reply(
        inbox.mode(keys),
        inbox.token(keys),
        reply,
        now.format(state.now()),
        nonce,
        &rand::random(),
    );
    typed(&XML, sealed)
}

/// With `server.trusted_push_sources = "wechat"`, refuses a peer outside
/// the callback IP ranges of the owner's API host (WeChat's or WeCom's),
/// before anything else is checked. The peer is the throttle's (forwarded
/// headers believed only from `server.trusted_proxies`). While no range is
/// known yet, every peer passes (see [`crate::sources`]).
pub(crate) fn check_source(
    state: &AppState,
    owner: &Owner,
    source: PushSource,
) -> Result<(), ApiError> {
    let PushSource(Some(ip)) = source else {
        return Ok(()); // The check is off, or no network peer (in-process).
    };
    match state.sources.check(owner.family.api, ip) {
        crate::sources::Verdict::Outside => {
            let labels = crate::metrics::AppLabels {
                appid: owner.key.clone(),
            };
            state
                .metrics
                .pushes_refused_source
                .get_or_create(&labels)
                .inc();
            Err(ApiError::PushSource(ip))
        }
        _ => Ok(()),
    }
}

/// Where a push comes from, for [`check_source`]: the client's whole
/// address (forwarded headers believed only from `server.trusted_proxies`,
/// as the throttle does), not the throttle's per-/64 key; `None` when the
/// check is off (then nothing is read) or the request is in-process.
pub(crate) struct PushSource(Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for PushSource {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let socket = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(PushSource::of(state, socket.map(|s| s.0), &parts.headers))
    }
}

impl PushSource {
    /// The source of a request from `peer` (`None`: in-process).
    pub(crate) fn of(
        state: &AppState,
        peer: Option<std::net::SocketAddr>,
        headers: &axum::http::HeaderMap,
    ) -> Self {
        if !state.sources.is_on() {
            return PushSource(None);
        }
        PushSource(peer.map(|peer| client_ip(peer.ip(), headers, &state.server.trusted_proxies)))
    }
}

/// Counts a refused push. At debug level only: anyone can send refused
/// pushes; operators see them in the metrics and summed up once a minute.
fn refused(state: &AppState, owner: &str, e: &ApiError) {
    state.dispatcher.count_rejected(owner, e.code());
    tracing::debug!(owner, error = %e, "push refused");
}

/// The HTTP answer to a push: its reply sealed as the inbox's mode wants
/// (with the token and key that opened the push, `keys`), or no reply:
/// `success`, never encrypted (a Mini Program breaks on an encrypted one,
/// §2), and for WeCom an empty body (§1.5).
fn answer_push(
    state: &AppState,
    owner: &Owner,
    inbox: &Inbox,
    keys: Keys,
    nonce: &str,
    reply: Option<String>,
) -> Response {
    let Some(reply) = reply else {
        return typed(&TEXT, owner.family.no_reply);
    };
    seal(state, inbox, keys, nonce, &reply)
}

/// The inbox of `owner`, once the query's `signature` (over token,
/// timestamp and nonce) checks out and its timestamp is fresh: checked
/// before the body is read, so an unsigned request never gets a body
/// buffered (WeChat always sends `signature`, which needs no body). During
/// a token rotation the previous token is tried once the current one
/// failed; the [`Keys`] say which one matched.
fn signed_inbox(
    state: &AppState,
    owner: &Owner,
    q: &Query<'_>,
) -> Result<(Arc<Inbox>, Keys), ApiError> {
    let inbox = inbox_of(state, owner)?;
    let keys = check_signed(state, &inbox, q)?;
    Ok((inbox, keys))
}

/// Which of `inbox`'s tokens signed the query (`signature`, fresh): the
/// current one, or during a rotation the previous one.
fn check_signed(state: &AppState, inbox: &Inbox, q: &Query<'_>) -> Result<Keys, ApiError> {
    check_fresh(state, &q.timestamp)?;
    let verify = |token: &SecretString| {
        wxgate_proto::verify_signature(token.expose_secret(), &q.timestamp, &q.nonce, &q.signature)
            .is_ok()
    };
    let keys = if verify(&inbox.token) {
        Keys::default()
    } else if inbox.previous_token().is_some_and(verify) {
        Keys {
            previous_token: true,
            previous_key: false,
        }
    } else {
        return Err(ApiError::Push(EnvelopeError::Signature));
    };
    Ok(keys)
}

/// A push's body, at most `server.max_body_bytes` (counted as it arrives,
/// so no more is ever buffered). A push's body is one frame: it is handed
/// on as it came, without collecting it through a list of chunks.
async fn read_body(state: &AppState, mut body: Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    let max = state.server.max_body_bytes;
    let (mut first, mut more) = (Bytes::new(), Vec::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::BadRequest(format!("body could not be read: {}", e.into_inner()))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // Trailers: not part of the body.
        };
        if first.len() + more.len() + data.len() > max {
            return Err(ApiError::BodyTooLarge);
        }
        if first.is_empty() && more.is_empty() {
            first = data;
        } else {
            if more.is_empty() {
                more.extend_from_slice(&std::mem::take(&mut first));
            }
            more.extend_from_slice(&data);
        }
    }
    Ok(if more.is_empty() { first } else { more.into() })
}

/// Opens a push in WeChat's envelope, its `signature` checked already
/// ([`signed_inbox`]) and so its token known (`keys`): the key is the
/// current one, or during a rotation the previous one once the current one
/// failed to decrypt. Where the family allows `json` (a Mini Program, its
/// console's choice) both formats are read, so a switch there loses nothing.
fn open(
    inbox: &Inbox,
    keys: Keys,
    q: &Query<'_>,
    body: &[u8],
    json: bool,
) -> Result<(Push, Keys), ApiError> {
    let body = utf8(body)?;
    // The token is settled by `signature`: only the key may change.
    let decryption = |failed: Failed| match failed {
        Failed::Decryption => Failed::Decryption,
        _ => Failed::Other,
    };
    if json && body_format(body) == BodyFormat::Json {
        let (json, keys) = open_rotating(
            inbox,
            keys,
            |e| decryption(Failed::of_callback(e)),
            |token, mode| open_signed_json_push(mode, token, q, body),
        )?;
        return Ok((push_from_json(&json)?, keys));
    }
    let (xml, keys) = open_rotating(
        inbox,
        keys,
        |e| decryption(Failed::of(e)),
        |token, mode| open_signed_push(mode, token, q, body),
    )?;
    Ok((read_push(&xml)?, keys))
}

fn utf8(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))
}

fn read_push(xml: &str) -> Result<Push, ApiError> {
    Push::parse(xml).map_err(|e| ApiError::BadRequest(format!("push: {e}")))
}

/// The one app, for the `/` mount.
pub(crate) fn single_app(state: &AppState) -> Result<PathOwner, ApiError> {
    state
        .owners
        .only_app()
        .map(PathOwner::of)
        .ok_or_else(|| ApiError::BadRequest("several apps are configured: use /wx/{appid}".into()))
}

/// `GET /` with exactly one app.
pub(crate) async fn verify_root(
    state: State<AppState>,
    source: PushSource,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let owner = single_app(&state)?;
    verify_at(
        &state,
        source,
        &owner,
        query.0.as_deref().unwrap_or_default(),
    )
}

/// `POST /` with exactly one app.
pub(crate) async fn receive_root(
    state: State<AppState>,
    source: PushSource,
    query: RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let owner = single_app(&state)?;
    let query = query.0.as_deref().unwrap_or_default();
    receive_at(&state, source, &owner, query, body).await
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

    const NAMES: [&str; 4] = ["signature", "timestamp", "nonce", "echostr"];

    /// Both readings of `query`, as comparable text.
    fn both(query: &str) -> (String, String) {
        let fast = format!("{:?}", read_query(query, NAMES));
        let decoded = format!("{:?}", read_decoded(query, NAMES));
        (fast, decoded)
    }

    proptest::proptest! {
        #[test]
        fn reads_any_query_as_the_form_decoder_does(
            query in "(signature|timestamp|nonce|echostr|signatur|nonces|s|e|=|&|[a-z0-9]|%41|\\+|\\x{e9}){0,14}"
        ) {
            let (fast, decoded) = both(&query);
            proptest::prop_assert_eq!(fast, decoded);
        }
    }

    #[test]
    fn reads_like_the_form_decoder() {
        for query in [
            "signature=a&timestamp=1&nonce=2&echostr=x%20y+z&&=v&k",
            "signature=%E4%BD%A0&timestamp=1&nonce=2&echostr=%FF%zz&a=b=c",
            "signature&nonce=&echostr==x&timestamp=1=2&&sig=3&signaturex=4&nonce",
            "signature=a&signature",
            "=signature&echostr",
            "",
        ] {
            let (fast, decoded) = both(query);
            assert_eq!(fast, decoded, "{query}");
        }
        let [signature, timestamp, nonce, echostr] =
            read_query("signature&nonce=&echostr==x&timestamp=1=2", NAMES).unwrap();
        assert_eq!(signature.as_deref(), Some(""));
        assert_eq!(timestamp.as_deref(), Some("1=2"));
        assert_eq!(nonce.as_deref(), Some(""));
        assert_eq!(echostr.as_deref(), Some("=x"));
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
