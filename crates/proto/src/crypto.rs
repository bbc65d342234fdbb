//! Message encryption compatible with WeChat's WXBizMsgCrypt (protocol reference §3).
//!
//! ```text
//! Encrypt = Base64( AES-256-CBC( random(16) || len(msg) as u32 BE || msg || appid || PKCS#7 to 32 ) )
//! ```
//!
//! The key is `base64(EncodingAESKey + "=")`, the IV its first 16 bytes. The random
//! prefix is an argument, never drawn here, so fixed vectors can test encryption
//! byte for byte; callers pass 16 bytes from a CSPRNG.

use aes::cipher::{
    block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit,
};
use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use std::ops::Range;

/// WeChat pads to 32-byte blocks, not AES's 16 (protocol reference §3.3).
const PAD_BLOCK: usize = 32;
/// Length of the random prefix of every plaintext.
pub const RANDOM_LEN: usize = 16;
/// Random prefix plus the 4-byte message length.
const HEADER_LEN: usize = RANDOM_LEN + 4;
/// Length of an EncodingAESKey as typed into the WeChat console.
pub const ENCODING_AES_KEY_LEN: usize = 43;

/// Most EncodingAESKeys are not canonical base64: the last character's two
/// discarded bits are not zero. WeChat's own decoders ignore them; so do we.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an EncodingAESKey was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key must have exactly 43 characters (WXBizMsgCrypt -40004).
    #[error("EncodingAESKey must be {ENCODING_AES_KEY_LEN} characters, got {0}")]
    Length(usize),
    /// The key may only use `[A-Za-z0-9]`.
    #[error("EncodingAESKey may only contain A-Z, a-z and 0-9")]
    Alphabet,
}

/// Why an `Encrypt` text could not be opened. Each variant is a distinct failure
/// a caller may report differently; none of them panics on hostile input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Not valid base64 (WXBizMsgCrypt -40010).
    #[error("ciphertext is not valid base64")]
    Base64,
    /// Empty, or not a whole number of AES blocks (-40007).
    #[error("ciphertext length {0} is not a positive multiple of 16")]
    BlockLength(usize),
    /// The last byte is not a PKCS#7 pad of 1..=32 equal bytes (-40008): usually a wrong key.
    #[error("bad padding (wrong EncodingAESKey?)")]
    Padding,
    /// The length field points past the end of the plaintext (-40008).
    #[error("message length field {declared} exceeds the {available} bytes available")]
    MessageLength {
        /// The big-endian length found after the random prefix.
        declared: u64,
        /// Bytes left after the prefix and padding.
        available: usize,
    },
    /// The plaintext ends with another account's appid (-40005).
    #[error("appid mismatch: message is for {found:?}")]
    AppidMismatch {
        /// The appid found at the end of the plaintext, lossily decoded and cut
        /// to 32 characters (with a wrong length field it could be message text).
        found: String,
    },
    /// The message is not UTF-8.
    #[error("message is not valid UTF-8")]
    Utf8,
}

/// An AES-256 key decoded from a 43-character EncodingAESKey.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// Decodes and validates an EncodingAESKey (protocol reference §3.2).
    pub fn try_new(encoding_aes_key: &str) -> Result<Self, KeyError> {
        let len = encoding_aes_key.chars().count();
        if len != ENCODING_AES_KEY_LEN {
            return Err(KeyError::Length(len));
        }
        if !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyError::Alphabet);
        }
        let bytes = LENIENT
            .decode(encoding_aes_key)
            .expect("43 alphanumeric characters always decode to 32 bytes");
        Ok(Self(
            bytes.try_into().expect("43 base64 characters are 32 bytes"),
        ))
    }

    /// The raw 32-byte AES key.
    pub fn key(&self) -> &[u8; 32] {
        &self.0
    }

    /// The CBC IV: the key's first 16 bytes.
    pub fn iv(&self) -> &[u8] {
        &self.0[..16]
    }
}

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(***)")
    }
}

/// One account's encryption context: its key and the appid bound into every message.
///
/// The AES-256 key schedule is expanded once, here, not for every message;
/// it is shared behind an `Arc`, so the clones an Open Platform's authorizers
/// take of their platform's context share one schedule.
#[derive(Clone)]
pub struct MessageCrypto {
    cipher: std::sync::Arc<Cipher>,
    appid: String,
}

