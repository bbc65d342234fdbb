//! The Open Platform third-party platform (第三方平台, "component"; families
//! reference §3): the pushes WeChat POSTs to the platform's 授权事件接收URL
//! (`/component/{component_appid}` in wxgate) and their envelope.
//!
//! The envelope is safe mode's with one difference: the outer XML names the
//! platform in `<AppId>`, not `<ToUserName>` (§3.1), and it is always
//! encrypted, with the component appid as receiveid and the platform's own
//! token and key. Inside, `InfoType` says what happened: a new
//! `component_verify_ticket` every 10 minutes, or an account that
//! `authorized`, `updateauthorized` or `unauthorized` the platform (§3.7).
//!
//! # Layout
//! - this file: [`ComponentPush`], [`ComponentInfo`], [`open_component_push`],
//!   [`seal_component_push`];
//! - [`api`]: the JSON answers of the `/cgi-bin/component/…` APIs;
//! - [`authorize`]: the authorization page URL;
//! - [`release_check`]: the answers WeChat's automated release test (全网发布) expects.

pub mod api;
pub mod authorize;
pub mod release_check;

use crate::crypto::{MessageCrypto, RANDOM_LEN};
use crate::envelope::{EnvelopeError, PushQuery, QueryText, SealedPush};
use crate::fields::Fields;
use crate::signature::{msg_signature, signature, verify_signature};
use crate::xml::{self, Element, XmlWriter};
use crate::MessageError;

/// WeChat pushes a new ticket every 10 minutes (§3.1).
pub const TICKET_PUSH_INTERVAL_SECS: u64 = 600;
/// A ticket is valid 12 hours from its push (§3.1).
pub const TICKET_LIFETIME_SECS: u64 = 43_200;
/// No push for this long (two missed pushes): ask for one with
/// `api_start_push_ticket` (DESIGN "Credential families": 20 min; §7.5).
pub const TICKET_PUSH_OVERDUE_SECS: u64 = 1200;
/// How long a superseded component token, or a rotated refresh token, keeps
/// working (§3.2, §3.5).
pub const SUPERSEDED_GRACE_SECS: u64 = 300;

/// Whether a ticket pushed at `pushed_at` (its `CreateTime`) is still valid at `now`.
pub fn ticket_is_valid(pushed_at: u64, now: u64) -> bool {
    now < pushed_at.saturating_add(TICKET_LIFETIME_SECS)
}

/// Whether the ticket pushes are overdue at `now`: none ever arrived, or the
/// last one (at `last_push_at`) is [`TICKET_PUSH_OVERDUE_SECS`] old.
pub fn ticket_push_overdue(last_push_at: Option<u64>, now: u64) -> bool {
    last_push_at.is_none_or(|at| now >= at.saturating_add(TICKET_PUSH_OVERDUE_SECS))
}

/// One push to the platform's authorization-event URL (§3.1, §3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentPush {
    /// The platform's component appid (`AppId`, inside the encryption).
    pub component_appid: String,
    /// When WeChat made the push, Unix seconds.
    pub create_time: u64,
    /// What happened.
    pub info: ComponentInfo,
}

/// The `InfoType` of a component push and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentInfo {
    /// `component_verify_ticket`: the ticket `api_component_token` needs, valid
    /// 12 hours; a new one comes every 10 minutes (§3.1).
    VerifyTicket {
        /// `ComponentVerifyTicket` (real ones start with `ticket@@@`).
        ticket: String,
    },
    /// `authorized`: an account authorized the platform.
    Authorized(Authorization),
    /// `updateauthorized`: an account changed the permissions it grants.
    UpdateAuthorized(Authorization),
    /// `unauthorized`: an account withdrew its authorization; its tokens stop working.
    Unauthorized {
        /// The account's appid (`AuthorizerAppid`).
        authorizer_appid: String,
    },
    /// Any other `InfoType` (`notify_third_fasteregister`…), every field kept.
    Unknown {
        /// The `InfoType` as sent.
        info_type: String,
        /// Every field but `AppId`, `CreateTime` and `InfoType`, in document order.
        fields: Vec<Element>,
    },
}

