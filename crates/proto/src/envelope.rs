//! The three push modes and the envelopes around pushes and replies
//! (protocol reference §1.4, §2.1, §3.1, §3.6–3.8).
//!
//! Both directions live here so the gateway (opening pushes, sealing replies)
//! and the simulator (sealing pushes, opening replies) share one implementation.

use crate::crypto::{DecryptError, MessageCrypto, RANDOM_LEN};
use crate::signature::{
    msg_signature, msg_signature_hex, signature, verify_msg_signature, verify_signature,
};
use crate::xml::{self, Element, XmlError, XmlWriter};

/// How an account's pushes are protected (消息加解密方式), with the key where one is used.
#[derive(Debug, Clone)]
pub enum PushMode {
    /// 明文: plain XML, only the query `signature`.
    Plain,
    /// 兼容: plain fields plus `Encrypt`; replies may be plain or encrypted.
    Compat(MessageCrypto),
    /// 安全: only `ToUserName` and `Encrypt`; replies must be encrypted.
    Safe(MessageCrypto),
}

impl PushMode {
    /// `plain`, `compat` or `safe`, as in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            PushMode::Plain => "plain",
            PushMode::Compat(_) => "compat",
            PushMode::Safe(_) => "safe",
        }
    }

    /// The message crypto of compatible and safe mode.
    pub fn crypto(&self) -> Option<&MessageCrypto> {
        match self {
            PushMode::Plain => None,
            PushMode::Compat(crypto) | PushMode::Safe(crypto) => Some(crypto),
        }
    }
}

/// The query parameters WeChat adds to every push.
///
/// Owned by default; a server reads them borrowed from the request's query
/// (`PushQuery<Cow<str>>`), as the functions reading one take any text
/// ([`QueryText`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PushQuery<S = String> {
    /// SHA-1 over token, timestamp and nonce.
    pub signature: S,
    /// Unix seconds as sent; signed verbatim.
    pub timestamp: S,
    /// Random decimal string.
    pub nonce: S,
    /// The sender's OpenID; not covered by any signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<S>,
    /// `aes` in compatible and safe mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_type: Option<S>,
    /// SHA-1 over token, timestamp, nonce and `Encrypt`, in compatible and safe mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_signature: Option<S>,
}

/// The text a [`PushQuery`]'s values may be: `String`, `&str`, `Cow<str>`…
pub trait QueryText: std::ops::Deref<Target = str> {}

impl<S: std::ops::Deref<Target = str>> QueryText for S {}

/// A push as WeChat would send it: its query and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPush {
    /// Query parameters to add to the server URL.
    pub query: PushQuery,
    /// The request body.
    pub body: String,
}

/// Why a push or a reply envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The query `signature` does not match the token (WXBizMsgCrypt -40001).
    #[error("signature does not match")]
    Signature,
    /// `msg_signature` does not match the body's `Encrypt` (-40001).
    #[error("msg_signature does not match")]
    MsgSignature,
    /// A required query parameter or envelope field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The push or reply is not protected the way the account's mode requires.
    #[error("expected a {expected} mode message, got a {got} one")]
    ModeMismatch {
        /// The configured mode.
        expected: &'static str,
        /// What arrived: `plain` or `encrypted`.
        got: &'static str,
    },
    /// The body is not acceptable XML.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// `Encrypt` could not be opened.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
}

/// Checks a push's signatures and returns its plaintext XML.
///
/// In compatible mode the decrypted copy is returned: the plain fields beside
/// `Encrypt` are not covered by `msg_signature` (§3.6).
pub fn open_push(
    mode: &PushMode,
    token: &str,
    query: &PushQuery<impl QueryText>,
    body: &str,
) -> Result<String, EnvelopeError> {
    verify_signature(token, &query.timestamp, &query.nonce, &query.signature)
        .map_err(|_| EnvelopeError::Signature)?;
    open_signed_push(mode, token, query, body)
}

/// [`open_push`] for a caller that has checked the query's `signature`
/// already (a server checks it before it reads the body): the mode, the
/// `msg_signature` and the decryption.
pub fn open_signed_push(
    mode: &PushMode,
    token: &str,
    query: &PushQuery<impl QueryText>,
    body: &str,
) -> Result<String, EnvelopeError> {
    let encrypted = query.encrypt_type.is_some() || query.msg_signature.is_some();
    let Some(crypto) = mode.crypto() else {
        if encrypted {
            return Err(mode_mismatch(mode, "encrypted"));
        }
        return Ok(body.to_owned());
    };
    if query.encrypt_type.as_deref() != Some("aes") {
        return Err(mode_mismatch(mode, "plain"));
    }
    open_encrypted(crypto, token, query, body)
}

