//! Pushes to a platform's authorization-event URL (授权事件接收URL, families
//! reference §3.1, §3.7): the `component_verify_ticket` every
//! `ticket_interval` virtual seconds (and at once after
//! `api_start_push_ticket`), and the `authorized`, `updateauthorized` and
//! `unauthorized` events. Each is sealed as WeChat seals it (`<AppId>` +
//! `<Encrypt>`, receiveid = component appid, the platform's token and key),
//! sent once with WeChat's 5-second timeout, and recorded with its answer
//! (`GET /sim/component/pushes`); the answer WeChat wants is `success`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wxgate_proto::{seal_component_push, AesKey, MessageCrypto};

use crate::state::OutgoingPush;
use crate::Simulator;

/// One push to a platform and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentPushRecord {
    /// The platform.
    pub component_appid: String,
    /// `component_verify_ticket`, `authorized`, `updateauthorized` or `unauthorized`.
    pub info_type: String,
    /// The account of an authorization event.
    pub authorizer_appid: Option<String>,
    /// Virtual time of the push, Unix seconds.
    pub at: u64,
    /// Where it was sent.
    pub url: String,
    /// The decrypted push XML.
    pub plaintext: String,
    /// The HTTP status, when an answer came within 5 s.
    pub status: Option<u16>,
    /// Why there was no answer (timeout, refused…).
    pub error: Option<String>,
    /// The first 256 characters of the answer.
    pub answer: String,
    /// Whether the answer was 200 with the body `success`.
    pub acknowledged: bool,
}

/// How long WeChat waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Seals and sends one push, and records the outcome.
pub(crate) async fn deliver(sim: &Simulator, out: OutgoingPush) -> ComponentPushRecord {
    let now = sim.clock().now();
    let plaintext = out.push.to_xml();
    let mut record = ComponentPushRecord {
        component_appid: out.component_appid.clone(),
        info_type: out.push.info.info_type().to_owned(),
        authorizer_appid: out.push.info.authorizer_appid().map(str::to_owned),
        at: now,
        url: out.url.clone(),
        plaintext: plaintext.clone(),
        status: None,
        error: None,
        answer: String::new(),
        acknowledged: false,
    };
    match AesKey::try_new(&out.encoding_aes_key) {
        Err(e) => record.error = Some(format!("the platform's EncodingAESKey: {e}")),
        Ok(key) => {
            let crypto = MessageCrypto::new(key, out.component_appid.clone());
            let sealed = seal_component_push(
                &crypto,
                &out.token,
                &plaintext,
                &now.to_string(),
                &rand::random::<u32>().to_string(),
                &rand::random(),
            );
            let sent = sim
                .http()
                .post(&out.url)
                .query(&sealed.query)
                .header("content-type", "text/xml")
                .body(sealed.body)
                .timeout(TIMEOUT)
                .send()
                .await;
            match sent {
                Err(e) if e.is_timeout() => record.error = Some("timeout".into()),
                Err(e) => record.error = Some(e.without_url().to_string()),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    record.acknowledged = status == 200 && body.trim() == "success";
                    record.status = Some(status);
                    record.answer = body.chars().take(256).collect();
                }
            }
        }
    }
    tracing::debug!(
        component_appid = record.component_appid,
        info_type = record.info_type,
        acknowledged = record.acknowledged,
        "component push"
    );
    sim.state().component.record_push(record.clone());
    record
}

impl Simulator {
    /// Pushes a new `component_verify_ticket` to every platform whose push is
    /// due at the current virtual time, and returns the records. The server
    /// does this by itself every second; tests may call it after moving the clock.
    pub async fn push_due_tickets(&self) -> Vec<ComponentPushRecord> {
        let due = {
            let now = self.clock().now();
            self.state().due_tickets(now)
        };
        let mut records = Vec::with_capacity(due.len());
        for out in due {
            records.push(deliver(self, out).await);
        }
        records
    }

    /// Every push sent to the platforms, oldest first (the newest 1000).
    pub fn component_pushes(&self) -> Vec<ComponentPushRecord> {
        self.state().component.pushes.clone()
    }

    /// The newest `component_verify_ticket` minted for a platform (what its
    /// server should hold if it got the last push).
    pub fn component_ticket(&self, component_appid: &str) -> Option<String> {
        self.state().component.ticket(component_appid)
    }
}

/// Runs [`Simulator::push_due_tickets`] every second while the server runs.
pub(crate) async fn ticker(sim: Simulator) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        sim.push_due_tickets().await;
    }
}
