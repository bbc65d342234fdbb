//! Diagnostics and quota (wechat-families.md §4.c): `rid/get`, `quota/get`,
//! `clear_quota` and `clear_quota/v2`, as rules on [`State`].

use std::collections::HashMap;
use std::net::IpAddr;
use wxgate_proto::errcode;

use serde::{Deserialize, Serialize};

use super::{path, Outcome, State, BEIJING_OFFSET, FORCE_REFRESH_QUOTA};
use crate::error::WxError;
use crate::rids::{CallRecord, LookupError};

/// Quota clears allowed per account and calendar month (Beijing time), both endpoints together.
const CLEARS_PER_MONTH: u32 = 10;

/// One API's daily quota, as `quota/get` answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Quota {
    pub(crate) daily_limit: u32,
    pub(crate) used: u32,
    pub(crate) remain: u32,
}

fn data_format_error() -> WxError {
    WxError::of(errcode::DATA_FORMAT)
}

impl State {
    /// `POST /cgi-bin/openapi/rid/get` `{"rid"}`: a call of `appid`'s own, kept seven days.
    pub(crate) fn rid_get(&mut self, appid: String, body: &[u8], now: u64) -> Outcome<CallRecord> {
        #[derive(Deserialize)]
        struct Body {
            rid: String,
        }
        let result = match serde_json::from_slice::<Body>(body) {
            Err(_) => Err(data_format_error()),
            Ok(Body { rid }) => match self.rids.lookup(rid.trim(), &appid, now) {
                Ok(call) => Ok(call.clone()),
                Err(LookupError::NotFound) => Err(WxError::of(errcode::RID_NOT_FOUND)),
                Err(LookupError::Malformed) => Err(WxError::of(errcode::RID_MALFORMED)),
                Err(LookupError::NotYours) => Err(WxError::of(errcode::RID_NO_PERMISSION)),
            },
        };
        self.answer(path::RID_GET, Some(appid), result)
    }

    /// `POST /cgi-bin/openapi/quota/get` `{"cgi_path"}`: today's use of a daily quota.
    pub(crate) fn quota_get(&mut self, appid: String, body: &[u8], now: u64) -> Outcome<Quota> {
        #[derive(Deserialize)]
        struct Body {
            cgi_path: String,
        }
        let result = match serde_json::from_slice::<Body>(body) {
            Err(_) => Err(data_format_error()),
            Ok(Body { cgi_path }) => match self.daily_limit(&cgi_path) {
                Some((api, daily_limit)) => {
                    let used = self.quota_used(&appid, api, now);
                    Ok(Quota {
                        daily_limit,
                        used,
                        remain: daily_limit.saturating_sub(used),
                    })
                }
                None if path::ALL.contains(&cgi_path.as_str()) => {
                    Err(WxError::of(errcode::CGI_PATH_NO_PERMISSION))
                }
                None => Err(WxError::of(errcode::CGI_PATH_NOT_FOUND)),
            },
        };
        self.answer(path::QUOTA_GET, Some(appid), result)
    }

    /// `POST /cgi-bin/clear_quota` `{"appid"}`: the token's own account only.
    pub(crate) fn clear_quota(&mut self, appid: String, body: &[u8], now: u64) -> Outcome<()> {
        #[derive(Deserialize)]
        struct Body {
            appid: String,
        }
        let result = match serde_json::from_slice::<Body>(body) {
            Err(_) => Err(data_format_error()),
            Ok(body) if body.appid != appid => Err(WxError::of(errcode::INVALID_APPID)),
            Ok(_) => self.clear(&appid, now),
        };
        self.answer(path::CLEAR_QUOTA, Some(appid), result)
    }

