//! The configuration a gateway runs, and reloading it while requests keep
//! being served (`SIGHUP`, `POST /admin/reload`, `wxgate reload`).
//!
//! A reload reads the file again and checks all of it first: an invalid file
//! changes nothing and every problem is reported. A valid one is applied in
//! an order that keeps every request answered: owners added and changed
//! first (an owner of the same family keeps its credentials, so nothing is
//! fetched again for it; a new one is loaded from the store, or fetched),
//! then the push settings (rules, webhooks, tokens and keys) and the client
//! keys are replaced whole, each in one atomic swap, then the owners the file
//! no longer has are removed (their credentials stop being served and
//! renewed; the store keeps them for an owner added back). Requests under way
//! finish with what they found. The sections a running server cannot take
//! up ([`RESTART_SECTIONS`]) are left as they are, and the answer says a
//! restart is needed.
//!
//! Every instance announces its configuration's fingerprint in a shared
//! store, so `/admin` shows instances that run different files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::{self, Changes, Config, ConfigError, Fingerprint};
use crate::message::Dispatcher;
use crate::store::Store;
use crate::token::owners::Owner;
use crate::token::TokenCenter;

/// How often an instance says again what it runs, seconds; an instance
/// silent for three times as long is taken as gone.
pub const ANNOUNCE_SECS: u64 = 60;

/// Where the configuration is read from again.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    path: PathBuf,
    /// The environment overrides and secrets are read from: the process's
    /// at each reload when `None`.
    env: Option<BTreeMap<String, String>>,
}

impl ConfigSource {
    /// The file at `path`, with the process's environment as it is at each reload.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            env: None,
        }
    }

    /// The file at `path`, with a fixed environment (tests).
    pub fn with_env(path: impl Into<PathBuf>, env: BTreeMap<String, String>) -> Self {
        Self {
            path: path.into(),
            env: Some(env),
        }
    }

    /// The file's path, as given.
    pub fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// Reads and checks the configuration.
    pub async fn read(&self) -> Result<Config, ReloadError> {
        let text =
            tokio::fs::read_to_string(&self.path)
                .await
                .map_err(|e| ReloadError::Unreadable {
                    path: self.path(),
                    error: e.to_string(),
                })?;
        let env = match &self.env {
            Some(env) => env.clone(),
            None => std::env::vars().collect(),
        };
        config::load(&text, &env).map_err(|error| ReloadError::Invalid {
            path: self.path(),
            error,
        })
    }
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was built without a file (`wxgate dev`, a test).
    #[error("this gateway was not started from a configuration file (wxgate dev?): there is nothing to read again")]
    NoSource,
    /// The file cannot be read.
    #[error("reading {path}: {error}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The file has problems; every one is listed.
    #[error("{path}: {error}")]
    Invalid {
        /// The file.
        path: String,
        /// Its problems.
        error: ConfigError,
    },
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// The file read.
    pub file: String,
    /// The fingerprint now.
    pub fingerprint: String,
    /// The fingerprint before.
    pub previous: String,
    /// When, Unix seconds.
    pub at: u64,
    /// What differs (owners added, removed and changed, clients, sections
    /// left until a restart).
    #[serde(flatten)]
    pub changes: Changes,
}

/// The configuration as it runs: its fingerprint, where it came from, the
/// last reload.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStatus {
    /// The fingerprint of the configuration applied last.
    pub fingerprint: String,
    /// The file, when the gateway was started from one.
    pub file: Option<String>,
    /// When it was applied, Unix seconds.
    pub loaded_at: u64,
    /// Reloads applied since the start.
    pub reloads: u64,
    /// The last reload that changed nothing, and why, unless one succeeded since.
    pub last_failure: Option<(u64, String)>,
    /// Sections changed in the file that take effect only after a restart.
    pub restart_required: Vec<&'static str>,
}

