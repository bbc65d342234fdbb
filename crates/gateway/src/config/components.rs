//! `[[components]]`: Open Platform third-party platforms (第三方平台). A
//! platform's own credential is its `component_access_token`; its push
//! settings (always encrypted) open the verify ticket and authorization
//! events at `/component/{component_appid}` and, with its rules and webhook,
//! every authorizer's pushes at `/component/{component_appid}/wx/{appid}`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use secrecy::SecretString;

use super::owner::{identifier, js_domains, owner_secret, refresh_ahead};
use super::pushes::{check_pushes, raw_pushes};
use super::raw::RawComponent;
use super::Problems;
use crate::inbox::Inbox;

/// One `[[components]]` entry, checked.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// The platform's AppID (`component_appid`).
    pub component_appid: String,
    /// Its AppSecret (`component_appsecret`).
    pub secret: SecretString,
    /// Its pushes' token and key, and the rules and webhook of its
    /// authorizers' pushes (the inbox's owner is the platform; each
    /// authorizer gets a copy of its own, [`Inbox::for_owner`]).
    pub inbox: Option<Arc<Inbox>>,
    /// Refresh its token, and its authorizers', this long before expiry, seconds.
    pub refresh_ahead_secs: u64,
    /// JS safe domains of its authorizers' pages (an Official Account
    /// authorizer's JS-SDK signatures are given for pages under them).
    pub js_domains: Vec<String>,
}

/// Checks every `[[components]]` entry; each appid goes into `seen` (client
/// scopes may name a platform), one given twice is a problem.
pub(super) fn check(
    raw: Vec<RawComponent>,
    env: &BTreeMap<String, String>,
    seen: &mut HashSet<String>,
    p: &mut Problems,
) -> Vec<ComponentConfig> {
    let mut components = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let at = format!("components[{i}]");
        let field = |name: &str| format!("{at}.{name}");
        let appid = identifier(
            c.component_appid.clone(),
            &field("component_appid"),
            "use the platform's AppID as the Open Platform shows it",
            p,
        );
        let secret = owner_secret(
            (
                c.secret.clone(),
                c.secret_env.clone(),
                c.secret_file.clone(),
            ),
            &field("secret"),
            "missing (the platform's AppSecret; secret_env = \"…\")",
            env,
            p,
        );
        let refresh_ahead_secs =
            refresh_ahead(c.refresh_ahead_secs, &field("refresh_ahead_secs"), p);
        let js_domains = js_domains(&c.js_domains, &at, p);
        let pushes = check_pushes(raw_pushes!(c), &at, env, p);
        let inbox = pushes.component_inbox(appid.as_deref(), &at, p);
        let (Some(appid), Some(secret)) = (appid, secret) else {
            continue;
        };
        if !seen.insert(appid.clone()) {
            p.add(
                field("component_appid"),
                format!("{appid} appears twice (or is also an [[apps]] appid)"),
            );
            continue;
        }
        components.push(ComponentConfig {
            component_appid: appid,
            secret,
            inbox,
            refresh_ahead_secs,
            js_domains,
        });
    }
    components
}
