//! `wxgate sim`: the WeChat platform simulator as a standalone server.

use std::process::ExitCode;

use anyhow::Context as _;
use wxgate_sim::config::parse_ip_net;
use wxgate_sim::{
    Rotation, SimApp, SimComponent, SimConfig, SimCorpApp, Simulator, WecomExpiry, WecomRepeat,
};

/// Arguments of `wxgate sim`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// An account, as APPID:SECRET, or APPID:SECRET:miniprogram for a Mini Program;
    /// repeat for several (default: the demo account, unless only --corp is given).
    #[arg(long = "app", value_name = "APPID:SECRET[:TYPE]", value_parser = parse_app)]
    apps: Vec<SimApp>,
    /// A WeCom app, as CORPID:AGENT:SECRET (AGENT = the agentid, or a name for a
    /// special secret such as contacts); repeat for several.
    #[arg(long = "corp", value_name = "CORPID:AGENT:SECRET", value_parser = parse_corp)]
    corps: Vec<SimCorpApp>,
    /// An Open Platform third-party platform, as APPID:SECRET:TOKEN:AESKEY:PUSH_URL
    /// (PUSH_URL: its authorization-event URL, where the component_verify_ticket is
    /// pushed every 10 virtual minutes; empty for none); repeat for several.
    #[arg(
        long = "component",
        value_name = "APPID:SECRET:TOKEN:AESKEY:PUSH_URL",
        value_parser = parse_component
    )]
    components: Vec<SimComponent>,
    /// api_authorizer_token returns a new authorizer_refresh_token on every call
    /// (the old one works 5 minutes more).
    #[arg(long)]
    rotate_refresh_tokens: bool,
    /// Answer an expired WeCom token with 40014 instead of 42001 (seen in the wild).
    #[arg(long)]
    wecom_expired_40014: bool,
    /// A repeat WeCom gettoken reports expires_in 7200 instead of the remaining lifetime.
    #[arg(long)]
    wecom_repeat_full_lifetime: bool,
    /// Lifetime of access tokens and tickets, seconds.
    #[arg(long, default_value_t = 7200)]
    expires_in: u64,
    /// How long a superseded classic token keeps working, seconds.
    #[arg(long, default_value_t = 300)]
    grace: u64,
    /// Daily quota per account of /cgi-bin/token and of getticket.
    #[arg(long, default_value_t = 2000)]
    daily_quota: u32,
    /// API IP whitelist entry (address or CIDR); repeat for several. Default: everyone.
    #[arg(long = "whitelist", value_name = "IP_OR_CIDR")]
    whitelist: Vec<String>,
    /// Size limit of every temporary media upload, bytes (default: WeChat's per-type
    /// limits: image and video 10 MiB, voice 2 MiB, thumb 64 KiB).
    #[arg(long, value_name = "N")]
    media_max_bytes: Option<u64>,
}

fn parse_app(s: &str) -> Result<SimApp, String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(appid), Some(secret), kind) if !appid.is_empty() && !secret.is_empty() => {
            let kind = kind.map_or(Ok(Default::default()), str::parse)?;
            Ok(SimApp {
                kind,
                ..SimApp::new(appid, secret)
            })
        }
        _ => Err(format!(
            "{s:?} is not APPID:SECRET or APPID:SECRET:miniprogram"
        )),
    }
}

fn parse_corp(s: &str) -> Result<SimCorpApp, String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(corpid), Some(agent), Some(secret))
            if !corpid.is_empty() && !agent.is_empty() && !secret.is_empty() =>
        {
            Ok(SimCorpApp::new(corpid, agent, secret))
        }
        _ => Err(format!("{s:?} is not CORPID:AGENT:SECRET")),
    }
}

fn parse_component(s: &str) -> Result<SimComponent, String> {
    let parts: Vec<&str> = s.splitn(5, ':').collect();
    let [appid, secret, token, key, url] = parts[..] else {
        return Err(format!("{s:?} is not APPID:SECRET:TOKEN:AESKEY:PUSH_URL"));
    };
    if [appid, secret, token].iter().any(|p| p.is_empty()) {
        return Err(format!("{s:?}: APPID, SECRET and TOKEN must not be empty"));
    }
    wxgate_proto::AesKey::try_new(key).map_err(|e| format!("{s:?}: AESKEY: {e}"))?;
    let url = (!url.is_empty()).then(|| url.to_owned());
    Ok(SimComponent::new(appid, secret, token, key, url))
}

impl Args {
    pub(crate) fn config(&self) -> anyhow::Result<SimConfig> {
        let whitelist = self
            .whitelist
            .iter()
            .map(|s| parse_ip_net(s).map_err(|e| anyhow::anyhow!("--whitelist: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let apps = if self.apps.is_empty() && self.corps.is_empty() && self.components.is_empty() {
            vec![SimApp::demo()]
        } else {
            self.apps.clone()
        };
        Ok(SimConfig {
            apps,
            expires_in: self.expires_in,
            grace: self.grace,
            daily_quota: self.daily_quota,
            ip_whitelist: (!whitelist.is_empty()).then_some(whitelist),
            media_max_bytes: self.media_max_bytes,
            corps: self.corps.clone(),
            components: self.components.clone(),
            refresh_token_rotation: if self.rotate_refresh_tokens {
                Rotation::EveryCall
            } else {
                Rotation::Never
            },
            wecom_expiry: if self.wecom_expired_40014 {
                WecomExpiry::Invalid40014
            } else {
                WecomExpiry::Expired42001
            },
            wecom_repeat: if self.wecom_repeat_full_lifetime {
                WecomRepeat::Full
            } else {
                WecomRepeat::Remaining
            },
            ..SimConfig::default()
        })
    }
}

/// Serves until Ctrl-C.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let running = Simulator::new(config.clone())
        .spawn_on(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!("wxgate sim listening on {}", running.url());
    for app in &config.apps {
        println!("  app {} ({:?})", app.appid, app.kind);
    }
    for corp in &config.corps {
        println!("  wecom {}", corp.key());
    }
    for c in &config.components {
        let to = c.push_url.as_deref().unwrap_or("nowhere");
        println!("  component {} (tickets pushed to {to})", c.appid);
    }
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_component;

    #[test]
    fn a_component_takes_a_push_url_with_colons() {
        let c = parse_component(
            "wx9eeba14a01d3807f:secret:weixin:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG:http://127.0.0.1:8080/component/wx9eeba14a01d3807f",
        )
        .unwrap();
        assert_eq!(c.appid, "wx9eeba14a01d3807f");
        assert_eq!(
            c.push_url.as_deref(),
            Some("http://127.0.0.1:8080/component/wx9eeba14a01d3807f")
        );
        let no_url =
            parse_component("wxc:s:t:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG:").unwrap();
        assert_eq!(no_url.push_url, None);
        assert!(parse_component("wxc:s:t:short:http://x").is_err());
        assert!(parse_component("wxc:s:t").is_err());
    }
}
