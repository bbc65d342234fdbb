//! Families of owners (Official Accounts, Mini Programs, WeCom apps), and
//! everything that differs between them, as data: one `static` per family,
//! as ring's `aead::Algorithm` values are. Nothing else in the gateway
//! matches on a family; what needs code (how a token is fetched) is the
//! family's issuer ([`crate::token::issuer`]). See `docs/owner-model.md`.

use crate::store::Kind;
use wxgate_proto::errcode;

/// Which of WeChat's API hosts a family's calls go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// `api.weixin.qq.com` (`upstream.base_url`).
    #[default]
    WeChat,
    /// `qyapi.weixin.qq.com` (`upstream.wecom_base_url`).
    WeCom,
}

impl Api {
    /// How errors name the service: `WeChat` or `WeCom`.
    pub fn name(self) -> &'static str {
        match self {
            Api::WeChat => "WeChat",
            Api::WeCom => "WeCom",
        }
    }
}

/// How a family's pushes arrive (protocol reference §1–3, families §1.5, §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `/wx/{appid}`: `signature` over token, timestamp and nonce, then the
    /// body plain, compatible or encrypted; `json`: the body may be JSON
    /// (a Mini Program's console choice).
    WeChat {
        /// Whether a JSON body is read too.
        json: bool,
    },
    /// `/wecom/{corpid}/{agent}`: always encrypted for the corp, only
    /// `msg_signature`; the URL check's `echostr` is encrypted too.
    WeCom,
}

/// Which replies a family can deliver passively, within the 5 s window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassiveReplies {
    /// Any reply.
    Any,
    /// Any but `transfer_customer_service`, which the family does not have (WeCom).
    NoTransfer,
    /// Only `transfer_customer_service`; text and images go out as
    /// customer-service messages at once; other replies cannot be delivered.
    TransferOnly,
}

/// How a reply that cannot be passive (late, or not allowed) is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateReply {
    /// The API that sends it.
    pub endpoint: &'static str,
    /// Whether the message names the app's agentid (WeCom's `message/send`);
    /// an owner without one cannot send late replies.
    pub agentid: bool,
}

/// What a family's JS-SDK signature answer holds (protocol reference §5.3, families §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsSdk {
    /// `wx.config`'s parameters, signed with the owner's jsapi_ticket.
    Config,
    /// WeCom's `wx.config` (the corp's jsapi_ticket) and `wx.agentConfig`
    /// (the app's agent_config ticket, with its agentid).
    ConfigAndAgentConfig,
}

/// One ticket a family fetches with its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketCall {
    /// The credential.
    pub kind: Kind,
    /// The API path.
    pub endpoint: &'static str,
    /// The `type` parameter, when the API takes one.
    pub type_param: Option<&'static str>,
}

/// One way a family's users sign in: a code handed to the user's browser
/// or app by WeChat, traded once for who the user is (families §4.d, §2).
/// The exchange itself is data, so that another credential family (the Open
/// Platform's `/sns/oauth2/component/access_token`, which takes the
/// component's token instead of the secret) is one more value plus how it
/// authenticates, not another code path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeExchange {
    /// `oauth` or `jscode2session`: metrics labels, logs, store keys.
    pub name: &'static str,
    /// The API taking appid, secret and the code.
    pub endpoint: &'static str,
    /// What the code is called in it: `code`, `js_code`.
    pub code_param: &'static str,
    /// Where a refresh token buys a new user access token (web
    /// authorization), when the exchange hands one out.
    pub refresh: Option<&'static str>,
    /// Where a user access token buys the user's profile.
    pub userinfo: Option<&'static str>,
    /// Where a user access token is checked.
    pub auth: Option<&'static str>,
}

/// Web authorization (网页授权) of an Official Account (families §4.d).
pub const WEB_OAUTH: CodeExchange = CodeExchange {
    name: "oauth",
    endpoint: "/sns/oauth2/access_token",
    code_param: "code",
    refresh: Some("/sns/oauth2/refresh_token"),
    userinfo: Some("/sns/userinfo"),
    auth: Some("/sns/auth"),
};

