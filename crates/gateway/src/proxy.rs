//! The API proxy: business servers call WeChat through wxgate and never hold
//! a token. The request is forwarded to the upstream with the current
//! `access_token`. If WeChat answers 40001, 40014 or 42001, the token
//! center first checks whether that is about the token at all (the call may
//! carry another credential, such as a `component_access_token`); only a
//! token WeChat refuses costs one compare-and-refresh, and the request is
//! sent once more, never in a loop. Any other such answer is passed back as
//! it is.
//!
//! Request bodies are spooled (see [`spool`]) so they can be sent twice;
//! response bodies stream through, except a short answer, which is read
//! whole to look for a token rejection.

pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Response};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use wxgate_proto::errcode;

use crate::config::{reserved, ProxyConfig, Reserved};
use crate::family::Api;
use crate::metrics::Metrics;
use crate::store::Kind;
use crate::token::{Failure, FailureClass, Requester, TokenCenter, TokenError, Upstream};
pub use spool::{SpoolBudget, SpoolError, Spooled};

/// Distinct proxied paths with a metrics label of their own.
const MAX_LABELS: usize = 100;
/// Answers at most this long are read whole and checked for a token rejection.
const PEEK: usize = 4096;
/// Request headers passed on; the rest (the client key among them) are not.
const REQUEST_HEADERS: &[header::HeaderName] = &[header::CONTENT_TYPE, header::ACCEPT];
/// Response headers passed back.
const RESPONSE_HEADERS: &[header::HeaderName] = &[
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_DISPOSITION,
    header::CACHE_CONTROL,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// Why a path may not be proxied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty, `.`/`..` segments, empty segments, or characters WeChat's API paths never use.
    #[error("{0:?} is not a plain API path")]
    Malformed(String),
    /// Issues a credential ([`crate::config::CREDENTIAL_PATHS`]): use the client API.
    #[error("{path} issues credentials and is never proxied")]
    Credential {
        /// The path asked for.
        path: String,
        /// What to use instead.
        instead: &'static str,
    },
    /// Not under any `proxy.allow_paths` prefix.
    #[error("{0} is not under proxy.allow_paths")]
    NotAllowed(String),
    /// One of WeChat's admin APIs ([`crate::config::ADMIN_PATHS`]): only
    /// through wxgate's admin API, with the admin key.
    #[error("{path} is one of WeChat's admin APIs, kept behind wxgate's admin key")]
    AdminOnly {
        /// The path asked for.
        path: String,
        /// What to use instead.
        instead: &'static str,
    },
}

/// Checks the part of the URL after `/proxy/{appid}` and returns the upstream path.
/// Only plain paths pass: no percent-encoding, no `.` or `..` segments, no `//`.
pub fn upstream_path(rest: &str, allow: &[String]) -> Result<String, PathError> {
    let malformed = || PathError::Malformed(rest.to_owned());
    let path = rest.strip_prefix('/').ok_or_else(malformed)?;
    let plain = !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if !plain {
        return Err(malformed());
    }
    let path = format!("/{path}");
    match reserved(&path) {
        Some(Reserved::Credential(r)) => {
            let instead = r.instead;
            return Err(PathError::Credential { path, instead });
        }
        Some(Reserved::Admin(r)) => {
            let instead = r.instead;
            return Err(PathError::AdminOnly { path, instead });
        }
        None => {}
    }
    if !allow.iter().any(|prefix| path.starts_with(prefix.as_str())) {
        return Err(PathError::NotAllowed(path));
    }
    Ok(path)
}

/// The caller's query string without any token parameter `param`
/// (`access_token`, or the Open Platform's `component_access_token`) of its
/// own, with wxgate's appended. Other parameters pass byte for byte.
pub fn query_with_token(query: Option<&str>, param: &str, token: &str) -> String {
    let mut parts: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        // Names compared decoded: `access%5Ftoken` is an access_token too.
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default();
            url::form_urlencoded::parse(name.as_bytes())
                .next()
                .is_none_or(|(name, _)| name != param)
        })
        .map(str::to_owned)
        .collect();
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    parts.push(format!("{param}={token}"));
    parts.join("&")
}

