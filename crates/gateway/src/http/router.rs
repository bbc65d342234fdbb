//! Every route of the gateway, in one place.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use super::{client_api, compat, jssdk, ops, wechat, AppState};

/// The gateway's routes.
pub fn router(state: AppState) -> Router {
    let max_body = state.server.max_body_bytes;
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
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