/// The expanded key and the IV (the key's first 16 bytes), with the key they
/// came from for `Debug` (which hides it).
struct Cipher {
    key: AesKey,
    aes: aes::Aes256,
    iv: [u8; 16],
}

impl std::fmt::Debug for MessageCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypto")
            .field("key", &self.cipher.key)
            .field("appid", &self.appid)
            .finish()
    }
}

impl MessageCrypto {
    /// Binds a key to an appid.
    pub fn new(key: AesKey, appid: impl Into<String>) -> Self {
        let aes = aes::Aes256::new(key.key().into());
        let iv = key.iv().try_into().expect("the IV is 16 bytes");
        Self {
            cipher: std::sync::Arc::new(Cipher { key, aes, iv }),
            appid: appid.into(),
        }
    }

    /// The appid checked on decryption and appended on encryption.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    fn encryptor(&self) -> cbc::Encryptor<&aes::Aes256> {
        cbc::Encryptor::inner_iv_init(&self.cipher.aes, (&self.cipher.iv).into())
    }

    fn decryptor(&self) -> cbc::Decryptor<&aes::Aes256> {
        cbc::Decryptor::inner_iv_init(&self.cipher.aes, (&self.cipher.iv).into())
    }

    /// Encrypts `msg` with the given random prefix into the base64 `Encrypt` text.
    pub fn encrypt(&self, random: &[u8; RANDOM_LEN], msg: &[u8]) -> String {
        let mut encrypt = String::with_capacity(self.encrypted_len(msg.len()));
        self.encrypt_into(random, msg, &mut encrypt);
        encrypt
    }

    /// The length of the `Encrypt` text of a `msg_len`-byte message.
    pub(crate) fn encrypted_len(&self, msg_len: usize) -> usize {
        let unpadded = HEADER_LEN + msg_len + self.appid.len();
        let padded = unpadded + PAD_BLOCK - unpadded % PAD_BLOCK;
        padded.div_ceil(3) * 4
    }

    /// [`Self::encrypt`], the base64 appended to `out`.
    pub(crate) fn encrypt_into(&self, random: &[u8; RANDOM_LEN], msg: &[u8], out: &mut String) {
        let msg_len = u32::try_from(msg.len()).expect("a WeChat message is far below 4 GiB");
        let unpadded = HEADER_LEN + msg.len() + self.appid.len();
        let pad = PAD_BLOCK - unpadded % PAD_BLOCK;
        let mut buf = Vec::with_capacity(unpadded + pad);
        buf.extend_from_slice(random);
        buf.extend_from_slice(&msg_len.to_be_bytes());
        buf.extend_from_slice(msg);
        buf.extend_from_slice(self.appid.as_bytes());
        buf.resize(unpadded + pad, pad as u8);
        let len = buf.len();
        self.encryptor()
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .expect("the buffer is padded to whole blocks");
        base64_simd::STANDARD.encode_append(&buf, out);
    }

    /// Decrypts an `Encrypt` text and checks that it was sealed for this appid.
    ///
    /// The message is decrypted in the buffer base64 was decoded into and
    /// returned in it: no copy but moving it over the 20-byte header, one
    /// UTF-8 check.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, DecryptError> {
        let mut buf = decode_ciphertext(encrypt)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(DecryptError::BlockLength(buf.len()));
        }
        let plain_len = self
            .decryptor()
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .expect("the length was checked to be whole blocks")
            .len();
        let (msg, appid) = split(&buf[..plain_len])?;
        let appid = &buf[appid];
        if appid != self.appid.as_bytes() {
            return Err(DecryptError::AppidMismatch {
                found: String::from_utf8_lossy(appid).chars().take(32).collect(),
            });
        }
        buf.truncate(msg.end);
        buf.drain(..msg.start);
        String::from_utf8(buf).map_err(|_| DecryptError::Utf8)
    }
}