/// A Mini Program's `wx.login` code, traded for its session (families §2).
pub const JSCODE2SESSION: CodeExchange = CodeExchange {
    name: "jscode2session",
    endpoint: "/sns/jscode2session",
    code_param: "js_code",
    refresh: None,
    userinfo: None,
    auth: None,
};

/// How the token center reacts to a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Busy (-1), timeouts, dropped connections, 5xx: retry with backoff.
    Transient,
    /// Wrong secret, appid, whitelist…: an operator must act; do not hammer.
    Config,
    /// Daily quota used up (45009): stop until it resets.
    Quota,
    /// The access token used for a ticket was refused (40001, 40014, 42001).
    TokenRejected,
    /// Not refused: a credential WeChat pushes rather than hands out (a
    /// platform's verify ticket) has not come yet, and WeChat was asked to
    /// push it (at a platform's first start, always this for a moment).
    /// Retried as a transient failure.
    Awaiting,
}

impl FailureClass {
    /// `transient`, `config`, `quota`, `token_rejected` or `awaiting_push` (metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Config => "config",
            FailureClass::Quota => "quota",
            FailureClass::TokenRejected => "token_rejected",
            FailureClass::Awaiting => "awaiting_push",
        }
    }
}

/// What an errcode means for the token center, with the hint an operator needs.
pub type Classify = fn(owner: &str, errcode: i64, errmsg: &str) -> (FailureClass, Option<String>);

/// A family's rules, as data. Two families are the same when their names are.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The one name: `official_account`, `mini_program`, `wecom`.
    pub name: &'static str,
    /// How pushes, the webhook and push metrics name it (kept from before
    /// families were data): `official`, `miniprogram`, `wecom`.
    pub push_name: &'static str,
    /// What to call one owner in messages: `app`, `WeCom app`.
    pub noun: &'static str,
    /// The credentials an owner of this family has.
    pub kinds: &'static [Kind],
    /// Why it has no others, for the caller who asks for one.
    pub lacks: &'static str,
    /// Its API host.
    pub api: Api,
    /// The cheapest call that proves a token works (takes only the token);
    /// `None` when WeChat has none (a platform's component token).
    pub probe: Option<&'static str>,
    /// APIs whose only credential is the access token (the probe's among
    /// them): their 40001, 40014 or 42001 can only be about that token, so it
    /// needs no check before a compare-and-refresh. Any other API's may be
    /// about another credential of the call.
    pub token_only_paths: &'static [&'static str],
    /// The tickets it fetches with its access token.
    pub tickets: &'static [TicketCall],
    /// What its errcodes mean.
    pub classify: Classify,
    /// What its JS-SDK signature answer holds.
    pub js_sdk: JsSdk,
    /// How its pushes arrive.
    pub envelope: Envelope,
    /// What it may answer a push with.
    pub passive_replies: PassiveReplies,
    /// The answer to a push with no reply: `success`, or WeCom's empty body.
    pub no_reply: &'static str,
    /// Where a reply that cannot be passive (late, or not allowed) goes: a
    /// customer-service message, or WeCom's app message (with the agentid).
    pub late_reply: LateReply,
    /// How its users sign in through wxgate: the code exchanges it has.
    pub sign_in: &'static [&'static CodeExchange],
    /// Why it lacks the others, for the caller who asks for one.
    pub sign_in_lacks: &'static str,
}

impl PartialEq for Family {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Family {}

impl Family {
    /// How `kind` is fetched with the access token, if this family has it as a ticket.
    pub fn ticket(&self, kind: Kind) -> Option<&'static TicketCall> {
        self.tickets.iter().find(|t| t.kind == kind)
    }

    /// The code exchange `name` (`oauth`, `jscode2session`), if its users sign in that way.
    pub fn exchange(&self, name: &str) -> Option<&'static CodeExchange> {
        self.sign_in.iter().copied().find(|e| e.name == name)
    }

    /// The code exchange served at `endpoint`, if this family has it.
    pub fn exchange_at(&self, endpoint: &str) -> Option<&'static CodeExchange> {
        self.sign_in
            .iter()
            .copied()
            .find(|e| e.endpoint == endpoint)
    }

    /// Whether a rejection of the token on `path` can only be about that token.
    pub fn is_token_only(&self, path: &str) -> bool {
        self.token_only_paths.contains(&path)
    }
}

