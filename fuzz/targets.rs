//! The bodies of the fuzz targets, shared by `fuzz_targets/*.rs` and by the
//! corpus replay test in `crates/proto/tests/it/fuzz_corpus.rs`.

use base64::Engine as _;
use wxgate_proto::{AesKey, EncryptedReply, MessageCrypto, Push, Reply};

/// Every parser that reads what arrives over the network.
pub(crate) fn push(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(push) = Push::parse(&text) {
        // What parses must serialise, parse back and serialise to the same text.
        let xml = push.to_xml();
        let again = Push::parse(&xml).expect("a serialised push parses");
        assert_eq!(again.to_xml(), xml);
        assert_eq!(again.dedupe_key(), push.dedupe_key());
    }
    let _ = Reply::parse(&text);
    let _ = EncryptedReply::parse(&text);
    if let Ok(push) = wxgate_proto::push_from_json(&text) {
        // A JSON push reads as its XML form does (Mini Programs, WeCom).
        let xml = push.to_xml();
        let _ = push.dedupe_key();
        if let (Ok(parsed), Ok(json)) = (Push::parse(&xml), wxgate_proto::push_json_from_xml(&xml))
        {
            let again = wxgate_proto::push_from_json(&json).expect("a JSON form reads back");
            assert_eq!(again.to_xml(), parsed.to_xml());
        }
    }
}

/// The decryptor, on both raw text and well-formed base64 of arbitrary bytes.
pub(crate) fn decrypt(data: &[u8]) {
    let key = AesKey::try_new("7lptTsZ0Ni5eEh3Bb264G0D0AhqloTHkxnhR6rKqPUq").expect("valid key");
    let crypto = MessageCrypto::new(key, "wx0123456789abcdef");
    let _ = crypto.decrypt(&String::from_utf8_lossy(data));
    let _ = crypto.decrypt(&base64::engine::general_purpose::STANDARD.encode(data));
}
