//! The Open Platform's issuers (families §3): a platform's
//! `component_access_token`, fetched with the verify ticket WeChat pushes,
//! and its authorizers' access tokens, fetched with the platform's token and
//! each authorizer's refresh token, which WeChat may replace with any answer.
//! The center keeps, shares and schedules them as every other credential;
//! what differs is here and in the families' data.

use std::sync::Arc;

use wxgate_proto::component::api;
use wxgate_proto::component::TICKET_PUSH_OVERDUE_SECS;
use wxgate_proto::errcode;

use super::issuer::{Dependency, Inputs, Issuer};
use crate::config::ComponentConfig;
use crate::family::{Family, COMPONENT};
use crate::store::Kind;
use crate::upstream::{Failure, Fetched, Rotated, Upstream};
use secrecy::ExposeSecret;

/// How long a refresh token is kept: WeChat's never expire while the
/// account stays authorized (families §3.5), so ten years, renewed never.
pub const REFRESH_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

/// A platform (`[[components]]`): its component token, and the verify
/// ticket that token is fetched with.
#[derive(Debug)]
pub struct ComponentIssuer {
    config: Arc<ComponentConfig>,
}

impl ComponentIssuer {
    /// The issuer of the platform `config`.
    pub fn new(config: Arc<ComponentConfig>) -> Self {
        Self { config }
    }

    /// Asks WeChat to push a verify ticket now (`api_start_push_ticket`).
    pub async fn start_push_ticket(&self, upstream: &Upstream) -> Result<(), Failure> {
        let body = serde_json::json!({
            "component_appid": self.config.component_appid,
            "component_secret": self.config.secret.expose_secret(),
        });
        let owner = &self.config.component_appid;
        (upstream
            .component_json(owner, api::START_PUSH_TICKET, None, &body)
            .await)
            .map(drop)
    }
}

#[async_trait::async_trait]
impl Issuer for ComponentIssuer {
    fn family(&self) -> &'static Family {
        &COMPONENT
    }

    fn owner(&self) -> &str {
        &self.config.component_appid
    }

    fn token_api(&self) -> &'static str {
        "component"
    }

    fn warm(&self, kind: Kind) -> bool {
        matches!(kind, Kind::AccessToken | Kind::VerifyTicket)
    }

    fn renew_ahead(&self, _: Kind) -> (u64, u64) {
        let ahead = self.config.refresh_ahead_secs;
        (ahead, ahead / 10)
    }

    fn overdue_after(&self, kind: Kind) -> Option<u64> {
        // A ticket is "renewed" (WeChat asked to push one) once none has
        // come for 20 minutes: pushes come every 10.
        (kind == Kind::VerifyTicket).then_some(TICKET_PUSH_OVERDUE_SECS)
    }

    fn forced_daily_limit(&self, _: Kind, policy_limit: u32) -> u32 {
        policy_limit
    }

    fn depends_on(&self, kind: Kind) -> Vec<Dependency> {
        match kind {
            Kind::AccessToken => vec![Dependency {
                owner: self.owner().to_owned(),
                kind: Kind::VerifyTicket,
            }],
            _ => Vec::new(),
        }
    }

    async fn fetch_access_token(&self, _: &Upstream, _: bool) -> Result<Fetched, Failure> {
        Err(Failure::transient(
            "a component token is fetched with its verify ticket",
        ))
    }

    async fn fetch(
        &self,
        upstream: &Upstream,
        kind: Kind,
        _forced: bool,
        inputs: &Inputs,
    ) -> Result<Fetched, Failure> {
        let owner = self.owner();
        match (kind, inputs.get(owner, Kind::VerifyTicket)) {
            (Kind::AccessToken, Some(ticket)) => {
                let body = serde_json::json!({
                    "component_appid": owner,
                    "component_appsecret": self.config.secret.expose_secret(),
                    "component_verify_ticket": ticket,
                });
                let answer = upstream
                    .component_json(owner, api::COMPONENT_TOKEN, None, &body)
                    .await;
                match answer {
                    Ok(answer) => fetched(
                        answer["component_access_token"].as_str(),
                        answer["expires_in"].as_u64(),
                        None,
                    ),
                    Err(failure) => {
                        if failure
                            .errcode
                            .is_some_and(errcode::component_ticket_rejected)
                        {
                            // The ticket is stale or not this platform's: ask for a fresh one.
                            let _ = self.start_push_ticket(upstream).await;
                        }
                        Err(failure)
                    }
                }
            }
            (Kind::VerifyTicket, _) => {
                // Tickets are pushed, not fetched: none came for 20 minutes
                // (or none is known yet), so ask WeChat to push one now.
                self.start_push_ticket(upstream).await?;
                Err(Failure::awaiting(
                    NO_TICKET,
                    "check that WeChat can reach POST /component/{component_appid} (the platform's 授权事件接收URL) and that its token and key match",
                ))
            }
            _ => Err(Failure::transient(format!(
                "a platform has no {kind} of its own"
            ))),
        }
    }
}

