//! `deploy/nginx.conf` run by a real nginx (Debian's package) in front of a
//! real `wxgate serve -c wxgate.toml`, itself in front of a `wxgate sim`
//! process, all on free loopback ports. The file's locations are used as
//! written; only what is site-specific is replaced: the listen addresses, the
//! upstream file's path and its addresses, the log and temp paths, and TLS on
//! the public server (plain HTTP here: the certificate is the site's, the
//! routing is the file's).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use wxgate_testkit::process::Server;

/// A free loopback port (bound, then released for nginx).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx, killed when dropped.
pub(crate) struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `deploy/{name}`.
pub(crate) fn deploy_file(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("deploy/{name}: {e}"))
}

/// The instance list `deploy/{name}` (`server` lines for
/// `/etc/nginx/wxgate-upstream.conf`) written to `dir` with each address
/// replaced (`from`, `to`), each of which must be in it: its path.
pub(crate) fn upstream_file(dir: &Path, name: &str, addresses: &[(&str, &str)]) -> PathBuf {
    let mut text = deploy_file(name);
    for (from, to) in addresses {
        let line = format!("server {from};");
        assert!(
            text.contains(&line),
            "deploy/{name} lists no {line}:\n{text}"
        );
        text = text.replace(&line, &format!("server {to};"));
    }
    let path = dir.join("wxgate-upstream.conf");
    std::fs::write(&path, text).unwrap();
    path
}

/// `deploy/nginx.conf` with the site's addresses replaced and its instance
/// list read from `upstream`, inside a main configuration of its own.
pub(crate) fn site_config(dir: &Path, upstream: &Path, public: u16, internal: u16) -> String {
    let conf = deploy_file("nginx.conf");
    let include = "include /etc/nginx/wxgate-upstream.conf;";
    assert!(
        conf.contains(include),
        "the upstream's instances are included"
    );
    let mut site = String::new();
    for line in conf.lines() {
        let trimmed = line.trim();
        // Only loopback here: no IPv6 listeners, no port 80 redirect server's
        // own port; TLS off (the certificate is the site's).
        if trimmed.starts_with("listen [::]")
            || trimmed.starts_with("ssl_")
            || trimmed == "listen 80;"
        {
            continue;
        }
        let line = line
            .replace(include, &format!("include {};", upstream.display()))
            .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{public};"))
            .replace(
                "listen 10.0.0.10:80;",
                &format!("listen 127.0.0.1:{internal};"),
            )
            .replace(
                "/var/log/nginx/wxgate-internal.log",
                &dir.join("internal.log").display().to_string(),
            );
        site.push_str(&line);
        site.push('\n');
    }
    assert!(
        site.contains(&format!("listen 127.0.0.1:{public};")),
        "{site}"
    );
    assert!(
        site.contains(&format!("listen 127.0.0.1:{internal};")),
        "{site}"
    );
    // The port 80 server (ACME and the redirect) would listen on nginx's default
    // port 80 with its `listen` gone: give it a port of its own.
    let site = site.replacen(
        "    server_name wx.example.com;\n\n    # ACME",
        &format!(
            "    listen 127.0.0.1:{};\n    server_name wx.example.com;\n\n    # ACME",
            free_port()
        ),
        1,
    );
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n{site}}}\n"
    )
}

