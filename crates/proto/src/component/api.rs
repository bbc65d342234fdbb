//! The JSON bodies of the Open Platform's `/cgi-bin/component/…` APIs
//! (families reference §3.1–3.6), shared by the gateway (which sends the
//! requests and reads the answers) and the simulator (which does the opposite).
//! Errors come in WeChat's usual `{"errcode","errmsg"}` shape and are not modelled here.

use serde::{Deserialize, Serialize};

/// `POST /cgi-bin/component/api_start_push_ticket` (no token: the secret authenticates).
pub const START_PUSH_TICKET: &str = "/cgi-bin/component/api_start_push_ticket";
/// `POST /cgi-bin/component/api_component_token`.
pub const COMPONENT_TOKEN: &str = "/cgi-bin/component/api_component_token";
/// `POST /cgi-bin/component/api_create_preauthcode?component_access_token=`.
pub const CREATE_PREAUTHCODE: &str = "/cgi-bin/component/api_create_preauthcode";
/// `POST /cgi-bin/component/api_query_auth?component_access_token=`.
pub const QUERY_AUTH: &str = "/cgi-bin/component/api_query_auth";
/// `POST /cgi-bin/component/api_authorizer_token?component_access_token=`.
pub const AUTHORIZER_TOKEN: &str = "/cgi-bin/component/api_authorizer_token";
/// `POST /cgi-bin/component/api_get_authorizer_list?component_access_token=`.
pub const GET_AUTHORIZER_LIST: &str = "/cgi-bin/component/api_get_authorizer_list";
/// `POST /cgi-bin/component/api_get_authorizer_info?component_access_token=`.
pub const GET_AUTHORIZER_INFO: &str = "/cgi-bin/component/api_get_authorizer_info";

/// Most authorizers one `api_get_authorizer_list` page may ask for (§3.6).
pub const MAX_AUTHORIZER_LIST_COUNT: u32 = 500;

/// The body of `api_start_push_ticket`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartPushTicketRequest {
    /// The platform's appid.
    pub component_appid: String,
    /// The platform's secret (named `component_secret` here, `component_appsecret` elsewhere).
    pub component_secret: String,
}

/// The body of `api_component_token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentTokenRequest {
    /// The platform's appid.
    pub component_appid: String,
    /// The platform's secret.
    pub component_appsecret: String,
    /// The latest ticket pushed (valid 12 h).
    pub component_verify_ticket: String,
}

/// The answer of `api_component_token`: each call mints a new token; the
/// previous one keeps working 5 minutes (§3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentToken {
    /// The token, for `?component_access_token=`.
    pub component_access_token: String,
    /// Seconds (7200).
    pub expires_in: u64,
}

/// The answer of `api_create_preauthcode` (body `{"component_appid"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreAuthCode {
    /// For the authorization page URL.
    pub pre_auth_code: String,
    /// Seconds: 1800 or 600, the documentation disagrees with itself (§3.3); honour it.
    pub expires_in: u64,
}

/// The body of `api_query_auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAuthRequest {
    /// The platform's appid.
    pub component_appid: String,
    /// The code from the redirect or the `authorized` push (single use).
    pub authorization_code: String,
}

/// The answer of `api_query_auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAuth {
    /// What the account granted.
    pub authorization_info: AuthorizationInfo,
}

/// An account's authorization (§3.4). The token and refresh token are absent
/// when the account granted no API permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationInfo {
    /// The account's appid.
    pub authorizer_appid: String,
    /// Its access token, for the account's ordinary APIs.
    #[serde(default)]
    pub authorizer_access_token: Option<String>,
    /// Seconds the token lives (7200).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Keep it durably: it is the only way to new tokens without a new authorization.
    #[serde(default)]
    pub authorizer_refresh_token: Option<String>,
    /// The permission sets granted (`[{"funcscope_category":{"id":1}}, …]`), kept as sent.
    #[serde(default)]
    pub func_info: Vec<serde_json::Value>,
}

/// The body of `api_authorizer_token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerTokenRequest {
    /// The platform's appid.
    pub component_appid: String,
    /// The account's appid.
    pub authorizer_appid: String,
    /// The stored refresh token.
    pub authorizer_refresh_token: String,
}

/// The answer of `api_authorizer_token` (§3.5). When `authorizer_refresh_token`
/// differs from the one sent, store it (compare-and-set): the old one works
/// 5 minutes more, then answers 61023.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerToken {
    /// A new access token for the account.
    pub authorizer_access_token: String,
    /// Seconds (7200).
    pub expires_in: u64,
    /// The refresh token to keep from now on (often the same one).
    pub authorizer_refresh_token: String,
}

impl AuthorizerToken {
    /// The new refresh token, when WeChat rotated the one that was sent.
    pub fn rotated_refresh_token(&self, sent: &str) -> Option<&str> {
        (self.authorizer_refresh_token != sent).then_some(self.authorizer_refresh_token.as_str())
    }
}

/// The body of `api_get_authorizer_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerListRequest {
    /// The platform's appid.
    pub component_appid: String,
    /// Index of the first authorizer (0-based).
    pub offset: u32,
    /// Page size, at most [`MAX_AUTHORIZER_LIST_COUNT`].
    pub count: u32,
}

/// The answer of `api_get_authorizer_list` (§3.6): how lost refresh tokens are recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerList {
    /// Authorizers in all pages.
    pub total_count: u64,
    /// This page.
    pub list: Vec<AuthorizerListItem>,
}

/// One authorizer of [`AuthorizerList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerListItem {
    /// The account's appid.
    pub authorizer_appid: String,
    /// Its current refresh token; empty when nobody ever exchanged its
    /// authorization code (then only a new authorization helps).
    pub refresh_token: String,
    /// When it authorized the platform, Unix seconds.
    pub auth_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_query_auth_answer_reads() {
        let answer = r#"{"authorization_info":{"authorizer_appid":"wxf8b4f85f3a794e77",
            "authorizer_access_token":"QXjUqN","expires_in":7200,
            "authorizer_refresh_token":"dTo-YCXPL4llX-u1W1pPpnp8Hgm4wpJtlR6iV0doKdY",
            "func_info":[{"funcscope_category":{"id":1}}]}}"#;
        let q: QueryAuth = serde_json::from_str(answer).unwrap();
        assert_eq!(q.authorization_info.expires_in, Some(7200));
        assert_eq!(q.authorization_info.func_info.len(), 1);
    }

    #[test]
    fn a_rotated_refresh_token_is_noticed() {
        let t = AuthorizerToken {
            authorizer_access_token: "a".into(),
            expires_in: 7200,
            authorizer_refresh_token: "new".into(),
        };
        assert_eq!(t.rotated_refresh_token("old"), Some("new"));
        assert_eq!(t.rotated_refresh_token("new"), None);
    }
}