/// The IP-list APIs, which take nothing but the access token.
const IP_LISTS: &[&str] = &["/cgi-bin/get_api_domain_ip", "/cgi-bin/getcallbackip"];

/// Official Accounts: an access token, the JS-SDK and card tickets.
pub const OFFICIAL_ACCOUNT: Family = Family {
    name: "official_account",
    push_name: "official",
    noun: "app",
    kinds: &[Kind::AccessToken, Kind::JsapiTicket, Kind::WxCardTicket],
    lacks: "an Official Account has no agent_config ticket (a WeCom app's)",
    api: Api::WeChat,
    probe: Some("/cgi-bin/get_api_domain_ip"),
    token_only_paths: IP_LISTS,
    tickets: &[
        TicketCall {
            kind: Kind::JsapiTicket,
            endpoint: "/cgi-bin/ticket/getticket",
            type_param: Some("jsapi"),
        },
        TicketCall {
            kind: Kind::WxCardTicket,
            endpoint: "/cgi-bin/ticket/getticket",
            type_param: Some("wx_card"),
        },
    ],
    classify: classify_wechat,
    js_sdk: JsSdk::Config,
    envelope: Envelope::WeChat { json: false },
    passive_replies: PassiveReplies::Any,
    no_reply: wxgate_proto::reply::SUCCESS,
    late_reply: LateReply {
        endpoint: "/cgi-bin/message/custom/send",
        agentid: false,
    },
    sign_in: &[&WEB_OAUTH],
    sign_in_lacks: "an Official Account's users sign in by web authorization (oauth), \
                    not jscode2session (a Mini Program's wx.login)",
};

/// Mini Programs: the same token APIs; no JS-SDK, so no tickets; XML or
/// JSON pushes, and only the transfer as a passive reply (§2).
pub const MINI_PROGRAM: Family = Family {
    name: "mini_program",
    push_name: "miniprogram",
    kinds: &[Kind::AccessToken],
    lacks: "a Mini Program has no JS-SDK and no card tickets: only its access_token \
            (users sign in with wx.login and jscode2session)",
    tickets: &[],
    envelope: Envelope::WeChat { json: true },
    passive_replies: PassiveReplies::TransferOnly,
    sign_in: &[&JSCODE2SESSION],
    sign_in_lacks: "a Mini Program's users sign in with wx.login and jscode2session, \
                    not web authorization (an Official Account's)",
    ..OFFICIAL_ACCOUNT
};

/// WeCom apps: a token per (corpid, secret), the corp's jsapi_ticket and the
/// app's agent_config ticket, both fetched with the app's token.
pub const WECOM: Family = Family {
    name: "wecom",
    push_name: "wecom",
    noun: "WeCom app",
    kinds: &[
        Kind::AccessToken,
        Kind::JsapiTicket,
        Kind::AgentConfigTicket,
    ],
    lacks: "a WeCom app has no card ticket",
    api: Api::WeCom,
    probe: Some("/cgi-bin/getcallbackip"),
    token_only_paths: &["/cgi-bin/getcallbackip"],
    tickets: &[
        TicketCall {
            kind: Kind::JsapiTicket,
            endpoint: "/cgi-bin/get_jsapi_ticket",
            type_param: None,
        },
        TicketCall {
            kind: Kind::AgentConfigTicket,
            endpoint: "/cgi-bin/ticket/get",
            type_param: Some("agent_config"),
        },
    ],
    classify: classify_wecom,
    js_sdk: JsSdk::ConfigAndAgentConfig,
    envelope: Envelope::WeCom,
    passive_replies: PassiveReplies::NoTransfer,
    no_reply: "",
    late_reply: LateReply {
        endpoint: "/cgi-bin/message/send",
        agentid: true,
    },
    sign_in: &[],
    sign_in_lacks:
        "WeCom's user sign-in (getuserinfo with the app's token) is not served by wxgate yet",
};

