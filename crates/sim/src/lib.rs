//! A simulator of the WeChat Official Account platform, faithful enough that
//! code which works against it works against WeChat — and the one fake of
//! WeChat every wxgate test uses.
//!
//! It serves the token, ticket, IP-list, customer-service, temporary-media,
//! user-info, diagnostics (`rid/get`) and quota (`quota/get`, `clear_quota`,
//! `clear_quota/v2`) APIs with WeChat's semantics (a classic fetch supersedes
//! the previous token after a grace period, stable tokens repeat until the last
//! 300 s or until forced, daily quotas and ten clears a month, the IP
//! whitelist, media size limits and expiry, errcodes, HTTP 200 with 43001/43002
//! for a wrong method, every error's request kept seven days under its rid),
//! and a control API under `/sim/`: stats, fault injection, a virtual clock and
//! a push sender. Mini Programs ([`AppKind`]) share the Official Account's APIs
//! under their family's rules; WeCom apps ([`SimCorpApp`]) get `gettoken`, the
//! corp and agent tickets, `agent/get` and `message/send` with WeCom's
//! semantics; pushes can come as WeCom or a Mini Program ([`PushAs`]). Open
//! Platform platforms ([`SimComponent`]) get their verify ticket pushed every
//! 10 virtual minutes, the `/cgi-bin/component/…` APIs, authorizers whose
//! tokens work on the ordinary APIs, and an administrator (`/sim/authorize`)
//! and WeChat's release test (`/sim/release_check`) played for them. User
//! sign-in: web authorization codes (`POST /sim/oauth/authorize`) and
//! `wx.login` codes (`POST /sim/jscode`), single-use for 5 minutes, exchanged
//! at `/sns/oauth2/access_token` and `/sns/jscode2session`, with refresh,
//! `/sns/userinfo` and `/sns/auth`. It is
//! also a product feature: `wxgate sim`, `wxgate push` and `wxgate dev`.
//!
//! # Layout
//! - [`config`]: accounts and limits ([`SimConfig`], [`SimApp`]).
//! - [`clock`]: the virtual clock.
//! - `state`: WeChat's rules as methods taking the current time (no I/O).
//! - `rids`: the requests behind error answers, by rid.
//! - `api`, `wecom`, [`component`], `media`, `users`, `signin`, `diagnostics`, `control`: the
//!   HTTP handlers; [`component`] also pushes to the platforms and runs the release test;
//!   [`Simulator::router`] lists every route.
//! - [`faults`]: fault rules for `POST /sim/faults`.
//! - [`push`]: pushing to a server as WeChat does.
//! - [`stats`]: the counters of `GET /sim/stats`.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use wxgate_sim::{SimApp, SimConfig, Simulator};
//! let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new("wx1", "s")])).await?;
//! let url = format!("{}/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s", sim.url());
//! // … GET it, then:
//! sim.clock().advance(7200);
//! assert_eq!(sim.stats().app("wx1").tokens_issued, 1);
//! # Ok(()) }
//! ```

mod api;
pub mod clock;
pub mod component;
pub mod config;
mod control;
mod diagnostics;
mod error;
pub mod faults;
mod media;
pub mod push;
mod rids;
mod signin;
mod state;
pub mod stats;
mod users;
mod wecom;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

pub use clock::VirtualClock;
pub use component::ComponentPushRecord;
pub use config::{
    AppKind, Rotation, SimApp, SimComponent, SimConfig, SimCorpApp, WecomExpiry, WecomRepeat,
};
pub use error::WxError;
pub use faults::{Fault, FaultAction};
pub use push::{Family, PushAnswer, PushAs, PushOutcome, PushRequest, SimPush};
pub use state::CustomMessage;
pub use stats::{AppStats, ComponentStats, Stats};

/// A simulated WeChat platform. Cheap to clone: clones share one state.
#[derive(Clone, Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    clock: VirtualClock,
    /// std Mutex: never held across an await, and every section is a few map operations.
    state: Mutex<state::State>,
    faults: Mutex<faults::FaultPlan>,
    /// Client for `POST /sim/push`.
    http: reqwest::Client,
}

impl Simulator {
    /// A simulator whose clock starts at the current wall time.
    pub fn new(config: SimConfig) -> Self {
        Self::with_clock(config, VirtualClock::new())
    }

