//! WeChat's errcodes and their usual errmsg texts (protocol reference §4.3,
//! §6; families reference §4.c): one table, read by the gateway (what each
//! means) and the simulator (what it answers). Match on the code, never on
//! the text: WeChat changes its wording and appends ` rid: …`.

/// Busy: retry with backoff. Never a caller's mistake.
pub const BUSY: i64 = -1;
/// At a token fetch: wrong secret. On an API call: the token is invalid or superseded.
pub const INVALID_CREDENTIAL: i64 = 40001;
/// `grant_type` is not `client_credential`.
pub const INVALID_GRANT_TYPE: i64 = 40002;
/// The OpenID is not of this account.
pub const INVALID_OPENID: i64 = 40003;
/// Unknown AppID.
pub const INVALID_APPID: i64 = 40013;
/// A malformed or foreign access token.
pub const INVALID_ACCESS_TOKEN: i64 = 40014;
/// An argument is invalid (a ticket `type`, …).
pub const INVALID_ARGS: i64 = 40097;
/// The AppSecret is wrong (stable_token).
pub const INVALID_APPSECRET: i64 = 40125;
/// The caller's IP is not on the API whitelist; the errmsg names it.
pub const INVALID_IP: i64 = 40164;
/// The AppSecret is frozen.
pub const APPSECRET_FROZEN: i64 = 40243;
/// `access_token` missing.
pub const ACCESS_TOKEN_MISSING: i64 = 41001;
/// `appid` missing.
pub const APPID_MISSING: i64 = 41002;
/// `secret` missing.
pub const APPSECRET_MISSING: i64 = 41004;
/// The access token has expired.
pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
/// A GET-only API was called otherwise.
pub const REQUIRE_GET: i64 = 43001;
/// A POST-only API was called otherwise.
pub const REQUIRE_POST: i64 = 43002;
/// The daily quota is used up.
pub const DAILY_QUOTA: i64 = 45009;
/// The request's content is over the API's size limit.
pub const CONTENT_TOO_LARGE: i64 = 45002;
/// The per-minute limit is reached: slow down.
pub const MINUTE_QUOTA: i64 = 45011;
/// The body is not what the API reads.
pub const DATA_FORMAT: i64 = 47001;
/// A URL (here: an API path) that is not a plain one.
pub const INVALID_URL: i64 = 40066;
/// The account lacks the permission for this API.
pub const API_UNAUTHORIZED: i64 = 48001;
/// The month's quota resets are spent.
pub const CLEAR_QUOTA_LIMIT: i64 = 48006;
/// IP awaiting / needing the administrator's confirmation (treated like 40164).
pub const IP_UNCONFIRMED: [i64; 2] = [89501, 89503];
/// "access clientip is not registered" (treated like 40164).
pub const CLIENT_IP_NOT_REGISTERED: i64 = 61004;
/// Open Platform (families reference §3): the account has not authorized the
/// platform (or withdrew its authorization).
pub const COMPONENT_UNAUTHORIZED: i64 = 61003;
/// The component_verify_ticket is older than its 12 hours (§3.2).
pub const COMPONENT_TICKET_EXPIRED: i64 = 61005;
/// The component_verify_ticket is not one WeChat pushed to this platform (§3.2).
pub const COMPONENT_TICKET_INVALID: i64 = 61006;
/// An authorization code that is unknown or already exchanged [?: WxJava's WxOpenErrorMsgEnum].
pub const AUTH_CODE_INVALID: i64 = 61009;
/// An authorization code past its lifetime [?: WxJava's WxOpenErrorMsgEnum].
pub const AUTH_CODE_EXPIRED: i64 = 61010;
/// An unknown platform (component appid).
pub const INVALID_COMPONENT: i64 = 61011;
/// The authorizer_refresh_token is not the account's (lost, or rotated more than 5 min ago, §3.5).
pub const AUTHORIZER_REFRESH_TOKEN_INVALID: i64 = 61023;
/// A platform's appid used with `/cgi-bin/token` or `stable_token` (§3.2).
pub const COMPONENT_NEEDS_COMPONENT_TOKEN: i64 = 61024;
/// rid lookups: not found (kept 7 days), malformed, another account's.
pub const RID_NOT_FOUND: i64 = 76001;
/// A malformed rid.
pub const RID_MALFORMED: i64 = 76002;
/// A rid of another account.
pub const RID_NO_PERMISSION: i64 = 76003;
/// quota/get: unknown path.
pub const CGI_PATH_NOT_FOUND: i64 = 76021;
/// quota/get: a path without a quota for this account.
pub const CGI_PATH_NO_PERMISSION: i64 = 76022;