/// Why an authorizer has no sign-in here: it has no secret of its own;
/// its users sign in through its platform, which wxgate does not do yet.
const AUTHORIZER_SIGN_IN: &str = "an authorizer's users sign in through its platform \
    (/sns/oauth2/component/access_token, /sns/component/jscode2session with the component token), \
    which wxgate does not serve yet";

/// Official Accounts that authorized an Open Platform platform
/// (authorizers): the Official Account's credentials, and the refresh token
/// their access token is fetched with through the platform (families §3.5).
pub const AUTHORIZED_OFFICIAL_ACCOUNT: Family = Family {
    name: "authorized_official_account",
    sign_in: &[],
    sign_in_lacks: AUTHORIZER_SIGN_IN,
    kinds: &[
        Kind::AccessToken,
        Kind::JsapiTicket,
        Kind::WxCardTicket,
        Kind::RefreshToken,
    ],
    ..OFFICIAL_ACCOUNT
};

/// Mini Programs that authorized an Open Platform platform.
pub const AUTHORIZED_MINI_PROGRAM: Family = Family {
    name: "authorized_mini_program",
    sign_in: &[],
    sign_in_lacks: AUTHORIZER_SIGN_IN,
    kinds: &[Kind::AccessToken, Kind::RefreshToken],
    ..MINI_PROGRAM
};

/// Open Platform third-party platforms (第三方平台, families §3): the
/// `component_access_token` (this family's access token), fetched with the
/// `component_verify_ticket` WeChat pushes every 10 minutes. Its pushes (the
/// ticket, authorization events) have an endpoint of their own; its
/// authorizers' pushes use its token and key.
pub const COMPONENT: Family = Family {
    name: "component",
    push_name: "component",
    noun: "platform",
    kinds: &[Kind::AccessToken, Kind::VerifyTicket],
    lacks: "a platform has its component_access_token only; its authorizers' credentials are \
            theirs (/v1/apps/{authorizer_appid}/…)",
    probe: None,
    // The component APIs whose only credential is the component token (the
    // others also carry an authorization code or an authorizer's refresh
    // token, whose refusals have errcodes of their own anyway).
    token_only_paths: &[
        wxgate_proto::component::api::CREATE_PREAUTHCODE,
        wxgate_proto::component::api::GET_AUTHORIZER_LIST,
        wxgate_proto::component::api::GET_AUTHORIZER_INFO,
        "/cgi-bin/component/api_get_authorizer_option",
        "/cgi-bin/component/api_set_authorizer_option",
    ],
    tickets: &[],
    classify: classify_component,
    ..OFFICIAL_ACCOUNT
};

/// What an errcode of the component APIs means (families §3.2–3.5).
fn classify_component(owner: &str, errcode: i64, errmsg: &str) -> (FailureClass, Option<String>) {
    use FailureClass::*;
    match errcode {
        errcode::CLIENT_IP_NOT_REGISTERED => {
            let ip = wxgate_proto::component_request_ip(errmsg).unwrap_or("this server's outbound IP");
            (
                Config,
                Some(format!(
                    "add {ip} to the IP whitelist of platform {owner} (open.weixin.qq.com → 第三方平台 → 开发资料 → 白名单IP地址列表)"
                )),
            )
        }
        code if errcode::component_ticket_rejected(code) => (
            Transient,
            Some(format!(
                "WeChat refused the component_verify_ticket of {owner}; wxgate asked WeChat to push a new one (api_start_push_ticket) and uses it when it arrives"
            )),
        ),
        errcode::AUTHORIZER_REFRESH_TOKEN_INVALID => (
            Transient,
            Some(format!(
                "the authorizer_refresh_token of {owner} is no longer valid; wxgate recovers the current one with api_get_authorizer_list (if the account revoked the authorization, it must authorize the platform again)"
            )),
        ),
        errcode::COMPONENT_UNAUTHORIZED => (
            Config,
            Some(format!("{owner} has not authorized this platform (or revoked it): it must authorize it again")),
        ),
        errcode::INVALID_COMPONENT => (
            Config,
            Some(format!("WeChat does not know platform {owner}: check component_appid")),
        ),
        _ => classify_wechat(owner, errcode, errmsg),
    }
}