/// Why a platform has no verify ticket: none pushed since the start (the
/// first comes within 10 minutes) or for 20 minutes.
pub(crate) const NO_TICKET: &str =
    "no component_verify_ticket pushed yet, or none for 20 minutes: \
    WeChat was asked to push one (api_start_push_ticket)";

/// An account that authorized a platform: its access token, fetched through
/// the platform with its refresh token, and (an Official Account's) tickets.
#[derive(Debug)]
pub struct AuthorizerIssuer {
    component: Arc<ComponentConfig>,
    appid: String,
    family: &'static Family,
}

impl AuthorizerIssuer {
    /// The issuer of the authorizer `appid` of the platform `component`, of `family`.
    pub fn new(component: Arc<ComponentConfig>, appid: &str, family: &'static Family) -> Self {
        Self {
            component,
            appid: appid.to_owned(),
            family,
        }
    }

    fn component(&self) -> &str {
        &self.component.component_appid
    }

    /// The refresh token WeChat holds for this authorizer now
    /// (`api_get_authorizer_list`): how a lost or outdated one is recovered
    /// without a new authorization.
    async fn recover_refresh_token(
        &self,
        upstream: &Upstream,
        component_token: &str,
    ) -> Result<String, Failure> {
        let mut offset = 0;
        loop {
            let body = serde_json::json!({
                "component_appid": self.component(),
                "offset": offset,
                "count": api::MAX_AUTHORIZER_LIST_COUNT,
            });
            let answer = upstream
                .component_json(
                    self.component(),
                    api::GET_AUTHORIZER_LIST,
                    Some(component_token),
                    &body,
                )
                .await?;
            let list: api::AuthorizerList = serde_json::from_value(answer)
                .map_err(|e| Failure::transient(format!("unreadable authorizer list: {e}")))?;
            if let Some(item) = list.list.iter().find(|i| i.authorizer_appid == self.appid) {
                if item.refresh_token.is_empty() {
                    break; // Never exchanged: only a new authorization helps.
                }
                return Ok(item.refresh_token.clone());
            }
            offset += api::MAX_AUTHORIZER_LIST_COUNT;
            if list.list.is_empty() || u64::from(offset) >= list.total_count {
                break;
            }
        }
        Err(Failure {
            class: crate::family::FailureClass::Config,
            errcode: Some(errcode::COMPONENT_UNAUTHORIZED),
            message: format!(
                "{} is not among the authorizers of platform {} (or has no refresh token there)",
                self.appid,
                self.component()
            ),
            hint: Some(format!(
                "{} must authorize the platform again (POST /v1/components/{}/authorize_url)",
                self.appid,
                self.component()
            )),
        })
    }

    async fn authorizer_token(
        &self,
        upstream: &Upstream,
        component_token: &str,
        refresh_token: &str,
    ) -> Result<Fetched, Failure> {
        let body = serde_json::json!({
            "component_appid": self.component(),
            "authorizer_appid": self.appid,
            "authorizer_refresh_token": refresh_token,
        });
        let answer = upstream
            .component_json(
                &self.appid,
                api::AUTHORIZER_TOKEN,
                Some(component_token),
                &body,
            )
            .await?;
        let token: api::AuthorizerToken = serde_json::from_value(answer)
            .map_err(|e| Failure::transient(format!("unreadable authorizer token: {e}")))?;
        let rotated = token
            .rotated_refresh_token(refresh_token)
            .map(|new| Rotated {
                kind: Kind::RefreshToken,
                value: new.to_owned(),
                expires_in: REFRESH_TOKEN_LIFETIME_SECS,
            });
        fetched(
            Some(&token.authorizer_access_token),
            Some(token.expires_in),
            rotated,
        )
    }
}

