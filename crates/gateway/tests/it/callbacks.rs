//! Pushes beyond the Official Account's: WeCom callbacks at
//! `/wecom/{corpid}/{agent}` (every WeCom vector of
//! `testdata/vectors-families.json` over HTTP, the simulator pushing as WeCom
//! in XML and JSON, late replies by `message/send`, wechatpy's crypto), and a
//! Mini Program's pushes (JSON safe mode, `success` unencrypted, only
//! `transfer_customer_service` as a passive reply).

use std::time::Duration;

use serde_json::{json, Value};
use wxgate_gateway::clock::Clock;
use wxgate_proto::{open_reply, AesKey, MessageCrypto, PushMode, Reply, ReplyBody};
use wxgate_sim::push::{self, Compose, PushRequest};
use wxgate_sim::{Family, PushAnswer, PushAs};

use crate::pushes::{start_hook, HOOK_SECRET};
use crate::{Env, Setup, APPID, T0};

const CORP: &str = "ww0123456789abcdef";
const AGENT: &str = "1000002";
const CALLBACK_TOKEN: &str = "wecom-callback-token";
const CALLBACK_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const ADMIN_KEY: &str = "callbacks-admin-key-0123456789";

fn vector(id: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors-families.json"
    );
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all.into_iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap()
}

/// A gateway with one WeCom app of `corp` taking callbacks with `token` and
/// `key`, its clock at `start`, plus `more` in its `[[wecom]]` table.
async fn wecom_env(corp: &str, agent: &str, token: &str, key: &str, start: u64, more: &str) -> Env {
    Setup::new()
        .starting_at(start)
        .admin(ADMIN_KEY)
        .wecom(corp, agent, "wecom-secret")
        .extra(&format!(
            "token = \"{token}\"\nencoding_aes_key = \"{key}\"\n{more}"
        ))
        .start()
        .await
}

