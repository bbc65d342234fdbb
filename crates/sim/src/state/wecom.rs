//! WeCom (企业微信, families reference §1) as rules on [`State`]: tokens per
//! (corpid, secret) that a repeat `gettoken` does not supersede, trusted IPs
//! (60020), cross-app use (301002), the corp and agent tickets and their hourly
//! limits. Errors carry WeCom's errmsg form (`…, hint: […], from ip: …, more
//! info at …`), not the Official Account's ` rid: …`.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{json, Value};
use wxgate_proto::errcode;

use super::{path, plain_ip, Issued, State, REMEMBER_DEAD};
use crate::config::{SimConfig, SimCorpApp, WecomExpiry, WecomRepeat};
use crate::error::WxError;
use crate::stats::AppStats;

/// A WeCom API's answer: the credential key (`corpid/name`) it concerned, if known.
pub(crate) type WecomOutcome<T> = (Option<String>, Result<T, WxError>);

/// The two WeCom JS-SDK tickets (families §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WecomTicket {
    /// `/cgi-bin/get_jsapi_ticket`: the corp's, for `wx.config`.
    Corp,
    /// `/cgi-bin/ticket/get?type=agent_config`: the app's, for `wx.agentConfig`.
    Agent,
}

impl WecomTicket {
    /// Its API path.
    pub(crate) fn api(self) -> &'static str {
        match self {
            WecomTicket::Corp => path::WECOM_JSAPI_TICKET,
            WecomTicket::Agent => path::WECOM_AGENT_TICKET,
        }
    }
}

struct CorpApp {
    config: SimCorpApp,
    /// The live token: repeat fetches return it until it expires.
    token: Option<String>,
    /// (hour, fetches) per ticket kind.
    ticket_hour: HashMap<&'static str, (u64, u32)>,
    stats: AppStats,
}

struct WecomToken {
    key: String,
    expires_at: u64,
    /// Ended early by [`WecomState::invalidate`].
    invalidated: bool,
}

/// The WeCom part of the simulator's state.
#[derive(Default)]
pub(crate) struct WecomState {
    /// By `corpid/name`.
    apps: HashMap<String, CorpApp>,
    tokens: HashMap<String, WecomToken>,
    /// (hour, corp tickets) per corpid.
    corp_ticket_hour: HashMap<String, (u64, u32)>,
    /// (minute, calls) and (hour, calls) per (corpid, API).
    corp_api_rate: HashMap<(String, &'static str), [(u64, u32); 2]>,
    seq: u64,
}

impl WecomState {
    pub(crate) fn new(config: &SimConfig) -> Self {
        let apps = config
            .corps
            .iter()
            .map(|c| {
                let app = CorpApp {
                    config: c.clone(),
                    token: None,
                    ticket_hour: HashMap::new(),
                    stats: AppStats::default(),
                };
                (c.key(), app)
            })
            .collect();
        Self {
            apps,
            ..Self::default()
        }
    }

    /// Counters per `corpid/name`.
    pub(crate) fn stats(&self) -> std::collections::BTreeMap<String, AppStats> {
        self.apps
            .iter()
            .map(|(k, a)| (k.clone(), a.stats.clone()))
            .collect()
    }

    pub(crate) fn is_token(&self, token: &str) -> bool {
        self.tokens.contains_key(token)
    }

    /// Ends the app's live token now, as WeCom may "出于运营需要" (§1.1): it
    /// answers 40014 from now on, and the next `gettoken` issues a new one.
    pub(crate) fn invalidate(&mut self, key: &str) -> Result<(), String> {
        let app = self
            .apps
            .get_mut(key)
            .ok_or_else(|| format!("no WeCom app {key:?}"))?;
        if let Some(token) = app.token.take() {
            if let Some(t) = self.tokens.get_mut(&token) {
                t.invalidated = true;
            }
        }
        Ok(())
    }

