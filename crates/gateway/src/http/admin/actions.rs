//! Operations on the status page and their admin API twins:
//!
//! - `GET /admin/apps/{appid}/timeline.svg`: the last 24 h (see `timeline`).
//! - `POST /admin/apps/{appid}/revoke`: a confirmation page, then (with
//!   `confirm=APPID`) the revocation.
//! - `GET /admin/apps/{appid}/rid?rid=…`: what WeChat recorded of a failed call.
//! - `GET /admin/apps/{appid}/quota`: the token API's quota and this month's
//!   quota resets; `POST /admin/apps/{appid}/clear_quota` resets, after a
//!   confirmation, within WeChat's 10 a month.
//! - `GET /v1/apps/{appid}/rid/{rid}`, `GET /v1/apps/{appid}/quota`,
//!   `POST /v1/apps/{appid}/clear_quota`: the same as JSON (admin key), for
//!   `wxgate rid` and scripts.
//!
//! Each form carries the session's form token and is checked for its origin
//! (see `guard`): another page cannot make a signed-in browser post them.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::guard::{Posted, SignedIn};
use super::page::{self, esc, token_field};
use super::{harden, html, timeline, Operator};
use crate::clock::utc;
use crate::config::TokenApi;
use crate::http::{ApiError, AppState};
use crate::store::Kind;
use crate::token::diagnostics::{ClearQuotaBudget, DiagnosticsError};

/// Audit entries read for one timeline: a day of one app is a few dozen.
const TIMELINE_ENTRIES: usize = 5_000;

/// The page's answer for an appid that is not configured (an Official
/// Account or a Mini Program: the tools are theirs), or `None`.
fn unknown_app(state: &AppState, appid: &str) -> Option<Response> {
    let known = state.owners.app(appid).is_some();
    (!known).then(|| not_configured(appid))
}

fn not_configured(owner: &str) -> Response {
    let body = format!("<p>No app <code>{}</code> is configured.</p>", esc(owner));
    html(StatusCode::NOT_FOUND, page::outcome("unknown app", &body))
}

