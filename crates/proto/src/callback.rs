//! Callback envelopes beyond the Official Account XML push (families reference
//! §1.5, §2): WeCom's callbacks, which are always encrypted and carry only
//! `msg_signature` (its URL check has an *encrypted* `echostr`, covered by the
//! signature), and JSON bodies `{"ToUserName","Encrypt"[,"AgentID"]}` as Mini
//! Programs (JSON data format) and WeCom's JSON callbacks send them.
//!
//! The crypto is the WXBizMsgCrypt layout of [`crate::crypto`]; the receiveid
//! bound into a WeCom message is the CorpID for a self-built app, so a
//! [`MessageCrypto`] is built with the corpid where an OA one has the appid.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::crypto::{MessageCrypto, RANDOM_LEN};
use crate::envelope::{EnvelopeError, PushMode, PushQuery, QueryText};
use crate::message::Push;
use crate::signature::{msg_signature, signature, verify_msg_signature};
use crate::xml::{self, Element, XmlWriter};

/// The query of a WeCom callback: `msg_signature`, `timestamp`, `nonce`, and on
/// the URL check the encrypted `echostr`. There is no `signature` parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallbackQuery {
    /// SHA-1 over token, timestamp, nonce and the ciphertext (`echostr` or `Encrypt`).
    pub msg_signature: String,
    /// Unix seconds as sent; signed verbatim.
    pub timestamp: String,
    /// Random decimal string.
    pub nonce: String,
    /// The URL check's encrypted echo (base64), already URL-decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echostr: Option<String>,
}

/// The body format of a push (Mini Programs and WeCom may choose JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `<xml>…</xml>`.
    #[default]
    Xml,
    /// A JSON object.
    Json,
}

/// The encrypted JSON envelope: `{"ToUserName":"…","Encrypt":"…"}`, with
/// `"AgentID":218` in WeCom's JSON callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonEnvelope {
    /// The outer recipient (not authoritative: the receiveid inside is).
    #[serde(rename = "ToUserName", default)]
    pub to_user_name: String,
    /// Base64 ciphertext.
    #[serde(rename = "Encrypt")]
    pub encrypt: String,
    /// WeCom's application id, a bare number.
    #[serde(rename = "AgentID", default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<u64>,
}

impl JsonEnvelope {
    /// Reads an envelope from a JSON body.
    pub fn parse(body: &str) -> Result<Self, CallbackError> {
        serde_json::from_str(body).map_err(|e| CallbackError::Json(e.to_string()))
    }

    /// The body as WeChat sends it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the envelope serialises")
    }
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The signatures, the XML or the decryption failed.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The body is not the expected JSON.
    #[error("json: {0}")]
    Json(String),
}

impl From<crate::crypto::DecryptError> for CallbackError {
    fn from(e: crate::crypto::DecryptError) -> Self {
        Self::Envelope(e.into())
    }
}

/// The outer shape of a WeCom callback POST: its format and `AgentID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallbackShape {
    /// XML or JSON body.
    pub format: BodyFormat,
    /// The app's agentid, copied beside `Encrypt` (absent for special secrets).
    pub agent_id: Option<u64>,
}

/// A callback as WeCom sends it: its query and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCallback {
    /// Query parameters to add to the callback URL.
    pub query: CallbackQuery,
    /// The request body (empty for the URL check).
    pub body: String,
}

/// The format of a body, from its first non-blank character.
pub fn body_format(body: &str) -> BodyFormat {
    if body.trim_start().starts_with('{') {
        BodyFormat::Json
    } else {
        BodyFormat::Xml
    }
}

/// The `Encrypt` text of an XML or JSON envelope.
/// Borrowed from an XML body in WeChat's shape, not copied.
pub fn envelope_encrypt(body: &str) -> Result<Cow<'_, str>, CallbackError> {
    match body_format(body) {
        BodyFormat::Json => Ok(Cow::Owned(JsonEnvelope::parse(body)?.encrypt)),
        BodyFormat::Xml => xml::root_child_text(body, "Encrypt")
            .map_err(EnvelopeError::from)?
            .ok_or(CallbackError::Envelope(EnvelopeError::Missing("Encrypt"))),
    }
}