    /// `POST /cgi-bin/clear_quota/v2` with `appid` and `appsecret` in a JSON body or
    /// in the query (the current and the older documentation): no access token
    /// needed, so it works while 45009 blocks token fetches.
    pub(crate) fn clear_quota_v2(
        &mut self,
        query: &HashMap<String, String>,
        body: &[u8],
        caller: IpAddr,
        now: u64,
    ) -> Outcome<()> {
        #[derive(Default, Deserialize)]
        struct Body {
            appid: Option<String>,
            appsecret: Option<String>,
        }
        let parsed = if body.trim_ascii().is_empty() {
            Ok(Body::default())
        } else {
            serde_json::from_slice::<Body>(body)
        };
        let Ok(body) = parsed else {
            return self.answer(path::CLEAR_QUOTA_V2, None, Err(data_format_error()));
        };
        let field = |given: Option<String>, name: &str| {
            given
                .or_else(|| query.get(name).cloned())
                .filter(|v| !v.is_empty())
        };
        let (appid, secret) = (
            field(body.appid, "appid"),
            field(body.appsecret, "appsecret"),
        );
        let Some(appid) = appid else {
            let missing = WxError::of(errcode::APPID_MISSING);
            return self.answer(path::CLEAR_QUOTA_V2, None, Err(missing));
        };
        let Some(app) = self.apps.get(&appid) else {
            let unknown = WxError::of(errcode::INVALID_APPID);
            return self.answer(path::CLEAR_QUOTA_V2, None, Err(unknown));
        };
        let result = match (self.check_ip(caller), secret) {
            (Err(err), _) => Err(err),
            (Ok(()), None) => Err(WxError::of(errcode::APPSECRET_MISSING)),
            (Ok(()), Some(s)) if s != app.secret => Err(WxError::of(errcode::INVALID_APPSECRET)),
            (Ok(()), Some(_)) => self.clear(&appid, now),
        };
        self.answer(path::CLEAR_QUOTA_V2, Some(appid), result)
    }

    /// Resets `appid`'s daily API quotas (not its forced stable refreshes), at most
    /// [`CLEARS_PER_MONTH`] times a month.
    fn clear(&mut self, appid: &str, now: u64) -> Result<(), WxError> {
        let month = beijing_month(now);
        let app = self.apps.get_mut(appid).expect("clearing a known app");
        if app.clears.0 != month {
            app.clears = (month, 0);
        }
        if app.clears.1 >= CLEARS_PER_MONTH {
            return Err(WxError::of(errcode::CLEAR_QUOTA_LIMIT));
        }
        app.clears.1 += 1;
        app.quota.retain(|api, _| *api == FORCE_REFRESH_QUOTA);
        app.stats.quota_clears += 1;
        Ok(())
    }

    /// The quota-limited API behind `cgi_path` and its daily limit.
    fn daily_limit(&self, cgi_path: &str) -> Option<(&'static str, u32)> {
        match cgi_path {
            path::TOKEN => Some((path::TOKEN, self.config.daily_quota)),
            path::STABLE_TOKEN => Some((path::STABLE_TOKEN, self.config.stable_daily_quota)),
            path::TICKET => Some((path::TICKET, self.config.daily_quota)),
            _ => None,
        }
    }
}

/// Months since year 0 of the Beijing (UTC+8) calendar date at `now`.
fn beijing_month(now: u64) -> u32 {
    let days = now.saturating_add(BEIJING_OFFSET) / 86_400;
    // Howard Hinnant's civil_from_days, for days ≥ 0 since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    u32::try_from(year * 12 + month - 1).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::beijing_month;

    #[test]
    fn months_change_at_beijing_midnight_of_the_first() {
        // 2026-01-31T16:00:00Z is 2026-02-01 00:00 in Beijing.
        let feb_first = 1_769_875_200;
        assert_eq!(beijing_month(feb_first - 1), 2026 * 12);
        assert_eq!(beijing_month(feb_first), 2026 * 12 + 1);
        // 2024-02-29 (leap day) is still February; 2024-03-01 is March.
        let march_first = 1_709_222_400;
        assert_eq!(beijing_month(march_first - 1), 2024 * 12 + 1);
        assert_eq!(beijing_month(march_first), 2024 * 12 + 2);
    }
}