/// User sign-in (families reference §4.d, §2): the code is invalid, or
/// older than its 5 minutes.
pub const INVALID_CODE: i64 = 40029;
/// The code was exchanged already (codes are single-use).
pub const CODE_USED: i64 = 40163;
/// The refresh token is invalid.
pub const INVALID_REFRESH_TOKEN: i64 = 40030;
/// The refresh token is older than its 30 days: the user must sign in again.
pub const REFRESH_TOKEN_EXPIRED: i64 = 42002;
/// The code belongs to a user WeChat blocks (high risk).
pub const CODE_BLOCKED: i64 = 40226;
/// `code` (or `js_code`) missing.
pub const CODE_MISSING: i64 = 41008;

/// WeCom (families reference §1.2): codes of its own, beside the shared
/// numbers above (40001, 40013, 40014, 41001, 41002 for the corpid, 41004 for
/// the corpsecret, 42001, 45009 as a rate limit, 47001, 40097).
/// The secret is invalid (reset, or not this corp's).
pub const WECOM_INVALID_SECRET: i64 = 40091;
/// `message/send`: an invalid message type.
pub const WECOM_INVALID_MESSAGE_TYPE: i64 = 40008;
/// `message/send`: no valid receiver.
pub const WECOM_INVALID_RECEIVER: i64 = 40035;
/// An invalid agentid.
pub const WECOM_INVALID_AGENTID: i64 = 40056;
/// `agentid` missing.
pub const WECOM_AGENTID_MISSING: i64 = 41011;
/// A per-hour frequency limit (45009 is the per-minute one in WeCom).
pub const WECOM_FREQ_LIMIT: i64 = 45033;
/// The app may not call this API.
pub const WECOM_NO_PERMISSION: i64 = 48002;
/// The caller's IP is not among the app's trusted IPs; the errmsg names it.
pub const WECOM_UNTRUSTED_IP: i64 = 60020;
/// A token of another app of the corp was used.
pub const WECOM_OTHER_AGENT: i64 = 301002;

/// WeCom's usual errmsg for `code` (before its `, hint: […], from ip: …` tail).
pub fn wecom_errmsg(code: i64) -> Option<&'static str> {
    Some(match code {
        BUSY => "system busy",
        INVALID_CREDENTIAL => "invalid credential",
        INVALID_APPID => "invalid corpid",
        INVALID_ACCESS_TOKEN => "invalid access_token",
        INVALID_ARGS => "invalid args",
        ACCESS_TOKEN_MISSING => "access_token missing",
        APPID_MISSING => "corpid missing",
        APPSECRET_MISSING => "corpsecret missing",
        ACCESS_TOKEN_EXPIRED => "access_token expired",
        DAILY_QUOTA => "api freq out of limit",
        DATA_FORMAT => "data format error",
        WECOM_INVALID_SECRET => "secret is invalid",
        WECOM_INVALID_MESSAGE_TYPE => "invalid message type",
        WECOM_INVALID_RECEIVER => "invalid receiver",
        WECOM_INVALID_AGENTID => "invalid agentid",
        WECOM_AGENTID_MISSING => "missing agentid",
        WECOM_UNTRUSTED_IP => "not allow to access from your ip",
        WECOM_OTHER_AGENT => "not allow operate another agent with this accesstoken.",
        _ => return None,
    })
}

