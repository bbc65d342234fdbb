//! Where WeChat's APIs live: the path roots under `api.weixin.qq.com` (and
//! `qyapi.weixin.qq.com`) whose paths WeChat answers in its own shape, with
//! an errcode, even when no such API exists.

/// Path roots of WeChat's APIs.
pub const ROOTS: &[&str] = &[
    "/cgi-bin/",
    "/sns/",
    "/wxa/",
    "/wxaapi/",
    "/datacube/",
    "/card/",
    "/customservice/",
    "/merchant/",
    "/semantic/",
    "/shop/",
    "/product/",
    "/union/",
    "/wxopen/",
    "/tcb/",
    "/channels/",
];

/// Whether `path` is under one of WeChat's API roots.
pub fn is_api_path(path: &str) -> bool {
    ROOTS.iter().any(|root| path.starts_with(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_those_under_a_root() {
        assert!(is_api_path("/cgi-bin/user/get"));
        assert!(is_api_path("/sns/oauth2/access_token"));
        assert!(
            !is_api_path("/cgi-bin"),
            "the root itself, without its slash"
        );
        assert!(!is_api_path("/healthz"));
        assert!(!is_api_path("/xcgi-bin/user/get"));
    }
}
