//! What a simulator instance simulates: its accounts and WeChat's limits.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The family of an account that uses `/cgi-bin/token` (families reference §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// An Official Account (公众号).
    #[default]
    Official,
    /// A Mini Program (小程序).
    Miniprogram,
}

/// How a family differs from an Official Account: data, read by the shared rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyRules {
    /// Whether the API IP whitelist covers token-authenticated APIs too (OA: every
    /// server API; Mini Programs: only the AppSecret ones, protocol reference §4.1).
    pub whitelist_token_apis: bool,
    /// What `ticket/getticket` answers instead of a ticket, when the family has
    /// none: Mini Programs have no JS-SDK (families §2, "[doc by absence; ?]"),
    /// answered as an API the account lacks permission for.
    pub no_tickets: Option<(i64, &'static str)>,
}

impl AppKind {
    /// The family's rules.
    pub fn rules(self) -> FamilyRules {
        match self {
            AppKind::Official => FamilyRules {
                whitelist_token_apis: true,
                no_tickets: None,
            },
            AppKind::Miniprogram => FamilyRules {
                whitelist_token_apis: false,
                no_tickets: Some((48001, "api unauthorized")),
            },
        }
    }
}

impl std::str::FromStr for AppKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "official" => Ok(AppKind::Official),
            "miniprogram" => Ok(AppKind::Miniprogram),
            _ => Err(format!("{s:?} is neither official nor miniprogram")),
        }
    }
}

/// One simulated Official Account or Mini Program.
#[derive(Clone, PartialEq, Eq)]
pub struct SimApp {
    /// AppID (`wx` + 16 characters).
    pub appid: String,
    /// AppSecret.
    pub secret: String,
    /// Official Account (default) or Mini Program.
    pub kind: AppKind,
}

impl std::fmt::Debug for SimApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimApp")
            .field("appid", &self.appid)
            .field("secret", &"***")
            .field("kind", &self.kind)
            .finish()
    }
}

impl SimApp {
    /// An app with this appid and secret.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
            kind: AppKind::Official,
        }
    }

    /// A Mini Program with this appid and secret.
    pub fn miniprogram(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            kind: AppKind::Miniprogram,
            ..Self::new(appid, secret)
        }
    }

    /// The demo account `wxgate dev` and `wxgate sim` start with when none is given.
    pub fn demo() -> Self {
        Self::new("wxd000000000000001", "demo0secret0000000000000000000000")
    }
}

/// One WeCom credential: a self-built app (with its agentid) or a special
/// secret (contacts sync, customer contact…, with a name). A token belongs to
/// (corpid, secret), never to the corp alone (families reference §1.1).
#[derive(Clone, PartialEq, Eq)]
pub struct SimCorpApp {
    /// CorpID (`ww` + 16 characters).
    pub corpid: String,
    /// The app's agentid; `None` for a special secret.
    pub agentid: Option<u64>,
    /// Unique per corp: the agentid as text, or the special secret's name.
    pub name: String,
    /// The app's secret.
    pub secret: String,
    /// The app's 企业可信IP (families §1.3); `None` lets every caller in
    /// (an app created before 2022-06-20).
    pub trusted_ips: Option<Vec<IpNet>>,
}

impl std::fmt::Debug for SimCorpApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCorpApp")
            .field("corpid", &self.corpid)
            .field("agentid", &self.agentid)
            .field("name", &self.name)
            .field("secret", &"***")
            .field("trusted_ips", &self.trusted_ips)
            .finish()
    }
}

impl SimCorpApp {
    /// A self-built app: `agent` is its agentid, or a name for a special secret.
    pub fn new(
        corpid: impl Into<String>,
        agent: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        let name = agent.into();
        Self {
            corpid: corpid.into(),
            agentid: name.parse().ok(),
            name,
            secret: secret.into(),
            trusted_ips: None,
        }
    }

    /// `corpid/name`: the key of its stats and of its credential in the gateway.
    pub fn key(&self) -> String {
        format!("{}/{}", self.corpid, self.name)
    }
}

/// One simulated Open Platform third-party platform (第三方平台, families reference §3).
#[derive(Clone, PartialEq, Eq)]
pub struct SimComponent {
    /// The component appid.
    pub appid: String,
    /// The component appsecret.
    pub secret: String,
    /// The token entered when the platform was created (signs pushes).
    pub token: String,
    /// The 43-character EncodingAESKey entered with it.
    pub encoding_aes_key: String,
    /// The 授权事件接收URL: tickets and authorization events are POSTed here;
    /// `None`: nothing is pushed (the tickets are still minted).
    pub push_url: Option<String>,
    /// The platform's IP whitelist (61004 for other callers); `None` lets everyone in.
    pub ip_whitelist: Option<Vec<IpNet>>,
}

impl std::fmt::Debug for SimComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimComponent")
            .field("appid", &self.appid)
            .field("secret", &"***")
            .field("push_url", &self.push_url)
            .field("ip_whitelist", &self.ip_whitelist)
            .finish_non_exhaustive()
    }
}

impl SimComponent {
    /// A platform with these credentials, pushing to `push_url`.
    pub fn new(
        appid: impl Into<String>,
        secret: impl Into<String>,
        token: impl Into<String>,
        encoding_aes_key: impl Into<String>,
        push_url: Option<String>,
    ) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
            token: token.into(),
            encoding_aes_key: encoding_aes_key.into(),
            push_url,
            ip_whitelist: None,
        }
    }
}

/// Whether `api_authorizer_token` hands out a new refresh token (families §3.5:
/// "it may change"; the old one keeps working 5 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    /// The refresh token sent is returned (what WeChat usually does).
    #[default]
    Never,
    /// Every call returns a new refresh token.
    EveryCall,
    /// The next call returns a new one, then back to `Never`.
    Once,
}

