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
#[derive(Debug, Clone)]
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
    /// The token and key used before the current ones, during a rotation
    /// (`token_previous`, `encoding_aes_key_previous`): tried only once the
    /// current ones failed.
    pub previous: Option<Previous>,
    /// Business webhook for pushes no rule answers.
    pub webhook: Option<url::Url>,
    /// HMAC key for webhook requests.
    pub webhook_secret: Option<SecretString>,
    /// Reply rules, first match wins.
    pub rules: Vec<Rule>,
}

/// The server token and EncodingAESKey an inbox used before the current
/// ones: pushes sealed before the change in the console still arrive (and
/// WeChat retries them), so they are opened, and answered, with these.
#[derive(Debug, Clone)]
pub struct Previous {
    /// The previous token, when the token changed.
    pub token: Option<SecretString>,
    /// The inbox's mode with the previous key, when the key changed.
    pub mode: Option<PushMode>,
}

/// Which of an inbox's tokens and keys opened a push: its reply is signed
/// with that token and sealed with that key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keys {
    /// Signed with the previous token.
    pub previous_token: bool,
    /// Encrypted with the previous key.
    pub previous_key: bool,
}

impl Keys {
    /// Whether a previous token or key was needed.
    pub fn any_previous(self) -> bool {
        self.previous_token || self.previous_key
    }
}

impl Inbox {
    /// The same settings for another owner: an Open Platform authorizer's
    /// pushes are opened with its platform's token and key and answered by
    /// its platform's rules and webhook.
    pub fn for_owner(&self, owner: &str, family: &'static Family) -> Self {
        let mut inbox = self.clone();
        inbox.owner = owner.to_owned();
        inbox.family = family;
        inbox
    }

    /// The previous token, if one is configured.
    pub fn previous_token(&self) -> Option<&SecretString> {
        self.previous.as_ref()?.token.as_ref()
    }

    /// The mode with the previous key, if one is configured.
    pub fn previous_mode(&self) -> Option<&PushMode> {
        self.previous.as_ref()?.mode.as_ref()
    }

    /// The token `keys` names (the current one unless a previous one is named and configured).
    pub fn token(&self, keys: Keys) -> &str {
        use secrecy::ExposeSecret;
        let previous = keys.previous_token.then(|| self.previous_token()).flatten();
        previous.unwrap_or(&self.token).expose_secret()
    }

    /// The mode with the key `keys` names (the current one unless a previous one is named and configured).
    pub fn mode(&self, keys: Keys) -> &PushMode {
        let previous = keys.previous_key.then(|| self.previous_mode()).flatten();
        previous.unwrap_or(&self.mode)
    }
}
