//! User sign-in, as WeChat's rules (families reference §4.d, §2): web
//! authorization (网页授权) codes of Official Accounts and `wx.login` codes
//! of Mini Programs, each single-use and valid 5 minutes; the user access
//! tokens (7200 s) and refresh tokens (30 days) a web code buys; userinfo and
//! `sns/auth`. Plain methods taking the current time, as the rest of `state`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};
use wxgate_proto::errcode;

use super::{path, Outcome, State};
use crate::config::AppKind;
use crate::error::WxError;

/// How long a code can be exchanged, seconds (§4.d: "expires after 5 min").
pub(crate) const CODE_LIFETIME: u64 = 300;
/// A user access token's lifetime, seconds.
pub(crate) const USER_TOKEN_LIFETIME: u64 = 7200;
/// A refresh token's lifetime, seconds (30 days).
pub(crate) const REFRESH_TOKEN_LIFETIME: u64 = 30 * 86_400;

/// Who signs in, as `POST /sim/oauth/authorize` and `POST /sim/jscode` take it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Grant {
    /// The account the user signs in to.
    pub(crate) appid: String,
    /// The user's openid (one is made up when absent).
    pub(crate) openid: Option<String>,
    /// `snsapi_base` (default) or `snsapi_userinfo`; web codes only.
    pub(crate) scope: Option<String>,
    /// The user's unionid, when the account is bound to an Open Platform account.
    pub(crate) unionid: Option<String>,
    /// A snapshot-page (快照页) virtual user: `is_snapshotuser: 1`, userinfo 48001.
    #[serde(default)]
    pub(crate) snapshot: bool,
    /// A user WeChat blocks as high risk: the exchange answers 40226.
    #[serde(default)]
    pub(crate) blocked: bool,
}

/// The user a code or token stands for.
#[derive(Debug, Clone)]
struct User {
    appid: String,
    openid: String,
    scope: String,
    unionid: Option<String>,
    snapshot: bool,
}

#[derive(Debug)]
struct Code {
    user: User,
    /// Which exchange takes it: a web code or a `wx.login` code.
    kind: AppKind,
    issued_at: u64,
    used: bool,
    blocked: bool,
}

#[derive(Debug)]
struct Token {
    user: User,
    expires_at: u64,
}

/// Codes handed out and the tokens they bought.
#[derive(Debug, Default)]
pub(crate) struct SignIn {
    codes: HashMap<String, Code>,
    access_tokens: HashMap<String, Token>,
    refresh_tokens: HashMap<String, Token>,
}

/// The app-secret call's parameters (`/sns/oauth2/access_token`,
/// `/sns/jscode2session`). No Debug: it holds the secret.
#[derive(Default, Deserialize)]
pub(crate) struct CodeRequest {
    pub(crate) appid: Option<String>,
    pub(crate) secret: Option<String>,
    /// `code` (web) or `js_code` (Mini Programs).
    pub(crate) code: Option<String>,
    pub(crate) js_code: Option<String>,
    pub(crate) grant_type: Option<String>,
}

impl State {
    /// Hands out a code as WeChat's authorization page (`kind` Official) or
    /// `wx.login` (Mini Program) would. Not an API call: nothing is counted.
    pub(crate) fn grant_code(
        &mut self,
        grant: Grant,
        kind: AppKind,
        now: u64,
    ) -> Result<Value, String> {
        match self.apps.get(&grant.appid) {
            None => return Err(format!("unknown appid {:?}", grant.appid)),
            Some(app) if app.kind != kind => {
                let is = match app.kind {
                    AppKind::Official => "an Official Account",
                    AppKind::Miniprogram => "a Mini Program",
                };
                return Err(format!(
                    "{} is {is}: web authorization is an Official Account's, wx.login a Mini Program's",
                    grant.appid
                ));
            }
            Some(_) => {}
        }
        let scope = grant.scope.unwrap_or_else(|| "snsapi_base".into());
        if !matches!(scope.as_str(), "snsapi_base" | "snsapi_userinfo") {
            return Err(format!(
                "scope {scope:?}: use snsapi_base or snsapi_userinfo"
            ));
        }
        self.seq += 1;
        let openid = grant
            .openid
            .unwrap_or_else(|| format!("o{}{}", self.seq, hex::encode(rand::random::<[u8; 12]>())));
        let code = format!("{}{}", self.seq, hex::encode(rand::random::<[u8; 14]>()));
        let user = User {
            appid: grant.appid,
            openid: openid.clone(),
            scope,
            unionid: grant.unionid,
            snapshot: grant.snapshot,
        };
        let signin = &mut self.signin;
        signin
            .codes
            .retain(|_, c| c.issued_at + CODE_LIFETIME + 86_400 > now);
        signin.codes.insert(
            code.clone(),
            Code {
                user,
                kind,
                issued_at: now,
                used: false,
                blocked: grant.blocked,
            },
        );
        Ok(json!({ "code": code, "openid": openid, "expires_in": CODE_LIFETIME }))
    }

