//! WeChat's HTTP API (or the simulator): the one client of its JSON APIs
//! (token and ticket fetches, the probe, customer-service sends, diagnostics;
//! protocol reference §4, §5.1, §6), its failures, and what their errcodes
//! mean for the token center (§4.3; codes from `wxgate_proto::errcode`).

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use wxgate_proto::errcode;

use crate::config::{AppConfig, TokenApi, UpstreamConfig};
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
}

/// How the token center reacts to a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Busy (-1), timeouts, dropped connections, 5xx: retry with backoff.
    Transient,
    /// Wrong secret, appid, whitelist…: an operator must act; do not hammer.
    Config,
    /// Daily quota used up (45009): stop until it resets.
    Quota,
    /// The access token used for a ticket was refused (40001, 40014, 42001).
    TokenRejected,
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

impl FailureClass {
    /// `transient`, `config`, `quota` or `token_rejected` (metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Config => "config",
            FailureClass::Quota => "quota",
            FailureClass::TokenRejected => "token_rejected",
        }
    }
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

    /// Reads an errcode/errmsg answer.
    pub fn from_errcode(appid: &str, errcode: i64, errmsg: &str) -> Self {
        let (class, hint) = classify(appid, errcode, errmsg);
        Self {
            class,
            errcode: Some(errcode),
            message: format!("WeChat answered errcode {errcode}: {errmsg}"),
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

/// What an errcode means for the token center (§4.3).
fn classify(appid: &str, errcode: i64, errmsg: &str) -> (FailureClass, Option<String>) {
    use wxgate_proto::errcode::{
        ip_not_allowed, ACCESS_TOKEN_EXPIRED, API_UNAUTHORIZED, APPID_MISSING, APPSECRET_FROZEN,
        APPSECRET_MISSING, BUSY, DAILY_QUOTA, INVALID_ACCESS_TOKEN, INVALID_APPID,
        INVALID_APPSECRET, INVALID_CREDENTIAL, INVALID_GRANT_TYPE, MINUTE_QUOTA,
    };
    use FailureClass::*;
    let hint = |s: String| Some(s);
    match errcode {
        BUSY => (Transient, hint("WeChat is busy; wxgate retries with backoff".into())),
        MINUTE_QUOTA => (Transient, hint("per-minute limit reached; wxgate backs off".into())),
        DAILY_QUOTA => (
            Quota,
            hint(format!(
                "the daily quota of {appid} is used up; wxgate stops fetching until 00:00 Beijing time \
                 (an administrator can reset it with /cgi-bin/clear_quota)"
            )),
        ),
        code if ip_not_allowed(code) => {
            let ip = wxgate_proto::whitelist_ip(errmsg).unwrap_or("this server's outbound IP");
            (
                Config,
                hint(format!(
                    "add {ip} to the API IP whitelist of {appid} (mp.weixin.qq.com → 设置与开发 → 基本配置 → IP白名单)"
                )),
            )
        }
        INVALID_CREDENTIAL | INVALID_APPSECRET => (Config, hint(format!("the AppSecret of {appid} is wrong or was reset: update its secret"))),
        APPSECRET_FROZEN => (Config, hint(format!("the AppSecret of {appid} is frozen: unfreeze it in the console"))),
        INVALID_APPID => (Config, hint(format!("WeChat does not know appid {appid}: check it"))),
        INVALID_GRANT_TYPE | APPID_MISSING | APPSECRET_MISSING => (Config, hint("the request lacked a field WeChat requires (a wxgate bug?)".into())),
        INVALID_ACCESS_TOKEN | ACCESS_TOKEN_EXPIRED => (TokenRejected, None),
        API_UNAUTHORIZED => (Config, hint(format!("{appid} lacks the permission for this API"))),
        _ => (Transient, None),
    }
}

/// Largest answer read from WeChat's token, ticket and other JSON APIs called
/// here, bytes. Real answers are a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// On a call made with an access token (not the secret), 40001 means the
/// token, not the secret (§5.1).
fn token_rejected(mut f: Failure) -> Failure {
    if f.errcode == Some(wxgate_proto::errcode::INVALID_CREDENTIAL) {
        f.class = FailureClass::TokenRejected;
        f.hint = None;
    }
    f
}

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

    fn url(&self, path: &str) -> url::Url {
        join(&self.base, path)
    }

    /// Fetches a WeCom app's access token: one per (corpid, secret); a
    /// repeat fetch does not invalidate the previous token (families §1.1).
    pub async fn wecom_token(
        &self,
        owner: &str,
        corpid: &str,
        secret: &str,
    ) -> Result<Fetched, Failure> {
        const ENDPOINT: &str = "/cgi-bin/gettoken";
        let request = self
            .http
            .get(join(&self.wecom_base, ENDPOINT))
            .query(&[("corpid", corpid), ("corpsecret", secret)]);
        let answer = self.send(ENDPOINT, request).await?;
        read_wecom(owner, answer, |a| a.access_token.take(), false)
    }

    /// Checks that a WeCom token works, with `getcallbackip` (WeCom's cheapest call).
    pub async fn wecom_check_token(&self, owner: &str, access_token: &str) -> Result<(), Failure> {
        const ENDPOINT: &str = "/cgi-bin/getcallbackip";
        let request = self
            .http
            .get(join(&self.wecom_base, ENDPOINT))
            .query(&[("access_token", access_token)]);
        let answer = self.send(ENDPOINT, request).await?;
        match answer.errcode {
            0 => Ok(()),
            _ => Err(wecom_failure(owner, &answer, true)),
        }
    }

    /// Fetches a WeCom ticket with the app's token: the corp `jsapi_ticket`
    /// or the app's `agent_config` ticket (families §1.4).
    pub async fn wecom_ticket(
        &self,
        owner: &str,
        access_token: &str,
        kind: Kind,
    ) -> Result<Fetched, Failure> {
        let (endpoint, query): (&'static str, &[(&str, &str)]) = match kind {
            Kind::JsapiTicket => ("/cgi-bin/get_jsapi_ticket", &[]),
            Kind::AgentConfigTicket => ("/cgi-bin/ticket/get", &[("type", "agent_config")]),
            _ => return Err(Failure::transient(format!("WeCom has no {kind}"))),
        };
        let request = self
            .http
            .get(join(&self.wecom_base, endpoint))
            .query(&[("access_token", access_token)])
            .query(query);
        let answer = self.send(endpoint, request).await?;
        read_wecom(owner, answer, |a| a.ticket.take(), true)
    }

    /// Fetches an access token with the app's token API; `force` forces a new stable token.
    pub async fn access_token(&self, app: &AppConfig, force: bool) -> Result<Fetched, Failure> {
        let secret = app.secret.expose_secret();
        let request = match app.token_api {
            TokenApi::Classic => self.http.get(self.url("/cgi-bin/token")).query(&[
                ("grant_type", "client_credential"),
                ("appid", &app.appid),
                ("secret", secret),
            ]),
            TokenApi::Stable => {
                self.http
                    .post(self.url("/cgi-bin/stable_token"))
                    .json(&serde_json::json!({
                        "grant_type": "client_credential",
                        "appid": app.appid,
                        "secret": secret,
                        "force_refresh": force,
                    }))
            }
        };
        let endpoint = match app.token_api {
            TokenApi::Classic => "/cgi-bin/token",
            TokenApi::Stable => "/cgi-bin/stable_token",
        };
        let answer = self.send(endpoint, request).await?;
        read(&app.appid, answer, |a| a.access_token.take())
    }

    /// Checks that `access_token` works, with the cheapest API (§7).
    pub async fn check_token(&self, appid: &str, access_token: &str) -> Result<(), Failure> {
        let request = self
            .http
            .get(self.url("/cgi-bin/get_api_domain_ip"))
            .query(&[("access_token", access_token)]);
        let answer = self.send("/cgi-bin/get_api_domain_ip", request).await?;
        if answer.errcode == 0 {
            Ok(())
        } else {
            Err(token_rejected(Failure::from_errcode(
                appid,
                answer.errcode,
                &answer.errmsg,
            )))
        }
    }

    /// Sends a customer-service message (§6.1).
    pub async fn custom_send(
        &self,
        appid: &str,
        access_token: &str,
        message: &serde_json::Value,
    ) -> Result<(), Failure> {
        let request = self
            .http
            .post(self.url("/cgi-bin/message/custom/send"))
            .query(&[("access_token", access_token)])
            .json(message);
        let answer = self.send("/cgi-bin/message/custom/send", request).await?;
        match answer.errcode {
            0 => Ok(()),
            wxgate_proto::errcode::INVALID_CREDENTIAL => Err(Failure {
                class: FailureClass::TokenRejected,
                ..Failure::from_errcode(appid, answer.errcode, &answer.errmsg)
            }),
            errcode => Err(Failure::from_errcode(appid, errcode, &answer.errmsg)),
        }
    }

    /// Sends a WeCom app message (`/cgi-bin/message/send`): how a WeCom
    /// reply that came too late for the callback's answer still reaches the member.
    pub async fn wecom_send(
        &self,
        owner: &str,
        access_token: &str,
        message: &serde_json::Value,
    ) -> Result<(), Failure> {
        const ENDPOINT: &str = "/cgi-bin/message/send";
        let request = self
            .http
            .post(join(&self.wecom_base, ENDPOINT))
            .query(&[("access_token", access_token)])
            .json(message);
        let answer = self.send(ENDPOINT, request).await?;
        match answer.errcode {
            0 => Ok(()),
            _ => Err(wecom_failure(owner, &answer, true)),
        }
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
        let mut request = self.http.post(self.url(endpoint)).json(body);
        if let Some(token) = access_token {
            request = request.query(&[("access_token", token)]);
        }
        let errcode_of = |a: &serde_json::Value| a["errcode"].as_i64().unwrap_or(0);
        let answer = self.send_as(endpoint, request, errcode_of).await?;
        let errcode = errcode_of(&answer);
        if errcode == 0 {
            return Ok(answer);
        }
        let errmsg = answer["errmsg"].as_str().unwrap_or_default();
        let failure = Failure::from_errcode(appid, errcode, errmsg);
        Err(if access_token.is_some() {
            token_rejected(failure)
        } else {
            failure
        })
    }

    /// Fetches a ticket of `kind` with `access_token`.
    pub async fn ticket(
        &self,
        appid: &str,
        access_token: &str,
        kind: Kind,
    ) -> Result<Fetched, Failure> {
        let kind = match kind {
            Kind::JsapiTicket => "jsapi",
            Kind::WxCardTicket => "wx_card",
            other => {
                return Err(Failure::transient(format!(
                    "{other} is not an Official Account ticket"
                )))
            }
        };
        let request = self
            .http
            .get(self.url("/cgi-bin/ticket/getticket"))
            .query(&[("access_token", access_token), ("type", kind)]);
        let answer = self.send("/cgi-bin/ticket/getticket", request).await?;
        read(appid, answer, |a| a.ticket.take()).map_err(token_rejected)
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

/// `base` + `path`, keeping the base's own path (a simulator under a prefix).
fn join(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let base_path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base_path}{path}"));
    url
}

/// [`read`] with WeCom's meaning of its errcodes; `with_token`: the call
/// carried an access token (so 40001 means the token, not the secret).
fn read_wecom(
    owner: &str,
    answer: Answer,
    value: impl FnOnce(&mut Answer) -> Option<String>,
    with_token: bool,
) -> Result<Fetched, Failure> {
    if answer.errcode != 0 {
        return Err(wecom_failure(owner, &answer, with_token));
    }
    read(owner, answer, value)
}

/// A WeCom answer's errcode as a failure, with WeCom's meaning of it.
fn wecom_failure(owner: &str, answer: &Answer, with_token: bool) -> Failure {
    let (class, hint) = classify_wecom(owner, answer.errcode, &answer.errmsg, with_token);
    Failure {
        class,
        errcode: Some(answer.errcode),
        message: format!(
            "WeCom answered errcode {}: {}",
            answer.errcode, answer.errmsg
        ),
        hint,
    }
}

/// What a WeCom errcode means (families §1.2): 40001, 40014 and 42001 on a
/// call with a token all say the token is bad; 60020 names the IP to trust;
/// 45009 is a rate limit, not a daily quota.
fn classify_wecom(
    owner: &str,
    errcode: i64,
    errmsg: &str,
    with_token: bool,
) -> (FailureClass, Option<String>) {
    use FailureClass::*;
    match errcode {
        errcode::BUSY => (
            Transient,
            Some("WeCom is busy; wxgate retries with backoff".into()),
        ),
        code if with_token && errcode::token_rejected(code) => (TokenRejected, None),
        errcode::INVALID_CREDENTIAL | errcode::WECOM_INVALID_SECRET => (
            Config,
            Some(format!(
                "the secret of {owner} is wrong or was reset: each WeCom app has its own Secret \
                 (应用管理 → the app → Secret)"
            )),
        ),
        errcode::INVALID_APPID => (
            Config,
            Some(format!(
                "WeCom does not know the corp of {owner}: check corpid"
            )),
        ),
        errcode::APPSECRET_MISSING => (
            Config,
            Some("the request lacked corpsecret (a wxgate bug?)".into()),
        ),
        errcode::DAILY_QUOTA | errcode::WECOM_FREQ_LIMIT => (
            Transient,
            Some("WeCom's rate limit (per minute or hour): wxgate backs off".into()),
        ),
        errcode::WECOM_NO_PERMISSION => (
            Config,
            Some(format!(
                "{owner} may not call this API: grant it in the console"
            )),
        ),
        errcode::WECOM_UNTRUSTED_IP => {
            let ip = wxgate_proto::wecom_from_ip(errmsg).unwrap_or("this server's outbound IP");
            (
                Config,
                Some(format!(
                    "add {ip} to the 企业可信IP of {owner} (应用管理 → the app → 企业可信IP)"
                )),
            )
        }
        errcode::WECOM_OTHER_AGENT => (
            Config,
            Some(format!(
                "WeCom says this token belongs to another app of the corp: {owner} must use its \
                 own token (wxgate keeps one per app; a program sharing tokens per corp is wrong)"
            )),
        ),
        _ => (Transient, None),
    }
}

fn read(
    appid: &str,
    mut answer: Answer,
    value: impl FnOnce(&mut Answer) -> Option<String>,
) -> Result<Fetched, Failure> {
    if answer.errcode != 0 {
        return Err(Failure::from_errcode(appid, answer.errcode, &answer.errmsg));
    }
    match (value(&mut answer), answer.expires_in) {
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
