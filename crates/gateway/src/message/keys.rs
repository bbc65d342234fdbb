//! Fixed-size keys and digests for the dispatcher's in-memory maps (the
//! dedupe window, the plain-mode body bindings) and the client API's
//! proven keys: 16 bytes each, made with
//! SipHash-2-4 (128-bit output) under a secret drawn at start, so nobody
//! outside can compute one, let alone aim two inputs at the same key or
//! the same table bucket, and no key is built as a string.
//!
//! SipHash is a pseudo-random function: under a key the caller never sees,
//! a chosen input's 128-bit output is a blind guess (2^-128 a try), so a
//! digest stands for the bytes it covers as long as the process runs. What
//! leaves the process (the shared store's keys and digests) stays as it
//! was: readable strings and SHA-256, the same in every instance.

use std::hash::{BuildHasher, Hash, Hasher};

use wxgate_proto::{Push, PushQuery, QueryText};

/// A map key (or digest): 128 bits of keyed SipHash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key([u64; 2]);

impl subtle::ConstantTimeEq for Key {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0[0].ct_eq(&other.0[0]) & self.0[1].ct_eq(&other.0[1])
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniformly spread and unknown outside: its first half is the table hash.
        state.write_u64(self.0[0]);
    }
}

/// The table hasher of [`Key`]s: the key's own first half (see [`Key`]'s `Hash`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyHash;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// See [`KeyHash`].
#[derive(Debug, Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Key`s are hashed here, through `write_u64`; anything else
        // still gets a deterministic (if weak) value.
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

/// What a key covers, so keys of different kinds never meet.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Domain {
    /// A message push: owner and `MsgId`.
    Message = 1,
    /// Any other push: owner and the push as XML (what [`Push::dedupe_key`] digests).
    Event = 2,
    /// A plain-mode signed query: owner, timestamp, nonce, signature.
    SignedQuery = 3,
    /// A plain-mode body.
    Body = 4,
    /// A client key the client API accepted.
    ClientKey = 5,
}

/// The process's secret for its keys.
#[derive(Clone, Copy)]
pub struct Keys {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(…)")
    }
}

impl Keys {
    /// A fresh secret, from the operating system's generator.
    pub fn random() -> Self {
        let [k0, k1]: [u64; 2] = rand::random();
        Self { k0, k1 }
    }

    fn hasher(&self, domain: Domain) -> Sip128 {
        let mut h = Sip128::new(self.k0, self.k1);
        // A whole word: what follows is written from a word boundary, so a
        // body is compressed straight from its bytes, not through the tail.
        h.write_u64(domain as u64);
        h
    }

    /// The dedupe key of `push` to `owner`: the same for WeChat's retries
    /// of it, as [`Push::dedupe_key`] (which it stands for) is.
    pub fn push(&self, owner: &str, push: &Push) -> Key {
        match push.msg_id() {
            // `m:{MsgId}`, without the string.
            Some(id) => {
                let mut h = self.hasher(Domain::Message);
                h.part(owner.as_bytes());
                h.write_u64(id);
                h.finish()
            }
            // `e:{from}:{time}:{name}:{SHA-1 of the XML}`, from the XML
            // itself (which holds the rest): no SHA-1, no string but the XML.
            None => {
                let mut h = self.hasher(Domain::Event);
                h.part(owner.as_bytes());
                h.part(push.to_xml().as_bytes());
                h.finish()
            }
        }
    }

    /// The key of a plain-mode push's signed query (`owner:timestamp:nonce:signature`).
    pub fn signed_query(&self, owner: &str, query: &PushQuery<impl QueryText>) -> Key {
        let mut h = self.hasher(Domain::SignedQuery);
        h.part(owner.as_bytes());
        h.part(query.timestamp.as_bytes());
        h.part(query.nonce.as_bytes());
        h.part(query.signature.as_bytes());
        h.finish()
    }

    /// The digest of a body.
    pub fn body(&self, body: &[u8]) -> Key {
        let mut h = self.hasher(Domain::Body);
        h.write(body);
        h.finish()
    }

