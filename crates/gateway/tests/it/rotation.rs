//! Issue #27, key and token rotation: with `token_previous` and
//! `encoding_aes_key_previous` set beside the new token and key, pushes
//! sealed before the change in the console are still answered, and their
//! replies sealed with the key (and signed with the token) that opened
//! them; pushes with neither are refused as before; once the previous ones
//! are removed, the old pushes are refused. Checked with wechatpy.

use wxgate_gateway::clock::Clock;
use wxgate_sim::push::{self, Compose, PushRequest};

use crate::pushes::reply_text;
use crate::{Env, Setup, APPID, T0};

const NEW_TOKEN: &str = "token-after-the-change";
const OLD_TOKEN: &str = "token-before-the-change";
const NEW_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const OLD_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";
const STRANGE_TOKEN: &str = "nobody-typed-this-token";
const STRANGE_KEY: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const CORP: &str = "ww0123456789abcdef";
const AGENT: &str = "1000002";
const ADMIN_KEY: &str = "rotation-admin-key-0123456789";

/// `token`, `encoding_aes_key` and, when `rotating`, the previous ones.
fn push_settings(rotating: bool) -> String {
    let mut toml = format!("token = \"{NEW_TOKEN}\"\nencoding_aes_key = \"{NEW_KEY}\"\n");
    if rotating {
        toml.push_str(&format!(
            "token_previous = \"{OLD_TOKEN}\"\nencoding_aes_key_previous = \"{OLD_KEY}\"\n"
        ));
    }
    toml
}

const RULE: &str = "keyword = \"你好\"\nreply = { text = \"欢迎\" }";

/// An Official Account in safe mode, with the previous token and key when `rotating`.
async fn app_env(rotating: bool) -> Env {
    Setup::new()
        .admin(ADMIN_KEY)
        .app(&format!(
            "{}mode = \"safe\"\n[[apps.rules]]\n{RULE}",
            push_settings(rotating)
        ))
        .start()
        .await
}

/// wechatpy pushes a text sealed with `token` and `key` (nonce and MsgId
/// from `n`) and opens the reply with them; `other_opens` says whether
/// `other` opened it too.
async fn wechatpy_push(
    env: &Env,
    (token, key): (&str, &str),
    n: u32,
    other: (&str, &str),
) -> serde_json::Value {
    crate::wechatpy(
        include_str!("../../../../tests/sdk/wechatpy_push.py"),
        vec![
            format!("{}/wx/{APPID}", env.url),
            token.into(),
            key.into(),
            APPID.into(),
            env.clock.now().to_string(),
            format!("{}", 5000 + n),
            format!("{}", 77_000 + n),
            other.0.into(),
            other.1.into(),
        ],
    )
    .await
}

/// The value of the series `series` (name and labels, as exposed) on `/metrics`.
async fn metric(env: &Env, series: &str) -> Option<f64> {
    let text = env.http.get(format!("{}/metrics", env.url)).send().await;
    let text = text.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

fn previous_key_series(owner: &str) -> String {
    format!("wxgate_pushes_previous_key_total{{appid=\"{owner}\"}}")
}

fn rejected_series(owner: &str) -> String {
    format!("wxgate_pushes_total{{appid=\"{owner}\",msg_type=\"unknown\",outcome=\"rejected\"}}")
}

/// During a rotation, a push sealed with the previous token and key is
/// answered with a reply wechatpy opens with them (and not with the new
/// ones); so is one where only the key changed; a push with the new ones is
/// answered with the new ones; a push with neither is refused (401) and
/// counted as refused. The pushes opened with a previous one are counted,
/// from zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_sealed_with_the_previous_key_is_answered_sealed_with_it() {
    let env = app_env(true).await;
    let used = previous_key_series(APPID);
    assert_eq!(
        metric(&env, &used).await,
        Some(0.0),
        "present from the start"
    );

    let old = wechatpy_push(&env, (OLD_TOKEN, OLD_KEY), 1, (NEW_TOKEN, NEW_KEY)).await;
    assert_eq!(old["status"], 200, "{old}");
    assert_eq!(old["reply"]["Content"], "欢迎", "{old}");
    assert_eq!(old["reply"]["ToUserName"], "oUser_py", "{old}");
    assert_eq!(
        old["other_opens"], false,
        "not sealed with the new key: {old}"
    );

    // Only the key changed in the console (the token stayed).
    let key_only = wechatpy_push(&env, (NEW_TOKEN, OLD_KEY), 2, (NEW_TOKEN, NEW_KEY)).await;
    assert_eq!(key_only["status"], 200, "{key_only}");
    assert_eq!(key_only["reply"]["Content"], "欢迎", "{key_only}");
    assert_eq!(key_only["other_opens"], false, "{key_only}");

    let new = wechatpy_push(&env, (NEW_TOKEN, NEW_KEY), 3, (OLD_TOKEN, OLD_KEY)).await;
    assert_eq!(new["status"], 200, "{new}");
    assert_eq!(new["reply"]["Content"], "欢迎", "{new}");
    assert_eq!(
        new["other_opens"], false,
        "sealed with the new key only: {new}"
    );

    let rejected = rejected_series(APPID);
    let before = metric(&env, &rejected).await.unwrap_or(0.0);
    let strange = wechatpy_push(&env, (STRANGE_TOKEN, STRANGE_KEY), 4, (NEW_TOKEN, NEW_KEY)).await;
    assert_eq!(strange["status"], 401, "{strange}");
    assert_eq!(metric(&env, &rejected).await, Some(before + 1.0));
    // The right token with neither key: refused too (the decryption fails).
    let wrong_key = wechatpy_push(&env, (NEW_TOKEN, STRANGE_KEY), 5, (NEW_TOKEN, NEW_KEY)).await;
    assert_eq!(wrong_key["status"], 400, "{wrong_key}");
    assert_eq!(metric(&env, &rejected).await, Some(before + 2.0));

    assert_eq!(
        metric(&env, &used).await,
        Some(2.0),
        "the old and the key-only push"
    );
    // And on /admin, beside the outcomes.
    let (_, status) = env.admin_get("/admin/status.json", ADMIN_KEY).await;
    let app = status["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appid"] == APPID)
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(app["pushes"]["previous_key"], 2, "{app}");
    assert_eq!(app["pushes"]["rule"], 3, "{app}");
}

