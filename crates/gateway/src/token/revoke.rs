//! Revoking a leaked access token (DESIGN.md, "Credential operations").
//!
//! - stable_token: a forced refresh leaves the previous token 30 s of life,
//!   and a second one, 30 s later, ends it: the leaked token then answers
//!   40001 at once (WeChat's documented way, §4.2). Both count against the
//!   day's 20 forced refreshes, so a revocation that would pass them is refused.
//! - classic: a new fetch supersedes the leaked token, which WeChat still
//!   honours for its 5-minute grace; no call can shorten that.
//!
//! Each step is in the audit log with cause `admin`.

use crate::config::TokenApi;
use crate::store::{mask, Kind};

use super::center::{Cause, Requester};
use super::{TokenCenter, TokenError};

/// Seconds between a stable token's two forced refreshes (WeChat's minimum).
const STABLE_SECOND_REFRESH_AFTER: u64 = 30;

/// What a revocation did and what is left to happen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Revocation {
    /// The app.
    pub appid: String,
    /// `stable` or `classic`.
    pub token_api: &'static str,
    /// The revoked token, masked.
    pub revoked: String,
    /// The new token, masked.
    pub replacement: String,
    /// When WeChat stops accepting the revoked token, Unix seconds.
    pub revoked_at: u64,
    /// What happens, in words.
    pub note: String,
}

impl TokenCenter {
    /// Revokes the app's current access token: replaces it and makes WeChat
    /// stop accepting it as soon as its token API allows. For a stable token
    /// the second forced refresh runs in the background, 30 s after the first.
    pub async fn revoke(&self, appid: &str) -> Result<Revocation, TokenError> {
        let app = self
            .owners()
            .app(appid)
            .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?
            .clone();
        let leaked = self
            .get(appid, Kind::AccessToken, &Requester::Gateway)
            .await?;
        let needed = match app.token_api {
            TokenApi::Stable => 2,
            TokenApi::Classic => 1,
        };
        self.forced_refreshes_fit(appid, needed)?;
        let fresh = self
            .refresh(appid, Kind::AccessToken, &leaked.value, Cause::Admin)
            .await?;
        // The façade stops taking the leaked token at once, whatever WeChat's
        // grace, here and on every instance sharing the store.
        let sha256 = super::slot::token_sha256(&leaked.value);
        self.forget_revoked(appid, &sha256);
        if let Err(e) = self.store().announce_revocation(appid, &sha256).await {
            tracing::error!(appid, error = %e, "could not tell the other instances about the revocation; they may honour the revoked token as a previous one until it expires");
        }
        let now = self.now();
        self.audit(appid, Kind::AccessToken, "revoke", &Cause::Admin, None)
            .await;
        tracing::warn!(appid, revoked = %mask(&leaked.value), "access token revoked by an operator");
        let (revoked_at, note) = match app.token_api {
            TokenApi::Classic => (
                now + 300,
                "replaced with a new classic token; WeChat honours the revoked one for its 5-minute grace, which no call can shorten".to_owned(),
            ),
            TokenApi::Stable => {
                let at = now + STABLE_SECOND_REFRESH_AFTER;
                let (this, appid, first) = (self.clone(), appid.to_owned(), fresh.value.clone());
                tokio::spawn(async move {
                    this.inner.clock.sleep_until(at).await;
                    if let Err(e) = this
                        .refresh(&appid, Kind::AccessToken, &first, Cause::Admin)
                        .await
                    {
                        tracing::error!(appid, error = %e, "the revocation's second forced refresh failed; the revoked token may live on");
                    }
                });
                (
                    at,
                    format!(
                        "forced a new stable token; a second forced refresh at {at} (30 s later, \
                         WeChat's minimum) ends the revoked one"
                    ),
                )
            }
        };
        Ok(Revocation {
            appid: appid.to_owned(),
            token_api: app.token_api.as_str(),
            revoked: mask(&leaked.value),
            replacement: mask(&fresh.value),
            revoked_at,
            note,
        })
    }
}
