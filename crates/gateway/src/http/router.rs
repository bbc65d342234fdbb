//! Every route of the gateway, in one place.

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use axum::Router;

use super::{admin, client_api, compat, jssdk, observe, ops, proxy, wechat, AppState};

/// The gateway's routes.
pub fn router(state: AppState) -> Router {
    let max_body = state.server.max_body_bytes;
    // The proxy reads its body itself, up to proxy.max_request_bytes, spooling large ones.
    let proxied = Router::new()
        .route("/proxy/{appid}/{*path}", any(proxy::forward))
        .with_state(state.clone());
    Router::new()
        // WeChat-facing: the URL configured in WeChat's console (`/` when there is one app).
        .route("/wx/{appid}", get(wechat::verify).post(wechat::receive))
        .route("/", get(wechat::verify_root).post(wechat::receive_root))
        // Client API for business servers (Authorization: Bearer <client key>).
        .route("/v1/apps/{appid}/jssdk/signature", post(jssdk::signature))
        .route("/v1/apps/{appid}/{kind}", get(client_api::get))
        .route("/v1/apps/{appid}/{kind}/refresh", post(client_api::refresh))
        // WeChat-compatible endpoints, for SDKs that only change their base URL.
        .route("/cgi-bin/token", get(compat::token))
        .route("/cgi-bin/stable_token", post(compat::stable_token))
        .route("/cgi-bin/ticket/getticket", get(compat::ticket))
        // Operations.
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        // The status page (admin key: Authorization: Bearer <key> or the login cookie).
        .route("/admin", get(admin::page))
        .route("/admin/login", post(admin::login))
        .route("/admin/status.json", get(admin::status_json))
        .route("/v1/audit", get(admin::audit))
        .route("/admin/app.css", get(admin::app_css))
        .route("/admin/app.js", get(admin::app_js))
        .route("/metrics", get(ops::metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state.clone())
        .merge(proxied)
        // Outermost: request ids, durations, failure logs for every route.
        .layer(axum::middleware::from_fn_with_state(
            state,
            observe::observe,
        ))
}
