//! Issuers: what the center must know about one owner's credentials, and how
//! to fetch them. The center itself knows no family: it keeps, schedules,
//! shares and audits credentials, and asks the owner's [`Issuer`] for the
//! family's rules and for a fetch. A new family (WeCom, Open Platform) is a
//! [`Family`] of data and one issuer.

use std::sync::Arc;

use crate::config::{AppConfig, TokenApi, WecomConfig};
use crate::store::Kind;
use secrecy::ExposeSecret;

use super::policy::{STABLE_FORCED_PER_DAY, STABLE_RENEW_AHEAD, STABLE_RENEW_SPREAD};
pub use crate::family::{Family, MINI_PROGRAM, OFFICIAL_ACCOUNT, WECOM};
use crate::upstream::{Call, Failure, Fetched, Field, Upstream};

/// How one owner's credentials behave and are fetched.
#[async_trait::async_trait]
pub trait Issuer: std::fmt::Debug + Send + Sync {
    /// The owner's family.
    fn family(&self) -> &'static Family;

    /// The owner's id, as the center keys its credentials.
    fn owner(&self) -> &str;

    /// The API its access token comes from, as `/admin` names it
    /// (`stable`, `classic`, `gettoken`).
    fn token_api(&self) -> &'static str;

    /// That API's daily quota per owner, when WeChat publishes one.
    fn daily_quota(&self) -> Option<u64> {
        None
    }

    /// Whether `kind` is kept warm from the start, before anyone asks.
    fn warm(&self, kind: Kind) -> bool;

    /// How far ahead of expiry `kind` is renewed, and the spread of the
    /// jitter added to that, seconds.
    fn renew_ahead(&self, kind: Kind) -> (u64, u64);

    /// For a credential that arrives by push (a platform's verify ticket),
    /// how long after its arrival it is overdue: its "renewal" (asking for a
    /// push) is then due, whatever its lifetime. `None` for fetched ones.
    fn overdue_after(&self, _kind: Kind) -> Option<u64> {
        None
    }

    /// The most forced refreshes of `kind` a day, within `policy_limit`.
    fn forced_daily_limit(&self, kind: Kind, policy_limit: u32) -> u32;

    /// The credentials a fetch of `kind` needs, the owner's own or another
    /// owner's (an authorizer's token needs its component's token); the
    /// center gets each (fetching it if need be) and hands them over as
    /// [`Inputs`]. By default a ticket needs the owner's access token.
    fn depends_on(&self, kind: Kind) -> Vec<Dependency> {
        match kind {
            Kind::AccessToken => Vec::new(),
            _ => vec![Dependency {
                owner: self.owner().to_owned(),
                kind: Kind::AccessToken,
            }],
        }
    }

    /// Checks that `access_token` still works, with the family's cheapest call.
    async fn check(&self, upstream: &Upstream, access_token: &str) -> Result<(), Failure> {
        upstream
            .probe(self.family(), self.owner(), access_token)
            .await
    }

    /// Fetches the owner's access token (`forced`: a new one even if WeChat
    /// would repeat the current one): the one fetch each family does its own way.
    async fn fetch_access_token(
        &self,
        upstream: &Upstream,
        forced: bool,
    ) -> Result<Fetched, Failure>;

    /// Fetches `kind` from WeChat (`forced`: a new value even if WeChat would
    /// repeat the current one), given what [`Issuer::depends_on`] named.
    /// Tickets are fetched with the owner's access token, as the family's
    /// data says.
    async fn fetch(
        &self,
        upstream: &Upstream,
        kind: Kind,
        forced: bool,
        inputs: &Inputs,
    ) -> Result<Fetched, Failure> {
        let access_token = inputs.get(self.owner(), Kind::AccessToken);
        match (kind, access_token) {
            (Kind::AccessToken, _) => self.fetch_access_token(upstream, forced).await,
            (_, Some(token)) => {
                upstream
                    .ticket(self.family(), self.owner(), token, kind)
                    .await
            }
            (_, None) => Err(Failure::transient(
                "a ticket is fetched with an access token",
            )),
        }
    }
}

/// A credential a fetch needs: `owner`'s `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Whose (an owner key).
    pub owner: String,
    /// Which.
    pub kind: Kind,
}

/// The values of a fetch's dependencies.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    values: Vec<(Dependency, String)>,
}

