//! What the status page (`/admin`) shows: one snapshot of every app's
//! credentials, failures, pushes and webhook, built from the token center
//! and the dispatcher. Values are masked; nothing here is a secret.

use serde::Serialize;

use crate::http::AppState;
use crate::message::stats::{PushStats, WebhookStatus};
use crate::reload::{ConfigStatus, InstanceConfig};
use crate::store::{mask, Kind};
use crate::token::FailureRecord;

/// The whole page's data (`GET /admin/status.json`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Snapshot {
    /// This instance's name (`host:pid`).
    pub instance: String,
    /// Now, Unix seconds (the gateway's clock, so countdowns agree with it).
    pub now: u64,
    /// The store.
    pub store: StoreStatus,
    /// Whether `/readyz` would answer 200.
    pub ready: bool,
    /// Proxied upload bytes in temporary files.
    pub spool: SpoolStatus,
    /// Connections closed by the protections, since the start.
    pub connections: ConnectionsStatus,
    /// Every configured app, in configuration order.
    pub apps: Vec<AppStatus>,
    /// Every configured Open Platform platform (its authorizers are in
    /// `apps` too, as the platform itself is).
    pub platforms: Vec<PlatformStatus>,
    /// The latest upstream failures, newest first (at most 20).
    pub recent_errors: Vec<FailureRecord>,
    /// The configuration this instance runs, and its last reload.
    pub config: ConfigStatus,
    /// Every instance sharing the store and the configuration it runs
    /// (this one first; only this one without a shared store).
    pub instances: Vec<InstanceConfig>,
}

/// The store's state.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoreStatus {
    /// `sqlite`, `redis` or `memory`.
    pub backend: &'static str,
    /// Whether it answered a ping just now.
    pub reachable: bool,
    /// The last write it refused, unless one succeeded since.
    pub write_error: Option<String>,
    /// Redis: its topology, role, failovers and reconnects seen.
    pub topology: Option<crate::store::StoreTopology>,
}

/// Proxied request bodies held in temporary files.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct SpoolStatus {
    /// Bytes held now.
    pub bytes: u64,
    /// `proxy.max_spool_bytes`.
    pub limit: u64,
}

/// Connections the server closed to protect itself, since the start
/// (`wxgate_connections_*_total` on `/metrics`).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ConnectionsStatus {
    /// Closed to make room (`server.max_connections`).
    pub evicted: u64,
    /// Closed at once: every connection was busy.
    pub refused: u64,
    /// Closed because a request's headers were late (`server.header_read_timeout_ms`).
    pub header_timeouts: u64,
}

/// One app.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AppStatus {
    /// AppID.
    pub appid: String,
    /// `stable` or `classic`.
    pub token_api: &'static str,
    /// `official` or `miniprogram`.
    pub app_type: &'static str,
    /// `plain`, `compat`, `safe`, or `none` when pushes are not configured.
    pub push_mode: &'static str,
    /// access_token, jsapi_ticket, wx_card_ticket (those in use).
    pub credentials: Vec<CredentialStatus>,
    /// Pushes handled by this instance.
    pub pushes: PushStats,
    /// The webhook, when one is configured.
    pub webhook: Option<WebhookStatus>,
}

/// One Open Platform platform.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlatformStatus {
    /// Its component appid.
    pub component_appid: String,
    /// When the last `component_verify_ticket` came (WeChat pushes one every
    /// 10 minutes), Unix seconds; `None` before the first.
    pub ticket_fetched_at: Option<u64>,
    /// When that ticket expires (12 h after it came).
    pub ticket_expires_at: Option<u64>,
    /// Its `component_access_token` (masked, as every credential).
    pub token: Option<CredentialStatus>,
    /// Its authorizers, served and revoked.
    pub authorizers: Vec<crate::platform::AuthorizerStatus>,
}

/// One credential of one app.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CredentialStatus {
    /// `access_token`, `jsapi_ticket` or `wx_card_ticket`.
    pub kind: &'static str,
    /// The first characters and the length, e.g. `ACCESS…(136 chars)`.
    pub masked: Option<String>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<u64>,
    /// Seconds left at `now`.
    pub expires_in: Option<u64>,
    /// When the refresher acts next.
    pub next_refresh_at: Option<u64>,
    /// When the current value was fetched (by any instance).
    pub fetched_at: Option<u64>,
    /// `ok`, `failing`, `rejected` (WeChat refuses the value held and it
    /// could not be replaced: see the failure) or `never` (no value yet and no failure).
    pub last_result: &'static str,
    /// The failure that has not been cleared by a success since.
    pub last_failure: Option<FailureRecord>,
    /// Fetches from WeChat by this instance since 00:00 Beijing time.
    pub fetches_today: u64,
    /// WeChat's daily quota for this API, when known (the token API's:
    /// 2,000 for `/cgi-bin/token`, 500,000 for `/cgi-bin/stable_token`).
    pub daily_quota: Option<u64>,
    /// Which instance holds the refresh lease right now, if any.
    pub lease_holder: Option<String>,
}