/// Where the message and the appid after it lie in a decrypted plaintext, its
/// padding and length field checked.
fn split(plain: &[u8]) -> Result<(Range<usize>, Range<usize>), DecryptError> {
    let unpadded = strip_pad32(plain)?;
    if unpadded.len() < HEADER_LEN {
        return Err(DecryptError::MessageLength {
            declared: 0,
            available: unpadded.len().saturating_sub(HEADER_LEN),
        });
    }
    let (header, rest) = unpadded.split_at(HEADER_LEN);
    let declared = u32::from_be_bytes(header[RANDOM_LEN..].try_into().expect("4 bytes"));
    let msg_len = usize::try_from(declared).unwrap_or(usize::MAX);
    if msg_len > rest.len() {
        return Err(DecryptError::MessageLength {
            declared: declared.into(),
            available: rest.len(),
        });
    }
    let msg_end = HEADER_LEN + msg_len;
    Ok((HEADER_LEN..msg_end, msg_end..unpadded.len()))
}

/// The base64 of an `Encrypt` text, read through base64-simd with the
/// tolerance of the [`LENIENT`] engine it replaced (a property test holds the
/// two together): surrounding whitespace trimmed, padding optional (`=` only
/// at the end, after at least two symbols of the last quad), the last
/// symbol's discarded bits ignored.
fn decode_ciphertext(encrypt: &str) -> Result<Vec<u8>, DecryptError> {
    let text = encrypt.trim().as_bytes();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let pads = text.iter().rev().take_while(|&&b| b == b'=').count();
    // The last quad: the trailing 1 to 3 characters, or 4 when the length is a
    // multiple of 4. Every `=` is in it, after its first two symbols.
    let last_quad = match text.len() % 4 {
        0 => 4,
        rest => rest,
    };
    if last_quad < pads + 2 {
        return Err(DecryptError::Base64);
    }
    let symbols = &text[..text.len() - pads];
    // Whole quads through base64-simd; the 2 or 3 symbols after them (their
    // discarded bits possibly set) by hand.
    let (quads, tail) = symbols.split_at(symbols.len() / 4 * 4);
    let mut out = Vec::with_capacity(quads.len() / 4 * 3 + 2);
    base64_simd::STANDARD_NO_PAD
        .decode_append(quads, &mut out)
        .map_err(|_| DecryptError::Base64)?;
    let sextet = |b: u8| match b {
        b'A'..=b'Z' => Ok(b - b'A'),
        b'a'..=b'z' => Ok(b - b'a' + 26),
        b'0'..=b'9' => Ok(b - b'0' + 52),
        b'+' => Ok(62),
        b'/' => Ok(63),
        _ => Err(DecryptError::Base64),
    };
    match *tail {
        [] => {}
        [a, b] => {
            let (a, b) = (sextet(a)?, sextet(b)?);
            out.push(a << 2 | b >> 4);
        }
        [a, b, c] => {
            let (a, b, c) = (sextet(a)?, sextet(b)?, sextet(c)?);
            out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2]);
        }
        _ => return Err(DecryptError::Base64),
    }
    Ok(out)
}

