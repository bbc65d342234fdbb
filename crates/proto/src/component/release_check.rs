//! WeChat's automated release test (全网发布, families reference §3.8): before
//! a platform goes live, WeChat pushes three kinds of messages to its message
//! URL as a test account and checks the answers. A platform passes with:
//!
//! | push | expected |
//! |---|---|
//! | text `TESTCOMPONENT_MSG_TYPE_TEXT` | passive text reply `TESTCOMPONENT_MSG_TYPE_TEXT_callback` |
//! | an event `E` | passive text reply `Efrom_callback` |
//! | text `QUERY_AUTH_CODE:$code` | an empty answer, then `api_query_auth` with `$code` and a customer-service text `$code_from_api` to the sender, sent with the token that call returned |
//!
//! These are pure: the caller does the `api_query_auth` and the sending.

use crate::message::{Push, PushKind};
use crate::reply::{Reply, ReplyBody};

/// WeChat's test Official Account for the release test.
pub const TEST_OFFICIAL_APPID: &str = "wx570bc396a51b8ff8";
/// WeChat's test Mini Program for the release test.
pub const TEST_MINIPROGRAM_APPID: &str = "wxd101a85aa106f53e";
/// The text the first step sends.
pub const TEST_TEXT: &str = "TESTCOMPONENT_MSG_TYPE_TEXT";
/// The prefix of the third step's text, before the authorization code.
pub const QUERY_AUTH_CODE_PREFIX: &str = "QUERY_AUTH_CODE:";

/// Whether `appid` is one of WeChat's release-test accounts.
pub fn is_test_account(appid: &str) -> bool {
    appid == TEST_OFFICIAL_APPID || appid == TEST_MINIPROGRAM_APPID
}

/// What a platform must do with a release-test push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseCheckAnswer {
    /// Reply at once with this text (passively).
    ReplyText(String),
    /// Answer empty (`success` or nothing), then call `api_query_auth` with
    /// `code` and send [`from_api_text`]`(code)` to `openid` as a
    /// customer-service text with the authorizer token it returned.
    QueryAuthCode {
        /// The authorization code to exchange.
        code: String,
        /// Who to send the customer-service text to (the push's `FromUserName`).
        openid: String,
    },
}

/// The release-test answer to `push`, or `None` when it is not one of the test's pushes.
pub fn release_check_answer(push: &Push) -> Option<ReleaseCheckAnswer> {
    match &push.kind {
        PushKind::Text { content, .. } if content == TEST_TEXT => Some(
            ReleaseCheckAnswer::ReplyText(format!("{TEST_TEXT}_callback")),
        ),
        PushKind::Text { content, .. } => {
            let code = content.strip_prefix(QUERY_AUTH_CODE_PREFIX)?;
            Some(ReleaseCheckAnswer::QueryAuthCode {
                code: code.to_owned(),
                openid: push.from_user_name.clone(),
            })
        }
        PushKind::Event(event) => Some(ReleaseCheckAnswer::ReplyText(format!(
            "{}from_callback",
            event.name()
        ))),
        _ => None,
    }
}

/// The passive reply XML for a [`ReleaseCheckAnswer::ReplyText`] to `push`.
pub fn reply_text(push: &Push, text: &str, create_time: u64) -> String {
    Reply::to(
        push,
        create_time,
        ReplyBody::Text {
            content: text.to_owned(),
        },
    )
    .to_xml()
}

/// The customer-service text the third step expects: `$code_from_api`.
pub fn from_api_text(code: &str) -> String {
    format!("{code}_from_api")
}

/// The `/cgi-bin/message/custom/send` body of the third step.
pub fn custom_message(openid: &str, code: &str) -> serde_json::Value {
    serde_json::json!({
        "touser": openid,
        "msgtype": "text",
        "text": {"content": from_api_text(code)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(kind: &str) -> Push {
        Push::parse(&format!(
            "<xml><ToUserName>gh_3c884a361561</ToUserName><FromUserName>ozy4qt5QUADNXORxCVipKMV9dss0</FromUserName>\
             <CreateTime>1700000000</CreateTime>{kind}</xml>"
        ))
        .unwrap()
    }

    #[test]
    fn the_test_text_is_answered_with_its_callback() {
        let p = push(
            "<MsgType>text</MsgType><Content>TESTCOMPONENT_MSG_TYPE_TEXT</Content><MsgId>1</MsgId>",
        );
        let answer = release_check_answer(&p).unwrap();
        assert_eq!(
            answer,
            ReleaseCheckAnswer::ReplyText("TESTCOMPONENT_MSG_TYPE_TEXT_callback".into())
        );
        let xml = reply_text(&p, "TESTCOMPONENT_MSG_TYPE_TEXT_callback", 1_700_000_001);
        let reply = Reply::parse(&xml).unwrap();
        assert_eq!(reply.to_user_name, "ozy4qt5QUADNXORxCVipKMV9dss0");
        assert_eq!(reply.from_user_name, "gh_3c884a361561");
    }

    #[test]
    fn an_event_is_answered_with_its_name() {
        let p = push("<MsgType>event</MsgType><Event>LOCATION</Event><Latitude>1</Latitude><Longitude>2</Longitude><Precision>3</Precision>");
        assert_eq!(
            release_check_answer(&p),
            Some(ReleaseCheckAnswer::ReplyText(
                "LOCATIONfrom_callback".into()
            ))
        );
    }

    #[test]
    fn the_auth_code_text_asks_for_query_auth_and_a_custom_message() {
        let p = push("<MsgType>text</MsgType><Content>QUERY_AUTH_CODE:queryauthcode@@@abc</Content><MsgId>2</MsgId>");
        assert_eq!(
            release_check_answer(&p),
            Some(ReleaseCheckAnswer::QueryAuthCode {
                code: "queryauthcode@@@abc".into(),
                openid: "ozy4qt5QUADNXORxCVipKMV9dss0".into(),
            })
        );
        let body = custom_message("o1", "queryauthcode@@@abc");
        assert_eq!(body["text"]["content"], "queryauthcode@@@abc_from_api");
        assert_eq!(body["touser"], "o1");
        let other = push("<MsgType>text</MsgType><Content>hello</Content><MsgId>3</MsgId>");
        assert_eq!(release_check_answer(&other), None);
        assert!(is_test_account(TEST_MINIPROGRAM_APPID) && !is_test_account("wx0"));
    }
}
