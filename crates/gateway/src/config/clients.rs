//! `[[clients]]`: the business servers allowed to use the client API and the
//! proxy, each known by the SHA-256 of its key, and the apps it may use.

use std::collections::HashSet;

use super::raw::RawClient;
use super::Problems;

/// One `[[clients]]` entry: a business server allowed to use the client API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Name, for logs and the audit log.
    pub name: std::sync::Arc<str>,
    /// SHA-256 of the client key; the key itself is never stored.
    pub key_sha256: [u8; 32],
    /// Which apps it may use.
    pub apps: AppScope,
}

/// The apps a client may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppScope {
    /// `["*"]`.
    All,
    /// These appids.
    Only(HashSet<String>),
}

impl AppScope {
    /// Whether `appid` is in scope.
    pub fn allows(&self, appid: &str) -> bool {
        match self {
            AppScope::All => true,
            AppScope::Only(set) => set.contains(appid),
        }
    }
}

/// Checks every `[[clients]]` entry; `appids` are the owners a scope may name.
pub(super) fn check(
    raw: Vec<RawClient>,
    appids: &HashSet<String>,
    authorizers: bool,
    p: &mut Problems,
) -> Vec<ClientConfig> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, c)| check_client(c, &format!("clients[{i}]"), appids, authorizers, p))
        .collect()
}

/// `authorizers`: a platform is configured, so an appid the file does not
/// have may be one of its authorizers (known at run time): allowed, if it
/// looks like an appid.
fn check_client(
    c: RawClient,
    at: &str,
    appids: &HashSet<String>,
    authorizers: bool,
    p: &mut Problems,
) -> Option<ClientConfig> {
    let name = c.name.unwrap_or_else(|| at.to_owned());
    let key = c.key_sha256.as_deref().and_then(|h| {
        let bytes = hex::decode(h.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        if bytes.is_none() {
            p.add(
                format!("{at}.key_sha256"),
                "must be 64 hex characters: the SHA-256 of the client key",
            );
        }
        bytes
    });
    if c.key_sha256.is_none() {
        p.add(
            format!("{at}.key_sha256"),
            "missing (e.g. `printf %s KEY | sha256sum`)",
        );
    }
    let apps = if c.apps.iter().any(|a| a == "*") {
        AppScope::All
    } else {
        let may_be_authorizer =
            |a: &str| authorizers && !a.contains('/') && super::owner::is_identifier(a);
        for unknown in (c.apps.iter()).filter(|a| !appids.contains(*a) && !may_be_authorizer(a)) {
            p.add(
                format!("{at}.apps"),
                format!("{unknown:?} is not a configured appid"),
            );
        }
        AppScope::Only(c.apps.into_iter().collect())
    };
    Some(ClientConfig {
        name: name.into(),
        key_sha256: key?,
        apps,
    })
}
