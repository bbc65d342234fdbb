//! `[store]`: where credentials persist: `sqlite` (the default, with its
//! `path`), `memory`, or `redis` (its `url` a secret, and a `key_prefix`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;

use super::raw::RawStore;
use super::secrets::secret;
use super::Problems;

/// `[store]`.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded default: a SQLite file (default `wxgate.db`).
    Sqlite {
        /// Database file.
        path: PathBuf,
    },
    /// Nothing persists (tests, throwaway runs).
    Memory,
    /// Redis, shared by several instances.
    Redis {
        /// `redis://[:password@]host:port/db` (a secret: it may hold a password).
        url: SecretString,
        /// Prefix of every key (default `wxgate:`).
        key_prefix: String,
    },
}

impl PartialEq for StoreConfig {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        match (self, other) {
            (Self::Sqlite { path: a }, Self::Sqlite { path: b }) => a == b,
            (Self::Memory, Self::Memory) => true,
            (
                Self::Redis {
                    url: a,
                    key_prefix: p,
                },
                Self::Redis {
                    url: b,
                    key_prefix: q,
                },
            ) => a.expose_secret() == b.expose_secret() && p == q,
            _ => false,
        }
    }
}

/// Checks `[store]`: the backend, and settings only Redis uses given only with it.
pub(super) fn check(
    raw: RawStore,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> StoreConfig {
    let redis_url = secret(p, env, "store.url", raw.url, raw.url_env, raw.url_file);
    let url_given = redis_url.is_some();
    let store = match raw.backend.as_deref().unwrap_or("sqlite") {
        "sqlite" => StoreConfig::Sqlite {
            path: PathBuf::from(raw.path.as_deref().unwrap_or("wxgate.db")),
        },
        "memory" => StoreConfig::Memory,
        "redis" => match redis_url {
            Some(url) => StoreConfig::Redis {
                url,
                key_prefix: raw.key_prefix.clone().unwrap_or_else(|| "wxgate:".into()),
            },
            None => {
                p.add(
                    "store.url",
                    "redis needs url (or url_env / url_file), e.g. redis://127.0.0.1:6379/0",
                );
                StoreConfig::Memory
            }
        },
        other => {
            p.add(
                "store.backend",
                format!("{other:?}: use sqlite, memory or redis"),
            );
            StoreConfig::Memory
        }
    };
    if raw.backend.as_deref() != Some("redis") {
        for (name, given) in [("url", url_given), ("key_prefix", raw.key_prefix.is_some())] {
            if given {
                p.add(
                    format!("store.{name}"),
                    "only used with backend = \"redis\"",
                );
            }
        }
    }
    store
}