/// WeCom's URL check (the GET a console save sends): checks `msg_signature`
/// over the encrypted `echostr` and returns the plaintext to answer with.
/// A space in `echostr` is read as `+` (a form-decoded query, §1.5 step 1).
pub fn open_echostr(
    crypto: &MessageCrypto,
    token: &str,
    query: &CallbackQuery,
) -> Result<String, EnvelopeError> {
    let echostr = query
        .echostr
        .as_deref()
        .ok_or(EnvelopeError::Missing("echostr"))?
        .replace(' ', "+");
    verify_msg_signature(
        token,
        &query.timestamp,
        &query.nonce,
        &echostr,
        &query.msg_signature,
    )
    .map_err(|_| EnvelopeError::MsgSignature)?;
    Ok(crypto.decrypt(&echostr)?)
}

/// The URL check WeCom sends (the simulator's side of [`open_echostr`]):
/// `echo` encrypted for the corp and signed.
pub fn seal_echostr(
    crypto: &MessageCrypto,
    token: &str,
    echo: &str,
    timestamp: &str,
    nonce: &str,
    random: &[u8; RANDOM_LEN],
) -> CallbackQuery {
    let echostr = crypto.encrypt(random, echo.as_bytes());
    CallbackQuery {
        msg_signature: msg_signature(token, timestamp, nonce, &echostr),
        timestamp: timestamp.to_owned(),
        nonce: nonce.to_owned(),
        echostr: Some(echostr),
    }
}

/// Opens a WeCom callback POST (XML or JSON body): checks `msg_signature` over
/// its `Encrypt` and returns the decrypted plaintext (XML or JSON).
pub fn open_callback(
    crypto: &MessageCrypto,
    token: &str,
    query: &CallbackQuery,
    body: &str,
) -> Result<String, CallbackError> {
    let encrypt = envelope_encrypt(body)?;
    verify_msg_signature(
        token,
        &query.timestamp,
        &query.nonce,
        &encrypt,
        &query.msg_signature,
    )
    .map_err(|_| EnvelopeError::MsgSignature)?;
    Ok(crypto.decrypt(&encrypt)?)
}

/// A WeCom callback POST as WeCom sends it: `plaintext` (XML or JSON, per
/// `shape`) encrypted for the corp, in an envelope with `ToUserName` (the
/// corpid), `AgentID` (when given) and `Encrypt`.
pub fn seal_callback(
    crypto: &MessageCrypto,
    token: &str,
    plaintext: &str,
    shape: CallbackShape,
    timestamp: &str,
    nonce: &str,
    random: &[u8; RANDOM_LEN],
) -> SealedCallback {
    let encrypt = crypto.encrypt(random, plaintext.as_bytes());
    let query = CallbackQuery {
        msg_signature: msg_signature(token, timestamp, nonce, &encrypt),
        timestamp: timestamp.to_owned(),
        nonce: nonce.to_owned(),
        echostr: None,
    };
    let body = match shape.format {
        BodyFormat::Json => JsonEnvelope {
            to_user_name: crypto.appid().to_owned(),
            encrypt,
            agent_id: shape.agent_id,
        }
        .to_json(),
        BodyFormat::Xml => {
            let mut w = XmlWriter::new();
            w.cdata("ToUserName", crypto.appid());
            if let Some(agent) = shape.agent_id {
                w.cdata("AgentID", &agent.to_string());
            }
            w.element(&Element::leaf("Encrypt", encrypt));
            w.finish()
        }
    };
    SealedCallback { query, body }
}

/// Fields WeChat's JSON pushes carry as numbers (the families reference §2
/// example has `"CreateTime":1714037059`; WeCom's sample `"MsgId"` and `"AgentID"`).
const JSON_NUMBERS: &[&str] = &["CreateTime", "MsgId", "MsgID", "AgentID"];

/// The JSON form WeChat pushes (Mini Program JSON format, WeCom JSON callbacks)
/// of a plaintext XML push: the XML element names as keys, nested elements as
/// objects, `CreateTime`/`MsgId`/`AgentID` as numbers, everything else as text.
pub fn push_json_from_xml(xml: &str) -> Result<String, CallbackError> {
    /// An element's children as a JSON object, in document order.
    struct Object<'a>(&'a Element);
    impl Serialize for Object<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let children = &self.0.children;
            let mut map = s.serialize_map(None)?;
            for (i, child) in children.iter().enumerate() {
                // A repeated element is one key with an array, where it first stands.
                if children[..i].iter().any(|c| c.name == child.name) {
                    continue;
                }
                let same: Vec<&Element> = children[i..]
                    .iter()
                    .filter(|c| c.name == child.name)
                    .collect();
                if same.len() > 1 {
                    let values: Vec<Value> = same.into_iter().map(Value).collect();
                    map.serialize_entry(&child.name, &values)?;
                } else {
                    map.serialize_entry(&child.name, &Value(child))?;
                }
            }
            map.end()
        }
    }
    /// One element's value: an object, a number or text.
    struct Value<'a>(&'a Element);
    impl Serialize for Value<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let element = self.0;
            // As a number only when nothing is lost: "007" stays text.
            let number = JSON_NUMBERS
                .contains(&&*element.name)
                .then(|| element.text.parse::<u64>().ok())
                .flatten()
                .filter(|n| n.to_string() == element.text);
            match number {
                _ if !element.children.is_empty() => Object(element).serialize(s),
                Some(n) => n.serialize(s),
                None => element.text.serialize(s),
            }
        }
    }
    let root = xml::parse(xml).map_err(EnvelopeError::from)?;
    Ok(serde_json::to_string(&Object(&root)).expect("an element serialises"))
}

