//! What happens to a push once it is verified and decrypted: dedupe, the app's
//! rules, then its webhook, all within WeChat's 5-second window; a webhook that
//! answers too late has its reply delivered through the customer-service API.
//!
//! - [`dedupe`]: one handling per push, retries share its answer.
//! - [`keys`]: the fixed-size keyed digests its in-memory maps are keyed by.
//! - [`stats`]: push counts and the webhook's health, for the status page.
//! - [`webhook`]: the business server's contract (docs/webhook.md).

/// A plain-mode push whose signed query came earlier with another body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("push refused: this signature came earlier with another body")]
pub struct BodyMismatch;

pub mod dedupe;
pub mod keys;
pub mod stats;
pub mod webhook;

use crate::family::PassiveReplies;
pub use crate::inbox::Inbox;

// foldhash, not SipHash: these maps are looked up on every push, and
// only configured owners (and static labels) are ever inserted, so a
// stranger cannot choose colliding keys.
use foldhash::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use wxgate_proto::{Push, Reply, ReplyBody};

use crate::clock::Clock;
use crate::metrics::{AppLabels, Metrics, PushLabels};
use crate::store::{PushClaim, Store};
use crate::token::{Requester, TokenCenter, Upstream};
use dedupe::{Answer, Dedupe, Delivery, PendingAnswer, Window};
use keys::{Key, Keys};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use stats::{PushStats, WebhookStatus};

/// Longest wait for the shared dedupe's claim before handling the push here.
const CLAIM_TIMEOUT: Duration = Duration::from_millis(500);

/// How a push ended: the metrics' `outcome` label and the status page's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Rule,
    Webhook,
    Late,
    NoReply,
    WebhookFailed,
    /// A retry of a push already handled.
    Duplicate,
    /// Refused before handling (signature, timestamp, decryption, XML).
    Rejected,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Rule => "rule",
            Outcome::Webhook => "webhook",
            Outcome::Late => "late",
            Outcome::NoReply => "no_reply",
            Outcome::WebhookFailed => "webhook_failed",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Per-app push and webhook figures for the status page.
#[derive(Debug, Default)]
struct AppFigures {
    pushes: PushStats,
    webhook_ok: u64,
    webhook_failed: u64,
    webhook_last_error: Option<(u64, String)>,
    webhook_last_ok: Option<u64>,
    /// Refused pushes not yet in a log line, and when the last such line was written.
    refused_unlogged: u64,
    refused_logged_at: Option<u64>,
    /// The app's metric series, looked up once each: counting a push then
    /// builds no labels and takes no lock of the metrics'.
    series: Series,
}

impl AppFigures {
    /// Counts a push by outcome, in the metrics and the status page's figures.
    fn count(&mut self, metrics: &Metrics, appid: &str, msg_type: &'static str, outcome: Outcome) {
        let p = &mut self.pushes;
        let counter = match outcome {
            Outcome::Rule => &mut p.rule,
            Outcome::Webhook => &mut p.webhook,
            Outcome::Late => &mut p.late,
            Outcome::NoReply => &mut p.no_reply,
            Outcome::WebhookFailed => &mut p.webhook_failed,
            Outcome::Duplicate => &mut p.duplicate,
            Outcome::Rejected => &mut p.rejected,
        };
        *counter += 1;
        self.series.push(metrics, appid, msg_type, outcome);
    }
}

