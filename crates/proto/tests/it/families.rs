//! Every vector in `testdata/vectors-families.json` (WeCom URL checks, WeCom XML
//! and JSON callbacks, Open Platform pushes), read from the file, and the
//! WeCom JS-SDK vector of the families reference §1.4.

use serde_json::Value;
use wxgate_proto::{
    jssdk_signature, msg_signature, open_callback, open_echostr, seal_callback, seal_echostr,
    AesKey, BodyFormat, CallbackQuery, CallbackShape, DecryptError, EnvelopeError, JsonEnvelope,
    MessageCrypto,
};

fn vectors() -> Vec<Value> {
    let path = crate::repo_root().join("testdata/vectors-families.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(all.len(), 7, "the families file has 7 vectors");
    all
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no string {field}", v["id"]))
}

fn crypto(v: &Value) -> MessageCrypto {
    let key = AesKey::try_new(s(v, "encoding_aes_key")).unwrap();
    MessageCrypto::new(key, s(v, "receiveid"))
}

fn random(v: &Value) -> [u8; 16] {
    hex::decode(s(v, "random_hex")).unwrap().try_into().unwrap()
}

fn query(v: &Value, echostr: Option<&str>) -> CallbackQuery {
    CallbackQuery {
        msg_signature: s(v, "msg_signature").to_owned(),
        timestamp: s(v, "timestamp").to_owned(),
        nonce: s(v, "nonce").to_owned(),
        echostr: echostr.map(str::to_owned),
    }
}

/// The copy in this repository must be the shared one, when the shared folder is present.
#[test]
fn vendored_family_vectors_match_the_shared_file() {
    let shared = crate::repo_root().join("../shared/testdata/vectors-families.json");
    if let Ok(shared) = std::fs::read(shared) {
        let ours =
            std::fs::read(crate::repo_root().join("testdata/vectors-families.json")).unwrap();
        assert!(
            ours == shared,
            "testdata/vectors-families.json differs from ../shared"
        );
    }
}

#[test]
fn every_family_vector_signs_decrypts_and_reseals() {
    for v in vectors() {
        let id = s(&v, "id");
        let (token, ts, nonce, encrypt) = (
            s(&v, "token"),
            s(&v, "timestamp"),
            s(&v, "nonce"),
            s(&v, "encrypt"),
        );
        assert_eq!(
            msg_signature(token, ts, nonce, encrypt),
            s(&v, "msg_signature"),
            "{id}"
        );
        let crypto = crypto(&v);
        assert_eq!(
            crypto.decrypt(encrypt).unwrap(),
            s(&v, "expected_plaintext"),
            "{id}"
        );
        // Encrypting with the recorded random prefix gives the published ciphertext back.
        assert_eq!(
            crypto.encrypt(&random(&v), s(&v, "expected_plaintext").as_bytes()),
            encrypt,
            "{id}"
        );
        // Another receiveid is refused (WXBizMsgCrypt -40005).
        let other = MessageCrypto::new(AesKey::try_new(s(&v, "encoding_aes_key")).unwrap(), "ww0");
        assert!(
            matches!(
                other.decrypt(encrypt),
                Err(DecryptError::AppidMismatch { .. })
            ),
            "{id}"
        );
    }
}

#[test]
fn wecom_url_checks_answer_the_published_echo() {
    let checks: Vec<Value> = vectors()
        .into_iter()
        .filter(|v| s(v, "id").starts_with("wecom-verifyurl"))
        .collect();
    assert_eq!(checks.len(), 2);
    for v in checks {
        let q = query(&v, Some(s(&v, "encrypt")));
        assert_eq!(
            open_echostr(&crypto(&v), s(&v, "token"), &q).unwrap(),
            s(&v, "expected_plaintext")
        );
        // The sealing side reproduces the very query WeCom sent.
        let sealed = seal_echostr(
            &crypto(&v),
            s(&v, "token"),
            s(&v, "expected_plaintext"),
            s(&v, "timestamp"),
            s(&v, "nonce"),
            &random(&v),
        );
        assert_eq!(sealed, q);
        // A signature over anything else (here: a wrong token) is refused.
        assert_eq!(
            open_echostr(&crypto(&v), "not-the-token", &q),
            Err(EnvelopeError::MsgSignature)
        );
    }
}

#[test]
fn wecom_xml_and_json_callbacks_open() {
    for v in vectors() {
        let id = s(&v, "id");
        if !id.starts_with("wecom-decrypt") {
            continue;
        }
        let body = if id.contains("json") {
            // The sample's outer ToUserName is the 2014 corp, not the receiveid.
            JsonEnvelope {
                to_user_name: "wx5823bf96d3bd56c7".into(),
                encrypt: s(&v, "encrypt").into(),
                agent_id: Some(218),
            }
            .to_json()
        } else {
            format!(
                "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>",
                s(&v, "receiveid"),
                s(&v, "encrypt")
            )
        };
        let q = query(&v, None);
        assert_eq!(
            open_callback(&crypto(&v), s(&v, "token"), &q, &body).unwrap(),
            s(&v, "expected_plaintext"),
            "{id}"
        );
        let mut bad = q.clone();
        bad.nonce.push('1');
        assert!(
            open_callback(&crypto(&v), s(&v, "token"), &bad, &body).is_err(),
            "{id}"
        );
        // Sealed again with the recorded random prefix: the same Encrypt and signature.
        let format = if id.contains("json") {
            BodyFormat::Json
        } else {
            BodyFormat::Xml
        };
        let sealed = seal_callback(
            &crypto(&v),
            s(&v, "token"),
            s(&v, "expected_plaintext"),
            CallbackShape {
                format,
                agent_id: Some(218),
            },
            s(&v, "timestamp"),
            s(&v, "nonce"),
            &random(&v),
        );
        assert_eq!(sealed.query, q, "{id}");
        assert!(sealed.body.contains(s(&v, "encrypt")), "{id}");
    }
}

#[test]
fn json_envelope_reads_the_tencent_sample_shape() {
    let env =
        JsonEnvelope::parse(r#"{"ToUserName":"wx5823bf96d3bd56c7","Encrypt":"abc","AgentID":218}"#)
            .unwrap();
    assert_eq!(env.agent_id, Some(218));
    assert_eq!(env.encrypt, "abc");
    assert!(JsonEnvelope::parse(r#"{"ToUserName":"x"}"#).is_err());
}

/// WeCom's `wx.config` and `wx.agentConfig` share OA's signature; easywechat's
/// `tests/Work/JsApiTicketTest.php` asserts this value for both (families §1.4).
#[test]
fn wecom_agent_config_signature_vector() {
    assert_eq!(
        jssdk_signature(
            "mock-ticket",
            "mock-nonce",
            "1601234567",
            "https://www.easywechat.com/"
        ),
        "22772d2fb393ab9f7f6a5a54168a566fbf1ab767"
    );
}

/// A key given twice in one object is ambiguous (the first `MsgType` or the
/// second?): the push is refused, not handed on with one of them in `extra`.
/// An array is the way to repeat a field, and the XML form's repeated
/// elements are written as one.
#[test]
fn a_json_push_with_a_key_given_twice_is_refused() {
    let twice = r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1714037059,
        "MsgType":"text","Content":"hi","MsgType":"event","MsgId":1}"#;
    let error = wxgate_proto::push_from_json(twice).unwrap_err().to_string();
    assert!(error.contains("\"MsgType\" appears twice"), "{error}");
    let nested = r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"event",
        "Event":"x","Info":{"A":"1","A":"2"}}"#;
    assert!(wxgate_proto::push_from_json(nested).is_err());
    // Repeated elements of the XML form become an array, and read back as they were.
    let xml = "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName>\
               <CreateTime>1</CreateTime><MsgType>event</MsgType><Event>x</Event>\
               <Item><Id>1</Id></Item><Item><Id>2</Id></Item></xml>";
    let json = wxgate_proto::push_json_from_xml(xml).unwrap();
    assert!(json.contains(r#""Item":[{"Id":"1"},{"Id":"2"}]"#), "{json}");
    assert_eq!(
        wxgate_proto::push_from_json(&json).unwrap(),
        wxgate_proto::Push::parse(xml).unwrap()
    );
}

/// Every `component-*` vector (families reference §3.1, §3.7): the push WeChat
/// sends (`<AppId>` + `<Encrypt>`, `signature` and `msg_signature` in the query)
/// opens, decrypts for the component appid and reads as a typed component push;
/// sealing it again with the recorded random prefix gives WeChat's push back.
#[test]
fn every_component_vector_opens_and_parses() {
    use wxgate_proto::{
        open_component_push, seal_component_push, signature, ComponentInfo, ComponentPush,
        PushQuery,
    };
    let component: Vec<Value> = vectors()
        .into_iter()
        .filter(|v| s(v, "id").starts_with("component-"))
        .collect();
    assert_eq!(
        component.len(),
        2,
        "component-verify-ticket and component-unauthorized"
    );
    for v in component {
        let id = s(&v, "id");
        let (token, ts, nonce) = (s(&v, "token"), s(&v, "timestamp"), s(&v, "nonce"));
        let sig = signature(token, ts, nonce);
        let query = PushQuery {
            signature: sig.clone(),
            timestamp: ts.to_owned(),
            nonce: nonce.to_owned(),
            openid: None,
            encrypt_type: Some("aes".into()),
            msg_signature: Some(s(&v, "msg_signature").to_owned()),
        };
        let body = format!(
            "<xml>\n<AppId><![CDATA[{}]]></AppId>\n<Encrypt><![CDATA[{}]]></Encrypt>\n</xml>",
            s(&v, "receiveid"),
            s(&v, "encrypt")
        );
        let plain = open_component_push(&crypto(&v), token, &query, &body).unwrap();
        assert_eq!(plain, s(&v, "expected_plaintext"), "{id}");
        let push = ComponentPush::parse(&plain).unwrap();
        assert_eq!(push.component_appid, s(&v, "receiveid"), "{id}");
        match (id, &push.info) {
            ("component-verify-ticket", ComponentInfo::VerifyTicket { ticket }) => {
                // The query signature the source test sends (families §3.1: `fc3adbef…be9b`).
                assert!(
                    sig.starts_with("fc3adbef") && sig.ends_with("be9b"),
                    "{sig}"
                );
                assert_eq!(push.create_time, 1_445_308_253);
                assert_eq!(
                    ticket,
                    "ticket@@@1S8ekCXqBTTCMFLI9ekk2jh8u3NyelwnQoc_Rbpr3X0gKlGiYKhlQrERhGOrsGJ3OcQnWuszOI7iLwe-KaMIVA"
                );
            }
            ("component-unauthorized", ComponentInfo::Unauthorized { authorizer_appid }) => {
                assert_eq!(authorizer_appid, "wx1234567890123456");
                assert_eq!(push.create_time, 1_445_303_136);
                assert_eq!(push.info.info_type(), "unauthorized");
            }
            _ => panic!("{id}: unexpected {push:?}"),
        }
        // WeChat's side: the same query and Encrypt from the recorded random prefix.
        let sealed = seal_component_push(
            &crypto(&v),
            token,
            s(&v, "expected_plaintext"),
            ts,
            nonce,
            &random(&v),
        );
        assert_eq!(sealed.query, query, "{id}");
        assert_eq!(
            open_component_push(&crypto(&v), token, &sealed.query, &sealed.body).unwrap(),
            plain
        );
        // A forged query signature, a bad msg_signature or another platform are refused.
        let mut forged = query.clone();
        forged.signature = "0".repeat(40);
        assert_eq!(
            open_component_push(&crypto(&v), token, &forged, &body),
            Err(EnvelopeError::Signature)
        );
        let mut bad = query.clone();
        bad.msg_signature = Some("0".repeat(40));
        assert_eq!(
            open_component_push(&crypto(&v), token, &bad, &body),
            Err(EnvelopeError::MsgSignature)
        );
        let other = MessageCrypto::new(AesKey::try_new(s(&v, "encoding_aes_key")).unwrap(), "wx0");
        assert!(open_component_push(&other, token, &query, &body).is_err());
    }
}