    /// The digest of a presented client key.
    pub fn client_key(&self, key: &[u8]) -> Key {
        let mut h = self.hasher(Domain::ClientKey);
        h.write(key);
        h.finish()
    }
}

/// The bytes of `bytes` (fewer than 8) as a little-endian word, zero above:
/// at most three loads (4, 2 and 1 bytes, as the reference's `U8TO64_LE`
/// tail and Rust's own SipHasher), not a loop over the bytes. A key's
/// parts (owner, timestamp, nonce…) leave a tail at nearly every write.
#[inline(always)]
fn partial_word(bytes: &[u8]) -> u64 {
    debug_assert!(bytes.len() < 8);
    let (mut word, mut at) = (0, 0);
    if let Some(four) = bytes.first_chunk::<4>() {
        word = u64::from(u32::from_le_bytes(*four));
        at = 4;
    }
    if let Some(two) = bytes[at..].first_chunk::<2>() {
        word |= u64::from(u16::from_le_bytes(*two)) << (8 * at);
        at += 2;
    }
    if let Some(&one) = bytes.get(at) {
        word |= u64::from(one) << (8 * at);
    }
    word
}

/// SipHash-2-4 with a 128-bit output (Aumasson and Bernstein), streaming.
struct Sip128 {
    v: [u64; 4],
    /// Bytes not yet compressed (fewer than 8), little-endian.
    tail: u64,
    ntail: usize,
    length: usize,
}

