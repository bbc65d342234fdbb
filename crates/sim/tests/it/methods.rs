//! A simulated API called with the wrong method answers as WeChat does: HTTP 200
//! with 43001 `require GET method` or 43002 `require POST method`, not 405.

use serde_json::Value;

use crate::{errcode, start, Client};

/// `method path?access_token=x`: asserts HTTP 200 and gives the JSON.
async fn call(wx: &Client, method: &reqwest::Method, path: &str) -> Value {
    let response = wx
        .http
        .request(method.clone(), format!("{}{path}?access_token=x", wx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{method} {path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_wrong_method_answers_200_with_43001_or_43002() {
    let (sim, wx) = start(|_| {}).await;
    let cases = [
        (
            reqwest::Method::POST,
            "/cgi-bin/token",
            43001,
            "require GET method",
        ),
        (
            reqwest::Method::PUT,
            "/cgi-bin/media/get",
            43001,
            "require GET method",
        ),
        (
            reqwest::Method::DELETE,
            "/cgi-bin/user/info",
            43001,
            "require GET method",
        ),
        (
            reqwest::Method::GET,
            "/cgi-bin/stable_token",
            43002,
            "require POST method",
        ),
        (
            reqwest::Method::GET,
            "/cgi-bin/message/custom/send",
            43002,
            "require POST method",
        ),
        (
            reqwest::Method::GET,
            "/cgi-bin/media/upload",
            43002,
            "require POST method",
        ),
        (
            reqwest::Method::GET,
            "/cgi-bin/openapi/rid/get",
            43002,
            "require POST method",
        ),
        (
            reqwest::Method::PUT,
            "/cgi-bin/clear_quota/v2",
            43002,
            "require POST method",
        ),
    ];
    for (method, path, expected, errmsg) in cases {
        let answer = call(&wx, &method, path).await;
        assert_eq!(errcode(&answer), expected, "{method} {path}: {answer}");
        let text = answer["errmsg"].as_str().unwrap();
        assert!(text.starts_with(&format!("{errmsg} rid: ")), "{text}");
    }
    let stats = sim.stats();
    assert_eq!(stats.unattributed.endpoints["/cgi-bin/token"].errors, 1);
    // The right method still reaches the API.
    let token = wx.token().await;
    assert!(token["access_token"].is_string(), "{token}");
}

/// A path under WeChat's API roots that the simulator does not implement
/// answers HTTP 200 with 48001 `api unauthorized` (what WeChat answers for an
/// API the account may not call) and a hint naming the path, so an SDK says
/// why; any other path is a plain 404.
#[tokio::test]
async fn an_api_not_simulated_answers_48001_naming_it_and_another_path_404() {
    let (_sim, wx) = start(|_| {}).await;
    for (method, path) in [
        (reqwest::Method::GET, "/cgi-bin/user/get"),
        (reqwest::Method::POST, "/cgi-bin/menu/create"),
        (reqwest::Method::POST, "/wxa/getwxacodeunlimit"),
    ] {
        let answer = call(&wx, &method, path).await;
        assert_eq!(errcode(&answer), 48001, "{method} {path}: {answer}");
        let text = answer["errmsg"].as_str().unwrap();
        let expected = format!("api unauthorized hint: [not simulated: {path}] rid: ");
        assert!(text.starts_with(&expected), "{text}");
    }
    let response = wx
        .http
        .get(format!("{}/not-wechat/user/get", wx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
