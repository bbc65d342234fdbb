//! The push settings `[[apps]]` and `[[wecom]]` entries share: the server
//! token, the EncodingAESKey and the mode it protects pushes in, during a
//! rotation the token and key they replaced (`token_previous`,
//! `encoding_aes_key_previous`), the webhook and its secret, and the reply
//! rules; from them, the entry's [`Inbox`].

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::SecretString;
use wxgate_proto::{AesKey, MessageCrypto, PushMode};

use super::secrets::secret;
use super::Problems;
use crate::family::{Family, PassiveReplies, COMPONENT, WECOM};
use crate::inbox::{Inbox, Previous};
use crate::rules::Rule;

/// The [`RawPushes`] of a raw `[[apps]]` or `[[wecom]]` entry (the same field names in both).
macro_rules! raw_pushes {
    ($raw:ident) => {
        $crate::config::pushes::RawPushes {
            token: [$raw.token, $raw.token_env, $raw.token_file],
            encoding_aes_key: [
                $raw.encoding_aes_key,
                $raw.encoding_aes_key_env,
                $raw.encoding_aes_key_file,
            ],
            token_previous: [
                $raw.token_previous,
                $raw.token_previous_env,
                $raw.token_previous_file,
            ],
            encoding_aes_key_previous: [
                $raw.encoding_aes_key_previous,
                $raw.encoding_aes_key_previous_env,
                $raw.encoding_aes_key_previous_file,
            ],
            webhook: $raw.webhook,
            webhook_secret: [
                $raw.webhook_secret,
                $raw.webhook_secret_env,
                $raw.webhook_secret_file,
            ],
            rules: $raw.rules,
        }
    };
}
pub(super) use raw_pushes;

/// The push settings `[[apps]]` and `[[wecom]]` share, as written; each
/// secret as its value, `_env` and `_file` forms.
pub(super) struct RawPushes {
    pub(super) token: [Option<String>; 3],
    pub(super) encoding_aes_key: [Option<String>; 3],
    pub(super) token_previous: [Option<String>; 3],
    pub(super) encoding_aes_key_previous: [Option<String>; 3],
    pub(super) webhook: Option<String>,
    pub(super) webhook_secret: [Option<String>; 3],
    pub(super) rules: Vec<toml::Table>,
}

/// The push settings, checked. Without a server token no push is taken, so
/// neither a webhook nor rules may be set: nothing would ever reach them.
pub(super) struct Pushes {
    token: Option<SecretString>,
    key: Option<AesKey>,
    /// During a rotation: the token and key before the current ones.
    token_previous: Option<SecretString>,
    key_previous: Option<AesKey>,
    webhook: Option<url::Url>,
    webhook_secret: Option<SecretString>,
    rules: Vec<Rule>,
}

