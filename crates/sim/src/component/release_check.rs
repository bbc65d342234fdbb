//! WeChat's automated release test (全网发布, families reference §3.8), run
//! against a platform's message URL as WeChat's test account: a text that
//! wants `TESTCOMPONENT_MSG_TYPE_TEXT_callback`, an event that wants
//! `<Event>from_callback`, and `QUERY_AUTH_CODE:<code>` that wants an empty
//! answer and then, within the time limit, a customer-service text
//! `<code>_from_api` sent with the authorizer token `api_query_auth` returned
//! for that very code.
//!
//! The test account authorizes the platform silently (no `authorized` push:
//! the code only travels in the third push, as in WeChat's test).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wxgate_proto::component::release_check::{
    from_api_text, QUERY_AUTH_CODE_PREFIX, TEST_MINIPROGRAM_APPID, TEST_OFFICIAL_APPID, TEST_TEXT,
};
use wxgate_proto::{Reply, ReplyBody};

use crate::config::AppKind;
use crate::push::{self, Compose, PushAnswer, PushOutcome, PushRequest};
use crate::state::{original_id, AuthorizeRequest};
use crate::Simulator;

/// The test user's openid.
const TEST_OPENID: &str = "ozy4qt5QUADNXORxCVipKMV9dss0";

/// The body of `POST /sim/release_check`.
#[derive(Debug, Deserialize)]
pub(crate) struct ReleaseCheckRequest {
    component_appid: String,
    /// The message URL as configured, `$APPID$` standing for the account.
    url: String,
    /// Which test account: `official` (default, `wx570bc396a51b8ff8`) or
    /// `miniprogram` (`wxd101a85aa106f53e`).
    #[serde(default, rename = "type")]
    kind: AppKind,
    /// How long the third step waits for the customer-service text, ms.
    #[serde(default = "default_wait_ms")]
    wait_ms: u64,
}

fn default_wait_ms() -> u64 {
    10_000
}

/// One step of the test.
#[derive(Debug, Serialize)]
struct Step {
    name: &'static str,
    passed: bool,
    /// What was expected, or what went wrong.
    detail: String,
    /// The push and the server's answer.
    outcome: PushOutcome,
}

/// The report `POST /sim/release_check` answers.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    component_appid: String,
    authorizer_appid: String,
    url: String,
    passed: bool,
    steps: Vec<Step>,
}

pub(crate) async fn run(sim: &Simulator, req: ReleaseCheckRequest) -> Result<Report, String> {
    let appid = match req.kind {
        AppKind::Official => TEST_OFFICIAL_APPID,
        AppKind::Miniprogram => TEST_MINIPROGRAM_APPID,
    };
    let now = sim.clock().now();
    let (platform, code) = {
        let mut state = sim.state();
        let platform = state
            .component
            .platform(&req.component_appid)
            .ok_or_else(|| format!("no platform {:?}", req.component_appid))?
            .clone();
        let authorize = AuthorizeRequest {
            component_appid: req.component_appid.clone(),
            pre_auth_code: None,
            authorizer_appid: appid.to_owned(),
            kind: req.kind,
            redirect_uri: None,
            func_info: None,
        };
        let (authorized, _) = state.sim_authorize(&authorize, false, now)?;
        (platform, authorized.authorization_code)
    };
    let url = req.url.replace("$APPID$", appid);
    let base = PushRequest {
        url: url.clone(),
        token: platform.token.clone(),
        mode: "safe".into(),
        appid: Some(platform.appid.clone()),
        encoding_aes_key: Some(platform.encoding_aes_key.clone()),
        message: Compose::Text {
            content: TEST_TEXT.into(),
        },
        from: TEST_OPENID.into(),
        to: original_id(appid),
        timeout_ms: 5000,
        retries: 0,
    };
    let mut steps = Vec::new();
    let text = send(sim, &base, base.message.clone()).await?;
    steps.push(expect_text("text", text, &format!("{TEST_TEXT}_callback")));
    let location = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{TEST_OPENID}]]></FromUserName>\
         <CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event>\
         <Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision></xml>",
        base.to
    );
    let event = send(sim, &base, Compose::Xml { xml: location }).await?;
    steps.push(expect_text("event", event, "LOCATIONfrom_callback"));
    let query = Compose::Text {
        content: format!("{QUERY_AUTH_CODE_PREFIX}{code}"),
    };
    let outcome = send(sim, &base, query).await?;
    steps.push(query_auth_step(sim, outcome, appid, &code, req.wait_ms).await);
    Ok(Report {
        component_appid: req.component_appid,
        authorizer_appid: appid.to_owned(),
        url,
        passed: steps.iter().all(|s| s.passed),
        steps,
    })
}

async fn send(
    sim: &Simulator,
    base: &PushRequest,
    message: Compose,
) -> Result<PushOutcome, String> {
    let req = PushRequest {
        message,
        ..base.clone()
    };
    push::send(sim.http(), &req, sim.clock().now())
        .await
        .map_err(|e| e.to_string())
}

fn expect_text(name: &'static str, outcome: PushOutcome, want: &str) -> Step {
    let got = match &outcome.answer {
        PushAnswer::Reply { xml, .. } => match Reply::parse(xml) {
            Ok(Reply {
                body: ReplyBody::Text { content },
                ..
            }) => Ok(content),
            Ok(reply) => Err(format!("a {} reply", reply.body.msg_type())),
            Err(e) => Err(e.to_string()),
        },
        other => Err(format!("{other:?}")),
    };
    let (passed, detail) = match got {
        Ok(content) if content == want => (true, format!("replied {want:?}")),
        Ok(content) => (false, format!("replied {content:?}, expected {want:?}")),
        Err(e) => (false, format!("expected a text reply {want:?}, got {e}")),
    };
    Step {
        name,
        passed,
        detail,
        outcome,
    }
}

/// The third step: an empty answer, then the customer-service text sent with
/// the token `api_query_auth` returned for `code`, within `wait_ms`.
async fn query_auth_step(
    sim: &Simulator,
    outcome: PushOutcome,
    appid: &str,
    code: &str,
    wait_ms: u64,
) -> Step {
    let fail = |detail: String, outcome| Step {
        name: "query_auth_code",
        passed: false,
        detail,
        outcome,
    };
    if outcome.answer != PushAnswer::NoReply {
        return fail(
            format!("expected an empty answer, got {:?}", outcome.answer),
            outcome,
        );
    }
    let want = from_api_text(code);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms.min(60_000));
    loop {
        let exchanged = sim.state().component.exchanged_for(code);
        let sent = sim.messages().into_iter().find(|m| {
            m.appid == appid
                && m.body["touser"] == TEST_OPENID
                && m.body["msgtype"] == "text"
                && m.body["text"]["content"] == want.as_str()
        });
        match (exchanged, sent) {
            (Some(token), Some(m)) if m.sent_with.as_deref() == Some(&token) => {
                return Step {
                    name: "query_auth_code",
                    passed: true,
                    detail: format!("sent {want:?} with the token of api_query_auth"),
                    outcome,
                }
            }
            (Some(_), Some(_)) => {
                return fail(
                    format!("{want:?} was sent with another token than api_query_auth returned for the code"),
                    outcome,
                )
            }
            (exchanged, _) if tokio::time::Instant::now() >= deadline => {
                let detail = if exchanged.is_none() {
                    format!("api_query_auth was not called with {code:?} within {wait_ms} ms")
                } else {
                    format!("no customer-service text {want:?} to {TEST_OPENID} within {wait_ms} ms")
                };
                return fail(detail, outcome);
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
