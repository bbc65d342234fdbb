//! WeChat-compatible endpoints: SDKs that only change their base URL share
//! wxgate's token; wechatpy proves it.

use serde_json::{json, Value};

use crate::{Setup, APPID, SECRET};

#[tokio::test]
async fn cgi_bin_token_serves_the_shared_token_to_holders_of_the_secret() {
    let env = Setup::new().start().await;
    let shared = env.access_token().await;
    let token = |appid: &str, secret: &str| {
        format!("/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}")
    };
    let answer = env.get_json(&token(APPID, SECRET)).await;
    assert_eq!(answer["access_token"], shared.as_str(), "{answer}");
    assert_eq!(answer["expires_in"], 7200);
    assert_eq!(env.get_json(&token(APPID, "nope")).await["errcode"], 40125);
    assert_eq!(env.get_json(&token("wxnope", "x")).await["errcode"], 40013);
    let no_grant = env
        .get_json(&format!("/cgi-bin/token?appid={APPID}&secret={SECRET}"))
        .await;
    assert_eq!(no_grant["errcode"], 40002);

    let body = json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET});
    let response = env
        .http
        .post(format!("{}/cgi-bin/stable_token", env.url))
        .json(&body)
        .send()
        .await;
    let stable: Value = response.unwrap().json().await.unwrap();
    assert_eq!(stable["access_token"], shared.as_str());
    assert_eq!(env.token_calls(), 1);

    let ticket = env
        .get_json(&format!(
            "/cgi-bin/ticket/getticket?access_token={shared}&type=jsapi"
        ))
        .await;
    assert_eq!(ticket["errcode"], 0, "{ticket}");
    let forged = env
        .get_json("/cgi-bin/ticket/getticket?access_token=forged&type=jsapi")
        .await;
    assert_eq!(forged["errcode"], 40001);
}

/// wechatpy's WeChatClient with its API base URL pointed at wxgate. wechatpy
/// 1.8.18 hard-codes the token URL in `fetch_access_token`, so the subclass
/// only makes that one call use the base URL too; everything else is stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpy_gets_the_shared_token_and_a_jsapi_ticket() {
    let env = Setup::new().start().await;
    let shared = env.access_token().await;
    let script = r#"
import json, sys
from wechatpy import WeChatClient
class Client(WeChatClient):
    API_BASE_URL = sys.argv[1] + "/cgi-bin/"
    def fetch_access_token(self):
        params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
        return self._fetch_access_token(url=self.API_BASE_URL + "token", params=params)
client = Client(sys.argv[2], sys.argv[3])
token = client.fetch_access_token()
ticket = client.jsapi.get_ticket()
print(json.dumps({"token": token, "ticket": ticket}))
"#;
    let args = vec![env.url.clone(), APPID.into(), SECRET.into()];
    let answer = crate::wechatpy(script, args).await;
    assert_eq!(answer["token"]["access_token"], shared.as_str(), "{answer}");
    assert_eq!(answer["ticket"]["errcode"], 0, "{answer}");
    let (_, ours) = env
        .client_get(&format!("/v1/apps/{APPID}/jsapi_ticket"))
        .await;
    assert_eq!(answer["ticket"]["ticket"], ours["jsapi_ticket"]);
    assert_eq!(
        env.token_calls(),
        1,
        "wechatpy did not fetch a token of its own"
    );
}
