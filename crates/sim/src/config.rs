//! What a simulator instance simulates: its accounts and WeChat's limits.

use ipnet::IpNet;

/// One simulated Official Account.
#[derive(Clone, PartialEq, Eq)]
pub struct SimApp {
    /// AppID (`wx` + 16 characters).
    pub appid: String,
    /// AppSecret.
    pub secret: String,
}

impl std::fmt::Debug for SimApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimApp")
            .field("appid", &self.appid)
            .field("secret", &"***")
            .finish()
    }
}

impl SimApp {
    /// An app with this appid and secret.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
        }
    }

    /// The demo account `wxgate dev` and `wxgate sim` start with when none is given.
    pub fn demo() -> Self {
        Self::new("wxd000000000000001", "demo0secret0000000000000000000000")
    }
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
