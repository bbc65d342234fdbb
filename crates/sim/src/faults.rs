//! Fault injection (`POST /sim/faults`): make the API busy, slow, broken or
//! unreachable for the next N calls or a fraction of them.

use serde::{Deserialize, Serialize};

/// What an injected fault does to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer `{"errcode": errcode, "errmsg": errmsg}` (e.g. -1 "system error").
    Errcode {
        /// The errcode.
        errcode: i64,
        /// The errmsg (default `system error`).
        #[serde(default = "system_error")]
        errmsg: String,
    },
    /// Wait `ms` milliseconds, then answer normally.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// Drop the connection without a complete answer.
    Drop,
    /// Answer with this HTTP status and an empty body.
    Http {
        /// The status code (e.g. 502).
        status: u16,
    },
    /// Answer `307 Temporary Redirect` to `location`: a hostile or hijacked
    /// upstream, which a client must not follow with the secret or the body.
    Redirect {
        /// Where the redirect points.
        location: String,
    },
    /// Answer 200 with a JSON body that never ends (counted in
    /// `fault_bytes_sent`): a client must stop reading at its own limit.
    Endless,
}

fn system_error() -> String {
    "system error".to_owned()
}

/// One fault rule: which calls, what happens, how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Only calls to this path (`/cgi-bin/token`…); every `/cgi-bin/` path when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// What happens.
    #[serde(flatten)]
    pub action: FaultAction,
    /// Affect the next `count` matching calls, then expire.
    #[serde(default)]
    pub count: Option<u32>,
    /// Affect this fraction (0..=1) of matching calls, spread evenly and
    /// deterministically (rate 0.5 hits every second call). With `count`, both apply.
    #[serde(default)]
    pub rate: Option<f64>,
}

#[derive(Debug)]
struct Rule {
    fault: Fault,
    /// Accumulated rate; the rule fires each time it reaches 1.
    credit: f64,
}

/// The active fault rules, first match wins.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    rules: Vec<Rule>,
}

impl FaultPlan {
    /// Adds a rule; a rule with `count: 0` would never fire and is dropped.
    pub(crate) fn add(&mut self, fault: Fault) {
        if fault.count != Some(0) {
            self.rules.push(Rule { fault, credit: 0.0 });
        }
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The fault to apply to a call to `path`, if any; uses up one of its count.
    pub(crate) fn next(&mut self, path: &str) -> Option<FaultAction> {
        let index = self.rules.iter_mut().position(|rule| {
            if rule.fault.path.as_deref().is_some_and(|p| p != path) {
                return false;
            }
            match rule.fault.rate {
                None => true,
                Some(rate) => {
                    rule.credit += rate.clamp(0.0, 1.0);
                    if rule.credit >= 1.0 - f64::EPSILON {
                        rule.credit -= 1.0;
                        true
                    } else {
                        false
                    }
                }
            }
        })?;
        let rule = &mut self.rules[index];
        let action = rule.fault.action.clone();
        if let Some(count) = &mut rule.fault.count {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.rules.remove(index);
            }
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(path: Option<&str>, count: Option<u32>, rate: Option<f64>) -> Fault {
        Fault {
            path: path.map(str::to_owned),
            action: FaultAction::Drop,
            count,
            rate,
        }
    }

    #[test]
    fn count_expires_and_path_filters() {
        let mut plan = FaultPlan::default();
        plan.add(fault(Some("/cgi-bin/token"), Some(2), None));
        assert_eq!(plan.next("/cgi-bin/stable_token"), None);
        assert_eq!(plan.next("/cgi-bin/token"), Some(FaultAction::Drop));
        assert_eq!(plan.next("/cgi-bin/token"), Some(FaultAction::Drop));
        assert_eq!(plan.next("/cgi-bin/token"), None);
    }

    #[test]
    fn rate_is_spread_evenly() {
        let mut plan = FaultPlan::default();
        plan.add(fault(None, None, Some(0.25)));
        let hits: Vec<bool> = (0..8).map(|_| plan.next("/x").is_some()).collect();
        assert_eq!(hits, [false, false, false, true, false, false, false, true]);
    }
}
