//! The Open Platform (第三方平台, families reference §3) as rules on [`State`]:
//! verify tickets minted every 10 minutes and valid 12 hours, component
//! tokens that supersede each other after the grace period, pre-auth and
//! single-use authorization codes, authorizers with their refresh tokens
//! (rotated on demand, the old one valid 5 minutes more), and authorizer
//! access tokens that work on the ordinary APIs like an app's own.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use wxgate_proto::component::api as wire;
use wxgate_proto::component::authorize::redirect_url;
use wxgate_proto::component::release_check;
use wxgate_proto::{errcode, Authorization, ComponentInfo, ComponentPush};

use super::{path, plain_ip, AppState, Credential, Issued, State, REMEMBER_DEAD};
use crate::config::{AppKind, Rotation, SimComponent, SimConfig};
use crate::error::{Answered, WxError};
use crate::stats::ComponentStats;

/// A component API's JSON body, as an object; `None` when it is not one.
pub(crate) type ComponentBody = Option<Map<String, Value>>;

/// `POST /sim/authorize`: an administrator scans the authorization page.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AuthorizeRequest {
    pub(crate) component_appid: String,
    /// The code the page was opened with; checked when given.
    #[serde(default)]
    pub(crate) pre_auth_code: Option<String>,
    pub(crate) authorizer_appid: String,
    /// `official` (default) or `miniprogram`.
    #[serde(default, rename = "type")]
    pub(crate) kind: AppKind,
    /// Where the browser goes afterwards.
    #[serde(default)]
    pub(crate) redirect_uri: Option<String>,
    /// The permission sets granted (`funcscope_category` ids).
    #[serde(default)]
    pub(crate) func_info: Option<Vec<u32>>,
}

/// What `/sim/authorize` answers.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Authorized {
    pub(crate) component_appid: String,
    pub(crate) authorizer_appid: String,
    /// `authorized` or `updateauthorized`.
    pub(crate) info_type: String,
    pub(crate) authorization_code: String,
    pub(crate) expires_in: u64,
    /// `redirect_uri?auth_code=…&expires_in=…`, when a redirect_uri was given.
    pub(crate) redirect_url: Option<String>,
}

/// A push to a platform's authorization-event URL, to be sealed and sent.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingPush {
    pub(crate) component_appid: String,
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) encoding_aes_key: String,
    pub(crate) push: ComponentPush,
}

struct Authorizer {
    kind: AppKind,
    authorized: bool,
    auth_time: u64,
    /// The current refresh token; `None` until an authorization code is exchanged.
    refresh_token: Option<String>,
    /// The newest authorizer access token.
    token: Option<String>,
    func_info: Vec<u32>,
}

struct Platform {
    config: SimComponent,
    /// The newest component_access_token.
    token: Option<String>,
    /// Virtual time of the next ticket push.
    next_ticket_at: u64,
    /// The newest ticket.
    ticket: Option<String>,
    authorizers: BTreeMap<String, Authorizer>,
    rotation: Rotation,
    /// (Beijing day, api_component_token calls).
    quota: (u64, u32),
    stats: ComponentStats,
}

struct AuthCode {
    component: String,
    authorizer: String,
    expires_at: u64,
    /// The authorizer access token its exchange returned.
    exchanged_for: Option<String>,
}

struct RefreshToken {
    component: String,
    authorizer: String,
    revoked_at: Option<u64>,
}

/// The Open Platform part of the simulator's state.
#[derive(Default)]
pub(crate) struct ComponentState {
    platforms: HashMap<String, Platform>,
    /// component_access_tokens (`Credential::appid` is the component appid).
    tokens: HashMap<String, Credential>,
    /// ticket → (component appid, expires_at).
    tickets: HashMap<String, (String, u64)>,
    /// pre_auth_code → (component appid, expires_at).
    pre_auth_codes: HashMap<String, (String, u64)>,
    auth_codes: HashMap<String, AuthCode>,
    refresh_tokens: HashMap<String, RefreshToken>,
    /// Pushes sent to the platforms, oldest first (the newest 1000).
    pub(crate) pushes: Vec<crate::component::ComponentPushRecord>,
}

fn secret_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 24]>()))
}