/// A request to forward.
#[derive(Debug)]
pub struct Outgoing {
    /// The API host it goes to: the owner's family's.
    pub api: Api,
    /// The query parameter the token goes in: `access_token`, or
    /// `component_access_token` for a platform's call.
    pub token_param: &'static str,
    /// Its method.
    pub method: Method,
    /// The checked upstream path (see [`upstream_path`]).
    pub path: String,
    /// The caller's query string.
    pub query: Option<String>,
    /// The caller's headers (only [`REQUEST_HEADERS`] are passed on).
    pub headers: HeaderMap,
    /// The body.
    pub body: Spooled,
}

/// Forwards requests to the upstream.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// WeChat's API: the one client and URL join of every call wxgate makes.
    upstream: Upstream,
    timeout: Duration,
    max_response_bytes: u64,
    spool: SpoolBudget,
    metrics: Arc<Metrics>,
    /// Endpoint labels handed out so far (bounded: see [`Proxy::label`]).
    labels: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Proxy {
    /// A proxy to `upstream`'s hosts with the `[proxy]` limits.
    pub fn new(upstream: &Upstream, config: &ProxyConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            upstream: upstream.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            max_response_bytes: config.max_response_bytes,
            spool: SpoolBudget::with_share(
                config.max_spool_bytes,
                config.max_spool_bytes_per_caller,
                metrics.spool_bytes.clone(),
            ),
            metrics,
            labels: Arc::default(),
        }
    }

    /// The metrics label of a proxied path. Paths are the caller's choice, so
    /// only the first [`MAX_LABELS`] distinct ones get a label of their own;
    /// the rest are counted as `other`.
    fn label(&self, path: &str) -> String {
        let mut labels = self.labels.lock().unwrap_or_else(|p| p.into_inner());
        if labels.contains(path) {
            path.to_owned()
        } else if labels.len() < MAX_LABELS {
            labels.insert(path.to_owned());
            path.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// The bytes request bodies may hold in temporary files (`proxy.max_spool_bytes`).
    pub fn spool(&self) -> &SpoolBudget {
        &self.spool
    }

    /// `proxy.timeout_ms`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `request` with the app's token, refreshing it once if WeChat
    /// rejects that token (see [`TokenCenter::replace_rejected`]).
    pub async fn forward(
        &self,
        center: &TokenCenter,
        appid: &str,
        by: &Requester,
        request: &Outgoing,
    ) -> Result<Response<Body>, Failure> {
        let token = center
            .get(appid, Kind::AccessToken, by)
            .await
            .map_err(TokenError::into_failure)?;
        let mut answer = self
            .attempt(appid, request, Some(token.value.clone()))
            .await?;
        let Some(rejection) = answer.rejection.take() else {
            return Ok(self.respond(answer));
        };
        let evident = center
            .is_token_only(appid, &request.path)
            .then_some(rejection);
        let replaced = center
            .replace_rejected(appid, &token.value, by, evident)
            .await?;
        let Some(fresh) = replaced else {
            // WeChat accepts the token: its answer was about something else.
            return Ok(self.respond(answer));
        };
        let mut again = self.attempt(appid, request, Some(fresh.value)).await?;
        if let Some(mut failure) = again.rejection.take() {
            failure.class = FailureClass::Transient;
            return Err(failure);
        }
        Ok(self.respond(again))
    }

    /// The upstream URL: always `upstream.base_url` and the checked path, so no
    /// caller can name another host.
    fn url(&self, request: &Outgoing, token: Option<&str>) -> url::Url {
        let mut url = self.upstream.url(request.api, &request.path);
        match token {
            Some(token) => url.set_query(Some(&query_with_token(
                request.query.as_deref(),
                request.token_param,
                token,
            ))),
            None => url.set_query(request.query.as_deref()),
        }
        url
    }

    async fn attempt(
        &self,
        appid: &str,
        request: &Outgoing,
        token: Option<String>,
    ) -> Result<Answer, Failure> {
        let url = self.url(request, token.as_deref());
        let mut builder = self
            .upstream
            .http()
            .request(request.method.clone(), url)
            .timeout(self.timeout);
        for name in REQUEST_HEADERS {
            if let Some(value) = request.headers.get(name) {
                builder = builder.header(name, value);
            }
        }
        if !request.body.is_empty() || request.method != Method::GET {
            let body = request
                .body
                .body()
                .map_err(|e| Failure::transient(format!("reading the spooled body failed: {e}")))?;
            builder = builder
                .header(header::CONTENT_LENGTH, request.body.len())
                .body(body);
        }
        let response = builder.send().await.map_err(|e| {
            let what = if e.is_timeout() { "timeout" } else { "failed" };
            self.metrics.upstream_call(&self.label(&request.path), what);
            Failure::transient(format!(
                "call to WeChat: {what}: {}",
                crate::upstream::describe(e)
            ))
        })?;
        let answer = self.read(appid, response, token.is_some()).await;
        let errcode = match &answer {
            Ok(a) if a.rest => status_code_label(a.response.status()),
            Ok(a) => errcode_of(&a.head).map_or_else(
                || status_code_label(a.response.status()),
                |(c, _)| c.to_string(),
            ),
            Err(f) => f
                .errcode
                .map_or_else(|| "failed".to_owned(), |c| c.to_string()),
        };
        self.metrics
            .upstream_call(&self.label(&request.path), errcode);
        answer
    }

    /// Reads a short answer whole (to look for a token rejection); a long one is left to stream.
    /// A token rejection is looked for only when wxgate sent a token (`token_sent`).
    async fn read(
        &self,
        appid: &str,
        mut response: reqwest::Response,
        token_sent: bool,
    ) -> Result<Answer, Failure> {
        // 304 only answers a conditional request, which wxgate never passes on.
        if response.status().is_redirection() && response.status() != 304 {
            return Err(crate::upstream::redirect_refused(&response));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes)
        {
            return Err(too_large(self.max_response_bytes));
        }
        let mut head = Vec::new();
        let mut peeked = 0;
        while peeked <= PEEK {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    peeked += chunk.len();
                    if peeked as u64 > self.max_response_bytes {
                        return Err(too_large(self.max_response_bytes));
                    }
                    head.push(chunk);
                }
                Ok(None) => {
                    let rejection = token_sent.then(|| rejection(appid, &head)).flatten();
                    return Ok(Answer {
                        response,
                        head,
                        rest: false,
                        rejection,
                    });
                }
                Err(e) => {
                    return Err(Failure::transient(format!(
                        "reading WeChat's answer failed: {}",
                        e.without_url()
                    )))
                }
            }
        }
        Ok(Answer {
            response,
            head,
            rest: true,
            rejection: None,
        })
    }

    /// The answer to give the caller: WeChat's status, its content headers, and
    /// its body, streamed and cut off past `proxy.max_response_bytes`.
    fn respond(&self, answer: Answer) -> Response<Body> {
        let Answer {
            response,
            head,
            rest,
            ..
        } = answer;
        let mut out = Response::builder().status(response.status());
        for name in RESPONSE_HEADERS {
            if let Some(value) = response.headers().get(name) {
                out = out.header(name, value);
            }
        }
        let limit = self.max_response_bytes;
        let mut seen: u64 = head.iter().map(|c| c.len() as u64).sum();
        let head = stream::iter(head.into_iter().map(Ok::<Bytes, std::io::Error>));
        let body = if rest {
            let rest = response.bytes_stream().map(move |chunk| {
                let chunk = chunk.map_err(std::io::Error::other)?;
                seen += chunk.len() as u64;
                if seen > limit {
                    tracing::warn!(
                        limit,
                        "proxied answer cut off: over proxy.max_response_bytes"
                    );
                    return Err(std::io::Error::other(
                        "answer over proxy.max_response_bytes",
                    ));
                }
                Ok(chunk)
            });
            Body::from_stream(head.chain(rest))
        } else {
            Body::from_stream(head)
        };
        out.body(body)
            .expect("status and headers come from a valid response")
    }
}

