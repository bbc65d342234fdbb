//! The gateway in front of the simulator, in-process, for tests: each test
//! starts its own simulator and gateway on free loopback ports, with one
//! manual clock driving both, and can add more instances on the same store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wxgate_gateway::clock::{Clock, ManualClock};
use wxgate_gateway::reload::ConfigSource;
use wxgate_gateway::store::Store;
use wxgate_gateway::token::center::Policy;
use wxgate_gateway::token::TokenCenter;
use wxgate_gateway::Gateway;
use wxgate_sim::{AppKind, RunningSim, SimApp, SimConfig, Simulator, VirtualClock};

/// The test app.
pub const APPID: &str = "wx0123456789abcdef";
/// Its AppSecret.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// The client key of the `shop` client, scoped to [`APPID`].
pub const CLIENT_KEY: &str = "shop-client-key-0001";
/// Where both clocks start: 2024-01-01 04:00:00 Beijing time, far from midnight.
pub const T0: u64 = 1_704_052_800;

/// How to set up a test.
pub struct Setup {
    /// `classic` or `stable`.
    pub token_api: &'static str,
    /// The simulator's configuration.
    pub sim: SimConfig,
    /// The `[store]` table's lines.
    pub store: String,
    /// Lines added to the app's `[[apps]]` table (token, mode, rules…).
    pub app_toml: String,
    /// Lines added to `[server]`.
    pub server_toml: String,
    /// Tables added at the end (`[proxy]`…).
    pub extra_toml: String,
    /// Wraps the configured store before the gateway gets it.
    pub wrap_store: Option<StoreWrapper>,
    /// Faults the simulator holds before the gateway starts (its warm-up meets them).
    pub faults: Vec<wxgate_sim::Fault>,
    /// The app's `type` and JS domains (a Mini Program has none).
    pub app_kind: &'static str,
    /// The test client's `apps` scope beyond the app (WeCom apps as `corpid/name`).
    pub client_scope: Vec<String>,
    /// More `[[apps]]` entries beside [`APPID`] (see [`Setup::other_app`]).
    pub other_apps: Vec<SimApp>,
    /// `[upstream] probe_interval_secs`: 0 (off) unless a test probes, so
    /// other tests count only their own calls.
    pub probe_interval_secs: u64,
    /// Where both clocks start ([`T0`] unless [`Setup::starting_at`]).
    pub start: u64,
    /// The file the configuration is written to and reloads read it from
    /// (see [`Setup::config_file`]).
    pub config_file: Option<std::path::PathBuf>,
}

/// See [`Setup::wrap_store`].
pub type StoreWrapper = Arc<dyn Fn(Arc<dyn Store>) -> Arc<dyn Store> + Send + Sync>;

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

impl Setup {
    /// One classic-token app, a memory store, no pushes.
    pub fn new() -> Self {
        Self {
            token_api: "classic",
            sim: SimConfig::with_apps(vec![SimApp::new(APPID, SECRET)]),
            store: "backend = \"memory\"".into(),
            app_toml: String::new(),
            server_toml: String::new(),
            extra_toml: String::new(),
            wrap_store: None,
            faults: Vec::new(),
            app_kind: "type = \"official\"\njs_domains = [\"example.com\"]",
            client_scope: Vec::new(),
            other_apps: Vec::new(),
            probe_interval_secs: 0,
            start: T0,
            config_file: None,
        }
    }

    /// Both clocks start at `now` instead of [`T0`] (a published vector's time).
    pub fn starting_at(mut self, now: u64) -> Self {
        self.start = now;
        self
    }

    /// A `[[wecom]]` app: the simulator knows it (corp `corpid`, agent
    /// `agent`, `secret`), the gateway is configured with it, and the test
    /// client may use it as `corpid/agent`.
    pub fn wecom(mut self, corpid: &str, agent: &str, secret: &str) -> Self {
        self.sim
            .corps
            .push(wxgate_sim::SimCorpApp::new(corpid, agent, secret));
        let id = match agent.parse::<u64>() {
            Ok(agentid) => format!("agentid = {agentid}"),
            Err(_) => format!("name = \"{agent}\""),
        };
        self.extra_toml.push_str(&format!(
            "[[wecom]]\ncorpid = \"{corpid}\"\n{id}\nsecret = \"{secret}\"\njs_domains = [\"example.com\"]\n"
        ));
        self.client_scope.push(format!("{corpid}/{agent}"));
        self
    }

