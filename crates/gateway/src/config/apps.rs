//! `[[apps]]`: WeChat Official Accounts and Mini Programs, each with its
//! AppID and AppSecret, its token API and refresh margin, its JS safe domains,
//! its web authorization domains (`oauth_domains`) and, when it takes pushes, their settings (`config::pushes`). Also the
//! checks `[[wecom]]` entries share: identifiers, JS domains, the default
//! refresh margin.

use std::collections::{BTreeMap, HashSet};

use secrecy::SecretString;

use super::owner::{identifier, js_domains, oauth_domains, owner_secret, refresh_ahead};
use super::pushes::{check_pushes, raw_pushes};
use super::raw::RawApp;
use super::Problems;
use crate::family::{Envelope, Family, MINI_PROGRAM, OFFICIAL_ACCOUNT};
use crate::inbox::Inbox;

/// Which token API an app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenApi {
    /// `POST /cgi-bin/stable_token` (the default): safe with other fetchers.
    Stable,
    /// `GET /cgi-bin/token`: each fetch supersedes the previous token.
    Classic,
}

impl TokenApi {
    /// WeChat's daily quota of this API, per account (protocol reference
    /// §4.1: `/cgi-bin/token` 2,000; `/cgi-bin/stable_token` 500,000).
    pub fn daily_quota(self) -> u64 {
        match self {
            TokenApi::Stable => 500_000,
            TokenApi::Classic => 2_000,
        }
    }

    /// `stable` or `classic`, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenApi::Stable => "stable",
            TokenApi::Classic => "classic",
        }
    }
}

/// One `[[apps]]` entry.
#[derive(Debug)]
pub struct AppConfig {
    /// AppID.
    pub appid: String,
    /// AppSecret.
    pub secret: SecretString,
    /// Where its pushes arrive, when a server token is set.
    pub inbox: Option<std::sync::Arc<Inbox>>,
    /// Official Account or Mini Program (`type`: `official`, `miniprogram`).
    pub family: &'static Family,
    /// Which token API to fetch with.
    pub token_api: TokenApi,
    /// Refresh this long before expiry, seconds (default 600).
    pub refresh_ahead_secs: u64,
    /// JS safe domains: JS-SDK signatures are given only for pages on or under them.
    pub js_domains: Vec<String>,
    /// Web authorization domains (网页授权域名): sign-in redirects are
    /// allowed only to these exact domains (an Official Account's).
    pub oauth_domains: Vec<String>,
}

/// Checks every `[[apps]]` entry. Each appid goes into `seen`, the owners
/// client scopes may name; one given twice is a problem.
pub(super) fn check(
    raw: Vec<RawApp>,
    env: &BTreeMap<String, String>,
    seen: &mut HashSet<String>,
    p: &mut Problems,
) -> Vec<AppConfig> {
    let mut apps = Vec::new();
    for (i, raw_app) in raw.into_iter().enumerate() {
        let appid = raw_app.appid.clone();
        let Some(app) = check_app(raw_app, &format!("apps[{i}]"), env, p) else {
            // Its own problems are reported: a client's scope naming it is not
            // one more ("not a configured appid" would be wrong).
            seen.extend(appid);
            continue;
        };
        if seen.insert(app.appid.clone()) {
            apps.push(app);
        } else {
            p.add(
                format!("apps[{i}].appid"),
                format!("{} appears twice", app.appid),
            );
        }
    }
    apps
}

fn check_app(
    app: RawApp,
    at: &str,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Option<AppConfig> {
    let field = |name: &str| format!("{at}.{name}");
    let appid = identifier(
        app.appid,
        &field("appid"),
        "use the AppID as WeChat shows it (letters, digits, _ and -, at most 64)",
        p,
    );
    let app_secret = owner_secret(
        (app.secret, app.secret_env, app.secret_file),
        &field("secret"),
        "missing: set secret, secret_env or secret_file",
        env,
        p,
    );
    let pushes = check_pushes(raw_pushes!(app), at, env, p);
    let token_api = match app.token_api.as_deref().unwrap_or("stable") {
        "stable" => TokenApi::Stable,
        "classic" => TokenApi::Classic,
        other => {
            p.add(
                field("token_api"),
                format!("{other:?}: use stable or classic"),
            );
            TokenApi::Stable
        }
    };
    let family = match app.app_type.as_deref().unwrap_or("official") {
        "official" => &OFFICIAL_ACCOUNT,
        "miniprogram" => &MINI_PROGRAM,
        other => {
            p.add(
                field("type"),
                format!("{other:?}: use official or miniprogram"),
            );
            &OFFICIAL_ACCOUNT
        }
    };
    if !family.kinds.contains(&crate::store::Kind::JsapiTicket) && !app.js_domains.is_empty() {
        p.add(
            field("js_domains"),
            "Mini Programs have no JS-SDK (no jsapi_ticket): remove js_domains",
        );
    }
    if family.exchange(crate::family::WEB_OAUTH.name).is_none() && !app.oauth_domains.is_empty() {
        p.add(
            field("oauth_domains"),
            "Mini Programs have no web authorization (their users sign in with wx.login and \
             jscode2session): remove oauth_domains",
        );
    }
    // Mini Programs choose XML or JSON in their console; both are read, so a
    // switch there loses no push. push_format records the choice.
    match (app.push_format.as_deref(), family.envelope) {
        (None | Some("xml"), _) | (Some("json"), Envelope::WeChat { json: true }) => {}
        (Some("json"), _) => p.add(
            field("push_format"),
            "Official Accounts push XML: JSON is a Mini Program's choice",
        ),
        (Some(other), _) => p.add(field("push_format"), format!("{other:?}: use xml or json")),
    }
    let inbox = pushes.app_inbox(app.mode.as_deref(), appid.as_deref(), family, at, p);
    let refresh_ahead_secs = refresh_ahead(app.refresh_ahead_secs, &field("refresh_ahead_secs"), p);
    let js_domains = js_domains(&app.js_domains, at, p);
    let oauth_domains = oauth_domains(&app.oauth_domains, at, p);
    Some(AppConfig {
        appid: appid?,
        secret: app_secret?,
        inbox,
        family,
        token_api,
        refresh_ahead_secs,
        js_domains,
        oauth_domains,
    })
}
