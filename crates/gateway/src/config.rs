//! Configuration: `wxgate.toml` plus `WXGATE_…` environment overrides, checked
//! in full before the server starts (protocol contract: `docs/DESIGN.md`).
//!
//! Loading has two stages. [`raw`] mirrors the TOML; [`load`] turns it into a
//! [`Config`] in which secrets are read (inline, `x_env` or `x_file`), AES keys
//! decoded and every value typed, so nothing downstream re-checks. Every
//! problem is collected, each with its field path, and reported at once.

mod admin;
mod env;
mod problems;
mod proxy;
mod raw;
mod secrets;
mod server;
mod store;
mod upstream;

use std::collections::{BTreeMap, HashSet};

use secrecy::SecretString;
use wxgate_proto::{AesKey, MessageCrypto, PushMode};

pub use crate::inbox::{Inbox, Sender};
use crate::rules::Rule;
pub use problems::ConfigError;
use problems::{line_at, locate, problem_path, Problems};
pub use proxy::{
    admin_path, is_credential_path, reserved, ProxyConfig, Reserved, ReservedPath, ADMIN_PATHS,
    CREDENTIAL_PATHS, DEFAULT_ALLOW_PATHS,
};
use raw::{RawApp, RawClient, RawConfig, RawWecom};
pub use secrets::read_secret_file;
use secrets::secret;
pub use server::{ServerConfig, MAX_PUSH_BODY};
pub use store::StoreConfig;
pub use upstream::UpstreamConfig;

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
    /// `[[clients]]`.
    pub clients: Vec<ClientConfig>,
}

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

/// Which family an `[[apps]]` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppType {
    /// An Official Account (服务号/订阅号), the default.
    Official,
    /// A Mini Program (小程序): the same token APIs, no JS-SDK tickets.
    MiniProgram,
}

impl AppType {
    /// `official` or `miniprogram`, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Official => "official",
            AppType::MiniProgram => "miniprogram",
        }
    }
}

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
    /// Official Account or Mini Program.
    pub app_type: AppType,
    /// Which token API to fetch with.
    pub token_api: TokenApi,
    /// Refresh this long before expiry, seconds (default 600).
    pub refresh_ahead_secs: u64,
    /// JS safe domains: JS-SDK signatures are given only for pages on or under them.
    pub js_domains: Vec<String>,
}

/// One `[[clients]]` entry: a business server allowed to use the client API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Name, for logs and the audit log.
    pub name: std::sync::Arc<str>,
    /// SHA-256 of the client key; the key itself is never stored.
    pub key_sha256: [u8; 32],
    /// Which apps it may use.
    pub apps: AppScope,
}

/// The apps a client may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppScope {
    /// `["*"]`.
    All,
    /// These appids.
    Only(HashSet<String>),
}

impl AppScope {
    /// Whether `appid` is in scope.
    pub fn allows(&self, appid: &str) -> bool {
        match self {
            AppScope::All => true,
            AppScope::Only(set) => set.contains(appid),
        }
    }
}

