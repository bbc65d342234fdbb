//! Every vector in `testdata/vectors.json`, read from the file.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::Value;
use wxgate_proto::{
    jssdk::{jssdk_signature, signed_url},
    msg_signature, open_push, signature, verify_msg_signature, verify_signature, whitelist_ip,
    AesKey, DecryptError, EncryptedReply, KeyError, MessageCrypto, Push, PushKind, PushMode,
    PushQuery,
};

fn vectors() -> Value {
    let path = crate::repo_root().join("testdata/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn group(name: &str) -> Vec<Value> {
    let all = vectors()[name].as_array().unwrap().clone();
    assert!(!all.is_empty(), "vector group {name} is empty");
    all
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no string {field}", v["id"]))
}

fn random(v: &Value) -> [u8; 16] {
    hex::decode(s(v, "random_hex")).unwrap().try_into().unwrap()
}

fn crypto(v: &Value, appid_field: &str) -> MessageCrypto {
    let key = AesKey::try_new(s(v, "encoding_aes_key")).unwrap();
    MessageCrypto::new(key, s(v, appid_field))
}

/// The copy in this repository must be the shared one, when the shared folder is present.
#[test]
fn vendored_vectors_match_the_shared_file() {
    let shared = crate::repo_root().join("../shared/testdata/vectors.json");
    if let Ok(shared) = std::fs::read(shared) {
        let ours = std::fs::read(crate::repo_root().join("testdata/vectors.json")).unwrap();
        assert!(
            ours == shared,
            "testdata/vectors.json differs from ../shared: copy it again"
        );
    }
}

#[test]
fn signature_vectors() {
    for v in group("signature") {
        let (token, ts, nonce) = (s(&v, "token"), s(&v, "timestamp"), s(&v, "nonce"));
        let mut parts = [token, ts, nonce];
        parts.sort();
        assert_eq!(parts.concat(), s(&v, "sorted_concat"), "{}", v["id"]);
        assert_eq!(
            signature(token, ts, nonce),
            s(&v, "signature"),
            "{}",
            v["id"]
        );
        assert!(verify_signature(token, ts, nonce, s(&v, "signature")).is_ok());
    }
}

#[test]
fn msg_signature_vectors() {
    for v in group("msg_signature") {
        let (token, ts, nonce, enc) = (
            s(&v, "token"),
            s(&v, "timestamp"),
            s(&v, "nonce"),
            s(&v, "encrypt"),
        );
        assert_eq!(
            msg_signature(token, ts, nonce, enc),
            s(&v, "msg_signature"),
            "{}",
            v["id"]
        );
        assert!(verify_msg_signature(token, ts, nonce, enc, s(&v, "msg_signature")).is_ok());
    }
}

#[test]
fn aes_key_vectors() {
    for v in group("aes_keys") {
        let key = AesKey::try_new(s(&v, "encoding_aes_key")).unwrap();
        assert_eq!(hex::encode(key.key()), s(&v, "aes_key_hex"));
        assert_eq!(hex::encode(key.iv()), s(&v, "iv_hex"));
    }
}

#[test]
fn encryption_vectors_are_byte_exact() {
    for v in group("encryption") {
        let id = &v["id"];
        let c = crypto(&v, "appid");
        let plaintext = s(&v, "plaintext");
        assert_eq!(
            Some(plaintext.len() as u64),
            v["plaintext_len_bytes"].as_u64(),
            "{id}"
        );
        let enc = c.encrypt(&random(&v), plaintext.as_bytes());
        assert_eq!(enc, s(&v, "ciphertext_base64"), "{id}");
        let raw_len = STANDARD.decode(&enc).unwrap().len() as u64;
        assert_eq!(Some(raw_len), v["ciphertext_len_bytes"].as_u64(), "{id}");
        assert_eq!(c.decrypt(&enc).unwrap(), plaintext, "{id}");
        if v.get("token").is_some() {
            let reply = EncryptedReply::seal(
                &c,
                s(&v, "token"),
                plaintext,
                s(&v, "timestamp"),
                s(&v, "nonce"),
                &random(&v),
            );
            assert_eq!(reply.msg_signature, s(&v, "msg_signature"), "{id}");
            assert_eq!(reply.to_xml(), s(&v, "reply_envelope_xml"), "{id}");
            let parsed = EncryptedReply::parse(s(&v, "reply_envelope_xml")).unwrap();
            assert_eq!(parsed.open(&c, s(&v, "token")).unwrap(), plaintext, "{id}");
        }
    }
}

/// The own inbound vectors carry the full request WeChat would send, in safe and
/// compatible mode: open them as the gateway will.
#[test]
fn inbound_requests_open_in_safe_and_compat_mode() {
    let mut opened = 0;
    for v in group("encryption") {
        let Some(req) = v.get("inbound_request") else {
            continue;
        };
        let query: PushQuery = serde_json::from_value(req["query"].clone()).unwrap();
        let token = s(&v, "token");
        for (mode, body) in [
            (
                PushMode::Safe(crypto(&v, "appid")),
                s(req, "body_safe_mode"),
            ),
            (
                PushMode::Compat(crypto(&v, "appid")),
                s(req, "body_compat_mode"),
            ),
        ] {
            let xml = open_push(&mode, token, &query, body).unwrap();
            assert_eq!(xml, s(&v, "plaintext"));
            let push = Push::parse(&xml).unwrap();
            assert_eq!(push.to_user_name, "gh_0123456789ab");
            opened += 1;
        }
    }
    assert!(opened >= 4, "expected the inbound vectors, opened {opened}");
}

#[test]
fn decryption_vectors() {
    for v in group("decryption") {
        let id = &v["id"];
        let c = crypto(&v, "appid");
        let (token, ts, nonce, enc) = (
            s(&v, "token"),
            s(&v, "timestamp"),
            s(&v, "nonce"),
            s(&v, "encrypt"),
        );
        assert!(
            verify_msg_signature(token, ts, nonce, enc, s(&v, "msg_signature")).is_ok(),
            "{id}"
        );
        assert_eq!(c.decrypt(enc).unwrap(), s(&v, "expected_plaintext"), "{id}");
        if s(&v, "body_format") == "xml" {
            // The body as received, opened through the full push path.
            let query = PushQuery {
                signature: signature(token, ts, nonce),
                timestamp: ts.into(),
                nonce: nonce.into(),
                openid: None,
                encrypt_type: Some("aes".into()),
                msg_signature: Some(s(&v, "msg_signature").into()),
            };
            let xml =
                open_push(&PushMode::Compat(c.clone()), token, &query, s(&v, "body")).unwrap();
            let push = Push::parse(&xml).unwrap();
            assert!(matches!(push.kind, PushKind::Text { .. }), "{id}: {push:?}");
        }
    }
}

#[test]
fn negative_vectors_are_rejected_with_their_reason() {
    let mut seen = 0;
    for v in group("negative") {
        let id = v["id"].as_str().unwrap();
        match id {
            "neg-appid-mismatch" => {
                let err = crypto(&v, "expected_appid").decrypt(s(&v, "ciphertext_base64"));
                assert_eq!(
                    err,
                    Err(DecryptError::AppidMismatch {
                        found: "wx0123456789abcdef".into()
                    })
                );
            }
            "neg-msg-signature-mismatch" => {
                let r = verify_msg_signature(
                    s(&v, "token"),
                    s(&v, "timestamp"),
                    s(&v, "nonce"),
                    s(&v, "encrypt"),
                    s(&v, "msg_signature"),
                );
                assert!(r.is_err());
            }
            "neg-signature-wrong-timestamp" => {
                let r = verify_signature(
                    s(&v, "token"),
                    s(&v, "timestamp"),
                    s(&v, "nonce"),
                    s(&v, "signature"),
                );
                assert!(r.is_err());
            }
            "neg-wrong-key" | "neg-truncated-ciphertext" => {
                let err = crypto(&v, "appid")
                    .decrypt(s(&v, "ciphertext_base64"))
                    .unwrap_err();
                assert!(
                    matches!(
                        err,
                        DecryptError::Padding
                            | DecryptError::MessageLength { .. }
                            | DecryptError::AppidMismatch { .. }
                    ),
                    "{id}: {err:?}"
                );
            }
            "neg-ciphertext-not-block-multiple" => {
                let err = crypto(&v, "appid")
                    .decrypt(s(&v, "ciphertext_base64"))
                    .unwrap_err();
                assert!(
                    matches!(err, DecryptError::BlockLength(n) if n % 16 != 0),
                    "{err:?}"
                );
            }
            "neg-encoding-aes-key-42-chars" => {
                assert_eq!(
                    AesKey::try_new(s(&v, "encoding_aes_key")),
                    Err(KeyError::Length(42))
                );
            }
            other => panic!("negative vector {other} has no test: add one"),
        }
        seen += 1;
    }
    assert_eq!(seen, 7);
}

#[test]
fn jssdk_vectors() {
    for v in group("jssdk") {
        let id = &v["id"];
        assert_eq!(signed_url(s(&v, "url")), s(&v, "url_signed"), "{id}");
        let sig = jssdk_signature(
            s(&v, "jsapi_ticket"),
            s(&v, "noncestr"),
            s(&v, "timestamp"),
            s(&v, "url"),
        );
        assert_eq!(sig, s(&v, "signature"), "{id}");
    }
}

#[test]
fn errmsg_40164_vectors() {
    for v in group("errmsg_40164") {
        assert_eq!(v["errcode"], 40164);
        assert_eq!(whitelist_ip(s(&v, "errmsg")), Some(s(&v, "ip")));
    }
}
