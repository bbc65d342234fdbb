//! Issue #19: credential families beside Official Accounts. A Mini Program
//! (`type = "miniprogram"`) has the same token APIs and no JS-SDK tickets.

use serde_json::Value;

use crate::{Setup, APPID};

#[tokio::test]
async fn a_mini_program_has_an_access_token_and_no_tickets() {
    let env = Setup::new().miniprogram().start().await;
    let token = env.access_token().await;
    assert_eq!(env.business_call(&token).await, 0);

    let (status, body) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_issued", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no JS-SDK"),
        "{body}"
    );

    // The WeChat-compatible endpoint answers as WeChat would an unauthorized API.
    let answer: Value = env
        .http
        .get(format!(
            "{}/cgi-bin/ticket/getticket?access_token={token}&type=jsapi",
            env.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["errcode"], 48001, "{answer}");

    // Asked to sign a page, it says why it has no JS-SDK, not that the
    // page's domain should be added (it has no domains to add it to).
    let (status, body) = env
        .client_post(
            &format!("/v1/apps/{APPID}/jssdk/signature"),
            serde_json::json!({"url": "https://www.example.com/"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_issued", "{body}");

    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/ticket/getticket"),
        0,
        "no ticket was ever asked of WeChat"
    );
    let ready = env
        .http
        .get(format!("{}/readyz", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_mini_program_with_js_domains_or_an_account_with_json_pushes_is_refused() {
    let toml = "[[apps]]\nappid = \"wxmp\"\nsecret = \"s\"\ntype = \"miniprogram\"\n\
                js_domains = [\"example.com\"]\npush_format = \"json\"\n\
                [[apps]]\nappid = \"wxoa\"\nsecret = \"s\"\npush_format = \"json\"\n";
    let error = wxgate_gateway::config::load(toml, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("apps[0].js_domains"), "{error}");
    assert!(error.contains("no JS-SDK"), "{error}");
    assert!(
        !error.contains("apps[0].push_format"),
        "a Mini Program may choose JSON: {error}"
    );
    assert!(error.contains("apps[1].push_format"), "{error}");
    assert!(error.contains("Official Accounts push XML"), "{error}");
    let typo = "[[apps]]\nappid = \"wxmp\"\nsecret = \"s\"\ntype = \"mini\"\n";
    let error = wxgate_gateway::config::load(typo, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("use official or miniprogram"), "{error}");
}

const CORP: &str = "ww0123456789abcdef";

async fn wecom_get(env: &crate::Env, agent: &str, kind: &str) -> (u16, Value) {
    env.client_get(&format!("/v1/wecom/{CORP}/{agent}/{kind}"))
        .await
}

/// WeCom: one token per (corpid, secret), warm from the start; the corp
/// jsapi_ticket and the app's agent_config ticket, each fetched with the
/// app's own token; two agents of a corp never share a token or a ticket.
#[tokio::test]
async fn each_wecom_app_has_its_own_token_and_tickets() {
    let env = Setup::new()
        .wecom(CORP, "1000002", "secret-of-1000002")
        .wecom(CORP, "1000003", "secret-of-1000003")
        .admin("families-admin-key-0123456789")
        .start()
        .await;
    let mut tokens = Vec::new();
    let mut agent_tickets = Vec::new();
    for agent in ["1000002", "1000003"] {
        let (status, body) = wecom_get(&env, agent, "access_token").await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
        let (status, body) = wecom_get(&env, agent, "jsapi_ticket").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = wecom_get(&env, agent, "agent_config_ticket").await;
        assert_eq!(status, 200, "{body}");
        agent_tickets.push(body["agent_config_ticket"].as_str().unwrap().to_owned());
        let stats = env.sim.stats().wecom(&format!("{CORP}/{agent}"));
        assert_eq!(
            stats.calls("/cgi-bin/gettoken"),
            1,
            "warm-up only: {stats:?}"
        );
        assert_eq!(stats.invalid_token_calls, 0);
    }
    assert_ne!(tokens[0], tokens[1]);
    assert_ne!(agent_tickets[0], agent_tickets[1]);
    // A WeCom app has no card ticket; an Official Account no agent_config ticket.
    let (status, body) = wecom_get(&env, "1000002", "wx_card_ticket").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_issued"))
    );
    let (status, _) = env
        .client_get(&format!("/v1/apps/{APPID}/agent_config_ticket"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = wecom_get(&env, "1000009", "access_token").await;
    assert_eq!(status, 404, "an unknown agent");

    // The status page lists each WeCom app with its credentials.
    let snapshot = env
        .admin_get("/admin/status.json", "families-admin-key-0123456789")
        .await
        .1;
    let wecom: Vec<&Value> = snapshot["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["app_type"] == "wecom")
        .collect();
    assert_eq!(wecom.len(), 2, "{snapshot}");
    assert_eq!(wecom[0]["appid"], format!("{CORP}/1000002"));
    let kinds: Vec<&str> = wecom[0]["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["access_token", "jsapi_ticket", "agent_config_ticket"]
    );
    // The fetch quota shown is the token API's: none published for WeCom's
    // gettoken; 2,000 a day for a classic token (the Official Account here).
    assert!(
        wecom[0]["credentials"][0]["daily_quota"].is_null(),
        "{snapshot}"
    );
    let official = snapshot["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appid"] == APPID)
        .unwrap();
    assert_eq!(
        official["credentials"][0]["daily_quota"], 2000,
        "{official}"
    );
}

/// WeCom ends a token early (40014 afterwards): a business server's
/// compare-and-refresh gets a new one; and a renewal refused with 60020
/// names the IP to trust in /readyz.
#[tokio::test]
async fn a_wecom_token_is_replaced_and_60020_names_the_ip_to_trust() {
    let env = Setup::new()
        .wecom(CORP, "1000002", "secret-of-1000002")
        .start()
        .await;
    let (_, body) = wecom_get(&env, "1000002", "access_token").await;
    let old = body["access_token"].as_str().unwrap().to_owned();
    env.sim.invalidate_wecom_token(CORP, "1000002").unwrap();
    let (status, body) = env
        .client_post(
            &format!("/v1/wecom/{CORP}/1000002/access_token/refresh"),
            serde_json::json!({ "invalid_token": old }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["access_token"].as_str().unwrap(), old);

    // Only another address is trusted now: the tickets' renewal, made with
    // the token, meets 60020, and the caller is told which IP to trust.
    env.sim
        .set_trusted_ips(CORP, "1000002", Some(vec!["10.9.8.7/32".parse().unwrap()]))
        .unwrap();
    env.advance(7200).await;
    env.settle().await;
    let (status, body) = wecom_get(&env, "1000002", "agent_config_ticket").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["errcode"], 60020, "{body}");
    let hint = body["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("企业可信IP") && hint.contains("127.0.0.1"),
        "{hint}"
    );
}

/// Unmodified wechatpy (`wechatpy.enterprise`) pointed at wxgate by its base
/// URL: its token comes from wxgate's `/cgi-bin/gettoken`, both tickets from
/// wxgate, and its business call is forwarded to WeCom's host with the
/// current token; WeCom sees no token fetch of its own.
#[tokio::test]
async fn wechatpy_enterprise_shares_wxgates_wecom_token() {
    let secret = "secret-of-1000002";
    let env = Setup::new().wecom(CORP, "1000002", secret).start().await;
    let answer = crate::wechatpy(
        include_str!("../../../../tests/sdk/wechatpy_work.py"),
        vec![
            env.url.clone(),
            CORP.into(),
            secret.into(),
            "1000002".into(),
        ],
    )
    .await;
    for (field, kind) in [
        ("token", "access_token"),
        ("corp_ticket", "jsapi_ticket"),
        ("agent_ticket", "agent_config_ticket"),
    ] {
        let (status, body) = wecom_get(&env, "1000002", kind).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(answer[field], body[kind], "{answer}");
    }
    assert_eq!(answer["agent"]["errcode"], 0, "{answer}");
    let stats = env.sim.stats().wecom(&format!("{CORP}/1000002"));
    assert_eq!(stats.calls("/cgi-bin/gettoken"), 1, "wxgate's warm-up only");
    assert_eq!(stats.calls("/cgi-bin/agent/get"), 1, "{stats:?}");
    assert_eq!(stats.invalid_token_calls, 0);

    // A wrong secret is WeCom's 40001, an unknown corp 40013: no fetch either way.
    for (corp, secret, errcode) in [(CORP, "wrong", 40001), ("wwunknowncorp0000", secret, 40013)] {
        let answer: Value = env
            .http
            .get(format!(
                "{}/cgi-bin/gettoken?corpid={corp}&corpsecret={secret}",
                env.url
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["errcode"], errcode, "{answer}");
        if errcode == 40013 {
            let errmsg = answer["errmsg"].as_str().unwrap();
            assert!(
                errmsg.starts_with("no WeCom app of corp wwunknowncorp0000"),
                "{answer}"
            );
        }
    }
    assert_eq!(
        env.sim
            .stats()
            .wecom(&format!("{CORP}/1000002"))
            .calls("/cgi-bin/gettoken"),
        1
    );
}

/// A fresh start and 1,000 concurrent requests for one WeCom app's token:
/// one `gettoken`, one token for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_for_a_wecom_app_make_one_gettoken() {
    let env = std::sync::Arc::new(
        Setup::new()
            .wecom(CORP, "1000002", "secret-of-1000002")
            .start()
            .await,
    );
    let calls = (0..1000).map(|_| {
        let env = env.clone();
        tokio::spawn(async move {
            let (status, body) = wecom_get(&env, "1000002", "access_token").await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        })
    });
    let tokens: std::collections::HashSet<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(tokens.len(), 1);
    let stats = env.sim.stats().wecom(&format!("{CORP}/1000002"));
    assert_eq!(stats.calls("/cgi-bin/gettoken"), 1);
}

/// WeCom ends a token early: the probe (WeCom's `getcallbackip`) notices and
/// replaces it with no client asking.
#[tokio::test]
async fn the_probe_replaces_a_wecom_token_wecom_ended() {
    let env = Setup::new()
        .wecom(CORP, "1000002", "secret-of-1000002")
        .probe(60)
        .start()
        .await;
    let (_, body) = wecom_get(&env, "1000002", "access_token").await;
    let old = body["access_token"].as_str().unwrap().to_owned();
    env.sim.invalidate_wecom_token(CORP, "1000002").unwrap();
    for _ in 0..4 {
        env.step(30).await;
    }
    let stats = env.sim.stats().wecom(&format!("{CORP}/1000002"));
    assert_eq!(
        stats.calls("/cgi-bin/gettoken"),
        2,
        "warm-up and the replacement"
    );
    let (_, body) = wecom_get(&env, "1000002", "access_token").await;
    assert_ne!(body["access_token"].as_str().unwrap(), old);
    let name = format!("wxgate_probe_rejections_total{{appid=\"{CORP}/1000002\"}}");
    let rejections = wxgate_testkit::metric(&env.http, &env.url, &name).await;
    assert_eq!(rejections, 1.0);
}

/// `/proxy/{corpid}/{agent}/…` forwards to WeCom with that app's token, and
/// when WeCom has ended the token (40014) it refreshes and retries once; an
/// agent the corp does not have is refused before anything is forwarded.
#[tokio::test]
async fn the_proxy_forwards_wecom_calls_with_the_apps_token() {
    let env = Setup::new()
        .wecom(CORP, "1000002", "secret-of-1000002")
        .start()
        .await;
    let send = |agent: &'static str| {
        let env = &env;
        async move {
            let response = env
                .http
                .post(format!(
                    "{}/proxy/{CORP}/{agent}/cgi-bin/message/send",
                    env.url
                ))
                .bearer_auth(crate::CLIENT_KEY)
                .json(&serde_json::json!({
                    "touser": "zhangsan", "agentid": 1000002, "msgtype": "text",
                    "text": {"content": "via the proxy"},
                }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = send("1000002").await;
    assert_eq!((status, body["errcode"].as_i64()), (200, Some(0)), "{body}");
    env.sim.invalidate_wecom_token(CORP, "1000002").unwrap();
    let (status, body) = send("1000002").await;
    assert_eq!((status, body["errcode"].as_i64()), (200, Some(0)), "{body}");
    assert_eq!(env.sim.messages().len(), 2);
    assert_eq!(
        env.sim
            .stats()
            .wecom(&format!("{CORP}/1000002"))
            .calls("/cgi-bin/gettoken"),
        2,
        "one fetch at the start, one after WeCom ended the token"
    );
    let (status, body) = send("9999").await;
    assert_eq!(status, 403, "outside the client's scope: {body}");
    // WeCom's credential APIs are never forwarded (the client API hands them out).
    for path in [
        "cgi-bin/gettoken",
        "cgi-bin/get_jsapi_ticket",
        "cgi-bin/ticket/get",
    ] {
        let response = env
            .http
            .get(format!(
                "{}/proxy/{CORP}/1000002/{path}?type=agent_config",
                env.url
            ))
            .bearer_auth(crate::CLIENT_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
        // In WeCom's words: its client-API path, and no claim that a fetch
        // would end the token (a repeated gettoken does not).
        let body: Value = response.json().await.unwrap();
        let hint = body["hint"].as_str().unwrap_or_default();
        assert!(hint.contains("/v1/wecom/{corpid}/{agent}/"), "{body}");
        assert!(!hint.contains("invalidate"), "{body}");
    }
    assert_eq!(
        env.sim
            .stats()
            .wecom(&format!("{CORP}/1000002"))
            .calls("/cgi-bin/gettoken"),
        2,
        "nothing forwarded"
    );
}

/// A WeCom `gettoken` before expiry repeats the live token; when WeCom
/// reports it with a full 7200 s (the other reading of its undocumented
/// behaviour), wxgate keeps the expiry it was first told, so it never serves
/// the token past its real end.
#[tokio::test]
async fn a_repeated_wecom_token_keeps_its_first_expiry() {
    let env = Setup::new()
        .wecom(CORP, "1000002", "secret-of-1000002")
        .sim(|c| c.wecom_repeat = wxgate_sim::WecomRepeat::Full)
        .start()
        .await;
    let (_, first) = wecom_get(&env, "1000002", "access_token").await;
    env.advance(1000).await;
    let (status, again) = env
        .client_post(
            &format!("/v1/wecom/{CORP}/1000002/access_token/refresh"),
            serde_json::json!({ "invalid_token": first["access_token"] }),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    let key = format!("{CORP}/1000002");
    assert_eq!(
        env.sim.stats().wecom(&key).calls("/cgi-bin/gettoken"),
        2,
        "it asked"
    );
    assert_eq!(
        again["access_token"], first["access_token"],
        "WeCom repeated it"
    );
    assert_eq!(again["expires_at"], first["expires_at"], "{again}");
    assert_eq!(again["expires_in"], 7200 - 1000, "{again}");
}

/// Rule replies a family cannot deliver, and two WeCom entries one
/// `/wecom/{corpid}/{agent}` could name, are configuration errors.
#[test]
fn undeliverable_replies_and_clashing_wecom_agents_are_refused() {
    let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    let toml = format!(
        "[[apps]]\nappid = \"wxmp\"\nsecret = \"s\"\ntype = \"miniprogram\"\ntoken = \"t\"\n\
         [[apps.rules]]\nkeyword = \"k\"\nreply = {{ news = [{{ title = \"t\" }}] }}\n\
         [[apps.rules]]\nkeyword = \"ok\"\nreply = {{ text = \"sent as a message\" }}\n\
         [[wecom]]\ncorpid = \"ww1\"\nagentid = 1000002\nsecret = \"s\"\ntoken = \"t\"\n\
         encoding_aes_key = \"{key}\"\n\
         [[wecom.rules]]\nkeyword = \"k\"\nreply = {{ transfer_customer_service = true }}\n\
         [[wecom]]\ncorpid = \"ww1\"\nname = \"1000002\"\nsecret = \"s2\"\n\
         [[wecom]]\ncorpid = \"ww1\"\nagentid = 1000003\nsecret = \"s3\"\ntoken = \"t\"\n"
    );
    let error = wxgate_gateway::config::load(&toml, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("apps[0].rules: a news reply"), "{error}");
    assert!(!error.contains("a text reply"), "{error}");
    assert!(
        error.contains("wecom[0].rules: a transfer_customer_service reply: WeCom"),
        "{error}"
    );
    assert!(
        error.contains("wecom[1].name: ww1/1000002 clashes with ww1/1000002"),
        "{error}"
    );
    assert!(
        error.contains("wecom[2].encoding_aes_key: WeCom callbacks are always encrypted"),
        "{error}"
    );
}