/// Strips PKCS#7 padding to 32-byte blocks: the last byte `n` is 1..=32 and the
/// last `n` bytes all equal `n` (protocol reference §3.8 step 4).
fn strip_pad32(plain: &[u8]) -> Result<&[u8], DecryptError> {
    let n = usize::from(*plain.last().ok_or(DecryptError::Padding)?);
    if n == 0 || n > PAD_BLOCK || n > plain.len() {
        return Err(DecryptError::Padding);
    }
    let (body, pad) = plain.split_at(plain.len() - n);
    if pad.iter().all(|&b| usize::from(b) == n) {
        Ok(body)
    } else {
        Err(DecryptError::Padding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto() -> MessageCrypto {
        let key = AesKey::try_new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        MessageCrypto::new(key, "wx0123456789abcdef")
    }

    #[test]
    fn round_trips_and_pads_to_32() {
        let c = crypto();
        for len in [0, 1, 12, 13, 44, 45, 1000] {
            let msg = vec![b'x'; len];
            let enc = c.encrypt(&[7; 16], &msg);
            assert_eq!(enc.len(), c.encrypted_len(len), "len {len}");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&enc)
                .unwrap();
            assert_eq!(raw.len() % 32, 0, "len {len}");
            assert_eq!(c.decrypt(&enc).unwrap().as_bytes(), &msg[..]);
        }
    }

    /// The base64 tolerance of `Encrypt` is the one of the `base64` crate's
    /// lenient engine that read it before base64-simd did.
    fn lenient_decode(text: &str) -> Option<Vec<u8>> {
        LENIENT.decode(text.trim()).ok()
    }

    #[test]
    fn ciphertext_base64_is_read_as_the_lenient_engine_reads_it() {
        let cases = [
            "",
            " ",
            "A",
            "AB",
            "AB=",
            "AB==",
            "AB===",
            "ABC",
            "ABC=",
            "ABC==",
            "ABCD",
            "ABCD=",
            "ABCD==",
            "A===",
            "====",
            "=",
            "AB=C",
            "A=BC",
            "ABCDE",
            "ABCDEF",
            "ABCDEF=",
            "ABCDEF==",
            "ABCDEFG",
            "ABCDEFG=",
            "AB/+",
            "AB-_",
            "ABCD\nEFGH",
            " ABCD\n",
            "\u{3000}ABCD",
            "AB\u{e9}D",
            "ABCDAB",
            "ABCDAF",
            "ABCDABC",
            "ABCDABD",
            "ABCDABD=",
            "AQ==",
            "AR==",
            "AR",
            "AQI=",
            "AQJ=",
            "AQJ",
        ];
        for case in cases {
            assert_eq!(
                decode_ciphertext(case).ok(),
                lenient_decode(case),
                "{case:?}"
            );
        }
        // Every string of up to 6 characters over an alphabet with the edge cases.
        let alphabet = ['A', 'Q', 'z', '/', '=', ' ', '-'];
        let mut strings = vec![String::new()];
        for _ in 0..6 {
            strings = strings
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            for s in &strings {
                assert_eq!(decode_ciphertext(s).ok(), lenient_decode(s), "{s:?}");
            }
        }
        // Long inputs, through base64-simd's vector loop, at every length.
        let data: Vec<u8> = (0..200u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in 0..data.len() {
            let padded = base64::engine::general_purpose::STANDARD.encode(&data[..len]);
            let bare = padded.trim_end_matches('=');
            for text in [padded.as_str(), bare, &format!(" {padded}\r\n")] {
                assert_eq!(
                    decode_ciphertext(text).ok(),
                    Some(data[..len].to_vec()),
                    "{len}"
                );
            }
            // A bad symbol at any place is refused by both.
            for at in 0..bare.len() {
                let mut bad = bare.as_bytes().to_vec();
                bad[at] = b'*';
                let bad = String::from_utf8(bad).unwrap();
                assert_eq!(decode_ciphertext(&bad).ok(), None, "{len} {at}");
                assert_eq!(lenient_decode(&bad), None, "{len} {at}");
            }
        }
    }

    #[test]
    fn key_errors_are_distinct() {
        assert_eq!(AesKey::try_new("abc"), Err(KeyError::Length(3)));
        let bad = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF+";
        assert_eq!(AesKey::try_new(bad), Err(KeyError::Alphabet));
        let wide = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFé";
        assert_eq!(AesKey::try_new(wide), Err(KeyError::Alphabet));
    }

    #[test]
    fn a_context_is_shared_between_threads_and_its_clones_share_the_schedule() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<MessageCrypto>();
        let c = crypto();
        assert!(std::sync::Arc::ptr_eq(&c.cipher, &c.clone().cipher));
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert!(format!("{:?}", crypto()).contains("AesKey(***)"));
    }

    #[test]
    fn rejects_a_length_field_past_the_end() {
        // A hand-built plaintext whose length field claims more than is there.
        let c = crypto();
        let mut buf = vec![0u8; 16];
        buf.extend_from_slice(&1000u32.to_be_bytes());
        buf.extend_from_slice(b"short");
        let pad = 32 - buf.len() % 32;
        buf.resize(buf.len() + pad, pad as u8);
        let len = buf.len();
        c.encryptor()
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .unwrap();
        let enc = base64::engine::general_purpose::STANDARD.encode(&buf);
        assert_eq!(
            c.decrypt(&enc),
            Err(DecryptError::MessageLength {
                declared: 1000,
                available: 5
            })
        );
    }
}
