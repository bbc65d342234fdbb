//! Request signatures: `signature` on every GET check and push, and
//! `msg_signature` on encrypted pushes and replies (protocol reference §1.3, §3.5).
//!
//! Both are the lowercase hex SHA-1 of the byte-wise sorted concatenation of their
//! parts. Sorting is on the strings as received: `"1700000000"` sorts before `"99"`.

/// A signature in the query did not match the one computed from the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signature mismatch")]
pub struct SignatureMismatch;

/// `signature` over `token`, `timestamp` and `nonce` (protocol reference §1.3).
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    lower_hex(sorted_sha1([token, timestamp, nonce]))
}

/// `msg_signature` over `token`, `timestamp`, `nonce` and the base64 `Encrypt`
/// text exactly as it appears in the XML (protocol reference §3.5).
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    lower_hex(sorted_sha1([token, timestamp, nonce, encrypt]))
}

/// [`msg_signature`] written into `out` instead of a new `String`.
pub(crate) fn msg_signature_hex<'o>(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    out: &'o mut [u8; 40],
) -> &'o str {
    lower_hex_into(sorted_sha1([token, timestamp, nonce, encrypt]), out)
}

/// `digest` as 40 lowercase hex digits in `out` (vector code, as for base64).
fn lower_hex_into(digest: Digest20, out: &mut [u8; 40]) -> &str {
    use hex_simd::AsOut as _;
    hex_simd::encode_as_str(
        &digest,
        out.as_mut_slice().as_out(),
        hex_simd::AsciiCase::Lower,
    )
}

/// Checks a push's or GET check's `signature` in constant time.
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    given: &str,
) -> Result<(), SignatureMismatch> {
    constant_time_eq(sorted_sha1([token, timestamp, nonce]), given)
}

/// Checks an encrypted push's `msg_signature` in constant time.
pub fn verify_msg_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    given: &str,
) -> Result<(), SignatureMismatch> {
    constant_time_eq(sorted_sha1([token, timestamp, nonce, encrypt]), given)
}

/// Whether a request signed at `timestamp` (Unix seconds, as sent) is within
/// `tolerance_secs` of `now`, either way. A timestamp that is not a number is
/// not fresh. Pushes and GET ownership checks share this window, so a
/// captured signed URL cannot be replayed after it.
pub fn timestamp_is_fresh(timestamp: &str, now: u64, tolerance_secs: u64) -> bool {
    timestamp
        .parse::<u64>()
        .is_ok_and(|sent| sent.abs_diff(now) <= tolerance_secs)
}

pub(crate) type Digest20 = [u8; 20];

/// SHA-1 through aws-lc: its assembly (SHA-NI, AVX2 or SSSE3, chosen at run
/// time) hashes a signed push's kilobyte of base64 in a fraction of the
/// instructions portable Rust takes where SHA-NI is missing.
pub(crate) struct Sha1(aws_lc_rs::digest::Context);

