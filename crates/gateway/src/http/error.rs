//! The one error type at the HTTP edge. The client API renders it as
//! `{"error":{"code","message","errcode","hint"}}`; the WeChat-compatible
//! endpoints render the same values as `{"errcode","errmsg"}` through [`WeChatShape`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use crate::proxy::{PathError, SpoolError};

/// ` rid: <request id>`, which ends every WeChat-shaped errmsg as WeChat's own do.
fn rid_suffix() -> String {
    crate::logs::request_id()
        .map(|rid| format!(" rid: {rid}"))
        .unwrap_or_default()
}
use crate::clock::utc;
use crate::reload::ReloadError;
use crate::signin::SignInError;
use crate::token::diagnostics::DiagnosticsError;
use crate::token::{Failure, FailureClass, TokenError};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No client key, or an unknown one.
    #[error("missing or unknown client key")]
    Unauthorized,
    /// The client key may not use this app.
    #[error("this client may not use app {0}")]
    Forbidden(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A body that is not the JSON expected (WeChat: 47001).
    #[error("data format error: {0}")]
    DataFormat(String),
    /// A parameter out of its range, like a ticket type (WeChat: 40097).
    #[error("invalid args: {0}")]
    InvalidArgs(String),
    /// The path takes only this method (WeChat: 43001 for GET, 43002 for POST).
    #[error("require {0} method")]
    RequireMethod(&'static str),
    /// The body is over `server.max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The URL is not on the app's JS safe domains.
    #[error("{0}")]
    UrlNotAllowed(String),
    /// `grant_type` is not `client_credential` (WeChat-compatible endpoints).
    #[error("invalid grant_type")]
    InvalidGrant,
    /// The app secret does not match (WeChat-compatible endpoints).
    #[error("invalid appsecret")]
    InvalidSecret,
    /// No app of the corp has this secret (WeCom's `gettoken`).
    #[error("invalid credential: no app of this corp has this corpsecret")]
    InvalidCorpSecret,
    /// The peer failed too many credential checks lately (see `throttle`).
    #[error("too many failed credential checks from this address")]
    TooManyAttempts {
        /// Seconds until it may try again.
        retry_after: u64,
    },
    /// No admin key is configured: the status page and the admin API are closed.
    #[error("the status page is closed: set [admin] key_env")]
    AdminClosed,
    /// An admin endpoint without the admin key or a session.
    #[error("send Authorization: Bearer <admin key>, or log in at /admin")]
    AdminUnauthorized,
    /// The store did not answer (the audit log).
    #[error("{0}")]
    StoreUnavailable(String),
    /// An access token wxgate did not issue, or no longer current.
    #[error("invalid credential, access_token is invalid or not latest")]
    InvalidToken,
    /// A `component_access_token` wxgate did not issue for a platform it
    /// serves (or no longer current) (WeChat: 40001).
    #[error("invalid credential, component_access_token is invalid or not latest")]
    InvalidComponentToken,
    /// No platform with this component appid is served (WeChat: 61011).
    #[error("invalid component: {0:?} is no platform served here")]
    InvalidComponent(String),
    /// The account is not an authorizer of the platform (WeChat: 61003).
    #[error("component is not authorized by this account: {appid} is no authorizer of platform {component}")]
    NotAuthorizer {
        /// The account.
        appid: String,
        /// The platform.
        component: String,
    },
    /// The token center could not serve.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A push failed its signature, mode or decryption checks.
    #[error("push refused: {0}")]
    Push(#[from] wxgate_proto::EnvelopeError),
    /// A plain-mode push whose signed query came earlier with another body.
    #[error("push refused: this signature came earlier with another body")]
    BodyMismatch,
    /// A push signed too far from now.
    #[error("timestamp outside the accepted window")]
    StaleTimestamp,
    /// A push (or ownership or URL check) from outside WeChat's callback IP
    /// ranges (`server.trusted_push_sources = "wechat"`).
    #[error("{0} is not in WeChat's callback IP ranges")]
    PushSource(std::net::IpAddr),
    /// The app has no server token, so it takes no pushes.
    #[error("app {0} has no server token configured")]
    PushNotConfigured(String),
    /// A proxy path that may not be forwarded.
    #[error(transparent)]
    ProxyPath(#[from] PathError),
    /// A proxied request body that could not be taken in.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The proxied call to WeChat failed.
    #[error("{0}")]
    Upstream(Failure),
    /// A diagnostic (a rid, the quota, a quota reset) could not be given.
    #[error(transparent)]
    Diagnostics(#[from] DiagnosticsError),
    /// A reload changed nothing.
    #[error(transparent)]
    Reload(#[from] crate::reload::ReloadError),
    /// A user sign-in call failed.
    #[error(transparent)]
    SignIn(#[from] SignInError),
}

impl From<wxgate_proto::CallbackError> for ApiError {
    fn from(e: wxgate_proto::CallbackError) -> Self {
        match e {
            wxgate_proto::CallbackError::Envelope(e) => ApiError::Push(e),
            e @ wxgate_proto::CallbackError::Json(_) => ApiError::BadRequest(format!("push: {e}")),
        }
    }
}

impl ApiError {
    /// A JSON body that could not be read: too large (413), or not the
    /// expected JSON (400, saying what was expected).
    pub(crate) fn json(rejection: axum::extract::rejection::JsonRejection, expected: &str) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge
        } else {
            ApiError::BadRequest(format!("{rejection}; expected {expected}"))
        }
    }

    /// The HTTP status of the error's answer.
    pub(crate) fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The error's code in answers (`bad_signature`, `stale_timestamp`…).
    pub(crate) fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized | ApiError::AdminUnauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::AdminClosed => (StatusCode::NOT_FOUND, "admin_closed"),
            ApiError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadRequest(_)
            | ApiError::DataFormat(_)
            | ApiError::InvalidArgs(_)
            | ApiError::InvalidGrant => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::RequireMethod(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::UrlNotAllowed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "url_not_allowed"),
            ApiError::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::InvalidSecret
            | ApiError::InvalidCorpSecret
            | ApiError::InvalidToken
            | ApiError::InvalidComponentToken => (StatusCode::UNAUTHORIZED, "invalid_credential"),
            ApiError::InvalidComponent(_) => (StatusCode::NOT_FOUND, "unknown_app"),
            ApiError::NotAuthorizer { .. } => (StatusCode::NOT_FOUND, "not_authorized"),
            ApiError::TooManyAttempts { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
            }
            ApiError::PushNotConfigured(_) => (StatusCode::NOT_FOUND, "push_not_configured"),
            ApiError::PushSource(_) => (StatusCode::FORBIDDEN, "push_source"),
            ApiError::StaleTimestamp => (StatusCode::UNAUTHORIZED, "stale_timestamp"),
            ApiError::BodyMismatch => (StatusCode::UNAUTHORIZED, "body_mismatch"),
            ApiError::Push(
                wxgate_proto::EnvelopeError::Signature | wxgate_proto::EnvelopeError::MsgSignature,
            ) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::Push(_) => (StatusCode::BAD_REQUEST, "bad_push"),
            ApiError::ProxyPath(PathError::Malformed(_)) => (StatusCode::BAD_REQUEST, "bad_path"),
            ApiError::ProxyPath(_) => (StatusCode::FORBIDDEN, "path_not_allowed"),
            ApiError::Spool(SpoolError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            ApiError::Spool(SpoolError::Full { .. } | SpoolError::CallerFull { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "spool_full")
            }
            ApiError::Spool(SpoolError::Read(_)) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Spool(SpoolError::Io(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            ApiError::Token(e) => token_status_and_code(e),
            ApiError::SignIn(e) => signin_status_and_code(e),
            ApiError::Diagnostics(e) => match e {
                DiagnosticsError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                DiagnosticsError::Upstream(f) if f.errcode.is_some() => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "wechat_refused")
                }
                DiagnosticsError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
                DiagnosticsError::MonthlyLimit { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "clear_quota_limit")
                }
                DiagnosticsError::Store(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
                }
                DiagnosticsError::Token(e) => token_status_and_code(e),
            },
            ApiError::Reload(e) => match e {
                ReloadError::NoSource => (StatusCode::CONFLICT, "no_config_file"),
                ReloadError::Unreadable { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "config_unreadable")
                }
                ReloadError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_config"),
            },
        }
    }

    /// WeChat's errcode behind the error, when WeChat answered one. (A
    /// diagnostic that failed for want of a token names none: its answer
    /// has said so since the diagnostics had their own renderer.)
    pub(crate) fn errcode(&self) -> Option<i64> {
        match self {
            ApiError::Token(TokenError::Unavailable { failure, .. })
            | ApiError::Upstream(failure)
            | ApiError::Diagnostics(DiagnosticsError::Upstream(failure)) => failure.errcode,
            ApiError::SignIn(e) => e.errcode(),
            _ => None,
        }
    }

    /// The errcode WeChat would answer with, for the WeChat-shaped renderings.
    /// A caller's mistake always has one of its own; `-1` ("system busy",
    /// retry) is left for wxgate or WeChat failing.
    fn wechat_errcode(&self) -> i64 {
        use wxgate_proto::errcode as code;
        match self {
            ApiError::Unauthorized => code::ACCESS_TOKEN_MISSING,
            ApiError::Forbidden(_)
            | ApiError::PushSource(_)
            | ApiError::ProxyPath(
                PathError::Credential { .. }
                | PathError::NotAllowed(_)
                | PathError::AdminOnly { .. },
            ) => code::API_UNAUTHORIZED,
            ApiError::ProxyPath(PathError::Malformed(_)) => code::INVALID_URL,
            ApiError::DataFormat(_) | ApiError::Spool(SpoolError::Read(_)) => code::DATA_FORMAT,
            ApiError::InvalidArgs(_)
            | ApiError::BadRequest(_)
            | ApiError::UrlNotAllowed(_)
            | ApiError::SignIn(SignInError::Invalid(_) | SignInError::RedirectNotAllowed(_)) => {
                code::INVALID_ARGS
            }
            ApiError::SignIn(SignInError::NotSupported { .. }) => code::API_UNAUTHORIZED,
            ApiError::RequireMethod("GET") => code::REQUIRE_GET,
            ApiError::RequireMethod(_) => code::REQUIRE_POST,
            ApiError::Spool(SpoolError::TooLarge { .. }) | ApiError::BodyTooLarge => {
                code::CONTENT_TOO_LARGE
            }
            ApiError::InvalidGrant => code::INVALID_GRANT_TYPE,
            ApiError::InvalidSecret => code::INVALID_APPSECRET,
            // WeCom answers a wrong corpsecret 40001 (families reference §1.2).
            ApiError::InvalidCorpSecret
            | ApiError::InvalidToken
            | ApiError::InvalidComponentToken => code::INVALID_CREDENTIAL,
            ApiError::InvalidComponent(_) => code::INVALID_COMPONENT,
            ApiError::NotAuthorizer { .. } => code::COMPONENT_UNAUTHORIZED,
            ApiError::Token(TokenError::UnknownApp(_)) => code::INVALID_APPID,
            ApiError::Token(TokenError::Revoked { .. }) => code::COMPONENT_UNAUTHORIZED,
            // What WeChat answers an account calling an API it may not use.
            ApiError::Token(TokenError::NotIssued { .. }) => code::API_UNAUTHORIZED,
            // "Too many calls, retry later": the request is fine, the moment is not.
            ApiError::Token(TokenError::RateLimited { .. })
            | ApiError::Spool(SpoolError::Full { .. } | SpoolError::CallerFull { .. })
            | ApiError::TooManyAttempts { .. }
            | ApiError::SignIn(SignInError::Pending) => code::MINUTE_QUOTA,
            other => other.errcode().unwrap_or(code::BUSY),
        }
    }

    /// What to do about it, when wxgate knows.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            ApiError::Unauthorized => Some("send Authorization: Bearer <client key> (see [[clients]])".into()),
            ApiError::Reload(ReloadError::NoSource) => {
                Some("start the server with wxgate serve -c FILE to reload it".into())
            }
            ApiError::Reload(_) => Some(
                "nothing was changed: the server runs the configuration it ran before; fix the \
                 file and reload again"
                    .into(),
            ),
            ApiError::InvalidToken => Some(
                "not the access_token wxgate serves (nor the one it replaced, before that one expired); \
                 fetch it again from wxgate"
                    .into(),
            ),
            ApiError::InvalidComponentToken => Some(
                "not the component_access_token wxgate serves for a configured platform (nor the \
                 one it replaced, before that one expired); fetch it again from wxgate \
                 (POST /cgi-bin/component/api_component_token)"
                    .into(),
            ),
            ApiError::InvalidComponent(_) => {
                Some("check component_appid: only the platforms of [[components]] are served".into())
            }
            ApiError::NotAuthorizer { appid, component } => Some(format!(
                "{appid} must authorize platform {component} first \
                 (POST /v1/components/{component}/authorize_url gives the page)"
            )),
            ApiError::ProxyPath(PathError::Malformed(_)) => Some(
                "WeChat API paths are plain: no //, @, .., %-encoding or absolute URL".into(),
            ),
            ApiError::Forbidden(appid) => Some(format!("add {appid} to this client's apps")),
            ApiError::UrlNotAllowed(_) => {
                Some("add the domain to the app's js_domains and to JS接口安全域名 in the WeChat console".into())
            }
            ApiError::Token(e) | ApiError::Diagnostics(DiagnosticsError::Token(e)) => token_hint(e),
            ApiError::SignIn(e) => e.hint(),
            ApiError::Upstream(failure) | ApiError::Diagnostics(DiagnosticsError::Upstream(failure)) => {
                failure.hint.clone()
            }
            ApiError::Diagnostics(DiagnosticsError::MonthlyLimit { resets_at, .. }) => Some(format!(
                "WeChat allows 10 quota resets a month; the next is possible at {}",
                utc(*resets_at)
            )),
            ApiError::ProxyPath(PathError::NotAllowed(_)) => {
                Some("add its prefix to proxy.allow_paths if business servers need this API".into())
            }
            ApiError::ProxyPath(
                PathError::Credential { instead, .. } | PathError::AdminOnly { instead, .. },
            ) => Some((*instead).into()),
            ApiError::Spool(SpoolError::TooLarge { .. }) => Some("raise proxy.max_request_bytes".into()),
            ApiError::Spool(SpoolError::Full { .. }) => Some(
                "other large uploads are being forwarded; retry in a moment (operators: \
                 proxy.max_spool_bytes bounds the bytes spooled at once)"
                    .into(),
            ),
            ApiError::Spool(SpoolError::CallerFull { .. }) => Some(
                "this caller's other large uploads are being forwarded; retry once one is done \
                 (operators: proxy.max_spool_bytes_per_caller bounds one caller's share)"
                    .into(),
            ),
            ApiError::BodyTooLarge => Some("bodies are limited by server.max_body_bytes".into()),
            ApiError::TooManyAttempts { retry_after } => Some(format!(
                "wait {retry_after} s; then check the key or secret this caller sends"
            )),
            ApiError::PushNotConfigured(_) => Some("set the app's token (the one typed into WeChat's console)".into()),
            ApiError::StaleTimestamp => Some("check this server's clock (server.timestamp_tolerance_secs)".into()),
            ApiError::PushSource(_) => Some(
                "server.trusted_push_sources = \"wechat\" accepts pushes only from WeChat's getcallbackip \
                 ranges; behind a reverse proxy, list it in server.trusted_proxies"
                    .into(),
            ),
            _ => None,
        }
    }

    fn retry_at(&self) -> Option<u64> {
        match self {
            ApiError::Token(
                TokenError::Unavailable { retry_at, .. } | TokenError::RateLimited { retry_at, .. },
            ) => Some(*retry_at),
            ApiError::Diagnostics(DiagnosticsError::MonthlyLimit { resets_at, .. }) => {
                Some(*resets_at)
            }
            _ => None,
        }
    }
}

