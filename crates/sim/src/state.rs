//! The simulated platform's state and WeChat's rules, as plain methods that take
//! the current time: no I/O here, so each rule reads as the protocol states it.

use std::collections::HashMap;
use std::net::IpAddr;
use wxgate_proto::errcode;

use ipnet::IpNet;
use serde::Serialize;

use crate::config::SimConfig;
use crate::error::{Answered, WxError};
use crate::rids::{CallRecord, RidLog};
use crate::stats::{AppStats, Stats};

mod component;
mod diagnostics;
mod signin;
mod wecom;

pub(crate) use component::{
    original_id, AuthorizeRequest, ComponentBody, ComponentState, OutgoingPush,
};
pub(crate) use signin::{CodeRequest, Grant};

pub(crate) use wecom::{wecom_error, WecomTicket};

/// API paths, as counted in the stats.
pub(crate) mod path {
    pub(crate) const TOKEN: &str = "/cgi-bin/token";
    pub(crate) const STABLE_TOKEN: &str = "/cgi-bin/stable_token";
    pub(crate) const TICKET: &str = "/cgi-bin/ticket/getticket";
    pub(crate) const CALLBACK_IP: &str = "/cgi-bin/getcallbackip";
    pub(crate) const API_DOMAIN_IP: &str = "/cgi-bin/get_api_domain_ip";
    pub(crate) const CUSTOM_SEND: &str = "/cgi-bin/message/custom/send";
    pub(crate) const MEDIA_UPLOAD: &str = "/cgi-bin/media/upload";
    pub(crate) const MEDIA_GET: &str = "/cgi-bin/media/get";
    pub(crate) const USER_INFO: &str = "/cgi-bin/user/info";
    pub(crate) const RID_GET: &str = "/cgi-bin/openapi/rid/get";
    pub(crate) const QUOTA_GET: &str = "/cgi-bin/openapi/quota/get";
    pub(crate) const CLEAR_QUOTA: &str = "/cgi-bin/clear_quota";
    pub(crate) const CLEAR_QUOTA_V2: &str = "/cgi-bin/clear_quota/v2";
    /// WeCom (qyapi.weixin.qq.com), served on the same listener.
    pub(crate) const GETTOKEN: &str = "/cgi-bin/gettoken";
    pub(crate) const WECOM_JSAPI_TICKET: &str = "/cgi-bin/get_jsapi_ticket";
    pub(crate) const WECOM_AGENT_TICKET: &str = "/cgi-bin/ticket/get";
    pub(crate) const WECOM_AGENT_GET: &str = "/cgi-bin/agent/get";
    pub(crate) const WECOM_SEND: &str = "/cgi-bin/message/send";
    /// Open Platform (families reference §3).
    pub(crate) const COMPONENT_START_PUSH: &str = wxgate_proto::component::api::START_PUSH_TICKET;
    pub(crate) const COMPONENT_TOKEN: &str = wxgate_proto::component::api::COMPONENT_TOKEN;
    pub(crate) const COMPONENT_PREAUTHCODE: &str = wxgate_proto::component::api::CREATE_PREAUTHCODE;
    pub(crate) const COMPONENT_QUERY_AUTH: &str = wxgate_proto::component::api::QUERY_AUTH;
    pub(crate) const COMPONENT_AUTHORIZER_TOKEN: &str =
        wxgate_proto::component::api::AUTHORIZER_TOKEN;
    pub(crate) const COMPONENT_AUTHORIZER_LIST: &str =
        wxgate_proto::component::api::GET_AUTHORIZER_LIST;
    pub(crate) const COMPONENT_AUTHORIZER_INFO: &str =
        wxgate_proto::component::api::GET_AUTHORIZER_INFO;
    /// A Mini Program's privacy settings, called by its platform with the
    /// authorizer's `access_token` (under the component root all the same).
    pub(crate) const PRIVACY_SETTING: &str = "/cgi-bin/component/getprivacysetting";
    /// User sign-in (families reference §4.d, §2).
    pub(crate) const OAUTH_ACCESS_TOKEN: &str = "/sns/oauth2/access_token";
    pub(crate) const OAUTH_REFRESH_TOKEN: &str = "/sns/oauth2/refresh_token";
    pub(crate) const SNS_USERINFO: &str = "/sns/userinfo";
    pub(crate) const SNS_AUTH: &str = "/sns/auth";
    pub(crate) const JSCODE2SESSION: &str = "/sns/jscode2session";

