//! Acting as WeChat towards a server: sign (and encrypt) a push, POST it with
//! WeChat's timeout and retries, and check and decode the answer
//! (protocol reference §2.1, §2.7, §2.8). Used by `POST /sim/push` and `wxgate push`.
//!
//! [`PushAs`] says which platform pushes and how: an Official Account (XML),
//! a Mini Program (XML or JSON, `{"ToUserName","Encrypt"}` in safe mode, only
//! `success` or `transfer_customer_service` accepted) or WeCom (always
//! encrypted, `msg_signature` only, receiveid = corpid; families reference
//! §1.5, §2). [`Compose::VerifyUrl`] sends the console's URL check instead of a push.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wxgate_proto::{
    open_reply, push_json_from_xml, seal_callback, seal_echostr, seal_json_push, seal_push,
    signature, xml::Element, AesKey, BodyFormat, CallbackError, CallbackQuery, CallbackShape,
    Event, MessageCrypto, MessageError, Push, PushKind, PushMode, PushQuery, Reply,
};

/// A push to send. (Its Debug output hides the token and the key.)
#[derive(Clone, Serialize, Deserialize)]
pub struct PushRequest {
    /// The server URL, as configured in WeChat's console.
    pub url: String,
    /// The server token from WeChat's console.
    pub token: String,
    /// `plain`, `compat` or `safe`.
    #[serde(default = "plain")]
    pub mode: String,
    /// AppID bound into encrypted messages (compat and safe mode); WeCom's corpid.
    #[serde(default, alias = "corpid")]
    pub appid: Option<String>,
    /// The 43-character EncodingAESKey (compat and safe mode).
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
    /// What to push.
    pub message: Compose,
    /// The sender's OpenID.
    #[serde(default = "default_from")]
    pub from: String,
    /// The account's original id.
    #[serde(default = "default_to")]
    pub to: String,
    /// How long WeChat waits for an answer, milliseconds (WeChat: 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Deliveries after the first when there is no answer (WeChat: 2, [?] §2.8).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

impl std::fmt::Debug for PushRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRequest")
            .field("url", &self.url)
            .field("mode", &self.mode)
            .field("appid", &self.appid)
            .field("message", &self.message)
            .field("timeout_ms", &self.timeout_ms)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// Most deliveries after the first that a push may ask for.
pub const MAX_RETRIES: u32 = 5;
/// Longest wait for an answer a push may ask for, milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

fn plain() -> String {
    "plain".to_owned()
}
fn default_from() -> String {
    "oUser_wxgate_sim_0001".to_owned()
}
fn default_to() -> String {
    "gh_wxgate_sim01".to_owned()
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_retries() -> u32 {
    2
}

/// The content of a push.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Compose {
    /// A text message with a fresh MsgId.
    Text {
        /// The text.
        content: String,
    },
    /// An event (`subscribe`, `CLICK`…).
    Event {
        /// The `Event` value.
        event: String,
        /// The `EventKey`, if any.
        #[serde(default)]
        event_key: Option<String>,
    },
    /// A complete plaintext push, sent as it is (or as its JSON form).
    Xml {
        /// The `<xml>…</xml>` document.
        xml: String,
    },
    /// The URL check a console save sends: a GET with `echostr` (encrypted and
    /// covered by `msg_signature` for WeCom) whose answer must be the echo itself.
    VerifyUrl {
        /// Identical GETs sent at once (WeCom sends up to 3 from several IPs, §1.5).
        #[serde(default = "one")]
        fanout: u32,
    },
}

fn one() -> u32 {
    1
}

/// The platform a push comes from (families reference §1.5, §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// An Official Account: plain, compat or safe mode.
    #[default]
    Official,
    /// A Mini Program: like an Official Account, but only `success` (unencrypted)
    /// or a `transfer_customer_service` reply is a valid answer.
    Miniprogram,
    /// WeCom: always encrypted (the request's `mode` is ignored), `msg_signature`
    /// only, the corpid (`appid`) as receiveid and `ToUserName`.
    Wecom,
}

/// Who pushes and in what shape, beside a [`PushRequest`] (its own type so
/// that code building a `PushRequest` keeps compiling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAs {
    /// The pushing platform.
    #[serde(default)]
    pub family: Family,
    /// XML (default) or JSON bodies.
    #[serde(default)]
    pub format: BodyFormat,
    /// WeCom: the app's agentid, put in the envelope and the plaintext.
    #[serde(default)]
    pub agent_id: Option<u64>,
}