/// An app's metric series (handles to the registry's own), resolved on first use.
#[derive(Debug, Default)]
struct Series {
    pushes: HashMap<(&'static str, Outcome), Counter>,
    dedupe_hits: Option<Counter>,
    previous_key: Option<Counter>,
    webhook_seconds: Option<Histogram>,
}

impl Series {
    fn push(&mut self, metrics: &Metrics, appid: &str, msg_type: &'static str, outcome: Outcome) {
        (self.pushes.entry((msg_type, outcome)))
            .or_insert_with(|| {
                (metrics.pushes)
                    .get_or_create(&PushLabels {
                        appid: appid.to_owned(),
                        msg_type,
                        outcome: outcome.name(),
                    })
                    .clone()
            })
            .inc();
        if outcome == Outcome::Duplicate {
            (self.dedupe_hits.get_or_insert_with(|| {
                (metrics.dedupe_hits)
                    .get_or_create(&app_labels(appid))
                    .clone()
            }))
            .inc();
        }
    }
}

fn app_labels(appid: &str) -> AppLabels {
    AppLabels {
        appid: appid.to_owned(),
    }
}

/// How often refused pushes of one app are summed up in the log, seconds.
const REFUSED_LOG_EVERY: u64 = 60;

/// Handles verified pushes.
#[derive(Debug)]
pub struct Dispatcher {
    /// Only for replies sent as messages (late, or a Mini Program's), which need a token.
    center: TokenCenter,
    /// The shared store (cross-instance dedupe), the clock and the metrics:
    /// the dispatcher's own handles, so a push never visits the center.
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Where pushes arrive, by owner (appid, or `corpid/name`); replaced
    /// whole by a reload, while pushes under way keep the inbox they found.
    /// Through foldhash, as the owners: only configured or authorized
    /// owners are inserted, so a stranger cannot choose colliding keys.
    inboxes: ArcSwap<foldhash::HashMap<String, Arc<Inbox>>>,
    upstream: Upstream,
    http: reqwest::Client,
    dedupe: Dedupe,
    /// The secret of the in-process keys and digests (dedupe, body bindings).
    keys: Keys,
    /// The body first seen with each signature of a push whose body no
    /// signature covers (plain mode): its digest by appid and signed query,
    /// both 16-byte [`Key`]s, whatever the query or body's length. An entry
    /// is a 33-byte table slot and 24 bytes of arrival order; with the
    /// tables' spare room (see [`Window`]) the map holds at most 1,474,560
    /// bytes at the default `dedupe_capacity` of 10,000, 148 a binding,
    /// which the `body_bindings_stay_within_their_bound` test checks.
    unsigned_bodies: Mutex<Window<Key>>,
    /// Time to answer WeChat in, from the push's arrival, webhook included (WeChat waits 5 s).
    budget: Duration,
    /// How long a late webhook answer is still awaited.
    webhook_timeout: Duration,
    /// Per-inbox figures, for the status page.
    figures: Mutex<HashMap<String, AppFigures>>,
}

fn by_owner(
    inboxes: impl IntoIterator<Item = Arc<Inbox>>,
) -> foldhash::HashMap<String, Arc<Inbox>> {
    (inboxes.into_iter())
        .map(|inbox| (inbox.owner.clone(), inbox))
        .collect()
}

impl Dispatcher {
    /// A dispatcher for `inboxes` answering within `budget`, remembering
    /// pushes for `dedupe_window` seconds.
    pub fn new(
        center: TokenCenter,
        upstream: Upstream,
        inboxes: impl IntoIterator<Item = Arc<Inbox>>,
        budget: Duration,
        webhook_timeout: Duration,
        dedupe_window: u64,
        dedupe_capacity: usize,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client without redirects builds");
        Self {
            store: center.store().clone(),
            clock: center.clock().clone(),
            metrics: center.metrics().clone(),
            center,
            inboxes: ArcSwap::from_pointee(by_owner(inboxes)),
            upstream,
            http,
            dedupe: Dedupe::new(dedupe_window, dedupe_capacity),
            keys: Keys::random(),
            unsigned_bodies: Mutex::new(Window::new(dedupe_window, dedupe_capacity)),
            budget,
            webhook_timeout,
            figures: Mutex::new(HashMap::default()),
        }
    }

    /// Now, Unix seconds, on the gateway's clock (timestamps of pushes are checked against it).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The inbox of `owner` (an appid, or `corpid/name`), if it takes pushes.
    pub fn inbox(&self, owner: &str) -> Option<Arc<Inbox>> {
        self.inboxes.load().get(owner).cloned()
    }

    /// Replaces every inbox (a reload): pushes that arrive from now on find
    /// the new ones; those under way finish with the inbox they found.
    pub fn set_inboxes(&self, inboxes: impl IntoIterator<Item = Arc<Inbox>>) {
        self.inboxes.store(Arc::new(by_owner(inboxes)));
    }

