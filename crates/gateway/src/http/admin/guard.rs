//! Who may use the status page, and which posts are its own.
//!
//! A signed-in browser sends its session cookie with every request to this
//! site, whoever made the request: `SameSite=Strict` keeps other *sites* out,
//! but a page on another port of the same host, a sibling subdomain or
//! another service behind the same SSH tunnel is the same site. So a post
//! under `/admin` acts only when
//!
//! - it comes from the page's own origin: `Sec-Fetch-Site`, when the browser
//!   sends it, is `same-origin` or `none` (typed or bookmarked), and `Origin`,
//!   when sent, names the host the request was sent to (its `Host`, default
//!   ports aside); the login form is checked the same way, so another page
//!   cannot post failed logins from the operator's browser either;
//! - and, when the cookie is what let it in, it carries the session's form
//!   token: hex(HMAC-SHA256(key = admin key, "wxgate-admin-form:" + the
//!   session cookie's value)), which the page renders into each of its forms
//!   and another page cannot read or compute. It is compared in constant time.
//!
//! `Authorization: Bearer <admin key>` needs no token: a browser never adds
//! that header to a request another page makes, so such a call is the
//! caller's own (`wxgate revoke`, scripts).

use axum::body::{Body, Bytes};
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::page::{self, esc};
use super::{access, closed, html, refused_message, too_many, Access, Proof};
use crate::http::throttle::Peer;
use crate::http::AppState;

/// What the form token's HMAC signs, before the session cookie's value.
const FORM_MESSAGE: &str = "wxgate-admin-form";
/// The most a form of the page posts, bytes: a few short fields.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The name of the form token's field.
pub(super) const FORM_FIELD: &str = "form_token";

/// The form token of a session: bound to its cookie, so it ends with it.
pub(super) fn form_token(key: &str, session: &str) -> String {
    hex::encode(form_mac(key, session))
}

fn form_mac(key: &str, session: &str) -> [u8; 32] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{FORM_MESSAGE}:{session}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whether `given` is the `expected` form token, in constant time.
fn same_token(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.trim().as_bytes()).into()
}

/// Why a post is not taken as the page's own.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Foreign {
    /// `Sec-Fetch-Site` says another site, or another origin of this site, made it.
    FetchSite(String),
    /// `Origin` is not the origin the request was sent to (`null` included).
    Origin(String),
    /// A post let in by the session cookie without the session's form token.
    Token,
}

impl Foreign {
    /// The answer: 403 and a page saying what to do; the cause goes to the log.
    fn answer(&self, login: bool) -> Response {
        if login {
            // No credential involved: anyone can send these, so not a warning each.
            tracing::debug!(cause = ?self, "admin: a login not posted by the status page was refused");
        } else {
            // Only a signed-in caller gets here: someone acted in the operator's name.
            tracing::warn!(
                cause = ?self,
                "admin: a post not made by the status page itself was refused"
            );
        }
        let text = "This form was not sent by wxgate's own status page, so it was not acted on. \
                    Open the status page yourself and use its buttons.";
        if login {
            return html(StatusCode::FORBIDDEN, page::login(Some(text)));
        }
        let body = format!(
            r#"<p class="error" role="alert">{}</p><p class="hint">Another page (another port or subdomain of this host) may have tried to act in your name. Behind a reverse proxy, pass the browser's <code>Host</code> on unchanged (nginx: <code>proxy_set_header Host $http_host;</code>).</p>"#,
            esc(text)
        );
        html(StatusCode::FORBIDDEN, page::outcome("refused", &body))
    }
}

/// Checks that a post comes from the origin it was sent to (see the module doc).
pub(super) fn same_origin(headers: &HeaderMap, uri: &Uri) -> Result<(), Foreign> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if !matches!(site, "same-origin" | "none") {
            return Err(Foreign::FetchSite(site.to_owned()));
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    // Behind a TLS-terminating proxy that says so, the scheme is checked too
    // (a page on plain http of the same name is another origin).
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if host.is_some_and(|host| origin_is(origin, host, scheme)) {
        Ok(())
    } else {
        Err(Foreign::Origin(origin.to_owned()))
    }
}

/// Whether the serialised origin `scheme://host[:port]` names `host` (a
/// `Host` header), the scheme's default port written or not, and the
/// request's scheme when it is known.
fn origin_is(origin: &str, host: &str, request_scheme: Option<&str>) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    if request_scheme.is_some_and(|s| !s.eq_ignore_ascii_case(scheme)) {
        return false;
    }
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let bare = |a: &str| a.strip_suffix(default).unwrap_or(a).to_ascii_lowercase();
    !authority.is_empty() && !authority.contains('/') && bare(authority) == bare(host.trim())
}

/// The page's answer to a request that is not let in.
fn turned_away(access: Access) -> Response {
    match access {
        Access::Granted(_) => unreachable!("only a refusal is turned away"),
        Access::Closed => closed(),
        Access::Denied => html(StatusCode::UNAUTHORIZED, page::login(None)),
        Access::Refused(refused) => too_many(
            refused,
            html(
                StatusCode::TOO_MANY_REQUESTS,
                page::login(Some(&refused_message(refused))),
            ),
        ),
    }
}

/// A browser signed in to the status page (or a bearer admin key);
/// otherwise it is answered with the login page.
pub(crate) struct SignedIn {
    /// The token the forms shown to it carry; `None` for a bearer caller,
    /// whose posts need none.
    pub(super) form_token: Option<String>,
}