/// An identifier as WeChat issues them (AppID, CorpID): ASCII letters,
/// digits, `_` and `-`, 1 to 64 of them, so it is safe in URLs, keys and logs.
fn is_identifier(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Default refresh margin, seconds.
pub const DEFAULT_REFRESH_AHEAD_SECS: u64 = 600;

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
        Ok(raw) => Some(check(raw, env, &mut problems)),
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

fn check(raw: RawConfig, env: &BTreeMap<String, String>, p: &mut Problems) -> Config {
    let server = server::check(raw.server, p);
    let store = store::check(raw.store, env, p);
    let upstream = upstream::check(raw.upstream, p);
    let admin_key = admin::check(raw.admin, env, p);
    let mut seen = HashSet::new();
    let mut apps = Vec::new();
    let problems_before_apps = p.0.len();
    for (i, raw_app) in raw.apps.into_iter().enumerate() {
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
    let mut wecom: Vec<WecomConfig> = Vec::new();
    for (i, raw_wecom) in raw.wecom.into_iter().enumerate() {
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
    if apps.is_empty() && wecom.is_empty() && problems_before_apps == p.0.len() {
        p.add(
            "apps",
            "no [[apps]] and no [[wecom]]: add at least one account",
        );
    }
    let clients = raw
        .clients
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| check_client(c, &format!("clients[{i}]"), &seen, p))
        .collect();
    let proxy = proxy::check(raw.proxy, p);
    Config {
        server,
        store,
        upstream,
        proxy,
        admin_key,
        apps,
        wecom,
        clients,
    }
}

/// The [`RawPushes`] of a raw `[[apps]]` or `[[wecom]]` entry (the same field names in both).
macro_rules! raw_pushes {
    ($raw:ident) => {
        RawPushes {
            token: [$raw.token, $raw.token_env, $raw.token_file],
            encoding_aes_key: [
                $raw.encoding_aes_key,
                $raw.encoding_aes_key_env,
                $raw.encoding_aes_key_file,
            ],
            webhook: $raw.webhook,
            webhook_secret: [
                $raw.webhook_secret,
                $raw.webhook_secret_env,
                $raw.webhook_secret_file,
            ],
            rules: $raw.rules,
        }
    };
}

fn check_wecom(
    w: RawWecom,
    at: &str,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Option<WecomConfig> {
    let field = |name: &str| format!("{at}.{name}");
    let corpid = match w.corpid {
        None => {
            p.add(field("corpid"), "missing");
            None
        }
        Some(c) if is_identifier(&c) => Some(c),
        Some(c) => {
            p.add(
                field("corpid"),
                format!(
                    "{:?}: use the CorpID as WeCom shows it (letters, digits, _ and -)",
                    crate::logs::escaped(&c)
                ),
            );
            None
        }
    };
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
    if w.secret.is_none() && w.secret_env.is_none() && w.secret_file.is_none() {
        p.add(
            field("secret"),
            "missing (the app's Secret; secret_env = \"…\")",
        );
    }
    let app_secret = secret(
        p,
        env,
        &field("secret"),
        w.secret,
        w.secret_env,
        w.secret_file,
    );
    let pushes = check_pushes(raw_pushes!(w), at, env, p);
    // WeCom always encrypts (§1.5): a token needs its key, and the key's receiveid is the corpid.
    check_replies(&pushes.rules, Sender::WeCom { agentid: w.agentid }, at, p);
    let inbox = match (pushes.token, pushes.key, &corpid, &name) {
        (Some(token), Some(key), Some(corpid), Some(name)) => Some(std::sync::Arc::new(Inbox {
            owner: format!("{corpid}/{name}"),
            sender: Sender::WeCom { agentid: w.agentid },
            token,
            mode: PushMode::Safe(MessageCrypto::new(key, corpid.clone())),
            webhook: pushes.webhook,
            webhook_secret: pushes.webhook_secret,
            rules: pushes.rules,
        })),
        (Some(_), None, _, _) => {
            p.add(
                field("encoding_aes_key"),
                "WeCom callbacks are always encrypted: set the 43-character EncodingAESKey \
                 beside the token",
            );
            None
        }
        (None, Some(_), _, _) => {
            p.add(
                field("token"),
                "callbacks need the Token typed into WeCom's console beside the EncodingAESKey",
            );
            None
        }
        _ => None,
    };
    let refresh_ahead_secs = w.refresh_ahead_secs.unwrap_or(DEFAULT_REFRESH_AHEAD_SECS);
    if !(60..=3600).contains(&refresh_ahead_secs) {
        p.add(
            field("refresh_ahead_secs"),
            format!("{refresh_ahead_secs}: use 60 to 3600 seconds"),
        );
    }
    for (i, domain) in w.js_domains.iter().enumerate() {
        if let Err(e) = check_js_domain(domain) {
            p.add(format!("{at}.js_domains[{i}]"), e);
        }
    }
    Some(WecomConfig {
        corpid: corpid?,
        agentid: w.agentid,
        name: name?,
        secret: app_secret?,
        refresh_ahead_secs,
        js_domains: w
            .js_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        inbox,
    })
}

/// The push settings `[[apps]]` and `[[wecom]]` share, as written; each
/// secret as its value, `_env` and `_file` forms.
struct RawPushes {
    token: [Option<String>; 3],
    encoding_aes_key: [Option<String>; 3],
    webhook: Option<String>,
    webhook_secret: [Option<String>; 3],
    rules: Vec<toml::Table>,
}

/// The push settings, checked. Without a server token no push is taken, so
/// neither a webhook nor rules may be set: nothing would ever reach them.
struct Pushes {
    token: Option<SecretString>,
    key: Option<AesKey>,
    webhook: Option<url::Url>,
    webhook_secret: Option<SecretString>,
    rules: Vec<Rule>,
}

fn check_pushes(
    raw: RawPushes,
    at: &str,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Pushes {
    let field = |name: &str| format!("{at}.{name}");
    let [inline, var, file] = raw.token;
    let token = secret(p, env, &field("token"), inline, var, file);
    let [inline, var, file] = raw.encoding_aes_key;
    let key = secret(p, env, &field("encoding_aes_key"), inline, var, file).and_then(|k| {
        use secrecy::ExposeSecret;
        AesKey::try_new(k.expose_secret())
            .map_err(|e| p.add(field("encoding_aes_key"), e.to_string()))
            .ok()
    });
    let webhook = raw
        .webhook
        .as_deref()
        .and_then(|w| match url::Url::parse(w) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                p.add(field("webhook"), format!("{w:?} is not an http(s) URL"));
                None
            }
        });
    let [inline, var, file] = raw.webhook_secret;
    let webhook_secret = secret(p, env, &field("webhook_secret"), inline, var, file);
    if webhook.is_some() && webhook_secret.is_none() {
        p.add(
            field("webhook_secret"),
            "a webhook needs a secret to sign its requests with (webhook_secret_env = \"…\")",
        );
    }
    let rules = raw
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, table)| {
            Rule::compile(table)
                .map_err(|e| p.add(format!("{at}.rules[{i}]"), e))
                .ok()
        })
        .collect::<Vec<_>>();
    if token.is_none() && (webhook.is_some() || !rules.is_empty()) {
        p.add(
            field("token"),
            "rules and a webhook answer pushes: set the server token pushes are signed with",
        );
    }
    Pushes {
        token,
        key,
        webhook,
        webhook_secret,
        rules,
    }
}