/// Reads a JSON push (a Mini Program's JSON data format, WeCom's JSON
/// callbacks): the inverse of [`push_json_from_xml`]. Keys are read as element
/// names in their order, objects as nested elements, arrays as repeated
/// elements, numbers and booleans as their text; the result is the same
/// [`Push`] the XML form gives.
pub fn push_from_json(json: &str) -> Result<Push, CallbackError> {
    /// Appends `node` as elements named `name` at `depth`, within the XML
    /// reader's limits ([`xml::MAX_DEPTH`], [`xml::MAX_ELEMENTS`]), so a JSON
    /// push can grow no larger than an XML one.
    fn elements(
        name: &str,
        node: JsonNode,
        depth: usize,
        count: &mut usize,
        out: &mut Vec<Element>,
    ) -> Result<(), CallbackError> {
        let node = match node {
            JsonNode::Array(items) => {
                for item in items {
                    elements(name, item, depth, count, out)?;
                }
                return Ok(());
            }
            node => node,
        };
        // The push is also handled in its XML form: a key must be a name XML can hold.
        let xml_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !xml_name {
            return Err(CallbackError::Json(format!(
                "{:?} is not a field name (letters, digits, _, - and .)",
                name.chars().take(64).collect::<String>()
            )));
        }
        *count += 1;
        if depth > xml::MAX_DEPTH || *count > xml::MAX_ELEMENTS {
            return Err(CallbackError::Json(format!(
                "a push nests at most {} levels and holds at most {} fields",
                xml::MAX_DEPTH,
                xml::MAX_ELEMENTS
            )));
        }
        match node {
            JsonNode::Object(fields) => {
                let mut element = Element::leaf(name.to_owned(), "");
                for (key, value) in fields {
                    elements(&key, value, depth + 1, count, &mut element.children)?;
                }
                out.push(element);
            }
            JsonNode::Text(text) => out.push(Element::leaf(name.to_owned(), text)),
            JsonNode::Array(_) => {}
        }
        Ok(())
    }
    let node: JsonNode =
        serde_json::from_str(json).map_err(|e| CallbackError::Json(e.to_string()))?;
    if !matches!(node, JsonNode::Object(_)) {
        return Err(CallbackError::Json("a push is a JSON object".into()));
    }
    let mut roots = Vec::new();
    elements("xml", node, 1, &mut 0, &mut roots)?;
    let root = roots.pop().expect("an object gives one element");
    Push::from_root(root).map_err(|e| CallbackError::Json(e.to_string()))
}

/// A JSON value with its objects' keys in document order (serde_json's own
/// map sorts them), scalars as their text.
enum JsonNode {
    Text(String),
    Object(Vec<(String, JsonNode)>),
    Array(Vec<JsonNode>),
}