impl SignedIn {
    /// Who it is; how it was refused otherwise.
    fn check(state: &AppState, parts: &Parts) -> Result<Self, Access> {
        let peer = Peer::of(
            &parts.extensions,
            &parts.headers,
            &state.server.trusted_proxies,
        );
        let proof = match access(state, &parts.headers, peer) {
            Access::Granted(proof) => proof,
            other => return Err(other),
        };
        let form_token = match (&proof, &state.admin_key) {
            (Proof::Session(cookie), Some(key)) => Some(form_token(key.expose_secret(), cookie)),
            _ => None,
        };
        Ok(Self { form_token })
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Self::check(state, parts).map_err(turned_away)
    }
}

/// A form posted by the status page itself (see the module doc): its fields
/// (`None` when they do not parse), and who posted it.
pub(crate) struct Posted<T> {
    /// The form's fields.
    pub(super) form: Option<T>,
    /// Who posted it, and the token of the forms shown in answer.
    pub(super) signed_in: SignedIn,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        // Signed in first: a refusal below then concerns the operator's own
        // session (worth a warning), not anyone's request.
        let signed_in = SignedIn::check(state, &parts).map_err(turned_away)?;
        same_origin(&parts.headers, &parts.uri).map_err(|f| f.answer(false))?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .unwrap_or_default();
        // Let in by the session cookie: the form must be one the page showed.
        if let Some(expected) = &signed_in.form_token {
            let given = field(&bytes, FORM_FIELD).unwrap_or_default();
            if !same_token(expected, &given) {
                return Err(Foreign::Token.answer(false));
            }
        }
        let request = Request::from_parts(parts, Body::from(bytes));
        let form = Form::<T>::from_request(request, &()).await.ok();
        Ok(Self {
            form: form.map(|Form(f)| f),
            signed_in,
        })
    }
}

/// A field of a urlencoded body; `None` when absent.
fn field(body: &Bytes, name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// The refusal of a login posted by another page, or `None`: checked before
/// the key is looked at or counted.
pub(super) fn foreign_login(headers: &HeaderMap, uri: &Uri) -> Option<Response> {
    same_origin(headers, uri).err().map(|f| f.answer(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_form_token_is_the_hmac_of_the_session_and_belongs_to_it() {
        // printf wxgate-admin-form:1700000000.abcd | openssl dgst -sha256 -hmac k3y
        let token = form_token("k3y", "1700000000.abcd");
        assert_eq!(
            token,
            "5407aba390696ef7a3edc97ca1654e65da552f0e6254d3c97e70e9e03de53cbf"
        );
        let matches = |key, session, given| same_token(&form_token(key, session), given);
        assert!(matches("k3y", "1700000000.abcd", &token));
        assert!(!matches("k3y", "1700000001.abcd", &token));
        assert!(!matches("other", "1700000000.abcd", &token));
        assert!(!matches("k3y", "1700000000.abcd", &token[..62]));
        assert!(!matches("k3y", "1700000000.abcd", ""));
        assert!(!matches("k3y", "1700000000.abcd", "not hex"));
    }

    #[test]
    fn a_post_is_the_pages_own_only_from_its_origin() {
        let uri = Uri::from_static("/admin/apps/wx1/revoke");
        let host = ("host", "127.0.0.1:8080");
        let ok = |pairs: &[(&'static str, &str)]| same_origin(&headers(pairs), &uri).is_ok();
        assert!(
            ok(&[host]),
            "no Origin, no Sec-Fetch-Site: an older browser"
        );
        assert!(ok(&[host, ("origin", "http://127.0.0.1:8080")]));
        assert!(ok(&[host, ("sec-fetch-site", "same-origin")]));
        assert!(ok(&[host, ("sec-fetch-site", "none")]));
        assert!(!ok(&[host, ("origin", "http://127.0.0.1:8081")]));
        assert!(!ok(&[host, ("origin", "https://127.0.0.1:8081")]));
        assert!(!ok(&[host, ("origin", "null")]));
        assert!(!ok(&[host, ("sec-fetch-site", "same-site")]));
        assert!(!ok(&[host, ("sec-fetch-site", "cross-site")]));
        assert!(
            !ok(&[("origin", "http://127.0.0.1:8080")]),
            "no host to compare"
        );
        // Default ports, written or not; names compared without case.
        let gw = ("host", "GW.example.com");
        assert!(ok(&[gw, ("origin", "https://gw.example.com")]));
        assert!(ok(&[gw, ("origin", "https://gw.example.com:443")]));
        assert!(ok(&[
            ("host", "gw.example.com:80"),
            ("origin", "http://gw.example.com")
        ]));
        assert!(!ok(&[gw, ("origin", "https://ops.example.com")]));
        assert!(!ok(&[gw, ("origin", "https://gw.example.com.evil.test")]));
        assert!(!ok(&[gw, ("origin", "https://gw.example.com/x")]));
        // Behind a TLS proxy that says so: plain http of the same name is another origin.
        let tls = ("x-forwarded-proto", "https");
        assert!(ok(&[gw, tls, ("origin", "https://gw.example.com")]));
        assert!(!ok(&[gw, tls, ("origin", "http://gw.example.com")]));
    }
}