async fn get(env: &Env, path: &str, query: &[(&str, &str)]) -> (u16, String) {
    let response = env
        .http
        .get(format!("{}{path}", env.url))
        .query(query)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post(env: &Env, path: &str, query: &[(&str, &str)], body: String) -> (u16, String) {
    let response = env
        .http
        .post(format!("{}{path}", env.url))
        .query(query)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn signed(v: &Value) -> Vec<(&'static str, &str)> {
    vec![
        ("msg_signature", field(v, "msg_signature")),
        ("timestamp", field(v, "timestamp")),
        ("nonce", field(v, "nonce")),
    ]
}

/// WeCom's published samples, as WeCom would send them: each URL check is
/// answered with exactly its plaintext, each callback decrypts and is
/// answered with a reply sealed for the corp; the JSON sample (whose
/// plaintext has a typo, `"FromUserName": :mycreate"`) decrypts but is
/// refused as JSON, and a tampered signature or a stale timestamp is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wecom_vector_is_answered_over_http() {
    for (check, callback, agent, keyword) in [
        (
            "wecom-verifyurl-qydev-2014",
            "wecom-decrypt-qydev-2014",
            "218",
            "hello",
        ),
        (
            "wecom-verifyurl-2016",
            "wecom-decrypt-2016",
            "1000002",
            "你好",
        ),
    ] {
        let (check, callback) = (vector(check), vector(callback));
        let corp = field(&check, "receiveid");
        let (token, key) = (field(&check, "token"), field(&check, "encoding_aes_key"));
        let start: u64 = field(&check, "timestamp").parse().unwrap();
        let rule = format!(
            "[[wecom.rules]]\nkeyword = \"{keyword}\"\nreply = {{ text = \"收到 {keyword}\" }}"
        );
        let env = wecom_env(corp, agent, token, key, start, &rule).await;
        let path = format!("/wecom/{corp}/{agent}");

        let mut query = signed(&check);
        query.push(("echostr", field(&check, "encrypt")));
        let (status, body) = get(&env, &path, &query).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            field(&check, "expected_plaintext"),
            "the bare plaintext"
        );

        let mut forged = query.clone();
        forged[0].1 = "0000000000000000000000000000000000000000";
        let (status, body) = get(&env, &path, &forged).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("bad_signature"), "{body}");

        let at: u64 = field(&callback, "timestamp").parse().unwrap();
        env.advance(at - start).await;
        let agent_id = agent.parse::<u64>().unwrap();
        let envelope = format!(
            "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt>\
             <AgentID><![CDATA[{agent_id}]]></AgentID></xml>",
            field(&callback, "encrypt")
        );
        let (status, body) = post(&env, &path, &signed(&callback), envelope.clone()).await;
        assert_eq!(status, 200, "{body}");
        let crypto = MessageCrypto::new(AesKey::try_new(key).unwrap(), corp);
        let reply = open_reply(&PushMode::Safe(crypto), token, &body)
            .unwrap()
            .expect("a reply, sealed for the corp");
        let reply = Reply::parse(&reply).unwrap();
        let sample = wxgate_proto::Push::parse(field(&callback, "expected_plaintext")).unwrap();
        assert_eq!(reply.to_user_name, sample.from_user_name, "to the member");
        assert_eq!(reply.from_user_name, corp, "from the corp");
        assert_eq!(
            reply.body,
            ReplyBody::Text {
                content: format!("收到 {keyword}")
            }
        );

        // A callback whose msg_signature does not cover its Encrypt is refused.
        let mut forged = signed(&callback);
        forged[0].1 = "0000000000000000000000000000000000000000";
        let (status, body) = post(&env, &path, &forged, envelope.clone()).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("bad_signature"), "{body}");
        // Nor is a WeCom app reachable as an Official Account at /wx/.
        let as_account = format!(
            "/wx/{}",
            path.trim_start_matches("/wecom/").replace('/', "%2F")
        );
        let (status, body) = get(
            &env,
            &as_account,
            &[
                ("signature", "x"),
                ("timestamp", "1"),
                ("nonce", "2"),
                ("echostr", "e"),
            ],
        )
        .await;
        assert_eq!(status, 404, "{body}");

        // Past the accepted window, the same callback is a replay.
        env.advance(301).await;
        let (status, body) = post(&env, &path, &signed(&callback), envelope).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("stale_timestamp"), "{body}");
    }

    let json = vector("wecom-decrypt-json-2016");
    let corp = field(&json, "receiveid");
    let start: u64 = field(&json, "timestamp").parse().unwrap();
    let env = wecom_env(
        corp,
        "218",
        field(&json, "token"),
        field(&json, "encoding_aes_key"),
        start,
        "",
    )
    .await;
    let body = json!({"ToUserName": "wx5823bf96d3bd56c7", "Encrypt": field(&json, "encrypt"), "AgentID": 218});
    let (status, answer) = post(
        &env,
        &format!("/wecom/{corp}/218"),
        &signed(&json),
        body.to_string(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("push: json"),
        "decrypted, then refused as JSON: {answer}"
    );
    let refused = wxgate_testkit::metric(
        &env.http,
        &env.url,
        &format!(
            "wxgate_pushes_total{{appid=\"{corp}/218\",msg_type=\"unknown\",outcome=\"rejected\"}}"
        ),
    )
    .await;
    assert_eq!(refused, 1.0);
}

/// A safe-mode push of `message` to `path`, encrypted for `receiveid`, from `from` to `to`.
fn safe_push(
    env: &Env,
    path: &str,
    receiveid: &str,
    (from, to): (&str, &str),
    message: Compose,
) -> PushRequest {
    PushRequest {
        url: format!("{}{path}", env.url),
        token: CALLBACK_TOKEN.into(),
        mode: "safe".into(),
        appid: Some(receiveid.into()),
        encoding_aes_key: Some(CALLBACK_KEY.into()),
        message,
        from: from.into(),
        to: to.into(),
        timeout_ms: 5000,
        retries: 0,
    }
}

