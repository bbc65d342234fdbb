//! Who has credentials: every owner, typed ([`OwnerId`]), with its family
//! and issuer, and the lookups the edges need (a WeCom app by its agent's
//! name or agentid). Owners can be added and removed while the server runs
//! (run-time owners: reloaded apps, Open Platform authorizers); each lookup
//! hands out an `Arc`, so a request keeps the owner it resolved even if the
//! owner is removed meanwhile.

// foldhash, not SipHash: `by_key` is looked up on every request, and
// only configured or authorized owners are ever inserted, so a stranger
// cannot choose colliding keys.
use foldhash::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use secrecy::SecretString;

use crate::config::{AppConfig, ComponentConfig, WecomConfig};
use crate::family::Family;

use super::issuer::{AppIssuer, Issuer, WecomIssuer};
use super::platform::{AuthorizerIssuer, ComponentIssuer};

/// Who holds credentials, typed: the family's own identifiers, so no
/// string convention decides what an id means and ids of different families
/// cannot collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnerId {
    /// An `[[apps]]` entry (Official Account or Mini Program): its appid.
    App(String),
    /// A `[[wecom]]` entry: its corp and its name there (`name`, or the agentid).
    Wecom {
        /// The corpid.
        corp: String,
        /// The app's name within the corp.
        agent: String,
    },
    /// A `[[components]]` entry (an Open Platform platform): its component appid.
    Component(String),
    /// An account that authorized a platform: its appid, and the platform's.
    Authorizer {
        /// The platform's component appid.
        component: String,
        /// The account's appid.
        appid: String,
    },
}

