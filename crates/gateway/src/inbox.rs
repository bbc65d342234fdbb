//! Where an owner's pushes arrive and who sends them: [`Inbox`], built by the configuration (`config::pushes`) and used by the
//! push dispatcher ([`crate::message`], which re-exports them) and the
//! endpoints WeChat and WeCom call (`http::wechat`).
//!
//! A leaf of its own, not a file of `message`: the configuration builds
//! inboxes, and `message` depends on the token center, which depends on the
//! configuration, so `config` naming `message` would close a cycle.

use secrecy::SecretString;
use wxgate_proto::PushMode;

use crate::family::Family;
use crate::rules::Rule;

/// Where an owner's pushes arrive and how they are answered: an `[[apps]]`
/// entry with a server `token`, or a `[[wecom]]` entry with callback settings.
#[derive(Debug)]
pub struct Inbox {
    /// The owner, as in the credentials: an appid, or `corpid/name`.
    pub owner: String,
    /// Who pushes: the owner's family (its envelope, the replies it can
    /// deliver, how a late reply goes out).
    pub family: &'static Family,
    /// The app's AgentId, for a family whose late replies name it (WeCom;
    /// `None` for a special secret: no late replies).
    pub agentid: Option<u64>,
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
