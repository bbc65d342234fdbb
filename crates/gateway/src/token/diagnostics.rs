//! Diagnostics (DESIGN.md, "Credential operations"; families reference §4.c):
//! a `rid` from an errmsg looked up with `/cgi-bin/openapi/rid/get`, the
//! token API's quota with `/cgi-bin/openapi/quota/get`, and the daily quotas
//! reset with `/cgi-bin/clear_quota/v2`, behind a monthly guard.
//!
//! WeChat allows 10 quota resets per account per calendar month; wxgate
//! counts its own in the store (shared by every instance) and refuses the
//! 11th before WeChat would, saying when the allowance returns. The reset uses
//! the appid and secret, so it works while a used-up quota blocks token
//! fetches; afterwards the center stops waiting for midnight and fetches again.

use serde_json::{json, Value};

use crate::config::TokenApi;
use crate::store::{Kind, StoreError};

use super::center::{Cause, Requester};
use super::{TokenCenter, TokenError};
use crate::upstream::Failure;

/// Quota resets WeChat allows per account and calendar month.
pub const CLEAR_QUOTA_PER_MONTH: u64 = 10;
/// WeChat's months, like its days, are Beijing time (UTC+8).
const BEIJING: time::UtcOffset = match time::UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+8 is an offset"),
};

/// Why a diagnostic could not be given.
#[derive(Debug, thiserror::Error)]
pub enum DiagnosticsError {
    /// No such app, or no token to call with.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The input cannot be what WeChat expects (a rid, a cgi path).
    #[error("{0}")]
    Invalid(String),
    /// WeChat refused, or could not be reached.
    #[error("{}", .0.message)]
    Upstream(Failure),
    /// This month's quota resets are spent.
    #[error(
        "clear_quota was used {used} times this month, WeChat's limit is {CLEAR_QUOTA_PER_MONTH}; \
         the allowance returns at {resets_at} (the 1st, 00:00 Beijing time)"
    )]
    MonthlyLimit {
        /// Resets made this month.
        used: u64,
        /// When the next month starts, Unix seconds.
        resets_at: u64,
    },
    /// The store could not count the resets.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many quota resets are left this month.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClearQuotaBudget {
    /// Made this month, through wxgate.
    pub used: u64,
    /// WeChat's monthly limit.
    pub limit: u64,
    /// When the count starts again, Unix seconds.
    pub resets_at: u64,
}

impl TokenCenter {
    /// What WeChat recorded of the call behind `rid` (its `request` object:
    /// `invoke_time`, `cost_in_ms`, `request_url`, `request_body`,
    /// `response_body`, `client_ip`). Only the account that made the call can
    /// look its rid up, for 7 days.
    pub async fn rid_info(&self, appid: &str, rid: &str) -> Result<Value, DiagnosticsError> {
        let rid = rid.trim();
        // WeChat's rids are groups of hex digits joined by `-`
        // (6425d22a-37dd8402-0c127510).
        let well_formed = rid.len() <= 64
            && rid.contains('-')
            && rid
                .split('-')
                .all(|group| !group.is_empty() && group.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Err(DiagnosticsError::Invalid(format!(
                "{rid:?} is not a rid: it looks like 61725984-6126f6f9-040f19c4, the end of a WeChat errmsg"
            )));
        }
        let answer = self
            .with_token_call(appid, "/cgi-bin/openapi/rid/get", json!({ "rid": rid }))
            .await?;
        Ok(answer["request"].clone())
    }

    /// WeChat's quota of the app's token API (`/cgi-bin/token` or
    /// `/cgi-bin/stable_token`): its answer without errcode and errmsg
    /// (`quota` with `daily_limit`, `used`, `remain`; `rate_limit` when given).
    pub async fn token_quota(&self, appid: &str) -> Result<Value, DiagnosticsError> {
        let app = self
            .owners()
            .app(appid)
            .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?;
        let cgi_path = match app.token_api {
            TokenApi::Classic => "/cgi-bin/token",
            TokenApi::Stable => "/cgi-bin/stable_token",
        };
        let mut answer = self
            .with_token_call(
                appid,
                "/cgi-bin/openapi/quota/get",
                json!({ "cgi_path": cgi_path }),
            )
            .await?;
        if let Some(fields) = answer.as_object_mut() {
            fields.remove("errcode");
            fields.remove("errmsg");
            fields.insert("cgi_path".into(), cgi_path.into());
        }
        Ok(answer)
    }

    /// The quota resets made this month and how many WeChat allows.
    pub async fn clear_quota_budget(
        &self,
        appid: &str,
    ) -> Result<ClearQuotaBudget, DiagnosticsError> {
        self.owners()
            .app(appid)
            .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?;
        let (month, resets_at) = beijing_month(self.now());
        let used = self.store().tally(&tally_key(appid), &month, 0).await?;
        Ok(ClearQuotaBudget {
            used,
            limit: CLEAR_QUOTA_PER_MONTH,
            resets_at,
        })
    }