/// The body of `POST /sim/push`: a [`PushRequest`] and its [`PushAs`] fields side by side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimPush {
    /// What to push, where.
    #[serde(flatten)]
    pub request: PushRequest,
    /// Who pushes and how.
    #[serde(flatten)]
    pub push_as: PushAs,
}

/// One delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The HTTP status, when one came back in time.
    pub status: Option<u16>,
    /// Why the delivery failed (timeout, refused, status).
    pub error: Option<String>,
    /// Time to the answer or the failure, milliseconds.
    pub elapsed_ms: u64,
}

/// How the server answered, judged as WeChat judges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PushAnswer {
    /// `success` or an empty body: no reply, no retry.
    NoReply,
    /// A well-formed passive reply, decrypted and signature-checked.
    Reply {
        /// The reply's `MsgType`.
        msg_type: String,
        /// The reply XML (decrypted in compat and safe mode).
        xml: String,
    },
    /// An answer WeChat would reject (the user sees "该公众号暂时无法提供服务").
    Invalid {
        /// What is wrong with it.
        reason: String,
        /// The first 2 KiB of the body.
        body: String,
    },
    /// No delivery got an answer.
    Unanswered,
    /// A URL check answered with exactly its echo.
    Verified {
        /// The echo (decrypted `echostr` for WeCom).
        echo: String,
    },
}

/// The whole exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// The plaintext that was sent (identical in every delivery): the push's XML,
    /// its JSON form, or a URL check's echo.
    pub push_xml: String,
    /// Every delivery, in order.
    pub attempts: Vec<Attempt>,
    /// The verdict on the answer.
    pub answer: PushAnswer,
}

