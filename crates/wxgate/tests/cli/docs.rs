//! The documented command blocks run as written, offline, against `wxgate
//! dev`: every ```sh block of the README and `docs/` whose commands call
//! wxgate at its documented address (`wxgate:8080`, `127.0.0.1:8080`) with
//! curl. The others are listed with why they cannot run here (a server to
//! administer, a public host, a build), so a new block is either run or
//! seen to be skipped.

use std::path::{Path, PathBuf};

/// The ```sh blocks of a Markdown file: (first line number, text).
fn sh_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some((i + 2, String::new())),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Why a block cannot run offline against `wxgate dev`, or `None` when it can.
fn cannot_run(block: &str) -> Option<&'static str> {
    let commands: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let reasons: [(&str, &'static str); 8] = [
        ("sudo", "administers a server (sudo)"),
        ("systemctl", "administers a server (systemd)"),
        ("docker", "needs a Docker daemon"),
        ("example.com", "calls a public host"),
        ("10.0.0.", "calls the documented private network"),
        ("cargo ", "builds or tests the project itself"),
        ("scripts/test", "is the test suite itself"),
        (
            "nginx",
            "administers nginx (its config is run by cli::nginx)",
        ),
    ];
    for (word, reason) in reasons {
        if block.contains(word) {
            return Some(reason);
        }
    }
    let calls_wxgate = block.contains("wxgate:8080") || block.contains("127.0.0.1:8080");
    let only_curl = commands.iter().all(|c| {
        c.starts_with("curl ")
            || c.starts_with("T=$(curl ")
            // The continuation lines of a command: an argument, an option.
            || c.starts_with(['"', '-'])
            || c.ends_with('\\')
    });
    match (calls_wxgate, only_curl) {
        (true, true) => None,
        (false, _) => Some("does not call wxgate"),
        (true, false) => Some("runs more than curl"),
    }
}

/// Issue #31: docs contradicted the binary. Each runnable block runs with
/// `set -e`, curl failing on an HTTP error, the documented address replaced
/// by `wxgate dev`'s and the example appid by the demo one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_command_blocks_run_against_wxgate_dev() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut files: Vec<PathBuf> = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);

    let mut dev = crate::dev();
    let gateway = dev.url_after("  gateway ");
    let host = gateway.trim_start_matches("http://").to_owned();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("photo.jpg"),
        [0xff_u8, 0xd8, 0xff, 0xe0, 1, 2, 3],
    )
    .unwrap();
    crate::wait_ready(&gateway, 20, String::new).await;

    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for file in &files {
        let name = file.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        for (line, block) in sh_blocks(&text) {
            let at = format!("{name}:{line}");
            if let Some(reason) = cannot_run(&block) {
                skipped.push(format!("{at} ({reason})"));
                continue;
            }
            let script = format!(
                "set -euo pipefail\ncurl() {{ command curl -sS --fail-with-body \"$@\"; }}\n\
                 APPID=wxd000000000000001\nSECRET=demo0secret0000000000000000000000\n\
                 CLIENT_KEY=dev-client-key\n{}",
                block
                    .replace("wxgate:8080", &host)
                    .replace("127.0.0.1:8080", &host)
                    .replace("wx0123456789abcdef", "wxd000000000000001")
            );
            let cwd = work.path().to_owned();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("bash")
                    .arg("-c")
                    .arg(&script)
                    .current_dir(cwd)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{at} failed:\n{block}\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Every answer is wxgate's or WeChat's JSON without an error.
            let answers =
                serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>();
            let mut count = 0;
            for value in answers {
                let value = value.unwrap_or_else(|e| panic!("{at}: {e}: {stdout}"));
                assert_eq!(value["errcode"].as_i64().unwrap_or(0), 0, "{at}: {value}");
                count += 1;
            }
            assert!(count > 0, "{at}: no answer printed: {stdout}");
            ran.push(at);
        }
    }
    dev.signal("TERM");
    eprintln!("[docs] ran: {ran:?}");
    eprintln!("[docs] skipped: {skipped:?}");
    assert!(
        ran.iter().any(|a| a.starts_with("docs/facade.md"))
            && ran.iter().any(|a| a.starts_with("docs/proxy.md"))
            // The Open Platform's client API, against dev's demo platform.
            && ran.iter().any(|a| a.starts_with("docs/token-center.md")),
        "ran {ran:?}, skipped {skipped:?}"
    );
}