    /// Replaces an app's trusted IP list (`None`: everyone).
    pub(crate) fn set_trusted_ips(
        &mut self,
        key: &str,
        list: Option<Vec<ipnet::IpNet>>,
    ) -> Result<(), String> {
        let app = self
            .apps
            .get_mut(key)
            .ok_or_else(|| format!("no WeCom app {key:?}"))?;
        app.config.trusted_ips = list;
        Ok(())
    }
}

/// WeCom's errmsg: `<text>, hint: [<id>], from ip: <ip>, more info at …?e=<code>` (§1.2).
pub(crate) fn wecom_error(errcode: i64, caller: IpAddr, now: u64) -> WxError {
    let text = errcode::wecom_errmsg(errcode).unwrap_or("system error");
    let hint: [u8; 16] = rand::random();
    WxError::new(
        errcode,
        format!(
            "{text}, hint: [{now}_{}_{}], from ip: {}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}",
            hint[0] % 100,
            hex::encode(hint),
            plain_ip(caller)
        ),
    )
}

impl State {
    /// `GET /cgi-bin/gettoken?corpid=&corpsecret=`: one live token per (corpid,
    /// secret); a repeat fetch returns it and supersedes nothing (§1.1). Not
    /// subject to the trusted IPs: the APIs called with the token are.
    pub(crate) fn wecom_token(
        &mut self,
        corpid: Option<&str>,
        secret: Option<&str>,
        caller: IpAddr,
        now: u64,
    ) -> WecomOutcome<Issued> {
        let err = |code| wecom_error(code, caller, now);
        let Some(corpid) = corpid.filter(|c| !c.is_empty()) else {
            return self.wecom_answer(path::GETTOKEN, None, Err(err(errcode::APPID_MISSING)));
        };
        if !self.wecom.apps.values().any(|a| a.config.corpid == corpid) {
            return self.wecom_answer(path::GETTOKEN, None, Err(err(errcode::INVALID_APPID)));
        }
        let Some(secret) = secret.filter(|s| !s.is_empty()) else {
            return self.wecom_answer(path::GETTOKEN, None, Err(err(errcode::APPSECRET_MISSING)));
        };
        let found = self
            .wecom
            .apps
            .iter()
            .find(|(_, a)| a.config.corpid == corpid && a.config.secret == secret)
            .map(|(k, _)| k.clone());
        let Some(key) = found else {
            let elsewhere = self.wecom.apps.values().any(|a| a.config.secret == secret);
            let error = if elsewhere {
                err(errcode::WECOM_INVALID_SECRET)
            } else {
                err(errcode::INVALID_CREDENTIAL)
            };
            return self.wecom_answer(path::GETTOKEN, None, Err(error));
        };
        let live = self.wecom.apps[&key]
            .token
            .as_ref()
            .and_then(|t| Some((t.clone(), self.wecom.tokens.get(t)?.expires_at)))
            .filter(|(_, expires_at)| now < *expires_at);
        let issued = match live {
            Some((value, expires_at)) => Issued {
                value,
                expires_in: match self.config.wecom_repeat {
                    WecomRepeat::Remaining => expires_at - now,
                    WecomRepeat::Full => self.config.expires_in,
                },
            },
            None => self.new_wecom_token(&key, now),
        };
        self.wecom_answer(path::GETTOKEN, Some(key), Ok(issued))
    }

    fn new_wecom_token(&mut self, key: &str, now: u64) -> Issued {
        self.wecom
            .tokens
            .retain(|_, t| t.expires_at + REMEMBER_DEAD > now);
        self.wecom.seq += 1;
        let value = format!(
            "wecom{}_{}",
            self.wecom.seq,
            hex::encode(rand::random::<[u8; 48]>())
        );
        let expires_at = now.saturating_add(self.config.expires_in);
        self.wecom.tokens.insert(
            value.clone(),
            WecomToken {
                key: key.to_owned(),
                expires_at,
                invalidated: false,
            },
        );
        let app = self.wecom.apps.get_mut(key).expect("a configured app");
        app.token = Some(value.clone());
        app.stats.tokens_issued += 1;
        Issued {
            value,
            expires_in: self.config.expires_in,
        }
    }