/// Checks the push settings of the entry at `at` (`apps[0]`, `wecom[1]`).
pub(super) fn check_pushes(
    raw: RawPushes,
    at: &str,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Pushes {
    let field = |name: &str| format!("{at}.{name}");
    let token_given = raw.token.iter().any(Option::is_some);
    let [inline, var, file] = raw.token;
    let token = secret(p, env, &field("token"), inline, var, file);
    let key_given = raw.encoding_aes_key.iter().any(Option::is_some);
    let mut aes_key = |name: &str, [inline, var, file]: [Option<String>; 3]| {
        secret(p, env, &field(name), inline, var, file).and_then(|k| {
            use secrecy::ExposeSecret;
            AesKey::try_new(k.expose_secret())
                .map_err(|e| p.add(field(name), e.to_string()))
                .ok()
        })
    };
    let key = aes_key("encoding_aes_key", raw.encoding_aes_key);
    let key_previous = aes_key("encoding_aes_key_previous", raw.encoding_aes_key_previous);
    let [inline, var, file] = raw.token_previous;
    let token_previous = secret(p, env, &field("token_previous"), inline, var, file);
    // A previous one is what the current one replaced: alone it is a
    // half-done rotation (the new one never set).
    if token_previous.is_some() && !token_given {
        p.add(
            field("token_previous"),
            "the token before the current one: set token to the new one beside it",
        );
    }
    if key_previous.is_some() && !key_given {
        p.add(
            field("encoding_aes_key_previous"),
            "the EncodingAESKey before the current one: set encoding_aes_key to the new one beside it",
        );
    }
    let webhook = raw
        .webhook
        .as_deref()
        .and_then(|w| match url::Url::parse(w) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                p.add(field("webhook"), format!("{w:?} is not an http(s) URL"));
                None
            }
        });
    let [inline, var, file] = raw.webhook_secret;
    let webhook_secret = secret(p, env, &field("webhook_secret"), inline, var, file);
    if webhook.is_some() && webhook_secret.is_none() {
        p.add(
            field("webhook_secret"),
            "a webhook needs a secret to sign its requests with (webhook_secret_env = \"…\")",
        );
    }
    let rules = raw
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, table)| {
            Rule::compile(table)
                .map_err(|e| p.add(format!("{at}.rules[{i}]"), e))
                .ok()
        })
        .collect::<Vec<_>>();
    if token.is_none() && (webhook.is_some() || !rules.is_empty()) {
        p.add(
            field("token"),
            "rules and a webhook answer pushes: set the server token pushes are signed with",
        );
    }
    Pushes {
        token,
        key,
        token_previous,
        key_previous,
        webhook,
        webhook_secret,
        rules,
    }
}

impl Pushes {
    /// An `[[apps]]` entry's inbox, when it has a server token: pushes protected as
    /// `mode` says (the AES key's receiveid is the appid), the rules' replies
    /// checked against what `family` can deliver.
    pub(super) fn app_inbox(
        mut self,
        mode: Option<&str>,
        appid: Option<&str>,
        family: &'static Family,
        at: &str,
        p: &mut Problems,
    ) -> Option<Arc<Inbox>> {
        let field = |name: &str| format!("{at}.{name}");
        // The mode: plain without a key, safe with one, unless `mode` says otherwise.
        let mode = mode.unwrap_or(if self.key.is_some() { "safe" } else { "plain" });
        let crypto = |key: Option<AesKey>, p: &mut Problems| match (key, appid) {
            (Some(key), Some(appid)) => Some(MessageCrypto::new(key, appid)),
            (None, _) => {
                p.add(
                    field("encoding_aes_key"),
                    format!("{mode} mode needs the 43-character EncodingAESKey"),
                );
                None
            }
            _ => None,
        };
        let mode = match mode {
            "plain" => Some(PushMode::Plain),
            "compat" => crypto(self.key.take(), p).map(PushMode::Compat),
            "safe" => crypto(self.key.take(), p).map(PushMode::Safe),
            other => {
                p.add(
                    field("mode"),
                    format!("{other:?}: use plain, compat or safe"),
                );
                None
            }
        };
        check_replies(&self.rules, family, at, p);
        match (mode, appid) {
            (Some(mode), Some(appid)) => {
                // The previous key, in the same mode (plain mode has no key).
                let previous = self.key_previous.take().and_then(|key| match mode {
                    PushMode::Plain => None,
                    PushMode::Compat(_) => Some(PushMode::Compat(MessageCrypto::new(key, appid))),
                    PushMode::Safe(_) => Some(PushMode::Safe(MessageCrypto::new(key, appid))),
                });
                self.inbox(appid.to_owned(), family, None, mode, previous)
            }
            _ => None,
        }
    }

