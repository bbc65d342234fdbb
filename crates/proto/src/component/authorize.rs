//! The authorization page an account administrator opens to authorize a
//! platform (families reference §3.3): the URL, built from a fresh
//! `pre_auth_code`. The page must be opened from a page on the platform's
//! 授权发起页域名; after approval the browser goes to
//! `redirect_uri?auth_code=…&expires_in=…`.

/// Which accounts the page offers (`auth_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// `1`: Official Accounts only.
    Official,
    /// `2`: Mini Programs only.
    Miniprogram,
    /// `3`: both.
    Both,
}

impl AuthType {
    /// The number the page takes.
    pub fn code(self) -> u8 {
        match self {
            AuthType::Official => 1,
            AuthType::Miniprogram => 2,
            AuthType::Both => 3,
        }
    }
}

/// What goes into an authorization page URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizePage<'a> {
    /// The platform's appid.
    pub component_appid: &'a str,
    /// From `api_create_preauthcode`.
    pub pre_auth_code: &'a str,
    /// Where the browser goes after approval (URL-encoded into the page URL).
    pub redirect_uri: &'a str,
    /// Which accounts the page offers; absent: WeChat's default (both).
    pub auth_type: Option<AuthType>,
    /// Only this account may authorize.
    pub biz_appid: Option<&'a str>,
}

impl AuthorizePage<'_> {
    /// The PC page: `https://mp.weixin.qq.com/cgi-bin/componentloginpage?…` (scanned with WeChat).
    pub fn pc_url(&self) -> String {
        format!(
            "https://mp.weixin.qq.com/cgi-bin/componentloginpage?{}",
            self.query()
        )
    }

    /// The page opened inside WeChat on a phone:
    /// `https://open.weixin.qq.com/wxaopen/safe/bindcomponent?action=bindcomponent&no_scan=1&…#wechat_redirect`.
    pub fn mobile_url(&self) -> String {
        format!(
            "https://open.weixin.qq.com/wxaopen/safe/bindcomponent?action=bindcomponent&no_scan=1&{}#wechat_redirect",
            self.query()
        )
    }

    fn query(&self) -> String {
        let mut q = format!(
            "component_appid={}&pre_auth_code={}&redirect_uri={}",
            encode(self.component_appid),
            encode(self.pre_auth_code),
            encode(self.redirect_uri)
        );
        if let Some(t) = self.auth_type {
            q.push_str(&format!("&auth_type={}", t.code()));
        }
        if let Some(biz) = self.biz_appid {
            q.push_str(&format!("&biz_appid={}", encode(biz)));
        }
        q
    }
}

/// The redirect after approval: `redirect_uri?auth_code=…&expires_in=…`
/// (`&` instead of `?` when the URI has a query already; a fragment stays last).
pub fn redirect_url(redirect_uri: &str, auth_code: &str, expires_in: u64) -> String {
    let (base, fragment) = match redirect_uri.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (redirect_uri, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut url = format!(
        "{base}{sep}auth_code={}&expires_in={expires_in}",
        encode(auth_code)
    );
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    url
}

/// Percent-encodes everything but RFC 3986's unreserved characters (as
/// JavaScript's `encodeURIComponent` does, apart from `!*'()`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pc_page_carries_every_parameter_encoded() {
        let page = AuthorizePage {
            component_appid: "wx9eeba14a01d3807f",
            pre_auth_code: "preauthcode@@@abc",
            redirect_uri: "https://biz.example.com/auth?x=1&y=中",
            auth_type: Some(AuthType::Both),
            biz_appid: Some("wx1234567890123456"),
        };
        assert_eq!(
            page.pc_url(),
            "https://mp.weixin.qq.com/cgi-bin/componentloginpage?component_appid=wx9eeba14a01d3807f\
             &pre_auth_code=preauthcode%40%40%40abc\
             &redirect_uri=https%3A%2F%2Fbiz.example.com%2Fauth%3Fx%3D1%26y%3D%E4%B8%AD\
             &auth_type=3&biz_appid=wx1234567890123456"
        );
        let mobile = AuthorizePage {
            auth_type: None,
            biz_appid: None,
            ..page
        }
        .mobile_url();
        assert!(mobile.starts_with(
            "https://open.weixin.qq.com/wxaopen/safe/bindcomponent?action=bindcomponent&no_scan=1&component_appid="
        ));
        assert!(mobile.ends_with("#wechat_redirect") && !mobile.contains("auth_type"));
    }

    #[test]
    fn the_redirect_appends_the_code() {
        assert_eq!(
            redirect_url("https://b.example/cb", "queryauthcode@@@x", 600),
            "https://b.example/cb?auth_code=queryauthcode%40%40%40x&expires_in=600"
        );
        assert_eq!(
            redirect_url("https://b.example/cb?s=1#top", "c", 600),
            "https://b.example/cb?s=1&auth_code=c&expires_in=600#top"
        );
    }
}