    /// Resets the app's daily API quotas (`/cgi-bin/clear_quota/v2`, with the
    /// appid and secret), unless this month's 10 are spent. Afterwards a
    /// credential waiting for the quota's midnight reset is fetched again.
    pub async fn clear_quota(&self, appid: &str) -> Result<ClearQuotaBudget, DiagnosticsError> {
        let app = self
            .owners()
            .app(appid)
            .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?
            .clone();
        let budget = self.clear_quota_budget(appid).await?;
        if budget.used >= CLEAR_QUOTA_PER_MONTH {
            return Err(DiagnosticsError::MonthlyLimit {
                used: budget.used,
                resets_at: budget.resets_at,
            });
        }
        let body = json!({
            "appid": appid,
            "appsecret": secrecy::ExposeSecret::expose_secret(&app.secret),
        });
        let result = self
            .upstream()
            .call_json(appid, "/cgi-bin/clear_quota/v2", None, &body)
            .await;
        self.audit(
            appid,
            Kind::AccessToken,
            "clear_quota",
            &Cause::Admin,
            result.as_ref().err(),
        )
        .await;
        let counted = match result {
            Ok(_) => 1,
            // WeChat says the month's resets are spent (some made elsewhere): count them so.
            Err(f) if f.errcode == Some(wxgate_proto::errcode::CLEAR_QUOTA_LIMIT) => {
                CLEAR_QUOTA_PER_MONTH.saturating_sub(budget.used)
            }
            Err(f) => return Err(DiagnosticsError::Upstream(with_hint(f))),
        };
        let (month, _) = beijing_month(self.now());
        let used = self
            .store()
            .tally(&tally_key(appid), &month, counted)
            .await?;
        if counted != 1 {
            return Err(DiagnosticsError::MonthlyLimit {
                used,
                resets_at: budget.resets_at,
            });
        }
        tracing::warn!(appid, used, "daily API quotas reset with clear_quota");
        self.quota_reset(appid);
        Ok(ClearQuotaBudget { used, ..budget })
    }

    /// Calls a JSON API with the app's token (one compare-and-refresh if
    /// WeChat rejects it), hints added to WeChat's refusals.
    async fn with_token_call(
        &self,
        appid: &str,
        endpoint: &'static str,
        body: Value,
    ) -> Result<Value, DiagnosticsError> {
        self.owners()
            .app(appid)
            .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?;
        let upstream = self.upstream();
        let body = &body;
        self.with_access_token(appid, &Requester::Admin, |token| async move {
            upstream
                .call_json(appid, endpoint, Some(&token), body)
                .await
        })
        .await
        .map_err(|f| DiagnosticsError::Upstream(with_hint(f)))
    }
}

/// WeChat's diagnostics errcodes, explained (families reference §4.c).
fn with_hint(mut failure: Failure) -> Failure {
    let hint = match failure.errcode {
        Some(76001) => "WeChat does not know this rid: it keeps rids 7 days",
        Some(76002) => "this is not a rid WeChat issued: copy it from the end of the errmsg",
        Some(76003) => {
            "only the account that made the call can look its rid up: choose the app whose call failed"
        }
        Some(76021) => "WeChat does not know this API path",
        Some(76022) => "WeChat gives no quota for this API path to this account",
        Some(wxgate_proto::errcode::CLEAR_QUOTA_LIMIT) => "this month's 10 quota resets are spent; they return on the 1st, 00:00 Beijing time",
        _ => return failure,
    };
    failure.hint = Some(hint.into());
    failure
}

fn tally_key(appid: &str) -> String {
    format!("clear_quota:{appid}")
}

/// The Beijing-time month of `now` (`2026-11`) and when the next one starts, Unix seconds.
fn beijing_month(now: u64) -> (String, u64) {
    let at = time::OffsetDateTime::from_unix_timestamp(now.min(i64::MAX as u64) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(BEIJING);
    let (year, month) = (at.year(), at.month());
    let next_year = if month == time::Month::December {
        year + 1
    } else {
        year
    };
    let next = time::Date::from_calendar_date(next_year, month.next(), 1).map_or(now, |d| {
        d.midnight().assume_offset(BEIJING).unix_timestamp() as u64
    });
    (format!("{year:04}-{:02}", u8::from(month)), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_beijing_time() {
        // 2026-11-30 15:59:59 UTC is 23:59:59 in Beijing: still November.
        assert_eq!(
            beijing_month(1_796_054_399),
            ("2026-11".to_owned(), 1_796_054_400)
        );
        // One second later it is December 1st in Beijing.
        let (month, next) = beijing_month(1_796_054_400);
        assert_eq!(month, "2026-12");
        // 2027-01-01 00:00 Beijing = 2026-12-31 16:00 UTC.
        assert_eq!(next, 1_798_732_800);
    }

    #[test]
    fn diagnostics_errcodes_carry_a_hint() {
        let f = with_hint(Failure::from_errcode("wx1", 76003, "no permission"));
        assert!(f.hint.unwrap().contains("only the account"));
        let other = with_hint(Failure::from_errcode("wx1", 40001, "x"));
        assert!(!other.hint.unwrap_or_default().contains("rid"));
    }
}