fn wecom_push(env: &Env, message: Compose) -> PushRequest {
    let path = format!("/wecom/{CORP}/{AGENT}");
    safe_push(env, &path, CORP, ("zhangsan", CORP), message)
}

async fn push_as(env: &Env, request: &PushRequest, how: PushAs) -> wxgate_sim::PushOutcome {
    push::send_as(&push::client(), request, &how, env.clock.now())
        .await
        .unwrap()
}

fn as_wecom(format: wxgate_proto::BodyFormat) -> PushAs {
    PushAs {
        family: Family::Wecom,
        format,
        agent_id: Some(AGENT.parse().unwrap()),
    }
}

/// The simulator pushes as WeCom does: three identical URL checks at once
/// all verified; a callback in XML and one in JSON answered by the webhook
/// (which learns the family and the app), an event by a rule, replies sealed
/// for the corp. Counted under the app's owner id on the status page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_callbacks_in_xml_and_json_reach_the_webhook() {
    let (hook_url, hook) = start_hook(Duration::ZERO).await;
    let env = wecom_env(
        CORP,
        AGENT,
        CALLBACK_TOKEN,
        CALLBACK_KEY,
        T0,
        &format!(
            "webhook = \"{hook_url}\"\nwebhook_secret = \"{HOOK_SECRET}\"\n\
             [[wecom.rules]]\nevent = \"enter_agent\"\nreply = {{ text = \"欢迎\" }}"
        ),
    )
    .await;
    let xml = wxgate_proto::BodyFormat::Xml;
    let check = push_as(
        &env,
        &wecom_push(&env, Compose::VerifyUrl { fanout: 3 }),
        as_wecom(xml),
    )
    .await;
    assert!(
        matches!(check.answer, PushAnswer::Verified { .. }),
        "{check:?}"
    );
    assert_eq!(check.attempts.len(), 3);
    assert!(
        check
            .attempts
            .iter()
            .all(|a| a.status == Some(200) && a.elapsed_ms < 1000),
        "{check:?}"
    );

    for format in [xml, wxgate_proto::BodyFormat::Json] {
        let text = Compose::Text {
            content: format!("{format:?}"),
        };
        let outcome = push_as(&env, &wecom_push(&env, text), as_wecom(format)).await;
        match &outcome.answer {
            PushAnswer::Reply { msg_type, xml } => {
                assert_eq!(msg_type, "text");
                assert!(xml.contains("hook:text"), "{xml}");
            }
            other => panic!("{format:?}: {other:?}"),
        }
    }
    let seen = hook.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request["appid"], format!("{CORP}/{AGENT}"));
        assert_eq!(request["family"], "wecom");
        assert_eq!(request["mode"], "safe");
        assert_eq!(request["push"]["from_user_name"], "zhangsan");
    }
    let enter = Compose::Event {
        event: "enter_agent".into(),
        event_key: None,
    };
    let outcome = push_as(&env, &wecom_push(&env, enter), as_wecom(xml)).await;
    assert!(
        matches!(&outcome.answer, PushAnswer::Reply { xml, .. } if xml.contains("欢迎")),
        "{outcome:?}"
    );

    let (_, status) = env.admin_get("/admin/status.json", ADMIN_KEY).await;
    let app = status["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appid"] == format!("{CORP}/{AGENT}"))
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(app["push_mode"], "safe");
    assert_eq!(app["pushes"]["webhook"], 2, "{app}");
    assert_eq!(app["pushes"]["rule"], 1, "{app}");
    // Its 24 h timeline on /admin, the owner id as one path segment.
    let timeline = env
        .http
        .get(format!(
            "{}/admin/apps/{CORP}%2F{AGENT}/timeline.svg",
            env.url
        ))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(timeline.status(), 200);
    let svg = timeline.text().await.unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains(&format!("{CORP}/{AGENT}")),
        "{svg}"
    );
}

