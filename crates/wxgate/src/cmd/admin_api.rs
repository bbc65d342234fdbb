//! What the subcommands that ask a running deployment share (`wxgate revoke`,
//! `wxgate rid`): the gateway's URL and admin key from the configuration, the
//! call, and a refusal printed with its hint.

use std::path::PathBuf;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

/// Where the deployment is and how to reach it.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The deployment's configuration file (its listen address and admin key).
    #[arg(short, long, default_value = "wxgate.toml")]
    config: PathBuf,
    /// The gateway's base URL, when not `server.listen` on this host.
    #[arg(long)]
    url: Option<String>,
    /// The admin key, instead of the configuration's (with `--url`, no
    /// configuration file is read: e.g. against `wxgate dev`).
    #[arg(long = "admin-key", env = "WXGATE_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
}

/// A running deployment's admin API.
pub(crate) struct AdminApi {
    base: String,
    key: SecretString,
    http: reqwest::Client,
}

impl AdminApi {
    /// Reads the configuration; `what` names the operation in the error
    /// when no admin key is set.
    pub(crate) fn new(target: Target, what: &str) -> anyhow::Result<Self> {
        if let (Some(url), Some(key)) = (&target.url, &target.admin_key) {
            return Ok(Self {
                base: url.trim_end_matches('/').to_owned(),
                key: SecretString::from(key.clone()),
                http: reqwest::Client::new(),
            });
        }
        let config = super::load_config(&target.config).with_context(|| {
            "give --url and WXGATE_ADMIN_KEY to ask a deployment without its configuration file"
        })?;
        let key = target.admin_key.map(SecretString::from);
        let key = key.or_else(|| config.admin_key.clone()).with_context(|| {
            format!("{what} needs the admin key: set [admin] key_env (or key_file)")
        })?;
        let base = target.url.unwrap_or_else(|| {
            let mut listen = config.server.listen;
            if listen.ip().is_unspecified() {
                listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{listen}")
        });
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            key,
            http: reqwest::Client::new(),
        })
    }

    /// Sends `method path` with the admin key; the status and JSON answer.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
            .send()
            .await
            .with_context(|| format!("calling the gateway at {}: is it running?", self.base))?;
        let status = response.status();
        let body = response.json().await.unwrap_or_default();
        Ok((status, body))
    }
}

/// Prints a refusal (`{"error":{"message","errcode"?,"hint"?}}`) on stderr.
pub(crate) fn print_refusal(what: &str, status: reqwest::StatusCode, body: &serde_json::Value) {
    let error = &body["error"];
    let errcode = error["errcode"]
        .as_i64()
        .map_or_else(String::new, |c| format!(" errcode {c}:"));
    eprintln!(
        "{what} refused (HTTP {}):{errcode} {}",
        status.as_u16(),
        error["message"].as_str().unwrap_or("no reason given")
    );
    if let Some(hint) = error["hint"].as_str() {
        eprintln!("hint: {hint}");
    }
}
