//! WeChat's HTTP API (or the simulator): the one client of its JSON APIs
//! (token and ticket fetches, the probe, customer-service sends, diagnostics;
//! protocol reference §4, §5.1, §6), its failures, and what their errcodes
//! mean for the token center (§4.3; codes from `wxgate_proto::errcode`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wxgate_proto::errcode;

use crate::config::UpstreamConfig;
pub use crate::family::FailureClass;
use crate::family::{Api, Family, OFFICIAL_ACCOUNT};
use crate::metrics::Metrics;
use crate::store::Kind;

/// The shortest lifetime believed from WeChat, seconds (its own are 7200).
pub const MIN_LIFETIME_SECS: u64 = 60;

/// A credential as WeChat handed it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The token or ticket.
    pub value: String,
    /// Its lifetime, seconds.
    pub expires_in: u64,
    /// A second credential the same answer replaced, to store beside it (an
    /// Open Platform authorizer's rotated refresh token).
    pub rotated: Option<Rotated>,
}

/// A credential that came with another one's fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// Which of the owner's credentials it is.
    pub kind: Kind,
    /// Its value.
    pub value: String,
    /// Its lifetime, seconds.
    pub expires_in: u64,
}

/// A failed call to WeChat, with what it means and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// How to react.
    pub class: FailureClass,
    /// WeChat's errcode, when it answered with one.
    pub errcode: Option<i64>,
    /// What happened.
    pub message: String,
    /// What the operator should do.
    pub hint: Option<String>,
}

impl Failure {
    /// WeChat's request id, from an errmsg ending in ` rid: …`.
    pub fn rid(&self) -> Option<&str> {
        let (_, rid) = self.message.rsplit_once("rid: ")?;
        let rid = rid.trim();
        (!rid.is_empty() && rid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .then_some(rid)
    }

    /// A failure worth retrying soon: a transport error, a busy or broken answer.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Transient,
            errcode: None,
            message: message.into(),
            hint: None,
        }
    }

    /// [`Failure::transient`] with what to do about it.
    pub fn transient_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            hint: Some(hint.into()),
            ..Self::transient(message)
        }
    }

    /// A credential WeChat pushes has not come yet, and was asked for
    /// ([`FailureClass::Awaiting`]); `hint` says what to check if it never does.
    pub fn awaiting(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Awaiting,
            ..Self::transient_with_hint(message, hint)
        }
    }

    /// Reads an errcode/errmsg answer of WeChat's own API (Official
    /// Accounts, Mini Programs) to a call made without an access token.
    pub fn from_errcode(appid: &str, errcode: i64, errmsg: &str) -> Self {
        Self::of(&OFFICIAL_ACCOUNT, appid, errcode, errmsg, false)
    }

    /// Reads `family`'s errcode/errmsg answer to a call for `owner`;
    /// `with_token`: the call carried an access token, so 40001, 40014 and
    /// 42001 all say that token is bad (not the secret: §5.1, families §1.2).
    pub fn of(family: &Family, owner: &str, errcode: i64, errmsg: &str, with_token: bool) -> Self {
        let (class, hint) = if with_token && errcode::token_rejected(errcode) {
            (FailureClass::TokenRejected, None)
        } else {
            (family.classify)(owner, errcode, errmsg)
        };
        Self {
            class,
            errcode: Some(errcode),
            message: format!("{} answered errcode {errcode}: {errmsg}", family.api.name()),
            hint,
        }
    }
}

/// A failed call to WeChat.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    /// When, Unix seconds.
    pub at: u64,
    /// The app.
    pub appid: String,
    /// The credential being fetched.
    pub kind: &'static str,
    /// WeChat's errcode, if it answered with one.
    pub errcode: Option<i64>,
    /// What happened.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl FailureRecord {
    /// The record of `failure`, seen at `at`.
    pub fn new(appid: &str, kind: Kind, failure: &Failure, at: u64) -> Self {
        Self {
            at,
            appid: appid.to_owned(),
            kind: kind.as_str(),
            errcode: failure.errcode,
            message: failure.message.clone(),
            hint: failure.hint.clone(),
        }
    }
}

