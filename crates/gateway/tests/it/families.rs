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
async fn a_mini_program_with_js_domains_or_json_pushes_is_refused_with_the_reason() {
    let toml = "[[apps]]\nappid = \"wxmp\"\nsecret = \"s\"\ntype = \"miniprogram\"\n\
                js_domains = [\"example.com\"]\npush_format = \"json\"\n";
    let error = wxgate_gateway::config::load(toml, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("apps[0].js_domains"), "{error}");
    assert!(error.contains("no JS-SDK"), "{error}");
    assert!(error.contains("apps[0].push_format"), "{error}");
    let typo = "[[apps]]\nappid = \"wxmp\"\nsecret = \"s\"\ntype = \"mini\"\n";
    let error = wxgate_gateway::config::load(typo, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("use official or miniprogram"), "{error}");
}