    /// Another Official Account or Mini Program beside [`APPID`]: the
    /// simulator knows it, the gateway has an `[[apps]]` entry for it (the
    /// same `token_api` and `refresh_ahead_secs` as the app, no JS domains,
    /// no pushes), and the test client may use it.
    pub fn other_app(mut self, appid: &str, secret: &str, kind: AppKind) -> Self {
        let app = SimApp {
            kind,
            ..SimApp::new(appid, secret)
        };
        self.sim.apps.push(app.clone());
        self.other_apps.push(app);
        self.client_scope.push(appid.to_owned());
        self
    }

    /// The app is a Mini Program (no JS domains).
    pub fn miniprogram(mut self) -> Self {
        self.app_kind = "type = \"miniprogram\"";
        self
    }

    /// Probes every current access token every `secs` seconds.
    pub fn probe(mut self, secs: u64) -> Self {
        self.probe_interval_secs = secs;
        self
    }

    /// A fault the simulator holds from the start, before the gateway's
    /// warm-up (faults added later come after it).
    pub fn fault(mut self, fault: wxgate_sim::Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Puts `wrap` between the gateway and its configured store (e.g. a
    /// [`crate::store::WriteSwitch`]).
    pub fn wrap_store(
        mut self,
        wrap: impl Fn(Arc<dyn Store>) -> Arc<dyn Store> + Send + Sync + 'static,
    ) -> Self {
        self.wrap_store = Some(Arc::new(wrap));
        self
    }

    /// Opens `/admin` and the admin-only endpoints with `key`.
    pub fn admin(self, key: &str) -> Self {
        self.extra(&format!("[admin]\nkey = \"{key}\""))
    }

    /// Adds top-level TOML (e.g. a `[proxy]` table) after the rest.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra_toml.push_str(toml);
        self.extra_toml.push('\n');
        self
    }

    /// The app uses stable_token.
    pub fn stable(mut self) -> Self {
        self.token_api = "stable";
        self
    }

    /// A Redis store at `url` (key prefix `test:`).
    pub fn redis(mut self, url: &str) -> Self {
        self.store = format!("backend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"test:\"");
        self
    }

    /// A SQLite store at `path`.
    pub fn sqlite(mut self, path: &std::path::Path) -> Self {
        self.store = format!(
            "backend = \"sqlite\"\npath = {:?}",
            path.display().to_string()
        );
        self
    }

    /// Adds lines to the app's `[[apps]]` table.
    pub fn app(mut self, toml: &str) -> Self {
        self.app_toml.push_str(toml);
        self.app_toml.push('\n');
        self
    }

    /// Adds lines to `[server]`.
    pub fn server(mut self, toml: &str) -> Self {
        self.server_toml.push_str(toml);
        self.server_toml.push('\n');
        self
    }

    /// Writes the configuration to `path` when the gateway starts, and
    /// makes reloads (`POST /admin/reload`) read it from there.
    pub fn config_file(mut self, path: &std::path::Path) -> Self {
        self.config_file = Some(path.to_owned());
        self
    }

    /// Adjusts the simulator's configuration.
    pub fn sim(mut self, tweak: impl FnOnce(&mut SimConfig)) -> Self {
        tweak(&mut self.sim);
        self
    }

    /// Starts the simulator and one gateway.
    pub async fn start(self) -> Env {
        let sim = Simulator::with_clock(self.sim.clone(), VirtualClock::manual(self.start))
            .spawn_on("127.0.0.1:0")
            .await
            .unwrap();
        for fault in &self.faults {
            sim.add_fault(fault.clone());
        }
        let clock = Arc::new(ManualClock::new(self.start));
        let mut env = Env {
            sim,
            clock,
            setup: self,
            http: reqwest::Client::new(),
            url: String::new(),
            center: None,
            stop: None,
            others: Vec::new(),
        };
        env.start_gateway().await;
        env
    }
}

/// A running simulator and gateway.
pub struct Env {
    /// The simulator.
    pub sim: RunningSim,
    /// The gateway's clock (the simulator has its own, moved together by [`Env::advance`]).
    pub clock: Arc<ManualClock>,
    setup: Setup,
    /// A client for the test's requests.
    pub http: reqwest::Client,
    /// The gateway's base URL.
    pub url: String,
    center: Option<TokenCenter>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// More instances on the same configuration (and store), for multi-instance tests.
    pub others: Vec<Instance>,
}

/// One more gateway instance.
pub struct Instance {
    /// Base URL.
    pub url: String,
    /// Its token center.
    pub center: TokenCenter,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Env {
    /// The configuration every instance runs with.
    pub fn toml(&self) -> String {
        let key_sha256 = hex::encode(Sha256::digest(CLIENT_KEY.as_bytes()));
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
{server}
[store]
{store}
[upstream]
base_url = "{sim}"
wecom_base_url = "{sim}"
timeout_ms = 1000
probe_interval_secs = {probe}
[[apps]]
appid = "{APPID}"
secret_env = "WX_SECRET"
token_api = "{api}"
refresh_ahead_secs = 600
{kind}
{app}
{others}
[[clients]]
name = "shop"
key_sha256 = "{key_sha256}"
apps = ["{APPID}"{scope}]
{extra}
"#,
            store = self.setup.store,
            sim = self.sim.url(),
            api = self.setup.token_api,
            server = self.setup.server_toml,
            app = self.setup.app_toml,
            kind = self.setup.app_kind,
            others = self
                .setup
                .other_apps
                .iter()
                .map(|a| {
                    let kind = match a.kind {
                        AppKind::Official => "official",
                        AppKind::Miniprogram => "miniprogram",
                    };
                    format!(
                        "[[apps]]\nappid = \"{}\"\nsecret = \"{}\"\ntoken_api = \"{}\"\n\
                         refresh_ahead_secs = 600\ntype = \"{kind}\"\n",
                        a.appid, a.secret, self.setup.token_api
                    )
                })
                .collect::<String>(),
            scope = self
                .setup
                .client_scope
                .iter()
                .map(|s| format!(", \"{s}\""))
                .collect::<String>(),
            extra = self.setup.extra_toml,
            probe = self.setup.probe_interval_secs,
        )
    }

