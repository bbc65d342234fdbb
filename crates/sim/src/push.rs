//! Acting as WeChat towards a server: sign (and encrypt) a push, POST it with
//! WeChat's timeout and retries, and check and decode the answer
//! (protocol reference §2.1, §2.7, §2.8). Used by `POST /sim/push` and `wxgate push`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wxgate_proto::{
    open_reply, seal_push, xml::Element, AesKey, Event, MessageCrypto, MessageError, Push,
    PushKind, PushMode, Reply,
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
    /// AppID bound into encrypted messages (compat and safe mode).
    #[serde(default)]
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
    /// A complete plaintext push, sent as it is.
    Xml {
        /// The `<xml>…</xml>` document.
        xml: String,
    },
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
}

/// The whole exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// The plaintext push that was sent (identical in every delivery).
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

    /// The push and its plaintext XML: built at `now` with a fresh MsgId, or as given.
    fn compose(&self, now: u64) -> Result<(Push, String), PushError> {
        let (kind, extra) = match &self.message {
            Compose::Xml { xml } => return Ok((Push::parse(xml)?, xml.clone())),
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
        let push = Push {
            to_user_name: self.to.clone(),
            from_user_name: self.from.clone(),
            create_time: now,
            kind,
            extra,
        };
        let xml = push.to_xml();
        Ok((push, xml))
    }
}

/// Sends `req` as WeChat would at virtual time `now` (Unix seconds).
pub async fn send(
    client: &reqwest::Client,
    req: &PushRequest,
    now: u64,
) -> Result<PushOutcome, PushError> {
    let mode = req.push_mode()?;
    let (push, push_xml) = req.compose(now)?;
    let timeout = Duration::from_millis(req.timeout_ms.min(MAX_TIMEOUT_MS));
    let mut attempts = Vec::new();
    // WeChat repeats a push only when no answer came in time (§2.8).
    for _ in 0..=req.retries.min(MAX_RETRIES) {
        let sealed = seal_push(
            &mode,
            &req.token,
            &push_xml,
            Some(&push.from_user_name),
            &now.to_string(),
            &rand::random::<u32>().to_string(),
            &rand::random(),
        )
        .map_err(MessageError::from)?;
        let started = tokio::time::Instant::now();
        let result = deliver(client, &req.url, &sealed, timeout).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok((status, body)) => {
                let answer = if (200..300).contains(&status) {
                    attempts.push(Attempt {
                        status: Some(status),
                        error: None,
                        elapsed_ms,
                    });
                    judge(&mode, &req.token, &push, &body)
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
                    push_xml,
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
        push_xml,
        attempts,
        answer: PushAnswer::Unanswered,
    })
}

/// One POST: the status and body of the answer, or why none came.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    sealed: &wxgate_proto::SealedPush,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let response = client
        .post(url)
        .query(&sealed.query)
        .header("content-type", "text/xml")
        .body(sealed.body.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(describe)?;
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
