//! What happens to a push once it is verified and decrypted: dedupe, the app's
//! rules, then its webhook, all within WeChat's 5-second window; a webhook that
//! answers too late has its reply delivered through the customer-service API.
//!
//! - [`dedupe`]: one handling per push, retries share its answer.
//! - [`rules`]: static replies from the configuration.
//! - [`webhook`]: the business server's contract (docs/webhook.md).

pub mod dedupe;
pub mod rules;
pub mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wxgate_proto::{Push, Reply, ReplyBody};

use crate::config::AppConfig;
use crate::store::PushClaim;
use crate::token::{TokenCenter, Upstream};
use dedupe::{Answer, Dedupe};

/// Longest wait for the shared dedupe's claim before handling the push here.
const CLAIM_TIMEOUT: Duration = Duration::from_millis(500);

/// How each push ended, counted for `/metrics`.
#[derive(Debug, Default)]
pub struct PushCounters {
    /// Answered by a rule.
    pub rule: AtomicU64,
    /// Answered by the webhook in time.
    pub webhook: AtomicU64,
    /// Answered `success`; the webhook's reply went out by customer-service message.
    pub late: AtomicU64,
    /// Answered `success` with nothing to say (no rule, no webhook, or a 204).
    pub no_reply: AtomicU64,
    /// The webhook failed; answered `success`.
    pub webhook_failed: AtomicU64,
    /// Retries answered from the dedupe cache.
    pub duplicate: AtomicU64,
    /// Refused before handling (signature, timestamp, decryption, XML).
    pub rejected: AtomicU64,
}

/// How a handled push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Rule,
    Webhook,
    Late,
    NoReply,
    WebhookFailed,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Rule => "rule",
            Outcome::Webhook => "webhook",
            Outcome::Late => "late",
            Outcome::NoReply => "no_reply",
            Outcome::WebhookFailed => "webhook_failed",
        }
    }
}

impl PushCounters {
    fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Rule => &self.rule,
            Outcome::Webhook => &self.webhook,
            Outcome::Late => &self.late,
            Outcome::NoReply => &self.no_reply,
            Outcome::WebhookFailed => &self.webhook_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Handles verified pushes.
#[derive(Debug)]
pub struct Dispatcher {
    center: TokenCenter,
    upstream: Upstream,
    http: reqwest::Client,
    dedupe: Dedupe,
    /// Time to answer WeChat in, from the push's arrival, webhook included (WeChat waits 5 s).
    budget: Duration,
    /// How long a late webhook answer is still awaited.
    webhook_timeout: Duration,
    /// Outcome counters.
    pub counters: PushCounters,
}

impl Dispatcher {
    /// A dispatcher answering within `budget`, remembering pushes for `dedupe_window` seconds.
    pub fn new(
        center: TokenCenter,
        upstream: Upstream,
        budget: Duration,
        webhook_timeout: Duration,
        dedupe_window: u64,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client without redirects builds");
        Self {
            center,
            upstream,
            http,
            dedupe: Dedupe::new(dedupe_window),
            budget,
            webhook_timeout,
            counters: PushCounters::default(),
        }
    }

    /// The answer to `push` (plaintext reply XML, or `None` for `success`).
    /// Retries of the same push share one handling, in this instance (dedupe)
    /// and across instances (the store's push claims).
    pub async fn answer(self: &Arc<Self>, app: Arc<AppConfig>, push: Push) -> Answer {
        // One deadline for everything: WeChat's window starts when the push arrives.
        let deadline = tokio::time::Instant::now() + self.budget;
        let now = self.center.now();
        let key = format!("{}:{}", app.appid, push.dedupe_key());
        let this = self.clone();
        let shared_key = key.clone();
        let (answer, duplicate) = self.dedupe.answer(key, now, async move {
            this.answer_once_across_instances(shared_key, app, push, deadline)
                .await
        });
        if duplicate {
            self.counters.duplicate.fetch_add(1, Ordering::Relaxed);
        }
        answer.await
    }