    /// Every simulated API, for `quota/get` to tell unknown paths from known ones.
    pub(crate) const ALL: &[&str] = &[
        TOKEN,
        STABLE_TOKEN,
        TICKET,
        CALLBACK_IP,
        API_DOMAIN_IP,
        CUSTOM_SEND,
        MEDIA_UPLOAD,
        MEDIA_GET,
        USER_INFO,
        RID_GET,
        QUOTA_GET,
        CLEAR_QUOTA,
        CLEAR_QUOTA_V2,
        PRIVACY_SETTING,
    ];
}

/// Seconds before expiry from which stable_token hands out the next token, whatever
/// the classic grace: "the platform renews it 5 minutes before expiry" (protocol reference §4.2).
const STABLE_RENEWAL: u64 = 300;
/// Seconds a token superseded by a forced stable_token refresh keeps working [?]:
/// "two forced calls 30 s apart invalidate a leaked token" (protocol reference §4.2).
const FORCED_GRACE: u64 = 30;
/// How long dead credentials are remembered, so late uses are still attributed.
const REMEMBER_DEAD: u64 = 86_400;
/// WeChat's quotas reset at midnight Beijing time (UTC+8).
const BEIJING_OFFSET: u64 = 8 * 3600;
/// The daily count of forced stable_token refreshes, kept with the API quotas
/// (but not reset by `clear_quota`).
const FORCE_REFRESH_QUOTA: &str = "force_refresh";

/// A freshly issued or returned credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Issued {
    pub(crate) value: String,
    pub(crate) expires_in: u64,
}

/// What the API answered a call with: the appid it concerned, if known.
pub(crate) type Outcome<T> = (Option<String>, Result<T, Answered>);

/// The fields of a token request, present or not. (No Debug: it holds the secret.)
#[derive(Default, serde::Deserialize)]
pub(crate) struct TokenRequest {
    pub(crate) grant_type: Option<String>,
    pub(crate) appid: Option<String>,
    pub(crate) secret: Option<String>,
    #[serde(default)]
    pub(crate) force_refresh: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenApi {
    Classic,
    Stable,
}

#[derive(Debug)]
struct Credential {
    appid: String,
    expires_at: u64,
    revoked_at: Option<u64>,
    /// The platform (component appid) an authorizer access token was issued to.
    via: Option<String>,
}

impl Credential {
    fn check(&self, now: u64) -> Result<(), WxError> {
        if self.revoked_at.is_some_and(|at| now >= at) {
            Err(WxError::invalid_credential())
        } else if now >= self.expires_at {
            Err(WxError::expired())
        } else {
            Ok(())
        }
    }

    fn dead_since(&self) -> u64 {
        self.revoked_at
            .map_or(self.expires_at, |r| r.min(self.expires_at))
    }
}

#[derive(Default)]
struct AppState {
    secret: String,
    kind: crate::config::AppKind,
    classic: Option<String>,
    stable: Option<String>,
    last_forced: Option<u64>,
    /// (day, used) per quota-limited API path.
    quota: HashMap<&'static str, (u64, u32)>,
    /// (month, clears) of `clear_quota` and `clear_quota/v2` together.
    clears: (u32, u32),
    stats: AppStats,
}

/// A customer-service message the simulator accepted.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CustomMessage {
    /// The sending account.
    pub appid: String,
    /// Virtual time of the call, Unix seconds.
    pub at: u64,
    /// The JSON body as sent.
    pub body: serde_json::Value,
    /// The access token it was sent with (for the release check's last step).
    #[serde(skip)]
    pub(crate) sent_with: Option<String>,
}

/// Equal when what `/sim/messages` shows is: the token stays inside.
impl PartialEq for CustomMessage {
    fn eq(&self, other: &Self) -> bool {
        (&self.appid, self.at, &self.body) == (&other.appid, other.at, &other.body)
    }
}

