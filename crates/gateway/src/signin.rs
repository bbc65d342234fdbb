//! User sign-in through the center (families reference §4.d, §2, §7.10): the
//! code a user's browser (web authorization) or Mini Program (`wx.login`)
//! brings is traded with WeChat once, with the app's secret, which never
//! leaves wxgate; the answer is kept for the code's 5 minutes, so a double
//! redirect, a retry or a second instance gets the same answer instead of
//! 40163.
//!
//! Which family signs users in which way is its data
//! ([`crate::family::CodeExchange`]): web authorization for Official
//! Accounts, `jscode2session` for Mini Programs. The Open Platform's
//! exchange on behalf of an authorizer (`/sns/oauth2/component/access_token`)
//! is not served yet; it will be one more `CodeExchange` whose call carries
//! the component's token instead of the secret.
//!
//! # Layout
//! - [`authorize`]: the authorization page's URL and its checks (pure).
//! - [`exchange`]: [`SignIn`], the single exchange (in-process single flight,
//!   a claim in the store across instances), refresh and userinfo calls.
//! - here: [`SignInError`] and how WeChat's answers read.

pub mod authorize;
pub mod exchange;

pub use exchange::{Exchanged, SignIn};

use wxgate_proto::errcode;

use crate::family::Family;
use crate::upstream::Failure;

/// How long a code can be exchanged, seconds (§4.d: "expires after 5 min");
/// an answer is kept this long.
pub const CODE_LIFETIME_SECS: u64 = 300;

/// Why a sign-in call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInError {
    /// The owner's family has no such sign-in (an Official Account asking
    /// `jscode2session`, a Mini Program asking web authorization).
    #[error("{owner} has no {what}: {why}")]
    NotSupported {
        /// The owner asked for.
        owner: String,
        /// The sign-in asked for.
        what: &'static str,
        /// Why (the family's `sign_in_lacks`).
        why: &'static str,
    },
    /// The caller's request is malformed (no code, a bad scope or state).
    #[error("{0}")]
    Invalid(String),
    /// `redirect_uri` is not on one of the app's `oauth_domains`.
    #[error("{0}")]
    RedirectNotAllowed(String),
    /// WeChat answered with an errcode.
    #[error("WeChat answered errcode {errcode}: {errmsg}")]
    Refused {
        /// WeChat's errcode.
        errcode: i64,
        /// WeChat's errmsg.
        errmsg: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// WeChat did not answer usably (timeout, HTTP error, not JSON).
    #[error("{0}")]
    Unavailable(Failure),
    /// Another instance is exchanging this code and has not answered yet.
    #[error("another instance is exchanging this code and has not answered yet")]
    Pending,
}

impl SignInError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            SignInError::Refused { hint, .. } => hint.clone(),
            SignInError::Unavailable(failure) => failure.hint.clone(),
            SignInError::RedirectNotAllowed(_) => Some(
                "add the domain to the app's oauth_domains and to 网页授权域名 in the WeChat \
                 console (mp.weixin.qq.com → 设置与开发 → 公众号设置 → 功能设置)"
                    .into(),
            ),
            SignInError::Pending => Some("retry in a moment: its answer will be the same".into()),
            SignInError::NotSupported { .. } | SignInError::Invalid(_) => None,
        }
    }

    /// WeChat's errcode, when WeChat answered one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            SignInError::Refused { errcode, .. } => Some(*errcode),
            SignInError::Unavailable(failure) => failure.errcode,
            _ => None,
        }
    }
}

/// Reads WeChat's answer to a sign-in call: its fields, or the errcode it
/// carries as a [`SignInError::Refused`] with what to do about it.
pub fn read_answer(
    family: &Family,
    owner: &str,
    answer: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, SignInError> {
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(answer) else {
        return Err(SignInError::Unavailable(Failure::transient(
            "WeChat's answer was not a JSON object",
        )));
    };
    let code = fields.get("errcode").and_then(|e| e.as_i64()).unwrap_or(0);
    if code == 0 {
        fields.remove("errcode");
        fields.remove("errmsg");
        return Ok(fields);
    }
    let errmsg = (fields.get("errmsg").and_then(|e| e.as_str())).unwrap_or_default();
    Err(SignInError::Refused {
        errcode: code,
        errmsg: errmsg.to_owned(),
        hint: hint(family, owner, code, errmsg),
    })
}

/// What to do about a sign-in errcode (families §4.d, §2, §7.10).
fn hint(family: &Family, owner: &str, code: i64, errmsg: &str) -> Option<String> {
    let text = match code {
        errcode::INVALID_CODE => {
            "the code is invalid or older than its 5 minutes: send the user through the \
             authorization again for a new code (wx.login in a Mini Program)"
        }
        errcode::CODE_USED => {
            "the code was exchanged already, but not through wxgate (wxgate answers a repeated \
             exchange of a code from its cache): make every exchange of this app's codes go \
             through wxgate, SDKs included"
        }
        errcode::INVALID_REFRESH_TOKEN => {
            "the refresh_token is not one WeChat knows for this app: sign the user in again"
        }
        errcode::REFRESH_TOKEN_EXPIRED => {
            "the refresh_token is older than its 30 days: sign the user in again"
        }
        errcode::MINUTE_QUOTA => "WeChat's per-minute limit for this call: retry next minute",
        errcode::CODE_BLOCKED => {
            "WeChat blocks this user's sign-in as high risk; retrying will not help"
        }
        errcode::API_UNAUTHORIZED => {
            "userinfo needs scope snsapi_userinfo and a user who really authorized \
             (not a snapshot-page user)"
        }
        errcode::INVALID_CREDENTIAL | errcode::ACCESS_TOKEN_EXPIRED => {
            "the user's access_token is invalid or older than its 2 hours: refresh it with \
             the refresh_token"
        }
        errcode::INVALID_OPENID => "the openid is not the one the user's access_token is for",
        _ => return (family.classify)(owner, code, errmsg).1,
    };
    Some(text.to_owned())
}

/// What a snapshot-page user (`is_snapshotuser: 1`) is, for the answer's `hint`.
pub const SNAPSHOT_HINT: &str =
    "is_snapshotuser=1: the user is on WeChat's snapshot page (快照页) \
     and did not really authorize; the openid (and unionid) are virtual and userinfo answers \
     48001. Ask the user to open the full page (使用完整服务) and sign in again";