/// What a WeChat errcode means for the token center (protocol reference §4.3).
fn classify_wechat(appid: &str, errcode: i64, errmsg: &str) -> (FailureClass, Option<String>) {
    use errcode::{
        ip_not_allowed, ACCESS_TOKEN_EXPIRED, API_UNAUTHORIZED, APPID_MISSING, APPSECRET_FROZEN,
        APPSECRET_MISSING, BUSY, DAILY_QUOTA, INVALID_ACCESS_TOKEN, INVALID_APPID,
        INVALID_APPSECRET, INVALID_CREDENTIAL, INVALID_GRANT_TYPE, MINUTE_QUOTA,
    };
    use FailureClass::*;
    let hint = |s: String| Some(s);
    match errcode {
        BUSY => (Transient, hint("WeChat is busy; wxgate retries with backoff".into())),
        MINUTE_QUOTA => (Transient, hint("per-minute limit reached; wxgate backs off".into())),
        DAILY_QUOTA => (
            Quota,
            hint(format!(
                "the daily quota of {appid} is used up; wxgate stops fetching until 00:00 Beijing time \
                 (an administrator can reset it with /cgi-bin/clear_quota)"
            )),
        ),
        code if ip_not_allowed(code) => {
            let ip = wxgate_proto::whitelist_ip(errmsg).unwrap_or("this server's outbound IP");
            (
                Config,
                hint(format!(
                    "add {ip} to the API IP whitelist of {appid} (mp.weixin.qq.com → 设置与开发 → 基本配置 → IP白名单)"
                )),
            )
        }
        INVALID_CREDENTIAL | INVALID_APPSECRET => (Config, hint(format!("the AppSecret of {appid} is wrong or was reset: update its secret"))),
        APPSECRET_FROZEN => (Config, hint(format!("the AppSecret of {appid} is frozen: unfreeze it in the console"))),
        INVALID_APPID => (Config, hint(format!("WeChat does not know appid {appid}: check it"))),
        INVALID_GRANT_TYPE | APPID_MISSING | APPSECRET_MISSING => (Config, hint("the request lacked a field WeChat requires (a wxgate bug?)".into())),
        INVALID_ACCESS_TOKEN | ACCESS_TOKEN_EXPIRED => (TokenRejected, None),
        API_UNAUTHORIZED => (Config, hint(format!("{appid} lacks the permission for this API"))),
        _ => (Transient, None),
    }
}

/// What a WeCom errcode means (families §1.2): 60020 names the IP to trust;
/// 45009 is a rate limit, not a daily quota. (40001, 40014 and 42001 on a
/// call with a token say the token is bad, as for every family.)
fn classify_wecom(owner: &str, errcode: i64, errmsg: &str) -> (FailureClass, Option<String>) {
    use FailureClass::*;
    match errcode {
        errcode::BUSY => (
            Transient,
            Some("WeCom is busy; wxgate retries with backoff".into()),
        ),
        errcode::INVALID_CREDENTIAL | errcode::WECOM_INVALID_SECRET => (
            Config,
            Some(format!(
                "the secret of {owner} is wrong or was reset: each WeCom app has its own Secret \
                 (应用管理 → the app → Secret)"
            )),
        ),
        errcode::INVALID_APPID => (
            Config,
            Some(format!(
                "WeCom does not know the corp of {owner}: check corpid"
            )),
        ),
        errcode::APPSECRET_MISSING => (
            Config,
            Some("the request lacked corpsecret (a wxgate bug?)".into()),
        ),
        errcode::DAILY_QUOTA | errcode::WECOM_FREQ_LIMIT => (
            Transient,
            Some("WeCom's rate limit (per minute or hour): wxgate backs off".into()),
        ),
        errcode::WECOM_NO_PERMISSION => (
            Config,
            Some(format!(
                "{owner} may not call this API: grant it in the console"
            )),
        ),
        errcode::WECOM_UNTRUSTED_IP => {
            let ip = wxgate_proto::wecom_from_ip(errmsg).unwrap_or("this server's outbound IP");
            (
                Config,
                Some(format!(
                    "add {ip} to the 企业可信IP of {owner} (应用管理 → the app → 企业可信IP)"
                )),
            )
        }
        errcode::WECOM_OTHER_AGENT => (
            Config,
            Some(format!(
                "WeCom says this token belongs to another app of the corp: {owner} must use its \
                 own token (wxgate keeps one per app; a program sharing tokens per corp is wrong)"
            )),
        ),
        _ => (Transient, None),
    }
}

