//! Property tests: round trips hold for any input, and no input makes the
//! parsers or the decryptor panic.

use proptest::prelude::*;
use wxgate_proto::{
    open_push, seal_push, seal_reply, AesKey, Article, Event, MessageCrypto, Push, PushKind,
    PushMode, Reply, ReplyBody,
};

fn any_key() -> impl Strategy<Value = AesKey> {
    "[A-Za-z0-9]{43}".prop_map(|k| AesKey::try_new(&k).unwrap())
}

/// Text as WeChat carries it: any Unicode scalar XML allows (no control chars).
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{fffe}\u{ffff}]{0,40}"
}

fn kind() -> impl Strategy<Value = PushKind> {
    prop_oneof![
        (any::<u64>(), text()).prop_map(|(msg_id, content)| PushKind::Text { msg_id, content }),
        (any::<u64>(), text(), text()).prop_map(|(msg_id, pic_url, media_id)| PushKind::Image {
            msg_id,
            pic_url,
            media_id
        }),
        (any::<u64>(), text(), text(), proptest::option::of(text())).prop_map(
            |(msg_id, media_id, format, recognition)| PushKind::Voice {
                msg_id,
                media_id,
                format,
                recognition
            }
        ),
        (
            any::<u64>(),
            -90.0..90.0f64,
            -180.0..180.0f64,
            any::<u32>(),
            text()
        )
            .prop_map(
                |(msg_id, latitude, longitude, scale, label)| PushKind::Location {
                    msg_id,
                    latitude,
                    longitude,
                    scale,
                    label
                }
            ),
        (proptest::option::of(text()), proptest::option::of(text())).prop_map(
            |(event_key, ticket)| PushKind::Event(Event::Subscribe { event_key, ticket })
        ),
        text().prop_map(|event_key| PushKind::Event(Event::Click { event_key })),
        (any::<u64>(), text()).prop_map(|(msg_id, status)| PushKind::Event(
            Event::TemplateSendJobFinish { msg_id, status }
        )),
    ]
}

fn push() -> impl Strategy<Value = Push> {
    (text(), text(), any::<u64>(), kind()).prop_map(
        |(to_user_name, from_user_name, create_time, kind)| Push {
            to_user_name,
            from_user_name,
            create_time,
            kind,
            extra: Vec::new(),
        },
    )
}

fn reply_body() -> impl Strategy<Value = ReplyBody> {
    prop_oneof![
        text().prop_map(|content| ReplyBody::Text { content }),
        text().prop_map(|media_id| ReplyBody::Image { media_id }),
        proptest::option::of(text())
            .prop_map(|kf_account| ReplyBody::TransferCustomerService { kf_account }),
        (
            text(),
            proptest::option::of(text()),
            proptest::option::of(text())
        )
            .prop_map(|(media_id, title, description)| ReplyBody::Video {
                media_id,
                title,
                description
            }),
        proptest::collection::vec((text(), text(), text(), text()), 0..8).prop_map(|items| {
            ReplyBody::News {
                articles: items
                    .into_iter()
                    .map(|(title, description, pic_url, url)| Article {
                        title,
                        description,
                        pic_url,
                        url,
                    })
                    .collect(),
            }
        }),
    ]
}

