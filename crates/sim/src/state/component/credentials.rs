//! A platform's own credentials (families reference §3.1, §3.2): asking for a
//! ticket push at once (`api_start_push_ticket`) and exchanging secret and
//! ticket for a component_access_token (`api_component_token`).

use std::net::IpAddr;

use wxgate_proto::errcode;

use super::{named_of, secret_token, text, ComponentBody};
use crate::error::{Answered, WxError};
use crate::state::{beijing_day, path, Credential, Issued, State, REMEMBER_DEAD};

impl State {
    /// `api_start_push_ticket` `{"component_appid","component_secret"}`: the
    /// platform, whose next ticket push is then due at once.
    pub(crate) fn start_push_ticket(
        &mut self,
        body: &ComponentBody,
        caller: IpAddr,
        now: u64,
    ) -> Result<String, Answered> {
        let result = self.secret_checked(body, "component_secret", caller);
        let component = result.as_ref().ok().cloned();
        if let Some(c) = &component {
            self.component.push_ticket_now(c, now);
        }
        let named = named_of(&result);
        let result = result.map_err(|(_, e)| e);
        self.component_answer(path::COMPONENT_START_PUSH, named.as_deref(), result)
    }

    /// The body's platform, checked: the caller's IP, then the secret in `field`.
    fn secret_checked(
        &self,
        body: &ComponentBody,
        field: &str,
        caller: IpAddr,
    ) -> Result<String, (Option<String>, WxError)> {
        let body = body
            .as_ref()
            .ok_or((None, WxError::of(errcode::DATA_FORMAT)))?;
        let component = self.component.named(body).map_err(|e| (None, e))?;
        let known = |e| (Some(component.clone()), e);
        self.component.check_ip(&component, caller).map_err(known)?;
        let secret =
            text(body, field).ok_or_else(|| known(WxError::of(errcode::APPSECRET_MISSING)))?;
        if secret != self.component.platforms[&component].config.secret {
            return Err(known(WxError::of(errcode::INVALID_APPSECRET)));
        }
        Ok(component)
    }

    /// `api_component_token`: checks the secret and the ticket (61006 not this
    /// platform's, 61005 older than 12 h) and the daily quota; each call mints a
    /// new token and the previous one works for the grace period more (§3.2).
    pub(crate) fn component_token(
        &mut self,
        body: &ComponentBody,
        caller: IpAddr,
        now: u64,
    ) -> Result<Issued, Answered> {
        let result = self
            .secret_checked(body, "component_appsecret", caller)
            .and_then(|c| {
                let ticket = body
                    .as_ref()
                    .and_then(|b| text(b, "component_verify_ticket"));
                self.check_ticket(&c, ticket, now)
                    .map_err(|e| (Some(c.clone()), e))?;
                Ok(c)
            });
        let named = named_of(&result);
        let result = match result {
            Ok(c) => self.new_component_token(&c, now),
            Err((_, e)) => Err(e),
        };
        self.component_answer(path::COMPONENT_TOKEN, named.as_deref(), result)
    }

    fn check_ticket(&self, component: &str, ticket: Option<&str>, now: u64) -> Result<(), WxError> {
        match ticket.and_then(|t| self.component.tickets.get(t)) {
            Some((owner, _)) if owner != component => {
                Err(WxError::of(errcode::COMPONENT_TICKET_INVALID))
            }
            None => Err(WxError::of(errcode::COMPONENT_TICKET_INVALID)),
            Some((_, expires_at)) if now >= *expires_at => {
                Err(WxError::of(errcode::COMPONENT_TICKET_EXPIRED))
            }
            Some(_) => Ok(()),
        }
    }

    fn new_component_token(&mut self, component: &str, now: u64) -> Result<Issued, WxError> {
        let day = beijing_day(now);
        let limit = self.config.component_daily_quota;
        let (grace, expires_in) = (self.config.grace, self.config.expires_in);
        let p = self
            .component
            .platforms
            .get_mut(component)
            .expect("checked platform");
        if p.quota.0 != day {
            p.quota = (day, 0);
        }
        if p.quota.1 >= limit {
            return Err(WxError::quota());
        }
        p.quota.1 += 1;
        let value = secret_token("componentaccesstoken_");
        if let Some(previous) = p.token.replace(value.clone()) {
            if let Some(cred) = self.component.tokens.get_mut(&previous) {
                cred.revoked_at.get_or_insert(now.saturating_add(grace));
            }
        }
        p.stats.component_tokens_issued += 1;
        self.component
            .tokens
            .retain(|_, c| c.dead_since() + REMEMBER_DEAD > now);
        self.component.tokens.insert(
            value.clone(),
            Credential {
                appid: component.to_owned(),
                expires_at: now.saturating_add(expires_in),
                revoked_at: None,
                via: None,
            },
        );
        Ok(Issued { value, expires_in })
    }
}