/// Largest answer read from WeChat's token, ticket and other JSON APIs called
/// here, bytes. Real answers are a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    ticket: Option<String>,
    expires_in: Option<u64>,
}

/// WeChat's API (or the simulator), over HTTP.
#[derive(Debug, Clone)]
pub struct Upstream {
    http: reqwest::Client,
    base: url::Url,
    /// WeCom's API host (qyapi.weixin.qq.com).
    wecom_base: url::Url,
    metrics: Option<Arc<Metrics>>,
}

impl Upstream {
    /// A client for `config.base_url` with its timeout.
    pub fn new(config: &UpstreamConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            // The proxy sets each call's own timeout; connecting is bounded the same for all.
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            // A redirect would carry the AppSecret (or a token) to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with a timeout builds");
        Self {
            http,
            base: config.base_url.clone(),
            wecom_base: config.wecom_base_url.clone(),
            metrics: None,
        }
    }

    /// Counts every call in `metrics` (`wxgate_upstream_calls_total`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sends a call to `endpoint` and reads WeChat's JSON answer, counting it.
    async fn send(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, Failure> {
        self.send_as(endpoint, request, |a: &Answer| a.errcode)
            .await
    }

    /// Sends a call and reads its JSON answer as `T`, counting it under
    /// its errcode (`errcode_of`), or `failed`.
    async fn send_as<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
        errcode_of: impl Fn(&T) -> i64,
    ) -> Result<T, Failure> {
        let result = send(request).await;
        if let Some(metrics) = &self.metrics {
            let errcode = match &result {
                Ok(answer) => errcode_of(answer).to_string(),
                Err(_) => "failed".to_owned(),
            };
            metrics.upstream_call(endpoint, errcode);
        }
        result
    }

    /// `path` on `api`'s host: the one URL join of every call wxgate makes
    /// (the base's own path kept, for a simulator under a prefix).
    pub fn url(&self, api: Api, path: &str) -> url::Url {
        let base = match api {
            Api::WeChat => &self.base,
            Api::WeCom => &self.wecom_base,
        };
        let mut url = base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        url
    }