/// The fields of an `authorized` or `updateauthorized` push (§3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The account's appid (`AuthorizerAppid`).
    pub authorizer_appid: String,
    /// The authorization code to exchange with `api_query_auth` (`AuthorizationCode`).
    pub authorization_code: String,
    /// `AuthorizationCodeExpiredTime`: when the code expires. The documentation
    /// says "过期时间, 单位秒" without saying whether it is a Unix time or a
    /// duration; the simulator sends a Unix time. Kept as sent.
    pub authorization_code_expired_time: u64,
    /// The pre-authorization code the page was opened with (`PreAuthCode`; may be empty).
    pub pre_auth_code: String,
}

impl ComponentInfo {
    /// The `InfoType` value.
    pub fn info_type(&self) -> &str {
        match self {
            ComponentInfo::VerifyTicket { .. } => "component_verify_ticket",
            ComponentInfo::Authorized(_) => "authorized",
            ComponentInfo::UpdateAuthorized(_) => "updateauthorized",
            ComponentInfo::Unauthorized { .. } => "unauthorized",
            ComponentInfo::Unknown { info_type, .. } => info_type,
        }
    }

    /// The account concerned, for the authorization events.
    pub fn authorizer_appid(&self) -> Option<&str> {
        match self {
            ComponentInfo::Authorized(a) | ComponentInfo::UpdateAuthorized(a) => {
                Some(&a.authorizer_appid)
            }
            ComponentInfo::Unauthorized { authorizer_appid } => Some(authorizer_appid),
            _ => None,
        }
    }
}

impl ComponentPush {
    /// Reads a decrypted component push. An XML declaration before `<xml>` is
    /// accepted (the `component-unauthorized` vector has one); an unknown
    /// `InfoType`, or a known one missing a field, is kept as
    /// [`ComponentInfo::Unknown`]. Only a push without `AppId`, `CreateTime` or
    /// `InfoType` is an error.
    pub fn parse(xml: &str) -> Result<Self, MessageError> {
        let root = xml::parse(xml)?;
        let mut fields = Fields::new(&root.children);
        let component_appid = fields.required("AppId")?;
        let create_time = fields.required_number("CreateTime")?;
        let info_type = fields.required("InfoType")?;
        let checkpoint = fields.checkpoint();
        let info = match Self::typed(&info_type, &mut fields) {
            Some(info) => info,
            None => {
                fields.rollback(checkpoint);
                ComponentInfo::Unknown {
                    info_type,
                    fields: fields.rest(),
                }
            }
        };
        Ok(Self {
            component_appid,
            create_time,
            info,
        })
    }

    fn typed(info_type: &str, f: &mut Fields<'_>) -> Option<ComponentInfo> {
        let authorization = |f: &mut Fields<'_>| {
            Some(Authorization {
                authorizer_appid: f.text("AuthorizerAppid")?,
                authorization_code: f.text("AuthorizationCode")?,
                authorization_code_expired_time: f.number("AuthorizationCodeExpiredTime")?,
                pre_auth_code: f.text("PreAuthCode").unwrap_or_default(),
            })
        };
        Some(match info_type {
            "component_verify_ticket" => ComponentInfo::VerifyTicket {
                ticket: f.text("ComponentVerifyTicket")?,
            },
            "authorized" => ComponentInfo::Authorized(authorization(f)?),
            "updateauthorized" => ComponentInfo::UpdateAuthorized(authorization(f)?),
            "unauthorized" => ComponentInfo::Unauthorized {
                authorizer_appid: f.text("AuthorizerAppid")?,
            },
            _ => return None,
        })
    }

    /// The plaintext XML, in the layout of WeChat's documentation.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.cdata("AppId", &self.component_appid)
            .number("CreateTime", self.create_time)
            .cdata("InfoType", self.info.info_type());
        match &self.info {
            ComponentInfo::VerifyTicket { ticket } => {
                w.cdata("ComponentVerifyTicket", ticket);
            }
            ComponentInfo::Authorized(a) | ComponentInfo::UpdateAuthorized(a) => {
                w.cdata("AuthorizerAppid", &a.authorizer_appid)
                    .cdata("AuthorizationCode", &a.authorization_code)
                    .number(
                        "AuthorizationCodeExpiredTime",
                        a.authorization_code_expired_time,
                    )
                    .cdata("PreAuthCode", &a.pre_auth_code);
            }
            ComponentInfo::Unauthorized { authorizer_appid } => {
                w.cdata("AuthorizerAppid", authorizer_appid);
            }
            ComponentInfo::Unknown { fields, .. } => {
                for field in fields {
                    w.element(field);
                }
            }
        }
        w.finish()
    }
}

