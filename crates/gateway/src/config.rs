//! Configuration: `wxgate.toml` plus `WXGATE_…` environment overrides, checked
//! in full before the server starts (protocol contract: `docs/DESIGN.md`).
//!
//! Loading has two stages. [`raw`] mirrors the TOML; [`load`] turns it into a
//! [`Config`] in which secrets are read (inline, `x_env` or `x_file`), AES keys
//! decoded and every value typed, so nothing downstream re-checks. Every
//! problem is collected, each with its field path, and reported at once.
//!
//! Each section has a file of its own with its checked type and its checker:
//! `server`, `store`, `upstream`, `admin`, `proxy`, `apps`, `wecom` and
//! `clients`; `pushes` holds the push settings `[[apps]]` and `[[wecom]]`
//! share (and builds their inboxes), `secrets` reads a secret given inline,
//! by `x_env` or by `x_file`, `problems` collects the problems and says where
//! each is, and `env` applies the `WXGATE_…` overrides.

mod admin;
mod apps;
mod clients;
mod components;
mod env;
mod fingerprint;
mod owner;
mod problems;
mod proxy;
mod pushes;
mod raw;
mod secrets;
mod server;
mod store;
mod upstream;
mod wecom;

use std::collections::{BTreeMap, HashSet};

use secrecy::SecretString;

pub use apps::{AppConfig, TokenApi};
pub use clients::{AppScope, ClientConfig};
pub use components::ComponentConfig;
pub use fingerprint::{Changes, Fingerprint, RESTART_SECTIONS};
pub use owner::DEFAULT_REFRESH_AHEAD_SECS;
pub use problems::ConfigError;
use problems::{line_at, locate, problem_path, Problems};
pub use proxy::{
    admin_path, is_credential_path, reserved, ProxyConfig, Reserved, ReservedPath, ADMIN_PATHS,
    COMPONENT_PREFIX, CREDENTIAL_PATHS, DEFAULT_ALLOW_PATHS,
};
use raw::RawConfig;
pub use secrets::read_secret_file;
pub use server::{PushSources, ServerConfig, MAX_PUSH_BODY};
pub use store::StoreConfig;
pub use upstream::UpstreamConfig;
pub use wecom::WecomConfig;

/// Everything wxgate needs to run, checked.
#[derive(Debug)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[upstream]`.
    pub upstream: UpstreamConfig,
    /// `[proxy]`.
    pub proxy: ProxyConfig,
    /// `[admin]` key for `/admin`, if set.
    pub admin_key: Option<SecretString>,
    /// `[[apps]]`, in file order.
    pub apps: Vec<AppConfig>,
    /// `[[wecom]]`, in file order.
    pub wecom: Vec<WecomConfig>,
    /// `[[components]]`, in file order.
    pub components: Vec<ComponentConfig>,
    /// `[[clients]]`.
    pub clients: Vec<ClientConfig>,
    /// Hashes of the effective settings: which configuration this is.
    pub fingerprint: Fingerprint,
}

/// Loads a configuration from TOML text and an environment (`std::env::vars()`
/// in the binary, a map in tests).
pub fn load(toml_text: &str, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let mut problems = Problems::default();
    let mut table: toml::Table = match toml_text.parse::<toml::Table>() {
        Ok(t) => t,
        // The message and line, not the quoted source line: it may hold an inline secret.
        Err(e) => {
            let line = e.span().map_or(0, |s| line_at(toml_text, s.start));
            return Err(problems.fatal("wxgate.toml", format!("line {line}: {}", e.message())));
        }
    };
    let (env_problems, from_env) = env::apply(&mut table, env);
    problems.0.extend(env_problems);
    let fingerprint = Fingerprint::of(&table);
    // Every unknown key is a problem of its own; reading goes on past them.
    let mut unknown = Vec::new();
    let raw = serde_path_to_error::deserialize::<_, RawConfig>(serde_ignored::Deserializer::new(
        toml::Value::Table(table),
        &mut |path: serde_ignored::Path<'_>| unknown.push(problem_path(&path.to_string())),
    ));
    for path in unknown {
        problems.add(
            path,
            "unknown setting (a typo? see docs/DESIGN.md for the names)",
        );
    }
    let config = match raw {
        Ok(raw) => Some(check(raw, env, fingerprint, &mut problems)),
        Err(e) => {
            let path = problem_path(&e.path().to_string());
            problems.add(path, e.into_inner().to_string());
            None
        }
    };
    match config {
        Some(config) if problems.0.is_empty() => Ok(config),
        _ => Err(ConfigError {
            problems: locate(problems.0, toml_text, &from_env),
        }),
    }
}

/// Checks the sections in turn, so the problems come in this order.
fn check(
    raw: RawConfig,
    env: &BTreeMap<String, String>,
    fingerprint: Fingerprint,
    p: &mut Problems,
) -> Config {
    let server = server::check(raw.server, p);
    let store = store::check(raw.store, env, p);
    let upstream = upstream::check(raw.upstream, p);
    let admin_key = admin::check(raw.admin, env, p);
    // What client scopes may name: every appid and WeCom owner.
    let mut seen = HashSet::new();
    let problems_before_apps = p.0.len();
    let apps = apps::check(raw.apps, env, &mut seen, p);
    let wecom = wecom::check(raw.wecom, env, &mut seen, p);
    let components = components::check(raw.components, env, &mut seen, p);
    if apps.is_empty()
        && wecom.is_empty()
        && components.is_empty()
        && problems_before_apps == p.0.len()
    {
        p.add(
            "apps",
            "no [[apps]], [[wecom]] or [[components]]: add at least one account",
        );
    }
    // A platform's authorizers are known at run time: with one, a scope may
    // name appids the file does not.
    let clients = clients::check(raw.clients, &seen, !components.is_empty(), p);
    let proxy = proxy::check(raw.proxy, p);
    Config {
        server,
        store,
        upstream,
        proxy,
        admin_key,
        apps,
        wecom,
        components,
        clients,
        fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n";

    #[test]
    fn body_rate_and_spool_share_have_defaults_and_bounds() {
        let config = load(APP, &BTreeMap::new()).unwrap();
        let limits = config.server.limits();
        assert_eq!(limits.body_read_timeout, std::time::Duration::from_secs(10));
        assert_eq!(limits.body_min_rate, 1024);
        // A quarter of the spool, but at least one largest body.
        assert_eq!(config.proxy.max_spool_bytes_per_caller, 64 << 20);
        let toml = format!("[proxy]\nmax_request_bytes = 1000\nmax_spool_bytes = 2000\n{APP}");
        let config = load(&toml, &BTreeMap::new()).unwrap();
        assert_eq!(config.proxy.max_spool_bytes_per_caller, 1000);

        let toml = format!(
            "[server]\nbody_read_timeout_ms = 50\nbody_min_bytes_per_sec = 0\n\
             [proxy]\nmax_request_bytes = 1000\nmax_spool_bytes = 2000\n\
             max_spool_bytes_per_caller = 999\n{APP}"
        );
        let err = load(&toml, &BTreeMap::new()).unwrap_err().to_string();
        for field in [
            "server.body_read_timeout_ms",
            "server.body_min_bytes_per_sec",
            "proxy.max_spool_bytes_per_caller",
        ] {
            assert!(err.contains(field), "{field} not in {err}");
        }
    }
}