    /// A GET of `family`'s API `endpoint`.
    pub fn get(&self, family: &Family, endpoint: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(family.api, endpoint))
    }

    /// A POST to `family`'s API `endpoint`.
    pub fn post(&self, family: &Family, endpoint: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(family.api, endpoint))
    }

    /// The HTTP client every call goes out on (redirects never followed).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` (to `endpoint` of `family`'s API, for `owner`) and reads
    /// the credential in its answer's `field`; `with_token`: the call
    /// carried an access token (see [`Failure::of`]).
    pub async fn credential(
        &self,
        call: Call<'_>,
        request: reqwest::RequestBuilder,
        field: Field,
    ) -> Result<Fetched, Failure> {
        let mut answer = self.send(call.endpoint, request).await?;
        if answer.errcode != 0 {
            return Err(call.failure(answer.errcode, &answer.errmsg));
        }
        let value = match field {
            Field::AccessToken => answer.access_token.take(),
            Field::Ticket => answer.ticket.take(),
        };
        read(value, answer.expires_in)
    }

    /// Fetches `family`'s ticket of `kind` with `owner`'s access token.
    pub async fn ticket(
        &self,
        family: &'static Family,
        owner: &str,
        access_token: &str,
        kind: Kind,
    ) -> Result<Fetched, Failure> {
        let Some(ticket) = family.ticket(kind) else {
            return Err(Failure::transient(format!(
                "{kind} is not a ticket of the {} family",
                family.name
            )));
        };
        let mut request = self
            .get(family, ticket.endpoint)
            .query(&[("access_token", access_token)]);
        if let Some(kind) = ticket.type_param {
            request = request.query(&[("type", kind)]);
        }
        let call = Call::with_token(family, owner, ticket.endpoint);
        self.credential(call, request, Field::Ticket).await
    }

    /// Checks that `access_token` works, with `family`'s cheapest call (§7).
    pub async fn probe(
        &self,
        family: &'static Family,
        owner: &str,
        access_token: &str,
    ) -> Result<(), Failure> {
        let Some(probe) = family.probe else {
            return Ok(()); // Nothing to ask: the token is taken as it is.
        };
        let request = self
            .get(family, probe)
            .query(&[("access_token", access_token)]);
        let call = Call::with_token(family, owner, probe);
        self.expect_ok(call, request).await
    }

    /// Where `family`'s pushes come from: `getcallbackip` (§ IP lists; WeCom
    /// has its own on its host), addresses or CIDR ranges, IPv4-mapped ones
    /// unmapped. Entries that are neither are skipped; an empty list is a
    /// failure (it would refuse every push).
    pub async fn callback_ips(
        &self,
        family: &'static Family,
        owner: &str,
        access_token: &str,
    ) -> Result<Vec<ipnet::IpNet>, Failure> {
        #[derive(serde::Deserialize)]
        struct IpList {
            #[serde(default)]
            errcode: i64,
            #[serde(default)]
            errmsg: String,
            #[serde(default)]
            ip_list: Vec<String>,
        }
        let endpoint = CALLBACK_IP;
        let request = self
            .get(family, endpoint)
            .query(&[("access_token", access_token)]);
        let answer: IpList = self
            .send_as(endpoint, request, |a: &IpList| a.errcode)
            .await?;
        if answer.errcode != 0 {
            let call = Call::with_token(family, owner, endpoint);
            return Err(call.failure(answer.errcode, &answer.errmsg));
        }
        let nets: Vec<_> = answer.ip_list.iter().filter_map(|e| parse_net(e)).collect();
        if nets.is_empty() {
            return Err(Failure::transient(format!(
                "{endpoint} answered no usable address ({} entries)",
                answer.ip_list.len()
            )));
        }
        Ok(nets)
    }

    /// Sends a message the way `family` delivers a reply that cannot be a
    /// passive one: a customer-service message (§6.1), or a WeCom app message.
    pub async fn send_message(
        &self,
        family: &'static Family,
        owner: &str,
        access_token: &str,
        message: &serde_json::Value,
    ) -> Result<(), Failure> {
        let endpoint = family.late_reply.endpoint;
        let request = self
            .post(family, endpoint)
            .query(&[("access_token", access_token)])
            .json(message);
        let call = Call::with_token(family, owner, endpoint);
        self.expect_ok(call, request).await
    }

    /// Sends a call whose answer says nothing but its errcode.
    async fn expect_ok(
        &self,
        call: Call<'_>,
        request: reqwest::RequestBuilder,
    ) -> Result<(), Failure> {
        let answer = self.send(call.endpoint, request).await?;
        match answer.errcode {
            0 => Ok(()),
            errcode => Err(call.failure(errcode, &answer.errmsg)),
        }
    }

    /// GETs one of `family`'s user sign-in APIs (`/sns/…`: a code exchange,
    /// a refresh, userinfo) with `query`, and returns WeChat's JSON answer as
    /// it came, errcode or not: a code exchange's answer is kept and handed
    /// back as is. A transport failure, an HTTP error or an answer that is
    /// not a JSON object is a [`Failure`]. The query may hold the secret:
    /// no error names the URL.
    pub async fn sns(
        &self,
        family: &Family,
        endpoint: &'static str,
        query: &[(&str, &str)],
    ) -> Result<String, Failure> {
        let request = self.get(family, endpoint).query(query);
        let result = send_raw(request).await.and_then(|body| {
            let answer = String::from_utf8(body)
                .map_err(|_| Failure::transient("WeChat's answer was not UTF-8"))?;
            let errcode = match serde_json::from_str::<serde_json::Value>(&answer) {
                Ok(serde_json::Value::Object(map)) => {
                    map.get("errcode").and_then(|e| e.as_i64()).unwrap_or(0)
                }
                _ => return Err(Failure::transient("WeChat's answer was not a JSON object")),
            };
            Ok((answer, errcode))
        });
        if let Some(metrics) = &self.metrics {
            let errcode = match &result {
                Ok((_, errcode)) => errcode.to_string(),
                Err(_) => "failed".to_owned(),
            };
            metrics.upstream_call(endpoint, errcode);
        }
        result.map(|(answer, _)| answer)
    }

    /// POSTs `body` to one of WeChat's JSON APIs (`access_token` in the query
    /// when given) and returns its whole answer when its errcode is 0. A
    /// rejected token is [`FailureClass::TokenRejected`].
    pub async fn call_json(
        &self,
        appid: &str,
        endpoint: &'static str,
        access_token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let token = access_token.map(|t| ("access_token", t));
        self.json(&OFFICIAL_ACCOUNT, appid, endpoint, token, body)
            .await
    }

    /// POSTs `body` to one of the Open Platform's component APIs, with the
    /// platform's `component_access_token` in the query when given; its
    /// errcodes read as the component family's.
    pub async fn component_json(
        &self,
        owner: &str,
        endpoint: &'static str,
        component_token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let token = component_token.map(|t| ("component_access_token", t));
        self.json(&crate::family::COMPONENT, owner, endpoint, token, body)
            .await
    }

    async fn json(
        &self,
        family: &'static Family,
        owner: &str,
        endpoint: &'static str,
        token: Option<(&str, &str)>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let mut request = self.post(family, endpoint).json(body);
        if let Some((name, value)) = token {
            request = request.query(&[(name, value)]);
        }
        let errcode_of = |a: &serde_json::Value| a["errcode"].as_i64().unwrap_or(0);
        let answer = self.send_as(endpoint, request, errcode_of).await?;
        let errcode = errcode_of(&answer);
        if errcode == 0 {
            return Ok(answer);
        }
        let errmsg = answer["errmsg"].as_str().unwrap_or_default();
        let call = Call {
            family,
            owner,
            endpoint,
            with_token: token.is_some(),
        };
        Err(call.failure(errcode, errmsg))
    }
}

