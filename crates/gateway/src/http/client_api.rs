//! The client API for business servers: `/v1/apps/{appid}/{kind}` and its
//! compare-and-refresh, behind per-client keys.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
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
        let hash = key_sha256(key.trim());
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

/// The SHA-256 of a presented client key, as `[[clients]] key_sha256`
/// holds it: through aws-lc's assembly, a fraction of the portable code's
/// instructions on a machine without SHA extensions.
fn key_sha256(key: &str) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes())
        .as_ref()
        .try_into()
        .expect("a SHA-256 digest is 32 bytes")
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
    fn to_json(&self) -> Vec<u8> {
        let value = &self.credential.value;
        let mut out = Vec::with_capacity(value.len() + 80);
        out.push(b'{');
        push_json_str(&mut out, self.kind.as_str());
        out.push(b':');
        push_json_str(&mut out, value);
        let mut number = itoa::Buffer::new();
        out.extend_from_slice(b",\"expires_in\":");
        out.extend_from_slice(number.format(self.expires_in).as_bytes());
        out.extend_from_slice(b",\"expires_at\":");
        out.extend_from_slice(number.format(self.credential.expires_at).as_bytes());
        out.push(b'}');
        out
    }
}

/// `text` as a JSON string: copied as is unless it holds a quote, a
/// backslash or a control character, then through serde_json's escaping.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("a string serializes into a Vec");
    }
}

impl IntoResponse for CredentialBody {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.to_json()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
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
    use sha2::Digest as _;

    #[test]
    fn key_sha256_is_sha256() {
        for key in [
            "",
            "k",
            "a-client-key-of-some-length-0123456789",
            &"x".repeat(200),
        ] {
            let expected: [u8; 32] = sha2::Sha256::digest(key.as_bytes()).into();
            assert_eq!(key_sha256(key), expected, "{key:?}");
        }
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
            let json: serde_json::Value = serde_json::from_slice(&body.to_json()).unwrap();
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
