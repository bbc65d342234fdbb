//! `GET /metrics`: Prometheus text. Counters and histograms are updated where
//! things happen; gauges about credentials are read from the token center at
//! scrape time, so they are never stale.
//!
//! Every instance has its own registry (tests run several in one process).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `{endpoint, errcode}`: one call to WeChat. `errcode` is WeChat's (0 on
/// success), or `http_5xx`, `timeout`, `failed` when it did not answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The API path, e.g. `/cgi-bin/stable_token`.
    pub endpoint: String,
    /// See above.
    pub errcode: String,
}

/// `{appid, kind, result}`: a credential fetch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    /// The app.
    pub appid: String,
    /// `access_token`, `jsapi_ticket`, `wx_card_ticket`.
    pub kind: String,
    /// `ok`, `transient`, `config`, `quota`, `token_rejected`.
    pub result: String,
}

/// `{appid, kind}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CredentialLabels {
    /// The app.
    pub appid: String,
    /// `access_token`, `jsapi_ticket`, `wx_card_ticket`.
    pub kind: String,
}

/// `{appid, msg_type, outcome}`: a handled push.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    /// The app.
    pub appid: String,
    /// `text`, `event`… (`unknown` for types WeChat does not name).
    pub msg_type: &'static str,
    /// `rule`, `webhook`, `late`, `no_reply`, `webhook_failed`, `duplicate`, `rejected`.
    pub outcome: &'static str,
}

/// `{appid, exchange, result}`: a sign-in code exchange asked of wxgate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignInLabels {
    /// The app.
    pub appid: String,
    /// `oauth` (web authorization) or `jscode2session` (a Mini Program's `wx.login`).
    pub exchange: &'static str,
    /// `exchanged` (this caller's call to WeChat answered), `cached` (answered
    /// from an earlier or concurrent exchange of the same code, in this
    /// instance or another), `refused` (WeChat answered an errcode), `failed`
    /// (WeChat did not answer usably).
    pub result: &'static str,
}

/// `{appid}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    /// The app.
    pub appid: String,
}

/// `{route, method, status}`: one HTTP request to wxgate. Static strings,
/// so counting a request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route pattern, e.g. `/wx/{appid}` (see [`route_label`]).
    pub route: &'static str,
    /// The method (`other` for unusual ones).
    pub method: &'static str,
    /// The status code, e.g. `200`.
    pub status: &'static str,
}

/// A route pattern as a `&'static str`: the router's patterns are a fixed
/// set, so each is leaked once and reused.
pub fn route_label(pattern: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{OnceLock, RwLock};
    static ROUTES: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(RwLock::default);
    if let Some(known) = routes
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(pattern)
    {
        return known;
    }
    let mut routes = routes.write().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = routes.get(pattern) {
        return known;
    }
    let leaked: &'static str = Box::leak(pattern.to_owned().into_boxed_str());
    routes.insert(leaked);
    leaked
}

/// `{check}`: a credential check (`admin_key`, `client_key`, `app_secret`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// Which check.
    pub check: &'static str,
}

/// `{api}`: `wechat` or `wecom`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// Which API host.
    pub api: &'static str,
}

/// `{result}` of a configuration reload: `applied` or `refused`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// What became of it.
    pub result: &'static str,
}

/// `{fingerprint}` of the configuration an instance runs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    /// Its fingerprint (12 hex digits).
    pub fingerprint: String,
}

/// `{instance}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    /// `host:pid`.
    pub instance: String,
    /// The wxgate version.
    pub version: String,
}

