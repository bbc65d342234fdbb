//! The client API for business servers: `/v1/apps/{appid}/{kind}` and its
//! compare-and-refresh, behind per-client keys.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Json;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::owner::PathOwner;
use super::throttle::{Check, Peer};
use super::{ApiError, AppState};
use crate::config::ClientConfig;
use crate::store::{Credential, Kind};
use crate::token::{Cause, Requester};

/// A business server that proved its key.
#[derive(Debug)]
pub(crate) struct Client {
    /// The `[[clients]]` it was found in (a reload may replace them meanwhile).
    clients: Arc<Vec<ClientConfig>>,
    /// Its index there.
    index: usize,
}

impl Client {
    fn config(&self) -> &ClientConfig {
        &self.clients[self.index]
    }

    /// Its name in `[[clients]]`.
    pub(crate) fn name(&self, _: &AppState) -> &str {
        &self.config().name
    }

    /// Who it is, for the audit log.
    pub(crate) fn requester(&self, _: &AppState) -> Requester {
        Requester::Client(self.config().name.clone())
    }

    /// Fails unless this client may use `appid`: named in its scope, or an
    /// authorizer of a platform named there.
    pub(crate) fn check(&self, state: &AppState, appid: &str) -> Result<(), ApiError> {
        let client = self.config();
        let via_platform = || {
            (state.owners.app_owner(appid))
                .and_then(|o| o.platform().map(|p| client.apps.allows(p)))
                .unwrap_or(false)
        };
        if client.apps.allows(appid) || via_platform() {
            Ok(())
        } else {
            tracing::warn!(client = %client.name, appid, "client used an app outside its scope");
            Err(ApiError::Forbidden(appid.to_owned()))
        }
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = Peer::of(
            &parts.extensions,
            &parts.headers,
            &state.server.trusted_proxies,
        );
        Client::authenticate(state, &parts.headers, peer)
    }
}

impl Client {
    /// The client whose key the request's `Authorization: Bearer` carries;
    /// a failure counts against `peer`.
    pub(crate) fn authenticate(
        state: &AppState,
        headers: &axum::http::HeaderMap,
        peer: Peer,
    ) -> Result<Self, ApiError> {
        let key = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let now = state.now();
        let hash: [u8; 32] = Sha256::digest(key.trim().as_bytes()).into();
        // Compare against every client, in constant time each, so timing tells nothing.
        let mut found = None;
        let clients = state.clients.load_full();
        for (index, client) in clients.iter().enumerate() {
            if bool::from(client.key_sha256.ct_eq(&hash)) {
                found = Some(index);
            }
        }
        match found {
            Some(index) => Ok(Client { clients, index }),
            None => {
                state.throttle.failed(peer, Check::ClientKey, now)?;
                Err(ApiError::Unauthorized)
            }
        }
    }
}

fn kind_of(kind: &str) -> Result<Kind, ApiError> {
    kind.parse()
        .ok()
        .filter(|k: &Kind| k.is_served())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{kind:?}: use access_token, jsapi_ticket, wx_card_ticket or agent_config_ticket"
            ))
        })
}

/// `{"<kind>": value, "expires_in": …, "expires_at": …}`, written straight
/// from the credential (no intermediate `serde_json::Value`).
pub(crate) struct CredentialBody {
    kind: Kind,
    credential: Credential,
    expires_in: u64,
}

impl Serialize for CredentialBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry(self.kind.as_str(), &self.credential.value)?;
        map.serialize_entry("expires_in", &self.expires_in)?;
        map.serialize_entry("expires_at", &self.credential.expires_at)?;
        map.end()
    }
}

fn body(kind: Kind, credential: Credential, now: u64) -> Json<CredentialBody> {
    Json(CredentialBody {
        kind,
        expires_in: credential.expires_in(now),
        credential,
    })
}

/// The credential a path names: `…/{kind}` or `…/{kind}/refresh`.
#[derive(Deserialize)]
pub(crate) struct KindParam {
    kind: String,
}

/// `GET /v1/apps/{appid}/{kind}` and `GET /v1/wecom/{corpid}/{agent}/{kind}`
/// → `{"<kind>": value, "expires_in", "expires_at"}`; the kinds are the
/// owner's family's (a WeCom app: `access_token`, the corp's `jsapi_ticket`,
/// `agent_config_ticket`).
pub(crate) async fn get(
    State(state): State<AppState>,
    client: Client,
    owner: PathOwner,
    Path(KindParam { kind }): Path<KindParam>,
) -> Result<Json<CredentialBody>, ApiError> {
    get_at(&state, &client, &owner, &kind).await
}

/// [`get`], for a client, path owner and kind however they were read (the
/// axum route, or [`super::direct`]).
pub(crate) async fn get_at(
    state: &AppState,
    client: &Client,
    owner: &PathOwner,
    kind: &str,
) -> Result<Json<CredentialBody>, ApiError> {
    let kind = kind_of(kind)?;
    client.check(state, owner.key()?)?;
    let owner = owner.known()?;
    let credential = state
        .center
        .get(&owner.key, kind, &client.requester(state))
        .await?;
    Ok(body(kind, credential, state.now()))
}

#[derive(Deserialize)]
pub(crate) struct RefreshRequest {
    invalid_token: String,
}

/// `POST …/{kind}/refresh` with `{"invalid_token": "…"}`: compare-and-refresh.
pub(crate) async fn refresh(
    State(state): State<AppState>,
    client: Client,
    owner: PathOwner,
    Path(KindParam { kind }): Path<KindParam>,
    body_json: Result<Json<RefreshRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CredentialBody>, ApiError> {
    let kind = kind_of(&kind)?;
    client.check(&state, owner.key()?)?;
    let owner = owner.known()?;
    let Json(request) = body_json.map_err(|e| ApiError::json(e, r#"{"invalid_token": "…"}"#))?;
    let credential = state
        .center
        .refresh(
            &owner.key,
            kind,
            &request.invalid_token,
            Cause::CompareAndRefresh(client.requester(&state)),
        )
        .await?;
    Ok(body(kind, credential, state.now()))
}
