//! Unmodified WeChat SDKs from the registries, run against a wxgate URL by
//! the scripts in `tests/sdk/` (see `docs/sdk-recipes.md`). Each script takes
//! `BASE APPID SECRET [...]` and prints one JSON object. A missing SDK fails
//! the test, never skips it: `scripts/test` installs them.

use serde_json::Value;

/// `tests/sdk/` in the repository.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdk");

/// The SDK runs that exercise token, ticket, custom send and media: (name, program, script).
pub const CLIENTS: &[(&str, &str, &str)] = &[
    ("co-wechat-api", "node", "co-wechat-api.js"),
    ("wechat-api", "node", "wechat-api.js"),
    ("wechatpy", "python3", "wechatpy_client.py"),
];

/// The bytes every SDK script uploads and downloads: 150 KB.
pub fn media() -> Vec<u8> {
    (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Runs `tests/sdk/{script}` with `program` (`node`, `python3`); its JSON
/// answer, or its status and stderr when it failed.
pub async fn try_run(program: &str, script: &str, args: Vec<String>) -> Result<Value, String> {
    if program == "node" {
        assert!(
            std::path::Path::new(DIR).join("node_modules").is_dir(),
            "the npm SDKs are not installed: scripts/test runs npm ci --prefix tests/sdk"
        );
    }
    // coreutils' timeout: a script that loops (co-wechat-api does on some
    // answers) fails the test instead of hanging it.
    let (program, script) = (program.to_owned(), script.to_owned());
    let output = tokio::task::spawn_blocking({
        let script = script.clone();
        move || {
            std::process::Command::new("timeout")
                .arg("60")
                .arg(&program)
                .arg(format!("{DIR}/{script}"))
                .args(args)
                .output()
                .unwrap_or_else(|e| {
                    panic!("{program} must be installed (scripts/test installs it): {e}")
                })
        }
    })
    .await
    .unwrap();
    if !output.status.success() {
        return Err(format!(
            "{script}: {} (124: past 60 s)\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{script}: {e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// [`try_run`], failing the test when the script failed.
pub async fn run(program: &str, script: &str, args: Vec<String>) -> Value {
    try_run(program, script, args)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