    /// A WeCom API called with a token: the app's key, or the error answer.
    pub(crate) fn wecom_authorize(
        &mut self,
        api: &'static str,
        access_token: Option<&str>,
        caller: IpAddr,
        now: u64,
    ) -> Result<String, WxError> {
        let err = |code| wecom_error(code, caller, now);
        let Some(token) = access_token.filter(|t| !t.is_empty()) else {
            let e = err(errcode::ACCESS_TOKEN_MISSING);
            return Err(self.wecom_answer::<()>(api, None, Err(e)).1.unwrap_err());
        };
        let Some(cred) = self.wecom.tokens.get(token) else {
            self.unattributed.invalid_token_calls += 1;
            let e = err(errcode::INVALID_ACCESS_TOKEN);
            return Err(self.wecom_answer::<()>(api, None, Err(e)).1.unwrap_err());
        };
        let key = cred.key.clone();
        let result = if cred.invalidated {
            self.wecom_app(&key).invalid_token_calls += 1;
            Err(err(errcode::INVALID_ACCESS_TOKEN))
        } else if now >= cred.expires_at {
            self.wecom_app(&key).invalid_token_calls += 1;
            Err(match self.config.wecom_expiry {
                WecomExpiry::Expired42001 => err(errcode::ACCESS_TOKEN_EXPIRED),
                WecomExpiry::Invalid40014 => err(errcode::INVALID_ACCESS_TOKEN),
            })
        } else {
            let ip = plain_ip(caller);
            let trusted = match &self.wecom.apps[&key].config.trusted_ips {
                Some(list) => list.iter().any(|n| n.contains(&ip)),
                None => true,
            };
            if !trusted {
                Err(err(errcode::WECOM_UNTRUSTED_IP))
            } else if !self.take_corp_rate(&key, api, now) {
                Err(err(errcode::DAILY_QUOTA))
            } else {
                Ok(())
            }
        };
        match result {
            Ok(()) => Ok(key),
            Err(e) => Err(self
                .wecom_answer::<()>(api, Some(key), Err(e))
                .1
                .unwrap_err()),
        }
    }

    /// Counts a call of `api` against the corp's per-minute and per-hour limits;
    /// false (and not counted) when either is reached.
    fn take_corp_rate(&mut self, key: &str, api: &'static str, now: u64) -> bool {
        let corpid = self.wecom.apps[key].config.corpid.clone();
        let limits = [
            (now / 60, self.config.wecom_api_per_corp_minute),
            (now / 3600, self.config.wecom_api_per_corp_hour),
        ];
        let slots = self.wecom.corp_api_rate.entry((corpid, api)).or_default();
        let used = |i: usize| {
            if slots[i].0 == limits[i].0 {
                slots[i].1
            } else {
                0
            }
        };
        if (0..2).any(|i| used(i) >= limits[i].1) {
            return false;
        }
        for (slot, (period, _)) in slots.iter_mut().zip(limits) {
            count_in(slot, period);
        }
        true
    }

    /// A corp or agent ticket for the app `key`: a new one each call, at most
    /// `wecom_tickets_per_app_hour` per app and kind, and
    /// `wecom_tickets_per_corp_hour` corp tickets per corp (§1.4).
    pub(crate) fn wecom_ticket(
        &mut self,
        key: String,
        kind: WecomTicket,
        caller: IpAddr,
        now: u64,
    ) -> WecomOutcome<Issued> {
        let hour = now / 3600;
        let per_app = self.config.wecom_tickets_per_app_hour;
        let per_corp = self.config.wecom_tickets_per_corp_hour;
        let corpid = self.wecom.apps[&key].config.corpid.clone();
        let app_slot = self.wecom.apps[&key].ticket_hour.get(kind.api()).copied();
        let corp_slot = self.wecom.corp_ticket_hour.get(&corpid).copied();
        let used = |slot: Option<(u64, u32)>| slot.filter(|(h, _)| *h == hour).map_or(0, |s| s.1);
        let refused =
            used(app_slot) >= per_app || (kind == WecomTicket::Corp && used(corp_slot) >= per_corp);
        let result = if refused {
            Err(wecom_error(errcode::DAILY_QUOTA, caller, now))
        } else {
            // Only issued tickets count against the limits.
            let app = self.wecom.apps.get_mut(&key).expect("an authorized app");
            count_in(app.ticket_hour.entry(kind.api()).or_default(), hour);
            if kind == WecomTicket::Corp {
                count_in(self.wecom.corp_ticket_hour.entry(corpid).or_default(), hour);
            }
            self.seq += 1;
            let value = format!(
                "simwecom{}_{}",
                self.seq,
                hex::encode(rand::random::<[u8; 32]>())
            );
            self.wecom_app(&key).tickets_issued += 1;
            Ok(Issued {
                value,
                expires_in: self.config.expires_in,
            })
        };
        self.wecom_answer(kind.api(), Some(key), result)
    }