/// The HTTP status and code of a token center's refusal.
fn token_status_and_code(e: &TokenError) -> (StatusCode, &'static str) {
    match e {
        TokenError::UnknownApp(_) => (StatusCode::NOT_FOUND, "unknown_app"),
        TokenError::Revoked { .. } => (StatusCode::GONE, "authorization_revoked"),
        TokenError::NotIssued { .. } => (StatusCode::NOT_FOUND, "not_issued"),
        TokenError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "refresh_rate_limited"),
        TokenError::Unavailable { failure, .. } => match failure.class {
            FailureClass::Config => (StatusCode::BAD_GATEWAY, "upstream_config_error"),
            FailureClass::Quota => (StatusCode::SERVICE_UNAVAILABLE, "quota_exhausted"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable"),
        },
    }
}

/// The HTTP status and code of a failed sign-in call: WeChat's refusals by
/// what they mean for the caller (families §4.d, §2).
fn signin_status_and_code(e: &SignInError) -> (StatusCode, &'static str) {
    use wxgate_proto::errcode as code;
    match e {
        SignInError::NotSupported { .. } => (StatusCode::NOT_FOUND, "sign_in_not_supported"),
        SignInError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        SignInError::RedirectNotAllowed(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "redirect_uri_not_allowed")
        }
        SignInError::Pending => (StatusCode::SERVICE_UNAVAILABLE, "exchange_pending"),
        SignInError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
        SignInError::Refused { errcode, .. } => match *errcode {
            code::INVALID_CODE => (StatusCode::BAD_REQUEST, "invalid_code"),
            code::CODE_USED => (StatusCode::CONFLICT, "code_used"),
            code::INVALID_REFRESH_TOKEN => (StatusCode::BAD_REQUEST, "invalid_refresh_token"),
            code::REFRESH_TOKEN_EXPIRED => (StatusCode::BAD_REQUEST, "refresh_token_expired"),
            code::MINUTE_QUOTA => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            code::CODE_BLOCKED => (StatusCode::FORBIDDEN, "user_blocked"),
            code::API_UNAUTHORIZED => (StatusCode::FORBIDDEN, "scope_insufficient"),
            code::INVALID_CREDENTIAL | code::ACCESS_TOKEN_EXPIRED | code::INVALID_ACCESS_TOKEN => {
                (StatusCode::UNAUTHORIZED, "invalid_user_token")
            }
            code::INVALID_OPENID => (StatusCode::BAD_REQUEST, "invalid_openid"),
            code::BUSY => (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable"),
            _ => (StatusCode::BAD_GATEWAY, "upstream_config_error"),
        },
    }
}