/// The configuration a gateway runs, and the reloads of it.
#[derive(Debug)]
pub struct Running {
    /// This instance's name among those sharing the store: [`crate::instance_name`]
    /// (`host:pid`), and `#2`, `#3`… after it for more gateways in one process (tests).
    name: String,
    /// Set once, when the gateway is given its file.
    source: std::sync::OnceLock<ConfigSource>,
    /// The sections as the server started with them.
    started: Fingerprint,
    state: Mutex<State>,
    /// One reload at a time.
    one_at_a_time: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    applied: Fingerprint,
    /// The owners the configuration has (not those added otherwise, such as
    /// a platform's authorizers): what a reload may remove.
    configured: BTreeSet<String>,
    loaded_at: u64,
    reloads: u64,
    last_failure: Option<(u64, String)>,
    restart_required: Vec<&'static str>,
}

/// What a reload changes in a running gateway.
pub(crate) struct Targets<'a> {
    pub(crate) center: &'a TokenCenter,
    pub(crate) dispatcher: &'a Dispatcher,
    pub(crate) platforms: &'a crate::platform::Platforms,
    pub(crate) clients: &'a arc_swap::ArcSwap<crate::clients::Clients>,
    pub(crate) source_check: bool,
}

/// The inboxes of a configuration's entries that take pushes.
pub(crate) fn inboxes_of(config: &Config) -> Vec<Arc<crate::message::Inbox>> {
    (config.apps.iter().filter_map(|a| a.inbox.clone()))
        .chain(config.wecom.iter().filter_map(|w| w.inbox.clone()))
        .collect()
}

