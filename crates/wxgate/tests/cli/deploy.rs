//! The deployment examples in `deploy/`, checked as files.

/// The `server { … }` blocks of an nginx configuration, by brace counting.
fn server_blocks(conf: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = conf;
    while let Some(start) = rest.find("\nserver {") {
        let body = &rest[start + 1..];
        let mut depth = 0;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        blocks.push(body[..end].to_owned());
        rest = &body[end..];
    }
    blocks
}

/// Issue #16 (19): the nginx example access-logged `GET /cgi-bin/token?…&secret=…`.
/// Every server that passes WeChat-compatible calls, the client API or the
/// proxy on logs with a format that leaves the query string out.
#[test]
fn nginx_example_never_logs_a_query_string_that_may_hold_a_secret() {
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/nginx.conf"
    ))
    .unwrap();
    let formats: Vec<(String, String)> = conf
        .split("log_format ")
        .skip(1)
        .map(|f| {
            let definition = &f[..f.find(';').unwrap()];
            let (name, pattern) = definition.split_once(' ').unwrap();
            (name.to_owned(), pattern.to_owned())
        })
        .collect();
    let internal: Vec<_> = server_blocks(&conf)
        .into_iter()
        .filter(|b| b.contains("cgi-bin"))
        .collect();
    assert!(!internal.is_empty(), "the example serves /cgi-bin/");
    for block in internal {
        let format = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("access_log "))
            .and_then(|l| l.trim_end_matches(';').split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no access_log with a format of its own in:\n{block}"));
        let (_, pattern) = formats
            .iter()
            .find(|(name, _)| name == format)
            .unwrap_or_else(|| panic!("log_format {format} is not defined"));
        for leak in [
            "$request ",
            "$request\"",
            "$request_uri",
            "$args",
            "$query_string",
            "$arg_",
        ] {
            assert!(!pattern.contains(leak), "{format} logs {leak}: {pattern}");
        }
    }
}

/// Issue #31: `deploy/Dockerfile` copied `Cargo.toml`, `Cargo.lock` and
/// `crates/`, but the workspace also lists `bench/floor`, so the image could
/// not build. The build stage's `COPY` sources are copied into an empty
/// directory, as `docker build` would, and cargo must load the workspace and
/// resolve it against the lock file from them alone.
#[test]
fn the_container_build_context_holds_the_whole_workspace() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
    let build_stage = dockerfile.split("\nFROM ").nth(1).expect("a build stage");
    let context = tempfile::tempdir().unwrap();
    let mut copied = Vec::new();
    for line in build_stage.lines() {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let words: Vec<&str> = args.split_whitespace().collect();
        assert!(
            !words.iter().any(|w| w.starts_with("--from")),
            "the build stage copies from the context only: {line}"
        );
        let (destination, sources) = words.split_last().unwrap();
        for source in sources {
            // `COPY a b ./` keeps names; `COPY dir ./dir` copies the directory's contents.
            let target = if destination.ends_with('/') {
                context.path().join(destination).join(source)
            } else {
                context.path().join(destination)
            };
            copy(&root.join(source), &target);
            copied.push(*source);
        }
    }
    assert!(copied.contains(&"Cargo.lock"), "{copied:?}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The whole graph for this platform, against the lock file, from the
    // registry cache this build already filled (`--locked` as the image does).
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--offline",
            "--workspace",
            "--depth",
            "1",
        ])
        .current_dir(context.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the workspace does not load from the files the Dockerfile copies ({copied:?}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(
        tree.contains("wxgate v") && tree.contains("wxgate-gateway v"),
        "{tree}"
    );
}

/// Copies a file, or a directory's files (no `target/`), as `COPY` does.
fn copy(from: &std::path::Path, to: &std::path::Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "target" {
                copy(&entry.path(), &to.join(entry.file_name()));
            }
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// Issue #31: alert rules for credentials at risk ship in `deploy/`, each
/// tested by `promtool test rules` (one case where it fires, one where it
/// does not), and every wxgate metric they name is one a real `wxgate dev`
/// exports, spelled as it is scraped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_pass_promtool_and_name_metrics_wxgate_exports() {
    let deploy = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy"));
    let promtool = |args: &[&str]| {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(deploy)
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool: {e} (scripts/test installs it: apt-get install prometheus)")
            });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        text
    };
    let checked = promtool(&["check", "rules", "wxgate.rules.yml"]);
    assert!(checked.contains("SUCCESS: 12 rules found"), "{checked}");
    promtool(&["test", "rules", "wxgate.rules.test.yml"]);
    // Every alert has a test case.
    let rules = std::fs::read_to_string(deploy.join("wxgate.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy.join("wxgate.rules.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no test"
        );
    }

    // The metrics a real run exports (`# TYPE` lines; counters are scraped as `_total`).
    let mut dev = crate::dev();
    let gateway = dev.url_after("  gateway ");
    // Warmed up: every credential fetched.
    crate::wait_ready(&gateway, 20, String::new).await;
    let scrape = reqwest::get(format!("{gateway}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    dev.signal("TERM");
    // Series alerts read exist, at zero, before anything happened.
    for series in [
        "wxgate_probe_rejections_total{appid=\"wxd000000000000001\"} 0",
        "wxgate_probe_rejections_total{appid=\"wwd0000000000000a1/1000002\"} 0",
        "wxgate_dedupe_hits_total{appid=\"wxd000000000000001\"} 0",
        "wxgate_credential_checks_refused_total{check=\"admin_key\"} 0",
    ] {
        assert!(
            scrape.lines().any(|l| l == series),
            "{series} missing:\n{scrape}"
        );
    }
    let exported: Vec<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| match l.split_once(' ') {
            Some((name, "counter")) => format!("{name}_total"),
            Some((name, _)) => name.to_owned(),
            None => l.to_owned(),
        })
        .collect();
    let named: std::collections::BTreeSet<&str> = rules
        .match_indices("wxgate_")
        .map(|(at, _)| {
            let rest = &rules[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| name.len() > "wxgate_".len() && !name.starts_with("wxgate_dev"))
        .collect();
    // Pushes by message type and outcome appear with the first push; every
    // other metric is in a fresh instance's scrape.
    let after_first_event = ["wxgate_pushes_total"];
    let missing: Vec<&str> = named
        .iter()
        .copied()
        .filter(|name| !exported.iter().any(|e| e == name))
        .collect();
    assert_eq!(missing, after_first_event, "exported: {exported:?}");
    // That one is spelled as wxgate registers it.
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../gateway/src/metrics.rs"
    ))
    .unwrap();
    for name in after_first_event {
        let registered = name
            .trim_start_matches("wxgate_")
            .trim_end_matches("_total");
        assert!(source.contains(&format!("\"{registered}\"")), "{name}");
    }
}