proptest! {
    #[test]
    fn encrypt_then_decrypt_is_identity(
        key in any_key(),
        appid in "wx[0-9a-f]{16}",
        random in any::<[u8; 16]>(),
        msg in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let c = MessageCrypto::new(key, appid);
        let enc = c.encrypt(&random, &msg);
        match String::from_utf8(msg) {
            Ok(text) => prop_assert_eq!(c.decrypt(&enc).unwrap(), text),
            Err(_) => prop_assert!(c.decrypt(&enc).is_err()),
        }
    }

    #[test]
    fn pushes_survive_every_mode(
        push in push(),
        key in any_key(),
        random in any::<[u8; 16]>(),
        token in "[A-Za-z0-9]{3,32}",
        nonce in "[0-9]{1,10}",
    ) {
        let xml = push.to_xml();
        prop_assert_eq!(&Push::parse(&xml).unwrap(), &push);
        // Its JSON form (a Mini Program's or WeCom's JSON pushes) reads as the same push.
        let json = wxgate_proto::push_json_from_xml(&xml).unwrap();
        prop_assert_eq!(&wxgate_proto::push_from_json(&json).unwrap(), &push);
        let crypto = MessageCrypto::new(key, "wx0123456789abcdef");
        for mode in [PushMode::Plain, PushMode::Compat(crypto.clone()), PushMode::Safe(crypto)] {
            let sealed = seal_push(&mode, &token, &xml, None, "1700000000", &nonce, &random).unwrap();
            let opened = open_push(&mode, &token, &sealed.query, &sealed.body).unwrap();
            prop_assert_eq!(&Push::parse(&opened).unwrap(), &push);
        }
    }

    #[test]
    fn replies_round_trip(body in reply_body(), to in text(), from in text(), t in any::<u64>()) {
        let reply = Reply { to_user_name: to, from_user_name: from, create_time: t, body };
        prop_assert_eq!(Reply::parse(&reply.to_xml()).unwrap(), reply);
    }

    #[test]
    fn any_reply_text_is_written_as_well_formed_xml(
        chars in proptest::collection::vec(prop_oneof![
            any::<char>(), Just('\u{0}'), Just('\u{1}'), Just('\u{b}'), Just('\u{fffe}'),
            Just('\u{ffff}'), Just(']'), Just('>'), Just('<'), Just('&'),
        ], 0..64),
        to in ".{0,16}",
    ) {
        use wxgate_proto::xml::is_xml_char;
        let content: String = chars.into_iter().collect();
        let body = ReplyBody::Text { content: content.clone() };
        let reply = Reply { to_user_name: to.clone(), from_user_name: "gh".into(), create_time: 1, body };
        let xml = reply.to_xml();
        prop_assert!(xml.chars().all(is_xml_char), "{:?}", xml);
        let parsed = Reply::parse(&xml).unwrap();
        let kept = |s: &str| s.chars().filter(|&c| is_xml_char(c)).collect::<String>();
        prop_assert_eq!(parsed.to_user_name, kept(&to));
        prop_assert_eq!(parsed.body, ReplyBody::Text { content: kept(&content) });
    }

    #[test]
    fn encrypted_replies_open_in_every_encrypted_mode(
        body in reply_body(), key in any_key(), random in any::<[u8; 16]>(),
    ) {
        let reply = Reply { to_user_name: "o".into(), from_user_name: "gh".into(), create_time: 1, body };
        let crypto = MessageCrypto::new(key, "wx0123456789abcdef");
        for mode in [PushMode::Compat(crypto.clone()), PushMode::Safe(crypto)] {
            let sealed = seal_reply(&mode, "tok", &reply.to_xml(), "1", "2", &random);
            let opened = wxgate_proto::open_reply(&mode, "tok", &sealed).unwrap().unwrap();
            prop_assert_eq!(Reply::parse(&opened).unwrap(), reply.clone());
        }
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_input(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Push::parse(&text);
        let _ = Reply::parse(&text);
        let _ = wxgate_proto::EncryptedReply::parse(&text);
        let _ = wxgate_proto::push_from_json(&text);
    }

    #[test]
    fn json_pushes_never_panic_on_json_like_input(
        parts in proptest::collection::vec(prop_oneof![
            Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"), Just("\"ToUserName\""),
            Just("\"FromUserName\""), Just("\"CreateTime\""), Just("\"MsgType\""), Just("\"text\""),
            Just("\"event\""), Just("\"Event\""), Just("1714037059"), Just("-1"), Just("1e999"),
            Just("null"), Just("true"), Just("\"<]]>&\""), Just("\"MsgId\""), Just("18446744073709551616"),
        ], 0..40)
    ) {
        let text = parts.concat();
        if let Ok(push) = wxgate_proto::push_from_json(&text) {
            let _ = push.dedupe_key();
        }
    }

    #[test]
    fn parsers_never_panic_on_xml_like_input(
        parts in proptest::collection::vec(prop_oneof![
            Just("<xml>"), Just("</xml>"), Just("<MsgType>"), Just("</MsgType>"), Just("text"),
            Just("<![CDATA["), Just("]]>"), Just("&amp;"), Just("&x;"), Just("<!DOCTYPE x>"),
            Just("<a/>"), Just("<CreateTime>1</CreateTime>"), Just("<ToUserName>t</ToUserName>"),
            Just("<FromUserName>f</FromUserName>"), Just("<Event>CLICK</Event>"), Just("&#0;"),
        ], 0..40)
    ) {
        let text = parts.concat();
        let _ = Push::parse(&text);
        let _ = Reply::parse(&text);
    }

    #[test]
    fn decrypt_never_panics(key in any_key(), data in proptest::collection::vec(any::<u8>(), 0..512)) {
        use base64::Engine as _;
        let c = MessageCrypto::new(key, "wx0123456789abcdef");
        let _ = c.decrypt(&base64::engine::general_purpose::STANDARD.encode(&data));
        let _ = c.decrypt(&String::from_utf8_lossy(&data));
    }
}

fn component_info() -> impl Strategy<Value = wxgate_proto::ComponentInfo> {
    use wxgate_proto::{Authorization, ComponentInfo};
    let authorization = || {
        (text(), text(), any::<u64>(), text()).prop_map(|(a, c, t, p)| Authorization {
            authorizer_appid: a,
            authorization_code: c,
            authorization_code_expired_time: t,
            pre_auth_code: p,
        })
    };
    prop_oneof![
        text().prop_map(|ticket| ComponentInfo::VerifyTicket { ticket }),
        authorization().prop_map(ComponentInfo::Authorized),
        authorization().prop_map(ComponentInfo::UpdateAuthorized),
        text().prop_map(|authorizer_appid| ComponentInfo::Unauthorized { authorizer_appid }),
    ]
}

proptest! {
    /// Any component push survives WeChat's sealing and the platform's opening,
    /// and reads back as the same typed push.
    #[test]
    fn component_pushes_round_trip(
        key in any_key(),
        appid in "wx[0-9a-f]{16}",
        create_time in any::<u64>(),
        info in component_info(),
        random in any::<[u8; 16]>(),
    ) {
        let push = wxgate_proto::ComponentPush { component_appid: appid.clone(), create_time, info };
        let crypto = MessageCrypto::new(key, appid);
        let sealed = wxgate_proto::seal_component_push(&crypto, "tok", &push.to_xml(), "1700000000", "7", &random);
        let opened = wxgate_proto::open_component_push(&crypto, "tok", &sealed.query, &sealed.body).unwrap();
        prop_assert_eq!(wxgate_proto::ComponentPush::parse(&opened).unwrap(), push);
    }

    /// No decrypted text makes the component push reader panic.
    #[test]
    fn component_push_parsing_never_panics(xml in ".{0,300}") {
        let _ = wxgate_proto::ComponentPush::parse(&xml);
    }
}