impl OwnerId {
    /// The key the center, the store, metrics, the audit log and client
    /// scopes know the owner by: the appid, or `corpid/name`. One-to-one: an
    /// appid never holds a `/` (the configuration checks it) and a WeCom key
    /// always does. Apps, platforms and authorizers share WeChat's one
    /// namespace of appids (a platform's appid is no account's); an account
    /// both configured and authorizing a platform is kept as configured (see
    /// `crate::platform`). A new variant must keep keys one-to-one (a prefix
    /// of its own).
    pub fn key(&self) -> String {
        match self {
            OwnerId::App(appid) | OwnerId::Component(appid) | OwnerId::Authorizer { appid, .. } => {
                appid.clone()
            }
            OwnerId::Wecom { corp, agent } => format!("{corp}/{agent}"),
        }
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// One owner of credentials: who, of which family, with what.
#[derive(Debug)]
pub struct Owner {
    /// Who.
    pub id: OwnerId,
    /// [`OwnerId::key`], kept.
    pub key: String,
    /// Its family: everything that differs between families, as data.
    pub family: &'static Family,
    /// How its credentials behave and are fetched.
    pub issuer: Arc<dyn Issuer>,
    /// The secret it fetches with (the WeChat-compatible endpoints check callers' against it).
    pub secret: SecretString,
    /// JS safe domains: JS-SDK signatures are given only for pages on or under them.
    pub js_domains: Vec<String>,
    /// The app's AgentId (a WeCom app's; `None` for a special secret and other families).
    pub agentid: Option<u64>,
    /// The configuration of an `[[apps]]` entry (Official Account or Mini Program).
    pub app: Option<Arc<AppConfig>>,
}

impl Owner {
    /// The owner of an `[[apps]]` entry's credentials.
    pub fn app(app: Arc<AppConfig>) -> Self {
        let issuer = Arc::new(AppIssuer::new(app.clone()));
        Self {
            id: OwnerId::App(app.appid.clone()),
            key: app.appid.clone(),
            family: issuer.family(),
            secret: app.secret.clone(),
            js_domains: app.js_domains.clone(),
            agentid: None,
            issuer,
            app: Some(app),
        }
    }

    /// The owner of a `[[wecom]]` entry's credentials.
    pub fn wecom(app: Arc<WecomConfig>) -> Self {
        let id = OwnerId::Wecom {
            corp: app.corpid.clone(),
            agent: app.name.clone(),
        };
        let issuer = Arc::new(WecomIssuer::new(app.clone()));
        Self {
            key: id.key(),
            id,
            family: issuer.family(),
            secret: app.secret.clone(),
            js_domains: app.js_domains.clone(),
            agentid: app.agentid,
            issuer,
            app: None,
        }
    }

    /// The owner of a `[[components]]` entry's credentials (the platform's).
    pub fn component(config: Arc<ComponentConfig>) -> Self {
        let issuer = Arc::new(ComponentIssuer::new(config.clone()));
        Self {
            id: OwnerId::Component(config.component_appid.clone()),
            key: config.component_appid.clone(),
            family: issuer.family(),
            secret: config.secret.clone(),
            js_domains: Vec::new(),
            agentid: None,
            issuer,
            app: None,
        }
    }

    /// The owner of an authorizer's credentials: `appid`, of `family`
    /// (an authorized Official Account or Mini Program), through `platform`.
    pub fn authorizer(
        platform: Arc<ComponentConfig>,
        appid: &str,
        family: &'static Family,
    ) -> Self {
        let issuer = Arc::new(AuthorizerIssuer::new(platform.clone(), appid, family));
        Self {
            id: OwnerId::Authorizer {
                component: platform.component_appid.clone(),
                appid: appid.to_owned(),
            },
            key: appid.to_owned(),
            family,
            // No secret of its own: it fetches through its platform.
            secret: SecretString::from(String::new()),
            js_domains: platform.js_domains.clone(),
            agentid: None,
            issuer,
            app: None,
        }
    }

    /// The corp of a WeCom app.
    pub fn corp(&self) -> Option<&str> {
        match &self.id {
            OwnerId::Wecom { corp, .. } => Some(corp),
            _ => None,
        }
    }

    /// The platform of an authorizer.
    pub fn platform(&self) -> Option<&str> {
        match &self.id {
            OwnerId::Authorizer { component, .. } => Some(component),
            _ => None,
        }
    }
}

/// The owners of credentials; added and removed at run time.
#[derive(Debug, Default)]
pub struct Owners {
    inner: RwLock<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    /// Every owner by its key; looked up on every push and credential
    /// read, through foldhash (only configured or authorized owners are
    /// inserted, so a stranger cannot choose colliding keys).
    by_key: foldhash::HashMap<String, Arc<Owner>>,
    /// WeCom apps by (corpid, name) and (corpid, agentid): their key.
    by_agent: HashMap<(String, String), String>,
    /// The keys of the `[[apps]]` owners, sorted (the `/` mount asks on every push).
    apps: std::collections::BTreeSet<String>,
    /// Former authorizers that revoked their authorization: (platform, when).
    revoked: HashMap<String, (String, u64)>,
}

impl Registry {
    /// Forgets the owner `key` and its lookups; returns it, if it was there.
    fn unindex(&mut self, key: &str) -> Option<Arc<Owner>> {
        let owner = self.by_key.remove(key)?;
        if let OwnerId::Wecom { corp, agent } = &owner.id {
            self.by_agent.remove(&(corp.clone(), agent.clone()));
            if let Some(agentid) = owner.agentid {
                self.by_agent.remove(&(corp.clone(), agentid.to_string()));
            }
        }
        self.apps.remove(key);
        Some(owner)
    }
}

impl Owners {
    /// The owners of `apps` (Official Accounts, Mini Programs), `wecom` apps
    /// and platforms (`components`; their authorizers come at run time).
    pub fn new(
        apps: Vec<Arc<AppConfig>>,
        wecom: Vec<Arc<WecomConfig>>,
        components: Vec<Arc<ComponentConfig>>,
    ) -> Self {
        let owners = Self::default();
        for component in components {
            owners.add(Owner::component(component));
        }
        for app in apps {
            owners.add(Owner::app(app));
        }
        for app in wecom {
            owners.add(Owner::wecom(app));
        }
        owners
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `owner` (replacing one with the same key); returns it.
    pub fn add(&self, owner: Owner) -> Arc<Owner> {
        let owner = Arc::new(owner);
        let mut registry = self.write();
        registry.unindex(&owner.key);
        registry.revoked.remove(&owner.key);
        if let OwnerId::Wecom { corp, agent } = &owner.id {
            registry
                .by_agent
                .insert((corp.clone(), agent.clone()), owner.key.clone());
            if let Some(agentid) = owner.agentid {
                registry
                    .by_agent
                    .insert((corp.clone(), agentid.to_string()), owner.key.clone());
            }
        }
        if owner.app.is_some() {
            registry.apps.insert(owner.key.clone());
        }
        registry.by_key.insert(owner.key.clone(), owner.clone());
        owner
    }

    /// Removes the owner `key`; returns it, if it was there.
    pub fn remove(&self, key: &str) -> Option<Arc<Owner>> {
        self.write().unindex(key)
    }

    /// Removes the authorizer `appid` of `platform`, which revoked its
    /// authorization at `at`: asked for afterwards, it is refused as revoked
    /// (not as unknown). Returns whether it was there.
    pub fn revoke(&self, appid: &str, platform: &str, at: u64) -> bool {
        let mut registry = self.write();
        let removed = registry.unindex(appid).is_some();
        registry
            .revoked
            .insert(appid.to_owned(), (platform.to_owned(), at));
        removed
    }

    /// Why `key` is no owner, when it revoked an authorization.
    pub fn revoked(&self, key: &str) -> Option<super::TokenError> {
        let registry = self.read();
        let (platform, at) = registry.revoked.get(key)?;
        Some(super::TokenError::Revoked {
            owner: key.to_owned(),
            platform: platform.clone(),
            at: *at,
        })
    }

    /// The owner whose key is `key` (an appid, or `corpid/name`).
    pub fn get(&self, key: &str) -> Option<Arc<Owner>> {
        self.read().by_key.get(key).cloned()
    }

    /// The owner `id`.
    pub fn owner(&self, id: &OwnerId) -> Option<Arc<Owner>> {
        match id {
            OwnerId::App(appid) => self.app_owner(appid),
            OwnerId::Wecom { corp, agent } => self.wecom_owner(corp, agent),
            OwnerId::Component(appid) => self.component_owner(appid),
            OwnerId::Authorizer { component, appid } => self
                .app_owner(appid)
                .filter(|o| o.platform() == Some(component)),
        }
    }

    /// The Official Account or Mini Program `appid`: configured, or an
    /// authorizer of a platform.
    pub fn app_owner(&self, appid: &str) -> Option<Arc<Owner>> {
        self.get(appid)
            .filter(|o| matches!(o.id, OwnerId::App(_) | OwnerId::Authorizer { .. }))
    }

    /// The platform `component_appid`.
    pub fn component_owner(&self, component_appid: &str) -> Option<Arc<Owner>> {
        self.get(component_appid)
            .filter(|o| matches!(o.id, OwnerId::Component(_)))
    }

    /// The authorizers of the platform `component_appid` now, sorted by appid.
    pub fn authorizers_of(&self, component_appid: &str) -> Vec<Arc<Owner>> {
        let mut authorizers: Vec<_> = (self.read().by_key.values())
            .filter(|o| o.platform() == Some(component_appid))
            .cloned()
            .collect();
        authorizers.sort_by(|a, b| a.key.cmp(&b.key));
        authorizers
    }

    /// The configuration of the Official Account or Mini Program `appid`.
    pub fn app(&self, appid: &str) -> Option<Arc<AppConfig>> {
        self.get(appid).and_then(|o| o.app.clone())
    }

    /// Every configured appid (Official Accounts and Mini Programs), sorted.
    pub fn appids(&self) -> Vec<String> {
        self.read().apps.iter().cloned().collect()
    }

    /// The Official Account or Mini Program, when it is the only one.
    pub fn only_app(&self) -> Option<Arc<Owner>> {
        let registry = self.read();
        let mut apps = registry.apps.iter();
        match (apps.next(), apps.next()) {
            (Some(only), None) => registry.by_key.get(only).cloned(),
            _ => None,
        }
    }

    /// The WeCom app `agent` (its name or agentid) of `corpid`.
    pub fn wecom_owner(&self, corpid: &str, agent: &str) -> Option<Arc<Owner>> {
        let registry = self.read();
        let key = registry
            .by_agent
            .get(&(corpid.to_owned(), agent.to_owned()))?;
        registry.by_key.get(key).cloned()
    }

    /// The WeCom apps of `corpid`.
    pub fn wecom_apps_of(&self, corpid: &str) -> Vec<Arc<Owner>> {
        (self.read().by_key.values())
            .filter(|o| o.corp() == Some(corpid))
            .cloned()
            .collect()
    }

    /// Every WeCom app's key (`corpid/name`), sorted.
    pub fn wecom_owners(&self) -> Vec<String> {
        let mut keys: Vec<String> = (self.read().by_key.values())
            .filter(|o| o.corp().is_some())
            .map(|o| o.key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// The issuer of `key`'s credentials.
    pub fn issuer(&self, key: &str) -> Option<Arc<dyn Issuer>> {
        self.read().by_key.get(key).map(|o| o.issuer.clone())
    }

    /// Every owner.
    pub fn all(&self) -> Vec<Arc<Owner>> {
        self.read().by_key.values().cloned().collect()
    }

    /// How many owners there are.
    pub fn len(&self) -> usize {
        self.read().by_key.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