/// The encrypted part of an envelope (`<Encrypt>` in the body XML): its
/// `msg_signature` checked, then decrypted. A push's and a platform's push's.
pub(crate) fn open_encrypted(
    crypto: &MessageCrypto,
    token: &str,
    query: &PushQuery<impl QueryText>,
    body: &str,
) -> Result<String, EnvelopeError> {
    let given = query
        .msg_signature
        .as_deref()
        .ok_or(EnvelopeError::Missing("msg_signature"))?;
    let encrypt =
        xml::root_child_text(body, "Encrypt")?.ok_or(EnvelopeError::Missing("Encrypt"))?;
    verify_msg_signature(token, &query.timestamp, &query.nonce, &encrypt, given)
        .map_err(|_| EnvelopeError::MsgSignature)?;
    Ok(crypto.decrypt(&encrypt)?)
}

/// Builds a push as WeChat sends it in `mode` (the simulator's side of [`open_push`]).
///
/// `xml` is the plaintext push; in safe mode its `ToUserName` is copied to the envelope.
pub fn seal_push(
    mode: &PushMode,
    token: &str,
    xml: &str,
    openid: Option<&str>,
    timestamp: &str,
    nonce: &str,
    random: &[u8; RANDOM_LEN],
) -> Result<SealedPush, XmlError> {
    let mut query = PushQuery {
        signature: signature(token, timestamp, nonce),
        timestamp: timestamp.to_owned(),
        nonce: nonce.to_owned(),
        openid: openid.map(str::to_owned),
        ..PushQuery::default()
    };
    let Some(crypto) = mode.crypto() else {
        return Ok(SealedPush {
            query,
            body: xml.to_owned(),
        });
    };
    let root = xml::parse(xml)?;
    let encrypt = crypto.encrypt(random, xml.as_bytes());
    query.encrypt_type = Some("aes".to_owned());
    query.msg_signature = Some(msg_signature(token, timestamp, nonce, &encrypt));
    let mut w = XmlWriter::new();
    match mode {
        PushMode::Safe(_) => {
            let to = root.child_text("ToUserName").unwrap_or_default();
            w.cdata("ToUserName", to);
        }
        _ => {
            for child in &root.children {
                w.element(child);
            }
        }
    }
    w.element(&Element::leaf("Encrypt", encrypt));
    Ok(SealedPush {
        query,
        body: w.finish(),
    })
}

/// The encrypted passive-reply envelope (§3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedReply {
    /// Base64 ciphertext of the reply XML.
    pub encrypt: String,
    /// SHA-1 over token, `timestamp`, `nonce` and `encrypt`.
    pub msg_signature: String,
    /// Unix seconds used in the signature.
    pub timestamp: String,
    /// Nonce used in the signature.
    pub nonce: String,
}

impl EncryptedReply {
    /// Encrypts and signs a reply.
    pub fn seal(
        crypto: &MessageCrypto,
        token: &str,
        reply_xml: &str,
        timestamp: &str,
        nonce: &str,
        random: &[u8; RANDOM_LEN],
    ) -> Self {
        let encrypt = crypto.encrypt(random, reply_xml.as_bytes());
        Self {
            msg_signature: msg_signature(token, timestamp, nonce, &encrypt),
            encrypt,
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
        }
    }

    /// The envelope in the layout of WeChat's samples and wechatpy.
    pub fn to_xml(&self) -> String {
        envelope_xml(
            &self.encrypt,
            &self.msg_signature,
            &self.timestamp,
            &self.nonce,
        )
    }

    /// Reads an envelope.
    pub fn parse(xml: &str) -> Result<Self, EnvelopeError> {
        let root = xml::parse(xml)?;
        let field = |name: &'static str| {
            root.child_text(name)
                .map(|t| t.trim().to_owned())
                .ok_or(EnvelopeError::Missing(name))
        };
        Ok(Self {
            encrypt: field("Encrypt")?,
            msg_signature: field("MsgSignature")?,
            timestamp: field("TimeStamp")?,
            nonce: field("Nonce")?,
        })
    }

    /// Checks the signature and decrypts the reply XML.
    pub fn open(&self, crypto: &MessageCrypto, token: &str) -> Result<String, EnvelopeError> {
        verify_msg_signature(
            token,
            &self.timestamp,
            &self.nonce,
            &self.encrypt,
            &self.msg_signature,
        )
        .map_err(|_| EnvelopeError::MsgSignature)?;
        Ok(crypto.decrypt(&self.encrypt)?)
    }
}

/// What the encrypted reply envelope starts with, up to the `Encrypt` text.
const ENVELOPE_OPEN: &str = "<xml>\n<Encrypt><![CDATA[";