impl Inputs {
    /// The value of `owner`'s `kind`, if the fetch depends on it.
    pub fn get(&self, owner: &str, kind: Kind) -> Option<&str> {
        (self.values.iter())
            .find(|(d, _)| d.owner == owner && d.kind == kind)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or replaces) the value of `dependency`.
    pub fn set(&mut self, dependency: &Dependency, value: String) {
        match self.values.iter_mut().find(|(d, _)| d == dependency) {
            Some((_, v)) => *v = value,
            None => self.values.push((dependency.clone(), value)),
        }
    }

    /// The access token among the inputs, if any: the credential a
    /// rejection (40001, 40014, 42001) of the fetch is about.
    pub(crate) fn access_token(&self) -> Option<(&Dependency, &str)> {
        (self.values.iter())
            .find(|(d, _)| d.kind == Kind::AccessToken)
            .map(|(d, v)| (d, v.as_str()))
    }
}

/// An `[[apps]]` entry, Official Account or Mini Program: a classic or
/// stable access token; for Official Accounts the JS-SDK and card tickets.
#[derive(Debug)]
pub struct AppIssuer {
    app: Arc<AppConfig>,
}

impl AppIssuer {
    /// The issuer of `app`'s credentials.
    pub fn new(app: Arc<AppConfig>) -> Self {
        Self { app }
    }

    fn stable_access_token(&self, kind: Kind) -> bool {
        self.app.token_api == TokenApi::Stable && kind == Kind::AccessToken
    }
}

#[async_trait::async_trait]
impl Issuer for AppIssuer {
    fn family(&self) -> &'static Family {
        self.app.family
    }

    fn warm(&self, kind: Kind) -> bool {
        match kind {
            Kind::AccessToken => true,
            // Pages are signed with it: warm when the app has JS domains.
            Kind::JsapiTicket => !self.app.js_domains.is_empty(),
            // On demand: fetching it for every account would spend quota,
            // and accounts without card permission would fail.
            Kind::WxCardTicket
            | Kind::AgentConfigTicket
            | Kind::VerifyTicket
            | Kind::RefreshToken => false,
        }
    }

    fn renew_ahead(&self, kind: Kind) -> (u64, u64) {
        if self.stable_access_token(kind) {
            // stable_token hands out the next token only in the current one's last 300 s.
            (STABLE_RENEW_AHEAD, STABLE_RENEW_SPREAD)
        } else {
            let ahead = self.app.refresh_ahead_secs;
            (ahead, ahead / 10)
        }
    }

    fn forced_daily_limit(&self, kind: Kind, policy_limit: u32) -> u32 {
        if self.stable_access_token(kind) {
            policy_limit.min(STABLE_FORCED_PER_DAY)
        } else {
            policy_limit
        }
    }

    fn owner(&self) -> &str {
        &self.app.appid
    }

    fn token_api(&self) -> &'static str {
        self.app.token_api.as_str()
    }

    fn daily_quota(&self) -> Option<u64> {
        Some(self.app.token_api.daily_quota())
    }

    async fn fetch_access_token(
        &self,
        upstream: &Upstream,
        forced: bool,
    ) -> Result<Fetched, Failure> {
        let (family, appid) = (self.family(), self.app.appid.as_str());
        let secret = self.app.secret.expose_secret();
        let (endpoint, request) = match self.app.token_api {
            TokenApi::Classic => {
                const ENDPOINT: &str = "/cgi-bin/token";
                let request = upstream.get(family, ENDPOINT).query(&[
                    ("grant_type", "client_credential"),
                    ("appid", appid),
                    ("secret", secret),
                ]);
                (ENDPOINT, request)
            }
            TokenApi::Stable => {
                const ENDPOINT: &str = "/cgi-bin/stable_token";
                let request = upstream.post(family, ENDPOINT).json(&serde_json::json!({
                    "grant_type": "client_credential",
                    "appid": appid,
                    "secret": secret,
                    "force_refresh": forced,
                }));
                (ENDPOINT, request)
            }
        };
        let call = Call::with_secret(family, appid, endpoint);
        upstream.credential(call, request, Field::AccessToken).await
    }
}

/// A WeCom app (or special secret): its token belongs to (corpid, secret),
/// and a repeat fetch does not invalidate the previous token.
#[derive(Debug)]
pub struct WecomIssuer {
    app: Arc<WecomConfig>,
    owner: String,
}

