//! Environment overrides: `WXGATE_SERVER__LISTEN=0.0.0.0:9000` sets
//! `server.listen`; `__` separates levels and a number indexes an array
//! (`WXGATE_APPS__0__REFRESH_AHEAD_SECS=900`). Every setting lives in a
//! section, so names without `__` (`WXGATE_ADMIN_KEY`, `WXGATE_LOG_FORMAT`)
//! are not overrides: they are left to whatever names them.

use std::collections::BTreeMap;

use toml::{Table, Value};

const PREFIX: &str = "WXGATE_";

/// (setting path, text) pairs: a problem, or a setting and the variable that set it.
pub(crate) type Pairs = Vec<(String, String)>;

/// Applies every `WXGATE_…` variable of `env` to `table`; returns the
/// problems, and each setting applied (`apps.0.secret`) with its variable.
pub(crate) fn apply(table: &mut Table, env: &BTreeMap<String, String>) -> (Pairs, Pairs) {
    let mut problems = Vec::new();
    let mut applied = Vec::new();
    for (name, value) in env {
        let Some(path) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if !path.contains("__") {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        match set(table, &keys, value) {
            Ok(()) => applied.push((keys.join("."), name.clone())),
            Err(e) => problems.push((keys.join("."), format!("from {name}: {e}"))),
        }
    }
    (problems, applied)
}

fn set(table: &mut Table, keys: &[String], raw: &str) -> Result<(), String> {
    let mut root = Value::Table(std::mem::take(table));
    let result = set_in(&mut root, keys, raw);
    if let Value::Table(t) = root {
        *table = t;
    }
    result
}

fn set_in(node: &mut Value, keys: &[String], raw: &str) -> Result<(), String> {
    let (first, rest) = keys.split_first().ok_or("empty name")?;
    let slot = child(node, first)?;
    if rest.is_empty() {
        *slot = typed(raw, first);
        Ok(())
    } else {
        set_in(slot, rest, raw)
    }
}

fn child<'a>(node: &'a mut Value, key: &str) -> Result<&'a mut Value, String> {
    match node {
        Value::Table(t) => Ok(t
            .entry(key.to_owned())
            .or_insert_with(|| Value::Table(Table::new()))),
        Value::Array(items) => {
            let index: usize = key
                .parse()
                .map_err(|_| format!("{key:?} is not an array index"))?;
            let len = items.len();
            items
                .get_mut(index)
                .ok_or_else(|| format!("index {index} is past the {len} entries"))
        }
        _ => Err(format!("cannot set {key:?} inside a scalar")),
    }
}

/// Numbers for the numeric settings (`…_secs`, `…_ms`, `…_bytes`,
/// `…_per_sec`, `max_connections`, `dedupe_capacity`, `agentid`), strings for
/// everything else: a token of digits stays a string.
fn typed(raw: &str, key: &str) -> Value {
    let numeric = ["_secs", "_ms", "_bytes", "_per_sec", "_per_caller"]
        .iter()
        .any(|suffix| key.ends_with(suffix))
        || ["max_connections", "dedupe_capacity", "agentid"].contains(&key);
    match raw.parse::<i64>() {
        Ok(n) if numeric => Value::Integer(n),
        _ => Value::String(raw.to_owned()),
    }
}
