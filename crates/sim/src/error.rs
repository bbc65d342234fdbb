//! WeChat's error answers: HTTP 200 with `{"errcode","errmsg"}`, the errmsg
//! ending in a request id (protocol reference §4.3, §6.2).
//!
//! An API's error is answered as an [`Answered`]: its rid was chosen where the
//! call was answered (`State::answer`) and travels with the response to the
//! middleware that records it for `/cgi-bin/openapi/rid/get`. A bare
//! [`WxError`] (an injected fault) gets a rid nobody can look up.

use axum::response::{IntoResponse, Json, Response};
use wxgate_proto::errcode;

/// An errcode and its errmsg, as WeChat returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxError {
    /// WeChat's errcode.
    pub errcode: i64,
    /// The message, before the ` rid: …` suffix.
    pub errmsg: String,
}

impl WxError {
    pub(crate) fn new(errcode: i64, errmsg: impl Into<String>) -> Self {
        Self {
            errcode,
            errmsg: errmsg.into(),
        }
    }

    /// `code` with WeChat's usual errmsg for it (`wxgate_proto::errcode`).
    pub(crate) fn of(code: i64) -> Self {
        Self::new(code, errcode::errmsg(code).unwrap_or("system error"))
    }

    pub(crate) fn invalid_credential() -> Self {
        Self::of(errcode::INVALID_CREDENTIAL)
    }

    pub(crate) fn expired() -> Self {
        Self::of(errcode::ACCESS_TOKEN_EXPIRED)
    }

    pub(crate) fn quota() -> Self {
        Self::of(errcode::DAILY_QUOTA)
    }

    pub(crate) fn invalid_ip(ip: std::net::IpAddr) -> Self {
        let v6 = match ip {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().to_string(),
            std::net::IpAddr::V6(v6) => v6.to_string(),
        };
        Self::new(
            errcode::INVALID_IP,
            format!("invalid ip {ip} ipv6 {v6}, not in whitelist"),
        )
    }
}

impl IntoResponse for WxError {
    fn into_response(self) -> Response {
        let unrecorded = Answered::new(self, None);
        unrecorded.error.render(&unrecorded.rid)
    }
}

impl WxError {
    fn render(&self, rid: &str) -> Response {
        let errmsg = format!("{} rid: {rid}", self.errmsg);
        Json(serde_json::json!({ "errcode": self.errcode, "errmsg": errmsg })).into_response()
    }
}

/// An API's error answer: the error, its rid and the account it concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answered {
    pub(crate) error: WxError,
    pub(crate) rid: String,
    pub(crate) appid: Option<String>,
}

/// Left in an error answer's extensions for the rid recorder, which removes it.
#[derive(Debug, Clone)]
pub(crate) struct RidOf {
    pub(crate) rid: String,
    pub(crate) appid: Option<String>,
}

impl Answered {
    /// The answer to give `error`, under a fresh rid.
    pub(crate) fn new(error: WxError, appid: Option<String>) -> Self {
        let rid: [u32; 3] = rand::random();
        let rid = format!("{:08x}-{:08x}-{:08x}", rid[0], rid[1], rid[2]);
        Self { error, rid, appid }
    }
}

impl IntoResponse for Answered {
    fn into_response(self) -> Response {
        let mut response = self.error.render(&self.rid);
        response.extensions_mut().insert(RidOf {
            rid: self.rid,
            appid: self.appid,
        });
        response
    }
}
