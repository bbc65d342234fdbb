//! The probe: every `probe_interval` seconds each current access token is
//! checked with its family's cheapest call (`get_api_domain_ip`; WeCom's
//! `getcallbackip`, see [`super::issuer::Issuer::check`]). A token WeChat
//! rejects was invalidated behind wxgate's back (another program fetched a
//! classic token, or force-refreshed a stable one): it is replaced at once,
//! without waiting for a client to run into it.
//!
//! The same check decides whether a business call's 40001/40014/42001 was
//! about wxgate's token at all ([`TokenCenter::replace_rejected`]): WeChat
//! answers 40001 for any bad credential in a call (a bogus
//! `component_access_token`, a wrong `appsecret`), so a forced refresh is
//! spent only once the check confirms that the token itself is refused.
//! Checks of one credential are single-flight and their verdict is reused
//! for [`VERDICT_TTL`] seconds, so 2,000 such answers at once cost one check.

use crate::metrics::AppLabels;
use crate::store::{mask, Credential, Kind};
use crate::upstream::Failure;

use super::center::{Cause, Requester, TokenError};
use super::{FailureClass, TokenCenter};

/// How long a check's verdict on one token value is reused, seconds.
pub(super) const VERDICT_TTL: u64 = 5;

/// WeChat's verdict on one access token value.
#[derive(Debug, Clone)]
pub(super) enum Verdict {
    /// The token works.
    Accepted,
    /// WeChat refused the token itself: its answer.
    Rejected(Failure),
    /// WeChat busy or unreachable: nothing to conclude.
    Unknown,
}

/// The last check of a credential: which value, when, and the verdict.
#[derive(Debug)]
pub(super) struct Checked {
    value: String,
    at: u64,
    verdict: Verdict,
}

