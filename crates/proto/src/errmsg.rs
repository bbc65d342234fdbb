//! Reading WeChat's `errmsg` texts (protocol reference §4.4).

/// The caller IP an operator must add to the API whitelist, from a 40164
/// `errmsg` such as `invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist rid: …`.
/// This is `^invalid ip ([0-9A-Fa-f.:]+)`; the first address is the one to whitelist.
pub fn whitelist_ip(errmsg: &str) -> Option<&str> {
    let rest = errmsg.strip_prefix("invalid ip ")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The caller IP from a WeCom `errmsg` (families reference §1.2), such as
/// 60020's `not allow to access from your ip, hint: […], from ip: 1.2.3.4, more
/// info at …`: the address to add to the app's trusted IPs. This is
/// `from ip: ([0-9a-fA-F.:]+)`; `None` when the field is absent or empty
/// (42001 is sometimes answered with `from ip: ,`).
pub fn wecom_from_ip(errmsg: &str) -> Option<&str> {
    let (_, rest) = errmsg.split_once("from ip: ")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The caller IP from an Open Platform 61004 `errmsg` (`access clientip is not
/// registered requestIP: 1.2.3.4 rid: …`, families reference §3.2): the address
/// to add to the platform's IP whitelist. The `requestIP:` form is as seen in
/// developers' reports [?]; `None` when it is absent.
pub fn component_request_ip(errmsg: &str) -> Option<&str> {
    let (_, rest) = errmsg.split_once("requestIP: ")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::{component_request_ip, wecom_from_ip, whitelist_ip};

    #[test]
    fn the_component_whitelist_ip_is_read() {
        assert_eq!(
            component_request_ip(
                "access clientip is not registered requestIP: 10.1.2.3 rid: 1-2-3"
            ),
            Some("10.1.2.3")
        );
        assert_eq!(
            component_request_ip("access clientip is not registered"),
            None
        );
    }

    #[test]
    fn wecom_errmsgs_name_the_caller() {
        let observed = "not allow to access from your ip, hint: [1706180543_85_7a3ba83c10dc1a3d8ec7b1e1d7b6e4b8], from ip: 116.228.224.178, more info at https://open.work.weixin.qq.com/devtool/query?e=60020";
        assert_eq!(wecom_from_ip(observed), Some("116.228.224.178"));
        let empty = "access_token expired, hint: [x], from ip: , more info at https://open.work.weixin.qq.com/devtool/query?e=42001";
        assert_eq!(wecom_from_ip(empty), None);
        assert_eq!(wecom_from_ip("invalid credential"), None);
    }

    #[test]
    fn needs_the_prefix_and_an_address() {
        assert_eq!(whitelist_ip("invalid ip , not in whitelist"), None);
        assert_eq!(whitelist_ip("system error"), None);
        assert_eq!(whitelist_ip("invalid ip ::1"), Some("::1"));
    }
}
