//! The hottest routes, answered straight off the connection without the
//! axum router: what WeChat and WeCom send (`/wx/{appid}`,
//! `/wecom/{corpid}/{agent}`, `/`) and the client API's credential reads
//! (`GET /v1/apps/{appid}/{kind}`, `GET /v1/wecom/{corpid}/{agent}/{kind}`).
//! Every other request goes to the [router](super::router).
//!
//! Matching a path is a few comparisons here, where the router's
//! extractors and middleware cost more than the work itself
//! (`bench/RESULTS.md`). What each route does is the same handler either
//! way ([`wechat::verify_at`], [`wechat::receive_at`],
//! [`client_api::get_at`]), and so is what wraps it (see [`observe`]): the
//! 431 for oversized headers, the request id, the duration by route in the
//! metrics, the failure log line, and `Cache-Control: no-store` on
//! credentials. A path these routes would need to percent-decode, a method
//! other than theirs, or a kind the client API does not serve goes to the
//! router, which answers it as before.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prometheus_client::metrics::histogram::Histogram;
use tower_service::Service;

use super::client_api::{self, Client};
use super::observe::{self, REQUEST_ID};
use super::owner::PathOwner;
use super::throttle::Peer;
use super::wechat::{self, PushSource};
use super::AppState;
use crate::logs;
use crate::metrics::RouteLabels;
use crate::store::Kind;

/// Answers every request: the routes of this module here, the rest through `router`.
#[derive(Debug)]
pub struct Front {
    state: AppState,
    router: Router,
    /// The duration histograms of the direct routes' successes, by [`Route::slot`].
    timers: [OnceLock<Histogram>; SLOTS],
}

impl Front {
    /// The front of `state`'s gateway, with `router` for the other routes.
    pub fn new(state: AppState, router: Router) -> Self {
        Self {
            state,
            router,
            timers: Default::default(),
        }
    }

    /// The answer to `route`, wrapped as the router's `observe` wraps its
    /// routes' (431, request id, duration metric, failure log line).
    async fn direct(
        &self,
        route: Route<'_>,
        parts: &Parts,
        body: Body,
        peer: SocketAddr,
    ) -> Response {
        let started = tokio::time::Instant::now();
        if let Some(refused) = observe::headers_too_large(&parts.headers) {
            return refused;
        }
        let id = observe::request_id(&parts.headers);
        let method = &parts.method;
        let (label, slot) = (route.label(), route.slot(method));
        // As the router's `observe`: every line logged while answering carries
        // the id. The answer's future is built straight into the task-local's,
        // never held beside it: a future held across an await is part of this
        // one's state, which hyper moves several times per request.
        let mut response = logs::in_request(id, self.route(route, parts, body, peer)).await;
        let elapsed = started.elapsed();
        let status = response.status();
        self.timer(slot, label, method, status)
            .observe(elapsed.as_secs_f64());
        if status.is_server_error() || tracing::enabled!(tracing::Level::DEBUG) {
            logs::with_request(id, || observe::log_answer(method, label, status, elapsed));
        }
        let id = observe::id_header(&id);
        response.headers_mut().insert(REQUEST_ID.clone(), id);
        response
    }

    /// What `route` answers to the request of `parts` and `body`, before the
    /// wrapping [`Front::direct`] adds.
    async fn route(
        &self,
        route: Route<'_>,
        parts: &Parts,
        body: Body,
        peer: SocketAddr,
    ) -> Response {
        let state = &self.state;
        let method_is_get = parts.method == Method::GET;
        match route {
            Route::Push(at) => {
                let owner = match at {
                    PushAt::App(appid) => Ok(PathOwner::app(state, appid, None)),
                    PushAt::WeCom(corpid, agent) => Ok(PathOwner::wecom(state, corpid, agent)),
                    PushAt::Root => wechat::single_app(state),
                };
                let source = PushSource::of(state, Some(peer), &parts.headers);
                let query = parts.uri.query().unwrap_or_default();
                let answer = match (owner, method_is_get) {
                    (Err(e), _) => Err(e),
                    (Ok(owner), true) => wechat::verify_at(state, source, &owner, query),
                    // Boxed, as the other awaits below: their state machines
                    // are kilobytes, and an unboxed one makes every answer's
                    // future that size, copied whole at each move (hyper
                    // moves it three times before the first poll).
                    (Ok(owner), false) => {
                        Box::pin(wechat::receive_at(state, source, &owner, query, body)).await
                    }
                };
                answer.unwrap_or_else(IntoResponse::into_response)
            }
            Route::Credential(at, kind) => {
                let trusted = &state.server.trusted_proxies;
                let peer = Peer::at(Some(peer), &parts.headers, trusted);
                let answer = match Client::authenticate(state, &parts.headers, peer) {
                    Err(e) => Err(e),
                    Ok(client) => {
                        let owner = match at {
                            CredentialAt::App(appid) => PathOwner::app(state, appid, None),
                            CredentialAt::WeCom(corpid, agent) => {
                                PathOwner::wecom(state, corpid, agent)
                            }
                        };
                        Box::pin(client_api::get_at(state, &client, &owner, kind)).await
                    }
                };
                let mut response = answer.into_response();
                super::no_store(&mut response);
                response
            }
        }
    }

