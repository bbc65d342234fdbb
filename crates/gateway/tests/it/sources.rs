//! Issue #27, the push source check: with `server.trusted_push_sources =
//! "wechat"`, pushes (and ownership and URL checks) are accepted only from
//! the callback IP ranges WeChat's (or WeCom's) `getcallbackip` lists. The
//! simulator lists 127.0.0.1 and 101.226.103.0/25 (WeCom's adds
//! 182.254.11.176); tests claim other sources through `X-Forwarded-For` from
//! 127.0.0.1, a trusted proxy.

use wxgate_gateway::clock::Clock;
use wxgate_sim::{Fault, FaultAction};

use crate::{Env, Setup, APPID};

const TOKEN: &str = "source-check-token";
const CALLBACK_IP: &str = "/cgi-bin/getcallbackip";
const CORP: &str = "ww0123456789abcdef";
const AGENT: &str = "1000002";
const OUTSIDE: &str = "203.0.113.9";
const INSIDE: &str = "101.226.103.7";
/// In WeCom's list only.
const WECOM_ONLY: &str = "182.254.11.176";

fn app() -> String {
    format!(
        "token = \"{TOKEN}\"\nmode = \"plain\"\n[[apps.rules]]\nkeyword = \"你好\"\nreply = {{ text = \"欢迎\" }}"
    )
}

const CHECKED: &str = "trusted_push_sources = \"wechat\"\ntrusted_proxies = [\"127.0.0.1/32\"]";

/// The value of the series `series` (name and labels, as exposed) on `/metrics`.
async fn metric(env: &Env, series: &str) -> Option<f64> {
    let text = env.http.get(format!("{}/metrics", env.url)).send().await;
    let text = text.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

fn refused_series(owner: &str) -> String {
    format!("wxgate_pushes_refused_source_total{{appid=\"{owner}\"}}")
}

fn ranges_series(api: &str) -> String {
    format!("wxgate_push_source_ranges{{api=\"{api}\"}}")
}

/// Waits until the ranges of `api` are known; how many there are.
async fn ranges_known(env: &Env, api: &str) -> f64 {
    wxgate_testkit::wait_for(
        std::time::Duration::from_secs(5),
        format!("the {api} callback ranges known"),
        async || metric(env, &ranges_series(api)).await.filter(|n| *n > 0.0),
    )
    .await
}

/// A signed plain-mode text push saying 你好 (nonce and MsgId from `n`),
/// claiming to come from `from` through the proxy at 127.0.0.1.
async fn push(env: &Env, n: u32, from: Option<&str>) -> (u16, String) {
    let (ts, nonce) = (env.clock.now().to_string(), format!("n{n}"));
    let signature = wxgate_proto::signature(TOKEN, &ts, &nonce);
    let body = crate::pushes::sample_xml(
        "text",
        &format!(
            "<Content><![CDATA[你好]]></Content><MsgId>{}</MsgId>",
            9100 + n
        ),
        env.clock.now(),
    );
    let mut request = env
        .http
        .post(format!("{}/wx/{APPID}", env.url))
        .query(&[
            ("signature", signature),
            ("timestamp", ts),
            ("nonce", nonce),
        ])
        .body(body);
    if let Some(from) = from {
        request = request.header("x-forwarded-for", from);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// An ownership check (GET with `echostr`), from `from` through the proxy.
async fn ownership_check(env: &Env, from: &str) -> (u16, String) {
    let (ts, nonce) = (env.clock.now().to_string(), "oc".to_string());
    let signature = wxgate_proto::signature(TOKEN, &ts, &nonce);
    let response = env
        .http
        .get(format!("{}/wx/{APPID}", env.url))
        .query(&[
            ("signature", signature),
            ("timestamp", ts),
            ("nonce", nonce),
            ("echostr", "echo-me".into()),
        ])
        .header("x-forwarded-for", from)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// From inside the ranges (the simulator's own address, an address in a
/// listed CIDR range) a push is answered; from outside, a push and an
/// ownership check are refused 403 before anything else, counted in
/// `wxgate_pushes_refused_source_total` (at zero from the start) and with the
/// other refused pushes, and summed up in the once-a-minute log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_from_outside_the_ranges_are_refused_403_and_counted() {
    let env = Setup::new().server(CHECKED).app(&app()).start().await;
    assert_eq!(metric(&env, &refused_series(APPID)).await, Some(0.0));
    assert_eq!(ranges_known(&env, "wechat").await, 2.0);
    assert_eq!(env.sim.stats().app(APPID).calls(CALLBACK_IP), 1);

    for (n, from) in [
        (1, None),
        (2, Some(INSIDE)),
        (3, Some("::ffff:101.226.103.8")),
    ] {
        let (status, body) = push(&env, n, from).await;
        assert_eq!(status, 200, "{from:?}: {body}");
        assert!(body.contains("欢迎"), "{from:?}: {body}");
    }
    let (status, body) = ownership_check(&env, INSIDE).await;
    assert_eq!((status, body.as_str()), (200, "echo-me"));

    let (status, body) = push(&env, 4, Some(OUTSIDE)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("push_source"), "{body}");
    assert!(!body.contains("欢迎"), "{body}");
    // WeCom's list is WeCom's: an address only there is outside for an Official Account.
    assert_eq!(push(&env, 5, Some(WECOM_ONLY)).await.0, 403);
    let (status, body) = ownership_check(&env, OUTSIDE).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("echo-me"));

    assert_eq!(metric(&env, &refused_series(APPID)).await, Some(3.0));
    let rejected = format!(
        "wxgate_pushes_total{{appid=\"{APPID}\",msg_type=\"unknown\",outcome=\"rejected\"}}"
    );
    assert_eq!(metric(&env, &rejected).await, Some(3.0));
    let logs = crate::logs::text();
    assert!(
        logs.lines()
            .any(|l| l.contains(" WARN ") && l.contains("last_reason=\"push_source\"")),
        "no summary of the refused pushes in the log"
    );
}

/// `X-Forwarded-For` is believed only from `server.trusted_proxies`: without
/// any, a request from 127.0.0.1 claiming an outside address is checked as
/// 127.0.0.1 (inside) and answered, and nothing is refused.
#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let env = Setup::new()
        .server("trusted_push_sources = \"wechat\"\ntrusted_proxies = [\"10.0.0.0/8\"]")
        .app(&app())
        .start()
        .await;
    ranges_known(&env, "wechat").await;
    let (status, body) = push(&env, 1, Some(OUTSIDE)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("欢迎"), "{body}");
    assert_eq!(metric(&env, &refused_series(APPID)).await, Some(0.0));
}

/// The ranges are kept in the store: restarted while `getcallbackip` fails,
/// the gateway knows them at once and still refuses outside sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ranges_survive_a_restart_with_wechat_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Setup::new()
        .sqlite(&dir.path().join("wxgate.db"))
        .server(CHECKED)
        .app(&app())
        .start()
        .await;
    ranges_known(&env, "wechat").await;
    env.stop_gateway();
    env.sim.add_fault(Fault {
        path: Some(CALLBACK_IP.into()),
        action: FaultAction::Http { status: 502 },
        count: None,
        rate: None,
    });
    let before = env.sim.stats().endpoint_calls(CALLBACK_IP);
    env.start_gateway().await;
    assert_eq!(ranges_known(&env, "wechat").await, 2.0);
    assert_eq!(push(&env, 1, Some(OUTSIDE)).await.0, 403);
    let (status, body) = push(&env, 2, Some(INSIDE)).await;
    assert_eq!(status, 200, "{body}");
    // The restarted gateway did try WeChat, and failed.
    wxgate_testkit::wait_until(
        std::time::Duration::from_secs(5),
        "the restarted gateway asking getcallbackip",
        async || env.sim.stats().endpoint_calls(CALLBACK_IP) > before,
    )
    .await;
    assert!(crate::logs::text().contains("push source ranges could not be refreshed"));
}

