//! The refresh policy as pure functions of the time and a credential's
//! history: when to renew, when to call WeChat again after a failure, how
//! many forced refreshes a day allows. No I/O; the jitter is injected.

use std::sync::Arc;

use crate::store::Credential;

use super::TokenError;
use crate::upstream::FailureClass;

/// stable_token hands out the next token only in the last 300 s of the current
/// one (§4.2): renew between 300 and 280 s before expiry, not earlier.
pub(super) const STABLE_RENEW_AHEAD: u64 = 280;
pub(super) const STABLE_RENEW_SPREAD: u64 = 20;
/// WeChat's quotas reset at midnight Beijing time (UTC+8).
const BEIJING_OFFSET: u64 = 8 * 3600;
/// Fewest seconds between two scheduled fetches of one credential, whatever
/// lifetime WeChat announces: at most 1,440 a day, under the classic token's
/// 2,000-a-day quota.
const MIN_REFETCH_SECS: u64 = 60;
/// WeChat's own limit on forced stable_token refreshes a day (§4.2).
pub(super) const STABLE_FORCED_PER_DAY: u32 = 20;

/// Tunables of the refresh policy; [`Policy::default`] is production's.
#[derive(Clone)]
pub struct Policy {
    /// Extra seconds to refresh early, given the maximum (`refresh_ahead / 10`);
    /// spreads refreshes of many apps and instances. Zero in tests.
    pub jitter: Arc<dyn Fn(u64) -> u64 + Send + Sync>,
    /// Minimum seconds between forced refreshes of one credential (WeChat: 30 for stable tokens).
    pub forced_refresh_interval: u64,
    /// Most forced refreshes of one credential a day (Beijing time); stable
    /// access tokens get at most WeChat's own 20.
    pub forced_refresh_daily_limit: u32,
    /// Pause after a configuration error (wrong secret, whitelist…), seconds.
    pub config_error_pause: u64,
    /// Longest backoff after transient failures, seconds.
    pub max_backoff: u64,
    /// How often each current access token is checked with a cheap call,
    /// seconds; 0: never (`[upstream] probe_interval_secs`).
    pub probe_interval: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            jitter: Arc::new(|max| {
                if max == 0 {
                    0
                } else {
                    rand::random_range(0..=max)
                }
            }),
            forced_refresh_interval: 30,
            forced_refresh_daily_limit: 100,
            config_error_pause: 300,
            max_backoff: 60,
            probe_interval: 60,
        }
    }
}