/// WeChat's (and WeCom's) list of where pushes come from.
pub const CALLBACK_IP: &str = "/cgi-bin/getcallbackip";

/// An address (as a /32 or /128) or a CIDR range, IPv4-mapped unmapped.
pub fn parse_net(entry: &str) -> Option<ipnet::IpNet> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<std::net::IpAddr>() {
        return Some(ipnet::IpNet::from(ip.to_canonical()));
    }
    let net = entry.parse::<ipnet::IpNet>().ok()?.trunc();
    match net {
        ipnet::IpNet::V6(v6) => match (v6.addr().to_ipv4_mapped(), v6.prefix_len()) {
            (Some(v4), len) if len >= 96 => ipnet::Ipv4Net::new(v4, len - 96).ok().map(Into::into),
            _ => Some(net),
        },
        v4 => Some(v4),
    }
}

/// Which field of an answer holds the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `access_token`.
    AccessToken,
    /// `ticket`.
    Ticket,
}

/// Who a call is for and how its errcodes read.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The owner's family: its errcodes' meaning.
    pub family: &'static Family,
    /// The owner, named in hints.
    pub owner: &'a str,
    /// The API path, as counted in metrics.
    pub endpoint: &'static str,
    /// Whether the call carries an access token (see [`Failure::of`]).
    pub with_token: bool,
}

impl<'a> Call<'a> {
    /// A call authenticated by the owner's secret.
    pub fn with_secret(family: &'static Family, owner: &'a str, endpoint: &'static str) -> Self {
        Self {
            family,
            owner,
            endpoint,
            with_token: false,
        }
    }

    /// A call made with the owner's access token.
    pub fn with_token(family: &'static Family, owner: &'a str, endpoint: &'static str) -> Self {
        Self {
            family,
            owner,
            endpoint,
            with_token: true,
        }
    }

    fn failure(&self, errcode: i64, errmsg: &str) -> Failure {
        Failure::of(self.family, self.owner, errcode, errmsg, self.with_token)
    }
}