/// All mutable simulator state, behind one mutex in [`crate::Simulator`].
pub(crate) struct State {
    config: SimConfig,
    apps: HashMap<String, AppState>,
    tokens: HashMap<String, Credential>,
    tickets: HashMap<String, Credential>,
    messages: Vec<CustomMessage>,
    unattributed: AppStats,
    pub(crate) faults_injected: u64,
    pub(crate) fault_bytes_sent: u64,
    /// `endless` answers still being written (their client has not hung up).
    pub(crate) fault_streams_open: u64,
    /// Every call per path, whoever made it and however it was answered.
    pub(crate) endpoint_calls: std::collections::BTreeMap<String, u64>,
    pub(crate) ip_whitelist: Option<Vec<IpNet>>,
    /// Temporary media uploaded through `/cgi-bin/media/upload`.
    pub(crate) media: crate::media::Store,
    /// The requests behind error answers, for `rid/get`.
    rids: RidLog,
    /// WeCom corps and apps.
    pub(crate) wecom: wecom::WecomState,
    /// Open Platform platforms, their tickets, codes and authorizers.
    pub(crate) component: ComponentState,
    /// Sign-in codes and the user tokens they bought.
    signin: signin::SignIn,
    seq: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and live tokens stay out of Debug output.
        f.debug_struct("State")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .field("tokens", &self.tokens.len())
            .field("tickets", &self.tickets.len())
            .finish_non_exhaustive()
    }
}

impl State {
    pub(crate) fn new(config: SimConfig) -> Self {
        let apps = config
            .apps
            .iter()
            .map(|a| {
                let state = AppState {
                    secret: a.secret.clone(),
                    kind: a.kind,
                    ..AppState::default()
                };
                (a.appid.clone(), state)
            })
            .collect();
        Self {
            ip_whitelist: config.ip_whitelist.clone(),
            media: crate::media::Store::new(config.media_max_bytes),
            wecom: wecom::WecomState::new(&config),
            component: ComponentState::new(&config),
            config,
            apps,
            tokens: HashMap::new(),
            tickets: HashMap::new(),
            messages: Vec::new(),
            unattributed: AppStats::default(),
            faults_injected: 0,
            fault_bytes_sent: 0,
            fault_streams_open: 0,
            endpoint_calls: Default::default(),
            rids: RidLog::default(),
            signin: signin::SignIn::default(),
            seq: 0,
        }
    }

    /// `GET /cgi-bin/token`: every call issues a new token; the previous one keeps
    /// working for the grace period, then answers 40001 (§4.1).
    pub(crate) fn classic_token(
        &mut self,
        req: &TokenRequest,
        caller: IpAddr,
        now: u64,
    ) -> Outcome<Issued> {
        let appid = match self.authenticate(req, caller, TokenApi::Classic, now) {
            Ok(appid) => appid,
            Err((appid, err)) => return self.answer(path::TOKEN, appid, Err(err)),
        };
        let grace = self.config.grace;
        let issued = self.issue_token(&appid, now);
        let app = self.apps.get_mut(&appid).expect("authenticated app exists");
        if let Some(previous) = app.classic.replace(issued.value.clone()) {
            if let Some(cred) = self.tokens.get_mut(&previous) {
                cred.revoked_at.get_or_insert(now.saturating_add(grace));
            }
        }
        app.stats.tokens_issued += 1;
        self.answer(path::TOKEN, Some(appid), Ok(issued))
    }