/// Every metric of one gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Calls to WeChat (token, ticket, customer service, proxy).
    pub upstream_calls: Family<UpstreamLabels, Counter>,
    /// Credential fetches by result.
    pub refreshes: Family<RefreshLabels, Counter>,
    /// Pushes by outcome.
    pub pushes: Family<PushLabels, Counter>,
    /// Retries recognised as such, answered from the first delivery.
    pub dedupe_hits: Family<AppLabels, Counter>,
    /// Pushes opened with the previous token or EncodingAESKey (a rotation under way).
    pub pushes_previous_key: Family<AppLabels, Counter>,
    /// Time until the webhook answered (or failed), seconds.
    pub webhook_seconds: Family<AppLabels, Histogram>,
    /// Request durations, seconds.
    pub http_seconds: Family<RouteLabels, Histogram>,
    /// Seconds until the credential in memory expires (negative: expired).
    pub expires_in: Family<CredentialLabels, Gauge>,
    /// 1 while this instance holds the refresh lease of the credential.
    pub lease_held: Family<CredentialLabels, Gauge>,
    /// Credential fetches by this instance since 00:00 Beijing time.
    pub fetches_today: Family<CredentialLabels, Gauge>,
    /// 1 when `/readyz` would answer 200.
    pub ready: Gauge,
    /// Writes the store refused (credentials then live in memory only).
    pub store_write_failures: Counter,
    /// Bytes of proxied request bodies spooled to temporary files now.
    pub spool_bytes: Gauge,
    /// Connections closed to make room for new ones (`server.max_connections`):
    /// idle ones, or ones whose request body stalled.
    pub connections_evicted: Counter,
    /// New connections closed at once because every connection was busy.
    pub connections_refused: Counter,
    /// Connections closed because a request's headers did not arrive in
    /// full within `server.header_read_timeout_ms`.
    pub connections_header_timeouts: Counter,
    /// Credential checks refused unchecked: the peer failed too often lately.
    pub credential_checks_refused: Family<CheckLabels, Counter>,
    /// Current access tokens WeChat rejected when probed (invalidated behind wxgate's back).
    pub probe_rejections: Family<AppLabels, Counter>,
    /// Pushes (and ownership or URL checks) refused for coming from outside
    /// WeChat's callback IP ranges (`server.trusted_push_sources`).
    pub pushes_refused_source: Family<AppLabels, Counter>,
    /// Callback IP ranges known per API host (0: unknown, pushes let through).
    pub push_source_ranges: Family<ApiLabels, Gauge>,
    /// Configuration reloads by result.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// The configuration this instance runs: one series, 1, labelled with its fingerprint.
    pub config: Family<ConfigLabels, Gauge>,
    /// Sign-in code exchanges by result, cache hits included.
    pub signin_exchanges: Family<SignInLabels, Counter>,
    /// 1 for the Redis topology and role seen at the last scrape.
    pub store_redis_role: Family<RedisRoleLabels, Gauge>,
    /// Redis primaries replaced since start (Sentinel named another one).
    pub store_redis_failovers: Counter,
    /// Redis connections regained after a loss since start.
    pub store_redis_reconnects: Counter,
    /// When the last of them happened, Unix seconds (0: never).
    pub store_redis_last_reconnect: Gauge,
}

/// `{mode, role}` of the Redis store: `primary`/`sentinel`/`cluster`, and
/// `master`, `slave`, a cluster's `ok`/`fail`, or `unknown`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedisRoleLabels {
    /// How Redis is reached.
    pub mode: &'static str,
    /// What the node written to says it is.
    pub role: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … 8 s.
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0,
    ])
}