/// Probes every app, every `interval` seconds of the center's clock.
pub(super) async fn run(center: TokenCenter, interval: u64) {
    let clock = center.inner.clock.clone();
    loop {
        clock.sleep_until(clock.now() + interval).await;
        // The owners of this round: added and removed ones follow.
        for owner in center.owners().all() {
            if owner.family.probe.is_none() {
                continue; // No call proves such a token (a platform's).
            }
            center.probe(&owner.key).await;
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
        let Some(current) = slot.current().filter(|c| c.is_valid(self.now())) else {
            return false;
        };
        let Verdict::Rejected(failure) = self.verdict(appid, &current.value).await else {
            return false;
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
            .replace(appid, &current.value, Cause::Probe, &failure)
            .await
        {
            tracing::error!(appid, error = %e, "could not replace the rejected access token");
        }
        true
    }

    /// A business call sent `sent`, the app's access token, and WeChat
    /// answered 40001, 40014 or 42001. That answer may be about another
    /// credential of the call, so the token is checked first (one check in
    /// flight per credential, its verdict reused for [`VERDICT_TTL`] s):
    ///
    /// - `Ok(Some(credential))`: the token was refused (or has been replaced
    ///   meanwhile); this is the one to retry with. A refused token costs one
    ///   compare-and-refresh, caused by `by`.
    /// - `Ok(None)`: WeChat accepts the token (or cannot say now): the
    ///   answer was not about it; pass it on as it is, no refresh, no retry.
    /// - `Err`: the token was refused and could not be replaced.
    ///
    /// `evident` is the rejection when the call was one of the family's
    /// token-only APIs ([`TokenCenter::is_token_only`]): it is the verdict
    /// itself, no check needed.
    pub async fn replace_rejected(
        &self,
        appid: &str,
        sent: &str,
        by: &Requester,
        evident: Option<Failure>,
    ) -> Result<Option<Credential>, Failure> {
        let slot = self
            .slot(appid, Kind::AccessToken)
            .map_err(TokenError::into_failure)?;
        if let Some(current) = slot.valid(self.now()).filter(|c| c.value != sent) {
            return Ok(Some(current));
        }
        let verdict = match evident {
            Some(failure) => {
                self.record_verdict(appid, sent, Verdict::Rejected(failure))
                    .await
            }
            None => self.verdict(appid, sent).await,
        };
        match verdict {
            Verdict::Rejected(failure) => {
                tracing::warn!(
                    appid,
                    upstream.errcode = failure.errcode.unwrap_or(0),
                    "a check confirmed that WeChat rejects the access token a call was sent with; replacing it"
                );
                let cause = Cause::Rejected(by.clone());
                self.replace(appid, sent, cause, &failure)
                    .await
                    .map(Some)
                    .map_err(TokenError::into_failure)
            }
            Verdict::Accepted | Verdict::Unknown => Ok(None),
        }
    }

    /// Whether `path` is one of the owner's family's APIs that take nothing
    /// but the access token, whose rejection is therefore about that token.
    pub fn is_token_only(&self, owner: &str, path: &str) -> bool {
        self.issuer(owner)
            .is_some_and(|i| i.family().token_only_paths.contains(&path))
    }

    /// Keeps `verdict` on `token` as the latest check's, and returns it.
    async fn record_verdict(&self, appid: &str, token: &str, verdict: Verdict) -> Verdict {
        if let Ok(slot) = self.slot(appid, Kind::AccessToken) {
            *slot.checked.lock().await = Some(Checked {
                value: token.to_owned(),
                at: self.now(),
                verdict: verdict.clone(),
            });
        }
        verdict
    }

    /// WeChat's verdict on `token`, the app's access token: a cached one
    /// younger than [`VERDICT_TTL`], else a check (one at a time).
    pub(super) async fn verdict(&self, appid: &str, token: &str) -> Verdict {
        let (Ok(slot), Some(issuer)) = (self.slot(appid, Kind::AccessToken), self.issuer(appid))
        else {
            return Verdict::Unknown;
        };
        let mut checked = slot.checked.lock().await;
        if let Some(c) = checked
            .as_ref()
            .filter(|c| c.value == token && self.now() < c.at + VERDICT_TTL)
        {
            return c.verdict.clone();
        }
        let verdict = match issuer.check(&self.inner.upstream, token).await {
            Ok(()) => Verdict::Accepted,
            Err(f) if f.class == FailureClass::TokenRejected => Verdict::Rejected(f),
            Err(_) => Verdict::Unknown,
        };
        *checked = Some(Checked {
            value: token.to_owned(),
            at: self.now(),
            verdict: verdict.clone(),
        });
        verdict
    }

    /// Replaces `rejected`, confirmed refused by WeChat, with a
    /// compare-and-refresh. When that fails (the day's forced refreshes
    /// spent, WeChat failing), the value is marked rejected, so readiness
    /// and the status page say so instead of taking it for a usable one.
    async fn replace(
        &self,
        appid: &str,
        rejected: &str,
        cause: Cause,
        failure: &Failure,
    ) -> Result<Credential, TokenError> {
        let result = self
            .refresh(appid, Kind::AccessToken, rejected, cause)
            .await;
        if let (Err(e), Ok(slot)) = (&result, self.slot(appid, Kind::AccessToken)) {
            let now = self.now();
            let mut health = slot.health();
            health.rejected = Some(rejected.to_owned());
            slot.rejected
                .store(true, std::sync::atomic::Ordering::Relaxed);
            health.last_failure = Some(Failure {
                class: FailureClass::TokenRejected,
                errcode: failure.errcode,
                message: format!(
                    "WeChat rejects the access token {} and wxgate could not replace it: {e}",
                    mask(rejected)
                ),
                hint: Some(match e {
                    TokenError::RateLimited { retry_at, .. } => format!(
                        "the forced refreshes allowed are spent until {retry_at}; another program \
                         may be fetching or force-refreshing tokens for {appid}: make wxgate the only one"
                    ),
                    _ => "wxgate retries by itself; see the last failures".to_owned(),
                }),
            });
            health.last_failure_at = now;
        }
        result
    }
}