impl Running {
    /// The configuration `config`, applied at `now`.
    pub fn new(config: &Config, now: u64) -> Self {
        let configured = (config.apps.iter().map(|a| a.appid.clone()))
            .chain(config.wecom.iter().map(|w| w.owner()))
            .chain(config.components.iter().map(|c| c.component_appid.clone()))
            .collect();
        static GATEWAYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nth = GATEWAYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = match nth {
            0 => crate::instance_name().to_owned(),
            n => format!("{}#{}", crate::instance_name(), n + 1),
        };
        Self {
            name,
            source: std::sync::OnceLock::new(),
            started: config.fingerprint.clone(),
            state: Mutex::new(State {
                applied: config.fingerprint.clone(),
                configured,
                loaded_at: now,
                reloads: 0,
                last_failure: None,
                restart_required: Vec::new(),
            }),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Where a reload reads the configuration from; the first call wins.
    pub fn read_from(&self, source: ConfigSource) {
        let _ = self.source.set(source);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This instance's name among those sharing the store.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fingerprint of the configuration applied last.
    pub fn fingerprint(&self) -> String {
        self.state().applied.whole.clone()
    }

    /// The configuration as it runs.
    pub fn status(&self) -> ConfigStatus {
        let state = self.state();
        ConfigStatus {
            fingerprint: state.applied.whole.clone(),
            file: self.source.get().map(ConfigSource::path),
            loaded_at: state.loaded_at,
            reloads: state.reloads,
            last_failure: state.last_failure.clone(),
            restart_required: state.restart_required.clone(),
        }
    }

    /// Reads the file again and applies it (see the module doc); an invalid
    /// file changes nothing.
    pub(crate) async fn reload(
        &self,
        targets: Targets<'_>,
        now: u64,
    ) -> Result<Reloaded, ReloadError> {
        let _one = self.one_at_a_time.lock().await;
        let read = match self.source.get() {
            Some(source) => source.read().await,
            None => Err(ReloadError::NoSource),
        };
        let config = match read {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!(error = %e, "reload refused: nothing changed");
                targets.center.metrics().config_reloaded("refused");
                self.state().last_failure = Some((now, e.to_string()));
                return Err(e);
            }
        };
        let file = self.source.get().map(ConfigSource::path);
        let reloaded = self.apply(config, targets, now, file.unwrap_or_default());
        tracing::info!(
            fingerprint = %reloaded.fingerprint,
            previous = %reloaded.previous,
            added = reloaded.changes.added.len(),
            removed = reloaded.changes.removed.len(),
            changed = reloaded.changes.changed.len(),
            clients = reloaded.changes.clients.len(),
            restart_required = ?reloaded.changes.restart_required,
            "configuration reloaded"
        );
        Ok(reloaded)
    }

    fn apply(&self, config: Config, targets: Targets<'_>, now: u64, file: String) -> Reloaded {
        let Targets {
            center,
            dispatcher,
            platforms,
            clients,
            source_check,
        } = targets;
        let (previous, configured) = {
            let state = self.state();
            (state.applied.clone(), state.configured.clone())
        };
        let mut changes = previous.changes_to(&config.fingerprint);
        changes.restart_required = self
            .started
            .changes_to(&config.fingerprint)
            .restart_required;
        // Owners first: a push or call for a new owner finds it once its inbox or scope does.
        let mut inboxes = inboxes_of(&config);
        let owners = (config.apps.into_iter().map(|a| Owner::app(Arc::new(a))))
            .chain((config.wecom.into_iter()).map(|w| Owner::wecom(Arc::new(w))))
            .chain((config.components.iter().cloned()).map(|c| Owner::component(Arc::new(c))));
        let mut now_configured = BTreeSet::new();
        for owner in owners {
            now_configured.insert(owner.key.clone());
            center.add_owner(owner);
        }
        // Each platform's authorizers: its new settings, and their inboxes.
        inboxes.extend(platforms.reconfigure(&config.components));
        let metrics = center.metrics();
        metrics.start_at_zero(
            std::iter::empty(),
            inboxes.iter().map(|i| i.owner.as_str()),
            (inboxes.iter().filter(|i| i.previous.is_some())).map(|i| i.owner.as_str()),
        );
        if source_check {
            metrics.start_source_check_at_zero(inboxes.iter().map(|i| i.owner.as_str()));
        }
        dispatcher.set_inboxes(inboxes);
        clients.store(Arc::new(crate::clients::Clients::new(config.clients)));
        for gone in configured.difference(&now_configured) {
            center.remove_owner(gone);
        }
        let fingerprint = config.fingerprint.whole.clone();
        metrics.config_running(&fingerprint);
        metrics.config_reloaded("applied");
        let mut state = self.state();
        state.applied = config.fingerprint;
        state.configured = now_configured;
        state.loaded_at = now;
        state.reloads += 1;
        state.last_failure = None;
        state.restart_required = changes.restart_required.clone();
        Reloaded {
            file,
            fingerprint,
            previous: previous.whole,
            at: now,
            changes,
        }
    }

    /// Tells the instances sharing `store` what this one runs.
    pub async fn announce(&self, store: &dyn Store, now: u64) {
        let info = serde_json::json!({
            "fingerprint": self.fingerprint(),
            "seen_at": now,
        });
        if let Err(e) = store
            .set_instance(&self.name, Some(&info.to_string()))
            .await
        {
            tracing::debug!(error = %e, "could not announce this instance's configuration");
        }
    }

    /// Every instance sharing `store` heard from lately, with its
    /// fingerprint (this one first); instances silent too long are forgotten.
    pub async fn instances(&self, store: &dyn Store, now: u64) -> Vec<InstanceConfig> {
        let me = InstanceConfig {
            instance: self.name.clone(),
            fingerprint: self.fingerprint(),
            seen_at: now,
        };
        let Ok(Some(announced)) = store.instances().await else {
            return vec![me];
        };
        let mut others = Vec::new();
        for (instance, info) in announced {
            if instance == me.instance {
                continue;
            }
            let info: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
            let seen_at = info["seen_at"].as_u64().unwrap_or(0);
            if seen_at + 3 * ANNOUNCE_SECS < now {
                let _ = store.set_instance(&instance, None).await;
                continue;
            }
            let fingerprint = info["fingerprint"].as_str().unwrap_or("?").to_owned();
            others.push(InstanceConfig {
                instance,
                fingerprint,
                seen_at,
            });
        }
        others.sort_by(|a, b| a.instance.cmp(&b.instance));
        std::iter::once(me).chain(others).collect()
    }
}

/// An instance and the configuration it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceConfig {
    /// Its name (`host:pid`).
    pub instance: String,
    /// Its configuration's fingerprint.
    pub fingerprint: String,
    /// When it last said so, Unix seconds.
    pub seen_at: u64,
}