async fn send<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, Failure> {
    let body = send_raw(request).await?;
    serde_json::from_slice::<T>(&body)
        .map_err(|e| Failure::transient(format!("unreadable answer from WeChat: {e}")))
}

/// Sends a call and reads its answer's bytes (capped), refusing redirects and HTTP errors.
async fn send_raw(request: reqwest::RequestBuilder) -> Result<Vec<u8>, Failure> {
    let response = request.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else {
            "failed"
        };
        Failure::transient(format!("call to WeChat {what}: {}", describe(e)))
    })?;
    let status = response.status();
    if status.is_redirection() {
        return Err(redirect_refused(&response));
    }
    if !status.is_success() {
        return Err(Failure::transient(format!("WeChat answered HTTP {status}")));
    }
    read_capped(response).await
}

/// Reads an answer in chunks, giving up as soon as it passes
/// [`MAX_ANSWER_BYTES`]: a hostile or broken upstream cannot make wxgate
/// buffer more than that.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let too_large = || {
        Failure::transient(format!(
            "WeChat's answer is over {MAX_ANSWER_BYTES} bytes (its credential answers are under 1 KiB); not read further"
        ))
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > MAX_ANSWER_BYTES => {
                return Err(too_large())
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(body),
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                return Err(Failure::transient(format!(
                    "reading WeChat's answer {what}: {}",
                    e.without_url()
                )));
            }
        }
    }
}

/// A transport error with its causes (`error sending request: connection
/// reset…`), without the URL (a classic token URL carries the secret).
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A redirect from the upstream: never followed (it would re-send the
/// secret, a token or an upload to wherever it points), a failure an operator
/// must look at.
pub(crate) fn redirect_refused(response: &reqwest::Response) -> Failure {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or("nowhere");
    Failure {
        class: FailureClass::Config,
        errcode: None,
        message: format!(
            "WeChat answered a redirect (HTTP {}) to {location:.200}; redirects are not followed",
            response.status().as_u16()
        ),
        hint: Some(
            "upstream.base_url must be WeChat's API itself (https://api.weixin.qq.com) or a proxy \
             that forwards without redirecting"
                .into(),
        ),
    }
}

/// A credential and its lifetime from an answer whose errcode was 0.
fn read(value: Option<String>, expires_in: Option<u64>) -> Result<Fetched, Failure> {
    match (value, expires_in) {
        // WeChat's lifetimes are 7200 s (a stable token's never under 300 s);
        // anything past two days is not believed, and a lifetime under a
        // minute is a misbehaving upstream, not a credential to schedule by.
        (Some(value), Some(expires_in)) if !value.is_empty() => {
            if expires_in < MIN_LIFETIME_SECS {
                return Err(Failure::transient(format!(
                    "WeChat's answer had an implausibly short expires_in ({expires_in} s, under \
                     {MIN_LIFETIME_SECS} s); not used"
                )));
            }
            Ok(Fetched {
                value,
                expires_in: expires_in.min(2 * 86_400),
                rotated: None,
            })
        }
        _ => Err(Failure::transient(
            "WeChat's answer had no credential or no expires_in",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_carry_a_hint_naming_what_to_fix() {
        let f = Failure::from_errcode(
            "wx1",
            40164,
            "invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist rid: x",
        );
        assert_eq!(f.class, FailureClass::Config);
        assert!(f
            .hint
            .unwrap()
            .contains("add 1.2.3.4 to the API IP whitelist of wx1"));
        assert_eq!(
            Failure::from_errcode("wx1", -1, "system error").class,
            FailureClass::Transient
        );
        assert_eq!(
            Failure::from_errcode("wx1", 45009, "quota").class,
            FailureClass::Quota
        );
        assert_eq!(
            Failure::from_errcode("wx1", 40125, "bad").class,
            FailureClass::Config
        );
        assert_eq!(
            Failure::from_errcode("wx1", 42001, "expired").class,
            FailureClass::TokenRejected
        );
    }
}
