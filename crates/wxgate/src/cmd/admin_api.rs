//! What the subcommands that ask a running deployment share (`wxgate revoke`,
//! `wxgate rid`): the gateway's URL and admin key from the configuration, the
//! call, and a refusal printed with its hint.
//!
//! The admin key never comes from the command line, where every user of the
//! host can read it (`ps`, `/proc/PID/cmdline`): it is read from
//! `WXGATE_ADMIN_KEY`, from `--admin-key-file PATH`, or from the
//! configuration. `--admin-key KEY` is refused (see [`key_on_command_line`])
//! rather than kept with a warning: by the time a warning is printed the key
//! has already been in the process list, and a refusal costs one retyped
//! command. The flag stays hidden so that its refusal can say what to use.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::parser::ValueSource;
use secrecy::{ExposeSecret, SecretString};

/// The id of the admin key's argument.
const ADMIN_KEY_ID: &str = "admin_key";

/// Where the deployment is and how to reach it.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The deployment's configuration file (its listen address and admin key).
    #[arg(short, long, default_value = "wxgate.toml")]
    config: PathBuf,
    /// The gateway's base URL, when not `server.listen` on this host.
    #[arg(long)]
    url: Option<String>,
    /// Refused on the command line; read from `WXGATE_ADMIN_KEY` only.
    #[arg(
        id = ADMIN_KEY_ID,
        long = "admin-key",
        env = "WXGATE_ADMIN_KEY",
        hide = true,
        hide_env_values = true
    )]
    admin_key: Option<String>,
    /// A file holding the admin key, instead of the configuration's (or set
    /// `WXGATE_ADMIN_KEY`; the file wins). With `--url` and a key, no
    /// configuration file is read (e.g. against `wxgate dev`). The key itself
    /// is never an argument: the process list would show it.
    #[arg(long = "admin-key-file", value_name = "PATH")]
    admin_key_file: Option<PathBuf>,
}

/// Why the command line is refused, when it carries an admin key: checked by
/// `main` on the parsed matches, before anything is run.
pub(crate) fn key_on_command_line(matches: &clap::ArgMatches) -> Option<String> {
    let (_, sub) = matches.subcommand()?;
    // Only subcommands with a `Target` have the argument.
    let has = sub.ids().any(|id| id.as_str() == ADMIN_KEY_ID);
    let typed = has && sub.value_source(ADMIN_KEY_ID) == Some(ValueSource::CommandLine);
    typed.then(|| {
        "the admin key is not taken from the command line, where every user of this host \
         can read it (ps, /proc): set WXGATE_ADMIN_KEY, or give --admin-key-file PATH \
         (or let the configuration's [admin] key_env / key_file provide it)"
            .to_owned()
    })
}

/// The first line of a key file (read as the configuration's secret files are), not empty.
fn read_key_file(path: &Path) -> anyhow::Result<SecretString> {
    let reading = || format!("reading the admin key from {}", path.display());
    let text =
        wxgate_gateway::config::read_secret_file(&path.to_string_lossy()).with_context(reading)?;
    let key = text.lines().next().unwrap_or_default().trim();
    anyhow::ensure!(!key.is_empty(), "{}: the file is empty", reading());
    Ok(SecretString::from(key.to_owned()))
}

impl Target {
    /// The configuration file this command reads, unless `--url` and a key
    /// are both given (then none is).
    pub(crate) fn config_file(&self) -> Option<&Path> {
        let key_given = self.admin_key_file.is_some() || self.admin_key.is_some();
        (self.url.is_none() || !key_given).then_some(self.config.as_path())
    }

    /// The key given to this command (file or environment), if any.
    fn given_key(&self) -> anyhow::Result<Option<SecretString>> {
        match (&self.admin_key_file, &self.admin_key) {
            (Some(path), _) => read_key_file(path).map(Some),
            (None, Some(key)) => Ok(Some(SecretString::from(key.clone()))),
            (None, None) => Ok(None),
        }
    }
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
        let given = target.given_key()?;
        if let (Some(url), Some(key)) = (&target.url, &given) {
            return Ok(Self {
                base: url.trim_end_matches('/').to_owned(),
                key: key.clone(),
                http: reqwest::Client::new(),
            });
        }
        let config = super::load_config(&target.config).with_context(|| {
            "give --url and WXGATE_ADMIN_KEY (or --admin-key-file) to ask a deployment \
             without its configuration file"
        })?;
        let key = given
            .or_else(|| config.admin_key.clone())
            .with_context(|| {
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