impl WecomIssuer {
    /// The issuer of `app`'s credentials.
    pub fn new(app: Arc<WecomConfig>) -> Self {
        let owner = app.owner();
        Self { app, owner }
    }
}

#[async_trait::async_trait]
impl Issuer for WecomIssuer {
    fn family(&self) -> &'static Family {
        &WECOM
    }

    fn warm(&self, kind: Kind) -> bool {
        kind == Kind::AccessToken || !self.app.js_domains.is_empty()
    }

    fn renew_ahead(&self, kind: Kind) -> (u64, u64) {
        match kind {
            // WeCom answers an early gettoken with the same token and the
            // time it has left (families §1.1): a new one comes only once it
            // has expired, so it is fetched then, not sooner.
            Kind::AccessToken => (0, 0),
            _ => {
                let ahead = self.app.refresh_ahead_secs;
                (ahead, ahead / 10)
            }
        }
    }

    fn forced_daily_limit(&self, _kind: Kind, policy_limit: u32) -> u32 {
        policy_limit
    }

    fn owner(&self) -> &str {
        &self.owner
    }

    fn token_api(&self) -> &'static str {
        "gettoken"
    }

    /// One token per (corpid, secret); a repeat fetch does not invalidate
    /// the previous token (families §1.1).
    async fn fetch_access_token(
        &self,
        upstream: &Upstream,
        _forced: bool,
    ) -> Result<Fetched, Failure> {
        const ENDPOINT: &str = "/cgi-bin/gettoken";
        let request = upstream.get(&WECOM, ENDPOINT).query(&[
            ("corpid", self.app.corpid.as_str()),
            ("corpsecret", self.app.secret.expose_secret()),
        ]);
        let call = Call::with_secret(&WECOM, &self.owner, ENDPOINT);
        upstream.credential(call, request, Field::AccessToken).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(token_api: TokenApi, js: bool) -> AppIssuer {
        let api = match token_api {
            TokenApi::Stable => "stable",
            TokenApi::Classic => "classic",
        };
        let domains = if js { r#"["example.com"]"# } else { "[]" };
        let toml = format!(
            "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\ntoken_api = \"{api}\"\n\
             refresh_ahead_secs = 600\njs_domains = {domains}\n"
        );
        let config = crate::config::load(&toml, &Default::default()).unwrap();
        AppIssuer::new(Arc::new(config.apps.into_iter().next().unwrap()))
    }

    #[test]
    fn official_account_rules() {
        let stable = app(TokenApi::Stable, false);
        assert_eq!(stable.renew_ahead(Kind::AccessToken), (280, 20));
        assert_eq!(stable.renew_ahead(Kind::JsapiTicket), (600, 60));
        assert_eq!(stable.forced_daily_limit(Kind::AccessToken, 100), 20);
        assert_eq!(stable.forced_daily_limit(Kind::JsapiTicket, 100), 100);
        assert!(!stable.warm(Kind::JsapiTicket));
        let classic = app(TokenApi::Classic, true);
        assert_eq!(classic.renew_ahead(Kind::AccessToken), (600, 60));
        assert_eq!(classic.forced_daily_limit(Kind::AccessToken, 100), 100);
        assert!(classic.warm(Kind::AccessToken) && classic.warm(Kind::JsapiTicket));
        assert!(!classic.warm(Kind::WxCardTicket));
        assert_eq!(
            classic.depends_on(Kind::WxCardTicket),
            [Dependency {
                owner: "wx1".into(),
                kind: Kind::AccessToken
            }]
        );
        assert!(classic.depends_on(Kind::AccessToken).is_empty());
        assert_eq!(classic.family(), &OFFICIAL_ACCOUNT);
    }

    #[test]
    fn a_mini_program_has_its_access_token_only() {
        let toml = "[[apps]]\nappid = \"wxmp\"\nsecret = \"s\"\ntype = \"miniprogram\"\n";
        let config = crate::config::load(toml, &Default::default()).unwrap();
        let issuer = AppIssuer::new(Arc::new(config.apps.into_iter().next().unwrap()));
        assert_eq!(issuer.family().kinds, [Kind::AccessToken]);
        assert!(issuer.family().lacks.contains("no JS-SDK"));
    }
}