    /// Adds (or replaces) inboxes: an authorizer's, when it authorizes its
    /// platform. One copy of the map for them all.
    pub fn add_inboxes(&self, new: impl IntoIterator<Item = Arc<Inbox>>) {
        let new: Vec<Arc<Inbox>> = new.into_iter().collect();
        if new.is_empty() {
            return;
        }
        self.inboxes.rcu(|inboxes| {
            let mut inboxes = HashMap::clone(inboxes);
            for inbox in &new {
                inboxes.insert(inbox.owner.clone(), inbox.clone());
            }
            inboxes
        });
    }

    /// Removes the inbox of `owner`, if it has one.
    pub fn remove_inbox(&self, owner: &str) {
        if !self.takes_pushes(owner) {
            return;
        }
        self.inboxes.rcu(|inboxes| {
            let mut inboxes = HashMap::clone(inboxes);
            inboxes.remove(owner);
            inboxes
        });
    }

    fn takes_pushes(&self, owner: &str) -> bool {
        self.inboxes.load().contains_key(owner)
    }

    /// Updates `appid`'s figures, if it takes pushes (`false` if not).
    fn figures(&self, appid: &str, update: impl FnOnce(&mut AppFigures)) -> bool {
        if !self.takes_pushes(appid) {
            return false; // No entries for owners nobody configured.
        }
        let mut figures = self.figures.lock().unwrap_or_else(|p| p.into_inner());
        match figures.get_mut(appid) {
            Some(f) => update(f),
            None => update(figures.entry(appid.to_owned()).or_default()),
        }
        true
    }

    /// Counts a push by outcome, in the metrics and the status page's figures.
    fn count(&self, appid: &str, msg_type: &'static str, outcome: Outcome) {
        let metrics = &*self.metrics;
        let counted = self.figures(appid, |f| f.count(metrics, appid, msg_type, outcome));
        if !counted {
            // An owner removed while its push was handled: counted all the same.
            Series::default().push(metrics, appid, msg_type, outcome);
        }
    }

    /// Counts a push refused before handling (source, signature, timestamp,
    /// decryption, XML) for `reason`, and sums refusals up in one warning a
    /// minute per app, so a flood of them cannot flood the log.
    pub fn count_rejected(&self, appid: &str, reason: &'static str) {
        let (metrics, now) = (&*self.metrics, self.clock.now());
        let mut summary = None;
        self.figures(appid, |f| {
            f.count(metrics, appid, "unknown", Outcome::Rejected);
            f.refused_unlogged += 1;
            if f.refused_logged_at
                .is_none_or(|at| now >= at + REFUSED_LOG_EVERY)
            {
                summary = Some(std::mem::take(&mut f.refused_unlogged));
                f.refused_logged_at = Some(now);
            }
        });
        if let Some(refused) = summary {
            tracing::warn!(
                appid,
                refused,
                last_reason = reason,
                "pushes refused (source, signature, timestamp, decryption or XML); at most one such line a minute, each refusal at debug level"
            );
        }
    }

    /// Counts a push opened with the previous token or key of `appid`'s
    /// inbox: once this stops growing, the rotation is over.
    pub fn count_previous_key(&self, appid: &str) {
        let metrics = &*self.metrics;
        self.figures(appid, |f| {
            f.pushes.previous_key += 1;
            (f.series.previous_key.get_or_insert_with(|| {
                (metrics.pushes_previous_key)
                    .get_or_create(&app_labels(appid))
                    .clone()
            }))
            .inc();
        });
    }