/// An upstream answer: its status and headers, the chunks read so far,
/// whether more remain in `response`, and whether it is a token rejection.
struct Answer {
    response: reqwest::Response,
    head: Vec<Bytes>,
    rest: bool,
    /// A complete short answer carrying 40001, 40014 or 42001 to a call
    /// wxgate sent a token with: the failure it means if it is about that token.
    rejection: Option<Failure>,
}

/// `0` for a 2xx answer without an errcode, `http_NNN` otherwise.
fn status_code_label(status: reqwest::StatusCode) -> String {
    if status.is_success() {
        "0".to_owned()
    } else {
        format!("http_{}", status.as_u16())
    }
}

/// WeChat's errcode and errmsg, when a complete short answer is JSON carrying one.
fn errcode_of(head: &[Bytes]) -> Option<(i64, String)> {
    #[derive(serde::Deserialize)]
    struct ErrAnswer {
        errcode: i64,
        #[serde(default)]
        errmsg: String,
    }
    let body: Vec<u8> = head.concat();
    serde_json::from_slice::<ErrAnswer>(&body)
        .ok()
        .map(|a| (a.errcode, a.errmsg))
}

/// A complete short answer carrying 40001, 40014 or 42001 may be a token rejection.
fn rejection(appid: &str, head: &[Bytes]) -> Option<Failure> {
    let (errcode, errmsg) = errcode_of(head).filter(|(c, _)| errcode::token_rejected(*c))?;
    Some(Failure {
        class: FailureClass::TokenRejected,
        errcode: Some(errcode),
        message: format!("WeChat answered errcode {errcode}: {errmsg}"),
        hint: Some(format!(
            "WeChat rejected a token wxgate had just refreshed; another program may be fetching \
             tokens for {appid} (each /cgi-bin/token call invalidates the previous one): \
             make wxgate the only one"
        )),
    })
}