/// `GET /admin/apps/{owner}/timeline.svg`: any owner's, a WeCom app's
/// `corpid/name` written `corpid%2Fname`.
pub(crate) async fn timeline_svg(
    State(state): State<AppState>,
    _: SignedIn,
    Path(appid): Path<String>,
) -> Response {
    if state.owners.issuer(&appid).is_none() {
        return not_configured(&appid);
    }
    let entries = match state.center.audit_log(Some(&appid), TIMELINE_ENTRIES).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(appid, error = %e, "timeline: the audit log is unreadable");
            Vec::new()
        }
    };
    // The access token always; a ticket once it is held or has a history.
    let mut kinds = vec![Kind::AccessToken.as_str()];
    for slot in state.center.status() {
        let kind = slot.kind.as_str();
        let in_use = slot.expires_at.is_some() || entries.iter().any(|e| e.kind == kind);
        if slot.appid == appid && in_use && !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let svg = timeline::svg(&appid, &kinds, &entries, state.now());
    harden(
        (
            [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
            svg,
        )
            .into_response(),
    )
}

/// The confirmation a form carries: the appid, typed by the page's button.
#[derive(Debug, Deserialize)]
pub(crate) struct Confirm {
    #[serde(default)]
    confirm: String,
}

impl Posted<Confirm> {
    /// Whether the form confirms the operation on `appid`.
    fn confirms(&self, appid: &str) -> bool {
        self.form.as_ref().is_some_and(|f| f.confirm == appid)
    }
}

fn confirmation(
    appid: &str,
    action: &str,
    what: &str,
    button: &str,
    form_token: Option<&str>,
) -> String {
    let token = token_field(form_token);
    let appid = esc(appid);
    format!(
        r#"{what}
<form method="post" action="/admin/apps/{appid}/{action}"><input type="hidden" name="confirm" value="{appid}">{token}<button type="submit" class="danger">{button}</button></form>"#
    )
}

/// `POST /admin/apps/{appid}/revoke`: asks first, then revokes.
pub(crate) async fn revoke_form(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    posted: Posted<Confirm>,
) -> Response {
    if let Some(unknown) = unknown_app(&state, &appid) {
        return unknown;
    }
    let confirmed = posted.confirms(&appid);
    if !confirmed {
        let stable = state
            .owners
            .app(&appid)
            .is_some_and(|a| a.token_api == TokenApi::Stable);
        let how = if stable {
            "Its stable token gets two forced refreshes 30 s apart (2 of the day's 20); right after the second, WeChat answers the revoked token 40001."
        } else {
            "A new classic token is fetched; WeChat still accepts the revoked one for its 5-minute grace."
        };
        let what = format!(
            "<p>Revoke the access token of <code>{}</code>? Every business server gets the new token from wxgate; a copy of the old one kept elsewhere stops working.</p><p class=\"muted\">{how}</p>",
            esc(&appid)
        );
        let token = posted.signed_in.form_token.as_deref();
        let body = confirmation(&appid, "revoke", &what, "Revoke the access token", token);
        return html(StatusCode::OK, page::outcome("revoke", &body));
    }
    match state.center.revoke(&appid).await {
        Ok(done) => {
            let body = format!(
                r#"<p class="ok">Revoked.</p><dl><dt>app</dt><dd>{}</dd><dt>revoked</dt><dd>{}</dd><dt>replacement</dt><dd>{}</dd><dt>WeChat stops accepting it</dt><dd>{}</dd></dl><p>{}</p>"#,
                esc(&done.appid),
                esc(&done.revoked),
                esc(&done.replacement),
                utc(done.revoked_at),
                esc(&done.note),
            );
            html(StatusCode::OK, page::outcome("revoked", &body))
        }
        Err(e) => failed(ApiError::from(e)),
    }
}

/// An error page saying what went wrong and what to do.
fn failed(e: ApiError) -> Response {
    error_page(e.status(), &e.to_string(), e.hint())
}

fn error_page(status: StatusCode, text: &str, hint: Option<String>) -> Response {
    let hint = hint.map_or_else(String::new, |h| {
        format!(r#"<p class="hint">{}</p>"#, esc(&h))
    });
    let body = format!(r#"<p class="error" role="alert">{}</p>{hint}"#, esc(text));
    html(status, page::outcome("not done", &body))
}

/// The query of the rid page.
#[derive(Debug, Deserialize)]
pub(crate) struct RidQuery {
    #[serde(default)]
    rid: String,
}

/// `GET /admin/apps/{appid}/rid?rid=…`.
pub(crate) async fn rid_page(
    State(state): State<AppState>,
    _: SignedIn,
    Path(appid): Path<String>,
    Query(q): Query<RidQuery>,
) -> Response {
    if let Some(unknown) = unknown_app(&state, &appid) {
        return unknown;
    }
    match state.center.rid_info(&appid, &q.rid).await {
        Ok(request) => {
            let field = |name: &str| match &request[name] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let invoked = request["invoke_time"].as_u64().map(utc).unwrap_or_default();
            let body = format!(
                r#"<p>What WeChat recorded of the call behind rid <code>{rid}</code> (<code>{appid}</code>):</p>
<dl><dt>invoked</dt><dd>{invoked}</dd><dt>took</dt><dd>{cost} ms</dd><dt>client IP</dt><dd>{ip}</dd><dt>request URL</dt><dd>{url}</dd></dl>
<h2>request body</h2><pre>{req}</pre><h2>response body</h2><pre>{resp}</pre>"#,
                rid = esc(q.rid.trim()),
                appid = esc(&appid),
                cost = esc(&field("cost_in_ms")),
                ip = esc(&field("client_ip")),
                url = esc(&field("request_url")),
                req = esc(&field("request_body")),
                resp = esc(&field("response_body")),
            );
            html(StatusCode::OK, page::outcome("rid", &body))
        }
        Err(e) => diagnostics_failed(e),
    }
}

/// An error page for a diagnostic that could not be given, led by
/// WeChat's errcode when it answered one.
fn diagnostics_failed(e: DiagnosticsError) -> Response {
    let e = ApiError::from(e);
    let text = match e.errcode() {
        Some(errcode) => format!("errcode {errcode}: {e}"),
        None => e.to_string(),
    };
    error_page(e.status(), &text, e.hint())
}

/// `GET /admin/apps/{appid}/quota`.
pub(crate) async fn quota_page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(appid): Path<String>,
) -> Response {
    if let Some(unknown) = unknown_app(&state, &appid) {
        return unknown;
    }
    let quota = match state.center.token_quota(&appid).await {
        Ok(answer) => {
            let q = &answer["quota"];
            format!(
                r#"<p>WeChat's quota of <code>{path}</code> for <code>{appid}</code> today:</p>
<dl><dt>daily limit</dt><dd>{limit}</dd><dt>used</dt><dd>{used}</dd><dt>remaining</dt><dd>{remain}</dd></dl>"#,
                path = esc(answer["cgi_path"].as_str().unwrap_or_default()),
                appid = esc(&appid),
                limit = q["daily_limit"],
                used = q["used"],
                remain = q["remain"],
            )
        }
        Err(e) => {
            let e = ApiError::from(e);
            let (errcode, hint) = (e.errcode(), e.hint());
            format!(
                r#"<p class="error" role="alert">The quota could not be read: {}{}</p>{}"#,
                errcode.map_or_else(String::new, |c| format!("errcode {c}: ")),
                esc(&e.to_string()),
                hint.map_or_else(String::new, |h| format!(
                    r#"<p class="hint">{}</p>"#,
                    esc(&h)
                ))
            )
        }
    };
    let reset = match state.center.clear_quota_budget(&appid).await {
        Ok(budget) => clear_quota_offer(&appid, &budget, signed_in.form_token.as_deref()),
        Err(e) => format!(r#"<p class="error">{}</p>"#, esc(&e.to_string())),
    };
    html(
        StatusCode::OK,
        page::outcome("quota", &format!("{quota}{reset}")),
    )
}

fn clear_quota_offer(appid: &str, budget: &ClearQuotaBudget, form_token: Option<&str>) -> String {
    let used = format!(
        "<p>Quota resets this month through wxgate: <strong>{} of {}</strong> (the count starts again {}).</p>",
        budget.used,
        budget.limit,
        utc(budget.resets_at)
    );
    if budget.used >= budget.limit {
        return format!("{used}<p class=\"muted\">No reset is left this month.</p>");
    }
    format!(
        r#"{used}<form method="post" action="/admin/apps/{appid}/clear_quota">{token}<button type="submit" class="danger">Reset the daily quotas…</button></form>"#,
        appid = esc(appid),
        token = token_field(form_token),
    )
}

/// `POST /admin/apps/{appid}/clear_quota`: asks first, then resets.
pub(crate) async fn clear_quota_form(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    posted: Posted<Confirm>,
) -> Response {
    if let Some(unknown) = unknown_app(&state, &appid) {
        return unknown;
    }
    let confirmed = posted.confirms(&appid);
    if !confirmed {
        let budget = match state.center.clear_quota_budget(&appid).await {
            Ok(budget) => budget,
            Err(e) => return diagnostics_failed(e),
        };
        if budget.used >= budget.limit {
            return diagnostics_failed(DiagnosticsError::MonthlyLimit {
                used: budget.used,
                resets_at: budget.resets_at,
            });
        }
        let what = format!(
            "<p>Reset every daily API quota of <code>{}</code>? WeChat allows 10 resets a month; {} used so far.</p>",
            esc(&appid),
            budget.used
        );
        let token = posted.signed_in.form_token.as_deref();
        let body = confirmation(
            &appid,
            "clear_quota",
            &what,
            "Reset the daily quotas",
            token,
        );
        return html(StatusCode::OK, page::outcome("reset the quota", &body));
    }
    match state.center.clear_quota(&appid).await {
        Ok(budget) => {
            let body = format!(
                r#"<p class="ok">The daily quotas of <code>{}</code> are reset.</p><p>{} of {} resets used this month.</p>"#,
                esc(&appid),
                budget.used,
                budget.limit
            );
            html(StatusCode::OK, page::outcome("quota reset", &body))
        }
        Err(e) => diagnostics_failed(e),
    }
}

/// A diagnostic's refusal, as every API answers one.
fn json_error(e: DiagnosticsError) -> Response {
    harden(ApiError::from(e).into_response())
}

/// `GET /v1/apps/{appid}/rid/{rid}` (admin key) → `{"appid","rid","request":{…}}`.
pub(crate) async fn rid_json(
    State(state): State<AppState>,
    _: Operator,
    Path((appid, rid)): Path<(String, String)>,
) -> Response {
    match state.center.rid_info(&appid, &rid).await {
        Ok(request) => {
            harden(Json(json!({ "appid": appid, "rid": rid, "request": request })).into_response())
        }
        Err(e) => json_error(e),
    }
}

/// `GET /v1/apps/{appid}/quota` (admin key) → WeChat's quota of the token API
/// and this month's quota resets.
pub(crate) async fn quota_json(
    State(state): State<AppState>,
    _: Operator,
    Path(appid): Path<String>,
) -> Response {
    let quota = match state.center.token_quota(&appid).await {
        Ok(quota) => quota,
        Err(e) => return json_error(e),
    };
    match state.center.clear_quota_budget(&appid).await {
        Ok(budget) => {
            let mut body = json!({ "appid": appid, "clear_quota": budget });
            if let (Some(out), Some(fields)) = (body.as_object_mut(), quota.as_object()) {
                out.extend(fields.clone());
            }
            harden(Json(body).into_response())
        }
        Err(e) => json_error(e),
    }
}

/// `POST /v1/apps/{appid}/clear_quota` (admin key): resets the daily quotas,
/// at most 10 times a month.
pub(crate) async fn clear_quota_json(
    State(state): State<AppState>,
    _: Operator,
    Path(appid): Path<String>,
) -> Response {
    match state.center.clear_quota(&appid).await {
        Ok(budget) => harden(
            Json(json!({ "appid": appid, "cleared": true, "clear_quota": budget })).into_response(),
        ),
        Err(e) => json_error(e),
    }
}