impl Sip128 {
    fn new(k0: u64, k1: u64) -> Self {
        Self {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        let [v0, v1, v2, v3] = &mut self.v;
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.round();
        self.round();
        self.v[0] ^= m;
    }

    fn write(&mut self, mut bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len());
        if self.ntail > 0 {
            let take = (8 - self.ntail).min(bytes.len());
            self.tail |= partial_word(&bytes[..take]) << (8 * self.ntail);
            self.ntail += take;
            bytes = &bytes[take..];
            if self.ntail < 8 {
                return;
            }
            let m = self.tail;
            self.compress(m);
            (self.tail, self.ntail) = (0, 0);
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.compress(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.tail = partial_word(rest);
        self.ntail = rest.len();
    }

    fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }

    /// A variable-length part: its length first, so parts cannot run into each other.
    fn part(&mut self, bytes: &[u8]) {
        self.write_u64(bytes.len() as u64);
        self.write(bytes);
    }

    fn finish(mut self) -> Key {
        let b = ((self.length as u64 & 0xff) << 56) | self.tail;
        self.compress(b);
        self.v[2] ^= 0xee;
        for _ in 0..4 {
            self.round();
        }
        let first = self.v.iter().fold(0, |acc, v| acc ^ v);
        self.v[1] ^= 0xdd;
        for _ in 0..4 {
            self.round();
        }
        let second = self.v.iter().fold(0, |acc, v| acc ^ v);
        Key([first, second])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SipHash-2-4-128 of `input` under the reference key `00 01 … 0f`, as bytes.
    fn reference(input: &[u8]) -> [u8; 16] {
        let mut h = Sip128::new(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        h.write(input);
        let Key([a, b]) = h.finish();
        let mut out = [0; 16];
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..].copy_from_slice(&b.to_le_bytes());
        out
    }

    #[test]
    fn matches_the_reference_vectors() {
        // vectors_sip128 of the reference implementation: input `00 01 … len-1`.
        let vectors: [(usize, [u8; 16]); 6] = [
            (
                0,
                [
                    0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7,
                    0x55, 0x02, 0x93,
                ],
            ),
            (
                1,
                [
                    0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b,
                    0x22, 0xfc, 0x45,
                ],
            ),
            (
                7,
                [
                    0xa1, 0xf1, 0xeb, 0xbe, 0xd8, 0xdb, 0xc1, 0x53, 0xc0, 0xb8, 0x4a, 0xa6, 0x1f,
                    0xf0, 0x82, 0x39,
                ],
            ),
            (
                8,
                [
                    0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61, 0x0f, 0x83, 0xe2, 0x64, 0xf3,
                    0x14, 0x97, 0xb4,
                ],
            ),
            (
                15,
                [
                    0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97,
                    0xcf, 0xc3, 0xd9,
                ],
            ),
            (
                63,
                [
                    0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a, 0x50, 0x3e, 0x06, 0x9a, 0x97,
                    0x3f, 0xbd, 0x7c,
                ],
            ),
        ];
        let input: Vec<u8> = (0..64).collect();
        for (len, want) in vectors {
            assert_eq!(reference(&input[..len]), want, "length {len}");
        }
    }

    #[test]
    fn a_partial_word_is_its_bytes_little_endian() {
        let bytes = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd];
        for len in 0..8 {
            let mut word = [0; 8];
            word[..len].copy_from_slice(&bytes[..len]);
            assert_eq!(
                partial_word(&bytes[..len]),
                u64::from_le_bytes(word),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn streaming_in_pieces_is_hashing_at_once() {
        let input: Vec<u8> = (0..64).collect();
        for split in [0, 1, 3, 7, 8, 9, 20, 63, 64] {
            for second in [0, 1, 5, 8, 13] {
                let end = (split + second).min(64);
                let mut h = Sip128::new(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
                h.write(&input[..split]);
                h.write(&input[split..end]);
                h.write(&input[end..]);
                let whole = reference(&input);
                let Key([a, b]) = h.finish();
                assert_eq!(a.to_le_bytes(), whole[..8], "split {split}+{second}");
                assert_eq!(b.to_le_bytes(), whole[8..], "split {split}+{second}");
            }
        }
    }

    #[test]
    fn a_push_key_tells_pushes_apart_as_the_shared_key_does() {
        let keys = Keys::random();
        let push = |xml: &str| Push::parse(xml).expect("a push");
        let text = |id: u64, content: &str| {
            push(&format!(
                "<xml><ToUserName>gh_1</ToUserName><FromUserName>u1</FromUserName><CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>{content}</Content><MsgId>{id}</MsgId></xml>"
            ))
        };
        let event = |from: &str, event: &str| {
            push(&format!(
                "<xml><ToUserName>gh_1</ToUserName><FromUserName>{from}</FromUserName><CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>{event}</Event></xml>"
            ))
        };
        // Each pair: the same shared key, the same in-process key, and back.
        let pairs = [
            (text(1, "a"), text(1, "a")),
            (text(1, "a"), text(1, "b")),
            (text(1, "a"), text(2, "a")),
            (event("u1", "subscribe"), event("u1", "subscribe")),
            (event("u1", "subscribe"), event("u2", "subscribe")),
            (event("u1", "subscribe"), event("u1", "unsubscribe")),
            (text(1, "a"), event("u1", "subscribe")),
        ];
        for (a, b) in &pairs {
            assert_eq!(
                keys.push("wx1", a) == keys.push("wx1", b),
                a.dedupe_key() == b.dedupe_key(),
                "{a:?} / {b:?}"
            );
            assert_ne!(keys.push("wx1", a), keys.push("wx2", a));
        }
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        let keys = Keys::random();
        let query = |timestamp: &str, nonce: &str| PushQuery::<String> {
            signature: "s".into(),
            timestamp: timestamp.into(),
            nonce: nonce.into(),
            ..PushQuery::default()
        };
        assert_eq!(
            keys.signed_query("wx1", &query("12", "3")),
            keys.signed_query("wx1", &query("12", "3"))
        );
        assert_ne!(
            keys.signed_query("wx1", &query("12", "3")),
            keys.signed_query("wx1", &query("1", "23"))
        );
        assert_ne!(
            keys.signed_query("wx1", &query("12", "3")),
            keys.signed_query("wx2", &query("12", "3"))
        );
        // Another process, another secret: other keys.
        assert_ne!(keys.body(b"<xml/>"), Keys::random().body(b"<xml/>"));
    }
}