/// Why a push could not be sent at all.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The mode, appid or key is unusable.
    #[error("push settings: {0}")]
    Settings(String),
    /// The message is not a push.
    #[error("not a valid push: {0}")]
    Message(#[from] MessageError),
    /// The push could not be put in its JSON form.
    #[error("not a valid push: {0}")]
    Json(#[from] CallbackError),
}

impl PushRequest {
    fn push_mode(&self) -> Result<PushMode, PushError> {
        let crypto = || -> Result<MessageCrypto, PushError> {
            let key = self.encoding_aes_key.as_deref().ok_or_else(|| {
                PushError::Settings(format!("{} mode needs encoding_aes_key", self.mode))
            })?;
            let key = AesKey::try_new(key).map_err(|e| PushError::Settings(e.to_string()))?;
            let appid = self
                .appid
                .clone()
                .ok_or_else(|| PushError::Settings(format!("{} mode needs appid", self.mode)))?;
            Ok(MessageCrypto::new(key, appid))
        };
        match self.mode.as_str() {
            "plain" => Ok(PushMode::Plain),
            "compat" => Ok(PushMode::Compat(crypto()?)),
            "safe" => Ok(PushMode::Safe(crypto()?)),
            other => Err(PushError::Settings(format!(
                "unknown mode {other:?}: use plain, compat or safe"
            ))),
        }
    }

    fn crypto(&self) -> Result<MessageCrypto, PushError> {
        let key = self
            .encoding_aes_key
            .as_deref()
            .ok_or_else(|| PushError::Settings("WeCom pushes need encoding_aes_key".into()))?;
        let key = AesKey::try_new(key).map_err(|e| PushError::Settings(e.to_string()))?;
        let corpid = self
            .appid
            .clone()
            .ok_or_else(|| PushError::Settings("WeCom pushes need the corpid".into()))?;
        Ok(MessageCrypto::new(key, corpid))
    }

    /// The push and its plaintext XML: built at `now` with a fresh MsgId, or as
    /// given. A WeCom push goes to the corpid and names its agent.
    fn compose(&self, now: u64, how: &PushAs) -> Result<(Push, String), PushError> {
        let (kind, mut extra) = match &self.message {
            Compose::Xml { xml } => return Ok((Push::parse(xml)?, xml.clone())),
            Compose::VerifyUrl { .. } => {
                return Err(PushError::Settings("a URL check is not a push".into()))
            }
            Compose::Text { content } => {
                let msg_id = rand::random::<u64>() >> 1;
                let kind = PushKind::Text {
                    msg_id,
                    content: content.clone(),
                };
                (kind, Vec::new())
            }
            Compose::Event { event, event_key } => {
                let kind = PushKind::Event(Event::Unknown {
                    event: event.clone(),
                });
                let extra = event_key
                    .iter()
                    .map(|k| Element::leaf("EventKey", k.clone()));
                (kind, extra.collect())
            }
        };
        let to = match how.family {
            Family::Wecom => self.appid.clone().unwrap_or_else(|| self.to.clone()),
            _ => self.to.clone(),
        };
        if let (Family::Wecom, Some(agent)) = (how.family, how.agent_id) {
            extra.push(Element::leaf("AgentID", agent.to_string()));
        }
        let push = Push {
            to_user_name: to,
            from_user_name: self.from.clone(),
            create_time: now,
            kind,
            extra,
        };
        let xml = push.to_xml();
        Ok((push, xml))
    }
}

/// Sends `req` as an Official Account would at virtual time `now` (Unix seconds).
pub async fn send(
    client: &reqwest::Client,
    req: &PushRequest,
    now: u64,
) -> Result<PushOutcome, PushError> {
    send_as(client, req, &PushAs::default(), now).await
}

/// How a push is sealed and its answer judged.
enum Sealer {
    Account(PushMode),
    Wecom(MessageCrypto),
}

/// One request on the wire.
struct Wire {
    query: WireQuery,
    body: String,
}

enum WireQuery {
    Push(PushQuery),
    Callback(CallbackQuery),
    Check(PlainCheck),
}

/// The Official Account / Mini Program URL check's query.
#[derive(Serialize)]
struct PlainCheck {
    signature: String,
    timestamp: String,
    nonce: String,
    echostr: String,
}

impl Sealer {
    fn new(req: &PushRequest, how: &PushAs) -> Result<Self, PushError> {
        match how.family {
            Family::Wecom => Ok(Sealer::Wecom(req.crypto()?)),
            Family::Official | Family::Miniprogram => Ok(Sealer::Account(req.push_mode()?)),
        }
    }

    fn seal(
        &self,
        token: &str,
        plaintext: &str,
        openid: &str,
        how: &PushAs,
        now: u64,
    ) -> Result<Wire, PushError> {
        let (timestamp, nonce) = (now.to_string(), rand::random::<u32>().to_string());
        let random = rand::random();
        match (self, how.format) {
            (Sealer::Wecom(crypto), format) => {
                let shape = CallbackShape {
                    format,
                    agent_id: how.agent_id,
                };
                let sealed =
                    seal_callback(crypto, token, plaintext, shape, &timestamp, &nonce, &random);
                Ok(Wire {
                    query: WireQuery::Callback(sealed.query),
                    body: sealed.body,
                })
            }
            (Sealer::Account(mode), BodyFormat::Xml) => {
                let sealed = seal_push(
                    mode,
                    token,
                    plaintext,
                    Some(openid),
                    &timestamp,
                    &nonce,
                    &random,
                )
                .map_err(MessageError::from)?;
                Ok(Wire {
                    query: WireQuery::Push(sealed.query),
                    body: sealed.body,
                })
            }
            (Sealer::Account(mode), BodyFormat::Json) => {
                let sealed = seal_json_push(
                    mode,
                    token,
                    plaintext,
                    Some(openid),
                    &timestamp,
                    &nonce,
                    &random,
                )?;
                Ok(Wire {
                    query: WireQuery::Push(sealed.query),
                    body: sealed.body,
                })
            }
        }
    }

    /// The URL check: its query and the echo the answer must be.
    fn verify_query(&self, token: &str, now: u64) -> (WireQuery, String) {
        let echo = (rand::random::<u64>() >> 1).to_string();
        let (timestamp, nonce) = (now.to_string(), rand::random::<u32>().to_string());
        match self {
            Sealer::Wecom(crypto) => {
                let query = seal_echostr(crypto, token, &echo, &timestamp, &nonce, &rand::random());
                (WireQuery::Callback(query), echo)
            }
            Sealer::Account(_) => {
                // The GET check is plain in every mode: `signature` and a plain `echostr`.
                let check = PlainCheck {
                    signature: signature(token, &timestamp, &nonce),
                    timestamp,
                    nonce,
                    echostr: echo.clone(),
                };
                (WireQuery::Check(check), echo)
            }
        }
    }
}

/// Sends `req` as the platform `how` names would, at virtual time `now` (Unix seconds).
pub async fn send_as(
    client: &reqwest::Client,
    req: &PushRequest,
    how: &PushAs,
    now: u64,
) -> Result<PushOutcome, PushError> {
    let sealer = Sealer::new(req, how)?;
    if let Compose::VerifyUrl { fanout } = req.message {
        return Ok(verify_url(client, req, how, &sealer, fanout, now).await);
    }
    let (push, push_xml) = req.compose(now, how)?;
    let plaintext = match how.format {
        BodyFormat::Xml => push_xml,
        BodyFormat::Json => push_json_from_xml(&push_xml)?,
    };
    let timeout = Duration::from_millis(req.timeout_ms.min(MAX_TIMEOUT_MS));
    let mut attempts = Vec::new();
    // WeChat repeats a push only when no answer came in time (§2.8).
    for _ in 0..=req.retries.min(MAX_RETRIES) {
        let wire = sealer.seal(&req.token, &plaintext, &push.from_user_name, how, now)?;
        let started = tokio::time::Instant::now();
        let result = deliver(client, &req.url, &wire, how.format, timeout).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok((status, body)) => {
                let answer = if (200..300).contains(&status) {
                    attempts.push(Attempt {
                        status: Some(status),
                        error: None,
                        elapsed_ms,
                    });
                    match (&sealer, how.family) {
                        (Sealer::Wecom(crypto), _) => {
                            judge(&PushMode::Safe(crypto.clone()), &req.token, &push, &body)
                        }
                        (Sealer::Account(mode), Family::Miniprogram) => {
                            judge_miniprogram(mode, &req.token, &push, &body)
                        }
                        (Sealer::Account(mode), _) => judge(mode, &req.token, &push, &body),
                    }
                } else {
                    let error = format!("HTTP {status}");
                    attempts.push(Attempt {
                        status: Some(status),
                        error: Some(error.clone()),
                        elapsed_ms,
                    });
                    let body = body.chars().take(2048).collect();
                    PushAnswer::Invalid {
                        reason: error,
                        body,
                    }
                };
                return Ok(PushOutcome {
                    push_xml: plaintext,
                    attempts,
                    answer,
                });
            }
            Err(error) => attempts.push(Attempt {
                status: None,
                error: Some(error),
                elapsed_ms,
            }),
        }
    }
    Ok(PushOutcome {
        push_xml: plaintext,
        attempts,
        answer: PushAnswer::Unanswered,
    })
}

