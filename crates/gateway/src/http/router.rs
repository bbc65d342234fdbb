//! Every route of the gateway, in one place.

use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;

use super::{
    admin, client_api, compat, facade, jssdk, observe, ops, platform, proxy, signin, wechat,
    AppState,
};

/// The gateway's routes.
pub fn router(state: AppState) -> Router {
    let max_body = state.server.max_body_bytes;
    // The proxy reads its body itself, up to proxy.max_request_bytes, spooling
    // large ones; so does the façade, which serves every WeChat API path not
    // routed here (see `facade`).
    let proxied = Router::new()
        .route("/proxy/{appid}/{*path}", any(proxy::forward))
        .fallback(facade::forward)
        .with_state(state.clone());
    // Every answer that can carry a token, a ticket, a signature or a session:
    // never stored by a browser or a proxy cache, errors included.
    let credentials = Router::new()
        // Client API for business servers (Authorization: Bearer <client key>).
        .route("/v1/apps/{appid}/jssdk/signature", post(jssdk::signature))
        // User sign-in (each code exchanged with WeChat once).
        .route(
            "/v1/apps/{appid}/oauth/authorize_url",
            get(signin::authorize_url),
        )
        .route(
            "/v1/apps/{appid}/oauth/exchange",
            post(signin::oauth_exchange),
        )
        .route(
            "/v1/apps/{appid}/oauth/refresh",
            post(signin::oauth_refresh),
        )
        .route(
            "/v1/apps/{appid}/oauth/userinfo",
            get(signin::oauth_userinfo),
        )
        .route(
            "/v1/apps/{appid}/jscode2session",
            post(signin::jscode2session),
        )
        .route("/v1/apps/{appid}/{kind}", get(client_api::get))
        .route("/v1/apps/{appid}/{kind}/refresh", post(client_api::refresh))
        .route("/v1/wecom/{corpid}/{agent}/{kind}", get(client_api::get))
        .route(
            "/v1/wecom/{corpid}/{agent}/jssdk/signature",
            post(jssdk::signature),
        )
        .route(
            "/v1/wecom/{corpid}/{agent}/{kind}/refresh",
            post(client_api::refresh),
        )
        // Open Platform platforms (client key).
        .route(
            "/v1/components/{component_appid}/component_access_token",
            get(platform::component_access_token),
        )
        .route(
            "/v1/components/{component_appid}/authorize_url",
            post(platform::authorize_url),
        )
        .route(
            "/v1/components/{component_appid}/authorizers",
            get(platform::authorizers).post(platform::authorized),
        )
        // WeChat-compatible endpoints, for SDKs that only change their base URL.
        // A wrong method gets WeChat's 43001/43002, never a bare 405.
        .route(
            "/cgi-bin/token",
            get(compat::token).fallback(compat::require_get),
        )
        .route(
            "/cgi-bin/stable_token",
            post(compat::stable_token).fallback(compat::require_post),
        )
        .route(
            "/cgi-bin/ticket/getticket",
            get(compat::ticket).fallback(compat::require_get),
        )
        // The Open Platform's (answered from the center: SDKs share wxgate's tokens).
        .route(
            "/cgi-bin/component/api_component_token",
            post(compat::component_token).fallback(compat::require_post),
        )
        .route(
            "/cgi-bin/component/api_authorizer_token",
            post(compat::authorizer_token).fallback(compat::require_post),
        )
        // WeCom's (qyapi.weixin.qq.com).
        .route(
            "/cgi-bin/gettoken",
            get(compat::wecom_token).fallback(compat::require_get),
        )
        .route(
            "/cgi-bin/get_jsapi_ticket",
            get(compat::wecom_jsapi_ticket).fallback(compat::require_get),
        )
        .route(
            "/cgi-bin/ticket/get",
            get(compat::wecom_agent_ticket).fallback(compat::require_get),
        )
        // The status page (admin key: Authorization: Bearer <key> or the login cookie).
        .route("/admin", get(admin::page))
        .route("/admin/login", post(admin::login))
        .route("/admin/status.json", get(admin::status_json))
        .route("/admin/live.html", get(admin::live_html))
        .route("/admin/reload", post(admin::reload))
        .route("/v1/audit", get(admin::audit))
        .route("/v1/apps/{appid}/access_token/revoke", post(admin::revoke))
        .route("/v1/apps/{appid}/rid/{rid}", get(admin::rid_json))
        .route("/v1/apps/{appid}/quota", get(admin::quota_json))
        .route(
            "/v1/apps/{appid}/clear_quota",
            post(admin::clear_quota_json),
        )
        .route("/admin/apps/{appid}/timeline.svg", get(admin::timeline_svg))
        .route("/admin/apps/{appid}/revoke", post(admin::revoke_form))
        .route("/admin/apps/{appid}/rid", get(admin::rid_page))
        .route("/admin/apps/{appid}/quota", get(admin::quota_page))
        .route(
            "/admin/apps/{appid}/clear_quota",
            post(admin::clear_quota_form),
        )
        .route("/admin/app.css", get(admin::app_css))
        .route("/admin/app.js", get(admin::app_js))
        .layer(axum::middleware::map_response(no_store));
    Router::new()
        // WeChat-facing: the URL configured in WeChat's console (`/` when there is one app).
        .route("/wx/{appid}", get(wechat::verify).post(wechat::receive))
        .route(
            "/wecom/{corpid}/{agent}",
            get(wechat::verify).post(wechat::receive),
        )
        .route("/", get(wechat::verify_root).post(wechat::receive_root))
        // Open Platform: a platform's pushes, and its authorizers' (`…/wx/$APPID$`).
        .route("/component/{component_appid}", post(platform::events))
        .route(
            "/component/{component_appid}/wx/{appid}",
            get(platform::authorizer_verify).post(platform::authorizer_receive),
        )
        .merge(credentials)
        // Operations.
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
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

/// `Cache-Control: no-store` on an answer.
async fn no_store(mut response: Response) -> Response {
    super::no_store(&mut response);
    response
}
