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

#[cfg(test)]
mod tests {
    use super::whitelist_ip;

    #[test]
    fn needs_the_prefix_and_an_address() {
        assert_eq!(whitelist_ip("invalid ip , not in whitelist"), None);
        assert_eq!(whitelist_ip("system error"), None);
        assert_eq!(whitelist_ip("invalid ip ::1"), Some("::1"));
    }
}