/// The console's URL check: `fanout` identical GETs at once; each answer must
/// be exactly the echo (WeCom: "no quotes, no BOM, no newline", within 1 s).
async fn verify_url(
    client: &reqwest::Client,
    req: &PushRequest,
    how: &PushAs,
    sealer: &Sealer,
    fanout: u32,
    now: u64,
) -> PushOutcome {
    let (query, echo) = sealer.verify_query(&req.token, now);
    let mut timeout_ms = req.timeout_ms.min(MAX_TIMEOUT_MS);
    if how.family == Family::Wecom {
        timeout_ms = timeout_ms.min(1000);
    }
    let timeout = Duration::from_millis(timeout_ms);
    let gets = (0..fanout.clamp(1, 10)).map(|_| async {
        let started = tokio::time::Instant::now();
        let request = match &query {
            WireQuery::Push(q) => client.get(&req.url).query(q),
            WireQuery::Callback(q) => client.get(&req.url).query(q),
            WireQuery::Check(q) => client.get(&req.url).query(q),
        };
        let result = fetch(request.timeout(timeout)).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        (result, elapsed_ms)
    });
    let results = futures_util::future::join_all(gets).await;
    let mut attempts = Vec::new();
    let mut answer = PushAnswer::Verified { echo: echo.clone() };
    for (result, elapsed_ms) in results {
        let verdict = match &result {
            Err(_) => Some(PushAnswer::Unanswered),
            Ok((status, _)) if !(200..300).contains(status) => Some(PushAnswer::Invalid {
                reason: format!("HTTP {status}"),
                body: String::new(),
            }),
            Ok((_, body)) if *body == echo => None,
            Ok((_, body)) => {
                let reason = if body.trim_start_matches('\u{feff}').trim().trim_matches('"') == echo
                {
                    "the echo with quotes, a BOM or whitespace around it".to_owned()
                } else {
                    "not the echo".to_owned()
                };
                Some(PushAnswer::Invalid {
                    reason,
                    body: body.chars().take(2048).collect(),
                })
            }
        };
        attempts.push(match result {
            Ok((status, _)) => Attempt {
                status: Some(status),
                error: None,
                elapsed_ms,
            },
            Err(error) => Attempt {
                status: None,
                error: Some(error),
                elapsed_ms,
            },
        });
        // The first failure is the verdict.
        if let (Some(v), PushAnswer::Verified { .. }) = (verdict, &answer) {
            answer = v;
        }
    }
    PushOutcome {
        push_xml: echo,
        attempts,
        answer,
    }
}

