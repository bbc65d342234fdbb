//! Where an owner's pushes arrive and who sends them: [`Inbox`] and
//! [`Sender`], built by the configuration (`config::pushes`) and used by the
//! push dispatcher ([`crate::message`], which re-exports them) and the
//! endpoints WeChat and WeCom call (`http::wechat`).
//!
//! A leaf of its own, not a file of `message`: the configuration builds
//! inboxes, and `message` depends on the token center, which depends on the
//! configuration, so `config` naming `message` would close a cycle.

use secrecy::SecretString;
use wxgate_proto::PushMode;

use crate::rules::Rule;

/// Who sends an inbox's pushes: it decides their envelope and what a reply may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// An Official Account: XML pushes; any passive reply.
    Official,
    /// A Mini Program: XML or JSON pushes; the only passive reply is
    /// `transfer_customer_service` (any other reply goes out as a
    /// customer-service message), and `success` is never encrypted.
    MiniProgram,
    /// A WeCom app: always encrypted (receiveid = corpid), `msg_signature`
    /// only; no reply is an empty 200; late replies go by `message/send`.
    WeCom {
        /// The app's AgentId (`None` for a special secret: no late replies).
        agentid: Option<u64>,
    },
}

impl Sender {
    /// `official`, `miniprogram` or `wecom`, as in metrics and the webhook.
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::Official => "official",
            Sender::MiniProgram => "miniprogram",
            Sender::WeCom { .. } => "wecom",
        }
    }
}

/// Where an owner's pushes arrive and how they are answered: an `[[apps]]`
/// entry with a server `token`, or a `[[wecom]]` entry with callback settings.
#[derive(Debug)]
pub struct Inbox {
    /// The owner, as in the credentials: an appid, or `corpid/name`.
    pub owner: String,
    /// Who pushes.
    pub sender: Sender,
    /// The server token typed into WeChat's (or WeCom's) console.
    pub token: SecretString,
    /// How pushes are protected, with the AES key where one is used (WeCom: always safe).
    pub mode: PushMode,
    /// Business webhook for pushes no rule answers.
    pub webhook: Option<url::Url>,
    /// HMAC key for webhook requests.
    pub webhook_secret: Option<SecretString>,
    /// Reply rules, first match wins.
    pub rules: Vec<Rule>,
}
