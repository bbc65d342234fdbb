//! The WeChat-facing endpoints: `GET /wx/{appid}` (ownership check) and
//! `POST /wx/{appid}` (pushes), also at `/` when exactly one app is configured.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use wxgate_proto::{open_push, seal_reply, Push, PushQuery};

use super::{ApiError, AppState};
use crate::config::AppConfig;
use crate::token::TokenError;

#[derive(Deserialize)]
pub(crate) struct VerifyQuery {
    signature: String,
    timestamp: String,
    nonce: String,
    echostr: String,
}

/// The app and its server token, or why pushes cannot be taken for it.
fn app_with_token(state: &AppState, appid: &str) -> Result<(Arc<AppConfig>, String), ApiError> {
    let app = state
        .center
        .app(appid)
        .ok_or_else(|| TokenError::UnknownApp(appid.to_owned()))?
        .clone();
    let token = app
        .token
        .as_ref()
        .ok_or_else(|| ApiError::PushNotConfigured(appid.to_owned()))?
        .expose_secret()
        .to_owned();
    Ok((app, token))
}

/// `GET /wx/{appid}`: answers `echostr` when the signature matches (§1.2).
pub(crate) async fn verify(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    Query(q): Query<VerifyQuery>,
) -> Result<Response, ApiError> {
    let (_, token) = app_with_token(&state, &appid)?;
    wxgate_proto::verify_signature(&token, &q.timestamp, &q.nonce, &q.signature)
        .map_err(|_| ApiError::Push(wxgate_proto::EnvelopeError::Signature))?;
    tracing::debug!(appid, "server ownership check passed");
    Ok(([(header::CONTENT_TYPE, "text/plain")], q.echostr).into_response())
}

/// `POST /wx/{appid}`: checks, decrypts, dedupes and answers a push (§2, §3).
pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    Query(q): Query<PushQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let result = open(&state, &appid, &q, &body);
    let (app, token, push) = match result {
        Ok(opened) => opened,
        Err(e) => {
            state.dispatcher.count_rejected(&appid);
            tracing::warn!(appid, error = %e, "push refused");
            return Err(e);
        }
    };
    let answer = state.dispatcher.answer(app.clone(), push).await;
    let Some(reply) = answer else {
        return Ok((
            [(header::CONTENT_TYPE, "text/plain")],
            wxgate_proto::reply::SUCCESS,
        )
            .into_response());
    };
    let now = state.center.now().to_string();
    let sealed = seal_reply(
        &app.push_mode,
        &token,
        &reply,
        &now,
        &q.nonce,
        &rand::random(),
    );
    Ok(([(header::CONTENT_TYPE, "application/xml")], sealed).into_response())
}

fn open(
    state: &AppState,
    appid: &str,
    q: &PushQuery,
    body: &[u8],
) -> Result<(Arc<AppConfig>, String, Push), ApiError> {
    let (app, token) = app_with_token(state, appid)?;
    let sent: u64 = q.timestamp.parse().map_err(|_| ApiError::StaleTimestamp)?;
    if sent.abs_diff(state.center.now()) > state.server.timestamp_tolerance_secs {
        return Err(ApiError::StaleTimestamp);
    }
    let body =
        std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    let xml = open_push(&app.push_mode, &token, q, body)?;
    let push = Push::parse(&xml).map_err(|e| ApiError::BadRequest(format!("push: {e}")))?;
    Ok((app, token, push))
}

/// The one app, for the `/` mount.
fn single_app(state: &AppState) -> Result<String, ApiError> {
    let mut ids = state.center.appids();
    match (ids.next(), ids.next()) {
        (Some(only), None) => Ok(only.to_owned()),
        _ => Err(ApiError::BadRequest(
            "several apps are configured: use /wx/{appid}".into(),
        )),
    }
}

/// `GET /` with exactly one app.
pub(crate) async fn verify_root(
    state: State<AppState>,
    q: Query<VerifyQuery>,
) -> Result<Response, ApiError> {
    let appid = single_app(&state)?;
    verify(state, Path(appid), q).await
}

/// `POST /` with exactly one app.
pub(crate) async fn receive_root(
    state: State<AppState>,
    q: Query<PushQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let appid = single_app(&state)?;
    receive(state, Path(appid), q, body).await
}
