//! `POST /admin/reload`: reads the configuration file again and applies it
//! (see [`crate::reload`]). Called with the admin key as a bearer
//! (`wxgate reload`, scripts), it answers JSON: 200 with what changed, or
//! the refusal with every problem of an invalid file (nothing changed then).
//! Posted by the status page's button, it answers with a page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;

use super::guard::Posted;
use super::page::{self, esc};
use super::{harden, html};
use crate::http::{ApiError, AppState};

/// The button's form has no field of its own (only the form token).
#[derive(Debug, Deserialize)]
pub(crate) struct NoFields {}

/// `POST /admin/reload`.
pub(crate) async fn reload(State(state): State<AppState>, posted: Posted<NoFields>) -> Response {
    let result = state.reload().await;
    let from_page = posted.signed_in.form_token.is_some();
    match (result, from_page) {
        (Ok(reloaded), false) => harden(Json(reloaded).into_response()),
        (Err(e), false) => harden(ApiError::from(e).into_response()),
        (Ok(reloaded), true) => {
            let list = |items: &[String]| {
                if items.is_empty() {
                    "none".to_owned()
                } else {
                    items.iter().map(|i| esc(i)).collect::<Vec<_>>().join(", ")
                }
            };
            let restart = if reloaded.changes.restart_required.is_empty() {
                String::new()
            } else {
                format!(
                    r#"<p class="hint">Changed but not applied until a restart: [{}].</p>"#,
                    reloaded.changes.restart_required.join("], [")
                )
            };
            let body = format!(
                r#"<p class="ok">Reloaded <code>{file}</code>.</p><dl><dt>fingerprint</dt><dd><code>{previous}</code> → <code>{now}</code></dd><dt>added</dt><dd>{added}</dd><dt>changed</dt><dd>{changed}</dd><dt>removed</dt><dd>{removed}</dd><dt>clients changed</dt><dd>{clients}</dd></dl>{restart}"#,
                file = esc(&reloaded.file),
                previous = esc(&reloaded.previous),
                now = esc(&reloaded.fingerprint),
                added = list(&reloaded.changes.added),
                changed = list(&reloaded.changes.changed),
                removed = list(&reloaded.changes.removed),
                clients = list(&reloaded.changes.clients),
            );
            html(StatusCode::OK, page::outcome("reloaded", &body))
        }
        (Err(e), true) => {
            let error = ApiError::from(e);
            let status = error.status();
            let text = error.to_string();
            let lines = text
                .lines()
                .map(|l| format!("<li>{}</li>", esc(l.trim())))
                .collect::<String>();
            let body = format!(
                r#"<p class="error" role="alert">Not reloaded: nothing was changed.</p><ul>{lines}</ul>"#
            );
            html(status, page::outcome("not reloaded", &body))
        }
    }
}
