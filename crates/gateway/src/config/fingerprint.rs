//! Which configuration an instance runs, as short hashes of the effective
//! settings (the file with its `WXGATE_…` overrides applied): the whole, so
//! that instances that disagree show it (`/readyz`, `/admin`); each section
//! a reload cannot change; and each entry (an owner, a client), so that a
//! reload can say what it added, changed and removed.
//!
//! Values a setting names by `x_env` or `x_file` are not read here: the
//! fingerprint covers where a secret comes from, not the secret.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use toml::{Table, Value};

/// The sections a running server cannot take up: a reload leaves them as
/// they are and says a restart is needed.
pub const RESTART_SECTIONS: [&str; 5] = ["server", "store", "upstream", "admin", "proxy"];

/// Hashes of a configuration's effective settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// The first 12 hex digits of the SHA-256 of everything.
    pub whole: String,
    /// Each of [`RESTART_SECTIONS`] (absent: the defaults).
    sections: BTreeMap<&'static str, [u8; 32]>,
    /// Each owner entry by its key (`[[apps]]`: the appid; `[[wecom]]`:
    /// `corpid/name`, the name defaulting to the agentid).
    owners: BTreeMap<String, [u8; 32]>,
    /// Each `[[clients]]` entry by its name.
    clients: BTreeMap<String, [u8; 32]>,
}

/// What changed between two configurations.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    /// Owners only the new one has.
    pub added: Vec<String>,
    /// Owners only the old one has.
    pub removed: Vec<String>,
    /// Owners whose entries differ.
    pub changed: Vec<String>,
    /// Clients added, removed or changed, by name.
    pub clients: Vec<String>,
    /// Sections that differ but need a restart to take effect.
    pub restart_required: Vec<&'static str>,
}

impl Changes {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.clients.is_empty()
            && self.restart_required.is_empty()
    }
}

fn digest(value: &Value) -> [u8; 32] {
    // `toml::Table` keeps its keys sorted, so equal settings give equal bytes.
    let bytes = serde_json::to_vec(value).expect("a TOML value serialises");
    Sha256::digest(bytes).into()
}

fn str_of<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry.get(key).and_then(Value::as_str)
}

impl Fingerprint {
    /// The fingerprint of the effective settings `table`.
    pub(super) fn of(table: &Table) -> Self {
        let whole = digest(&Value::Table(table.clone()));
        let sections = RESTART_SECTIONS
            .into_iter()
            .filter_map(|name| Some((name, digest(table.get(name)?))))
            .collect();
        let entries = |name: &str| {
            (table.get(name).and_then(Value::as_array))
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
        };
        let mut owners = BTreeMap::new();
        for app in entries("apps") {
            if let Some(appid) = str_of(app, "appid") {
                owners.insert(appid.to_owned(), digest(app));
            }
        }
        for app in entries("wecom") {
            let name = str_of(app, "name")
                .map(str::to_owned)
                .or_else(|| app.get("agentid").map(|a| a.to_string()));
            if let (Some(corp), Some(name)) = (str_of(app, "corpid"), name) {
                owners.insert(format!("{corp}/{name}"), digest(app));
            }
        }
        for component in entries("components") {
            if let Some(appid) = str_of(component, "component_appid") {
                owners.insert(appid.to_owned(), digest(component));
            }
        }
        let clients = entries("clients")
            .filter_map(|c| Some((str_of(c, "name")?.to_owned(), digest(c))))
            .collect();
        Self {
            whole: hex::encode(&whole[..6]),
            sections,
            owners,
            clients,
        }
    }

    /// What changes from `self` to `new`.
    pub fn changes_to(&self, new: &Fingerprint) -> Changes {
        let (old_owners, new_owners) = (&self.owners, &new.owners);
        let added = (new_owners.keys())
            .filter(|k| !old_owners.contains_key(*k))
            .cloned()
            .collect();
        let removed = (old_owners.keys())
            .filter(|k| !new_owners.contains_key(*k))
            .cloned()
            .collect();
        let changed = (new_owners.iter())
            .filter(|(k, v)| old_owners.get(*k).is_some_and(|old| old != *v))
            .map(|(k, _)| k.clone())
            .collect();
        let names: BTreeSet<&String> = self.clients.keys().chain(new.clients.keys()).collect();
        let clients = (names.into_iter())
            .filter(|name| self.clients.get(*name) != new.clients.get(*name))
            .cloned()
            .collect();
        let restart_required = RESTART_SECTIONS
            .into_iter()
            .filter(|s| self.sections.get(s) != new.sections.get(s))
            .collect();
        Changes {
            added,
            removed,
            changed,
            clients,
            restart_required,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(toml: &str) -> Fingerprint {
        Fingerprint::of(&toml.parse::<Table>().unwrap())
    }

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
[[apps]]
appid = "wx1"
secret = "s"
token = "t"
[[apps]]
appid = "wx2"
secret = "s"
[[wecom]]
corpid = "ww1"
agentid = 1000002
secret = "s"
[[clients]]
name = "shop"
key_sha256 = "00"
apps = ["*"]
"#;

    #[test]
    fn equal_settings_give_equal_fingerprints_whatever_the_layout() {
        let spaced = BASE
            .replace(" = ", "   =   ")
            .replace("[server]", "# note\n[server]");
        assert_eq!(of(BASE), of(&spaced));
        assert_eq!(of(BASE).whole.len(), 12);
        assert!(of(BASE).changes_to(&of(&spaced)).is_empty());
    }

    #[test]
    fn changes_name_each_owner_client_and_restart_section() {
        let new = BASE
            .replace("token = \"t\"", "token = \"t2\"")
            .replace("appid = \"wx2\"", "appid = \"wx3\"")
            .replace("name = \"shop\"", "name = \"shop2\"")
            .replace("127.0.0.1:8080", "127.0.0.1:9090");
        let changes = of(BASE).changes_to(&of(&new));
        assert_eq!(changes.added, ["wx3"]);
        assert_eq!(changes.removed, ["wx2"]);
        assert_eq!(changes.changed, ["wx1"]);
        assert_eq!(changes.clients, ["shop", "shop2"]);
        assert_eq!(changes.restart_required, ["server"]);
        assert_ne!(of(BASE).whole, of(&new).whole);
        // The WeCom app is known by corpid/agentid when it has no name.
        assert!(of(BASE).owners.contains_key("ww1/1000002"));
    }
}