/// Every family, for docs, tests and lookups by name.
pub static FAMILIES: [&Family; 6] = [
    &OFFICIAL_ACCOUNT,
    &MINI_PROGRAM,
    &WECOM,
    &AUTHORIZED_OFFICIAL_ACCOUNT,
    &AUTHORIZED_MINI_PROGRAM,
    &COMPONENT,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Each family's values agree with each other: what a new family's
    /// author gets wrong first is caught here, not in production.
    #[test]
    fn every_family_is_consistent() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len(), "family names are unique");
        for family in FAMILIES {
            assert_eq!(
                family.kinds.first(),
                Some(&Kind::AccessToken),
                "{}",
                family.name
            );
            for ticket in family.tickets {
                assert!(
                    family.kinds.contains(&ticket.kind),
                    "{}: {ticket:?}",
                    family.name
                );
                assert_ne!(ticket.kind, Kind::AccessToken, "{}", family.name);
            }
            // The probe takes only the token, so its rejection needs no check.
            if let Some(probe) = family.probe {
                assert!(family.is_token_only(probe), "{}", family.name);
            }
            // A family with a JS-SDK answer has the jsapi_ticket it is signed with…
            let signs = family.kinds.contains(&Kind::JsapiTicket);
            // …and one whose answer names the agent has that agent's ticket.
            if family.js_sdk == JsSdk::ConfigAndAgentConfig {
                assert!(signs && family.kinds.contains(&Kind::AgentConfigTicket));
            }
            assert!(!family.lacks.is_empty(), "{}", family.name);
            assert!(!family.sign_in_lacks.is_empty(), "{}", family.name);
            for exchange in family.sign_in {
                assert_eq!(family.exchange_at(exchange.endpoint), Some(*exchange));
                // A refresh token needs a token to refresh.
                assert!(exchange.refresh.is_none() || exchange.userinfo.is_some());
            }
        }
    }

    /// Who signs in which way: web authorization is an Official Account's,
    /// jscode2session a Mini Program's.
    #[test]
    fn each_family_signs_users_in_its_own_way() {
        assert_eq!(OFFICIAL_ACCOUNT.exchange("oauth"), Some(&WEB_OAUTH));
        assert_eq!(OFFICIAL_ACCOUNT.exchange("jscode2session"), None);
        assert_eq!(
            MINI_PROGRAM.exchange_at("/sns/jscode2session"),
            Some(&JSCODE2SESSION)
        );
        assert_eq!(MINI_PROGRAM.exchange("oauth"), None);
        assert!(WECOM.sign_in.is_empty());
    }

    /// What an errcode means differs by family where WeChat and WeCom differ.
    #[test]
    fn errcodes_read_as_each_family_means_them() {
        let quota = (OFFICIAL_ACCOUNT.classify)("wx1", errcode::DAILY_QUOTA, "");
        assert_eq!(quota.0, FailureClass::Quota);
        let rate = (WECOM.classify)("corp/app", errcode::DAILY_QUOTA, "");
        assert_eq!(
            rate.0,
            FailureClass::Transient,
            "45009 is WeCom's rate limit"
        );
        let ip = (WECOM.classify)("corp/app", errcode::WECOM_UNTRUSTED_IP, "from ip: 1.2.3.4");
        assert_eq!(ip.0, FailureClass::Config);
        assert!(ip.1.unwrap().contains("企业可信IP"));
    }
}
