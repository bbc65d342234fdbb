//! The WeCom app a request's path names (`…/{corpid}/{agent}…`, `agent` its
//! name or agentid), resolved once to its owner id (`corpid/name`) for every
//! route that takes one: the client API, the JS-SDK signer and the callbacks.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::token::TokenError;

/// A configured WeCom app's owner id, from the path's `corpid` and `agent`;
/// an unknown one is refused as an unknown app (404, 40013 in WeChat's shape).
#[derive(Debug, Clone)]
pub(crate) struct WecomApp(pub(crate) String);

impl FromRequestParts<AppState> for WecomApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let param = |name: &str| params.get(name).map_or("", String::as_str);
        let (corpid, agent) = (param("corpid"), param("agent"));
        match state.center.owners().wecom_owner(corpid, agent) {
            Some(owner) => Ok(WecomApp(owner.to_owned())),
            None => Err(TokenError::UnknownApp(format!("{corpid}/{agent}")).into()),
        }
    }
}
