//! The settings every owner's section has, whatever its family (`[[apps]]`,
//! `[[wecom]]`, and the next ones): its identifier, its secret, how far
//! ahead its credentials are renewed, its JS safe domains. Checked once here.

use std::collections::BTreeMap;

use secrecy::SecretString;

use super::secrets::secret;
use super::Problems;

/// How far ahead of expiry credentials are renewed by default, seconds.
pub const DEFAULT_REFRESH_AHEAD_SECS: u64 = 600;

/// A required identifier (an AppID, a CorpID) at `field`; `how` tells how
/// to write one when it is malformed.
pub(super) fn identifier(
    value: Option<String>,
    field: &str,
    how: &str,
    p: &mut Problems,
) -> Option<String> {
    match value {
        None => {
            p.add(field, "missing");
            None
        }
        Some(id) if is_identifier(&id) => Some(id),
        Some(id) => {
            p.add(field, format!("{:?}: {how}", crate::logs::escaped(&id)));
            None
        }
    }
}

/// The owner's secret, given inline, by `_env` or by `_file`: `missing`
/// says what to set when none of the three is given (one that is given but
/// unusable, an unset variable or two at once, has its own problem).
pub(super) fn owner_secret(
    given: (Option<String>, Option<String>, Option<String>),
    field: &str,
    missing: &str,
    env: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Option<SecretString> {
    let (inline, env_name, file) = given;
    if inline.is_none() && env_name.is_none() && file.is_none() {
        p.add(field, missing);
    }
    secret(p, env, field, inline, env_name, file)
}

/// `refresh_ahead_secs` at `field`: 60 to 3600, by default [`DEFAULT_REFRESH_AHEAD_SECS`].
pub(super) fn refresh_ahead(value: Option<u64>, field: &str, p: &mut Problems) -> u64 {
    let secs = value.unwrap_or(DEFAULT_REFRESH_AHEAD_SECS);
    if !(60..=3600).contains(&secs) {
        p.add(field, format!("{secs}: use 60 to 3600 seconds"));
    }
    secs
}

/// The JS safe domains of the section at `at`, each checked, lowercased.
pub(super) fn js_domains(domains: &[String], at: &str, p: &mut Problems) -> Vec<String> {
    for (i, domain) in domains.iter().enumerate() {
        if let Err(e) = check_js_domain(domain) {
            p.add(format!("{at}.js_domains[{i}]"), e);
        }
    }
    domains.iter().map(|d| d.to_ascii_lowercase()).collect()
}

/// The web authorization domains (网页授权域名) of the section at `at`,
/// each a bare domain as for `js_domains`, lowercased. WeChat takes at most
/// two (families reference §4.d); more is a problem, since the console
/// cannot hold them.
pub(super) fn oauth_domains(domains: &[String], at: &str, p: &mut Problems) -> Vec<String> {
    for (i, domain) in domains.iter().enumerate() {
        if let Err(e) = check_js_domain(domain) {
            p.add(format!("{at}.oauth_domains[{i}]"), e);
        }
    }
    if domains.len() > 2 {
        p.add(
            format!("{at}.oauth_domains"),
            format!(
                "{} domains: WeChat takes at most 2 网页授权域名",
                domains.len()
            ),
        );
    }
    domains.iter().map(|d| d.to_ascii_lowercase()).collect()
}

/// An identifier as WeChat issues them (AppID, CorpID): ASCII letters,
/// digits, `_` and `-`, 1 to 64 of them, so it is safe in URLs, keys and logs.
pub(super) fn is_identifier(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A JS safe domain is a bare domain: no scheme, no port, no path (§5.3).
fn check_js_domain(domain: &str) -> Result<(), String> {
    if domain.contains("://") {
        return Err(format!(
            "{domain:?}: write the bare domain, without the scheme"
        ));
    }
    if domain.contains(['/', ':', '?', '#', ' ']) || domain.is_empty() {
        return Err(format!(
            "{domain:?}: write a bare domain like www.example.com"
        ));
    }
    Ok(())
}
