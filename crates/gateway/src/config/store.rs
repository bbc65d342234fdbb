//! `[store]`: where credentials persist: `sqlite` (the default, with its
//! `path`), `memory`, or `redis`: one primary (`url`, `redis://` or
//! `rediss://`), Sentinel (`sentinels` and `master`) or Cluster (`cluster`
//! seed nodes); TLS files (`tls_ca_file`, `tls_cert_file`, `tls_key_file`);
//! an ACL `username` and `password` (each also `_env`/`_file`); a `key_prefix`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::raw::RawStore;
use super::secrets::secret;
use super::Problems;
use crate::store::{RedisOptions, RedisTls, RedisTopology};

/// `[store]`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// The embedded default: a SQLite file (default `wxgate.db`).
    Sqlite {
        /// Database file.
        path: PathBuf,
    },
    /// Nothing persists (tests, throwaway runs).
    Memory,
    /// Redis, shared by several instances: where, how to log in, TLS
    /// material (read from its files when the configuration is loaded) and
    /// the key prefix (default `wxgate:`).
    Redis(Box<RedisOptions>),
}

/// The settings only Redis uses, and whether each was given.
fn redis_only(raw: &RawStore) -> [(&'static str, bool); 16] {
    [
        ("url", raw.url.is_some()),
        ("url_env", raw.url_env.is_some()),
        ("url_file", raw.url_file.is_some()),
        ("key_prefix", raw.key_prefix.is_some()),
        ("username", raw.username.is_some()),
        ("username_env", raw.username_env.is_some()),
        ("username_file", raw.username_file.is_some()),
        ("password", raw.password.is_some()),
        ("password_env", raw.password_env.is_some()),
        ("password_file", raw.password_file.is_some()),
        ("tls_ca_file", raw.tls_ca_file.is_some()),
        ("tls_cert_file", raw.tls_cert_file.is_some()),
        ("tls_key_file", raw.tls_key_file.is_some()),
        ("sentinels", raw.sentinels.is_some()),
        ("master", raw.master.is_some()),
        ("cluster", raw.cluster.is_some()),
    ]
}

/// Checks `[store]`: the backend, and settings only Redis uses given only with it.
pub(super) fn check(
    raw: RawStore,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> StoreConfig {
    match raw.backend.as_deref().unwrap_or("sqlite") {
        "redis" => return redis(raw, env, p),
        "sqlite" | "memory" => {}
        other => p.add(
            "store.backend",
            format!("{other:?}: use sqlite, memory or redis"),
        ),
    }
    for (name, given) in redis_only(&raw) {
        if given {
            p.add(
                format!("store.{name}"),
                "only used with backend = \"redis\"",
            );
        }
    }
    match raw.backend.as_deref().unwrap_or("sqlite") {
        "sqlite" => StoreConfig::Sqlite {
            path: PathBuf::from(raw.path.as_deref().unwrap_or("wxgate.db")),
        },
        _ => StoreConfig::Memory,
    }
}

/// `backend = "redis"`: exactly one of `url`, `sentinels` (with `master`) and
/// `cluster`; every URL `redis://` or `rediss://`; TLS files readable PEM,
/// given only with a `rediss://` URL, a certificate with its key.
fn redis(raw: RawStore, env: &BTreeMap<String, String>, p: &mut Problems) -> StoreConfig {
    let url = secret(p, env, "store.url", raw.url, raw.url_env, raw.url_file);
    let username = secret(
        p,
        env,
        "store.username",
        raw.username,
        raw.username_env,
        raw.username_file,
    );
    let password = secret(
        p,
        env,
        "store.password",
        raw.password,
        raw.password_env,
        raw.password_file,
    );
    let mut urls: Vec<(String, String)> = Vec::new();
    let topology = match (url, raw.sentinels, raw.cluster) {
        (Some(url), None, None) => {
            urls.push(("store.url".into(), url.expose_secret().to_owned()));
            Some(RedisTopology::Primary(url))
        }
        (None, Some(sentinels), None) => {
            urls.extend(list("store.sentinels", &sentinels, p));
            match raw.master.clone() {
                Some(master) if !master.is_empty() => {
                    Some(RedisTopology::Sentinel { sentinels, master })
                }
                _ => {
                    p.add(
                        "store.master",
                        "sentinels need the monitored primary's name, e.g. master = \"mymaster\"",
                    );
                    None
                }
            }
        }
        (None, None, Some(seeds)) => {
            urls.extend(list("store.cluster", &seeds, p));
            Some(RedisTopology::Cluster(seeds))
        }
        (None, None, None) => {
            if !p.0.iter().any(|(path, _)| path.starts_with("store.url")) {
                p.add(
                    "store.url",
                    "redis needs url (or url_env / url_file), sentinels with master, or cluster, e.g. url = \"redis://127.0.0.1:6379/0\"",
                );
            }
            None
        }
        _ => {
            p.add(
                "store",
                "give only one of url, sentinels and cluster (one primary, Sentinel or Cluster)",
            );
            None
        }
    };
    if raw.master.is_some() && !matches!(topology, Some(RedisTopology::Sentinel { .. })) {
        p.add("store.master", "only used with sentinels");
    }
    let mut tls_urls = 0;
    for (path, url) in &urls {
        // Not the URL itself in the message: it may hold a password.
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("redis") => {}
            Some("rediss") => tls_urls += 1,
            _ => p.add(path.clone(), "use a redis:// or rediss:// (TLS) URL"),
        }
        if !url.starts_with("redis://") && !url.starts_with("rediss://") {
            continue;
        }
        if redis::IntoConnectionInfo::into_connection_info(url.as_str()).is_err() {
            p.add(
                path.clone(),
                "not a Redis URL (its host, port or database does not read)",
            );
        }
    }
    let tls = tls_files(&raw.tls_ca_file, &raw.tls_cert_file, &raw.tls_key_file, p);
    let tls_given = raw.tls_ca_file.is_some() || raw.tls_cert_file.is_some();
    if tls_given && tls_urls == 0 && !urls.is_empty() {
        p.add(
            "store.tls_ca_file",
            "TLS files are used only with rediss:// URLs",
        );
    }
    match topology {
        Some(topology) => StoreConfig::Redis(Box::new(RedisOptions {
            topology,
            username,
            password,
            tls,
            key_prefix: raw.key_prefix.unwrap_or_else(|| "wxgate:".into()),
        })),
        None => StoreConfig::Memory,
    }
}

/// The URLs of a non-empty list, each with its field path.
fn list(path: &str, urls: &[String], p: &mut Problems) -> Vec<(String, String)> {
    if urls.is_empty() {
        p.add(path, "give at least one URL");
    }
    urls.iter()
        .enumerate()
        .map(|(i, url)| (format!("{path}[{i}]"), url.clone()))
        .collect()
}

/// Reads the TLS files: PEM, a client certificate only with its key.
fn tls_files(
    ca: &Option<String>,
    cert: &Option<String>,
    key: &Option<String>,
    p: &mut Problems,
) -> RedisTls {
    let mut read = |name: &str, file: &Option<String>| {
        let file = file.as_ref()?;
        let path = format!("store.{name}");
        match std::fs::read(file) {
            Ok(pem) if pem.windows(11).any(|w| w == b"-----BEGIN ") => Some(pem),
            Ok(_) => {
                p.add(path, format!("{file} is not PEM (no -----BEGIN line)"));
                None
            }
            Err(e) => {
                p.add(path, format!("reading {file}: {e}"));
                None
            }
        }
    };
    let ca = read("tls_ca_file", ca);
    let cert_pem = read("tls_cert_file", cert);
    let key_pem = read("tls_key_file", key);
    if cert.is_some() != key.is_some() {
        p.add(
            "store.tls_cert_file",
            "a client certificate needs its key: give tls_cert_file and tls_key_file together",
        );
    }
    RedisTls {
        ca,
        client: cert_pem.zip(key_pem),
    }
}
