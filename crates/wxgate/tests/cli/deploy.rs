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
