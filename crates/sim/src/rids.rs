//! The requests behind error answers, by rid, for `POST /cgi-bin/openapi/rid/get`
//! (wechat-families.md §4.c): kept seven days, the newest [`MAX_KEPT`] at most.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

/// Seconds a rid can be looked up after its call (WeChat: 7 days).
pub(crate) const KEPT_FOR: u64 = 7 * 86_400;
/// Rids remembered at most; the oldest are forgotten first.
pub(crate) const MAX_KEPT: usize = 10_000;
/// Request bodies up to this size are kept; larger ones (and multipart uploads) are kept as "".
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// One call, as `rid/get` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CallRecord {
    /// Virtual time of the call, Unix seconds.
    pub(crate) invoke_time: u64,
    pub(crate) cost_in_ms: u64,
    /// The query string as sent (`access_token=…`).
    pub(crate) request_url: String,
    pub(crate) request_body: String,
    /// The JSON answer as sent.
    pub(crate) response_body: String,
    pub(crate) client_ip: String,
}

#[derive(Debug)]
struct Entry {
    appid: Option<String>,
    record: CallRecord,
}

/// Why a rid cannot be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// Unknown, expired or forgotten.
    NotFound,
    /// Not of the form `xxxxxxxx-xxxxxxxx-xxxxxxxx`.
    Malformed,
    /// Another account's call, or a call that named no account.
    NotYours,
}

/// Recorded calls by rid, oldest first in `order`.
#[derive(Debug, Default)]
pub(crate) struct RidLog {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
}

impl RidLog {
    /// Remembers the call answered under `rid`.
    pub(crate) fn record(&mut self, rid: String, appid: Option<String>, record: CallRecord) {
        let now = record.invoke_time;
        if self
            .entries
            .insert(rid.clone(), Entry { appid, record })
            .is_none()
        {
            self.order.push_back(rid);
        }
        while let Some(oldest) = self.order.front() {
            let expired = self
                .entries
                .get(oldest)
                .is_none_or(|e| e.record.invoke_time.saturating_add(KEPT_FOR) <= now);
            if !expired && self.order.len() <= MAX_KEPT {
                break;
            }
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
    }

    /// The call answered under `rid`, if `appid` made it and it is not expired.
    pub(crate) fn lookup(
        &self,
        rid: &str,
        appid: &str,
        now: u64,
    ) -> Result<&CallRecord, LookupError> {
        if !well_formed(rid) {
            return Err(LookupError::Malformed);
        }
        let entry = self
            .entries
            .get(&rid.to_ascii_lowercase())
            .filter(|e| now < e.record.invoke_time.saturating_add(KEPT_FOR))
            .ok_or(LookupError::NotFound)?;
        if entry.appid.as_deref() == Some(appid) {
            Ok(&entry.record)
        } else {
            Err(LookupError::NotYours)
        }
    }
}

/// Three groups of eight hex digits joined by `-`, as WeChat writes rids.
fn well_formed(rid: &str) -> bool {
    let groups: Vec<&str> = rid.split('-').collect();
    groups.len() == 3
        && groups
            .iter()
            .all(|g| g.len() == 8 && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at: u64) -> CallRecord {
        CallRecord {
            invoke_time: at,
            cost_in_ms: 1,
            request_url: String::new(),
            request_body: String::new(),
            response_body: "{}".to_owned(),
            client_ip: "127.0.0.1".to_owned(),
        }
    }

    fn rid(n: usize) -> String {
        format!("00000000-00000000-{n:08x}")
    }

    #[test]
    fn only_the_newest_are_kept() {
        let mut log = RidLog::default();
        for n in 0..=MAX_KEPT {
            log.record(rid(n), Some("wx1".to_owned()), call(100));
        }
        assert_eq!(log.lookup(&rid(0), "wx1", 100), Err(LookupError::NotFound));
        assert!(log.lookup(&rid(1), "wx1", 100).is_ok());
        assert!(log.lookup(&rid(MAX_KEPT), "wx1", 100).is_ok());
        assert_eq!(log.order.len(), MAX_KEPT);
    }

    #[test]
    fn expired_rids_are_dropped_when_the_next_is_recorded() {
        let mut log = RidLog::default();
        log.record(rid(1), None, call(100));
        log.record(rid(2), None, call(100 + KEPT_FOR));
        assert_eq!(log.entries.len(), 1);
        assert_eq!(log.lookup(&rid(2), "wx1", 100), Err(LookupError::NotYours));
    }

    #[test]
    fn malformed_rids_are_told_apart() {
        let log = RidLog::default();
        for bad in ["", "abc", "61725984-6126f6f9", "61725984-6126f6f9-040f19cg"] {
            assert_eq!(
                log.lookup(bad, "wx1", 0),
                Err(LookupError::Malformed),
                "{bad}"
            );
        }
        let unknown = log.lookup("61725984-6126f6f9-040f19c4", "wx1", 0);
        assert_eq!(unknown, Err(LookupError::NotFound));
    }
}