    /// `POST /cgi-bin/stable_token`: the same token while it has more than
    /// [`STABLE_RENEWAL`] left; `force_refresh` replaces it, at most
    /// `force_refresh_per_day` times and not within `force_refresh_interval` (§4.2).
    pub(crate) fn stable_token(
        &mut self,
        req: &TokenRequest,
        caller: IpAddr,
        now: u64,
    ) -> Outcome<Issued> {
        let appid = match self.authenticate(req, caller, TokenApi::Stable, now) {
            Ok(appid) => appid,
            Err((appid, err)) => return self.answer(path::STABLE_TOKEN, appid, Err(err)),
        };
        let current = self.apps[&appid]
            .stable
            .as_ref()
            .and_then(|t| Some((t.clone(), self.tokens.get(t)?)))
            .filter(|(_, cred)| cred.check(now).is_ok())
            .map(|(t, cred)| (t, cred.expires_at));
        let app = &self.apps[&appid];
        let result = match (req.force_refresh, current) {
            (true, Some((token, expires_at)))
                if app.last_forced.is_some_and(|at| {
                    now < at.saturating_add(self.config.force_refresh_interval)
                }) =>
            {
                Ok(Issued {
                    value: token,
                    expires_in: expires_at - now,
                })
            }
            (true, _) => self.force_stable(&appid, now),
            (false, Some((token, expires_at)))
                if now.saturating_add(STABLE_RENEWAL) < expires_at =>
            {
                Ok(Issued {
                    value: token,
                    expires_in: expires_at - now,
                })
            }
            (false, _) => Ok(self.new_stable(&appid, now, None)),
        };
        self.answer(path::STABLE_TOKEN, Some(appid), result)
    }

    fn force_stable(&mut self, appid: &str, now: u64) -> Result<Issued, WxError> {
        let limit = self.config.force_refresh_per_day;
        if !self.take_quota(appid, FORCE_REFRESH_QUOTA, limit, now) {
            // Over the daily limit no refresh happens (§4.2): the current token, or a first one.
            let current = self.apps[appid].stable.clone();
            return match current.and_then(|t| Some((self.tokens.get(&t)?.expires_at, t))) {
                Some((expires_at, value)) if expires_at > now => Ok(Issued {
                    value,
                    expires_in: expires_at - now,
                }),
                _ => Ok(self.new_stable(appid, now, None)),
            };
        }
        self.apps.get_mut(appid).expect("known app").last_forced = Some(now);
        Ok(self.new_stable(appid, now, Some(now.saturating_add(FORCED_GRACE))))
    }

    fn new_stable(&mut self, appid: &str, now: u64, revoke_previous_at: Option<u64>) -> Issued {
        let issued = self.issue_token(appid, now);
        let app = self.apps.get_mut(appid).expect("known app");
        let previous = app.stable.replace(issued.value.clone());
        app.stats.stable_tokens_issued += 1;
        if let (Some(previous), Some(at)) = (previous, revoke_previous_at) {
            if let Some(cred) = self.tokens.get_mut(&previous) {
                cred.revoked_at = Some(cred.revoked_at.map_or(at, |r| r.min(at)));
            }
        }
        issued
    }

    /// Checks grant_type, appid, whitelist, secret and quota, in WeChat's order.
    fn authenticate(
        &mut self,
        req: &TokenRequest,
        caller: IpAddr,
        api: TokenApi,
        now: u64,
    ) -> Result<String, (Option<String>, WxError)> {
        if req.grant_type.as_deref() != Some("client_credential") {
            return Err((None, WxError::of(errcode::INVALID_GRANT_TYPE)));
        }
        let appid = req
            .appid
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or((None, WxError::of(errcode::APPID_MISSING)))?;
        let Some(app) = self.apps.get(appid) else {
            // A platform's appid has no /cgi-bin/token (families §3.2).
            let code = if self.component.is_component(appid) {
                errcode::COMPONENT_NEEDS_COMPONENT_TOKEN
            } else {
                errcode::INVALID_APPID
            };
            return Err((None, WxError::of(code)));
        };
        let known = || Some(appid.to_owned());
        self.check_ip(caller).map_err(|e| (known(), e))?;
        let secret = req.secret.as_deref().unwrap_or_default();
        if secret.is_empty() {
            return Err((known(), WxError::of(errcode::APPSECRET_MISSING)));
        }
        if secret != app.secret {
            let err = match api {
                TokenApi::Classic => WxError::invalid_credential(),
                TokenApi::Stable => WxError::of(errcode::INVALID_APPSECRET),
            };
            return Err((known(), err));
        }
        let (quota_path, limit) = match api {
            TokenApi::Classic => (path::TOKEN, self.config.daily_quota),
            TokenApi::Stable => (path::STABLE_TOKEN, self.config.stable_daily_quota),
        };
        if !self.take_quota(appid, quota_path, limit, now) {
            return Err((known(), WxError::quota()));
        }
        Ok(appid.to_owned())
    }

