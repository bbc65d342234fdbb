//! Where pushes may come from (`server.trusted_push_sources = "wechat"`):
//! WeChat's and WeCom's callback IP ranges, from each host's
//! `getcallbackip` (called with the token of an owner of that host: an
//! Official Account first for WeChat's, a WeCom app for WeCom's), refreshed
//! daily and kept in the store, so a restart while WeChat is unreachable
//! still knows them. Ranges are used as soon as known.
//!
//! While no range of a host is known yet (first start, WeChat unreachable,
//! nothing stored) pushes to its owners are **let through** (fail open) and
//! a warning is logged each time a fetch fails; `wxgate_push_source_ranges{api}`
//! is 0 meanwhile. Failing closed would turn a WeChat outage at first start
//! into lost pushes, while the signature still authenticates every push: the
//! source check narrows who can reach the signature check, it does not replace it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

use crate::family::{Api, OFFICIAL_ACCOUNT};
use crate::store::Store;
use crate::token::Requester;
use crate::token::TokenCenter;
use crate::upstream::Upstream;

/// How often the ranges are fetched again, seconds.
pub const REFRESH_SECS: u64 = 86_400;
/// How soon a failed fetch is tried again, seconds.
pub const RETRY_SECS: u64 = 300;

/// What the ranges say about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// In the ranges (or the check is off).
    Inside,
    /// Outside them: refused.
    Outside,
    /// No range of the host is known yet: let through.
    Unknown,
}

/// The callback ranges of each API host, when the check is on.
#[derive(Debug, Default)]
pub struct CallbackRanges {
    on: bool,
    known: RwLock<HashMap<&'static str, Arc<Vec<IpNet>>>>,
}

/// The stored form of one host's ranges.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Stored {
    fetched_at: u64,
    ip_list: Vec<String>,
}

fn name(api: Api) -> &'static str {
    match api {
        Api::WeChat => "wechat",
        Api::WeCom => "wecom",
    }
}

fn note_key(api: Api) -> String {
    format!("callback_ips:{}", name(api))
}

impl CallbackRanges {
    /// The check, on or off (off: every peer is [`Verdict::Inside`]).
    pub fn new(on: bool) -> Self {
        Self {
            on,
            known: RwLock::default(),
        }
    }

    /// Whether the check is on.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Where `ip` stands for pushes to an owner on `api`'s host. An IPv6
    /// peer given as its /64 is inside when its /64 is.
    pub fn check(&self, api: Api, ip: IpAddr) -> Verdict {
        if !self.on {
            return Verdict::Inside;
        }
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        match known.get(name(api)) {
            None => Verdict::Unknown,
            Some(nets) if nets.iter().any(|n| n.contains(&ip.to_canonical())) => Verdict::Inside,
            Some(_) => Verdict::Outside,
        }
    }

    fn set(&self, api: Api, nets: Vec<IpNet>, metrics: &crate::metrics::Metrics) {
        metrics.push_source_ranges(name(api), nets.len());
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        known.insert(name(api), Arc::new(nets));
    }

    fn is_known(&self, api: Api) -> bool {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        known.contains_key(name(api))
    }

    /// Keeps the ranges of every host some owner pushes from: the stored
    /// ones at once, then fetched now and every [`REFRESH_SECS`] (after a
    /// failure, again in [`RETRY_SECS`]). `None` when the check is off.
    pub fn spawn(
        self: &Arc<Self>,
        center: TokenCenter,
        upstream: Upstream,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.on {
            return None;
        }
        let ranges = self.clone();
        Some(tokio::spawn(async move {
            loop {
                let mut all_ok = true;
                for api in [Api::WeChat, Api::WeCom] {
                    all_ok &= ranges.refresh(&center, &upstream, api).await;
                }
                let wait = if all_ok { REFRESH_SECS } else { RETRY_SECS };
                // On the gateway's clock, as every other schedule.
                let clock = center.clock();
                clock.sleep_until(clock.now() + wait).await;
            }
        }))
    }

