//! The client API for business servers: `/v1/apps/{appid}/{kind}` and its
//! compare-and-refresh, behind per-client keys.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;

use super::owner::PathOwner;
use super::throttle::{Check, Peer};
use super::{ApiError, AppState};
use crate::clients::Clients;
use crate::config::ClientConfig;
use crate::store::{Credential, Kind};
use crate::token::{Cause, Requester};

/// A business server that proved its key.
#[derive(Debug)]
pub(crate) struct Client {
    /// The `[[clients]]` it was found in (a reload may replace them meanwhile).
    clients: Arc<Clients>,
    /// Its index there.
    index: usize,
}

impl Client {
    fn config(&self) -> &ClientConfig {
        &self.clients.configs[self.index]
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
        let clients = state.clients.load_full();
        match clients.find(key.trim()) {
            Some(index) => Ok(Client { clients, index }),
            None => {
                state.throttle.failed(peer, Check::ClientKey, state.now())?;
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
/// from the credential into the body's one buffer (no `serde_json::Value`,
/// no serializer: the value is a token or ticket, escaped as JSON wants
/// only where it holds a byte that needs it).
pub(crate) struct CredentialBody {
    kind: Kind,
    credential: Credential,
    expires_in: u64,
}

impl CredentialBody {
    /// The JSON, in a buffer of exactly its size when nothing needed
    /// escaping (as a body, a buffer with spare room costs one more
    /// allocation).
    fn to_json(&self) -> Vec<u8> {
        const EXPIRES_IN: &[u8] = b",\"expires_in\":";
        const EXPIRES_AT: &[u8] = b",\"expires_at\":";
        let (kind, value) = (self.kind.as_str(), &self.credential.value);
        let (mut expires_in, mut expires_at) = (itoa::Buffer::new(), itoa::Buffer::new());
        let expires_in = expires_in.format(self.expires_in).as_bytes();
        let expires_at = expires_at.format(self.credential.expires_at).as_bytes();
        let size = (kind.len() + 2 + value.len() + 2 + 3)
            + (EXPIRES_IN.len() + expires_in.len() + EXPIRES_AT.len() + expires_at.len());
        let mut out = Vec::with_capacity(size);
        out.push(b'{');
        push_json_str(&mut out, kind);
        out.push(b':');
        push_json_str(&mut out, value);
        out.extend_from_slice(EXPIRES_IN);
        out.extend_from_slice(expires_in);
        out.extend_from_slice(EXPIRES_AT);
        out.extend_from_slice(expires_at);
        out.push(b'}');
        out
    }
}

/// `text` as a JSON string: copied as is unless it holds a quote, a
/// backslash or a control character, then through serde_json's escaping.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // Every byte looked at, none skipped: a fold without an early exit is
    // one the compiler runs many bytes at a time (a token is ~150 bytes).
    let plain = (text.bytes()).fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("a string serializes into a Vec");
    }
}

impl IntoResponse for CredentialBody {
    fn into_response(self) -> Response {
        static JSON: HeaderValue = HeaderValue::from_static("application/json");
        let mut response = Response::new(Body::from(self.to_json()));
        (response.headers_mut()).insert(header::CONTENT_TYPE, JSON.clone());
        response
    }
}

fn body(kind: Kind, credential: Credential, now: u64) -> CredentialBody {
    CredentialBody {
        kind,
        expires_in: credential.expires_in(now),
        credential,
    }
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
) -> Result<CredentialBody, ApiError> {
    get_at(&state, &client, &owner, kind_of(&kind)?).await
}

/// [`get`], for a client, path owner and kind however they were read (the
/// axum route, or [`super::direct`]).
pub(crate) async fn get_at(
    state: &AppState,
    client: &Client,
    owner: &PathOwner,
    kind: Kind,
) -> Result<CredentialBody, ApiError> {
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
) -> Result<CredentialBody, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_string_is_escaped_wherever_its_special_byte_is() {
        let long = "T".repeat(150);
        for special in ["\"", "\\", "\n", "\u{1f}", "\u{0}"] {
            for at in [0, 1, 31, 32, 75, 149, 150] {
                let text = format!("{}{special}{}", &long[..at], &long[at..]);
                let mut out = Vec::new();
                push_json_str(&mut out, &text);
                assert_eq!(
                    out,
                    serde_json::to_vec(&text).unwrap(),
                    "{special:?} at {at}"
                );
            }
        }
        let mut out = Vec::new();
        push_json_str(&mut out, &long);
        assert_eq!(out, format!("\"{long}\"").into_bytes());
    }

    #[test]
    fn a_credential_body_is_the_json_a_serializer_writes() {
        for value in [
            "ACCESS_TOKEN-abc_123",
            "",
            "quote\"back\\slash\ncontrol\u{1}é",
        ] {
            let body = body(
                Kind::AccessToken,
                Credential {
                    value: value.to_owned(),
                    expires_at: 1_700_007_200,
                    fetched_at: 1_700_000_000,
                },
                1_700_000_100,
            );
            let bytes = body.to_json();
            if !value.contains(['"', '\\', '\n', '\u{1}']) {
                assert_eq!(bytes.len(), bytes.capacity(), "{value:?}: an exact buffer");
            }
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                json,
                serde_json::json!({
                    "access_token": value,
                    "expires_in": 7100,
                    "expires_at": 1_700_007_200u64,
                }),
                "{value:?}"
            );
        }
    }
}