/// One POST: the status and body of the answer, or why none came.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    wire: &Wire,
    format: BodyFormat,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let request = match &wire.query {
        WireQuery::Push(q) => client.post(url).query(q),
        WireQuery::Callback(q) => client.post(url).query(q),
        WireQuery::Check(q) => client.post(url).query(q),
    };
    let content_type = match format {
        BodyFormat::Xml => "text/xml",
        BodyFormat::Json => "application/json",
    };
    let request = request
        .header("content-type", content_type)
        .body(wire.body.clone())
        .timeout(timeout);
    fetch(request).await
}

async fn fetch(request: reqwest::RequestBuilder) -> Result<(u16, String), String> {
    let response = request.send().await.map_err(describe)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(describe)?;
    Ok((status, body))
}

/// The client pushes are sent with: WeChat follows no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client without redirects builds")
}

/// `timeout`, or the error and its causes on one line (without the URL: it is long and signed).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else {
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }
}

fn judge(mode: &PushMode, token: &str, push: &Push, body: &str) -> PushAnswer {
    let invalid = |reason: String| PushAnswer::Invalid {
        reason,
        body: body.chars().take(2048).collect(),
    };
    let xml = match open_reply(mode, token, body) {
        Ok(None) => return PushAnswer::NoReply,
        Ok(Some(xml)) => xml,
        Err(e) => return invalid(e.to_string()),
    };
    let reply = match Reply::parse(&xml) {
        Ok(reply) => reply,
        Err(e) => return invalid(format!("reply: {e}")),
    };
    if reply.to_user_name != push.from_user_name || reply.from_user_name != push.to_user_name {
        return invalid(format!(
            "reply goes from {:?} to {:?}; expected from {:?} to {:?}",
            reply.from_user_name, reply.to_user_name, push.to_user_name, push.from_user_name
        ));
    }
    PushAnswer::Reply {
        msg_type: reply.body.msg_type().to_owned(),
        xml,
    }
}

/// A Mini Program's answer (families reference §2): `success` or empty, sent
/// unencrypted, or a `transfer_customer_service` reply; an *encrypted*
/// `success` breaks it ("该小程序提供的服务出现故障").
fn judge_miniprogram(mode: &PushMode, token: &str, push: &Push, body: &str) -> PushAnswer {
    let invalid = |reason: String| PushAnswer::Invalid {
        reason,
        body: body.chars().take(2048).collect(),
    };
    let xml = match open_reply(mode, token, body) {
        Ok(None) => return PushAnswer::NoReply,
        Ok(Some(xml)) => xml,
        Err(e) => return invalid(e.to_string()),
    };
    if wxgate_proto::reply::is_no_reply(&xml) {
        return invalid("an encrypted success: a Mini Program wants it unencrypted".into());
    }
    let root = match wxgate_proto::xml::parse(&xml) {
        Ok(root) => root,
        Err(e) => return invalid(format!("reply: {e}")),
    };
    let msg_type = root.child_text("MsgType").unwrap_or_default().to_owned();
    if msg_type != "transfer_customer_service" {
        return invalid(format!(
            "a Mini Program's only passive reply is transfer_customer_service, not {msg_type:?}"
        ));
    }
    let (to, from) = (
        root.child_text("ToUserName").unwrap_or_default(),
        root.child_text("FromUserName").unwrap_or_default(),
    );
    if to != push.from_user_name || from != push.to_user_name {
        return invalid(format!(
            "reply goes from {from:?} to {to:?}; expected from {:?} to {:?}",
            push.to_user_name, push.from_user_name
        ));
    }
    PushAnswer::Reply { msg_type, xml }
}