    /// `GET /cgi-bin/ticket/getticket`: a new ticket bound to a valid access token.
    pub(crate) fn ticket(
        &mut self,
        access_token: Option<&str>,
        kind: Option<&str>,
        caller: IpAddr,
        now: u64,
    ) -> Outcome<Issued> {
        let appid = match self.authorize(path::TICKET, access_token, caller, now) {
            Ok(appid) => appid,
            Err(outcome) => return outcome,
        };
        let no_tickets = self.apps[&appid].kind.rules().no_tickets;
        let result = match kind {
            Some("jsapi" | "wx_card") if no_tickets.is_some() => {
                let (errcode, errmsg) = no_tickets.expect("checked by the guard");
                Err(WxError::new(errcode, errmsg))
            }
            Some("jsapi" | "wx_card") => {
                if self.take_quota(&appid, path::TICKET, self.config.daily_quota, now) {
                    self.seq += 1;
                    let value = format!(
                        "sim{}_{}",
                        self.seq,
                        hex::encode(rand::random::<[u8; 32]>())
                    );
                    let expires_at = now.saturating_add(self.config.expires_in);
                    self.tickets.insert(
                        value.clone(),
                        Credential {
                            appid: appid.clone(),
                            expires_at,
                            revoked_at: None,
                            via: None,
                        },
                    );
                    self.app_stats(Some(&appid)).tickets_issued += 1;
                    Ok(Issued {
                        value,
                        expires_in: self.config.expires_in,
                    })
                } else {
                    Err(WxError::quota())
                }
            }
            _ => Err(WxError::of(errcode::INVALID_ARGS)),
        };
        self.answer(path::TICKET, Some(appid), result)
    }

    /// A token-authenticated API call: the appid, or the error answer to give.
    pub(crate) fn authorize(
        &mut self,
        api: &'static str,
        access_token: Option<&str>,
        caller: IpAddr,
        now: u64,
    ) -> Result<String, Outcome<Issued>> {
        let Some(token) = access_token.filter(|t| !t.is_empty()) else {
            return Err(self.answer(api, None, Err(WxError::of(errcode::ACCESS_TOKEN_MISSING))));
        };
        let Some(cred) = self.tokens.get(token) else {
            self.unattributed.invalid_token_calls += 1;
            return Err(self.answer(api, None, Err(WxError::invalid_credential())));
        };
        let appid = cred.appid.clone();
        if let Err(err) = cred.check(now) {
            self.app_stats(Some(&appid)).invalid_token_calls += 1;
            return Err(self.answer(api, Some(appid), Err(err)));
        }
        let via = cred.via.clone();
        // A platform calling for an authorizer is checked against the
        // platform's whitelist, not the account's (families §3.2, "all component
        // APIs check the caller IP against the platform's whitelist").
        // Mini Programs' whitelist covers only the AppSecret APIs (§4.1).
        let ip = if let Some(component) = via {
            self.component.check_ip(&component, caller)
        } else if self.apps[&appid].kind.rules().whitelist_token_apis {
            self.check_ip(caller)
        } else {
            Ok(())
        };
        if let Err(err) = ip {
            return Err(self.answer(api, Some(appid), Err(err)));
        }
        Ok(appid)
    }

    /// Counts an answered call and passes the result through; an error gets the
    /// rid under which the call will be recorded.
    pub(crate) fn answer<T>(
        &mut self,
        api: &'static str,
        appid: Option<String>,
        result: Result<T, WxError>,
    ) -> Outcome<T> {
        let endpoint = self
            .app_stats(appid.as_deref())
            .endpoints
            .entry(api.to_owned())
            .or_default();
        endpoint.calls += 1;
        endpoint.errors += u64::from(result.is_err());
        let result = result.map_err(|e| Answered::new(e, appid.clone()));
        (appid, result)
    }

    /// Remembers the call answered under `rid`, for `rid/get`.
    pub(crate) fn record_rid(&mut self, rid: String, appid: Option<String>, call: CallRecord) {
        self.rids.record(rid, appid, call);
    }