/// What to do about a token center's refusal, when wxgate knows.
fn token_hint(e: &TokenError) -> Option<String> {
    match e {
        TokenError::Unavailable { failure, .. } => failure.hint.clone(),
        TokenError::RateLimited {
            daily_limit: None, ..
        } => Some(
            "another forced refresh happened moments ago; fetch the current credential again"
                .into(),
        ),
        TokenError::RateLimited {
            daily_limit: Some(limit),
            ..
        } => Some(format!(
            "the day's {limit} forced refreshes of this credential are spent (they reset at \
             00:00 Beijing time); if WeChat keeps rejecting the current one, another program \
             is fetching tokens for this app"
        )),
        TokenError::Revoked { owner, platform, .. } => Some(format!(
            "{owner} must authorize platform {platform} again (POST /v1/components/{platform}/authorize_url gives the page)"
        )),
        TokenError::UnknownApp(_) | TokenError::NotIssued { .. } => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut error = json!({ "code": code, "message": self.to_string() });
        if let Some(errcode) = self.errcode() {
            error["errcode"] = errcode.into();
        }
        if let Some(hint) = self.hint() {
            error["hint"] = hint.into();
        }
        if let Some(retry_at) = self.retry_at() {
            error["retry_at"] = retry_at.into();
        }
        if let ApiError::Reload(ReloadError::Invalid { error: e, .. }) = &self {
            let problems = (e.problems.iter())
                .map(|(field, problem)| json!({ "field": field, "problem": problem }))
                .collect::<Vec<_>>();
            error["problems"] = problems.into();
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read: the connection cannot carry
            // another request, and a client must not put it back in its pool.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let ApiError::TooManyAttempts { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// Renders an [`ApiError`] as WeChat would: HTTP 200 with `{"errcode","errmsg"}`.
#[derive(Debug)]
pub(crate) struct WeChatShape(pub(crate) ApiError);

impl From<ApiError> for WeChatShape {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<crate::message::BodyMismatch> for ApiError {
    fn from(_: crate::message::BodyMismatch) -> Self {
        ApiError::BodyMismatch
    }
}

impl From<super::throttle::Refused> for ApiError {
    fn from(refused: super::throttle::Refused) -> Self {
        ApiError::TooManyAttempts {
            retry_after: refused.retry_after,
        }
    }
}

impl From<TokenError> for WeChatShape {
    fn from(e: TokenError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for WeChatShape {
    fn into_response(self) -> Response {
        let errcode = self.0.wechat_errcode();
        let errmsg = match self.0.hint() {
            Some(hint) => format!("{} (wxgate: {hint}){}", self.0, rid_suffix()),
            None => format!("{}{}", self.0, rid_suffix()),
        };
        Json(json!({ "errcode": errcode, "errmsg": errmsg })).into_response()
    }
}

/// Renders an [`ApiError`] for the proxy: WeChat's `{"errcode","errmsg"}` plus
/// wxgate's `hint`, with the HTTP status of the error, so callers that parse
/// WeChat's answers read it and operators can tell it came from wxgate.
#[derive(Debug)]
pub(crate) struct ProxyShape(pub(crate) ApiError);

impl<E: Into<ApiError>> From<E> for ProxyShape {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ProxyShape {
    fn into_response(self) -> Response {
        let (status, _) = self.0.status_and_code();
        if status.is_server_error() || status == StatusCode::BAD_GATEWAY {
            tracing::warn!(error = %self.0, "proxied call failed");
        }
        let errmsg = format!("{}{}", self.0, rid_suffix());
        let mut body = json!({ "errcode": self.0.wechat_errcode(), "errmsg": errmsg });
        if let Some(hint) = self.0.hint() {
            body["hint"] = hint.into();
        }
        (status, Json(body)).into_response()
    }
}