/// WeCom apps are checked against WeCom's own `getcallbackip` (fetched with
/// the WeCom app's token): an address only WeCom lists passes the source
/// check (and then fails the signature, 401), one outside is refused 403.
#[tokio::test]
async fn wecom_callbacks_are_checked_against_wecoms_ranges() {
    let env = Setup::new()
        .server(CHECKED)
        .wecom(CORP, AGENT, "wecom-secret")
        .extra("token = \"wecom-token\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n")
        .start()
        .await;
    assert_eq!(ranges_known(&env, "wecom").await, 3.0);
    let post = |from: &'static str| {
        env.http
            .post(format!("{}/wecom/{CORP}/{AGENT}", env.url))
            .query(&[
                ("msg_signature", "0".repeat(40)),
                ("timestamp", env.clock.now().to_string()),
                ("nonce", "1".into()),
            ])
            .header("x-forwarded-for", from)
            .body("<xml><ToUserName><![CDATA[ww]]></ToUserName><Encrypt><![CDATA[AAAA]]></Encrypt></xml>")
            .send()
    };
    assert_eq!(post(WECOM_ONLY).await.unwrap().status(), 401);
    assert_eq!(post(OUTSIDE).await.unwrap().status(), 403);
    let owner = format!("{CORP}/{AGENT}");
    assert_eq!(metric(&env, &refused_series(&owner)).await, Some(1.0));
}

/// Off by default: no check (an outside source is answered), no
/// `getcallbackip` call, no source series.
#[tokio::test]
async fn off_by_default() {
    let env = Setup::new()
        .server("trusted_proxies = [\"127.0.0.1/32\"]")
        .app(&app())
        .start()
        .await;
    let (status, body) = push(&env, 1, Some(OUTSIDE)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("欢迎"), "{body}");
    env.settle().await;
    assert_eq!(env.sim.stats().endpoint_calls(CALLBACK_IP), 0);
    assert_eq!(metric(&env, &refused_series(APPID)).await, None);
    assert_eq!(metric(&env, &ranges_series("wechat")).await, None);
}

/// The ranges are fetched again every day of the gateway's clock (and a
/// failed fetch is retried sooner): stepped on the virtual clock, no wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ranges_are_fetched_again_every_day() {
    let env = Setup::new().server(CHECKED).app(&app()).start().await;
    ranges_known(&env, "wechat").await;
    let first = env.sim.stats().endpoint_calls(CALLBACK_IP);
    assert!(first >= 1);
    env.step(3600).await;
    assert_eq!(
        env.sim.stats().endpoint_calls(CALLBACK_IP),
        first,
        "not hourly"
    );
    env.step(86_400 - 3600).await;
    wxgate_testkit::wait_until(
        std::time::Duration::from_secs(5),
        "the daily getcallbackip",
        async || env.sim.stats().endpoint_calls(CALLBACK_IP) > first,
    )
    .await;
}