    async fn answer_once_across_instances(
        self: Arc<Self>,
        key: String,
        app: Arc<AppConfig>,
        push: Push,
        deadline: tokio::time::Instant,
    ) -> Answer {
        let store = self.center.store().clone();
        let ttl = Duration::from_secs(self.dedupe.window());
        let claim = tokio::time::timeout(CLAIM_TIMEOUT, store.claim_push(&key, ttl))
            .await
            .unwrap_or_else(|_| Err(crate::store::StoreError("no answer in time".into())));
        match claim {
            Ok(PushClaim::First) => {}
            Ok(PushClaim::Answered(answer)) => {
                self.counters.duplicate.fetch_add(1, Ordering::Relaxed);
                return answer;
            }
            Ok(PushClaim::Pending) => {
                self.counters.duplicate.fetch_add(1, Ordering::Relaxed);
                return self.await_other_instance(&key, deadline).await;
            }
            Err(e) => {
                tracing::warn!(appid = %app.appid, error = %e, "shared dedupe unavailable; handling here")
            }
        }
        let answer = self.clone().handle(app, push, deadline).await;
        // Shared in the background: WeChat's answer does not wait on Redis.
        let shared = answer.clone();
        tokio::spawn(async move {
            if let Err(e) = store.answer_push(&key, shared.as_deref(), ttl).await {
                tracing::warn!(error = %e, "could not share the answer of a push");
            }
        });
        answer
    }

    /// Another instance is handling this push: wait for its answer within the budget.
    async fn await_other_instance(&self, key: &str, deadline: tokio::time::Instant) -> Answer {
        let store = self.center.store();
        let ttl = Duration::from_secs(self.dedupe.window());
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(PushClaim::Answered(answer)) = store.claim_push(key, ttl).await {
                return answer;
            }
        }
        None
    }

    async fn handle(
        self: Arc<Self>,
        app: Arc<AppConfig>,
        push: Push,
        deadline: tokio::time::Instant,
    ) -> Answer {
        let started = tokio::time::Instant::now();
        let (outcome, body) = self.reply_body(&app, &push, deadline).await;
        self.counters.count(outcome);
        tracing::info!(
            appid = %app.appid,
            msg_type = push.kind.msg_type(),
            outcome = outcome.name(),
            duration_ms = started.elapsed().as_millis() as u64,
            "push handled"
        );
        let now = self.center.now();
        body.map(|body| Reply::to(&push, now, body).to_xml())
    }

    async fn reply_body(
        self: &Arc<Self>,
        app: &Arc<AppConfig>,
        push: &Push,
        deadline: tokio::time::Instant,
    ) -> (Outcome, Option<ReplyBody>) {
        if let Some(rule) = app.rules.iter().find(|r| r.matches(push)) {
            return (Outcome::Rule, Some(rule.reply.clone()));
        }
        let (Some(url), Some(secret)) = (&app.webhook, &app.webhook_secret) else {
            return (Outcome::NoReply, None);
        };
        let this = self.clone();
        let (url, secret, appid, push_owned) =
            (url.clone(), secret.clone(), app.appid.clone(), push.clone());
        let now = self.center.now();
        let mut call = tokio::spawn(async move {
            webhook::call(
                &this.http,
                &url,
                &secret,
                &appid,
                &push_owned,
                now,
                this.webhook_timeout,
            )
            .await
        });
        match tokio::time::timeout_at(deadline, &mut call).await {
            Ok(Ok(Ok(Some(reply)))) => (Outcome::Webhook, Some(reply)),
            Ok(Ok(Ok(None))) => (Outcome::NoReply, None),
            Ok(Ok(Err(e))) => {
                tracing::warn!(appid = %app.appid, error = %e, "webhook failed; answering success");
                (Outcome::WebhookFailed, None)
            }
            Ok(Err(e)) => {
                tracing::error!(appid = %app.appid, error = %e, "webhook task failed; answering success");
                (Outcome::WebhookFailed, None)
            }
            Err(_) => {
                let this = self.clone();
                let (app, openid) = (app.clone(), push.from_user_name.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(Some(reply))) = call.await {
                        this.deliver_late(&app, &openid, &reply).await;
                    }
                });
                (Outcome::Late, None)
            }
        }
    }

    /// Sends a late reply as a customer-service message (the token refreshed once if WeChat rejects it).
    async fn deliver_late(&self, app: &AppConfig, openid: &str, reply: &ReplyBody) {
        let message = webhook::custom_message(openid, reply);
        let appid = app.appid.as_str();
        let upstream = &self.upstream;
        let sent = self
            .center
            .with_access_token(appid, |token| {
                let message = &message;
                async move { upstream.custom_send(appid, &token, message).await }
            })
            .await;
        match sent {
            Ok(()) => tracing::info!(appid, "late reply delivered by customer-service message"),
            Err(f) => tracing::error!(
                appid,
                upstream.errcode = f.errcode.unwrap_or(0),
                "late reply not delivered: {f}"
            ),
        }
    }
}