    /// `GET /sns/oauth2/access_token` (web, an Official Account) and
    /// `GET /sns/jscode2session` (a Mini Program): checks the appid, the
    /// secret (40125, or 40013 for an unknown appid), the grant type and the
    /// code: unknown or expired 40029, used 40163, blocked user 40226.
    pub(crate) fn exchange_code(
        &mut self,
        req: &CodeRequest,
        kind: AppKind,
        now: u64,
    ) -> Outcome<Value> {
        let api = match kind {
            AppKind::Official => path::OAUTH_ACCESS_TOKEN,
            AppKind::Miniprogram => path::JSCODE2SESSION,
        };
        let appid = match self.check_app_secret(req) {
            Ok(appid) => appid,
            Err((appid, err)) => return self.answer(api, appid, Err(err)),
        };
        let code = match kind {
            AppKind::Official => req.code.as_deref(),
            AppKind::Miniprogram => req.js_code.as_deref(),
        };
        let result = match (req.grant_type.as_deref(), code.filter(|c| !c.is_empty())) {
            (Some("authorization_code"), Some(code)) => self.take_code(&appid, code, kind, now),
            (Some("authorization_code"), None) => Err(WxError::of(errcode::CODE_MISSING)),
            _ => Err(WxError::of(errcode::INVALID_GRANT_TYPE)),
        };
        let result = result.map(|user| match kind {
            AppKind::Official => self.web_tokens(user, now),
            AppKind::Miniprogram => session(&user),
        });
        self.answer(api, Some(appid), result)
    }

    fn check_app_secret(&self, req: &CodeRequest) -> Result<String, (Option<String>, WxError)> {
        let appid = req
            .appid
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or((None, WxError::of(errcode::APPID_MISSING)))?;
        let Some(app) = self.apps.get(appid) else {
            return Err((None, WxError::of(errcode::INVALID_APPID)));
        };
        let known = Some(appid.to_owned());
        match req.secret.as_deref().filter(|s| !s.is_empty()) {
            None => Err((known, WxError::of(errcode::APPSECRET_MISSING))),
            Some(secret) if secret != app.secret => {
                Err((known, WxError::of(errcode::INVALID_APPSECRET)))
            }
            Some(_) => Ok(appid.to_owned()),
        }
    }

    /// The user a code stands for, spending the code.
    fn take_code(
        &mut self,
        appid: &str,
        code: &str,
        kind: AppKind,
        now: u64,
    ) -> Result<User, WxError> {
        let Some(entry) = self.signin.codes.get_mut(code) else {
            return Err(WxError::of(errcode::INVALID_CODE));
        };
        // Another account's code, or the other kind, is no code of this call's.
        let foreign = entry.user.appid != appid || entry.kind != kind;
        if foreign || now >= entry.issued_at + CODE_LIFETIME {
            return Err(WxError::of(errcode::INVALID_CODE));
        }
        if entry.used {
            return Err(WxError::of(errcode::CODE_USED));
        }
        entry.used = true;
        if entry.blocked {
            return Err(WxError::of(errcode::CODE_BLOCKED));
        }
        Ok(entry.user.clone())
    }

