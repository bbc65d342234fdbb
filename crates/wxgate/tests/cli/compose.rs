//! `deploy/compose.yaml` (two wxgate instances and Redis behind nginx), proved
//! as a topology without Docker: the file is read, everything it mounts and
//! runs is checked against the repository and the CLI, and the same topology
//! is started from it natively on free loopback ports: a real `redis-server`
//! with the compose's command, two real `wxgate serve` with the compose's
//! command, configuration file and environment (the service names replaced by
//! loopback addresses, WeChat by the simulator), and a real nginx with
//! `deploy/nginx.conf` and the compose's instance list (site-specific lines
//! replaced as in `cli::nginx`). The healthchecks run as written.
//!
//! No YAML crate is in the lock file (nor available offline), so the file is
//! read by [`yaml`], which knows the subset compose.yaml keeps to and panics on
//! anything else.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::nginx;

/// A YAML subset into JSON: block mappings and sequences (`- key: value`
/// items included), comments, plain, single- and double-quoted scalars (all
/// kept as strings), and flow sequences written as JSON. Anchors, aliases,
/// tags, flow mappings and block scalars panic.
pub(crate) mod yaml {
    use serde_json::{Map, Value};

    struct Line {
        indent: usize,
        text: String,
        number: usize,
    }

    pub(crate) fn parse(text: &str) -> Value {
        let mut lines: Vec<Line> = text
            .lines()
            .enumerate()
            .filter_map(|(i, raw)| {
                let text = strip_comment(raw).trim_end();
                let body = text.trim_start();
                (!body.is_empty()).then(|| Line {
                    indent: text.len() - body.len(),
                    text: body.to_owned(),
                    number: i + 1,
                })
            })
            .collect();
        assert!(
            lines.iter().all(|l| !l.text.starts_with("---")),
            "one document"
        );
        let mut at = 0;
        let value = block(&mut lines, &mut at, 0);
        assert_eq!(
            at,
            lines.len(),
            "line {}: unexpected",
            lines[at.min(lines.len() - 1)].number
        );
        value
    }

    /// The line without its comment (`#` at its start or after a space, outside quotes).
    fn strip_comment(line: &str) -> &str {
        let (mut single, mut double, mut previous) = (false, false, ' ');
        for (i, c) in line.char_indices() {
            match c {
                '\'' if !double => single = !single,
                '"' if !single && previous != '\\' => double = !double,
                '#' if !single && !double && previous.is_whitespace() => return &line[..i],
                _ => {}
            }
            previous = c;
        }
        line
    }

    fn is_item(text: &str) -> bool {
        text == "-" || text.starts_with("- ")
    }

    /// `key: rest` (rest possibly empty), when the line is a mapping entry.
    fn entry(text: &str) -> Option<(String, &str)> {
        let (key, rest) = if let Some(quoted) = text.strip_prefix('"') {
            let end = quoted.find('"')? + 1;
            (
                scalar(&text[..=end], 0).as_str()?.to_owned(),
                &text[end + 1..],
            )
        } else {
            let colon = text
                .find(": ")
                .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
            if text[..colon].contains(['[', '\'', '"']) {
                return None;
            }
            (text[..colon].to_owned(), &text[colon..])
        };
        let rest = rest.strip_prefix(':')?;
        (rest.is_empty() || rest.starts_with(' ')).then(|| (key, rest.trim()))
    }

    fn block(lines: &mut [Line], at: &mut usize, indent: usize) -> Value {
        if is_item(&lines[*at].text) {
            sequence(lines, at, indent)
        } else {
            mapping(lines, at, indent)
        }
    }

    fn sequence(lines: &mut [Line], at: &mut usize, indent: usize) -> Value {
        let mut items = Vec::new();
        while *at < lines.len() && lines[*at].indent == indent && is_item(&lines[*at].text) {
            let rest = lines[*at].text[1..].trim_start().to_owned();
            if rest.is_empty() {
                *at += 1;
                let inner = lines[*at].indent;
                assert!(inner > indent, "line {}: an empty item", lines[*at].number);
                items.push(block(lines, at, inner));
            } else if entry(&rest).is_some() {
                // `- key: value`: a mapping whose first entry is on this line.
                let line = &mut lines[*at];
                line.indent += line.text.len() - rest.len();
                line.text = rest;
                let inner = line.indent;
                items.push(mapping(lines, at, inner));
            } else {
                items.push(scalar(&rest, lines[*at].number));
                *at += 1;
            }
        }
        Value::Array(items)
    }

