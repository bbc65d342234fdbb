//! Loading `wxgate.toml`: the contract's example, environment overrides,
//! secrets from the environment or files, and every problem reported at once.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use wxgate_gateway::config::{load, AppScope, StoreConfig, TokenApi};
use wxgate_proto::PushMode;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The example of docs/DESIGN.md, read from the file.
fn design_example() -> String {
    let design =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/DESIGN.md"))
            .unwrap();
    let start = design.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + design[start..].find("```").unwrap();
    design[start..end].replace(
        "key_sha256 = \"…\"",
        &format!("key_sha256 = \"{}\"", "ab".repeat(32)),
    )
}

#[test]
fn the_design_example_loads() {
    let config = load(
        &design_example(),
        &env(&[
            ("WX_SECRET", "s3cret"),
            ("WX_AES_KEY", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            ("WEBHOOK_SECRET", "hook"),
            ("WXGATE_ADMIN_KEY", "admin-key-0123456789"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let short = load(
        &design_example(),
        &env(&[
            ("WX_SECRET", "s3cret"),
            ("WX_AES_KEY", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            ("WEBHOOK_SECRET", "hook"),
            ("WXGATE_ADMIN_KEY", "admin"),
        ]),
    )
    .unwrap_err();
    assert!(
        short
            .to_string()
            .contains("admin.key: use at least 16 characters"),
        "{short}"
    );
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.server.max_body_bytes, 65_536);
    assert_eq!(
        config.server.trusted_proxies,
        ["127.0.0.1/32".parse::<ipnet::IpNet>().unwrap()]
    );
    assert_eq!(
        config.store,
        StoreConfig::Sqlite {
            path: "wxgate.db".into()
        }
    );
    let app = &config.apps[0];
    assert_eq!(app.appid, "wx0123456789abcdef");
    assert_eq!(app.secret.expose_secret(), "s3cret");
    let inbox = app.inbox.as_ref().expect("a server token takes pushes");
    assert!(matches!(inbox.mode, PushMode::Safe(_)));
    assert_eq!(inbox.owner, app.appid);
    assert_eq!(app.token_api, TokenApi::Stable);
    assert_eq!(app.js_domains, ["www.example.com"]);
    assert_eq!(inbox.rules.len(), 2);
    assert_eq!(
        config.clients[0].apps,
        AppScope::Only(["wx0123456789abcdef".to_owned()].into())
    );
}

#[test]
fn environment_overrides_every_scalar() {
    let toml = "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n";
    let config = load(
        toml,
        &env(&[
            ("WXGATE_SERVER__LISTEN", "127.0.0.1:9999"),
            ("WXGATE_SERVER__MAX_BODY_BYTES", "1024"),
            ("WXGATE_STORE__BACKEND", "memory"),
            ("WXGATE_APPS__0__REFRESH_AHEAD_SECS", "900"),
            ("WXGATE_APPS__0__SECRET", "0123"),
            ("WXGATE_APPS__0__TOKEN", "123456"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(config.server.max_body_bytes, 1024);
    assert_eq!(config.store, StoreConfig::Memory);
    assert_eq!(config.apps[0].refresh_ahead_secs, 900);
    assert_eq!(
        config.apps[0].secret.expose_secret(),
        "0123",
        "a string stays a string"
    );
}

#[test]
fn secrets_come_from_files_without_their_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "from-file\n").unwrap();
    let toml = format!(
        "[[apps]]\nappid = \"wx1\"\nsecret_file = {:?}\n",
        file.display().to_string()
    );
    let config = load(&toml, &env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.apps[0].secret.expose_secret(), "from-file");
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let toml = r#"
[server]
listen = "nowhere"
trusted_proxies = ["10.0.0.0/8", "::ffff:127.0.0.1", "nginx"]
[store]
backend = "mongodb"
[[apps]]
appid = "wx1"
secret = "a"
secret_env = "B"
mode = "safe"
refresh_ahead_secs = 5
js_domains = ["https://www.example.com"]
[[apps]]
appid = "wx2"
secret_env = "UNSET_VAR"
encoding_aes_key = "short"
token_api = "magic"
[[clients]]
key_sha256 = "xyz"
apps = ["wx9"]
"#;
    let err = load(toml, &env(&[])).unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "server.listen",
        "server.trusted_proxies[2]",
        "store.backend",
        "apps[0].secret",
        "apps[0].encoding_aes_key",
        "apps[0].refresh_ahead_secs",
        "apps[0].js_domains[0]",
        "apps[1].secret_env",
        "apps[1].encoding_aes_key",
        "apps[1].token_api",
        "clients[0].key_sha256",
        "clients[0].apps",
    ] {
        assert!(paths.contains(&expected), "{expected} missing from:\n{err}");
    }
    let text = err.to_string();
    assert!(text.contains("UNSET_VAR"), "{text}");
    assert!(
        !text.contains("\"a\""),
        "secret values never appear in errors: {text}"
    );
}

#[test]
fn unknown_fields_and_bad_toml_are_errors() {
    let err = load("[server]\nlisten_on = \"x\"\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("listen_on"), "{err}");
    let err = load("[server\n", &env(&[])).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let err = load("", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("no [[apps]]"), "{err}");
}

#[test]
fn debug_output_never_shows_secrets() {
    let toml = "[[apps]]\nappid = \"wx1\"\nsecret = \"TOP-SECRET-VALUE\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n";
    let config = load(toml, &env(&[])).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("TOP-SECRET-VALUE"), "{shown}");
    assert!(!shown.contains("abcdefghijklmnop"), "{shown}");
}

/// Issue #16 (11): unsafe values are refused with their bounds, all at once.
#[test]
fn unsafe_values_are_refused_with_their_bounds() {
    let toml = r#"
[server]
max_body_bytes = 17179869184
timestamp_tolerance_secs = 1000000000000
shutdown_timeout_secs = 1000000000000000
dedupe_capacity = 0
reply_budget_ms = 0
[upstream]
base_url = "ftp://api.weixin.qq.com"
[[apps]]
appid = "wx1\u0000<b>"
secret_file = "/dev/zero"
"#;
    let problems = load(toml, &env(&[])).unwrap_err().to_string();
    for expected in [
        "server.max_body_bytes: 17179869184: use 1024 to 1048576 bytes",
        "server.timestamp_tolerance_secs: 1000000000000: use 30 to 3600 seconds",
        "server.shutdown_timeout_secs: 1000000000000000: use 1 to 300 seconds",
        "server.dedupe_capacity: 0: use 100 to 1000000",
        "server.reply_budget_ms: 0: use 100 to 4900 milliseconds",
        "upstream.base_url: \"ftp://api.weixin.qq.com\": use an http(s) URL",
        "apps[0].appid: \"wx1\\\\u{0}<b>\": use the AppID as WeChat shows it",
        "apps[0].secret_file: reading /dev/zero: larger than 65536 bytes",
    ] {
        assert!(problems.contains(expected), "{expected}\nin:\n{problems}");
    }
    assert!(!problems.contains("no [[apps]]"), "{problems}");
}

#[test]
fn the_spool_budget_is_bounded_and_holds_at_least_one_largest_body() {
    let base = "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n";
    let config = load(base, &env(&[])).unwrap();
    assert_eq!(config.proxy.max_spool_bytes, 256 << 20);
    for (proxy, ok) in [
        ("max_spool_bytes = 100000000", true),
        ("max_spool_bytes = 1000", false),
        ("max_request_bytes = 1000\nmax_spool_bytes = 1000", true),
        ("max_spool_bytes = 0", false),
        ("max_spool_bytes = 100000000000", false),
    ] {
        let result = load(&format!("{base}[proxy]\n{proxy}\n"), &env(&[]));
        match (result, ok) {
            (Ok(config), true) => assert!(config.proxy.max_spool_bytes > 0),
            (Err(err), false) => {
                let text = err.to_string();
                assert!(text.contains("proxy.max_spool_bytes"), "{proxy}: {text}");
                assert!(text.contains("max_request_bytes"), "{proxy}: {text}");
            }
            (result, _) => panic!("{proxy}: {result:?}"),
        }
    }
}

/// Issue #31: every problem at once, each saying where it comes from (the
/// file's line, or the environment variable that set it), unknown keys
/// included, and no contradictory pairs.
#[test]
fn problems_say_where_they_come_from_and_unknown_keys_hide_nothing() {
    let toml = "[server]\nlisten_on = \"x\"\nmax_body_bytes = 10\n\n\
                [[apps]]\nappid = \"wx0123456789abcdef\"\nsecret = \"s\"\nsecret_env = \"WX_SECRET\"\ntokne = \"t\"\n\n\
                [[apps]]\nappid = \"wx2\"\nsecret_env = \"UNSET_VAR\"\n\n\
                [[clients]]\nname = \"shop\"\nkey_sha256 = \"ab\"\napps = [\"wx2\"]\n";
    let err = load(
        toml,
        &env(&[
            ("WXGATE_SERVER__LISTN", "0.0.0.0:1"),
            ("WXGATE_SERVER__TIMESTAMP_TOLERANCE_SECS", "5"),
        ]),
    )
    .unwrap_err();
    let problem = |path: &str| -> Vec<&str> {
        err.problems
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, problem)| problem.as_str())
            .collect()
    };
    // Unknown keys, each with its place, beside every other problem.
    assert_eq!(problem("server.listen_on").len(), 1, "{err}");
    assert!(
        problem("server.listen_on")[0].ends_with("(line 2)"),
        "{err}"
    );
    assert!(problem("apps[0].tokne")[0].ends_with("(line 9)"), "{err}");
    assert!(
        problem("server.listn")[0].ends_with("(from WXGATE_SERVER__LISTN)"),
        "{err}"
    );
    assert!(
        problem("server.max_body_bytes")[0].ends_with("(line 3)"),
        "{err}"
    );
    assert!(
        problem("server.timestamp_tolerance_secs")[0]
            .ends_with("(from WXGATE_SERVER__TIMESTAMP_TOLERANCE_SECS)"),
        "{err}"
    );
    assert!(
        problem("clients[0].key_sha256")[0].ends_with("(line 17)"),
        "{err}"
    );
    // No contradictory pairs: two sources of one secret is one problem, not
    // also "missing"; an unset variable is not also "missing".
    assert_eq!(problem("apps[0].secret").len(), 1, "{err}");
    assert!(
        problem("apps[0].secret")[0].starts_with("give only one"),
        "{err}"
    );
    assert!(problem("apps[1].secret").is_empty(), "{err}");
    assert_eq!(problem("apps[1].secret_env").len(), 1, "{err}");
    // An app with problems of its own is still one the config names.
    assert!(problem("clients[0].apps").is_empty(), "{err}");
    assert_eq!(err.problems.len(), 8, "{err}");
}

/// Issue #27: during a rotation every push endpoint takes the token and key
/// it used before (`token_previous`, `encoding_aes_key_previous`, from the
/// environment or a file like every secret), checked like the current ones.
#[test]
fn previous_tokens_and_keys_are_read_for_every_push_endpoint() {
    const NEW_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const OLD_KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg";
    let toml = format!(
        "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\ntoken = \"new\"\ntoken_previous_env = \"OLD_TOKEN\"\n\
         encoding_aes_key = \"{NEW_KEY}\"\nencoding_aes_key_previous_env = \"OLD_KEY\"\n\
         [[apps]]\nappid = \"wx2\"\nsecret = \"s\"\ntoken = \"new\"\ntoken_previous = \"old\"\n\
         [[wecom]]\ncorpid = \"ww1\"\nagentid = 1000002\nsecret = \"s\"\ntoken = \"new\"\n\
         encoding_aes_key = \"{NEW_KEY}\"\nencoding_aes_key_previous = \"{OLD_KEY}\"\n"
    );
    let config = load(&toml, &env(&[("OLD_TOKEN", "old"), ("OLD_KEY", OLD_KEY)]))
        .unwrap_or_else(|e| panic!("{e}"));
    let safe = config.apps[0].inbox.as_ref().unwrap();
    let previous = safe.previous.as_ref().expect("a rotation under way");
    assert_eq!(previous.token.as_ref().unwrap().expose_secret(), "old");
    assert!(
        matches!(previous.mode, Some(PushMode::Safe(_))),
        "same mode, old key"
    );
    // Plain mode has no key, but the previous token still signs.
    let plain = config.apps[1].inbox.as_ref().unwrap();
    let previous = plain.previous.as_ref().expect("a token rotation");
    assert_eq!(previous.token.as_ref().unwrap().expose_secret(), "old");
    assert!(previous.mode.is_none());
    let wecom = config.wecom[0].inbox.as_ref().unwrap();
    let previous = wecom.previous.as_ref().expect("a key rotation");
    assert!(previous.token.is_none(), "the token did not change");
    assert_eq!(
        previous.mode.as_ref().unwrap().crypto().unwrap().appid(),
        "ww1"
    );
    // Without previous settings, nothing is tried twice.
    let toml = format!("[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\ntoken = \"t\"\nencoding_aes_key = \"{NEW_KEY}\"\n");
    let config = load(&toml, &env(&[])).unwrap();
    assert!(config.apps[0].inbox.as_ref().unwrap().previous.is_none());
}

/// A previous key is checked like the current one, and a previous token or
/// key without a current one (a rotation half done) is a problem, all in
/// the one list of problems.
#[test]
fn rotation_problems_are_reported_with_the_others() {
    let toml = "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\ntoken = \"t\"\n\
                encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n\
                encoding_aes_key_previous = \"short\"\n\
                [[apps]]\nappid = \"wx2\"\nsecret = \"s\"\ntoken_previous = \"old\"\n\
                encoding_aes_key_previous = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n\
                [[wecom]]\ncorpid = \"ww1\"\nagentid = 1\nsecret = \"s\"\ntoken = \"t\"\n\
                encoding_aes_key_previous = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n\
                token_api = \"magic\"\n";
    let err = load(toml, &env(&[])).unwrap_err();
    let problem = |path: &str| -> Vec<&str> {
        err.problems
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, problem)| problem.as_str())
            .collect()
    };
    assert!(
        problem("apps[0].encoding_aes_key_previous")[0].contains("43 characters"),
        "{err}"
    );
    assert!(
        problem("apps[1].token_previous")[0].contains("set token"),
        "{err}"
    );
    assert!(
        problem("apps[1].encoding_aes_key_previous")[0].contains("set encoding_aes_key"),
        "{err}"
    );
    assert!(
        problem("wecom[0].encoding_aes_key_previous")[0].contains("set encoding_aes_key"),
        "{err}"
    );
    assert!(
        !problem("wecom[0].token_api").is_empty(),
        "unknown keys too: {err}"
    );
}

/// `[store]` for Redis as production runs it: Cluster seeds, the ACL user
/// and password from the environment and a file, TLS files read at load.
#[test]
fn redis_cluster_with_acl_and_tls_loads() {
    use wxgate_gateway::store::RedisTopology;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let toml = format!(
        "[store]\nbackend = \"redis\"\ncluster = [\"rediss://10.0.0.1:7000\", \"rediss://10.0.0.2:7000\"]\n\
         username_env = \"REDIS_USER\"\npassword_file = \"{}\"\ntls_ca_file = \"{}\"\nkey_prefix = \"gw:\"\n\
         [[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n",
        password.display(),
        ca.display()
    );
    let config = load(&toml, &env(&[("REDIS_USER", "wxgate")])).unwrap();
    let StoreConfig::Redis(options) = config.store else {
        panic!("{:?}", config.store)
    };
    assert_eq!(
        options.topology,
        RedisTopology::Cluster(vec![
            "rediss://10.0.0.1:7000".into(),
            "rediss://10.0.0.2:7000".into()
        ])
    );
    assert_eq!(options.username.unwrap().expose_secret(), "wxgate");
    assert_eq!(options.password.unwrap().expose_secret(), "s3cret");
    assert!(options.tls.ca.is_some() && options.tls.client.is_none());
    assert_eq!(options.key_prefix, "gw:");
}

/// Every Redis problem at once, each with its field path, and no URL (it
/// may hold a password) in the messages.
#[test]
fn redis_settings_problems_are_reported_all_at_once() {
    let both = "[store]\nbackend = \"redis\"\nurl = \"redis://:pw@h:6379\"\ncluster = [\"redis://h:7000\"]\n\
                master = \"m\"\ntls_cert_file = \"/nonexistent/cert.pem\"\n\
                [[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n";
    let err = load(both, &env(&[])).unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|(p, _)| p.as_str()).collect();
    for expected in ["store", "store.master", "store.tls_cert_file"] {
        assert!(paths.contains(&expected), "{expected} missing from:\n{err}");
    }
    assert!(!err.to_string().contains("pw@"), "{err}");

    let sentinel =
        "[store]\nbackend = \"redis\"\nsentinels = [\"http://h:26379\", \"redis://:pw@h:26380\"]\n\
                    [[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n";
    let err = load(sentinel, &env(&[])).unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|(p, _)| p.as_str()).collect();
    for expected in ["store.sentinels[0]", "store.master"] {
        assert!(paths.contains(&expected), "{expected} missing from:\n{err}");
    }

    let sqlite =
        "[store]\nbackend = \"sqlite\"\ncluster = [\"redis://h:7000\"]\npassword_env = \"P\"\n\
                  [[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n";
    let err = load(sqlite, &env(&[])).unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|(p, _)| p.as_str()).collect();
    for expected in ["store.cluster", "store.password_env"] {
        assert!(paths.contains(&expected), "{expected} missing from:\n{err}");
    }
}
