//! `[admin]`: the key that opens `/admin` and the admin API, a secret given
//! inline, by `key_env` or by `key_file`, of at least 16 characters.

use std::collections::BTreeMap;

use secrecy::SecretString;

use super::raw::RawAdmin;
use super::secrets::secret;
use super::Problems;

/// Checks `[admin]`: the key, if one is set.
pub(super) fn check(
    raw: RawAdmin,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Option<SecretString> {
    let admin_key = secret(p, env, "admin.key", raw.key, raw.key_env, raw.key_file);
    if let Some(key) = &admin_key {
        use secrecy::ExposeSecret;
        if key.expose_secret().chars().count() < 16 {
            p.add(
                "admin.key",
                "use at least 16 characters (e.g. openssl rand -hex 16): it opens the status page",
            );
        }
    }
    admin_key
}