impl<'de> Deserialize<'de> for JsonNode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{MapAccess, SeqAccess, Visitor};
        struct Nodes;
        impl<'de> Visitor<'de> for Nodes {
            type Value = JsonNode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<JsonNode, E> {
                Ok(JsonNode::Text(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<JsonNode, E> {
                Ok(JsonNode::Text(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<JsonNode, E> {
                Ok(JsonNode::Text(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<JsonNode, E> {
                Ok(JsonNode::Text(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<JsonNode, E> {
                Ok(JsonNode::Text(v.to_owned()))
            }
            fn visit_unit<E>(self) -> Result<JsonNode, E> {
                Ok(JsonNode::Text(String::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonNode, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(JsonNode::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonNode, A::Error> {
                let mut fields: Vec<(String, JsonNode)> = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                // A key given twice is ambiguous (which `MsgType` is it?):
                // refused, as the XML form has no such object.
                let mut names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                names.sort_unstable();
                if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
                    return Err(serde::de::Error::custom(format!(
                        "{:?} appears twice in one object",
                        twice[0].chars().take(64).collect::<String>()
                    )));
                }
                Ok(JsonNode::Object(fields))
            }
        }
        d.deserialize_any(Nodes)
    }
}

/// A JSON push as a Mini Program sends it in `mode` (families reference §2):
/// plain mode sends `json` as it is; compatible mode adds `Encrypt` to its
/// fields; safe mode sends `{"ToUserName","Encrypt"}`. The query is the OA one
/// (`signature`, plus `encrypt_type=aes&msg_signature` when encrypted).
pub fn seal_json_push(
    mode: &PushMode,
    token: &str,
    json: &str,
    openid: Option<&str>,
    timestamp: &str,
    nonce: &str,
    random: &[u8; RANDOM_LEN],
) -> Result<crate::envelope::SealedPush, CallbackError> {
    let mut fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| CallbackError::Json(e.to_string()))?;
    let mut query = PushQuery {
        signature: signature(token, timestamp, nonce),
        timestamp: timestamp.to_owned(),
        nonce: nonce.to_owned(),
        openid: openid.map(str::to_owned),
        ..PushQuery::default()
    };
    let crypto = match mode {
        PushMode::Plain => {
            return Ok(crate::envelope::SealedPush {
                query,
                body: json.to_owned(),
            })
        }
        PushMode::Compat(crypto) | PushMode::Safe(crypto) => crypto,
    };
    let encrypt = crypto.encrypt(random, json.as_bytes());
    query.encrypt_type = Some("aes".to_owned());
    query.msg_signature = Some(msg_signature(token, timestamp, nonce, &encrypt));
    let body = match mode {
        PushMode::Safe(_) => {
            let to = fields
                .get("ToUserName")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            JsonEnvelope {
                to_user_name: to,
                encrypt,
                agent_id: None,
            }
            .to_json()
        }
        _ => {
            fields.insert("Encrypt".to_owned(), encrypt.into());
            serde_json::Value::Object(fields).to_string()
        }
    };
    Ok(crate::envelope::SealedPush { query, body })
}

/// Opens a Mini Program's JSON push (the server's side of [`seal_json_push`]):
/// checks `signature`, and in compatible and safe mode `msg_signature`, and
/// returns the JSON plaintext.
pub fn open_json_push(
    mode: &PushMode,
    token: &str,
    query: &PushQuery<impl QueryText>,
    body: &str,
) -> Result<String, CallbackError> {
    crate::signature::verify_signature(token, &query.timestamp, &query.nonce, &query.signature)
        .map_err(|_| EnvelopeError::Signature)?;
    open_signed_json_push(mode, token, query, body)
}

/// [`open_json_push`] for a caller that has checked the query's `signature`
/// already: the mode, the `msg_signature` and the decryption.
pub fn open_signed_json_push(
    mode: &PushMode,
    token: &str,
    query: &PushQuery<impl QueryText>,
    body: &str,
) -> Result<String, CallbackError> {
    let crypto = match mode {
        PushMode::Plain => return Ok(body.to_owned()),
        PushMode::Compat(crypto) | PushMode::Safe(crypto) => crypto,
    };
    if query.encrypt_type.as_deref() != Some("aes") {
        return Err(EnvelopeError::ModeMismatch {
            expected: mode.name(),
            got: "plain",
        }
        .into());
    }
    let given = query
        .msg_signature
        .as_deref()
        .ok_or(EnvelopeError::Missing("msg_signature"))?;
    let encrypt = JsonEnvelope::parse(body)?.encrypt;
    verify_msg_signature(token, &query.timestamp, &query.nonce, &encrypt, given)
        .map_err(|_| EnvelopeError::MsgSignature)?;
    Ok(crypto.decrypt(&encrypt)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AesKey;

    fn crypto() -> MessageCrypto {
        let key = AesKey::try_new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        MessageCrypto::new(key, "ww1436e0e65a779aee")
    }

    #[test]
    fn echostr_round_trip_and_tamper() {
        let q = seal_echostr(&crypto(), "tok", "12345", "1700000000", "9", &[3; 16]);
        assert_eq!(open_echostr(&crypto(), "tok", &q).unwrap(), "12345");
        assert_eq!(
            open_echostr(&crypto(), "other", &q),
            Err(EnvelopeError::MsgSignature)
        );
        let mut spaced = q.clone();
        spaced.echostr = spaced.echostr.map(|e| e.replace('+', " "));
        assert_eq!(open_echostr(&crypto(), "tok", &spaced).unwrap(), "12345");
    }

    #[test]
    fn callback_round_trip_in_both_formats() {
        for format in [BodyFormat::Xml, BodyFormat::Json] {
            let plain = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName></xml>";
            let shape = CallbackShape {
                format,
                agent_id: Some(7),
            };
            let sealed = seal_callback(&crypto(), "tok", plain, shape, "1", "2", &[1; 16]);
            assert_eq!(body_format(&sealed.body), format);
            assert!(sealed.body.contains("ww1436e0e65a779aee"));
            let opened = open_callback(&crypto(), "tok", &sealed.query, &sealed.body).unwrap();
            assert_eq!(opened, plain);
        }
    }

    #[test]
    fn json_pushes_keep_wechats_names_and_numbers() {
        let xml = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime>1714037059</CreateTime>\
                   <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[42]]></Content>\
                   <MsgId>24512345678901234</MsgId><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo></xml>";
        let json: serde_json::Value =
            serde_json::from_str(&push_json_from_xml(xml).unwrap()).unwrap();
        assert_eq!(json["CreateTime"], 1_714_037_059);
        assert_eq!(json["MsgId"], 24_512_345_678_901_234_u64);
        assert_eq!(json["Content"], "42", "text stays text");
        assert_eq!(json["ScanCodeInfo"]["ScanType"], "qrcode");
    }

    #[test]
    fn json_push_modes() {
        let json = r#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1,"MsgType":"text","Content":"hi"}"#;
        let modes = [
            PushMode::Plain,
            PushMode::Compat(crypto()),
            PushMode::Safe(crypto()),
        ];
        for mode in modes {
            let sealed = seal_json_push(&mode, "tok", json, None, "5", "6", &[2; 16]).unwrap();
            assert_eq!(
                open_json_push(&mode, "tok", &sealed.query, &sealed.body).unwrap(),
                json
            );
            if let PushMode::Safe(_) = mode {
                let env: serde_json::Value = serde_json::from_str(&sealed.body).unwrap();
                assert_eq!(env.as_object().unwrap().len(), 2);
                assert_eq!(env["ToUserName"], "gh_1");
            }
        }
    }

    #[test]
    fn json_pushes_read_as_their_xml_form() {
        let xml = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
                   <CreateTime>1714037059</CreateTime><MsgType><![CDATA[event]]></MsgType>\
                   <Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[k]]></EventKey>\
                   <ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo></xml>";
        let from_json = push_from_json(&push_json_from_xml(xml).unwrap()).unwrap();
        assert_eq!(from_json, Push::parse(xml).unwrap());
        // The families reference's Mini Program example (§2).
        let example = r#"{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714037059,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}"#;
        let push = push_from_json(example).unwrap();
        assert_eq!(push.to_user_name, "gh_97417a04a28d");
        assert_eq!(push.create_time, 1_714_037_059);
        assert!(push
            .extra
            .iter()
            .any(|e| e.name == "debug_str" && e.text == "hello world"));
        let text = r#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":5,"MsgType":"text","Content":"hi","MsgId":42}"#;
        assert_eq!(push_from_json(text).unwrap().msg_id(), Some(42));
        let odd_key = r#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":5,"MsgType":"event","a>b":"x"}"#;
        for bad in ["[1]", "{", r#"{"ToUserName":"gh_1"}"#, odd_key] {
            assert!(
                matches!(push_from_json(bad), Err(CallbackError::Json(_))),
                "{bad}"
            );
        }
        // No larger than the XML reader allows: as deep, as many fields.
        let head = r#""ToUserName":"gh_1","FromUserName":"o1","CreateTime":5,"MsgType":"event","Event":"x""#;
        let nested = |levels: usize| {
            format!(
                "{{{head},{}{}}}",
                r#""a":{"#.repeat(levels),
                "}".repeat(levels)
            )
        };
        assert!(push_from_json(&nested(xml::MAX_DEPTH - 1)).is_ok());
        assert!(matches!(
            push_from_json(&nested(xml::MAX_DEPTH)),
            Err(CallbackError::Json(_))
        ));
        let wide = |n: usize| format!("{{{head},\"List\":[{}]}}", vec!["1"; n].join(","));
        assert!(push_from_json(&wide(xml::MAX_ELEMENTS - 6)).is_ok());
        assert!(matches!(
            push_from_json(&wide(xml::MAX_ELEMENTS)),
            Err(CallbackError::Json(_))
        ));
    }
}