#[async_trait::async_trait]
impl Issuer for AuthorizerIssuer {
    fn family(&self) -> &'static Family {
        self.family
    }

    fn owner(&self) -> &str {
        &self.appid
    }

    fn token_api(&self) -> &'static str {
        "component"
    }

    fn warm(&self, kind: Kind) -> bool {
        matches!(kind, Kind::AccessToken | Kind::RefreshToken)
    }

    fn renew_ahead(&self, kind: Kind) -> (u64, u64) {
        match kind {
            Kind::RefreshToken => (0, 0),
            _ => {
                let ahead = self.component.refresh_ahead_secs;
                (ahead, ahead / 10)
            }
        }
    }

    fn forced_daily_limit(&self, _: Kind, policy_limit: u32) -> u32 {
        policy_limit
    }

    fn depends_on(&self, kind: Kind) -> Vec<Dependency> {
        let component_token = Dependency {
            owner: self.component().to_owned(),
            kind: Kind::AccessToken,
        };
        match kind {
            Kind::AccessToken => vec![
                component_token,
                Dependency {
                    owner: self.appid.clone(),
                    kind: Kind::RefreshToken,
                },
            ],
            Kind::RefreshToken => vec![component_token],
            _ => vec![Dependency {
                owner: self.appid.clone(),
                kind: Kind::AccessToken,
            }],
        }
    }

    async fn fetch_access_token(&self, _: &Upstream, _: bool) -> Result<Fetched, Failure> {
        Err(Failure::transient(
            "an authorizer's token is fetched through its platform",
        ))
    }

    async fn fetch(
        &self,
        upstream: &Upstream,
        kind: Kind,
        _forced: bool,
        inputs: &Inputs,
    ) -> Result<Fetched, Failure> {
        let component_token = inputs.get(self.component(), Kind::AccessToken);
        match (kind, component_token) {
            (Kind::AccessToken, Some(component_token)) => {
                let Some(refresh) = inputs.get(&self.appid, Kind::RefreshToken) else {
                    return Err(Failure::transient("no refresh token to fetch with"));
                };
                match self
                    .authorizer_token(upstream, component_token, refresh)
                    .await
                {
                    // WeChat no longer takes the refresh token kept (rotated,
                    // and its successor lost): recover the current one.
                    Err(f) if f.errcode == Some(errcode::AUTHORIZER_REFRESH_TOKEN_INVALID) => {
                        let current = self
                            .recover_refresh_token(upstream, component_token)
                            .await?;
                        let mut fetched = self
                            .authorizer_token(upstream, component_token, &current)
                            .await?;
                        fetched.rotated.get_or_insert(Rotated {
                            kind: Kind::RefreshToken,
                            value: current,
                            expires_in: REFRESH_TOKEN_LIFETIME_SECS,
                        });
                        Ok(fetched)
                    }
                    other => other,
                }
            }
            (Kind::RefreshToken, Some(component_token)) => {
                let value = self
                    .recover_refresh_token(upstream, component_token)
                    .await?;
                fetched(Some(&value), Some(REFRESH_TOKEN_LIFETIME_SECS), None)
            }
            (Kind::AccessToken | Kind::RefreshToken, None) => {
                Err(Failure::transient("no component token to fetch with"))
            }
            (_, _) => {
                let Some(token) = inputs.get(&self.appid, Kind::AccessToken) else {
                    return Err(Failure::transient(
                        "a ticket is fetched with an access token",
                    ));
                };
                upstream.ticket(self.family, &self.appid, token, kind).await
            }
        }
    }
}

fn fetched(
    value: Option<&str>,
    expires_in: Option<u64>,
    rotated: Option<Rotated>,
) -> Result<Fetched, Failure> {
    match (value, expires_in) {
        (Some(value), Some(expires_in)) if !value.is_empty() => Ok(Fetched {
            value: value.to_owned(),
            expires_in,
            rotated,
        }),
        _ => Err(Failure::transient(
            "WeChat's answer lacks the credential or its expires_in",
        )),
    }
}