    /// A simulator with its own clock.
    pub fn with_clock(config: SimConfig, clock: VirtualClock) -> Self {
        let shared = Shared {
            clock,
            state: Mutex::new(state::State::new(config)),
            faults: Mutex::new(faults::FaultPlan::default()),
            http: push::client(),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Every route of the simulator.
    pub fn router(&self) -> Router {
        use state::path;
        let cgi = Router::new()
            .route(path::TOKEN, api::get_api(path::TOKEN, api::token))
            .route(
                path::STABLE_TOKEN,
                api::post_api(path::STABLE_TOKEN, api::stable_token),
            )
            .route(path::TICKET, api::get_api(path::TICKET, api::ticket))
            .route(
                path::CALLBACK_IP,
                api::get_api(path::CALLBACK_IP, api::callback_ip),
            )
            .route(
                path::API_DOMAIN_IP,
                api::get_api(path::API_DOMAIN_IP, api::api_domain_ip),
            )
            .route(
                path::PRIVACY_SETTING,
                api::post_api(path::PRIVACY_SETTING, api::privacy_setting),
            )
            .route(
                path::CUSTOM_SEND,
                api::post_api(path::CUSTOM_SEND, api::custom_send),
            )
            // Uploads are limited per media type while they are read, not by axum's 2 MB default.
            .route(
                path::MEDIA_UPLOAD,
                api::post_api(path::MEDIA_UPLOAD, media::upload).layer(DefaultBodyLimit::disable()),
            )
            .route(path::MEDIA_GET, api::get_api(path::MEDIA_GET, media::get))
            .route(path::USER_INFO, api::get_api(path::USER_INFO, users::info))
            .route(
                path::RID_GET,
                api::post_api(path::RID_GET, diagnostics::rid_get),
            )
            .route(
                path::QUOTA_GET,
                api::post_api(path::QUOTA_GET, diagnostics::quota_get),
            )
            .route(
                path::CLEAR_QUOTA,
                api::post_api(path::CLEAR_QUOTA, diagnostics::clear_quota),
            )
            .route(
                path::CLEAR_QUOTA_V2,
                api::post_api(path::CLEAR_QUOTA_V2, diagnostics::clear_quota_v2),
            )
            .route(
                path::GETTOKEN,
                api::get_api(path::GETTOKEN, wecom::gettoken),
            )
            .route(
                path::WECOM_JSAPI_TICKET,
                api::get_api(path::WECOM_JSAPI_TICKET, wecom::jsapi_ticket),
            )
            .route(
                path::WECOM_AGENT_TICKET,
                api::get_api(path::WECOM_AGENT_TICKET, wecom::agent_ticket),
            )
            .route(
                path::WECOM_AGENT_GET,
                api::get_api(path::WECOM_AGENT_GET, wecom::agent_get),
            )
            .route(
                path::WECOM_SEND,
                api::post_api(path::WECOM_SEND, wecom::send),
            )
            .route(
                path::COMPONENT_START_PUSH,
                api::post_api(path::COMPONENT_START_PUSH, component::start_push_ticket),
            )
            .route(
                path::COMPONENT_TOKEN,
                api::post_api(path::COMPONENT_TOKEN, component::component_token),
            )
            .route(
                path::COMPONENT_PREAUTHCODE,
                api::post_api(path::COMPONENT_PREAUTHCODE, component::create_preauthcode),
            )
            .route(
                path::COMPONENT_QUERY_AUTH,
                api::post_api(path::COMPONENT_QUERY_AUTH, component::query_auth),
            )
            .route(
                path::COMPONENT_AUTHORIZER_TOKEN,
                api::post_api(
                    path::COMPONENT_AUTHORIZER_TOKEN,
                    component::authorizer_token,
                ),
            )
            .route(
                path::COMPONENT_AUTHORIZER_LIST,
                api::post_api(path::COMPONENT_AUTHORIZER_LIST, component::authorizer_list),
            )
            .route(
                path::COMPONENT_AUTHORIZER_INFO,
                api::post_api(path::COMPONENT_AUTHORIZER_INFO, component::authorizer_info),
            )
            // User sign-in (families reference §4.d, §2).
            .route(
                path::OAUTH_ACCESS_TOKEN,
                api::get_api(path::OAUTH_ACCESS_TOKEN, signin::oauth_access_token),
            )
            .route(
                path::OAUTH_REFRESH_TOKEN,
                api::get_api(path::OAUTH_REFRESH_TOKEN, signin::refresh_token),
            )
            .route(
                path::SNS_USERINFO,
                api::get_api(path::SNS_USERINFO, signin::userinfo),
            )
            .route(path::SNS_AUTH, api::get_api(path::SNS_AUTH, signin::auth))
            .route(
                path::JSCODE2SESSION,
                api::get_api(path::JSCODE2SESSION, signin::jscode2session),
            )
            // Inside the faults: an injected fault's rid is recorded nowhere.
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                diagnostics::record_rids,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                api::inject_faults,
            ));
        let control = Router::new()
            .route("/sim/stats", get(control::stats))
            .route("/sim/messages", get(control::messages))
            .route(
                "/sim/faults",
                post(control::add_faults).delete(control::clear_faults),
            )
            .route(
                "/sim/clock",
                get(control::clock).post(control::advance_clock),
            )
            .route("/sim/whitelist", axum::routing::put(control::set_whitelist))
            .route(
                "/sim/wecom/{corpid}/{agent}/trusted_ips",
                axum::routing::put(control::set_trusted_ips),
            )
            .route(
                "/sim/wecom/{corpid}/{agent}/invalidate",
                post(control::invalidate_wecom_token),
            )
            .route("/sim/push", post(control::push))
            .route("/sim/authorize", post(component::control::authorize))
            .route("/sim/unauthorize", post(component::control::unauthorize))
            .route(
                "/sim/release_check",
                post(component::control::release_check),
            )
            .route("/sim/component/pushes", get(component::control::pushes))
            .route(
                "/sim/component/{appid}/ticket",
                get(component::control::ticket),
            )
            .route(
                "/sim/component/{appid}/rotation",
                axum::routing::put(component::control::set_rotation),
            )
            .route(
                "/sim/component/{appid}/whitelist",
                axum::routing::put(component::control::set_whitelist),
            )
            .route("/sim/oauth/authorize", post(signin::authorize))
            .route("/sim/jscode", post(signin::jscode))
            .route("/sim/media/{media_id}", get(media::video));
        cgi.merge(control)
            .fallback(api::not_simulated)
            .with_state(self.clone())
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        // The component_verify_ticket pushes run on the virtual clock while the server does.
        let platforms = self.state().component.has_platforms();
        let ticker = platforms.then(|| tokio::spawn(component::push::ticker(self.clone())));
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        served
    }

