//! The Open Platform's APIs about authorizers (families reference §3.4–3.6):
//! exchanging an authorization code (`api_query_auth`), refreshing an
//! authorizer token (`api_authorizer_token`, with refresh-token rotation),
//! listing the authorizers and reading one.

use serde_json::{json, Value};
use wxgate_proto::component::api as wire;
use wxgate_proto::errcode;

use super::{original_id, secret_token, text, ComponentBody};
use crate::config::{AppKind, Rotation};
use crate::error::{Answered, WxError};
use crate::state::{path, AppState, Issued, State};

/// An account as a platform knows it.
pub(super) struct Authorizer {
    pub(super) kind: AppKind,
    pub(super) authorized: bool,
    pub(super) auth_time: u64,
    /// The current refresh token; `None` until an authorization code is exchanged.
    pub(super) refresh_token: Option<String>,
    /// The newest authorizer access token.
    pub(super) token: Option<String>,
    pub(super) func_info: Vec<u32>,
}

/// An authorization code, single-use.
pub(super) struct AuthCode {
    pub(super) component: String,
    pub(super) authorizer: String,
    pub(super) expires_at: u64,
    /// The authorizer access token its exchange returned.
    pub(super) exchanged_for: Option<String>,
}

/// An authorizer_refresh_token ever issued.
pub(super) struct RefreshToken {
    pub(super) component: String,
    pub(super) authorizer: String,
    pub(super) revoked_at: Option<u64>,
}

impl State {
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
                return Err(WxError::of(errcode::AUTHORIZER_REFRESH_TOKEN_INVALID));
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
}