impl Policy {
    /// The default policy without jitter, for deterministic tests.
    pub fn without_jitter() -> Self {
        Self {
            jitter: Arc::new(|_| 0),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("forced_refresh_interval", &self.forced_refresh_interval)
            .field(
                "forced_refresh_daily_limit",
                &self.forced_refresh_daily_limit,
            )
            .field("config_error_pause", &self.config_error_pause)
            .field("max_backoff", &self.max_backoff)
            .field("probe_interval", &self.probe_interval)
            .finish_non_exhaustive()
    }
}

/// When to renew `credential`: `ahead + jitter` seconds before expiry, but
/// never before half its lifetime, nor sooner than [`MIN_REFETCH_SECS`] after
/// its fetch: a short `expires_in` must not turn the refresher into a loop
/// that burns the daily quota.
pub(super) fn renew_at(credential: &Credential, ahead: u64, jitter: u64) -> u64 {
    let half_life =
        credential.fetched_at + credential.expires_at.saturating_sub(credential.fetched_at) / 2;
    credential
        .expires_at
        .saturating_sub(ahead + jitter)
        .max(half_life)
        .max(credential.fetched_at + MIN_REFETCH_SECS)
}

/// When WeChat may be called again after the `failures`-th failure in a row
/// (counting this one) of `class` at `now`: exponential backoff with jitter
/// for transient failures, a pause for configuration errors, the next
/// midnight for a used-up quota.
pub(super) fn retry_at(policy: &Policy, class: FailureClass, failures: u32, now: u64) -> u64 {
    match class {
        FailureClass::Transient | FailureClass::TokenRejected | FailureClass::Awaiting => {
            let backoff = (1u64 << failures.min(16)).min(policy.max_backoff);
            now + backoff / 2 + (policy.jitter)(backoff / 2)
        }
        FailureClass::Config => now + policy.config_error_pause,
        FailureClass::Quota => next_beijing_midnight(now),
    }
}

/// The forced refreshes spent today, given `(day, spent)` recorded, when
/// `needed` more fit in `limit`; otherwise the refusal, until midnight.
pub(super) fn forced_budget(
    recorded: (u64, u32),
    limit: u32,
    now: u64,
    needed: u32,
) -> Result<u32, TokenError> {
    let spent = match recorded {
        (day, n) if day == beijing_day(now) => n,
        _ => 0,
    };
    if spent + needed > limit {
        return Err(TokenError::RateLimited {
            retry_at: next_beijing_midnight(now),
            daily_limit: Some(limit),
        });
    }
    Ok(spent)
}

/// Days since the epoch, in Beijing time (where WeChat's quotas reset).
pub(super) fn beijing_day(now: u64) -> u64 {
    (now + BEIJING_OFFSET) / 86_400
}

/// The next 00:00 in Beijing, Unix seconds.
pub(super) fn next_beijing_midnight(now: u64) -> u64 {
    let local = now + BEIJING_OFFSET;
    local - local % 86_400 + 86_400 - BEIJING_OFFSET
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_704_052_800; // 2024-01-01 04:00 Beijing

    fn credential(fetched_at: u64, lifetime: u64) -> Credential {
        Credential {
            value: "v".into(),
            fetched_at,
            expires_at: fetched_at + lifetime,
        }
    }

    #[test]
    fn quota_resets_at_beijing_midnight() {
        // 2024-01-01 15:59:59 UTC is 23:59:59 in Beijing.
        let before = 1_704_124_799;
        assert_eq!(next_beijing_midnight(before), before + 1);
        assert_eq!(next_beijing_midnight(before + 1), before + 1 + 86_400);
        assert_eq!(beijing_day(before) + 1, beijing_day(before + 1));
    }

    #[test]
    fn renewal_is_ahead_of_expiry_but_never_a_loop() {
        assert_eq!(renew_at(&credential(T, 7200), 600, 30), T + 7200 - 630);
        // Stable tokens: in WeChat's last 300 s.
        assert_eq!(
            renew_at(
                &credential(T, 7200),
                STABLE_RENEW_AHEAD,
                STABLE_RENEW_SPREAD
            ),
            T + 7200 - 300
        );
        // A lifetime shorter than the lead: half-way through, at least 60 s after the fetch.
        assert_eq!(renew_at(&credential(T, 900), 600, 0), T + 450);
        assert_eq!(renew_at(&credential(T, 90), 600, 0), T + 60);
    }

    #[test]
    fn failures_back_off_pause_or_wait_for_midnight() {
        let policy = Policy::without_jitter();
        let transient: Vec<u64> = (1..=8)
            .map(|n| retry_at(&policy, FailureClass::Transient, n, T) - T)
            .collect();
        assert_eq!(transient, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(
            retry_at(&policy, FailureClass::Config, 1, T),
            T + policy.config_error_pause
        );
        assert_eq!(
            retry_at(&policy, FailureClass::Quota, 1, T),
            next_beijing_midnight(T)
        );
        // The jitter adds up to half the backoff.
        let jittery = Policy {
            jitter: Arc::new(|max| max),
            ..Policy::without_jitter()
        };
        assert_eq!(retry_at(&jittery, FailureClass::Transient, 3, T), T + 8);
    }

    #[test]
    fn the_forced_budget_counts_per_beijing_day() {
        let today = beijing_day(T);
        assert_eq!(forced_budget((today, 18), 20, T, 2), Ok(18));
        assert_eq!(
            forced_budget((today, 19), 20, T, 2),
            Err(TokenError::RateLimited {
                retry_at: next_beijing_midnight(T),
                daily_limit: Some(20),
            })
        );
        // Yesterday's count does not hold today.
        assert_eq!(forced_budget((today - 1, 20), 20, T, 2), Ok(0));
    }
}