    /// Loads (once) and fetches the ranges of `api`; false when a fetch failed.
    async fn refresh(&self, center: &TokenCenter, upstream: &Upstream, api: Api) -> bool {
        let store: &Arc<dyn Store> = center.store();
        let metrics = center.metrics();
        let mut owners: Vec<_> = (center.owners().all().into_iter())
            .filter(|o| o.family.api == api)
            .collect();
        if owners.is_empty() {
            return true;
        }
        // For WeChat's host, an Official Account's token first.
        owners.sort_by_key(|o| *o.family != OFFICIAL_ACCOUNT);
        if !self.is_known(api) {
            match store.note(&note_key(api)).await {
                Ok(Some(json)) => match serde_json::from_str::<Stored>(&json) {
                    Ok(stored) => {
                        let nets: Vec<_> = (stored.ip_list.iter())
                            .filter_map(|e| crate::upstream::parse_net(e))
                            .collect();
                        if !nets.is_empty() {
                            tracing::info!(
                                api = name(api),
                                ranges = nets.len(),
                                fetched_at = stored.fetched_at,
                                "push source ranges taken from the store"
                            );
                            self.set(api, nets, metrics);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(api = name(api), error = %e, "stored push source ranges unreadable")
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(api = name(api), error = %e, "push source ranges could not be read from the store")
                }
            }
        }
        let mut last_error = String::new();
        for owner in owners {
            let (family, key) = (owner.family, owner.key.as_str());
            let fetched = center
                .with_access_token(key, &Requester::Gateway, |token| async move {
                    upstream.callback_ips(family, key, &token).await
                })
                .await;
            match fetched {
                Ok(nets) => {
                    let stored = Stored {
                        fetched_at: center.clock().now(),
                        ip_list: nets.iter().map(ToString::to_string).collect(),
                    };
                    let json = serde_json::to_string(&stored).expect("ranges serialise");
                    if let Err(e) = store.set_note(&note_key(api), &json).await {
                        tracing::warn!(api = name(api), error = %e, "push source ranges not stored (kept in memory)");
                    }
                    tracing::info!(
                        api = name(api),
                        ranges = nets.len(),
                        owner = key,
                        "push source ranges fetched"
                    );
                    self.set(api, nets, metrics);
                    return true;
                }
                Err(f) => last_error = format!("{key}: {}", f.message),
            }
        }
        if self.is_known(api) {
            tracing::warn!(api = name(api), error = %last_error, "push source ranges could not be refreshed; the known ones stay in use");
        } else {
            tracing::warn!(
                api = name(api),
                error = %last_error,
                "push source ranges unknown (getcallbackip failed, none stored): pushes are let through unchecked until they are known"
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::parse_net;

    #[test]
    fn entries_are_addresses_or_ranges_unmapped() {
        let parse = |e: &str| parse_net(e).map(|n| n.to_string());
        assert_eq!(parse("101.226.103.7").as_deref(), Some("101.226.103.7/32"));
        assert_eq!(
            parse(" 101.226.103.9/25").as_deref(),
            Some("101.226.103.0/25")
        );
        assert_eq!(parse("::ffff:10.0.0.1").as_deref(), Some("10.0.0.1/32"));
        assert_eq!(parse("::ffff:10.0.0.0/104").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(parse("2001:db8::/32").as_deref(), Some("2001:db8::/32"));
        assert_eq!(parse("nginx"), None);
    }

    #[test]
    fn off_passes_everyone_and_unknown_ranges_let_through() {
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            CallbackRanges::new(false).check(Api::WeChat, ip),
            Verdict::Inside
        );
        let ranges = CallbackRanges::new(true);
        assert_eq!(ranges.check(Api::WeChat, ip), Verdict::Unknown);
        let metrics = crate::metrics::Metrics::new("test");
        ranges.set(
            Api::WeChat,
            vec![parse_net("101.226.103.0/25").unwrap()],
            &metrics,
        );
        assert_eq!(ranges.check(Api::WeChat, ip), Verdict::Outside);
        let inside: IpAddr = "::ffff:101.226.103.1".parse().unwrap();
        assert_eq!(ranges.check(Api::WeChat, inside), Verdict::Inside);
        assert_eq!(
            ranges.check(Api::WeCom, ip),
            Verdict::Unknown,
            "each host its own"
        );
    }
}
