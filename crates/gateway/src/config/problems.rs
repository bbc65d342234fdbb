//! The problems a configuration has, and where each is: [`Problems`]
//! collects them while the sections are checked (so every one is reported at
//! once), [`locate`] names the line or `WXGATE_…` variable each comes from,
//! and [`ConfigError`] is what `config::load` returns.

use std::fmt;

/// The problems found so far, `(field path, what is wrong)`, in the order found.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<(String, String)>);

impl Problems {
    /// Records a problem when `value` is outside `range`.
    pub(super) fn within<T: PartialOrd + fmt::Display>(
        &mut self,
        path: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
        unit: &str,
    ) {
        if !range.contains(&value) {
            self.add(
                path,
                format!("{value}: use {} to {} {unit}", range.start(), range.end()),
            );
        }
    }

    pub(super) fn add(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.0.push((path.into(), problem.into()));
    }

    pub(super) fn fatal(&mut self, path: &str, problem: String) -> ConfigError {
        self.add(path, problem);
        ConfigError {
            problems: std::mem::take(&mut self.0),
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// `(field path, what is wrong)`, in the order found.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} problem(s) in the configuration:",
            self.problems.len()
        )?;
        for (path, problem) in &self.problems {
            writeln!(f, "  {path}: {problem}")?;
        }
        Ok(())
    }
}

/// `apps.0.secret` (serde's and the environment's spelling) as the problems
/// spell it: `apps[0].secret`.
pub(super) fn problem_path(dotted: &str) -> String {
    let mut out = String::new();
    for segment in dotted.split('.') {
        if segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Says where each problem comes from: the environment variable that set
/// it, else the line of the file that holds it (or the nearest enclosing
/// entry that does, for a setting that is missing).
pub(super) fn locate(
    problems: Vec<(String, String)>,
    text: &str,
    from_env: &[(String, String)],
) -> Vec<(String, String)> {
    let spanned = toml::de::DeTable::parse(text).ok();
    problems
        .into_iter()
        .map(|(path, problem)| {
            let variable = from_env.iter().find(|(set, _)| {
                let set = problem_path(set);
                path == set
                    || path.starts_with(&format!("{set}."))
                    || path.starts_with(&format!("{set}["))
            });
            let place = match (variable, &spanned) {
                (Some((_, variable)), _) => Some(format!("from {variable}")),
                (None, Some(table)) => {
                    line_of(table, &path).map(|span| format!("line {}", line_at(text, span)))
                }
                (None, None) => None,
            };
            match place {
                Some(place) if !problem.starts_with("from ") => {
                    (path, format!("{problem} ({place})"))
                }
                _ => (path, problem),
            }
        })
        .collect()
}

/// Where the setting at `path` (`apps[0].secret`) is written, or the
/// nearest enclosing table or entry that is: a byte offset.
fn line_of(root: &toml::Spanned<toml::de::DeTable<'_>>, path: &str) -> Option<usize> {
    use toml::de::DeValue;
    let mut table = root.get_ref();
    let mut found = None;
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == name) else {
            return found;
        };
        found = Some(key.span().start);
        let mut value = value;
        if let Some(i) = index {
            let DeValue::Array(items) = value.get_ref() else {
                return found;
            };
            let Some(item) = items.get(i) else {
                return found;
            };
            found = Some(item.span().start);
            value = item;
        }
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => return found,
        }
    }
    found
}