    /// (Re)starts the gateway on the same simulator, store settings and clock.
    pub async fn start_gateway(&mut self) {
        self.stop_gateway();
        let (url, center, stop) = self.spawn_instance().await;
        (self.url, self.center, self.stop) = (url, Some(center), Some(stop));
        // The warm-up's first attempts are over before the test goes on.
        self.settle().await;
    }

    /// Starts one more instance on the same configuration.
    pub async fn add_instance(&mut self) {
        let (url, center, stop) = self.spawn_instance().await;
        self.others.push(Instance {
            url,
            center,
            _stop: stop,
        });
    }

    /// The base URLs of every running instance, the first one first.
    pub fn urls(&self) -> Vec<String> {
        std::iter::once(self.url.clone())
            .chain(self.others.iter().map(|i| i.url.clone()))
            .collect()
    }

    /// Starts one more instance on a configuration of its own (`toml`, on
    /// the same store and simulator), read from `file` by its reloads.
    pub async fn add_instance_with(&mut self, toml: &str, file: &std::path::Path) {
        std::fs::write(file, toml).unwrap();
        let (url, center, stop) = self.spawn_with(toml, Some(file)).await;
        self.others.push(Instance {
            url,
            center,
            _stop: stop,
        });
    }

    /// The environment every instance reads its configuration with.
    pub fn config_env() -> BTreeMap<String, String> {
        BTreeMap::from([("WX_SECRET".to_owned(), SECRET.to_owned())])
    }

    async fn spawn_instance(&self) -> (String, TokenCenter, tokio::sync::oneshot::Sender<()>) {
        let toml = self.toml();
        let file = self.setup.config_file.as_deref();
        if let Some(file) = file {
            std::fs::write(file, &toml).unwrap();
        }
        self.spawn_with(&toml, file).await
    }