    fn mapping(lines: &mut [Line], at: &mut usize, indent: usize) -> Value {
        let mut map = Map::new();
        while *at < lines.len() && lines[*at].indent == indent && !is_item(&lines[*at].text) {
            let number = lines[*at].number;
            let (key, rest) = entry(&lines[*at].text)
                .unwrap_or_else(|| panic!("line {number}: not `key: value`"));
            let rest = rest.to_owned();
            *at += 1;
            let value = if !rest.is_empty() {
                scalar(&rest, number)
            } else if *at < lines.len()
                && (lines[*at].indent > indent
                    || (lines[*at].indent == indent && is_item(&lines[*at].text)))
            {
                let inner = lines[*at].indent;
                block(lines, at, inner)
            } else {
                Value::Null
            };
            assert!(
                map.insert(key.clone(), value).is_none(),
                "line {number}: {key} twice"
            );
        }
        if *at < lines.len() {
            assert!(
                lines[*at].indent < indent,
                "line {}: indentation",
                lines[*at].number
            );
        }
        Value::Object(map)
    }

    fn scalar(text: &str, number: usize) -> Value {
        match text.chars().next() {
            // YAML's double-quoted escapes are JSON's (and a few more, not used).
            Some('"' | '[') => {
                serde_json::from_str(text).unwrap_or_else(|e| panic!("line {number}: {e}: {text}"))
            }
            Some('\'') => Value::String(
                text.strip_prefix('\'')
                    .and_then(|t| t.strip_suffix('\''))
                    .unwrap_or_else(|| panic!("line {number}: {text}"))
                    .replace("''", "'"),
            ),
            Some('{' | '&' | '*' | '!' | '|' | '>' | '%' | '@' | '`') => {
                panic!("line {number}: outside the subset this reader knows: {text}")
            }
            _ => Value::String(text.to_owned()),
        }
    }
}

fn deploy_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name)
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("a string: {v}")))
        .collect()
}

/// A process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a compose healthcheck's `test` (`["CMD", …]`) natively, with
/// `replace` applied to each argument: whether it passed.
fn healthy(test: &[&str], replace: &dyn Fn(&str) -> String) -> bool {
    let (first, argv) = test.split_first().expect("a healthcheck test");
    assert_eq!(*first, "CMD", "{test:?}");
    let argv: Vec<String> = argv.iter().map(|a| replace(a)).collect();
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]))
        .success()
}

/// Waits until `check` passes, else panics naming `what`.
async fn until_healthy(what: &str, check: impl Fn() -> bool + Send + Sync + 'static) {
    let check = std::sync::Arc::new(check);
    wxgate_testkit::wait_until(
        std::time::Duration::from_secs(10),
        format!("{what} passing its compose healthcheck"),
        async || {
            let c = check.clone();
            tokio::task::spawn_blocking(move || c()).await.unwrap()
        },
    )
    .await;
}