fn too_large(limit: u64) -> Failure {
    Failure::transient_with_hint(
        format!("WeChat's answer is over {limit} bytes"),
        "raise proxy.max_response_bytes",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WeCom token's call goes to WeCom's host, any other to WeChat's; the
    /// token sent is the one given, and the caller's own is replaced.
    #[test]
    fn each_call_goes_to_its_familys_host() {
        let toml = "[upstream]\nbase_url = \"http://wechat.test/prefix\"\n\
                    wecom_base_url = \"http://wecom.test\"\n\
                    [[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n";
        let config = crate::config::load(toml, &Default::default()).unwrap();
        let metrics = Arc::new(Metrics::new("test:1"));
        let upstream = Upstream::new(&config.upstream);
        let proxy = Proxy::new(&upstream, &config.proxy, metrics);
        let mut call = Outgoing {
            api: Api::WeChat,
            token_param: "access_token",
            method: Method::GET,
            path: "/cgi-bin/agent/get".into(),
            query: Some("access_token=CALLERS&agentid=1".into()),
            headers: HeaderMap::new(),
            body: Spooled::Memory(Bytes::new()),
        };
        let url = proxy.url(&call, Some("CURRENT")).to_string();
        assert_eq!(
            url,
            "http://wechat.test/prefix/cgi-bin/agent/get?agentid=1&access_token=CURRENT"
        );
        call.api = Api::WeCom;
        let url = proxy.url(&call, Some("CURRENT")).to_string();
        assert!(
            url.starts_with("http://wecom.test/cgi-bin/agent/get?"),
            "{url}"
        );
        assert!(!url.contains("CALLERS"), "{url}");
        // A platform's call: its component_access_token replaced, an access_token left alone.
        call.api = Api::WeChat;
        call.token_param = "component_access_token";
        call.path = "/cgi-bin/component/api_get_authorizer_list".into();
        call.query = Some("component_access_token=CALLERS&x=1".into());
        let url = proxy.url(&call, Some("CURRENT")).to_string();
        assert_eq!(
            url,
            "http://wechat.test/prefix/cgi-bin/component/api_get_authorizer_list?x=1&component_access_token=CURRENT"
        );
    }
}
