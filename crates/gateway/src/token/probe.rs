//! The probe: every `probe_interval` seconds each current access token is
//! checked with its family's cheapest call (`get_api_domain_ip`; WeCom's
//! `getcallbackip`, see [`super::issuer::Issuer::check`]). A token WeChat
//! rejects was invalidated behind wxgate's back (another program fetched a
//! classic token, or force-refreshed a stable one): it is replaced at once,
//! without waiting for a client to run into it.

use crate::metrics::AppLabels;
use crate::store::Kind;

use super::center::Cause;
use super::{FailureClass, TokenCenter};

/// Probes every app, every `interval` seconds of the center's clock.
pub(super) async fn run(center: TokenCenter, interval: u64) {
    let clock = center.inner.clock.clone();
    let appids: Vec<String> = center
        .owners()
        .issuers()
        .map(|(owner, _)| owner.to_owned())
        .collect();
    loop {
        clock.sleep_until(clock.now() + interval).await;
        for appid in &appids {
            center.probe(appid).await;
        }
    }
}

impl TokenCenter {
    /// Checks the app's current access token with WeChat; when WeChat
    /// rejects it, replaces it (compare-and-refresh) and says so. `true` when
    /// it was rejected.
    pub async fn probe(&self, appid: &str) -> bool {
        let Ok(slot) = self.slot(appid, Kind::AccessToken) else {
            return false;
        };
        let Some(current) = slot.valid(self.now()) else {
            return false;
        };
        let Some(issuer) = self.owners().issuer(appid) else {
            return false;
        };
        let checked = issuer.check(&self.inner.upstream, &current.value).await;
        let failure = match checked {
            Err(f) if f.class == FailureClass::TokenRejected => f,
            // Valid, or WeChat busy or unreachable: nothing to conclude.
            _ => return false,
        };
        self.inner
            .metrics
            .probe_rejections
            .get_or_create(&AppLabels {
                appid: appid.to_owned(),
            })
            .inc();
        tracing::warn!(
            appid,
            upstream.errcode = failure.errcode.unwrap_or(0),
            "WeChat rejected the current access token: another program fetched or force-refreshed a token for this app; replacing it"
        );
        self.audit(
            appid,
            Kind::AccessToken,
            "probe_rejection",
            &Cause::Probe,
            Some(&failure),
        )
        .await;
        if let Err(e) = self
            .refresh(appid, Kind::AccessToken, &current.value, Cause::Probe)
            .await
        {
            tracing::error!(appid, error = %e, "could not replace the rejected access token");
        }
        true
    }
}