    /// The duration histogram of `label`'s answers with `status`; a
    /// success's is looked up once.
    fn timer(
        &self,
        slot: usize,
        label: &'static str,
        method: &Method,
        status: StatusCode,
    ) -> Histogram {
        let make = || {
            let labels = RouteLabels {
                route: label,
                method: observe::method_label(method),
                status: observe::status_label(status),
            };
            self.state
                .metrics
                .http_seconds
                .get_or_create(&labels)
                .clone()
        };
        if status == StatusCode::OK {
            self.timers[slot].get_or_init(make).clone()
        } else {
            make()
        }
    }
}

impl crate::connections::Answer for Front {
    async fn answer(&self, request: Request<Body>, peer: SocketAddr) -> Response {
        // Taken apart, so the route borrows the path while the body moves on.
        let (parts, body) = request.into_parts();
        if let Some(route) = Route::of(&parts.method, parts.uri.path()) {
            return self.direct(route, &parts, body, peer).await;
        }
        let mut request = Request::from_parts(parts, body);
        request.extensions_mut().insert(ConnectInfo(peer));
        match Box::pin(self.router.clone().call(request)).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// A route answered here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    /// `GET` (ownership check) or `POST` (push), at the owner's URL.
    Push(PushAt<'a>),
    /// `GET` a credential of the owner: `kind` is one the client API serves.
    Credential(CredentialAt<'a>, Kind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushAt<'a> {
    /// `/wx/{appid}` (and `POST`'s GET twin).
    App(&'a str),
    /// `/wecom/{corpid}/{agent}`.
    WeCom(&'a str, &'a str),
    /// `/`, with exactly one app.
    Root,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CredentialAt<'a> {
    /// `/v1/apps/{appid}/{kind}`.
    App(&'a str),
    /// `/v1/wecom/{corpid}/{agent}/{kind}`.
    WeCom(&'a str, &'a str),
}

/// Routes × methods with a cached timer: [`Route::slot`].
const SLOTS: usize = 8;

impl<'a> Route<'a> {
    /// The route `method` and `path` take, if it is one of this module's.
    fn of(method: &Method, path: &'a str) -> Option<Self> {
        let get = *method == Method::GET;
        if !get && *method != Method::POST {
            return None;
        }
        if path == "/" {
            return Some(Route::Push(PushAt::Root));
        }
        let (segments, count) = segments(path.strip_prefix('/')?)?;
        // A kind the client API does not serve: the router's error.
        let served = |kind: &str| kind.parse::<Kind>().ok().filter(|k| k.is_served());
        Some(match segments[..count] {
            ["wx", appid] => Route::Push(PushAt::App(appid)),
            ["wecom", corpid, agent] => Route::Push(PushAt::WeCom(corpid, agent)),
            ["v1", "apps", appid, kind] if get => {
                Route::Credential(CredentialAt::App(appid), served(kind)?)
            }
            ["v1", "wecom", corpid, agent, kind] if get => {
                Route::Credential(CredentialAt::WeCom(corpid, agent), served(kind)?)
            }
            _ => return None,
        })
    }

    /// The route's pattern, as the router's metrics name it.
    fn label(&self) -> &'static str {
        match self {
            Route::Push(PushAt::App(_)) => "/wx/{appid}",
            Route::Push(PushAt::WeCom(..)) => "/wecom/{corpid}/{agent}",
            Route::Push(PushAt::Root) => "/",
            Route::Credential(CredentialAt::App(_), _) => "/v1/apps/{appid}/{kind}",
            Route::Credential(CredentialAt::WeCom(..), _) => "/v1/wecom/{corpid}/{agent}/{kind}",
        }
    }

    /// Its index among the routes × methods with a cached timer.
    fn slot(&self, method: &Method) -> usize {
        let post = usize::from(*method == Method::POST);
        match self {
            Route::Push(PushAt::App(_)) => post,
            Route::Push(PushAt::WeCom(..)) => 2 + post,
            Route::Push(PushAt::Root) => 4 + post,
            Route::Credential(CredentialAt::App(_), _) => 6,
            Route::Credential(CredentialAt::WeCom(..), _) => 7,
        }
    }
}

/// A path's segments (after its first `/`), if there are at most five
/// (the longest route here), each taken as is: not empty, nothing to
/// percent-decode.
fn segments(path: &str) -> Option<([&str; 5], usize)> {
    if memchr::memchr(b'%', path.as_bytes()).is_some() {
        return None;
    }
    let mut segments = [""; 5];
    let mut count = 0;
    let mut rest = Some(path);
    while let Some(left) = rest {
        // `/` is ASCII: slicing at it keeps to char boundaries.
        let (segment, next) = match memchr::memchr(b'/', left.as_bytes()) {
            Some(i) => (&left[..i], Some(&left[i + 1..])),
            None => (left, None),
        };
        if count == segments.len() || segment.is_empty() {
            return None;
        }
        segments[count] = segment;
        count += 1;
        rest = next;
    }
    Some((segments, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_its_routes_exactly_and_leaves_the_rest_to_the_router() {
        let (get, post) = (&Method::GET, &Method::POST);
        assert_eq!(Route::of(get, "/"), Some(Route::Push(PushAt::Root)));
        assert_eq!(
            Route::of(post, "/wx/wx1"),
            Some(Route::Push(PushAt::App("wx1")))
        );
        assert_eq!(
            Route::of(get, "/wecom/ww1/app"),
            Some(Route::Push(PushAt::WeCom("ww1", "app")))
        );
        assert_eq!(
            Route::of(get, "/v1/apps/wx1/access_token"),
            Some(Route::Credential(
                CredentialAt::App("wx1"),
                Kind::AccessToken
            ))
        );
        assert_eq!(
            Route::of(get, "/v1/wecom/ww1/app/agent_config_ticket"),
            Some(Route::Credential(
                CredentialAt::WeCom("ww1", "app"),
                Kind::AgentConfigTicket
            ))
        );
        for (method, path) in [
            (&Method::HEAD, "/wx/wx1"),
            (&Method::PUT, "/wx/wx1"),
            (get, "/wx/wx1/"),
            (get, "/wx/"),
            (get, "/wx//"),
            (get, "/wx/wx%31"),
            (get, "/wx/wx1/x"),
            (get, "//wx/wx1"),
            (get, "/wecom/ww1"),
            (get, "/v1/apps/wx1/quota"),
            (get, "/v1/apps/wx1/nonsense"),
            (post, "/v1/apps/wx1/access_token"),
            (get, "/v1/apps/wx1/access_token/revoke"),
            (get, "/v1/wecom/ww1/app/x/access_token"),
            (get, "/healthz"),
            (get, ""),
        ] {
            assert_eq!(Route::of(method, path), None, "{method} {path}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_path_is_cut_where_it_splits_at_slashes(path in "[a-z%/é]{0,14}") {
            let split: Vec<&str> = path.split('/').collect();
            let expected = (!path.contains('%')
                && split.len() <= 5
                && split.iter().all(|s| !s.is_empty()))
            .then_some(split);
            let got = segments(&path).map(|(segments, count)| segments[..count].to_vec());
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn every_route_and_method_has_its_own_timer() {
        let (get, post) = (&Method::GET, &Method::POST);
        let slots = [
            Route::Push(PushAt::App("a")).slot(get),
            Route::Push(PushAt::App("a")).slot(post),
            Route::Push(PushAt::WeCom("c", "a")).slot(get),
            Route::Push(PushAt::WeCom("c", "a")).slot(post),
            Route::Push(PushAt::Root).slot(get),
            Route::Push(PushAt::Root).slot(post),
            Route::Credential(CredentialAt::App("a"), Kind::AccessToken).slot(get),
            Route::Credential(CredentialAt::WeCom("c", "a"), Kind::AccessToken).slot(get),
        ];
        let mut sorted = slots.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..SLOTS).collect::<Vec<_>>());
    }
}
