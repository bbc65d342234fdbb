//! An administrator authorizing a platform on its authorization page, or
//! withdrawing it (`POST /sim/authorize`, `POST /sim/unauthorize`; families
//! reference §3.3, §3.7): the authorizer, its authorization code, the
//! redirect and the push.

use serde::Deserialize;
use wxgate_proto::component::authorize::redirect_url;
use wxgate_proto::{Authorization, ComponentInfo, ComponentPush};

use super::{outgoing, secret_token, AuthCode, Authorizer, OutgoingPush};
use crate::config::AppKind;
use crate::state::{State, REMEMBER_DEAD};

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

impl State {
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