/// Checks a component push's `signature` and `msg_signature` and returns its
/// decrypted plaintext (the receiveid must be `crypto`'s component appid).
///
/// Component pushes are always encrypted: a query without `msg_signature` is
/// refused. The outer `<AppId>` is not read: the one inside the encryption is
/// authoritative (two platforms sharing a URL must not mix up their tickets, §7.6).
pub fn open_component_push(
    crypto: &MessageCrypto,
    token: &str,
    query: &PushQuery<impl QueryText>,
    body: &str,
) -> Result<String, EnvelopeError> {
    verify_signature(token, &query.timestamp, &query.nonce, &query.signature)
        .map_err(|_| EnvelopeError::Signature)?;
    crate::envelope::open_encrypted(crypto, token, query, body)
}

/// A component push as WeChat sends it (the simulator's side of
/// [`open_component_push`]): `plaintext` encrypted for the component, in
/// `<xml><AppId/><Encrypt/></xml>`, with `signature`, `timestamp`, `nonce`,
/// `encrypt_type=aes` and `msg_signature` in the query.
pub fn seal_component_push(
    crypto: &MessageCrypto,
    token: &str,
    plaintext: &str,
    timestamp: &str,
    nonce: &str,
    random: &[u8; RANDOM_LEN],
) -> SealedPush {
    let encrypt = crypto.encrypt(random, plaintext.as_bytes());
    let query = PushQuery {
        signature: signature(token, timestamp, nonce),
        timestamp: timestamp.to_owned(),
        nonce: nonce.to_owned(),
        openid: None,
        encrypt_type: Some("aes".to_owned()),
        msg_signature: Some(msg_signature(token, timestamp, nonce, &encrypt)),
    };
    let mut w = XmlWriter::new();
    w.cdata("AppId", crypto.appid());
    w.element(&Element::leaf("Encrypt", encrypt));
    SealedPush {
        query,
        body: w.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_last_12_hours_and_pushes_are_overdue_after_20_minutes() {
        assert!(ticket_is_valid(1000, 1000 + 43_199));
        assert!(!ticket_is_valid(1000, 1000 + 43_200));
        assert!(ticket_push_overdue(None, 0));
        assert!(!ticket_push_overdue(Some(1000), 1000 + 1199));
        assert!(ticket_push_overdue(Some(1000), 1000 + 1200));
    }

    #[test]
    fn authorized_push_round_trips() {
        let push = ComponentPush {
            component_appid: "wxc0".into(),
            create_time: 1_700_000_000,
            info: ComponentInfo::Authorized(Authorization {
                authorizer_appid: "wxa1".into(),
                authorization_code: "queryauthcode@@@x".into(),
                authorization_code_expired_time: 1_700_000_600,
                pre_auth_code: "preauthcode@@@y".into(),
            }),
        };
        assert_eq!(ComponentPush::parse(&push.to_xml()).unwrap(), push);
        assert_eq!(push.info.authorizer_appid(), Some("wxa1"));
    }

    #[test]
    fn unknown_info_types_and_incomplete_known_ones_are_kept() {
        let xml = "<xml><AppId>wxc0</AppId><CreateTime>1</CreateTime>\
                   <InfoType>notify_third_fasteregister</InfoType><status>0</status>\
                   <auth_code>abc</auth_code></xml>";
        let push = ComponentPush::parse(xml).unwrap();
        let ComponentInfo::Unknown { info_type, fields } = &push.info else {
            panic!("{push:?}")
        };
        assert_eq!(info_type, "notify_third_fasteregister");
        assert_eq!(fields.len(), 2);
        assert_eq!(ComponentPush::parse(&push.to_xml()).unwrap(), push);
        // `authorized` without its code is not an authorization to act on.
        let partial = "<xml><AppId>wxc0</AppId><CreateTime>1</CreateTime>\
                       <InfoType>authorized</InfoType><AuthorizerAppid>wxa</AuthorizerAppid></xml>";
        let push = ComponentPush::parse(partial).unwrap();
        assert!(
            matches!(push.info, ComponentInfo::Unknown { ref fields, .. } if fields.len() == 1)
        );
        assert_eq!(
            ComponentPush::parse("<xml><AppId>wxc0</AppId><CreateTime>1</CreateTime></xml>"),
            Err(MessageError::Missing("InfoType"))
        );
    }
}