    /// A `[[wecom]]` entry's inbox, when it has a server token. WeCom always
    /// encrypts (§1.5): a token needs its key, and the key's receiveid is the
    /// corpid; the rules' replies are checked against what WeCom can deliver.
    pub(super) fn wecom_inbox(
        mut self,
        corpid: Option<&str>,
        name: Option<&str>,
        agentid: Option<u64>,
        at: &str,
        p: &mut Problems,
    ) -> Option<Arc<Inbox>> {
        let field = |setting: &str| format!("{at}.{setting}");
        check_replies(&self.rules, &WECOM, at, p);
        match (self.token.is_some(), self.key.take(), corpid, name) {
            (true, Some(key), Some(corpid), Some(name)) => {
                let mode = PushMode::Safe(MessageCrypto::new(key, corpid));
                let previous = (self.key_previous.take())
                    .map(|key| PushMode::Safe(MessageCrypto::new(key, corpid)));
                self.inbox(format!("{corpid}/{name}"), &WECOM, agentid, mode, previous)
            }
            (true, None, _, _) => {
                p.add(
                    field("encoding_aes_key"),
                    "WeCom callbacks are always encrypted: set the 43-character EncodingAESKey \
                     beside the token",
                );
                None
            }
            (false, Some(_), _, _) => {
                p.add(
                    field("token"),
                    "callbacks need the Token typed into WeCom's console beside the EncodingAESKey",
                );
                None
            }
            _ => None,
        }
    }

    /// A `[[components]]` entry's push settings: always encrypted (a token
    /// needs its key), the receiveid the component appid; they make the
    /// inbox of each of its authorizers ([`Inbox::for_owner`]), so the
    /// rules' replies are checked as an Official Account's.
    pub(super) fn component_inbox(
        mut self,
        component_appid: Option<&str>,
        at: &str,
        p: &mut Problems,
    ) -> Option<Arc<Inbox>> {
        let field = |setting: &str| format!("{at}.{setting}");
        check_replies(&self.rules, &COMPONENT, at, p);
        if self.token.is_none() {
            p.add(
                field("token"),
                "missing (the message verification Token typed when creating the platform)",
            );
        }
        let Some(key) = self.key.take() else {
            p.add(
                field("encoding_aes_key"),
                "missing (the platform's 43-character message decryption key: its pushes are always encrypted)",
            );
            return None;
        };
        let appid = component_appid?;
        let mode = PushMode::Safe(MessageCrypto::new(key, appid));
        let previous =
            (self.key_previous.take()).map(|key| PushMode::Safe(MessageCrypto::new(key, appid)));
        self.inbox(appid.to_owned(), &COMPONENT, None, mode, previous)
    }

    /// The inbox these settings make for `owner`, pushes protected as `mode`
    /// says (and, during a key rotation, as `previous_mode` says with the
    /// previous key); none without a server token.
    fn inbox(
        self,
        owner: String,
        family: &'static Family,
        agentid: Option<u64>,
        mode: PushMode,
        previous_mode: Option<PushMode>,
    ) -> Option<Arc<Inbox>> {
        let previous = match (self.token_previous, previous_mode) {
            (None, None) => None,
            (token, mode) => Some(Previous { token, mode }),
        };
        Some(Arc::new(Inbox {
            owner,
            family,
            agentid,
            token: self.token?,
            mode,
            previous,
            webhook: self.webhook,
            webhook_secret: self.webhook_secret,
            rules: self.rules,
        }))
    }
}

/// Refuses rule replies the family cannot deliver: WeCom has no transfer to
/// customer service; a Mini Program's replies other than the transfer go out
/// as customer-service messages, which carry text and images only (of the
/// reply types).
fn check_replies(rules: &[Rule], family: &Family, at: &str, p: &mut Problems) {
    use wxgate_proto::ReplyBody;
    for rule in rules {
        let refused = match (family.passive_replies, &rule.reply) {
            (PassiveReplies::NoTransfer, ReplyBody::TransferCustomerService { .. }) => {
                Some("WeCom has no transfer_customer_service reply")
            }
            (
                PassiveReplies::TransferOnly,
                ReplyBody::Voice { .. }
                | ReplyBody::Video { .. }
                | ReplyBody::Music { .. }
                | ReplyBody::News { .. },
            ) => Some(
                "a Mini Program answers with transfer_customer_service, or text and images \
                 sent as customer-service messages",
            ),
            _ => None,
        };
        if let Some(why) = refused {
            p.add(
                format!("{at}.rules"),
                format!("a {} reply: {why}", rule.reply.msg_type()),
            );
        }
    }
}