/// Once the previous token and key are removed (a gateway started with
/// only the new ones), the push sealed with the old ones is refused, and no
/// previous-key series is exposed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_previous_key_is_removed_the_old_push_is_refused() {
    let env = app_env(false).await;
    let old = wechatpy_push(&env, (OLD_TOKEN, OLD_KEY), 1, (NEW_TOKEN, NEW_KEY)).await;
    assert_eq!(old["status"], 401, "{old}");
    let key_only = wechatpy_push(&env, (NEW_TOKEN, OLD_KEY), 2, (NEW_TOKEN, NEW_KEY)).await;
    assert_eq!(key_only["status"], 400, "{key_only}");
    assert_eq!(metric(&env, &rejected_series(APPID)).await, Some(2.0));
    assert_eq!(metric(&env, &previous_key_series(APPID)).await, None);
    let new = wechatpy_push(&env, (NEW_TOKEN, NEW_KEY), 3, (OLD_TOKEN, OLD_KEY)).await;
    assert_eq!(new["reply"]["Content"], "欢迎", "{new}");
}

/// A WeCom app during a rotation: wechatpy's URL check and callback sealed
/// with the previous token and key are answered, the echo decrypted and the
/// reply sealed so that wechatpy opens it with the old ones; the callback
/// is counted. Without the previous ones, both are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_callback_sealed_with_the_previous_key_is_answered_sealed_with_it() {
    for rotating in [true, false] {
        let env = Setup::new()
            .wecom(CORP, AGENT, "wecom-secret")
            .extra(&format!(
                "{}[[wecom.rules]]\nkeyword = \"hi\"\nreply = {{ text = \"hello from wxgate\" }}",
                push_settings(rotating)
            ))
            .start()
            .await;
        let owner = format!("{CORP}/{AGENT}");
        let out = crate::wechatpy(
            include_str!("../../../../tests/sdk/wechatpy_work_callback.py"),
            vec![
                format!("{}/wecom/{CORP}/{AGENT}", env.url),
                CORP.into(),
                AGENT.into(),
                OLD_TOKEN.into(),
                OLD_KEY.into(),
                env.clock.now().to_string(),
            ],
        )
        .await;
        if rotating {
            assert_eq!(out["echo_status"], 200, "{out}");
            assert_eq!(out["echo"], out["echo_sent"], "{out}");
            assert_eq!(out["reply_status"], 200, "{out}");
            assert_eq!(out["reply"]["content"], "hello from wxgate", "{out}");
            assert_eq!(out["reply"]["target"], "zhangsan", "{out}");
            let used = metric(&env, &previous_key_series(&owner)).await;
            assert_eq!(used, Some(1.0), "the callback, not the URL check");
        } else {
            assert_eq!(out["echo_status"], 401, "{out}");
            assert_eq!(out["reply_status"], 401, "{out}");
            assert_eq!(metric(&env, &rejected_series(&owner)).await, Some(1.0));
        }
    }
}

/// Plain mode has no key, but its signature has a token: during a token
/// rotation a push signed with the previous token is answered (and its
/// ownership check passes), one signed with neither is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_plain_mode_the_previous_token_still_signs() {
    let env = Setup::new()
        .app(&format!(
            "token = \"{NEW_TOKEN}\"\ntoken_previous = \"{OLD_TOKEN}\"\nmode = \"plain\"\n\
             [[apps.rules]]\n{RULE}"
        ))
        .start()
        .await;
    let request = |token: &str, msg_id: u32| PushRequest {
        url: format!("{}/wx/{APPID}", env.url),
        token: token.into(),
        mode: "plain".into(),
        appid: Some(APPID.into()),
        encoding_aes_key: None,
        message: Compose::Xml {
            xml: crate::pushes::sample_xml(
                "text",
                &format!("<Content><![CDATA[你好]]></Content><MsgId>{msg_id}</MsgId>"),
                T0,
            ),
        },
        from: "oUser_1".into(),
        to: "gh_0123456789ab".into(),
        timeout_ms: 5000,
        retries: 0,
    };
    let now = env.clock.now();
    for (token, msg_id) in [(OLD_TOKEN, 1), (NEW_TOKEN, 2)] {
        let outcome = push::send(&push::client(), &request(token, msg_id), now).await;
        assert_eq!(reply_text(&outcome.unwrap()), "欢迎", "{token}");
    }
    let outcome = push::send(&push::client(), &request(STRANGE_TOKEN, 3), now).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.attempts[0].status, Some(401), "{outcome:?}");
    assert_eq!(metric(&env, &previous_key_series(APPID)).await, Some(1.0));

    // The ownership check with the previous token passes too.
    let signed = |token: &str| wxgate_proto::signature(token, &now.to_string(), "42");
    for (token, status) in [(OLD_TOKEN, 200), (STRANGE_TOKEN, 401)] {
        let check = env
            .http
            .get(format!("{}/wx/{APPID}", env.url))
            .query(&[
                ("signature", signed(token).as_str()),
                ("timestamp", &now.to_string()),
                ("nonce", "42"),
                ("echostr", "echo-me"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(check.status().as_u16(), status, "{token}");
    }
}