/// Builds the snapshot.
pub(crate) async fn snapshot(state: &AppState) -> Snapshot {
    let center = &state.center;
    let now = state.now();
    let reachable = state.store.ping().await.is_ok();
    center.recheck_store_writes().await;
    let slots = center.status();
    let credentials_of = |appid: &str| {
        slots
            .iter()
            .filter(|s| s.appid == appid)
            .filter(|s| {
                s.kind == Kind::AccessToken || s.expires_at.is_some() || s.last_failure.is_some()
            })
            .map(|s| CredentialStatus {
                kind: s.kind.as_str(),
                masked: s.value.as_deref().map(mask),
                expires_at: s.expires_at,
                expires_in: s.expires_at.map(|at| at.saturating_sub(now)),
                next_refresh_at: s.next_refresh_at,
                fetched_at: s.fetched_at,
                last_result: match (&s.last_failure, s.expires_at) {
                    _ if s.rejected => "rejected",
                    (Some(_), _) => "failing",
                    (None, Some(_)) => "ok",
                    (None, None) => "never",
                },
                last_failure: s.last_failure.as_ref().map(|f| {
                    FailureRecord::new(appid, s.kind, f, s.last_failure_at.unwrap_or(now))
                }),
                fetches_today: s.fetches_today,
                // The token API's (WeCom publishes none for gettoken).
                daily_quota: (s.kind == Kind::AccessToken)
                    .then(|| state.owners.issuer(appid))
                    .flatten()
                    .and_then(|issuer| issuer.daily_quota()),
                lease_holder: s.lease_held.then(|| crate::instance_name().to_owned()),
            })
            .collect::<Vec<_>>()
    };
    // `plain`, `compat` or `safe`; `none` for an owner that takes no pushes.
    let push_mode = |owner: &str| {
        state
            .dispatcher
            .inbox(owner)
            .map_or("none", |inbox| inbox.mode.name())
    };
    // WeCom apps' callbacks are always encrypted (`safe`) when configured.
    let mut apps = (state.owners.all().iter())
        .map(|owner| {
            let key = owner.key.as_str();
            AppStatus {
                appid: owner.key.clone(),
                token_api: owner.issuer.token_api(),
                app_type: owner.family.push_name,
                push_mode: push_mode(key),
                credentials: credentials_of(key),
                pushes: state.dispatcher.push_stats(key),
                webhook: state.dispatcher.webhook_status(key),
            }
        })
        .collect::<Vec<_>>();
    apps.sort_by(|a, b| a.appid.cmp(&b.appid));
    for app in &mut apps {
        for credential in &mut app.credentials {
            if credential.lease_holder.is_none() {
                let kind = credential.kind.parse().expect("a kind's own name parses");
                credential.lease_holder = state
                    .store
                    .lease_holder(&app.appid, kind)
                    .await
                    .ok()
                    .flatten();
            }
        }
    }
    let mut platforms = Vec::new();
    for component in state.platforms.component_appids() {
        let card = apps.iter().find(|a| a.appid == component);
        let of_kind = |kind: Kind| {
            card.and_then(|a| a.credentials.iter().find(|c| c.kind == kind.as_str()))
                .cloned()
        };
        let ticket = of_kind(Kind::VerifyTicket);
        let token = of_kind(Kind::AccessToken).map(|c| CredentialStatus {
            kind: "component_access_token",
            ..c
        });
        platforms.push(PlatformStatus {
            ticket_fetched_at: ticket.as_ref().and_then(|t| t.fetched_at),
            ticket_expires_at: ticket.as_ref().and_then(|t| t.expires_at),
            token,
            authorizers: state.platforms.authorizers(&component).await,
            component_appid: component,
        });
    }
    Snapshot {
        platforms,
        instance: crate::instance_name().to_owned(),
        now,
        store: StoreStatus {
            backend: state.store.backend(),
            reachable,
            write_error: center.store_write_error().map(|(_, e)| e),
            topology: state.store.topology().await,
        },
        // The same store ping as `reachable`, not a second one.
        ready: crate::http::reasons(state, reachable).is_ready(),
        spool: SpoolStatus {
            bytes: state.proxy.spool().in_use(),
            limit: state.proxy.spool().limit(),
        },
        connections: ConnectionsStatus {
            evicted: state.metrics.connections_evicted.get(),
            refused: state.metrics.connections_refused.get(),
            header_timeouts: state.metrics.connections_header_timeouts.get(),
        },
        apps,
        recent_errors: center.recent_failures(),
        config: state.running.status(),
        instances: state.running.instances(state.store.as_ref(), now).await,
    }
}