/// No reply is an empty 200 for WeCom (its documented answer), and a
/// webhook reply that comes too late goes out by `message/send` with the
/// app's agentid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_wecom_reply_goes_out_as_an_app_message() {
    let (hook_url, _hook) = start_hook(Duration::from_millis(1200)).await;
    let env = Setup::new()
        .server("reply_budget_ms = 200")
        .wecom(CORP, AGENT, "wecom-secret")
        .extra(&format!(
            "token = \"{CALLBACK_TOKEN}\"\nencoding_aes_key = \"{CALLBACK_KEY}\"\n\
             webhook = \"{hook_url}\"\nwebhook_secret = \"{HOOK_SECRET}\""
        ))
        .start()
        .await;
    let text = Compose::Text {
        content: "slow".into(),
    };
    let request = wecom_push(&env, text);
    let how = as_wecom(wxgate_proto::BodyFormat::Xml);
    let sealed = push_as(&env, &request, how).await;
    assert_eq!(sealed.answer, PushAnswer::NoReply, "{sealed:?}");
    assert!(sealed.attempts[0].elapsed_ms < 1000, "{sealed:?}");
    let message = wxgate_testkit::wait_for(Duration::from_secs(10), "no app message", async || {
        env.sim.messages().into_iter().next()
    })
    .await;
    assert_eq!(
        message.body,
        json!({"touser": "zhangsan", "msgtype": "text", "text": {"content": "hook:text"},
               "agentid": 1000002})
    );

    // The raw answer to a push nobody answers: 200 and an empty body.
    let plain = "<xml><ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName>\
                 <FromUserName><![CDATA[lisi]]></FromUserName><CreateTime>1</CreateTime>\
                 <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event>\
                 <AgentID>1000002</AgentID></xml>";
    let crypto = MessageCrypto::new(AesKey::try_new(CALLBACK_KEY).unwrap(), CORP);
    let now = env.clock.now().to_string();
    let callback = wxgate_proto::seal_callback(
        &crypto,
        CALLBACK_TOKEN,
        plain,
        wxgate_proto::CallbackShape {
            format: wxgate_proto::BodyFormat::Xml,
            agent_id: Some(1000002),
        },
        &now,
        "77",
        &[5; 16],
    );
    let q = &callback.query;
    let query = [
        ("msg_signature", q.msg_signature.as_str()),
        ("timestamp", q.timestamp.as_str()),
        ("nonce", q.nonce.as_str()),
    ];
    let (status, body) = post(
        &env,
        &format!("/wecom/{CORP}/{AGENT}"),
        &query,
        callback.body.clone(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, ""),
        "no reply in time: an empty 200"
    );
}

/// Callbacks built with unmodified wechatpy (`wechatpy.enterprise.crypto`):
/// its encrypted URL check is answered with the plaintext, and wxgate's
/// reply to its callback decrypts with wechatpy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpy_enterprise_callbacks_are_answered_and_decrypt() {
    let env = wecom_env(
        CORP,
        AGENT,
        CALLBACK_TOKEN,
        CALLBACK_KEY,
        T0,
        "[[wecom.rules]]\nkeyword = \"hi\"\nreply = { text = \"hello from wxgate\" }",
    )
    .await;
    let out = crate::wechatpy(
        include_str!("../../../../tests/sdk/wechatpy_work_callback.py"),
        vec![
            format!("{}/wecom/{CORP}/{AGENT}", env.url),
            CORP.into(),
            AGENT.into(),
            CALLBACK_TOKEN.into(),
            CALLBACK_KEY.into(),
            T0.to_string(),
        ],
    )
    .await;
    assert_eq!(out["echo_status"], 200, "{out}");
    assert_eq!(out["echo"], out["echo_sent"], "{out}");
    assert_eq!(out["reply_status"], 200, "{out}");
    assert_eq!(out["reply"]["type"], "text", "{out}");
    assert_eq!(out["reply"]["content"], "hello from wxgate", "{out}");
    assert_eq!(out["reply"]["target"], "zhangsan", "{out}");
}

