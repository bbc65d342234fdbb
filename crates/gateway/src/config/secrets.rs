//! Secrets, wherever a section takes one (an app's secret, a server token, an
//! AES key, a webhook secret, the Redis URL, the admin key): given inline, by
//! `x_env` (a variable's name) or by `x_file` (a file's path), at most one of
//! them. A variable that is unset, or a file that cannot be read, is a problem.

use std::collections::BTreeMap;

use secrecy::SecretString;

use super::Problems;

/// The largest secret file read, bytes: a secret is a line, not a stream.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a secret file, refusing one larger than [`MAX_SECRET_FILE`] (say,
/// `/dev/zero` by mistake) instead of reading until memory runs out. The
/// configuration's `*_file` secrets and the CLI's `--admin-key-file` read
/// through it.
pub fn read_secret_file(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_SECRET_FILE} bytes; is it the right file?"
        )));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// A secret given inline, by `_env` or by `_file` (at most one of them); `None`
/// when absent or unreadable (the latter recorded as a problem).
pub(super) fn secret(
    p: &mut Problems,
    env: &BTreeMap<String, String>,
    path: &str,
    inline: Option<String>,
    env_name: Option<String>,
    file: Option<String>,
) -> Option<SecretString> {
    let given = [inline.is_some(), env_name.is_some(), file.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        p.add(path, "give only one of the value, _env and _file");
        return None;
    }
    let value = match (inline, env_name, file) {
        (Some(v), _, _) => v,
        (_, Some(var), _) => match env.get(&var) {
            Some(v) => v.clone(),
            None => {
                p.add(
                    format!("{path}_env"),
                    format!("environment variable {var} is not set"),
                );
                return None;
            }
        },
        (_, _, Some(file)) => match read_secret_file(&file) {
            Ok(v) => v.trim_end_matches(['\n', '\r']).to_owned(),
            Err(e) => {
                p.add(format!("{path}_file"), format!("reading {file}: {e}"));
                return None;
            }
        },
        _ => return None,
    };
    if value.is_empty() {
        p.add(path, "is empty");
        return None;
    }
    Some(SecretString::from(value))
}