    /// Starts a simulator on a free loopback port, for tests and `wxgate dev`.
    /// It stops when the returned handle is dropped.
    pub async fn spawn(config: SimConfig) -> std::io::Result<RunningSim> {
        Self::new(config).spawn_on("127.0.0.1:0").await
    }

    /// Starts this simulator on `addr`; it stops when the returned handle is dropped.
    pub async fn spawn_on(self, addr: &str) -> std::io::Result<RunningSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sim = self.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = sim.serve(listener, shutdown).await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(RunningSim {
            sim: self,
            addr,
            _stop: stop,
        })
    }

    /// The virtual clock.
    pub fn clock(&self) -> &VirtualClock {
        &self.shared.clock
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.state().stats(self.clock().now())
    }

    /// Customer-service messages received, oldest first.
    pub fn messages(&self) -> Vec<CustomMessage> {
        self.state().messages()
    }

    /// Replaces the trusted IPs (企业可信IP) of the WeCom app `corpid/agent`;
    /// `None` lets every caller in.
    pub fn set_trusted_ips(
        &self,
        corpid: &str,
        agent: &str,
        list: Option<Vec<ipnet::IpNet>>,
    ) -> Result<(), String> {
        self.state()
            .wecom
            .set_trusted_ips(&format!("{corpid}/{agent}"), list)
    }

    /// Points the platform `component`'s pushes (tickets, authorization
    /// events) at `url` from now on, as its 授权事件接收URL saved in the
    /// console; its next ticket push is due at once. For a server started
    /// after the simulator.
    pub fn set_component_push_url(&self, component: &str, url: &str) -> Result<(), String> {
        let now = self.clock().now();
        let mut state = self.state();
        state
            .component
            .set_push_url(component, Some(url.to_owned()))?;
        state.component.push_ticket_now(component, now);
        Ok(())
    }

    /// Ends the live token of the WeCom app `corpid/agent` early, as WeCom may
    /// (families reference §1.1): it answers 40014 and the next `gettoken` mints a new one.
    pub fn invalidate_wecom_token(&self, corpid: &str, agent: &str) -> Result<(), String> {
        self.state().wecom.invalidate(&format!("{corpid}/{agent}"))
    }

    /// Adds a fault rule.
    pub fn add_fault(&self, fault: Fault) {
        self.faults().add(fault);
    }

    fn state(&self) -> MutexGuard<'_, state::State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, faults::FaultPlan> {
        self.shared.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn http(&self) -> &reqwest::Client {
        &self.shared.http
    }
}

/// A simulator serving on a loopback port; dropping it stops the server.
#[derive(Debug)]
pub struct RunningSim {
    sim: Simulator,
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl RunningSim {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL to give clients instead of
    /// `https://api.weixin.qq.com`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl std::ops::Deref for RunningSim {
    type Target = Simulator;

    fn deref(&self) -> &Simulator {
        &self.sim
    }
}