/// The encrypted reply envelope, its pieces pushed into one allocation: no
/// formatting machinery.
fn envelope_xml(encrypt: &str, msg_signature: &str, timestamp: &str, nonce: &str) -> String {
    let mut xml = String::with_capacity(
        ENVELOPE_OPEN.len() + encrypt.len() + envelope_rest_len(msg_signature, timestamp, nonce),
    );
    xml.push_str(ENVELOPE_OPEN);
    xml.push_str(encrypt);
    finish_envelope(&mut xml, msg_signature, timestamp, nonce);
    xml
}

/// The envelope's pieces after the `Encrypt` text.
fn envelope_rest<'a>(msg_signature: &'a str, timestamp: &'a str, nonce: &'a str) -> [&'a str; 7] {
    [
        "]]></Encrypt>\n<MsgSignature><![CDATA[",
        msg_signature,
        "]]></MsgSignature>\n<TimeStamp>",
        timestamp,
        "</TimeStamp>\n<Nonce><![CDATA[",
        nonce,
        "]]></Nonce>\n</xml>",
    ]
}

fn envelope_rest_len(msg_signature: &str, timestamp: &str, nonce: &str) -> usize {
    envelope_rest(msg_signature, timestamp, nonce)
        .iter()
        .map(|piece| piece.len())
        .sum()
}

fn finish_envelope(xml: &mut String, msg_signature: &str, timestamp: &str, nonce: &str) {
    for piece in envelope_rest(msg_signature, timestamp, nonce) {
        xml.push_str(piece);
    }
}

/// Wraps a reply for the account's mode: plain XML in plain mode, the encrypted
/// envelope in compatible and safe mode.
pub fn seal_reply(
    mode: &PushMode,
    token: &str,
    reply_xml: &str,
    timestamp: &str,
    nonce: &str,
    random: &[u8; RANDOM_LEN],
) -> String {
    match mode.crypto() {
        None => reply_xml.to_owned(),
        // What `EncryptedReply::seal(…).to_xml()` writes, without its copies
        // of the timestamp, the nonce and the signature.
        // The ciphertext's base64 is written into the envelope itself.
        Some(crypto) => {
            const SIGNATURE: &str = "0123456789012345678901234567890123456789";
            let mut xml = String::with_capacity(
                ENVELOPE_OPEN.len()
                    + crypto.encrypted_len(reply_xml.len())
                    + envelope_rest_len(SIGNATURE, timestamp, nonce),
            );
            xml.push_str(ENVELOPE_OPEN);
            crypto.encrypt_into(random, reply_xml.as_bytes(), &mut xml);
            let mut signature = [0u8; 40];
            let signature = msg_signature_hex(
                token,
                timestamp,
                nonce,
                &xml[ENVELOPE_OPEN.len()..],
                &mut signature,
            );
            finish_envelope(&mut xml, signature, timestamp, nonce);
            xml
        }
    }
}

/// Reads a push response as WeChat does (the simulator's side of [`seal_reply`]):
/// `None` for `success` or an empty body, else the reply XML, decrypted and its
/// signature checked. Compatible mode accepts plain replies too; safe mode does not.
pub fn open_reply(
    mode: &PushMode,
    token: &str,
    body: &str,
) -> Result<Option<String>, EnvelopeError> {
    if crate::reply::is_no_reply(body) {
        return Ok(None);
    }
    let Some(crypto) = mode.crypto() else {
        return Ok(Some(body.to_owned()));
    };
    let root = xml::parse(body)?;
    if root.child("Encrypt").is_none() {
        return match mode {
            PushMode::Safe(_) => Err(mode_mismatch(mode, "plain")),
            _ => Ok(Some(body.to_owned())),
        };
    }
    EncryptedReply::parse(body)?.open(crypto, token).map(Some)
}

fn mode_mismatch(mode: &PushMode, got: &'static str) -> EnvelopeError {
    EnvelopeError::ModeMismatch {
        expected: mode.name(),
        got,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AesKey;

    #[test]
    fn a_sealed_reply_is_the_encrypted_reply_envelope() {
        let key = AesKey::try_new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        let crypto = MessageCrypto::new(key, "wx0123456789abcdef");
        for reply in ["", "<xml><Content><![CDATA[你好]]></Content></xml>"] {
            let expected =
                EncryptedReply::seal(&crypto, "tok", reply, "1700000000", "42", &[3; 16]).to_xml();
            for mode in [
                PushMode::Safe(crypto.clone()),
                PushMode::Compat(crypto.clone()),
            ] {
                let sealed = seal_reply(&mode, "tok", reply, "1700000000", "42", &[3; 16]);
                assert_eq!(sealed, expected);
                assert_eq!(
                    open_reply(&mode, "tok", &sealed).unwrap().as_deref(),
                    Some(reply)
                );
            }
        }
    }
}
