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
        .filter(|b| b.contains("location /cgi-bin/"))
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
        .args(["tree", "--locked", "--offline", "--workspace", "--depth", "1"])
        .current_dir(context.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the workspace does not load from the files the Dockerfile copies ({copied:?}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("wxgate v") && tree.contains("wxgate-gateway v"), "{tree}");
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
