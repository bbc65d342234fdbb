//! The business servers allowed to use the client API (`[[clients]]`),
//! as a running gateway holds them: replaced whole by a reload, with the
//! keys they have proven since they were loaded.

use std::sync::OnceLock;

use subtle::ConstantTimeEq;

use crate::config::ClientConfig;
use crate::message::keys::{Key, Keys};

/// The `[[clients]]` in force (a reload replaces them whole), and the keys
/// they have proven since.
///
/// A key is proven once by its SHA-256, as `key_sha256` holds it; then its
/// SipHash digest (under a secret drawn when the list was loaded, 128 bits:
/// [`Keys`]) stands for it, a tenth of the instructions. The key itself is
/// never kept. A digest is only ever stored for a key that matched, so a
/// stranger's attempts add nothing, and each request is compared with every
/// proven digest, in constant time, before the SHA-256 of one never seen.
#[derive(Debug)]
pub struct Clients {
    pub(crate) configs: Vec<ClientConfig>,
    /// `configs[i]`'s key's digest, once it was presented and matched.
    proven: Vec<OnceLock<Key>>,
    secret: Keys,
}

impl Clients {
    /// `configs`, none of their keys proven yet.
    pub fn new(configs: Vec<ClientConfig>) -> Self {
        Self {
            proven: configs.iter().map(|_| OnceLock::new()).collect(),
            configs,
            secret: Keys::random(),
        }
    }

    /// The index of the client whose key is `key`, if any.
    pub(crate) fn find(&self, key: &str) -> Option<usize> {
        let digest = self.secret.client_key(key.as_bytes());
        // Every proven digest compared, in constant time each, so timing tells nothing.
        let mut found = None;
        for (index, proven) in self.proven.iter().enumerate() {
            if proven.get().is_some_and(|p| bool::from(p.ct_eq(&digest))) {
                found = Some(index);
            }
        }
        if found.is_some() {
            return found;
        }
        let hash = key_sha256(key);
        for (index, client) in self.configs.iter().enumerate() {
            if bool::from(client.key_sha256.ct_eq(&hash)) {
                found = Some(index);
            }
        }
        // Only one key has a client's SHA-256: a second `set` finds it there.
        let _ = found.map(|index| self.proven[index].set(digest));
        found
    }
}

/// The SHA-256 of a presented client key, as `[[clients]] key_sha256`
/// holds it: through aws-lc's assembly, a fraction of the portable code's
/// instructions on a machine without SHA extensions.
fn key_sha256(key: &str) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes())
        .as_ref()
        .try_into()
        .expect("a SHA-256 digest is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn key_sha256_is_sha256() {
        for key in [
            "",
            "k",
            "a-client-key-of-some-length-0123456789",
            &"x".repeat(200),
        ] {
            let expected: [u8; 32] = sha2::Sha256::digest(key.as_bytes()).into();
            assert_eq!(key_sha256(key), expected, "{key:?}");
        }
    }

    fn client(name: &str, key: &str) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            key_sha256: key_sha256(key),
            apps: crate::config::AppScope::All,
        }
    }

    #[test]
    fn a_key_is_found_by_its_sha256_then_by_its_proven_digest_and_no_other_key_is() {
        let key = "a-client-key-of-some-length-0123456789";
        let clients = Clients::new(vec![client("a", "another-key"), client("b", key)]);
        let near = "a-client-key-of-some-length-012345678X";
        for wrong in [near, "", "another-keY", &key[1..]] {
            assert_eq!(clients.find(wrong), None, "{wrong:?}");
        }
        assert!(
            clients.proven.iter().all(|p| p.get().is_none()),
            "a wrong key proves nothing"
        );
        assert_eq!(clients.find(key), Some(1));
        let digest = clients.secret.client_key(key.as_bytes());
        assert_eq!(clients.proven[1].get(), Some(&digest));
        assert_eq!(clients.proven[0].get(), None);
        // Proven: found again, and still nothing else is, however close.
        assert_eq!(clients.find(key), Some(1));
        assert_eq!(clients.find(near), None);
        assert_eq!(clients.find("another-key"), Some(0));
        // A reloaded list proves its keys again, under its own secret.
        let reloaded = Clients::new(vec![client("b", key)]);
        assert_eq!(reloaded.proven[0].get(), None);
        assert_eq!(reloaded.find(key), Some(0));
        assert_ne!(reloaded.proven[0].get(), Some(&digest));
    }
}
