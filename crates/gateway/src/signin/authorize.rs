//! The web authorization page's URL (families reference §4.d.1), checked
//! before anything is built: the scope, the state, and the redirect's host
//! against the app's `oauth_domains` (网页授权域名: an exact full-domain
//! match, no IP or port). Pure: no I/O.

use super::SignInError;

/// WeChat's authorization page.
pub const AUTHORIZE_URL: &str = "https://open.weixin.qq.com/connect/oauth2/authorize";

/// The scopes: silent (openid only) or the consent page (userinfo).
pub const SCOPES: &[&str] = &["snsapi_base", "snsapi_userinfo"];

/// The URL to send the user to: `appid`, the URL-encoded `redirect_uri`,
/// `response_type=code`, `scope`, `state` in that order (the order matters
/// in practice), and the mandatory `#wechat_redirect`.
pub fn authorize_url(
    appid: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    oauth_domains: &[String],
) -> Result<String, SignInError> {
    if !SCOPES.contains(&scope) {
        return Err(SignInError::Invalid(format!(
            "scope {:?}: use snsapi_base (silent, openid only) or snsapi_userinfo (consent page)",
            crate::logs::escaped(scope)
        )));
    }
    check_state(state)?;
    check_redirect(redirect_uri, oauth_domains)?;
    let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    Ok(format!(
        "{AUTHORIZE_URL}?appid={appid}&redirect_uri={}&response_type=code&scope={scope}&state={}#wechat_redirect",
        encode(redirect_uri),
        encode(state),
    ))
}

/// WeChat's rule for `state`: letters and digits, at most 128. Required
/// here: it is what ties the redirect to the session that started it (CSRF).
fn check_state(state: &str) -> Result<(), SignInError> {
    if state.is_empty() || state.len() > 128 || !state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SignInError::Invalid(
            "state: 1 to 128 letters and digits, random per sign-in; check it when the user \
             comes back (it is what ties the redirect to the session that started it)"
                .into(),
        ));
    }
    Ok(())
}

/// The redirect must be http(s) on one of the domains exactly (a subdomain
/// is another domain to WeChat), without a port or credentials.
pub fn check_redirect(redirect_uri: &str, oauth_domains: &[String]) -> Result<(), SignInError> {
    let shown = crate::logs::escaped(redirect_uri);
    let parsed = url::Url::parse(redirect_uri)
        .map_err(|e| SignInError::Invalid(format!("redirect_uri {shown:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SignInError::Invalid(format!(
            "redirect_uri {shown:?}: use an http or https URL"
        )));
    }
    if oauth_domains.is_empty() {
        return Err(SignInError::RedirectNotAllowed(
            "this app has no oauth_domains: no redirect_uri is allowed".into(),
        ));
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let on_domain = oauth_domains.contains(&host);
    if !on_domain || parsed.port().is_some() || !parsed.username().is_empty() {
        return Err(SignInError::RedirectNotAllowed(format!(
            "redirect_uri {shown:?} is not on the app's oauth_domains ({}); WeChat matches the \
             whole domain, without a port",
            oauth_domains.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec!["www.example.com".into()]
    }

    #[test]
    fn the_url_is_wechats_with_the_redirect_encoded() {
        let url = authorize_url(
            "wx1",
            "https://www.example.com/cb?next=/a b",
            "snsapi_userinfo",
            "s1",
            &domains(),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1\
             &redirect_uri=https%3A%2F%2Fwww.example.com%2Fcb%3Fnext%3D%2Fa+b\
             &response_type=code&scope=snsapi_userinfo&state=s1#wechat_redirect"
        );
    }

    #[test]
    fn only_the_exact_domains_are_allowed() {
        let allowed = |uri: &str| check_redirect(uri, &domains());
        assert!(allowed("http://WWW.example.com/x").is_ok());
        for refused in [
            "https://example.com/",
            "https://pay.www.example.com/",
            "https://www.example.com:8443/",
            "https://user@www.example.com/",
            "https://www.example.com.evil.cn/",
        ] {
            assert!(
                matches!(allowed(refused), Err(SignInError::RedirectNotAllowed(_))),
                "{refused}"
            );
        }
        assert!(matches!(
            allowed("javascript:alert(1)"),
            Err(SignInError::Invalid(_))
        ));
        assert!(matches!(
            check_redirect("https://www.example.com/", &[]),
            Err(SignInError::RedirectNotAllowed(_))
        ));
    }

    #[test]
    fn scope_and_state_follow_wechats_rules() {
        let url = |scope: &str, state: &str| {
            authorize_url("wx1", "https://www.example.com/", scope, state, &domains())
        };
        assert!(url("snsapi_base", "abc123").is_ok());
        assert!(url("snsapi_login", "abc").is_err());
        assert!(url("snsapi_base", "").is_err());
        assert!(url("snsapi_base", "a&b").is_err());
        assert!(url("snsapi_base", &"a".repeat(129)).is_err());
    }
}