fn miniprogram_push(env: &Env, message: Compose) -> PushRequest {
    let users = ("o9AgO5Kd5ggOC-bXrbNODIiE3bGY", "gh_97417a04a28d");
    safe_push(env, &format!("/wx/{APPID}"), APPID, users, message)
}

/// A Mini Program in safe mode with JSON pushes: an event nobody answers gets
/// `success`, unencrypted (an encrypted one breaks a Mini Program); a rule
/// hands a text to customer service with `transfer_customer_service`; a
/// webhook's text reply, which cannot be a passive reply, goes out as a
/// customer-service message while WeChat gets `success`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mini_program_json_push_is_answered_success_or_transfer() {
    let (hook_url, hook) = start_hook(Duration::ZERO).await;
    let env = Setup::new()
        .miniprogram()
        .app(&format!(
            "token = \"{CALLBACK_TOKEN}\"\nencoding_aes_key = \"{CALLBACK_KEY}\"\nmode = \"safe\"\n\
             push_format = \"json\"\nwebhook = \"{hook_url}\"\nwebhook_secret = \"{HOOK_SECRET}\"\n\
             [[apps.rules]]\nkeyword = \"人工\"\nreply = {{ transfer_customer_service = true }}\n\
             [[apps.rules]]\nevent = \"debug_demo\"\nreply = {{ text = \"not passive\" }}"
        ))
        .start()
        .await;
    let json = PushAs {
        family: Family::Miniprogram,
        format: wxgate_proto::BodyFormat::Json,
        agent_id: None,
    };
    let transfer = Compose::Text {
        content: "人工".into(),
    };
    let outcome = push_as(&env, &miniprogram_push(&env, transfer), json).await;
    assert!(
        matches!(&outcome.answer, PushAnswer::Reply { msg_type, .. } if msg_type == "transfer_customer_service"),
        "{outcome:?}"
    );

    // The webhook answers text: WeChat gets success, the user a message.
    let text = Compose::Text {
        content: "hello".into(),
    };
    let outcome = push_as(&env, &miniprogram_push(&env, text), json).await;
    assert_eq!(outcome.answer, PushAnswer::NoReply, "{outcome:?}");
    assert_eq!(hook.seen.lock().unwrap()[0]["family"], "miniprogram");

    // The families reference's example event: a rule's text, sent as a message too.
    let demo = Compose::Event {
        event: "debug_demo".into(),
        event_key: None,
    };
    let outcome = push_as(&env, &miniprogram_push(&env, demo), json).await;
    assert_eq!(outcome.answer, PushAnswer::NoReply, "{outcome:?}");

    let mut bodies =
        wxgate_testkit::wait_for(Duration::from_secs(10), "two messages sent", async || {
            let bodies: Vec<Value> = env.sim.messages().into_iter().map(|m| m.body).collect();
            (bodies.len() >= 2).then_some(bodies)
        })
        .await;
    bodies.sort_by_key(|b| b["text"]["content"].as_str().unwrap().to_owned());
    let to = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY";
    assert_eq!(
        bodies,
        [
            json!({"touser": to, "msgtype": "text", "text": {"content": "hook:text"}}),
            json!({"touser": to, "msgtype": "text", "text": {"content": "not passive"}}),
        ]
    );

    // The raw answer is the 7 bytes `success`, not an encrypted envelope.
    let plain = r#"{"ToUserName":"gh_97417a04a28d","FromUserName":"o1","CreateTime":1714037059,"MsgType":"event","Event":"user_enter_tempsession","SessionFrom":"x"}"#;
    let crypto = MessageCrypto::new(AesKey::try_new(CALLBACK_KEY).unwrap(), APPID);
    let now = env.clock.now().to_string();
    let sealed = wxgate_proto::seal_json_push(
        &PushMode::Safe(crypto),
        CALLBACK_TOKEN,
        plain,
        None,
        &now,
        "5",
        &[9; 16],
    )
    .unwrap();
    let response = env
        .http
        .post(format!("{}/wx/{APPID}", env.url))
        .query(&sealed.query)
        .body(sealed.body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "success");
}