/// A non-empty string field of a body.
fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The `gh_…` original id the simulator gives an account (WeChat's release
/// test accounts keep their real ones).
pub(crate) fn original_id(appid: &str) -> String {
    match appid {
        release_check::TEST_OFFICIAL_APPID => "gh_3c884a361561".to_owned(),
        release_check::TEST_MINIPROGRAM_APPID => "gh_8dad206e9538".to_owned(),
        _ => format!("gh_{}", &appid[appid.len().saturating_sub(12)..]),
    }
}

impl ComponentState {
    pub(crate) fn new(config: &SimConfig) -> Self {
        let platforms = config
            .components
            .iter()
            .map(|c| {
                let platform = Platform {
                    config: c.clone(),
                    token: None,
                    next_ticket_at: 0,
                    ticket: None,
                    authorizers: BTreeMap::new(),
                    rotation: config.refresh_token_rotation,
                    quota: (0, 0),
                    stats: ComponentStats::default(),
                };
                (c.appid.clone(), platform)
            })
            .collect();
        Self {
            platforms,
            ..Self::default()
        }
    }

    /// Whether any platform is simulated (the ticket timer runs only then).
    pub(crate) fn has_platforms(&self) -> bool {
        !self.platforms.is_empty()
    }

    /// A platform's settings.
    pub(crate) fn platform(&self, component: &str) -> Option<&SimComponent> {
        self.platforms.get(component).map(|p| &p.config)
    }

    pub(crate) fn is_component(&self, appid: &str) -> bool {
        self.platforms.contains_key(appid)
    }

    pub(crate) fn stats(&self) -> BTreeMap<String, ComponentStats> {
        self.platforms
            .iter()
            .map(|(id, p)| (id.clone(), p.stats.clone()))
            .collect()
    }

    /// The newest ticket minted for the platform.
    pub(crate) fn ticket(&self, component: &str) -> Option<String> {
        self.platforms.get(component)?.ticket.clone()
    }

    /// The authorizer access token the exchange of `code` returned.
    pub(crate) fn exchanged_for(&self, code: &str) -> Option<String> {
        self.auth_codes.get(code)?.exchanged_for.clone()
    }

    pub(crate) fn set_rotation(
        &mut self,
        component: &str,
        rotation: Rotation,
    ) -> Result<(), String> {
        self.platform_mut(component)?.rotation = rotation;
        Ok(())
    }

    pub(crate) fn set_whitelist(
        &mut self,
        component: &str,
        list: Option<Vec<ipnet::IpNet>>,
    ) -> Result<(), String> {
        self.platform_mut(component)?.config.ip_whitelist = list;
        Ok(())
    }

    /// Makes the platform's next ticket push due now (`api_start_push_ticket`).
    pub(crate) fn push_ticket_now(&mut self, component: &str, now: u64) {
        if let Some(p) = self.platforms.get_mut(component) {
            p.next_ticket_at = now;
        }
    }

    /// Mints a ticket for every platform whose push is due, and the pushes to send.
    fn due_tickets(&mut self, interval: u64, lifetime: u64, now: u64) -> Vec<OutgoingPush> {
        self.tickets
            .retain(|_, (_, exp)| *exp + REMEMBER_DEAD > now);
        let mut due = Vec::new();
        for (appid, p) in &mut self.platforms {
            if p.next_ticket_at > now {
                continue;
            }
            p.next_ticket_at = now.saturating_add(interval);
            let ticket = secret_token("ticket@@@");
            self.tickets.insert(
                ticket.clone(),
                (appid.clone(), now.saturating_add(lifetime)),
            );
            p.ticket = Some(ticket.clone());
            let push = ComponentPush {
                component_appid: appid.clone(),
                create_time: now,
                info: ComponentInfo::VerifyTicket { ticket },
            };
            if let Some(out) = outgoing(&p.config, push) {
                p.stats.tickets_pushed += 1;
                due.push(out);
            }
        }
        due
    }

    /// Counts an answer to a push in the platform's stats and keeps its record.
    pub(crate) fn record_push(&mut self, record: crate::component::ComponentPushRecord) {
        if let Some(p) = self.platforms.get_mut(&record.component_appid) {
            p.stats.pushes_acknowledged += u64::from(record.acknowledged);
        }
        if self.pushes.len() >= 1000 {
            self.pushes.remove(0);
        }
        self.pushes.push(record);
    }

    fn platform_mut(&mut self, component: &str) -> Result<&mut Platform, String> {
        self.platforms
            .get_mut(component)
            .ok_or_else(|| format!("no platform {component:?}"))
    }

    fn check_ip(&self, component: &str, caller: IpAddr) -> Result<(), WxError> {
        let ip = plain_ip(caller);
        match &self.platforms[component].config.ip_whitelist {
            Some(list) if !list.iter().any(|n| n.contains(&ip)) => Err(WxError::new(
                errcode::CLIENT_IP_NOT_REGISTERED,
                format!("access clientip is not registered requestIP: {ip}"),
            )),
            _ => Ok(()),
        }
    }

    /// The platform a component API body names: 41002 without one, 61011 unknown.
    fn named(&self, body: &Map<String, Value>) -> Result<String, WxError> {
        let appid = text(body, "component_appid").ok_or(WxError::of(errcode::APPID_MISSING))?;
        if self.platforms.contains_key(appid) {
            Ok(appid.to_owned())
        } else {
            Err(WxError::of(errcode::INVALID_COMPONENT))
        }
    }
}

fn outgoing(config: &SimComponent, push: ComponentPush) -> Option<OutgoingPush> {
    Some(OutgoingPush {
        component_appid: config.appid.clone(),
        url: config.push_url.clone()?,
        token: config.token.clone(),
        encoding_aes_key: config.encoding_aes_key.clone(),
        push,
    })
}

impl State {
    /// Mints a ticket for every platform whose push is due, and the pushes to send.
    pub(crate) fn due_tickets(&mut self, now: u64) -> Vec<OutgoingPush> {
        let (interval, lifetime) = (self.config.ticket_interval, self.config.ticket_lifetime);
        self.component.due_tickets(interval, lifetime, now)
    }

    /// Counts a component API call in its platform's stats (or the unattributed
    /// ones) and gives an error its rid.
    pub(crate) fn component_answer<T>(
        &mut self,
        api: &'static str,
        component: Option<&str>,
        result: Result<T, WxError>,
    ) -> Result<T, Answered> {
        let endpoints = match component.and_then(|c| self.component.platforms.get_mut(c)) {
            Some(p) => &mut p.stats.endpoints,
            None => &mut self.unattributed.endpoints,
        };
        let endpoint = endpoints.entry(api.to_owned()).or_default();
        endpoint.calls += 1;
        endpoint.errors += u64::from(result.is_err());
        result.map_err(|e| Answered::new(e, None))
    }

    /// `api_start_push_ticket` `{"component_appid","component_secret"}`: the
    /// platform, whose next ticket push is then due at once.
    pub(crate) fn start_push_ticket(
        &mut self,
        body: &ComponentBody,
        caller: IpAddr,
        now: u64,
    ) -> Result<String, Answered> {
        let result = self.secret_checked(body, "component_secret", caller);
        let component = result.as_ref().ok().cloned();
        if let Some(c) = &component {
            self.component.push_ticket_now(c, now);
        }
        let named = named_of(&result);
        let result = result.map_err(|(_, e)| e);
        self.component_answer(path::COMPONENT_START_PUSH, named.as_deref(), result)
    }

    /// The body's platform, checked: the caller's IP, then the secret in `field`.
    fn secret_checked(
        &self,
        body: &ComponentBody,
        field: &str,
        caller: IpAddr,
    ) -> Result<String, (Option<String>, WxError)> {
        let body = body
            .as_ref()
            .ok_or((None, WxError::of(errcode::DATA_FORMAT)))?;
        let component = self.component.named(body).map_err(|e| (None, e))?;
        let known = |e| (Some(component.clone()), e);
        self.component.check_ip(&component, caller).map_err(known)?;
        let secret =
            text(body, field).ok_or_else(|| known(WxError::of(errcode::APPSECRET_MISSING)))?;
        if secret != self.component.platforms[&component].config.secret {
            return Err(known(WxError::of(errcode::INVALID_APPSECRET)));
        }
        Ok(component)
    }

    /// `api_component_token`: checks the secret and the ticket (61006 not this
    /// platform's, 61005 older than 12 h) and the daily quota; each call mints a
    /// new token and the previous one works for the grace period more (§3.2).
    pub(crate) fn component_token(
        &mut self,
        body: &ComponentBody,
        caller: IpAddr,
        now: u64,
    ) -> Result<Issued, Answered> {
        let result = self
            .secret_checked(body, "component_appsecret", caller)
            .and_then(|c| {
                let ticket = body
                    .as_ref()
                    .and_then(|b| text(b, "component_verify_ticket"));
                self.check_ticket(&c, ticket, now)
                    .map_err(|e| (Some(c.clone()), e))?;
                Ok(c)
            });
        let named = named_of(&result);
        let result = result
            .map_err(|(_, e)| e)
            .map(|c| self.new_component_token(&c, now));
        self.component_answer(
            path::COMPONENT_TOKEN,
            named.as_deref(),
            result.and_then(|r| r),
        )
    }

    fn check_ticket(&self, component: &str, ticket: Option<&str>, now: u64) -> Result<(), WxError> {
        match ticket.and_then(|t| self.component.tickets.get(t)) {
            Some((owner, _)) if owner != component => {
                Err(WxError::of(errcode::COMPONENT_TICKET_INVALID))
            }
            None => Err(WxError::of(errcode::COMPONENT_TICKET_INVALID)),
            Some((_, expires_at)) if now >= *expires_at => {
                Err(WxError::of(errcode::COMPONENT_TICKET_EXPIRED))
            }
            Some(_) => Ok(()),
        }
    }

    fn new_component_token(&mut self, component: &str, now: u64) -> Result<Issued, WxError> {
        let day = super::beijing_day(now);
        let limit = self.config.component_daily_quota;
        let (grace, expires_in) = (self.config.grace, self.config.expires_in);
        let p = self
            .component
            .platforms
            .get_mut(component)
            .expect("checked platform");
        if p.quota.0 != day {
            p.quota = (day, 0);
        }
        if p.quota.1 >= limit {
            return Err(WxError::quota());
        }
        p.quota.1 += 1;
        let value = secret_token("componentaccesstoken_");
        if let Some(previous) = p.token.replace(value.clone()) {
            if let Some(cred) = self.component.tokens.get_mut(&previous) {
                cred.revoked_at.get_or_insert(now.saturating_add(grace));
            }
        }
        p.stats.component_tokens_issued += 1;
        self.component
            .tokens
            .retain(|_, c| c.dead_since() + REMEMBER_DEAD > now);
        self.component.tokens.insert(
            value.clone(),
            Credential {
                appid: component.to_owned(),
                expires_at: now.saturating_add(expires_in),
                revoked_at: None,
                via: None,
            },
        );
        Ok(Issued { value, expires_in })
    }

    /// A component API called with `?component_access_token=`: its platform, or
    /// the error answer (41001, 40001, 42001, 61004).
    pub(crate) fn component_authorize(
        &mut self,
        api: &'static str,
        token: Option<&str>,
        caller: IpAddr,
        now: u64,
    ) -> Result<String, Answered> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return self.component_answer(
                api,
                None,
                Err(WxError::of(errcode::ACCESS_TOKEN_MISSING)),
            );
        };
        let Some(cred) = self.component.tokens.get(token) else {
            self.unattributed.invalid_token_calls += 1;
            return self.component_answer(api, None, Err(WxError::invalid_credential()));
        };
        let component = cred.appid.clone();
        let result = match cred.check(now) {
            Err(e) => {
                let p = self
                    .component
                    .platforms
                    .get_mut(&component)
                    .expect("a platform's token");
                p.stats.invalid_token_calls += 1;
                Err(e)
            }
            Ok(()) => self.component.check_ip(&component, caller),
        };
        self.component_answer(api, Some(&component), result.map(|()| component.clone()))
    }

    /// The body of a token-authenticated component call, naming the token's platform.
    fn own_body<'a>(
        &self,
        component: &str,
        body: &'a ComponentBody,
    ) -> Result<&'a Map<String, Value>, WxError> {
        let body = body.as_ref().ok_or(WxError::of(errcode::DATA_FORMAT))?;
        match text(body, "component_appid") {
            None => Err(WxError::of(errcode::APPID_MISSING)),
            Some(c) if c != component => Err(WxError::of(errcode::INVALID_COMPONENT)),
            Some(_) => Ok(body),
        }
    }

    /// `api_create_preauthcode` `{"component_appid"}`.
    pub(crate) fn create_preauthcode(
        &mut self,
        component: &str,
        body: &ComponentBody,
        now: u64,
    ) -> Result<Value, Answered> {
        let expires_in = self.config.pre_auth_code_expires_in;
        let result = self.own_body(component, body).map(|_| {
            let code = secret_token("preauthcode@@@");
            self.component
                .pre_auth_codes
                .retain(|_, (_, exp)| *exp + REMEMBER_DEAD > now);
            self.component
                .pre_auth_codes
                .insert(code.clone(), (component.to_owned(), now + expires_in));
            let p = self
                .component
                .platforms
                .get_mut(component)
                .expect("authorized platform");
            p.stats.pre_auth_codes_issued += 1;
            json!(wire::PreAuthCode {
                pre_auth_code: code,
                expires_in
            })
        });
        self.component_answer(path::COMPONENT_PREAUTHCODE, Some(component), result)
    }

    /// `api_query_auth` `{"component_appid","authorization_code"}`: a code is
    /// single-use (61009 unknown or used, 61010 expired); the account gets a
    /// new refresh token (the previous one keeps the rotation grace) and a token.
    pub(crate) fn query_auth(
        &mut self,
        component: &str,
        body: &ComponentBody,
        now: u64,
    ) -> Result<Value, Answered> {
        let result = self.own_body(component, body).and_then(|body| {
            let code = text(body, "authorization_code")
                .unwrap_or_default()
                .to_owned();
            let (authorizer, expires_at) = match self.component.auth_codes.get(&code) {
                Some(c) if c.component == component && c.exchanged_for.is_none() => {
                    (c.authorizer.clone(), c.expires_at)
                }
                _ => return Err(WxError::of(errcode::AUTH_CODE_INVALID)),
            };
            if now >= expires_at {
                return Err(WxError::of(errcode::AUTH_CODE_EXPIRED));
            }
            let refresh_token = self.new_refresh_token(component, &authorizer, now)?;
            let issued = self.new_authorizer_token(component, &authorizer, now);
            let code = self
                .component
                .auth_codes
                .get_mut(&code)
                .expect("found above");
            code.exchanged_for = Some(issued.value.clone());
            let func_info = self.func_info(component, &authorizer);
            Ok(json!({"authorization_info": {
                "authorizer_appid": authorizer,
                "authorizer_access_token": issued.value,
                "expires_in": issued.expires_in,
                "authorizer_refresh_token": refresh_token,
                "func_info": func_info,
            }}))
        });
        self.component_answer(path::COMPONENT_QUERY_AUTH, Some(component), result)
    }

    fn func_info(&self, component: &str, authorizer: &str) -> Vec<Value> {
        self.component.platforms[component].authorizers[authorizer]
            .func_info
            .iter()
            .map(|id| json!({"funcscope_category": {"id": id}}))
            .collect()
    }

    /// A new refresh token for an authorized account; the previous one keeps
    /// working `refresh_token_grace` seconds (§3.5). 61003 when not authorized.
    fn new_refresh_token(
        &mut self,
        component: &str,
        authorizer: &str,
        now: u64,
    ) -> Result<String, WxError> {
        let grace = self.config.refresh_token_grace;
        let p = self
            .component
            .platforms
            .get_mut(component)
            .expect("checked platform");
        let a = p
            .authorizers
            .get_mut(authorizer)
            .filter(|a| a.authorized)
            .ok_or(WxError::of(errcode::COMPONENT_UNAUTHORIZED))?;
        let value = secret_token("refreshtoken@@@");
        if let Some(previous) = a.refresh_token.replace(value.clone()) {
            p.stats.refresh_tokens_rotated += 1;
            if let Some(old) = self.component.refresh_tokens.get_mut(&previous) {
                old.revoked_at.get_or_insert(now.saturating_add(grace));
            }
        }
        self.component.refresh_tokens.insert(
            value.clone(),
            RefreshToken {
                component: component.to_owned(),
                authorizer: authorizer.to_owned(),
                revoked_at: None,
            },
        );
        Ok(value)
    }

    /// A new authorizer access token in the ordinary token table, so every API
    /// takes it like an app's; the previous one works for the grace period more.
    fn new_authorizer_token(&mut self, component: &str, authorizer: &str, now: u64) -> Issued {
        let grace = self.config.grace;
        let kind = self.component.platforms[component].authorizers[authorizer].kind;
        self.apps
            .entry(authorizer.to_owned())
            .or_insert_with(|| AppState {
                kind,
                ..AppState::default()
            });
        let issued = self.issue_token(authorizer, now);
        if let Some(cred) = self.tokens.get_mut(&issued.value) {
            cred.via = Some(component.to_owned());
        }
        self.apps
            .get_mut(authorizer)
            .expect("inserted above")
            .stats
            .authorizer_tokens_issued += 1;
        let p = self
            .component
            .platforms
            .get_mut(component)
            .expect("checked platform");
        p.stats.authorizer_tokens_issued += 1;
        let a = p
            .authorizers
            .get_mut(authorizer)
            .expect("checked authorizer");
        if let Some(previous) = a.token.replace(issued.value.clone()) {
            if let Some(cred) = self.tokens.get_mut(&previous) {
                cred.revoked_at.get_or_insert(now.saturating_add(grace));
            }
        }
        issued
    }

    /// `api_authorizer_token` `{"component_appid","authorizer_appid",
    /// "authorizer_refresh_token"}`: 61003 for an account that has not (or no
    /// longer) authorized the platform, 61023 for a refresh token that is not
    /// its current one nor a rotated one within its grace.
    pub(crate) fn authorizer_token(
        &mut self,
        component: &str,
        body: &ComponentBody,
        now: u64,
    ) -> Result<Value, Answered> {
        let result = self.own_body(component, body).and_then(|body| {
            let authorizer = text(body, "authorizer_appid")
                .ok_or(WxError::of(errcode::APPID_MISSING))?
                .to_owned();
            let authorized = self.component.platforms[component]
                .authorizers
                .get(&authorizer)
                .is_some_and(|a| a.authorized);
            if !authorized {
                return Err(WxError::of(errcode::COMPONENT_UNAUTHORIZED));
            }
            let sent = text(body, "authorizer_refresh_token").unwrap_or_default();
            let valid = self.component.refresh_tokens.get(sent).is_some_and(|r| {
                r.component == component
                    && r.authorizer == authorizer
                    && r.revoked_at.is_none_or(|at| now < at)
            });
            if !valid {
                return Err(WxError::of(errcode::INVALID_REFRESH_TOKEN));
            }
            let p = self
                .component
                .platforms
                .get_mut(component)
                .expect("checked platform");
            let rotate = match p.rotation {
                Rotation::Never => false,
                Rotation::EveryCall => true,
                Rotation::Once => {
                    p.rotation = Rotation::Never;
                    true
                }
            };
            let refresh_token = if rotate {
                self.new_refresh_token(component, &authorizer, now)?
            } else {
                let a = &self.component.platforms[component].authorizers[&authorizer];
                a.refresh_token.clone().unwrap_or_else(|| sent.to_owned())
            };
            let issued = self.new_authorizer_token(component, &authorizer, now);
            Ok(json!(wire::AuthorizerToken {
                authorizer_access_token: issued.value,
                expires_in: issued.expires_in,
                authorizer_refresh_token: refresh_token,
            }))
        });
        self.component_answer(path::COMPONENT_AUTHORIZER_TOKEN, Some(component), result)
    }

    /// `api_get_authorizer_list` `{"component_appid","offset","count"}`: the
    /// authorized accounts by authorization time, `count` ≤ 500 (else 40097 [?]).
    pub(crate) fn authorizer_list(
        &mut self,
        component: &str,
        body: &ComponentBody,
    ) -> Result<Value, Answered> {
        let result = self.own_body(component, body).and_then(|body| {
            let number = |name, default| body.get(name).map_or(Some(default), Value::as_u64);
            let (Some(offset), Some(count)) = (number("offset", 0), number("count", 500)) else {
                return Err(WxError::of(errcode::DATA_FORMAT));
            };
            if count == 0 || count > u64::from(wire::MAX_AUTHORIZER_LIST_COUNT) {
                return Err(WxError::of(errcode::INVALID_ARGS));
            }
            let mut all: Vec<_> = self.component.platforms[component]
                .authorizers
                .iter()
                .filter(|(_, a)| a.authorized)
                .map(|(id, a)| wire::AuthorizerListItem {
                    authorizer_appid: id.clone(),
                    refresh_token: a.refresh_token.clone().unwrap_or_default(),
                    auth_time: a.auth_time,
                })
                .collect();
            all.sort_by(|x, y| {
                (x.auth_time, &x.authorizer_appid).cmp(&(y.auth_time, &y.authorizer_appid))
            });
            let total_count = all.len() as u64;
            let list = all
                .into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(count).unwrap_or(usize::MAX))
                .collect();
            Ok(json!(wire::AuthorizerList { total_count, list }))
        });
        self.component_answer(path::COMPONENT_AUTHORIZER_LIST, Some(component), result)
    }

    /// `api_get_authorizer_info` `{"component_appid","authorizer_appid"}`: the
    /// account's profile and its authorization; 61003 when not authorized.
    pub(crate) fn authorizer_info(
        &mut self,
        component: &str,
        body: &ComponentBody,
    ) -> Result<Value, Answered> {
        let result = self.own_body(component, body).and_then(|body| {
            let authorizer =
                text(body, "authorizer_appid").ok_or(WxError::of(errcode::APPID_MISSING))?;
            let a = self.component.platforms[component]
                .authorizers
                .get(authorizer)
                .filter(|a| a.authorized)
                .ok_or(WxError::of(errcode::COMPONENT_UNAUTHORIZED))?;
            let mut info = json!({
                "nick_name": format!("sim {authorizer}"),
                "head_img": "",
                "service_type_info": {"id": 2},
                "verify_type_info": {"id": 0},
                "user_name": original_id(authorizer),
                "principal_name": "wxgate simulator",
                "alias": "",
                "qrcode_url": "",
            });
            if a.kind == AppKind::Miniprogram {
                info["MiniProgramInfo"] =
                    json!({"network": {}, "categories": [], "visit_status": 0});
            }
            Ok(json!({
                "authorizer_info": info,
                "authorization_info": {
                    "authorizer_appid": authorizer,
                    "authorizer_refresh_token": a.refresh_token.clone().unwrap_or_default(),
                    "func_info": self.func_info(component, authorizer),
                },
            }))
        });
        self.component_answer(path::COMPONENT_AUTHORIZER_INFO, Some(component), result)
    }

    /// `POST /sim/authorize`: the account authorizes the platform (again:
    /// `updateauthorized`, and its current authorizer tokens stop at once, as
    /// observed, §3.5); a new authorization code; the push to send, if the
    /// platform has a push URL and `push` is set.
    pub(crate) fn sim_authorize(
        &mut self,
        req: &AuthorizeRequest,
        send_push: bool,
        now: u64,
    ) -> Result<(Authorized, Option<OutgoingPush>), String> {
        let component = req.component_appid.as_str();
        if !self.component.platforms.contains_key(component) {
            return Err(format!("no platform {component:?}"));
        }
        if let Some(code) = &req.pre_auth_code {
            match self.component.pre_auth_codes.get(code) {
                Some((c, exp)) if c == component && now < *exp => {}
                Some((c, _)) if c == component => return Err("pre_auth_code expired".into()),
                _ => return Err("pre_auth_code unknown to this platform".into()),
            }
        }
        if req.authorizer_appid.is_empty() {
            return Err("authorizer_appid is empty".into());
        }
        let authorizer = req.authorizer_appid.clone();
        let default_funcs = match req.kind {
            AppKind::Official => vec![1, 2, 3, 4, 7, 11],
            AppKind::Miniprogram => vec![17, 18, 19, 25, 30],
        };
        let p = self
            .component
            .platforms
            .get_mut(component)
            .expect("checked");
        let again = p.authorizers.get(&authorizer).is_some_and(|a| a.authorized);
        let entry = p
            .authorizers
            .entry(authorizer.clone())
            .or_insert(Authorizer {
                kind: req.kind,
                authorized: false,
                auth_time: now,
                refresh_token: None,
                token: None,
                func_info: Vec::new(),
            });
        entry.kind = req.kind;
        entry.authorized = true;
        entry.func_info = req.func_info.clone().unwrap_or(default_funcs);
        if !again {
            entry.auth_time = now;
        }
        let config = p.config.clone();
        if again {
            self.revoke_authorizer_tokens(component, &authorizer, now);
        }
        let expires_in = self.config.auth_code_expires_in;
        let code = secret_token("queryauthcode@@@");
        self.component
            .auth_codes
            .retain(|_, c| c.expires_at + REMEMBER_DEAD > now);
        self.component.auth_codes.insert(
            code.clone(),
            AuthCode {
                component: component.to_owned(),
                authorizer: authorizer.clone(),
                expires_at: now + expires_in,
                exchanged_for: None,
            },
        );
        let authorization = Authorization {
            authorizer_appid: authorizer.clone(),
            authorization_code: code.clone(),
            authorization_code_expired_time: now + expires_in,
            pre_auth_code: req.pre_auth_code.clone().unwrap_or_default(),
        };
        let info = if again {
            ComponentInfo::UpdateAuthorized(authorization)
        } else {
            ComponentInfo::Authorized(authorization)
        };
        let answer = Authorized {
            component_appid: component.to_owned(),
            authorizer_appid: authorizer,
            info_type: info.info_type().to_owned(),
            redirect_url: req
                .redirect_uri
                .as_deref()
                .map(|uri| redirect_url(uri, &code, expires_in)),
            authorization_code: code,
            expires_in,
        };
        let push = ComponentPush {
            component_appid: component.to_owned(),
            create_time: now,
            info,
        };
        let out = if send_push {
            outgoing(&config, push)
        } else {
            None
        };
        Ok((answer, out))
    }

    /// `POST /sim/unauthorize`: the account withdraws; its tokens, refresh
    /// token and pending codes stop working at once; the `unauthorized` push.
    pub(crate) fn sim_unauthorize(
        &mut self,
        component: &str,
        authorizer: &str,
        now: u64,
    ) -> Result<Option<OutgoingPush>, String> {
        let p = self.component.platform_mut(component)?;
        let a = p
            .authorizers
            .get_mut(authorizer)
            .filter(|a| a.authorized)
            .ok_or_else(|| format!("{authorizer:?} has not authorized {component:?}"))?;
        a.authorized = false;
        a.token = None;
        let refresh = a.refresh_token.take();
        let config = p.config.clone();
        if let Some(rt) = refresh {
            self.component.refresh_tokens.remove(&rt);
        }
        self.component
            .refresh_tokens
            .retain(|_, r| !(r.component == component && r.authorizer == authorizer));
        self.component
            .auth_codes
            .retain(|_, c| !(c.component == component && c.authorizer == authorizer));
        self.revoke_authorizer_tokens(component, authorizer, now);
        let push = ComponentPush {
            component_appid: component.to_owned(),
            create_time: now,
            info: ComponentInfo::Unauthorized {
                authorizer_appid: authorizer.to_owned(),
            },
        };
        Ok(outgoing(&config, push))
    }

    fn revoke_authorizer_tokens(&mut self, component: &str, authorizer: &str, now: u64) {
        for cred in self.tokens.values_mut() {
            if cred.appid == authorizer && cred.via.as_deref() == Some(component) {
                cred.revoked_at = Some(cred.revoked_at.map_or(now, |r| r.min(now)));
            }
        }
    }
}

/// The platform a failed check concerned, for the stats.
fn named_of<T>(result: &Result<String, (Option<String>, T)>) -> Option<String> {
    match result {
        Ok(c) => Some(c.clone()),
        Err((c, _)) => c.clone(),
    }
}