    fn web_tokens(&mut self, user: User, now: u64) -> Value {
        self.seq += 1;
        let refresh_token = format!("rt{}_{}", self.seq, hex::encode(rand::random::<[u8; 32]>()));
        self.signin.refresh_tokens.insert(
            refresh_token.clone(),
            Token {
                user: user.clone(),
                expires_at: now + REFRESH_TOKEN_LIFETIME,
            },
        );
        let mut answer = self.user_token(user, now);
        answer["refresh_token"] = refresh_token.into();
        answer
    }

    /// A new user access token for `user`: the answer's common fields.
    fn user_token(&mut self, user: User, now: u64) -> Value {
        self.seq += 1;
        let access_token = format!("ua{}_{}", self.seq, hex::encode(rand::random::<[u8; 32]>()));
        let mut answer = json!({
            "access_token": access_token,
            "expires_in": USER_TOKEN_LIFETIME,
            "openid": user.openid,
            "scope": user.scope,
        });
        if user.snapshot {
            answer["is_snapshotuser"] = 1.into();
        }
        if let Some(unionid) = &user.unionid {
            answer["unionid"] = unionid.clone().into();
        }
        let signin = &mut self.signin;
        signin
            .access_tokens
            .retain(|_, t| t.expires_at + 86_400 > now);
        signin.access_tokens.insert(
            access_token,
            Token {
                user,
                expires_at: now + USER_TOKEN_LIFETIME,
            },
        );
        answer
    }

    /// `GET /sns/oauth2/refresh_token?appid&grant_type=refresh_token&refresh_token`
    /// (no secret): a new user access token; 40030 for an unknown refresh
    /// token (or another account's), 42002 past its 30 days.
    pub(crate) fn refresh_user_token(
        &mut self,
        appid: Option<&str>,
        grant_type: Option<&str>,
        refresh_token: Option<&str>,
        now: u64,
    ) -> Outcome<Value> {
        let api = path::OAUTH_REFRESH_TOKEN;
        let Some(appid) = appid.filter(|a| !a.is_empty()) else {
            return self.answer(api, None, Err(WxError::of(errcode::APPID_MISSING)));
        };
        if !self.apps.contains_key(appid) {
            return self.answer(api, None, Err(WxError::of(errcode::INVALID_APPID)));
        }
        let appid = appid.to_owned();
        if grant_type != Some("refresh_token") {
            let err = WxError::of(errcode::INVALID_GRANT_TYPE);
            return self.answer(api, Some(appid), Err(err));
        }
        let token = refresh_token.and_then(|t| self.signin.refresh_tokens.get(t));
        let result = match token {
            Some(t) if t.user.appid != appid => Err(WxError::of(errcode::INVALID_REFRESH_TOKEN)),
            Some(t) if now >= t.expires_at => Err(WxError::of(errcode::REFRESH_TOKEN_EXPIRED)),
            Some(t) => Ok(t.user.clone()),
            None => Err(WxError::of(errcode::INVALID_REFRESH_TOKEN)),
        };
        let result = result.map(|user| {
            let mut answer = self.user_token(user, now);
            answer["refresh_token"] = refresh_token.unwrap_or_default().into();
            answer
        });
        self.answer(api, Some(appid), result)
    }

    /// `GET /sns/userinfo?access_token&openid&lang` and `GET /sns/auth`:
    /// the user behind a live user token. 40001 unknown token, 42001 expired,
    /// 40003 another user's openid; userinfo needs `snsapi_userinfo` and a
    /// real user (48001 for `snsapi_base` or a snapshot-page user).
    pub(crate) fn user_of_token(
        &mut self,
        api: &'static str,
        access_token: Option<&str>,
        openid: Option<&str>,
        now: u64,
    ) -> Outcome<Value> {
        let token = access_token.and_then(|t| self.signin.access_tokens.get(t));
        let Some(token) = token else {
            return self.answer(api, None, Err(WxError::invalid_credential()));
        };
        let user = token.user.clone();
        let result = if now >= token.expires_at {
            Err(WxError::expired())
        } else if openid != Some(user.openid.as_str()) {
            Err(WxError::of(errcode::INVALID_OPENID))
        } else if api == path::SNS_AUTH {
            Ok(json!({ "errcode": 0, "errmsg": "ok" }))
        } else if user.scope != "snsapi_userinfo" || user.snapshot {
            Err(WxError::of(errcode::API_UNAUTHORIZED))
        } else {
            Ok(user_record(&user))
        };
        self.answer(api, Some(user.appid), result)
    }
}