/// What WeCom answers for an expired token (families §1.2, §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WecomExpiry {
    /// `42001 access_token expired` (documented).
    #[default]
    Expired42001,
    /// `40014 invalid access_token`, as seen in the wild.
    Invalid40014,
}

/// What a repeat `gettoken` reports as `expires_in` (families §1.1, undocumented [?]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WecomRepeat {
    /// The same token with its remaining lifetime.
    #[default]
    Remaining,
    /// The same token, reported with the full lifetime.
    Full,
}

/// Simulator settings; the defaults are WeChat's documented values.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The accounts the simulator knows.
    pub apps: Vec<SimApp>,
    /// Lifetime of access tokens and tickets, seconds (WeChat: 7200).
    pub expires_in: u64,
    /// How long a superseded classic token keeps working, seconds (WeChat: 300).
    /// Not stable_token's renewal window, which is WeChat's fixed 300 s.
    pub grace: u64,
    /// Daily quota per app of `/cgi-bin/token` and of `/cgi-bin/ticket/getticket`
    /// (WeChat: 2000 for tokens); the day starts at midnight Beijing time.
    pub daily_quota: u32,
    /// Daily quota per app of `/cgi-bin/stable_token` (WeChat: 500 000).
    pub stable_daily_quota: u32,
    /// Forced stable_token refreshes allowed per day (WeChat: 20).
    pub force_refresh_per_day: u32,
    /// Minimum seconds between forced stable_token refreshes (WeChat: 30); a
    /// forced refresh sooner returns the current token unchanged.
    pub force_refresh_interval: u64,
    /// API IP whitelist; `None` lets every caller in.
    pub ip_whitelist: Option<Vec<IpNet>>,
    /// Size limit of every temporary media upload, bytes; `None` keeps WeChat's
    /// per-type limits (image 10 MiB, voice 2 MiB, video 10 MiB, thumb 64 KiB).
    pub media_max_bytes: Option<u64>,
    /// WeCom credentials (`/cgi-bin/gettoken`).
    pub corps: Vec<SimCorpApp>,
    /// WeCom's answer to an expired token.
    pub wecom_expiry: WecomExpiry,
    /// WeCom's `expires_in` on a repeat `gettoken`.
    pub wecom_repeat: WecomRepeat,
    /// WeCom ticket fetches allowed per hour per app, for each ticket kind (WeCom: 100).
    pub wecom_tickets_per_app_hour: u32,
    /// WeCom corp `jsapi_ticket` fetches allowed per hour per corp (WeCom: 400).
    pub wecom_tickets_per_corp_hour: u32,
    /// Calls of one WeCom API (token-authenticated) allowed per corp per minute
    /// (WeCom: 10 000) and per hour (150 000), §1.1; over them 45009.
    pub wecom_api_per_corp_minute: u32,
    /// See `wecom_api_per_corp_minute`.
    pub wecom_api_per_corp_hour: u32,
    /// Open Platform third-party platforms.
    pub components: Vec<SimComponent>,
    /// Seconds between two component_verify_ticket pushes (WeChat: 600).
    pub ticket_interval: u64,
    /// Seconds a component_verify_ticket stays valid (WeChat: 43 200, 12 h).
    pub ticket_lifetime: u64,
    /// `expires_in` of a pre_auth_code, seconds (1800; the documentation's
    /// example and older text say 600, families §3.3).
    pub pre_auth_code_expires_in: u64,
    /// Lifetime of an authorization code, seconds (the redirect's `expires_in`:
    /// 600 in the documentation, families §3.3).
    pub auth_code_expires_in: u64,
    /// Daily quota per platform of `api_component_token` (undocumented [?], §8: 2000).
    pub component_daily_quota: u32,
    /// How long a rotated authorizer_refresh_token keeps working, seconds (WeChat: 300).
    pub refresh_token_grace: u64,
    /// Whether `api_authorizer_token` rotates refresh tokens (also per platform:
    /// `PUT /sim/component/{appid}/rotation`).
    pub refresh_token_rotation: Rotation,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            apps: vec![SimApp::demo()],
            expires_in: 7200,
            grace: 300,
            daily_quota: 2000,
            stable_daily_quota: 500_000,
            force_refresh_per_day: 20,
            force_refresh_interval: 30,
            ip_whitelist: None,
            media_max_bytes: None,
            corps: Vec::new(),
            wecom_expiry: WecomExpiry::default(),
            wecom_repeat: WecomRepeat::default(),
            wecom_tickets_per_app_hour: 100,
            wecom_tickets_per_corp_hour: 400,
            wecom_api_per_corp_minute: 10_000,
            wecom_api_per_corp_hour: 150_000,
            components: Vec::new(),
            ticket_interval: wxgate_proto::component::TICKET_PUSH_INTERVAL_SECS,
            ticket_lifetime: wxgate_proto::component::TICKET_LIFETIME_SECS,
            pre_auth_code_expires_in: 1800,
            auth_code_expires_in: 600,
            component_daily_quota: 2000,
            refresh_token_grace: wxgate_proto::component::SUPERSEDED_GRACE_SECS,
            refresh_token_rotation: Rotation::Never,
        }
    }
}

impl SimConfig {
    /// The default limits with these accounts.
    pub fn with_apps(apps: Vec<SimApp>) -> Self {
        Self {
            apps,
            ..Self::default()
        }
    }
}

/// An address or a CIDR range, as WeChat's whitelist takes them (`1.2.3.4`, `10.0.0.0/8`).
pub fn parse_ip_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR range"))
}