    /// Records a customer-service message (`/cgi-bin/message/custom/send`, §6.1).
    pub(crate) fn custom_send(
        &mut self,
        appid: String,
        body: serde_json::Value,
        sent_with: &str,
        now: u64,
    ) -> Outcome<()> {
        const TYPES: &[&str] = &[
            "text",
            "image",
            "voice",
            "video",
            "music",
            "news",
            "mpnews",
            "mpnewsarticle",
            "msgmenu",
            "wxcard",
            "miniprogrampage",
        ];
        let touser = body
            .get("touser")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let msgtype = body
            .get("msgtype")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let result = if touser.is_empty() {
            Err(WxError::of(errcode::INVALID_OPENID))
        } else if !TYPES.contains(&msgtype) || body.get(msgtype).is_none() {
            Err(WxError::new(40008, "invalid message type"))
        } else {
            self.app_stats(Some(&appid)).custom_messages += 1;
            self.messages.push(CustomMessage {
                appid: appid.clone(),
                at: now,
                body,
                sent_with: Some(sent_with.to_owned()),
            });
            Ok(())
        };
        self.answer(path::CUSTOM_SEND, Some(appid), result)
    }

    pub(crate) fn messages(&self) -> Vec<CustomMessage> {
        self.messages.clone()
    }

    pub(crate) fn stats(&self, now: u64) -> Stats {
        Stats {
            now,
            apps: self
                .apps
                .iter()
                .map(|(id, a)| (id.clone(), a.stats.clone()))
                .collect(),
            unattributed: self.unattributed.clone(),
            faults_injected: self.faults_injected,
            fault_bytes_sent: self.fault_bytes_sent,
            fault_streams_open: self.fault_streams_open,
            endpoint_calls: self.endpoint_calls.clone(),
            media_stored_bytes: self.media.stored_bytes(now),
            wecom: self.wecom.stats(),
            components: self.component.stats(),
        }
    }

    fn check_ip(&self, caller: IpAddr) -> Result<(), WxError> {
        let caller = plain_ip(caller);
        match &self.ip_whitelist {
            Some(list) if !list.iter().any(|net| net.contains(&caller)) => {
                Err(WxError::invalid_ip(caller))
            }
            _ => Ok(()),
        }
    }

    /// Calls of `appid`'s daily quota for `api` used today.
    fn quota_used(&self, appid: &str, api: &'static str, now: u64) -> u32 {
        let today = beijing_day(now);
        let app = &self.apps[appid];
        app.quota
            .get(api)
            .filter(|(day, _)| *day == today)
            .map_or(0, |(_, used)| *used)
    }

    /// Uses one call of `appid`'s daily quota for `api`; false when it is spent.
    fn take_quota(&mut self, appid: &str, api: &'static str, limit: u32, now: u64) -> bool {
        let day = beijing_day(now);
        let app = self.apps.get_mut(appid).expect("quota of a known app");
        let (quota_day, used) = app.quota.entry(api).or_insert((day, 0));
        if *quota_day != day {
            (*quota_day, *used) = (day, 0);
        }
        if *used >= limit {
            return false;
        }
        *used += 1;
        true
    }

    fn issue_token(&mut self, appid: &str, now: u64) -> Issued {
        self.tokens
            .retain(|_, c| c.dead_since() + REMEMBER_DEAD > now);
        self.tickets
            .retain(|_, c| c.dead_since() + REMEMBER_DEAD > now);
        self.seq += 1;
        // Real tokens are opaque, 130–160 characters; reserve ≥ 512 (§4.1).
        let value = format!("{}_{}", self.seq, hex::encode(rand::random::<[u8; 64]>()));
        let cred = Credential {
            appid: appid.to_owned(),
            expires_at: now.saturating_add(self.config.expires_in),
            revoked_at: None,
            via: None,
        };
        self.tokens.insert(value.clone(), cred);
        Issued {
            value,
            expires_in: self.config.expires_in,
        }
    }

    pub(crate) fn app_stats(&mut self, appid: Option<&str>) -> &mut AppStats {
        match appid.and_then(|id| self.apps.get_mut(id)) {
            Some(app) => &mut app.stats,
            None => &mut self.unattributed,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn plain_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Days since 1970-01-01 of the Beijing (UTC+8) date at `now`: the quota day.
fn beijing_day(now: u64) -> u64 {
    now.saturating_add(BEIJING_OFFSET) / 86_400
}