/// Client API token requests (`/v1/apps/{appid}/{kind}`) counted by the instance at `url`.
async fn token_requests(http: &reqwest::Client, url: &str) -> u64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("wxgate_http_request_duration_seconds_count{")
                && l.contains("route=\"/v1/apps/{appid}/{kind}\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// Issue #31: "Include a compose example of two instances and Redis behind
/// nginx": the example, run as the same topology natively.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_example_runs_two_instances_on_one_redis_behind_nginx() {
    let compose = yaml::parse(&std::fs::read_to_string(deploy_path("compose.yaml")).unwrap());
    let services = compose["services"].as_object().expect("services");
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, ["nginx", "redis", "wxgate-a", "wxgate-b"]);
    let instances = ["wxgate-a", "wxgate-b"];

    // --- the file, checked ---------------------------------------------------
    // Every file it mounts is in deploy/; every named volume is declared.
    let mut mounts: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for (name, service) in services {
        for volume in service.get("volumes").map(strings).unwrap_or_default() {
            let parts: Vec<&str> = volume.split(':').collect();
            let (source, target) = (parts[0], parts[1]);
            if let Some(file) = source.strip_prefix("./") {
                assert!(
                    deploy_path(file).is_file(),
                    "{name} mounts {source}: not in deploy/"
                );
                assert_eq!(parts.get(2), Some(&"ro"), "{name}: {volume} read-only");
            } else if !source.starts_with('/') {
                assert!(
                    compose["volumes"].as_object().unwrap().contains_key(source),
                    "{name}: volume {source} is not declared"
                );
            }
            mounts
                .entry(name.as_str())
                .or_default()
                .insert(target.to_owned(), source.to_owned());
        }
    }
    // Redis: persistent (append-only, its data in a volume), healthy before the instances start.
    let redis = &services["redis"];
    assert!(redis["image"].as_str().unwrap().starts_with("redis:"));
    let redis_command = strings(&redis["command"]);
    assert_eq!(redis_command[0], "redis-server");
    assert!(
        redis_command
            .windows(2)
            .any(|w| w == ["--appendonly", "yes"]),
        "{redis_command:?}"
    );
    assert_eq!(mounts["redis"]["/data"], "redis-data");

    // The instances: one service twice, built from deploy/Dockerfile at the root.
    assert_eq!(
        services["wxgate-a"], services["wxgate-b"],
        "the same instance twice"
    );
    let wxgate = &services["wxgate-a"];
    assert_eq!(wxgate["build"]["context"], "..");
    assert_eq!(wxgate["build"]["dockerfile"], "deploy/Dockerfile");
    assert!(deploy_path("../deploy/Dockerfile").is_file());
    let dockerfile = std::fs::read_to_string(deploy_path("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("\nENTRYPOINT [\"/usr/local/bin/wxgate\"]\n"),
        "the command's arguments are wxgate's"
    );
    let command = strings(&wxgate["command"]);
    assert_eq!(command[..2], ["serve", "-c"], "{command:?}");
    let config_target = command[2];
    let config_file = mounts["wxgate-a"][config_target]
        .strip_prefix("./")
        .expect("the configuration is a file of deploy/");
    let config = std::fs::read_to_string(deploy_path(config_file)).unwrap();
    assert_eq!(
        wxgate["depends_on"]["redis"]["condition"],
        "service_healthy"
    );
    assert_eq!(
        services["nginx"]["depends_on"].as_object().unwrap().len(),
        2
    );
    for instance in instances {
        assert_eq!(
            services["nginx"]["depends_on"][instance]["condition"],
            "service_healthy"
        );
    }
    // Its environment: every variable the configuration names, secrets from
    // compose's own environment (`${VAR:?…}`), never inline.
    let environment = wxgate["environment"]
        .as_object()
        .expect("an environment map");
    let named: Vec<&str> = config
        .lines()
        .filter_map(|l| {
            l.split_once("_env = \"")
                .map(|(_, rest)| rest.trim_end_matches('"'))
        })
        .collect();
    assert!(named.contains(&"WXGATE_REDIS_URL"), "{named:?}");
    for variable in &named {
        let value = environment[*variable]
            .as_str()
            .unwrap_or_else(|| panic!("{variable} not given"));
        if *variable == "WXGATE_REDIS_URL" {
            assert_eq!(
                value, "redis://redis:6379/0",
                "the redis service, unpublished"
            );
        } else {
            assert!(
                value.starts_with(&format!("${{{variable}:?")) && value.ends_with('}'),
                "{variable} comes from compose's environment: {value}"
            );
        }
    }
    assert!(config.contains("backend = \"redis\""), "{config}");
    // The trusted proxy is the compose network (nginx's address there).
    let subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .unwrap();
    assert!(
        config.contains(&format!("trusted_proxies = [\"{subnet}\"]")),
        "compose.wxgate.toml trusts {subnet}"
    );
    // nginx: deploy/nginx.conf as the site, the instance list where its upstream includes it.
    assert!(services["nginx"]["image"]
        .as_str()
        .unwrap()
        .starts_with("nginx:"));
    let nginx_mounts = &mounts["nginx"];
    assert_eq!(
        nginx_mounts["/etc/nginx/conf.d/default.conf"],
        "./nginx.conf"
    );
    let upstream_file = nginx_mounts["/etc/nginx/wxgate-upstream.conf"]
        .strip_prefix("./")
        .unwrap();
    assert!(nginx::deploy_file("nginx.conf").contains("include /etc/nginx/wxgate-upstream.conf;"));
    let healthcheck = strings(&wxgate["healthcheck"]["test"]);
    assert!(
        healthcheck.iter().any(|a| a.contains("/healthz")),
        "{healthcheck:?}"
    );

    // --- the topology, started --------------------------------------------------
    let dir = tempfile::tempdir().unwrap();
    // redis: the compose's command, on a free loopback port, its data in a temp dir.
    let redis_port = nginx::free_port().to_string();
    let _redis = Process(
        Command::new(redis_command[0])
            .args(&redis_command[1..])
            .args(["--port", &redis_port, "--bind", "127.0.0.1", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e} (scripts/test installs it)")),
    );
    let redis_check: Vec<String> = strings(&redis["healthcheck"]["test"])
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    let port = redis_port.clone();
    until_healthy("redis", move || {
        // Asked on this port (redis-cli's options come before the command).
        let mut test: Vec<&str> = redis_check.iter().map(String::as_str).collect();
        assert_eq!(test[1], "redis-cli");
        test.splice(2..2, ["-p", &port]);
        healthy(&test, &|a| a.to_owned())
    })
    .await;
    assert!(
        std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("appendonly")),
        "append-only"
    );

    // WeChat: the simulator, with the configuration's appid.
    let appid = config
        .lines()
        .find_map(|l| l.strip_prefix("appid = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let sim = wxgate_sim::Simulator::spawn(wxgate_sim::SimConfig::with_apps(vec![
        wxgate_sim::SimApp::new(&appid, "compose-secret"),
    ]))
    .await
    .unwrap();
    // compose's environment interpolated, the service name replaced by the
    // address redis has here; the image's listen override with a free port;
    // WeChat and nginx's address (the trusted proxy) are this test's.
    let (wx_token, aes_key) = (
        "compose-token",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    );
    let mut env: Vec<(String, String)> = environment
        .iter()
        .map(|(k, v)| {
            let value = match k.as_str() {
                "WX_SECRET" => "compose-secret".to_owned(),
                "WX_TOKEN" => wx_token.to_owned(),
                "WX_AES_KEY" => aes_key.to_owned(),
                "WXGATE_ADMIN_KEY" => "compose-admin-key-0001".to_owned(),
                _ => v
                    .as_str()
                    .unwrap()
                    .replace("redis:6379", &format!("127.0.0.1:{redis_port}")),
            };
            (k.clone(), value)
        })
        .collect();
    let listen = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ENV WXGATE_SERVER__LISTEN="))
        .expect("the image's listen override")
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(listen, "0.0.0.0:8080");
    env.extend([
        ("WXGATE_SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("WXGATE_UPSTREAM__BASE_URL".to_owned(), sim.url()),
        (
            "WXGATE_SERVER__TRUSTED_PROXIES__0".to_owned(),
            "127.0.0.1".to_owned(),
        ),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config_path = deploy_path(config_file);
    let config_path = config_path.to_str().unwrap();
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    for instance in instances {
        // The compose's command, the mounted file's path replaced by the file.
        let args: Vec<&str> = command
            .iter()
            .map(|a| if *a == config_target { config_path } else { *a })
            .collect();
        let log = dir.path().join(format!("{instance}.log"));
        let mut server = wxgate_testkit::process::Server::start(
            env!("CARGO_BIN_EXE_wxgate"),
            &args,
            &env,
            Some(&log),
        );
        let url = server.url_after("listening on");
        let port = url.rsplit(':').next().unwrap().to_owned();
        let check: Vec<String> = healthcheck.iter().map(|a| (*a).to_owned()).collect();
        until_healthy(instance, move || {
            let test: Vec<&str> = check.iter().map(String::as_str).collect();
            healthy(&test, &|a| {
                a.replace("127.0.0.1/8080", &format!("127.0.0.1/{port}"))
            })
        })
        .await;
        servers.push(server);
        urls.push(url);
    }
    for url in &urls {
        crate::wait_ready(url, 20, String::new).await;
    }

    // nginx: deploy/nginx.conf, its instance list the compose's, each service
    // name replaced by the address the instance has here.
    let (public, internal) = (nginx::free_port(), nginx::free_port());
    let addresses: Vec<(String, String)> = instances
        .iter()
        .zip(&urls)
        .map(|(name, url)| {
            (
                format!("{name}:8080"),
                url.trim_start_matches("http://").to_owned(),
            )
        })
        .collect();
    let addresses: Vec<(&str, &str)> = addresses
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let upstream = nginx::upstream_file(dir.path(), upstream_file, &addresses);
    let site = nginx::site_config(dir.path(), &upstream, public, internal);
    let (_nginx, error_log) = nginx::start(dir.path(), &site);
    let internal_url = format!("http://127.0.0.1:{internal}");
    let public_url = format!("http://127.0.0.1:{public}");
    crate::wait_ready(&internal_url, 10, || {
        std::fs::read_to_string(&error_log).unwrap_or_default()
    })
    .await;

    // --- what it shows -------------------------------------------------------------
    let http = reqwest::Client::new();
    let client_key = "replace-me-with-a-long-random-client-key";
    assert!(config.contains(&crate::sha256_hex(client_key)));
    let (http, internal_url, appid) = (&http, &internal_url, &appid);
    let token_through_nginx = move || async move {
        let response = http
            .get(format!("{internal_url}/v1/apps/{appid}/access_token"))
            .bearer_auth(client_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned()
    };
    // Round robin: each call through nginx is served by the other instance.
    let mut served_by = Vec::new();
    let mut tokens = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let before = [
            token_requests(http, &urls[0]).await,
            token_requests(http, &urls[1]).await,
        ];
        tokens.insert(token_through_nginx().await);
        let after = [
            token_requests(http, &urls[0]).await,
            token_requests(http, &urls[1]).await,
        ];
        let which: Vec<usize> = (0..2).filter(|i| after[*i] == before[*i] + 1).collect();
        assert_eq!(
            which.len(),
            1,
            "one instance served it: {before:?} {after:?}"
        );
        served_by.push(which[0]);
    }
    assert!(
        served_by.windows(2).all(|w| w[0] != w[1]),
        "alternately: {served_by:?}"
    );
    // The same token from both: one fetch, shared through Redis.
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(
        sim.stats().app(appid).calls("/cgi-bin/stable_token"),
        1,
        "one fetch for both"
    );

    // A push through the public side (as WeChat sends it), answered by the rule.
    let push = |url: String| {
        let appid = appid.clone();
        tokio::task::spawn_blocking(move || {
            crate::wxgate(&[
                "push",
                "--url",
                &url,
                "--token",
                wx_token,
                "--appid",
                &appid,
                "--aes-key",
                aes_key,
                "--mode",
                "safe",
                "--text",
                "help",
            ])
        })
    };
    let (ok, out, err) = push(format!("{public_url}/wx/{appid}")).await.unwrap();
    assert!(ok && out.contains("Send 1 for news"), "{out}{err}");

    // One instance killed: nginx fails over, every call is still answered.
    servers[0].signal("KILL");
    servers[0].wait_exit(std::time::Duration::from_secs(5));
    for _ in 0..4 {
        assert_eq!(tokens.iter().next().unwrap(), &token_through_nginx().await);
    }
    let (ok, out, err) = push(format!("{public_url}/wx/{appid}")).await.unwrap();
    assert!(ok && out.contains("Send 1 for news"), "{out}{err}");
    assert_eq!(sim.stats().app(appid).calls("/cgi-bin/stable_token"), 1);
}

/// The reader on what compose.yaml uses (checked against PyYAML while it was
/// written), and its refusals.
#[test]
fn the_yaml_subset_reader_reads_what_compose_yaml_uses() {
    let text = "# comment\nname: x # trailing\nlist:\n  - \"a # not a comment\"\n  - 'it''s'\n  - plain:colon\n\
                map:\n  inner:\n    - key: 1\n      other: [\"CMD\", \"x\\r\"]\nempty:\nseq:\n- top\n";
    assert_eq!(
        yaml::parse(text),
        serde_json::json!({
            "name": "x",
            "list": ["a # not a comment", "it's", "plain:colon"],
            "map": {"inner": [{"key": "1", "other": ["CMD", "x\r"]}]},
            "empty": null,
            "seq": ["top"],
        })
    );
    for refused in [
        "a: &anchor b\n",
        "a: { b: c }\n",
        "a: |\n  text\n",
        "a: b\na: c\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| yaml::parse(refused)).is_err(),
            "{refused:?}"
        );
    }
}
