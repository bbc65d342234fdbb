//! The owner a request's path names, resolved once for every route that
//! takes one, whatever its family: `…/{appid}…` (an `[[apps]]` entry) or
//! `…/{corpid}/{agent}…` (a WeCom app, `agent` its name or agentid). The
//! client API, the JS-SDK signer and the push endpoints each have one
//! handler for every family; the family's data says what differs.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::token::owners::Owner;
use crate::token::TokenError;

/// The owner a path names: resolved when configured, else the name as
/// given, so that a handler can check a client's scope before it says
/// whether the owner exists (an out-of-scope client learns nothing), and
/// log a refusal under the name used.
#[derive(Debug, Clone)]
pub(crate) struct PathOwner {
    /// The configured owner, if any.
    owner: Option<Arc<Owner>>,
    /// What the path named, an appid or `corpid/agent`, when it names no
    /// configured owner (kept only then: no copy on the hot path).
    named: String,
    /// Whether `named` is a key as scopes list them even when unknown (an
    /// appid is; a WeCom agent may be named by its agentid, which is not).
    named_is_key: bool,
    /// Why it is unknown, when it is a former authorizer.
    revoked: Option<TokenError>,
}

impl PathOwner {
    /// The key to check a client's scope against: the owner's, else the
    /// appid as named; an unknown owner whose key cannot be told from the
    /// path (a WeCom agent) is refused as unknown.
    pub(crate) fn key(&self) -> Result<&str, ApiError> {
        match &self.owner {
            Some(owner) => Ok(&owner.key),
            None if self.named_is_key => Ok(&self.named),
            None => Err(self.unknown()),
        }
    }

    /// What the path named, for logs.
    pub(crate) fn named(&self) -> &str {
        self.owner.as_ref().map_or(&self.named, |o| &o.key)
    }

    fn unknown(&self) -> ApiError {
        match &self.revoked {
            Some(revoked) => revoked.clone().into(),
            None => TokenError::UnknownApp(self.named.clone()).into(),
        }
    }

    /// The owner; an unknown one is refused as an unknown app (404, 40013
    /// in WeChat's shape).
    pub(crate) fn known(&self) -> Result<Arc<Owner>, ApiError> {
        self.owner.clone().ok_or_else(|| self.unknown())
    }

    /// The configured owner `owner`.
    pub(crate) fn of(owner: Arc<Owner>) -> Self {
        Self {
            named: String::new(),
            named_is_key: true,
            owner: Some(owner),
            revoked: None,
        }
    }
}

impl FromRequestParts<AppState> for PathOwner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Read in place, not deserialized into a map: this runs on every push.
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let param = |name: &str| {
            (params.iter())
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value)
        };
        Ok(match param("appid") {
            Some(appid) => PathOwner::app(state, appid, param("component_appid")),
            None => PathOwner::wecom(
                state,
                param("corpid").unwrap_or_default(),
                param("agent").unwrap_or_default(),
            ),
        })
    }
}

impl PathOwner {
    /// `…/{appid}…`: the app (or authorizer) `appid`; under
    /// `/component/{platform}/wx/{appid}`, that platform's authorizer only.
    pub(crate) fn app(state: &AppState, appid: &str, platform: Option<&str>) -> Self {
        let owners = &state.owners;
        let mut owner = owners.app_owner(appid);
        if let Some(platform) = platform {
            owner = owner.filter(|o| o.platform() == Some(platform));
        }
        // Only an unknown appid is looked up among former authorizers.
        let (named, revoked) = match owner {
            Some(_) => (String::new(), None),
            None => (appid.to_owned(), owners.revoked(appid)),
        };
        PathOwner {
            owner,
            named,
            named_is_key: true,
            revoked,
        }
    }

    /// `…/{corpid}/{agent}…`: the WeCom app `agent` (its name or agentid) of `corpid`.
    pub(crate) fn wecom(state: &AppState, corpid: &str, agent: &str) -> Self {
        let owner = state.owners.wecom_owner(corpid, agent);
        let named = match owner {
            Some(_) => String::new(),
            None => format!("{corpid}/{agent}"),
        };
        PathOwner {
            owner,
            named,
            named_is_key: false,
            revoked: None,
        }
    }
}
