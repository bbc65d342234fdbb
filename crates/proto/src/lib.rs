//! The WeChat Official Account protocol, with no I/O.
//!
//! Everything here is a pure function of its inputs: bytes, a timestamp, a nonce
//! and, for encryption, 16 random bytes chosen by the caller. The gateway and the
//! simulator put I/O, clocks and randomness around it. The protocol facts are in
//! `shared/docs/wechat-protocol.md`; section numbers in the docs below refer to it.
//!
//! # Layout
//! - [`signature`]: `signature` and `msg_signature` (SHA-1 over sorted parts).
//! - [`crypto`]: WXBizMsgCrypt-compatible AES-256-CBC message encryption.
//! - [`xml`]: the bounded XML reader (no DTD, no entity expansion).
//! - [`message`]: typed pushes ([`Push`], [`PushKind`], [`Event`]) and their dedupe key.
//! - [`reply`]: passive replies ([`Reply`], [`ReplyBody`]).
//! - `json`: a push as flat JSON (`Serialize`), replies from `{"type": …}` JSON (`Deserialize`).
//! - [`envelope`]: the three push modes, opening/sealing pushes and replies.
//! - [`callback`]: WeCom callbacks (encrypted `echostr`, `msg_signature` only) and JSON envelopes.
//! - [`component`]: the Open Platform (第三方平台): component pushes (verify ticket,
//!   authorization events), its API bodies, the authorization page URL and the release test's answers.
//! - [`jssdk`]: the JS-SDK `wx.config` signature.
//! - [`api`]: the path roots of WeChat's APIs.
//! - [`errcode`]: WeChat's errcodes and their usual errmsg, shared by the gateway and the simulator.
//! - [`errmsg`]: reading `errmsg` texts (the IP of a 40164, of a WeCom 60020).
//!
//! # Example
//! ```
//! use wxgate_proto::{open_push, seal_push, AesKey, MessageCrypto, Push, PushKind, PushMode};
//!
//! let key = AesKey::try_new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
//! let mode = PushMode::Safe(MessageCrypto::new(key, "wx0123456789abcdef"));
//! let xml = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
//!            <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
//!            <Content><![CDATA[你好]]></Content><MsgId>1</MsgId></xml>";
//! let sealed = seal_push(&mode, "token", xml, Some("o1"), "1700000000", "42", &[7; 16]).unwrap();
//! let opened = open_push(&mode, "token", &sealed.query, &sealed.body).unwrap();
//! let push = Push::parse(&opened).unwrap();
//! assert!(matches!(push.kind, PushKind::Text { ref content, .. } if content == "你好"));
//! assert_eq!(push.dedupe_key(), "m:1");
//! ```

pub mod api;
pub mod callback;
pub mod component;
pub mod crypto;
pub mod envelope;
pub mod errcode;
pub mod errmsg;
mod fields;
mod json;
pub mod jssdk;
pub mod message;
pub mod reply;
pub mod signature;
pub mod xml;

pub use callback::{
    body_format, open_callback, open_echostr, open_json_push, open_signed_json_push,
    push_from_json, push_json_from_xml, seal_callback, seal_echostr, seal_json_push, BodyFormat,
    CallbackError, CallbackQuery, CallbackShape, JsonEnvelope, SealedCallback,
};
pub use component::{
    open_component_push, seal_component_push, Authorization, ComponentInfo, ComponentPush,
};
pub use crypto::{AesKey, DecryptError, KeyError, MessageCrypto};
pub use envelope::{
    open_push, open_reply, open_signed_push, seal_push, seal_reply, EncryptedReply, EnvelopeError,
    PushMode, PushQuery, QueryText, SealedPush,
};
pub use errmsg::{component_request_ip, wecom_from_ip, whitelist_ip};
pub use jssdk::jssdk_signature;
pub use message::{Event, Push, PushKind};
pub use reply::{Article, Reply, ReplyBody};
pub use signature::{
    msg_signature, signature, timestamp_is_fresh, verify_msg_signature, verify_signature,
};
pub use xml::{Element, XmlError};

/// Why a push or reply could not be read as a typed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not acceptable XML.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// A required field is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field has a value of the wrong shape (a non-numeric `CreateTime`…).
    #[error("invalid {field}: {value:?}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// The first characters of the value.
        value: String,
    },
    /// A reply whose `MsgType` WeChat does not accept.
    #[error("unknown reply type {0:?}")]
    UnknownReplyType(String),
}