impl Sha1 {
    pub(crate) fn new() -> Self {
        Self(aws_lc_rs::digest::Context::new(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        ))
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub(crate) fn finalize(self) -> Digest20 {
        self.0
            .finish()
            .as_ref()
            .try_into()
            .expect("a SHA-1 digest is 20 bytes")
    }

    /// One-shot, without the streaming context's allocation and dispatch.
    pub(crate) fn digest(data: &[u8]) -> Digest20 {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
            .as_ref()
            .try_into()
            .expect("a SHA-1 digest is 20 bytes")
    }
}

/// The parts are joined (on the stack, as a push's or a reply's are) and
/// hashed in one shot: cheaper than aws-lc's streaming context, which
/// allocates its state and dispatches every update.
fn sorted_sha1<const N: usize>(mut parts: [&str; N]) -> Digest20 {
    parts.sort_unstable();
    let len = parts.iter().map(|part| part.len()).sum();
    // A buffer as small as will do: it is zeroed first, and a `signature`
    // (token, timestamp, nonce) needs a tenth of what a push's `Encrypt` does.
    if len <= 128 {
        joined_sha1::<128, N>(parts, len)
    } else if len <= 1024 {
        joined_sha1::<1024, N>(parts, len)
    } else {
        // A long push: joined on the heap, nothing zeroed first.
        let mut joined = Vec::with_capacity(len);
        for part in parts {
            joined.extend_from_slice(part.as_bytes());
        }
        Sha1::digest(&joined)
    }
}

/// The SHA-1 of `parts` joined in a `B`-byte buffer on the stack (`len` ≤ `B`).
fn joined_sha1<const B: usize, const N: usize>(parts: [&str; N], len: usize) -> Digest20 {
    let mut stack = [0u8; B];
    let joined = &mut stack[..len];
    let mut at = 0;
    for part in parts {
        joined[at..at + part.len()].copy_from_slice(part.as_bytes());
        at += part.len();
    }
    Sha1::digest(joined)
}

pub(crate) fn lower_hex(digest: Digest20) -> String {
    lower_hex_into(digest, &mut [0u8; 40]).to_owned()
}

/// Compares `given` with the lowercase hex of `expected`, each letter of
/// `given` read in either case: WeChat sends lowercase hex, and uppercase is
/// accepted too, since case carries no information and some hand-written
/// clients upper-case it. Anything but 40 hex digits is a mismatch (only
/// `A`–`F` are folded, and the expected side holds nothing but `0`–`9` and
/// `a`–`f`). Branch-free over the 40 bytes, compared a word at a time behind
/// an optimizer barrier (`constant_time_eq`).
fn constant_time_eq(expected: Digest20, given: &str) -> Result<(), SignatureMismatch> {
    let given: &[u8; 40] = given.as_bytes().try_into().map_err(|_| SignatureMismatch)?;
    let mut expected_hex = [0u8; 40];
    lower_hex_into(expected, &mut expected_hex);
    let mut folded = [0u8; 40];
    for (f, &b) in folded.iter_mut().zip(given) {
        *f = b | (u8::from(b.wrapping_sub(b'A') < 6) << 5);
    }
    if constant_time_eq::constant_time_eq_n(&expected_hex, &folded) {
        Ok(())
    } else {
        Err(SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_fresh_within_the_tolerance_either_way() {
        let now = 1_700_000_000;
        assert!(timestamp_is_fresh("1700000000", now, 300));
        assert!(timestamp_is_fresh("1699999700", now, 300));
        assert!(timestamp_is_fresh("1700000300", now, 300));
        assert!(!timestamp_is_fresh("1699999699", now, 300));
        assert!(!timestamp_is_fresh("1700000301", now, 300));
        for bad in ["", "-1", "17e8", " 1700000000", "99999999999999999999999"] {
            assert!(!timestamp_is_fresh(bad, now, 300), "{bad:?}");
        }
    }

    #[test]
    fn sorts_as_strings_not_numbers() {
        // "1700000000" < "99" byte-wise: a numeric sort would put 99 first.
        let expected = {
            use sha1::Digest as _;
            hex::encode(sha1::Sha1::digest(b"170000000099tok"))
        };
        assert_eq!(signature("tok", "1700000000", "99"), expected);
    }

    #[test]
    fn a_signature_matches_exactly_when_the_hex_crate_reads_it_as_the_digest() {
        let digest: Vec<u8> = (0..20u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
        let lower = hex::encode(&digest);
        let upper = lower.to_uppercase();
        let mixed: String = lower
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 3 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let mut cases = vec![
            lower.clone(),
            upper,
            mixed,
            String::new(),
            lower[..39].to_owned(),
        ];
        cases.push(format!("{lower}0"));
        cases.push(format!(" {}", &lower[1..]));
        cases.push(format!("{}é", &lower[..38]));
        // Every byte value at the first and the last place.
        for b in 0..=255u8 {
            for at in [0, 39] {
                let mut bytes = lower.clone().into_bytes();
                bytes[at] = b;
                if let Ok(text) = String::from_utf8(bytes) {
                    cases.push(text);
                }
            }
        }
        let digest: Digest20 = digest.try_into().unwrap();
        let mut other = digest;
        other[19] ^= 1;
        for case in &cases {
            let mut decoded = [0u8; 20];
            let decoded = hex::decode_to_slice(case, &mut decoded)
                .ok()
                .map(|()| decoded);
            for d in [digest, other] {
                let matches = constant_time_eq(d, case).is_ok();
                assert_eq!(matches, decoded == Some(d), "{case:?}");
            }
        }
        assert!(constant_time_eq(digest, &lower).is_ok());
    }

    #[test]
    fn aws_lc_sha1_matches_the_sha1_crate_at_every_length_around_the_blocks() {
        use sha1::Digest as _;
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            let expected: Digest20 = sha1::Sha1::digest(&data[..len]).into();
            assert_eq!(Sha1::digest(&data[..len]), expected, "{len}");
            // Fed in pieces, as the sorted parts are.
            let mut h = Sha1::new();
            let (a, b) = data[..len].split_at(len / 3);
            h.update(a);
            h.update(b);
            assert_eq!(h.finalize(), expected, "{len} in pieces");
        }
    }

    #[test]
    fn sorted_parts_are_hashed_joined_on_the_stack_or_the_heap() {
        use sha1::Digest as _;
        for len in [0, 1, 500, 1000, 1001, 1024, 1025, 3000] {
            let encrypt = "E".repeat(len);
            let joined = format!("1700000000{encrypt}nonce7tok");
            let expected = hex::encode(sha1::Sha1::digest(joined.as_bytes()));
            assert_eq!(
                msg_signature("tok", "1700000000", "nonce7", &encrypt),
                expected,
                "{len}"
            );
        }
    }

    #[test]
    fn rejects_a_signature_of_the_wrong_length() {
        let good = signature("t", "1", "2");
        assert!(verify_signature("t", "1", "2", &good).is_ok());
        assert!(verify_signature("t", "1", "2", &good[..39]).is_err());
        assert!(verify_signature("t", "1", "2", "").is_err());
        assert!(verify_signature("t", "1", "2", &good.to_uppercase()).is_ok());
        assert!(verify_signature("t", "1", "2", &format!("{good}00")).is_err());
        let not_hex = format!("{}g", &good[..39]);
        assert!(verify_signature("t", "1", "2", &not_hex).is_err());
    }
}