/// Refuses rule replies the sender cannot deliver: WeCom has no transfer to
/// customer service; a Mini Program's replies other than the transfer go out
/// as customer-service messages, which carry text and images only (of the
/// reply types).
fn check_replies(rules: &[Rule], sender: Sender, at: &str, p: &mut Problems) {
    use wxgate_proto::ReplyBody;
    for rule in rules {
        let refused = match (sender, &rule.reply) {
            (Sender::WeCom { .. }, ReplyBody::TransferCustomerService { .. }) => {
                Some("WeCom has no transfer_customer_service reply")
            }
            (
                Sender::MiniProgram,
                ReplyBody::Voice { .. }
                | ReplyBody::Video { .. }
                | ReplyBody::Music { .. }
                | ReplyBody::News { .. },
            ) => Some(
                "a Mini Program answers with transfer_customer_service, or text and images \
                 sent as customer-service messages",
            ),
            _ => None,
        };
        if let Some(why) = refused {
            p.add(
                format!("{at}.rules"),
                format!("a {} reply: {why}", rule.reply.msg_type()),
            );
        }
    }
}

fn check_app(
    app: RawApp,
    at: &str,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Option<AppConfig> {
    let field = |name: &str| format!("{at}.{name}");
    let appid = match app.appid {
        None => {
            p.add(field("appid"), "missing");
            None
        }
        Some(a) if is_identifier(&a) => Some(a),
        Some(a) => {
            p.add(
                field("appid"),
                format!(
                    "{:?}: use the AppID as WeChat shows it (letters, digits, _ and -, at most 64)",
                    crate::logs::escaped(&a)
                ),
            );
            None
        }
    };
    // Missing only when none of the three is given: one that is given but
    // unusable (an unset variable, two at once) has its own problem.
    if app.secret.is_none() && app.secret_env.is_none() && app.secret_file.is_none() {
        p.add(
            field("secret"),
            "missing: set secret, secret_env or secret_file",
        );
    }
    let app_secret = secret(
        p,
        env,
        &field("secret"),
        app.secret,
        app.secret_env,
        app.secret_file,
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
    let app_type = match app.app_type.as_deref().unwrap_or("official") {
        "official" => AppType::Official,
        "miniprogram" => AppType::MiniProgram,
        other => {
            p.add(
                field("type"),
                format!("{other:?}: use official or miniprogram"),
            );
            AppType::Official
        }
    };
    if app_type == AppType::MiniProgram && !app.js_domains.is_empty() {
        p.add(
            field("js_domains"),
            "Mini Programs have no JS-SDK (no jsapi_ticket): remove js_domains",
        );
    }
    // Mini Programs choose XML or JSON in their console; both are read, so a
    // switch there loses no push. push_format records the choice.
    match (app.push_format.as_deref(), app_type) {
        (None | Some("xml"), _) | (Some("json"), AppType::MiniProgram) => {}
        (Some("json"), AppType::Official) => p.add(
            field("push_format"),
            "Official Accounts push XML: JSON is a Mini Program's choice",
        ),
        (Some(other), _) => p.add(field("push_format"), format!("{other:?}: use xml or json")),
    }
    // The mode: plain without a key, safe with one, unless `mode` says otherwise.
    let mode = app.mode.as_deref().unwrap_or(if pushes.key.is_some() {
        "safe"
    } else {
        "plain"
    });
    let crypto = |key: Option<AesKey>, p: &mut Problems| match (key, &appid) {
        (Some(key), Some(appid)) => Some(MessageCrypto::new(key, appid.clone())),
        (None, _) => {
            p.add(
                field("encoding_aes_key"),
                format!("{mode} mode needs the 43-character EncodingAESKey"),
            );
            None
        }
        _ => None,
    };
    let mode = match mode {
        "plain" => Some(PushMode::Plain),
        "compat" => crypto(pushes.key, p).map(PushMode::Compat),
        "safe" => crypto(pushes.key, p).map(PushMode::Safe),
        other => {
            p.add(
                field("mode"),
                format!("{other:?}: use plain, compat or safe"),
            );
            None
        }
    };
    let sender = match app_type {
        AppType::Official => Sender::Official,
        AppType::MiniProgram => Sender::MiniProgram,
    };
    check_replies(&pushes.rules, sender, at, p);
    let inbox = match (pushes.token, mode, &appid) {
        (Some(token), Some(mode), Some(appid)) => Some(std::sync::Arc::new(Inbox {
            owner: appid.clone(),
            sender,
            token,
            mode,
            webhook: pushes.webhook,
            webhook_secret: pushes.webhook_secret,
            rules: pushes.rules,
        })),
        _ => None,
    };
    let refresh_ahead_secs = app.refresh_ahead_secs.unwrap_or(DEFAULT_REFRESH_AHEAD_SECS);
    if !(60..=3600).contains(&refresh_ahead_secs) {
        p.add(
            field("refresh_ahead_secs"),
            format!("{refresh_ahead_secs}: use 60 to 3600 seconds"),
        );
    }
    for (i, domain) in app.js_domains.iter().enumerate() {
        if let Err(e) = check_js_domain(domain) {
            p.add(format!("{at}.js_domains[{i}]"), e);
        }
    }
    Some(AppConfig {
        appid: appid?,
        secret: app_secret?,
        inbox,
        app_type,
        token_api,
        refresh_ahead_secs,
        js_domains: app
            .js_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
    })
}

/// A JS safe domain is a bare domain: no scheme, no port, no path (§5.3).
fn check_js_domain(domain: &str) -> Result<(), String> {
    if domain.contains("://") {
        return Err(format!(
            "{domain:?}: write the bare domain, without the scheme"
        ));
    }
    if domain.contains(['/', ':', '?', '#', ' ']) || domain.is_empty() {
        return Err(format!(
            "{domain:?}: write a bare domain like www.example.com"
        ));
    }
    Ok(())
}

fn check_client(
    c: RawClient,
    at: &str,
    appids: &HashSet<String>,
    p: &mut Problems,
) -> Option<ClientConfig> {
    let name = c.name.unwrap_or_else(|| at.to_owned());
    let key = c.key_sha256.as_deref().and_then(|h| {
        let bytes = hex::decode(h.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        if bytes.is_none() {
            p.add(
                format!("{at}.key_sha256"),
                "must be 64 hex characters: the SHA-256 of the client key",
            );
        }
        bytes
    });
    if c.key_sha256.is_none() {
        p.add(
            format!("{at}.key_sha256"),
            "missing (e.g. `printf %s KEY | sha256sum`)",
        );
    }
    let apps = if c.apps.iter().any(|a| a == "*") {
        AppScope::All
    } else {
        for unknown in c.apps.iter().filter(|a| !appids.contains(*a)) {
            p.add(
                format!("{at}.apps"),
                format!("{unknown:?} is not a configured appid"),
            );
        }
        AppScope::Only(c.apps.into_iter().collect())
    };
    Some(ClientConfig {
        name: name.into(),
        key_sha256: key?,
        apps,
    })
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