impl Metrics {
    /// A registry with every metric, for this instance.
    pub fn new(instance: &str) -> Self {
        let mut registry = Registry::with_prefix("wxgate");
        let info = Family::<InstanceLabels, Gauge>::default();
        info.get_or_create(&InstanceLabels {
            instance: instance.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        })
        .set(1);
        registry.register("instance", "This instance (always 1)", info);
        let metrics = Self {
            upstream_calls: Family::default(),
            refreshes: Family::default(),
            pushes: Family::default(),
            dedupe_hits: Family::default(),
            pushes_previous_key: Family::default(),
            webhook_seconds: Family::new_with_constructor(latency_histogram),
            http_seconds: Family::new_with_constructor(latency_histogram),
            expires_in: Family::default(),
            lease_held: Family::default(),
            fetches_today: Family::default(),
            ready: Gauge::default(),
            store_write_failures: Counter::default(),
            spool_bytes: Gauge::default(),
            connections_evicted: Counter::default(),
            connections_refused: Counter::default(),
            connections_header_timeouts: Counter::default(),
            credential_checks_refused: Family::default(),
            probe_rejections: Family::default(),
            pushes_refused_source: Family::default(),
            push_source_ranges: Family::default(),
            config_reloads: Family::default(),
            config: Family::default(),
            signin_exchanges: Family::default(),
            store_redis_role: Family::default(),
            store_redis_failovers: Counter::default(),
            store_redis_reconnects: Counter::default(),
            store_redis_last_reconnect: Gauge::default(),
            registry: Registry::default(),
        };
        let Self {
            upstream_calls,
            refreshes,
            pushes,
            dedupe_hits,
            pushes_previous_key,
            webhook_seconds,
            http_seconds,
            expires_in,
            lease_held,
            fetches_today,
            ready,
            store_write_failures,
            spool_bytes,
            connections_evicted,
            connections_refused,
            connections_header_timeouts,
            credential_checks_refused,
            probe_rejections,
            pushes_refused_source,
            push_source_ranges,
            config_reloads,
            config,
            signin_exchanges,
            store_redis_role,
            store_redis_failovers,
            store_redis_reconnects,
            store_redis_last_reconnect,
            ..
        } = &metrics;
        registry.register(
            "signin_exchanges",
            "Sign-in code exchanges by app, exchange and result (cached: answered without a call to WeChat)",
            signin_exchanges.clone(),
        );
        registry.register(
            "store_redis_role",
            "1 for the Redis store's mode (primary, sentinel, cluster) and the role its node reports (master; a cluster's state)",
            store_redis_role.clone(),
        );
        registry.register(
            "store_redis_failovers",
            "Redis primaries replaced since start (Sentinel named another one)",
            store_redis_failovers.clone(),
        );
        registry.register(
            "store_redis_reconnects",
            "Redis connections regained after a loss since start",
            store_redis_reconnects.clone(),
        );
        registry.register(
            "store_redis_last_reconnect_timestamp_seconds",
            "When the Redis connection was last regained, Unix seconds (0: never)",
            store_redis_last_reconnect.clone(),
        );
        registry.register(
            "upstream_calls",
            "Calls to WeChat by endpoint and errcode",
            upstream_calls.clone(),
        );
        registry.register(
            "refreshes",
            "Credential fetches by result",
            refreshes.clone(),
        );
        registry.register(
            "pushes",
            "Pushes by app, message type and outcome",
            pushes.clone(),
        );
        registry.register(
            "dedupe_hits",
            "WeChat retries answered from the first delivery",
            dedupe_hits.clone(),
        );
        registry.register(
            "pushes_previous_key",
            "Pushes opened with token_previous or encoding_aes_key_previous (a rotation under way): remove them once this stops growing",
            pushes_previous_key.clone(),
        );
        registry.register(
            "webhook_duration_seconds",
            "Webhook answer time",
            webhook_seconds.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration by route",
            http_seconds.clone(),
        );
        registry.register(
            "credential_expires_in_seconds",
            "Seconds until the credential in memory expires",
            expires_in.clone(),
        );
        registry.register(
            "refresh_lease_held",
            "1 while this instance holds the refresh lease",
            lease_held.clone(),
        );
        registry.register(
            "fetches_today",
            "Fetches by this instance since 00:00 Beijing time",
            fetches_today.clone(),
        );
        registry.register("ready", "1 when /readyz answers 200", ready.clone());
        registry.register(
            "store_write_failures",
            "Writes the store refused; credentials then live in memory only",
            store_write_failures.clone(),
        );
        registry.register(
            "proxy_spool_bytes",
            "Bytes of proxied request bodies in temporary files now (bounded by proxy.max_spool_bytes)",
            spool_bytes.clone(),
        );
        registry.register(
            "connections_evicted",
            "Idle connections, or ones whose request body stalled, closed to make room (server.max_connections)",
            connections_evicted.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because every connection was busy",
            connections_refused.clone(),
        );
        registry.register(
            "connections_header_timeouts",
            "Connections closed because a request's headers did not arrive in full within server.header_read_timeout_ms (slow or half-sent requests)",
            connections_header_timeouts.clone(),
        );
        registry.register(
            "credential_checks_refused",
            "Credential checks refused because the peer failed too often (429 / 45011)",
            credential_checks_refused.clone(),
        );
        registry.register(
            "probe_rejections",
            "Current access tokens WeChat rejected when probed: another program fetched or force-refreshed one",
            probe_rejections.clone(),
        );
        registry.register(
            "pushes_refused_source",
            "Pushes and ownership or URL checks refused (403) for coming from outside WeChat's callback IP ranges (server.trusted_push_sources)",
            pushes_refused_source.clone(),
        );
        registry.register(
            "push_source_ranges",
            "WeChat's callback IP ranges known per API host; 0 while unknown (pushes are then let through)",
            push_source_ranges.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP, POST /admin/reload, wxgate reload) by result: applied, or refused (nothing changed)",
            config_reloads.clone(),
        );
        registry.register(
            "config_info",
            "The configuration this instance runs (1, labelled with its fingerprint): instances with different fingerprints run different files",
            config.clone(),
        );
        for result in ["applied", "refused"] {
            config_reloads
                .get_or_create(&ReloadLabels { result })
                .inc_by(0);
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// Records the configuration now running (its fingerprint).
    pub fn config_running(&self, fingerprint: &str) {
        self.config.clear();
        let labels = ConfigLabels {
            fingerprint: fingerprint.to_owned(),
        };
        self.config.get_or_create(&labels).set(1);
    }

    /// Counts a reload: `applied` or `refused`.
    pub fn config_reloaded(&self, result: &'static str) {
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// Counts a call to WeChat.
    pub fn upstream_call(&self, endpoint: &str, errcode: impl ToString) {
        self.upstream_calls
            .get_or_create(&UpstreamLabels {
                endpoint: endpoint.to_owned(),
                errcode: errcode.to_string(),
            })
            .inc();
    }

    /// Creates the zero-valued series that alerts and dashboards read, so
    /// that they exist from the first scrape rather than from the first
    /// event: the refused credential checks of each kind, and per owner its
    /// probe rejections, (for owners that take pushes) dedupe hits and (for
    /// those with a previous token or key, `rotating`) pushes opened with it.
    pub fn start_at_zero<'a>(
        &self,
        owners: impl IntoIterator<Item = &'a str>,
        inboxes: impl IntoIterator<Item = &'a str>,
        rotating: impl IntoIterator<Item = &'a str>,
    ) {
        for check in ["admin_key", "client_key", "app_secret", "access_token"] {
            self.credential_checks_refused
                .get_or_create(&CheckLabels { check })
                .inc_by(0);
        }
        for appid in owners {
            self.probe_rejections
                .get_or_create(&AppLabels {
                    appid: appid.to_owned(),
                })
                .inc_by(0);
        }
        for appid in inboxes {
            self.dedupe_hits
                .get_or_create(&AppLabels {
                    appid: appid.to_owned(),
                })
                .inc_by(0);
        }
        for appid in rotating {
            self.pushes_previous_key
                .get_or_create(&AppLabels {
                    appid: appid.to_owned(),
                })
                .inc_by(0);
        }
    }

    /// With `server.trusted_push_sources = "wechat"`: the refused-source
    /// counter of every inbox and the known ranges of both hosts, at zero.
    pub fn start_source_check_at_zero<'a>(&self, inboxes: impl IntoIterator<Item = &'a str>) {
        for appid in inboxes {
            self.pushes_refused_source
                .get_or_create(&AppLabels {
                    appid: appid.to_owned(),
                })
                .inc_by(0);
        }
        for api in ["wechat", "wecom"] {
            self.push_source_ranges(api, 0);
        }
    }

    /// Sets how many callback IP ranges of `api` are known.
    pub fn push_source_ranges(&self, api: &'static str, ranges: usize) {
        self.push_source_ranges
            .get_or_create(&ApiLabels { api })
            .set(i64::try_from(ranges).unwrap_or(i64::MAX));
    }

    /// Shows the Redis store's topology, read at scrape time (`now`: Unix seconds).
    pub fn store_topology(&self, topology: &crate::store::StoreTopology, now: u64) {
        self.store_redis_role.clear();
        self.store_redis_role
            .get_or_create(&RedisRoleLabels {
                mode: topology.mode,
                role: topology.role.clone().unwrap_or_else(|| "unknown".into()),
            })
            .set(1);
        for (counter, seen) in [
            (&self.store_redis_failovers, topology.failovers),
            (&self.store_redis_reconnects, topology.reconnects),
        ] {
            counter.inc_by(seen.saturating_sub(counter.get()));
        }
        let last = topology
            .last_reconnect_secs_ago
            .map_or(0, |ago| now.saturating_sub(ago));
        self.store_redis_last_reconnect
            .set(i64::try_from(last).unwrap_or(i64::MAX));
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
