//! Who has credentials: every configured owner (an app's appid, a WeCom
//! app's `corpid/name`), its configuration and its issuer, and the lookups
//! the edges need (a WeCom app by its agent's name or agentid).

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{AppConfig, WecomConfig};

use super::issuer::{AppIssuer, Issuer, WecomIssuer};

/// The configured owners of credentials.
#[derive(Debug)]
pub struct Owners {
    apps: HashMap<String, Arc<AppConfig>>,
    /// Each owner's issuer: its family's rules and how to fetch.
    issuers: HashMap<String, Arc<dyn Issuer>>,
    /// WeCom apps by (corpid, name) and (corpid, agentid): their owner id.
    wecom_by_agent: HashMap<(String, String), String>,
    /// WeCom apps by owner id.
    wecom_apps: HashMap<String, Arc<WecomConfig>>,
}

impl Owners {
    /// The owners of `apps` (Official Accounts, Mini Programs) and `wecom` apps.
    pub fn new(apps: Vec<Arc<AppConfig>>, wecom: Vec<Arc<WecomConfig>>) -> Self {
        let mut issuers: HashMap<String, Arc<dyn Issuer>> = apps
            .iter()
            .map(|a| {
                let issuer: Arc<dyn Issuer> = Arc::new(AppIssuer::new(a.clone()));
                (a.appid.clone(), issuer)
            })
            .collect();
        let mut wecom_by_agent = HashMap::new();
        let mut wecom_apps = HashMap::new();
        for w in wecom {
            let owner = w.owner();
            wecom_apps.insert(owner.clone(), w.clone());
            wecom_by_agent.insert((w.corpid.clone(), w.name.clone()), owner.clone());
            if let Some(agentid) = w.agentid {
                wecom_by_agent.insert((w.corpid.clone(), agentid.to_string()), owner.clone());
            }
            issuers.insert(owner, Arc::new(WecomIssuer::new(w)));
        }
        let apps = apps.into_iter().map(|a| (a.appid.clone(), a)).collect();
        Self {
            apps,
            issuers,
            wecom_by_agent,
            wecom_apps,
        }
    }

    /// The app's configuration.
    pub fn app(&self, appid: &str) -> Option<&Arc<AppConfig>> {
        self.apps.get(appid)
    }

    /// Every configured appid.
    pub fn appids(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// The owner id (`corpid/name`) of the WeCom app `agent` (its name or
    /// agentid) of `corpid`.
    pub fn wecom_owner(&self, corpid: &str, agent: &str) -> Option<&str> {
        self.wecom_by_agent
            .get(&(corpid.to_owned(), agent.to_owned()))
            .map(String::as_str)
    }

    /// Every configured WeCom app's owner id (`corpid/name`).
    pub fn wecom_owners(&self) -> impl Iterator<Item = &str> {
        self.wecom_apps.keys().map(String::as_str)
    }

    /// The WeCom apps of `corpid`.
    pub fn wecom_apps_of<'a>(
        &'a self,
        corpid: &'a str,
    ) -> impl Iterator<Item = &'a Arc<WecomConfig>> + 'a {
        self.wecom_apps.values().filter(move |w| w.corpid == corpid)
    }

    /// The WeCom app whose owner id is `owner`.
    pub fn wecom_app(&self, owner: &str) -> Option<&Arc<WecomConfig>> {
        self.wecom_apps.get(owner)
    }

    /// The issuer of `owner`'s credentials.
    pub fn issuer(&self, owner: &str) -> Option<&Arc<dyn Issuer>> {
        self.issuers.get(owner)
    }

    /// Every owner with its issuer.
    pub fn issuers(&self) -> impl Iterator<Item = (&str, &Arc<dyn Issuer>)> {
        self.issuers
            .iter()
            .map(|(owner, issuer)| (owner.as_str(), issuer))
    }
}
