//! `[[wecom]]`: WeCom self-built apps and special secrets, each with its
//! corpid, agentid or name, secret, refresh margin, JS safe domains and,
//! when it takes callbacks, their settings (`config::pushes`).

use std::collections::{BTreeMap, HashSet};

use secrecy::SecretString;

use super::owner::{identifier, is_identifier, js_domains, owner_secret, refresh_ahead};
use super::pushes::{check_pushes, raw_pushes};
use super::raw::RawWecom;
use super::Problems;
use crate::inbox::Inbox;

/// One `[[wecom]]` entry: a WeCom self-built app, or a special secret
/// (contacts, customer contact…). Its credentials belong to (corpid, secret).
#[derive(Debug)]
pub struct WecomConfig {
    /// The corp.
    pub corpid: String,
    /// The app's AgentId; `None` for a special secret.
    pub agentid: Option<u64>,
    /// Unique within the corp: `name`, or the agentid.
    pub name: String,
    /// The app's secret (`corpsecret`).
    pub secret: SecretString,
    /// Refresh this long before expiry, seconds (default 600).
    pub refresh_ahead_secs: u64,
    /// JS safe domains (可信域名) for JS-SDK signatures.
    pub js_domains: Vec<String>,
    /// Where its callbacks arrive, when a token and key are set.
    pub inbox: Option<std::sync::Arc<Inbox>>,
}

impl WecomConfig {
    /// The credentials' owner: `corpid/name`, as in client scopes and keys.
    pub fn owner(&self) -> String {
        format!("{}/{}", self.corpid, self.name)
    }
}

/// Checks every `[[wecom]]` entry. Each owner (`corpid/name`) goes into
/// `seen`, the owners client scopes may name; two apps of a corp that one
/// name or agentid would both address are a problem.
pub(super) fn check(
    raw: Vec<RawWecom>,
    env: &BTreeMap<String, String>,
    seen: &mut HashSet<String>,
    p: &mut Problems,
) -> Vec<WecomConfig> {
    let mut wecom: Vec<WecomConfig> = Vec::new();
    for (i, raw_wecom) in raw.into_iter().enumerate() {
        let at = format!("wecom[{i}]");
        let Some(app) = check_wecom(raw_wecom, &at, env, p) else {
            continue;
        };
        // `/wecom/{corpid}/{agent}` takes a name or an agentid: each must name one app.
        let handles = |w: &WecomConfig| {
            let mut handles = vec![w.name.clone()];
            handles.extend(w.agentid.map(|a| a.to_string()));
            handles
        };
        let clash = wecom.iter().find(|w| {
            w.corpid == app.corpid && handles(w).iter().any(|h| handles(&app).contains(h))
        });
        if let Some(other) = clash {
            p.add(
                format!("{at}.name"),
                format!(
                    "{} clashes with {}: give each app of a corp its own name and agentid",
                    app.owner(),
                    other.owner()
                ),
            );
        } else {
            seen.insert(app.owner());
            wecom.push(app);
        }
    }
    wecom
}

fn check_wecom(
    w: RawWecom,
    at: &str,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Option<WecomConfig> {
    let field = |name: &str| format!("{at}.{name}");
    let corpid = identifier(
        w.corpid,
        &field("corpid"),
        "use the CorpID as WeCom shows it (letters, digits, _ and -)",
        p,
    );
    let name = match (&w.name, w.agentid) {
        (Some(name), _) if is_identifier(name) => Some(name.clone()),
        (Some(name), _) => {
            p.add(
                field("name"),
                format!("{:?}: letters, digits, _ and -", crate::logs::escaped(name)),
            );
            None
        }
        (None, Some(agentid)) => Some(agentid.to_string()),
        (None, None) => {
            p.add(
                field("name"),
                "a special secret (no agentid) needs a name, unique in its corp",
            );
            None
        }
    };
    let app_secret = owner_secret(
        (w.secret, w.secret_env, w.secret_file),
        &field("secret"),
        "missing (the app's Secret; secret_env = \"…\")",
        env,
        p,
    );
    let pushes = check_pushes(raw_pushes!(w), at, env, p);
    let inbox = pushes.wecom_inbox(corpid.as_deref(), name.as_deref(), w.agentid, at, p);
    let refresh_ahead_secs = refresh_ahead(w.refresh_ahead_secs, &field("refresh_ahead_secs"), p);
    let js_domains = js_domains(&w.js_domains, at, p);
    Some(WecomConfig {
        corpid: corpid?,
        agentid: w.agentid,
        name: name?,
        secret: app_secret?,
        refresh_ahead_secs,
        js_domains,
        inbox,
    })
}