/// A Mini Program's session: `{"openid","session_key","unionid"?}`.
fn session(user: &User) -> Value {
    let session_key = base64_of(&rand::random::<[u8; 16]>());
    let mut answer = json!({ "openid": user.openid, "session_key": session_key });
    if let Some(unionid) = &user.unionid {
        answer["unionid"] = unionid.clone().into();
    }
    answer
}

/// The userinfo record since 2021-10-20: `sex` 0 and empty region fields.
fn user_record(user: &User) -> Value {
    let mut record = json!({
        "openid": user.openid,
        "nickname": "微信用户",
        "sex": 0,
        "province": "",
        "city": "",
        "country": "",
        "headimgurl": "https://thirdwx.qlogo.cn/mmopen/vi_32/sim/132",
        "privilege": [],
    });
    if let Some(unionid) = &user.unionid {
        record["unionid"] = unionid.clone().into();
    }
    record
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SimApp, SimConfig};

    const T: u64 = 1_704_052_800;

    fn state() -> State {
        State::new(SimConfig::with_apps(vec![
            SimApp::new("wx1", "s1"),
            SimApp::miniprogram("wxm", "sm"),
        ]))
    }

    fn grant(appid: &str) -> Grant {
        serde_json::from_value(json!({ "appid": appid, "openid": "o1" })).unwrap()
    }

    fn request(appid: &str, secret: &str, code: &str) -> CodeRequest {
        CodeRequest {
            appid: Some(appid.into()),
            secret: Some(secret.into()),
            code: Some(code.into()),
            js_code: Some(code.into()),
            grant_type: Some("authorization_code".into()),
        }
    }

    fn errcode_of(outcome: Outcome<Value>) -> i64 {
        outcome.1.map_or_else(|e| e.error.errcode, |_| 0)
    }

    #[test]
    fn a_code_lives_five_minutes_and_is_spent_once() {
        let mut state = state();
        let code = state
            .grant_code(grant("wx1"), AppKind::Official, T)
            .unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let late = state
            .grant_code(grant("wx1"), AppKind::Official, T)
            .unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let exchange = |state: &mut State, code: &str, now| {
            errcode_of(state.exchange_code(&request("wx1", "s1", code), AppKind::Official, now))
        };
        assert_eq!(exchange(&mut state, &code, T + CODE_LIFETIME - 1), 0);
        assert_eq!(exchange(&mut state, &code, T + CODE_LIFETIME - 1), 40163);
        assert_eq!(exchange(&mut state, &late, T + CODE_LIFETIME), 40029);
        assert_eq!(exchange(&mut state, "unknown", T), 40029);
    }

    #[test]
    fn a_code_is_for_its_account_and_its_kind() {
        let mut state = state();
        assert!(state
            .grant_code(grant("wxm"), AppKind::Official, T)
            .is_err());
        assert!(state
            .grant_code(grant("wx1"), AppKind::Miniprogram, T)
            .is_err());
        let js = state
            .grant_code(grant("wxm"), AppKind::Miniprogram, T)
            .unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned();
        // A wx.login code is no web code, even with the right secret.
        let as_web = state.exchange_code(&request("wxm", "sm", &js), AppKind::Official, T);
        assert_eq!(errcode_of(as_web), 40029);
        let wrong = state.exchange_code(&request("wxm", "s1", &js), AppKind::Miniprogram, T);
        assert_eq!(errcode_of(wrong), 40125);
        let session = state.exchange_code(&request("wxm", "sm", &js), AppKind::Miniprogram, T);
        let session = session.1.unwrap();
        assert_eq!(session["openid"], "o1");
        assert!(session.get("access_token").is_none(), "{session}");
    }
}