/// WeChat's usual errmsg for `code` (without the ` rid: …` suffix), when it
/// does not depend on the request.
pub fn errmsg(code: i64) -> Option<&'static str> {
    Some(match code {
        BUSY => "system error",
        INVALID_CREDENTIAL => "invalid credential, access_token is invalid or not latest",
        INVALID_GRANT_TYPE => "invalid grant_type",
        INVALID_OPENID => "invalid openid",
        INVALID_APPID => "invalid appid",
        INVALID_ACCESS_TOKEN => "invalid access_token",
        INVALID_ARGS => "invalid args",
        INVALID_APPSECRET => "invalid appsecret",
        ACCESS_TOKEN_MISSING => "access_token missing",
        APPID_MISSING => "appid missing",
        APPSECRET_MISSING => "appsecret missing",
        ACCESS_TOKEN_EXPIRED => "access_token expired",
        INVALID_URL => "invalid url",
        CONTENT_TOO_LARGE => "content size out of limit",
        REQUIRE_GET => "require GET method",
        REQUIRE_POST => "require POST method",
        DAILY_QUOTA => "reach max api daily quota limit",
        MINUTE_QUOTA => "api minute-quota reach limit must slower retry next minute",
        DATA_FORMAT => "data format error",
        API_UNAUTHORIZED => "api unauthorized",
        CLEAR_QUOTA_LIMIT => "forbid to clear quota because of reaching the limit",
        COMPONENT_UNAUTHORIZED => "component is not authorized by this account",
        COMPONENT_TICKET_EXPIRED => "component ticket is expired",
        COMPONENT_TICKET_INVALID => "component ticket is invalid",
        AUTH_CODE_INVALID => "invalid authorization code",
        AUTH_CODE_EXPIRED => "authorization code is expired",
        INVALID_COMPONENT => "invalid component",
        AUTHORIZER_REFRESH_TOKEN_INVALID => "refresh_token is invalid",
        COMPONENT_NEEDS_COMPONENT_TOKEN => {
            "must use api(api_component_token) to get token for component acct"
        }
        RID_NOT_FOUND => "rid not found",
        RID_MALFORMED => "rid is error",
        RID_NO_PERMISSION => "could not query this rid,no permission",
        CGI_PATH_NOT_FOUND => "cgi_path not found, please check",
        CGI_PATH_NO_PERMISSION => "could not use this cgi_path,no permission",
        INVALID_CODE => "invalid code",
        CODE_USED => "code been used",
        INVALID_REFRESH_TOKEN => "invalid refresh_token",
        REFRESH_TOKEN_EXPIRED => "refresh_token expired",
        CODE_BLOCKED => "code blocked",
        CODE_MISSING => "missing code",
        _ => return None,
    })
}

/// Whether an API call's `code` says the access token it carried is bad:
/// invalid or superseded (40001), malformed or foreign (40014), expired (42001).
pub fn token_rejected(code: i64) -> bool {
    matches!(
        code,
        INVALID_CREDENTIAL | INVALID_ACCESS_TOKEN | ACCESS_TOKEN_EXPIRED
    )
}

/// Whether `code` says the component_verify_ticket sent is unusable (61005
/// expired, 61006 not this platform's): wait for the next push, or ask for one
/// with `api_start_push_ticket` (families reference §3.1, §7.5).
pub fn component_ticket_rejected(code: i64) -> bool {
    matches!(code, COMPONENT_TICKET_EXPIRED | COMPONENT_TICKET_INVALID)
}

/// Whether `code` says the caller's IP must be allowed first (the whitelist).
pub fn ip_not_allowed(code: i64) -> bool {
    code == INVALID_IP || code == CLIENT_IP_NOT_REGISTERED || IP_UNCONFIRMED.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_are_the_three_the_protocol_names() {
        let rejected: Vec<i64> = (40000..43000).filter(|&c| token_rejected(c)).collect();
        assert_eq!(rejected, [40001, 40014, 42001]);
        assert!(!token_rejected(BUSY));
    }

    #[test]
    fn messages_are_wechats() {
        assert_eq!(errmsg(DAILY_QUOTA), Some("reach max api daily quota limit"));
        assert_eq!(errmsg(REQUIRE_POST), Some("require POST method"));
        assert_eq!(errmsg(INVALID_IP), None, "it names the caller's IP");
        assert!(ip_not_allowed(89503) && ip_not_allowed(40164) && !ip_not_allowed(40001));
    }

    #[test]
    fn component_ticket_errors_are_61005_and_61006() {
        let rejected: Vec<i64> = (61000..61100)
            .filter(|&c| component_ticket_rejected(c))
            .collect();
        assert_eq!(rejected, [61005, 61006]);
        assert_eq!(
            errmsg(COMPONENT_TICKET_INVALID),
            Some("component ticket is invalid")
        );
        assert!(ip_not_allowed(CLIENT_IP_NOT_REGISTERED));
    }

    #[test]
    fn wecom_messages_are_wecoms() {
        // As WeCom words them (families reference §1.2), where WeChat's differ.
        assert_eq!(wecom_errmsg(INVALID_APPID), Some("invalid corpid"));
        assert_eq!(errmsg(INVALID_APPID), Some("invalid appid"));
        assert_eq!(wecom_errmsg(DAILY_QUOTA), Some("api freq out of limit"));
        assert_eq!(
            wecom_errmsg(WECOM_OTHER_AGENT),
            Some("not allow operate another agent with this accesstoken.")
        );
        assert_eq!(
            wecom_errmsg(WECOM_UNTRUSTED_IP),
            Some("not allow to access from your ip")
        );
    }
}