/// nginx running the main configuration `text` (from [`site_config`]) from
/// `dir`, once `nginx -t` accepts it: the process and its error log's path.
pub(crate) fn start(dir: &Path, text: &str) -> (Nginx, String) {
    for temp in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join(temp)).unwrap();
    }
    // nginx's workers may run as another user: they write the temp dirs.
    Command::new("chmod")
        .args(["-R", "a+rwx", dir.to_str().unwrap()])
        .status()
        .unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, text).unwrap();
    let error_log = dir.join("error.log").display().to_string();
    let nginx_bin = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|b| Command::new(b).arg("-v").output().is_ok())
        .expect("nginx (scripts/test installs Debian's nginx package)");
    let check = Command::new(nginx_bin)
        .args(["-t", "-e", &error_log, "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t:\n{}\n{text}",
        String::from_utf8_lossy(&check.stderr)
    );
    let nginx = Nginx(
        Command::new(nginx_bin)
            .args(["-e", &error_log, "-c", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (nginx, error_log)
}

// The accounts `wxgate dev` demonstrates, one of each family.
const APPID: &str = "wxd000000000000001";
const APP_SECRET: &str = "nginx0oa0secret00000000000000000";
const MINI_APPID: &str = "wxd000000000000002";
const MINI_SECRET: &str = "nginx0mini0secret000000000000000";
const CORPID: &str = "wwd0000000000000a1";
const AGENTID: &str = "1000002";
const CORP_SECRET: &str = "nginx0wecom0secret00000000000000000000000";
/// The server token and EncodingAESKey, as typed into WeChat's consoles.
const PUSH_TOKEN: &str = "nginxtoken";
const AES_KEY: &str = "nginxTestKey0123456789abcdefghijklmnopqrstu";
const CLIENT_KEY: &str = "nginx-test-client-key";
const ADMIN_KEY: &str = "nginx-test-admin-key";

/// `wxgate.toml` in `dir`, for the accounts of the simulator at `sim`: the
/// families of `wxgate dev` (an Official Account in safe mode, a Mini Program
/// with JSON pushes, a WeCom app with callbacks), rules where `wxgate dev` has
/// its echoing webhook, a client, and the secrets read from the environment
/// (`*_env`, as deploy/wxgate.example.toml). Its path.
fn serve_config(dir: &Path, sim: &str) -> PathBuf {
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]
[store]
backend = "sqlite"
path = {db:?}
[upstream]
base_url = "{sim}"
wecom_base_url = "{sim}"
[admin]
key_env = "WXGATE_ADMIN_KEY"
[[apps]]
appid = "{APPID}"
secret_env = "WX_SECRET"
token_env = "WX_TOKEN"
encoding_aes_key_env = "WX_AES_KEY"
mode = "safe"
js_domains = ["example.com"]
[[apps.rules]]
event = "subscribe"
reply = {{ text = "Welcome!" }}
[[apps.rules]]
keyword = "hello"
reply = {{ text = "echo: hello" }}
[[apps]]
appid = "{MINI_APPID}"
secret_env = "WX_MINI_SECRET"
type = "miniprogram"
push_format = "json"
token_env = "WX_TOKEN"
encoding_aes_key_env = "WX_AES_KEY"
[[apps.rules]]
keyword = "人工"
reply = {{ transfer_customer_service = true }}
[[wecom]]
corpid = "{CORPID}"
agentid = {AGENTID}
secret_env = "WECOM_SECRET"
js_domains = ["example.com"]
token_env = "WX_TOKEN"
encoding_aes_key_env = "WX_AES_KEY"
[[wecom.rules]]
keyword = "hello"
reply = {{ text = "echo: hello" }}
[[clients]]
name = "nginx-test"
key_sha256 = "{key}"
apps = ["*"]
"#,
        db = dir.join("wxgate.db").display().to_string(),
        key = crate::sha256_hex(CLIENT_KEY),
    );
    let path = dir.join("wxgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Issue #31: the public server passed only `/wx/` (WeCom callbacks got 404),
/// and the internal one gave the façade a 64k body limit (a media upload got
/// 413) and 404 on `/sns/`, `/wxa/`…
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nginx_serves_every_family_and_the_facade() {
    // WeChat: the three families' accounts, in a simulator of their own.
    let mut sim = crate::server(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--app",
        &format!("{APPID}:{APP_SECRET}"),
        "--app",
        &format!("{MINI_APPID}:{MINI_SECRET}:miniprogram"),
        "--corp",
        &format!("{CORPID}:{AGENTID}:{CORP_SECRET}"),
    ]);
    let sim_url = sim.url_after("listening on");

    // wxgate's files apart from nginx's (whose directory is opened to its workers).
    let home = tempfile::tempdir().unwrap();
    let config = serve_config(home.path(), &sim_url);
    let serve_log = home.path().join("wxgate.log");
    // The secrets come from the environment, as docs/deploy.md has them.
    let mut serve = Server::start(
        env!("CARGO_BIN_EXE_wxgate"),
        &["serve", "-c", config.to_str().unwrap()],
        &[
            ("WX_SECRET", APP_SECRET),
            ("WX_TOKEN", PUSH_TOKEN),
            ("WX_AES_KEY", AES_KEY),
            ("WX_MINI_SECRET", MINI_SECRET),
            ("WECOM_SECRET", CORP_SECRET),
            ("WXGATE_ADMIN_KEY", ADMIN_KEY),
        ],
        Some(&serve_log),
    );
    let gateway = serve.url_after("listening on");

    let dir = tempfile::tempdir().unwrap();
    let (public, internal) = (free_port(), free_port());
    let upstream = upstream_file(
        dir.path(),
        "nginx-upstream.conf",
        &[("127.0.0.1:8080", gateway.trim_start_matches("http://"))],
    );
    let text = site_config(dir.path(), &upstream, public, internal);
    let (_nginx, error_log) = start(dir.path(), &text);
    let http = reqwest::Client::new();
    let public_url = format!("http://127.0.0.1:{public}");
    let internal_url = format!("http://127.0.0.1:{internal}");
    crate::wait_ready(&internal_url, 10, || {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        format!(
            "nginx:\n{}\nwxgate:\n{}",
            read(Path::new(&error_log)),
            read(&serve_log)
        )
    })
    .await;

    // Public: an Official Account push (safe mode), a WeCom callback and a Mini
    // Program JSON push, as WeChat sends them, through nginx.
    let push = |path: &str, family: &[&str]| -> Vec<String> {
        let url = format!("{public_url}{path}");
        let common = ["push", "--url", &url, "--token", PUSH_TOKEN];
        let common = common.iter().chain(&["--aes-key", AES_KEY]);
        common.chain(family).map(|a| a.to_string()).collect()
    };
    let official = ["--appid", APPID, "--text", "hello"];
    let wecom = ["--corpid", CORPID, "--agentid", AGENTID, "--text", "hello"];
    let miniprogram = ["--appid", MINI_APPID, "--miniprogram", "--format", "json"];
    let miniprogram = [&miniprogram[..], &["--text", "人工"]].concat();
    for (args, expected) in [
        (push(&format!("/wx/{APPID}"), &official), "echo: hello"),
        (
            push(&format!("/wecom/{CORPID}/{AGENTID}"), &wecom),
            "echo: hello",
        ),
        (
            push(&format!("/wx/{MINI_APPID}"), &miniprogram),
            "transfer_customer_service",
        ),
    ] {
        let line = args.join(" ");
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            crate::wxgate(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert!(ok && out.contains(expected), "wxgate {line}\n{out}{err}");
    }
    // Public: nothing else.
    for path in [
        &format!("/v1/apps/{APPID}/access_token"),
        &format!("/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret=x"),
        &format!("/proxy/{APPID}/cgi-bin/get_api_domain_ip"),
        "/admin",
        "/metrics",
        "/readyz",
    ] {
        let response = http
            .get(format!("{public_url}{path}"))
            .bearer_auth(CLIENT_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "public {path}");
    }

    // Internal: the client API, the proxy and the façade, a 150 KB media upload included.
    let token: serde_json::Value = http
        .get(format!("{internal_url}/v1/apps/{APPID}/access_token"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("a token").to_owned();
    let proxied = http
        .get(format!(
            "{internal_url}/proxy/{APPID}/cgi-bin/get_api_domain_ip"
        ))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    let boundary = "nginx-test-boundary";
    let media: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let uploaded = http
        .post(format!(
            "{internal_url}/cgi-bin/media/upload?access_token={token}&type=image"
        ))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(wxgate_testkit::multipart(boundary, "p.jpg", &media))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    let uploaded: serde_json::Value = uploaded.json().await.unwrap();
    assert!(uploaded["media_id"].as_str().is_some(), "{uploaded}");
    // Every façade root reaches wxgate: its WeChat-shaped answer (errmsg with a
    // rid), not nginx's 404 page.
    for root in ["sns", "wxa", "datacube", "card", "customservice", "wxaapi"] {
        let response = http
            .get(format!(
                "{internal_url}/{root}/anything?access_token=not-issued"
            ))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let errmsg = body["errmsg"].as_str().unwrap_or_default();
        assert!(
            status == 200 && body["errcode"].is_i64() && errmsg.contains(" rid: "),
            "internal /{root}/: {status} {body}"
        );
    }
    serve.signal("TERM");
    sim.signal("TERM");
}