    async fn spawn_with(
        &self,
        toml: &str,
        file: Option<&std::path::Path>,
    ) -> (String, TokenCenter, tokio::sync::oneshot::Sender<()>) {
        crate::logs::capture();
        let env = Self::config_env();
        let config = wxgate_gateway::config::load(toml, &env).unwrap();
        let mut store = wxgate_gateway::open_store(&config.store).await.unwrap();
        if let Some(wrap) = &self.setup.wrap_store {
            store = wrap(store);
        }
        let mut gateway =
            Gateway::with_store(config, store, self.clock.clone(), Policy::without_jitter());
        if let Some(file) = file {
            gateway = gateway.reading_from(ConfigSource::with_env(file, env));
        }
        let center = gateway.center().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(gateway.serve(listener, async {
            let _ = stopped.await;
        }));
        (url, center, stop)
    }

    /// Stops the gateway (server and refreshers).
    pub fn stop_gateway(&mut self) {
        self.stop.take();
        self.center.take();
    }

    /// Its token center.
    pub fn center(&self) -> &TokenCenter {
        self.center.as_ref().expect("gateway running")
    }

    /// Moves both clocks forward, then waits until the refreshers have caught up.
    pub async fn advance(&self, secs: u64) {
        self.sim.clock().advance(secs);
        self.clock.advance(secs);
        self.settle().await;
    }

    /// Moves both clocks forward by `secs`, then waits until every task that
    /// moment woke (the probe, a refresher) is done with it: asleep on the
    /// clock again until a later time. What runs on the virtual clock is then
    /// known to have run, with no real sleep to hope it did.
    pub async fn step(&self, secs: u64) {
        let woken = self.clock.woken_by(self.clock.now() + secs);
        self.sim.clock().advance(secs);
        self.clock.advance(secs);
        crate::wait_until(
            Duration::from_secs(30),
            format!(
                "the {} tasks woken at {} asleep again",
                woken.len(),
                self.clock.now()
            ),
            async || self.clock.asleep_again(&woken),
        )
        .await;
        self.settle().await;
    }

    /// Waits until no credential is due for renewal at the current time.
    pub async fn settle(&self) {
        crate::wait_until(
            Duration::from_secs(30),
            "refreshers did not settle",
            async || {
                let now = self.clock.now();
                let centers =
                    std::iter::once(self.center()).chain(self.others.iter().map(|i| &i.center));
                !centers
                    .flat_map(|c| c.status())
                    .any(|s| s.next_refresh_at.is_some_and(|at| at <= now))
            },
        )
        .await;
    }

    /// GETs a client-API path with the client key: (status, JSON).
    pub async fn client_get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(CLIENT_KEY)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// GETs an admin path with the admin key `key`: (status, JSON).
    pub async fn admin_get(&self, path: &str, key: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// POSTs JSON to a client-API path with the client key: (status, JSON).
    pub async fn client_post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// GETs a gateway path without a client key and reads the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        self.fetch_json(format!("{}{path}", self.url)).await
    }

    /// GETs any URL and reads the JSON answer.
    async fn fetch_json(&self, url: String) -> Value {
        let response = self.http.get(url).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// The access token the gateway serves, failing the test otherwise.
    pub async fn access_token(&self) -> String {
        let (status, body) = self
            .client_get(&format!("/v1/apps/{APPID}/access_token"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Someone else fetches a classic token from the simulator with the app's
    /// secret (which invalidates wxgate's after the grace period); returns it.
    pub async fn fetch_outside(&self) -> String {
        let url = format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}",
            self.sim.url()
        );
        let answer = self.fetch_json(url).await;
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"))
            .to_owned()
    }

    /// Uses a token for a business call at the simulator: 0 or WeChat's errcode.
    pub async fn business_call(&self, token: &str) -> i64 {
        let url = format!(
            "{}/cgi-bin/get_api_domain_ip?access_token={token}",
            self.sim.url()
        );
        let answer = self.fetch_json(url).await;
        answer["errcode"].as_i64().unwrap_or(0)
    }

    /// Upstream calls to the token endpoint of the app's token API.
    pub fn token_calls(&self) -> u64 {
        let path = match self.setup.token_api {
            "classic" => "/cgi-bin/token",
            _ => "/cgi-bin/stable_token",
        };
        self.sim.stats().app(APPID).calls(path)
    }
}