    /// `GET /cgi-bin/agent/get?agentid=`: the app's own details; another app's
    /// agentid is 301002 (§1.1).
    pub(crate) fn wecom_agent_get(
        &mut self,
        key: String,
        agentid: Option<&str>,
        caller: IpAddr,
        now: u64,
    ) -> WecomOutcome<Value> {
        let app = &self.wecom.apps[&key].config;
        let result = match agentid.map(str::parse::<u64>) {
            None => Err(wecom_error(errcode::WECOM_AGENTID_MISSING, caller, now)),
            Some(Err(_)) => Err(wecom_error(errcode::WECOM_INVALID_AGENTID, caller, now)),
            Some(Ok(id)) if app.agentid == Some(id) => Ok(json!({
                "errcode": 0,
                "errmsg": "ok",
                "agentid": id,
                "name": app.name,
                "square_logo_url": "",
                "description": "",
                "allow_userinfos": {"user": []},
                "allow_partys": {"partyid": []},
                "allow_tags": {"tagid": []},
                "close": 0,
                "redirect_domain": "",
                "report_location_flag": 0,
                "isreportenter": 0,
                "home_url": "",
            })),
            Some(Ok(_)) => Err(not_your_agent(caller, now)),
        };
        self.wecom_answer(path::WECOM_AGENT_GET, Some(key), result)
    }

    /// `POST /cgi-bin/message/send`: the body's `agentid` must be the token's app.
    pub(crate) fn wecom_send(
        &mut self,
        key: String,
        body: Option<Value>,
        caller: IpAddr,
        now: u64,
    ) -> WecomOutcome<Value> {
        let own = self.wecom.apps[&key].config.agentid;
        let result = match body {
            None => Err(wecom_error(errcode::DATA_FORMAT, caller, now)),
            Some(body) => {
                let agentid = body.get("agentid").and_then(|a| {
                    a.as_u64()
                        .or_else(|| a.as_str().and_then(|s| s.parse().ok()))
                });
                let msgtype = body
                    .get("msgtype")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let to_anyone = ["touser", "toparty", "totag"].iter().any(|f| {
                    body.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty())
                });
                if agentid.is_none() {
                    Err(wecom_error(errcode::WECOM_AGENTID_MISSING, caller, now))
                } else if agentid != own {
                    Err(not_your_agent(caller, now))
                } else if !to_anyone {
                    Err(wecom_error(errcode::WECOM_INVALID_RECEIVER, caller, now))
                } else if msgtype.is_empty() || body.get(&msgtype).is_none() {
                    Err(wecom_error(
                        errcode::WECOM_INVALID_MESSAGE_TYPE,
                        caller,
                        now,
                    ))
                } else {
                    self.wecom_app(&key).custom_messages += 1;
                    self.messages.push(crate::CustomMessage {
                        appid: key.clone(),
                        at: now,
                        body,
                        sent_with: None,
                    });
                    Ok(json!({
                        "errcode": 0, "errmsg": "ok", "invaliduser": "", "invalidparty": "",
                        "invalidtag": "", "unlicenseduser": "",
                        "msgid": format!("sim{}", self.messages.len()),
                    }))
                }
            }
        };
        self.wecom_answer(path::WECOM_SEND, Some(key), result)
    }

    /// Counts a WeCom call in its app's stats (or the unattributed ones).
    pub(crate) fn wecom_answer<T>(
        &mut self,
        api: &'static str,
        key: Option<String>,
        result: Result<T, WxError>,
    ) -> WecomOutcome<T> {
        let stats = match key.as_deref() {
            Some(k) => self.wecom_app(k),
            None => &mut self.unattributed,
        };
        let endpoint = stats.endpoints.entry(api.to_owned()).or_default();
        endpoint.calls += 1;
        endpoint.errors += u64::from(result.is_err());
        (key, result)
    }

    fn wecom_app(&mut self, key: &str) -> &mut AppStats {
        &mut self
            .wecom
            .apps
            .get_mut(key)
            .expect("a configured app")
            .stats
    }
}

fn not_your_agent(caller: IpAddr, now: u64) -> WxError {
    wecom_error(errcode::WECOM_OTHER_AGENT, caller, now)
}

/// Counts one call in `period` (an hour or a minute number).
fn count_in(slot: &mut (u64, u32), period: u64) {
    if slot.0 != period {
        *slot = (period, 0);
    }
    slot.1 += 1;
}