    fn webhook_result(&self, appid: &str, elapsed: Duration, error: Option<String>) {
        let (metrics, now) = (&*self.metrics, self.clock.now());
        let counted = self.figures(appid, |f| {
            (f.series.webhook_seconds.get_or_insert_with(|| {
                (metrics.webhook_seconds)
                    .get_or_create(&app_labels(appid))
                    .clone()
            }))
            .observe(elapsed.as_secs_f64());
            match error {
                None => {
                    f.webhook_ok += 1;
                    f.webhook_last_ok = Some(now);
                }
                Some(e) => {
                    f.webhook_failed += 1;
                    f.webhook_last_error = Some((now, e));
                }
            }
        });
        if !counted {
            // An owner removed while its webhook was called: observed all the same.
            (metrics.webhook_seconds)
                .get_or_create(&app_labels(appid))
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Push counts of `appid` by outcome.
    pub fn push_stats(&self, appid: &str) -> PushStats {
        let figures = self.figures.lock().unwrap_or_else(|p| p.into_inner());
        figures
            .get(appid)
            .map(|f| f.pushes.clone())
            .unwrap_or_default()
    }

    /// The webhook's health, when `appid` has one.
    pub fn webhook_status(&self, appid: &str) -> Option<WebhookStatus> {
        let inbox = self.inbox(appid)?;
        let url = inbox.webhook.as_ref()?;
        let figures = self.figures.lock().unwrap_or_else(|p| p.into_inner());
        let f = figures.get(appid);
        Some(WebhookStatus {
            target: url.origin().ascii_serialization(),
            ok: f.map_or(0, |f| f.webhook_ok),
            failed: f.map_or(0, |f| f.webhook_failed),
            last_error: f.and_then(|f| f.webhook_last_error.as_ref().map(|e| e.1.clone())),
            last_failure_at: f.and_then(|f| f.webhook_last_error.as_ref().map(|e| e.0)),
            last_ok_at: f.and_then(|f| f.webhook_last_ok),
        })
    }

    /// In plain mode WeChat's signature covers the timestamp and nonce, not the
    /// body, so one captured URL could carry any body while its timestamp is
    /// accepted. The first body seen with a signed query is bound to it (in
    /// this instance, and across instances through a shared store): a retry,
    /// byte-identical, passes; another body is refused.
    pub async fn bind_unsigned_body(
        &self,
        appid: &str,
        query: &wxgate_proto::PushQuery<impl wxgate_proto::QueryText>,
        body: &[u8],
    ) -> Result<(), BodyMismatch> {
        use sha2::{Digest, Sha256};
        let digest = self.keys.body(body);
        let (key, now) = (self.keys.signed_query(appid, query), self.clock.now());
        let (bound, _) = self
            .unsigned_bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(key, now, || digest);
        if bound != digest {
            return Err(BodyMismatch);
        }
        let store = &self.store;
        if store.shares_pushes() {
            // What instances share stays readable and the same in each:
            // the signed query, and the body's SHA-256.
            let key = format!(
                "{appid}:{}:{}:{}",
                &*query.timestamp, &*query.nonce, &*query.signature
            );
            let ttl = Duration::from_secs(self.dedupe.window());
            let hex = hex::encode(Sha256::digest(body));
            match tokio::time::timeout(CLAIM_TIMEOUT, store.bind_once(&key, &hex, ttl)).await {
                Ok(Ok(Some(other))) if other != hex => return Err(BodyMismatch),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(appid, error = %e, "shared body check unavailable; checked in this instance only")
                }
                Err(_) => {
                    tracing::warn!(
                        appid,
                        "shared body check timed out; checked in this instance only"
                    )
                }
            }
        }
        Ok(())
    }

    /// The answer to `push` (plaintext reply XML, or `None` for no reply).
    /// Retries of the same push share one handling, in this instance (dedupe)
    /// and across instances (the store's push claims).
    pub async fn answer(self: &Arc<Self>, inbox: Arc<Inbox>, push: Push) -> Answer {
        // One deadline for everything: WeChat's window starts when the push arrives.
        let deadline = tokio::time::Instant::now() + self.budget;
        let now = self.clock.now();
        let key = self.keys.push(&inbox.owner, &push);
        let lead = match self.dedupe.begin(key, now) {
            Delivery::First(lead) => lead,
            Delivery::Again(slot) => {
                self.count(&inbox.owner, push.kind.name(), Outcome::Duplicate);
                return Delivery::wait(slot).await;
            }
        };
        if !self.store.shares_pushes() {
            // One instance, and a push a rule (or nobody) answers: worked out
            // here and now, with no future to box. A panic answers `success`,
            // as below; dropped, the lead answers the retries so too.
            let started = tokio::time::Instant::now();
            let at_once = std::panic::catch_unwind(AssertUnwindSafe(|| {
                (self.reply_at_once(&inbox, &push))
                    .map(|(outcome, body)| self.answered(&inbox, &push, outcome, body, started))
            }));
            let this = self.clone();
            return match at_once {
                Ok(Some(answer)) => lead.finish(answer),
                // The webhook is to be asked (the rules are not run again).
                Ok(None) => {
                    PendingAnswer::lead(lead, this.ask_webhook(inbox, push, deadline)).await
                }
                Err(_) => lead.finish(None),
            };
        }
        let this = self.clone();
        PendingAnswer::lead(lead, async move {
            this.answer_once_across_instances(inbox, push, deadline)
                .await
        })
        .await
    }

    async fn answer_once_across_instances(
        self: Arc<Self>,
        inbox: Arc<Inbox>,
        push: Push,
        deadline: tokio::time::Instant,
    ) -> Answer {
        let store = self.store.clone();
        // The store's key, the same in every instance.
        let key = format!("{}:{}", inbox.owner, push.dedupe_key());
        let ttl = Duration::from_secs(self.dedupe.window());
        let claim = tokio::time::timeout(CLAIM_TIMEOUT, store.claim_push(&key, ttl))
            .await
            .unwrap_or_else(|_| Err(crate::store::StoreError("no answer in time".into())));
        match claim {
            Ok(PushClaim::First) => {}
            Ok(PushClaim::Answered(answer)) => {
                self.count(&inbox.owner, push.kind.name(), Outcome::Duplicate);
                return answer;
            }
            Ok(PushClaim::Pending) => {
                self.count(&inbox.owner, push.kind.name(), Outcome::Duplicate);
                return self.await_other_instance(&key, deadline).await;
            }
            Err(e) => {
                tracing::warn!(owner = %inbox.owner, error = %e, "shared dedupe unavailable; handling here")
            }
        }
        let answer = self.clone().handle(inbox, push, deadline).await;
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
        let store = &self.store;
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
        inbox: Arc<Inbox>,
        push: Push,
        deadline: tokio::time::Instant,
    ) -> Answer {
        let started = tokio::time::Instant::now();
        match self.reply_at_once(&inbox, &push) {
            Some((outcome, body)) => self.answered(&inbox, &push, outcome, body, started),
            None => self.ask_webhook(inbox, push, deadline).await,
        }
    }

    /// The answer of a push only the webhook can answer.
    async fn ask_webhook(
        self: Arc<Self>,
        inbox: Arc<Inbox>,
        push: Push,
        deadline: tokio::time::Instant,
    ) -> Answer {
        let started = tokio::time::Instant::now();
        let (outcome, body) = self.call_webhook(&inbox, &push, deadline).await;
        self.answered(&inbox, &push, outcome, body, started)
    }

    /// The reply of a push that waits on nothing: a rule's, or none when
    /// there is no webhook to ask. `None` when the webhook is to be asked.
    fn reply_at_once(&self, inbox: &Inbox, push: &Push) -> Option<(Outcome, Option<ReplyBody>)> {
        if let Some(rule) = inbox.rules.iter().find(|r| r.matches(push)) {
            return Some((Outcome::Rule, Some(rule.reply.clone())));
        }
        if inbox.webhook.is_none() || inbox.webhook_secret.is_none() {
            return Some((Outcome::NoReply, None));
        }
        None
    }

    /// Counts a handled push and makes its answer of its reply.
    fn answered(
        self: &Arc<Self>,
        inbox: &Arc<Inbox>,
        push: &Push,
        outcome: Outcome,
        body: Option<ReplyBody>,
        started: tokio::time::Instant,
    ) -> Answer {
        self.count(&inbox.owner, push.kind.name(), outcome);
        tracing::debug!(
            owner = %inbox.owner,
            msg_type = push.kind.name(),
            outcome = outcome.name(),
            duration_ms = started.elapsed().as_millis() as u64,
            "push handled"
        );
        let body = match body {
            // A Mini Program's only passive reply is the transfer (§2): any
            // other reply goes out as a customer-service message, at once.
            Some(body)
                if inbox.family.passive_replies == PassiveReplies::TransferOnly
                    && !matches!(body, ReplyBody::TransferCustomerService { .. }) =>
            {
                let (this, inbox) = (self.clone(), inbox.clone());
                let to = push.from_user_name.clone();
                tokio::spawn(async move { this.deliver_later(&inbox, &to, &body).await });
                None
            }
            body => body,
        };
        let now = self.clock.now();
        body.map(|body| Reply::to(push, now, body).to_xml())
    }

    /// The webhook's reply, within the deadline.
    async fn call_webhook(
        self: &Arc<Self>,
        inbox: &Arc<Inbox>,
        push: &Push,
        deadline: tokio::time::Instant,
    ) -> (Outcome, Option<ReplyBody>) {
        let this = self.clone();
        let (target, push_owned) = (inbox.clone(), push.clone());
        let now = self.clock.now();
        let started = tokio::time::Instant::now();
        let mut call = tokio::spawn(async move {
            webhook::call(&this.http, &target, &push_owned, now, this.webhook_timeout).await
        });
        let result = tokio::time::timeout_at(deadline, &mut call).await;
        let owner = inbox.owner.as_str();
        if let Ok(done) = &result {
            self.webhook_result(owner, started.elapsed(), webhook_error(done));
        }
        match result {
            Ok(Ok(Ok(Some(reply)))) => (Outcome::Webhook, Some(reply)),
            Ok(Ok(Ok(None))) => (Outcome::NoReply, None),
            Ok(Ok(Err(e))) => {
                tracing::warn!(owner, error = %e, "webhook failed; answering success");
                (Outcome::WebhookFailed, None)
            }
            Ok(Err(e)) => {
                tracing::error!(owner, error = %e, "webhook task failed; answering success");
                (Outcome::WebhookFailed, None)
            }
            Err(_) => {
                // Late, not failed (yet): its real outcome is recorded when it comes.
                let this = self.clone();
                let (inbox, to) = (inbox.clone(), push.from_user_name.clone());
                tokio::spawn(async move {
                    let done = call.await;
                    this.webhook_result(&inbox.owner, started.elapsed(), webhook_error(&done));
                    if let Ok(Ok(Some(reply))) = done {
                        this.deliver_later(&inbox, &to, &reply).await;
                    }
                });
                (Outcome::Late, None)
            }
        }
    }

    /// Sends a reply that cannot be a passive one (late, or a Mini Program's)
    /// as a message: a customer-service message for Official Accounts and
    /// Mini Programs, an app message (`message/send`) for WeCom; the token is
    /// refreshed once if WeChat rejects it.
    async fn deliver_later(&self, inbox: &Inbox, to: &str, reply: &ReplyBody) {
        let owner = inbox.owner.as_str();
        let Some(mut message) = webhook::custom_message(to, reply) else {
            tracing::warn!(
                owner,
                "a transfer_customer_service reply came too late: not delivered"
            );
            return;
        };
        let family = inbox.family;
        if family.late_reply.agentid {
            let Some(agentid) = inbox.agentid else {
                tracing::error!(
                    owner,
                    "reply not delivered: a WeCom special secret has no agentid to send app messages with"
                );
                return;
            };
            message["agentid"] = agentid.into();
        }
        let (upstream, message) = (&self.upstream, &message);
        let sent = self
            .center
            .with_access_token(owner, &Requester::Push, |token| async move {
                upstream.send_message(family, owner, &token, message).await
            })
            .await;
        match sent {
            Ok(()) => tracing::info!(owner, "reply delivered as a message"),
            Err(f) => tracing::error!(
                owner,
                upstream.errcode = f.errcode.unwrap_or(0),
                "reply not delivered: {f}"
            ),
        }
    }
}

/// What went wrong with a finished webhook call, if anything.
fn webhook_error<T, E: std::fmt::Display>(
    done: &Result<Result<T, E>, tokio::task::JoinError>,
) -> Option<String> {
    match done {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(e) => Some(format!("webhook task failed: {e}")),
    }
}
