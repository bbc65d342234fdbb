//! The configuration file as written (`wxgate.toml`), before any checking.
//! Mirrors the TOML one to one; unknown fields are reported by `config::load`
//! (all of them, with where each is).

use serde::Deserialize;

/// `wxgate.toml`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) server: RawServer,
    #[serde(default)]
    pub(crate) store: RawStore,
    #[serde(default)]
    pub(crate) upstream: RawUpstream,
    #[serde(default)]
    pub(crate) admin: RawAdmin,
    #[serde(default)]
    pub(crate) proxy: RawProxy,
    #[serde(default)]
    pub(crate) apps: Vec<RawApp>,
    #[serde(default)]
    pub(crate) wecom: Vec<RawWecom>,
    #[serde(default)]
    pub(crate) components: Vec<RawComponent>,
    #[serde(default)]
    pub(crate) clients: Vec<RawClient>,
}

/// `[[components]]`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawComponent {
    pub(crate) component_appid: Option<String>,
    #[serde(default)]
    pub(crate) js_domains: Vec<String>,
    pub(crate) secret: Option<String>,
    pub(crate) secret_env: Option<String>,
    pub(crate) secret_file: Option<String>,
    pub(crate) refresh_ahead_secs: Option<u64>,
    pub(crate) token: Option<String>,
    pub(crate) token_env: Option<String>,
    pub(crate) token_file: Option<String>,
    pub(crate) encoding_aes_key: Option<String>,
    pub(crate) encoding_aes_key_env: Option<String>,
    pub(crate) encoding_aes_key_file: Option<String>,
    pub(crate) token_previous: Option<String>,
    pub(crate) token_previous_env: Option<String>,
    pub(crate) token_previous_file: Option<String>,
    pub(crate) encoding_aes_key_previous: Option<String>,
    pub(crate) encoding_aes_key_previous_env: Option<String>,
    pub(crate) encoding_aes_key_previous_file: Option<String>,
    pub(crate) webhook: Option<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) webhook_secret_env: Option<String>,
    pub(crate) webhook_secret_file: Option<String>,
    #[serde(default)]
    pub(crate) rules: Vec<toml::Table>,
}

/// `[[wecom]]`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawWecom {
    pub(crate) corpid: Option<String>,
    pub(crate) agentid: Option<u64>,
    pub(crate) name: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) secret_env: Option<String>,
    pub(crate) secret_file: Option<String>,
    pub(crate) refresh_ahead_secs: Option<u64>,
    #[serde(default)]
    pub(crate) js_domains: Vec<String>,
    pub(crate) token: Option<String>,
    pub(crate) token_env: Option<String>,
    pub(crate) token_file: Option<String>,
    pub(crate) encoding_aes_key: Option<String>,
    pub(crate) encoding_aes_key_env: Option<String>,
    pub(crate) encoding_aes_key_file: Option<String>,
    pub(crate) token_previous: Option<String>,
    pub(crate) token_previous_env: Option<String>,
    pub(crate) token_previous_file: Option<String>,
    pub(crate) encoding_aes_key_previous: Option<String>,
    pub(crate) encoding_aes_key_previous_env: Option<String>,
    pub(crate) encoding_aes_key_previous_file: Option<String>,
    pub(crate) webhook: Option<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) webhook_secret_env: Option<String>,
    pub(crate) webhook_secret_file: Option<String>,
    #[serde(default)]
    pub(crate) rules: Vec<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawServer {
    pub(crate) listen: Option<String>,
    pub(crate) max_body_bytes: Option<usize>,
    pub(crate) timestamp_tolerance_secs: Option<u64>,
    pub(crate) reply_budget_ms: Option<u64>,
    pub(crate) webhook_timeout_ms: Option<u64>,
    pub(crate) shutdown_timeout_secs: Option<u64>,
    pub(crate) dedupe_capacity: Option<usize>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) header_read_timeout_ms: Option<u64>,
    pub(crate) idle_timeout_secs: Option<u64>,
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) trusted_push_sources: Option<String>,
    pub(crate) body_read_timeout_ms: Option<u64>,
    pub(crate) body_min_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawStore {
    pub(crate) backend: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) url_env: Option<String>,
    pub(crate) url_file: Option<String>,
    pub(crate) key_prefix: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) username_env: Option<String>,
    pub(crate) username_file: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) password_env: Option<String>,
    pub(crate) password_file: Option<String>,
    pub(crate) tls_ca_file: Option<String>,
    pub(crate) tls_cert_file: Option<String>,
    pub(crate) tls_key_file: Option<String>,
    pub(crate) sentinels: Option<Vec<String>>,
    pub(crate) master: Option<String>,
    pub(crate) cluster: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawUpstream {
    pub(crate) base_url: Option<String>,
    pub(crate) wecom_base_url: Option<String>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) probe_interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawProxy {
    pub(crate) allow_paths: Option<Vec<String>>,
    pub(crate) max_request_bytes: Option<u64>,
    pub(crate) max_response_bytes: Option<u64>,
    pub(crate) max_spool_bytes: Option<u64>,
    pub(crate) max_spool_bytes_per_caller: Option<u64>,
    pub(crate) timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawAdmin {
    pub(crate) key: Option<String>,
    pub(crate) key_env: Option<String>,
    pub(crate) key_file: Option<String>,
}

/// `[[apps]]`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawApp {
    pub(crate) appid: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) secret_env: Option<String>,
    pub(crate) secret_file: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) token_env: Option<String>,
    pub(crate) token_file: Option<String>,
    pub(crate) encoding_aes_key: Option<String>,
    pub(crate) encoding_aes_key_env: Option<String>,
    pub(crate) encoding_aes_key_file: Option<String>,
    pub(crate) token_previous: Option<String>,
    pub(crate) token_previous_env: Option<String>,
    pub(crate) token_previous_file: Option<String>,
    pub(crate) encoding_aes_key_previous: Option<String>,
    pub(crate) encoding_aes_key_previous_env: Option<String>,
    pub(crate) encoding_aes_key_previous_file: Option<String>,
    pub(crate) mode: Option<String>,
    pub(crate) token_api: Option<String>,
    #[serde(rename = "type")]
    pub(crate) app_type: Option<String>,
    pub(crate) push_format: Option<String>,
    pub(crate) refresh_ahead_secs: Option<u64>,
    #[serde(default)]
    pub(crate) js_domains: Vec<String>,
    #[serde(default)]
    pub(crate) oauth_domains: Vec<String>,
    pub(crate) webhook: Option<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) webhook_secret_env: Option<String>,
    pub(crate) webhook_secret_file: Option<String>,
    #[serde(default)]
    pub(crate) rules: Vec<toml::Table>,
}

/// `[[clients]]`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawClient {
    pub(crate) name: Option<String>,
    pub(crate) key_sha256: Option<String>,
    #[serde(default)]
    pub(crate) apps: Vec<String>,
}
