//! The Open Platform (第三方平台, families reference §3) as rules on [`State`]:
//! verify tickets minted every 10 minutes and valid 12 hours, component
//! tokens that supersede each other after the grace period, pre-auth and
//! single-use authorization codes, authorizers with their refresh tokens
//! (rotated on demand, the old one valid 5 minutes more), and authorizer
//! access tokens that work on the ordinary APIs like an app's own.
//!
//! This file: the platforms, their ticket pushes, token checks and pre-auth
//! codes. `credentials`: `api_start_push_ticket` and `api_component_token`;
//! `authorizers`: the `/cgi-bin/component/…` APIs about accounts;
//! `authorization`: an administrator (un)authorizing a platform (`/sim/…`).

mod authorization;
mod authorizers;
mod credentials;

pub(crate) use authorization::AuthorizeRequest;
use authorizers::{AuthCode, Authorizer, RefreshToken};

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde_json::{json, Map, Value};
use wxgate_proto::component::api as wire;
use wxgate_proto::component::release_check;
use wxgate_proto::{errcode, ComponentInfo, ComponentPush};

use super::{path, plain_ip, Credential, State, REMEMBER_DEAD};
use crate::config::{Rotation, SimComponent, SimConfig};
use crate::error::{Answered, WxError};
use crate::stats::ComponentStats;

/// A component API's JSON body, as an object; `None` when it is not one.
pub(crate) type ComponentBody = Option<Map<String, Value>>;

/// A push to a platform's authorization-event URL, to be sealed and sent.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingPush {
    pub(crate) component_appid: String,
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) encoding_aes_key: String,
    pub(crate) push: ComponentPush,
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

    pub(crate) fn set_push_url(
        &mut self,
        component: &str,
        url: Option<String>,
    ) -> Result<(), String> {
        self.platform_mut(component)?.config.push_url = url;
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

    /// 61004 when the platform has a whitelist without the caller.
    pub(crate) fn check_ip(&self, component: &str, caller: IpAddr) -> Result<(), WxError> {
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
}

/// The platform a failed check concerned, for the stats.
fn named_of<T>(result: &Result<String, (Option<String>, T)>) -> Option<String> {
    match result {
        Ok(c) => Some(c.clone()),
        Err((c, _)) => c.clone(),
    }
}
