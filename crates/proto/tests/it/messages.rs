//! Typed pushes and replies, from the shapes in the protocol reference (§2.3–2.6).

use wxgate_proto::{
    reply::is_no_reply, Article, Event, MessageError, Push, PushKind, Reply, ReplyBody, XmlError,
};

const HEAD: &str = "<ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\
<FromUserName><![CDATA[oUser_openid_0001]]></FromUserName><CreateTime>1700000000</CreateTime>";

fn push(msg_type: &str, fields: &str) -> Push {
    let xml = format!("<xml>{HEAD}<MsgType><![CDATA[{msg_type}]]></MsgType>{fields}</xml>");
    let push = Push::parse(&xml).unwrap_or_else(|e| panic!("{xml}: {e}"));
    assert_eq!(push.to_user_name, "gh_0123456789ab");
    assert_eq!(push.from_user_name, "oUser_openid_0001");
    assert_eq!(push.create_time, 1_700_000_000);
    // Whatever was parsed serialises back to the same value.
    assert_eq!(
        Push::parse(&push.to_xml()).unwrap(),
        push,
        "round trip of {xml}"
    );
    push
}

fn event(name: &str, fields: &str) -> Event {
    match push(
        "event",
        &format!("<Event><![CDATA[{name}]]></Event>{fields}"),
    )
    .kind
    {
        PushKind::Event(event) => event,
        other => panic!("not an event: {other:?}"),
    }
}

#[test]
fn normal_messages() {
    let p = push(
        "text",
        "<Content><![CDATA[你好 /::)]]></Content><MsgId>24512345678901234</MsgId>",
    );
    assert_eq!(
        p.kind,
        PushKind::Text {
            msg_id: 24_512_345_678_901_234,
            content: "你好 /::)".into()
        }
    );
    let p = push(
        "image",
        "<PicUrl><![CDATA[http://mmbiz/x.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>2</MsgId>",
    );
    assert_eq!(
        p.kind,
        PushKind::Image {
            msg_id: 2,
            pic_url: "http://mmbiz/x.jpg".into(),
            media_id: "m1".into()
        }
    );
    let p = push(
        "voice",
        "<MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[amr]]></Format>\
         <MediaId16K><![CDATA[m16]]></MediaId16K><Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>3</MsgId>",
    );
    assert_eq!(
        p.kind,
        PushKind::Voice {
            msg_id: 3,
            media_id: "m2".into(),
            format: "amr".into(),
            recognition: Some("腾讯微信团队".into())
        }
    );
    assert_eq!(p.extra.len(), 1, "MediaId16K is kept: {:?}", p.extra);
    assert_eq!(p.extra[0].text, "m16");
    let p = push(
        "voice",
        "<MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[speex]]></Format><MsgId>4</MsgId>",
    );
    assert!(matches!(
        p.kind,
        PushKind::Voice {
            recognition: None,
            ..
        }
    ));
    let p = push("video", "<MediaId><![CDATA[v]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>5</MsgId>");
    assert_eq!(
        p.kind,
        PushKind::Video {
            msg_id: 5,
            media_id: "v".into(),
            thumb_media_id: "t".into()
        }
    );
    let p = push("shortvideo", "<MediaId><![CDATA[v]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>6</MsgId>");
    assert!(matches!(p.kind, PushKind::ShortVideo { msg_id: 6, .. }));
    let p = push(
        "location",
        "<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale>\
         <Label><![CDATA[广州市]]></Label><MsgId>7</MsgId>",
    );
    assert_eq!(
        p.kind,
        PushKind::Location {
            msg_id: 7,
            latitude: 23.134521,
            longitude: 113.358803,
            scale: 20,
            label: "广州市".into()
        }
    );
    let p = push(
        "link",
        "<Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[https://a/b?c=1&amp;d=2]]></Url><MsgId>8</MsgId>",
    );
    assert!(
        matches!(p.kind, PushKind::Link { msg_id: 8, ref url, .. } if url == "https://a/b?c=1&amp;d=2")
    );
}

#[test]
fn events() {
    assert_eq!(
        event("subscribe", ""),
        Event::Subscribe {
            event_key: None,
            ticket: None
        }
    );
    let qr = event(
        "subscribe",
        "<EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[gQH47joAAAAA]]></Ticket>",
    );
    assert_eq!(qr.qr_scene(), Some("123123"));
    assert_eq!(
        event("subscribe", "<EventKey><![CDATA[]]></EventKey>").qr_scene(),
        None
    );
    assert_eq!(event("unsubscribe", ""), Event::Unsubscribe);
    let scan = event(
        "SCAN",
        "<EventKey><![CDATA[123123]]></EventKey><Ticket><![CDATA[tk]]></Ticket>",
    );
    assert_eq!(
        scan,
        Event::Scan {
            event_key: "123123".into(),
            ticket: Some("tk".into())
        }
    );
    assert_eq!(
        event("LOCATION", "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>"),
        Event::Location { latitude: 23.137466, longitude: 113.352425, precision: 119.38504 }
    );
    assert_eq!(
        event("CLICK", "<EventKey><![CDATA[V1001_TODAY]]></EventKey>"),
        Event::Click {
            event_key: "V1001_TODAY".into()
        }
    );
    assert_eq!(
        event(
            "VIEW",
            "<EventKey><![CDATA[https://www.example.com/]]></EventKey><MenuId>208</MenuId>"
        ),
        Event::View {
            url: "https://www.example.com/".into(),
            menu_id: Some("208".into())
        }
    );
    assert_eq!(
        event(
            "TEMPLATESENDJOBFINISH",
            "<MsgID>200163836</MsgID><Status><![CDATA[failed: system failed]]></Status>"
        ),
        Event::TemplateSendJobFinish {
            msg_id: 200_163_836,
            status: "failed: system failed".into()
        }
    );
    // Event names are compared case-insensitively (§2.2).
    assert!(matches!(
        event("click", "<EventKey>k</EventKey>"),
        Event::Click { .. }
    ));
}

#[test]
fn unknown_types_keep_every_field() {
    let p = push(
        "miniprogrampage",
        "<Title><![CDATA[t]]></Title><AppId>wx1</AppId><MsgId>9</MsgId>",
    );
    assert_eq!(
        p.kind,
        PushKind::Unknown {
            msg_type: "miniprogrampage".into()
        }
    );
    let names: Vec<_> = p.extra.iter().map(|e| &*e.name).collect();
    assert_eq!(names, ["Title", "AppId", "MsgId"]);
    assert_eq!(p.msg_id(), Some(9));

    let e = push(
        "event",
        "<Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[rselfmenu_0_1]]></EventKey>\
         <ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>",
    );
    assert_eq!(
        e.kind,
        PushKind::Event(Event::Unknown {
            event: "scancode_push".into()
        })
    );
    let info = e.extra.iter().find(|x| x.name == "ScanCodeInfo").unwrap();
    assert_eq!(info.child_text("ScanType"), Some("qrcode"));

    // A known type whose fields do not fit is kept whole rather than dropped.
    let broken = push("text", "<Content><![CDATA[no id]]></Content>");
    assert_eq!(
        broken.kind,
        PushKind::Unknown {
            msg_type: "text".into()
        }
    );
    assert_eq!(broken.extra[0].text, "no id");
}

#[test]
fn dedupe_keys() {
    let text = push(
        "text",
        "<Content>a</Content><MsgId>18446744073709551615</MsgId>",
    );
    assert_eq!(text.dedupe_key(), "m:18446744073709551615");
    let click = push(
        "event",
        "<Event><![CDATA[CLICK]]></Event><EventKey>k</EventKey>",
    );
    let key = click.dedupe_key();
    assert!(
        key.starts_with("e:oUser_openid_0001:1700000000:CLICK:") && key.len() == 53,
        "{key}"
    );
    // A retry is the same push: the same key.
    let retry = push(
        "event",
        "<Event><![CDATA[CLICK]]></Event><EventKey>k</EventKey>",
    );
    assert_eq!(retry.dedupe_key(), key);
    // Issue #16 (3): two different events of one user in one second are two pushes.
    let other_click = push(
        "event",
        "<Event><![CDATA[CLICK]]></Event><EventKey>k2</EventKey>",
    );
    assert_ne!(other_click.dedupe_key(), key);
    let job = |id: &str| {
        push(
            "event",
            &format!(
                "<Event>TEMPLATESENDJOBFINISH</Event><MsgID>{id}</MsgID><Status>success</Status>"
            ),
        )
        .dedupe_key()
    };
    assert_ne!(job("1"), job("2"));
    assert_eq!(job("1"), job("1"));
}

#[test]
fn header_errors_are_values() {
    assert!(matches!(
        Push::parse("<xml><ToUserName>a</ToUserName></xml>"),
        Err(MessageError::Missing("FromUserName"))
    ));
    let bad_time = "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>";
    assert!(matches!(
        Push::parse(bad_time),
        Err(MessageError::Invalid {
            field: "CreateTime",
            ..
        })
    ));
    assert!(matches!(
        Push::parse("<xml><ToUserName>"),
        Err(MessageError::Xml(XmlError::Syntax(_)))
    ));
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><xml><ToUserName>&xxe;</ToUserName></xml>";
    assert_eq!(Push::parse(xxe), Err(MessageError::Xml(XmlError::Doctype)));
}

fn reply(body: ReplyBody) -> Reply {
    let r = Reply {
        to_user_name: "oUser_openid_0001".into(),
        from_user_name: "gh_0123456789ab".into(),
        create_time: 1_700_000_001,
        body,
    };
    assert_eq!(Reply::parse(&r.to_xml()).unwrap(), r);
    r
}

#[test]
fn replies_serialise_to_wechat_xml() {
    let news = reply(ReplyBody::News {
        articles: vec![Article {
            title: "欢迎".into(),
            description: "demo".into(),
            pic_url: "https://www.example.com/c.png".into(),
            url: "https://www.example.com/a/1".into(),
        }],
    });
    // The news example of §2.6, without its line breaks.
    let expected = "<xml><ToUserName><![CDATA[oUser_openid_0001]]></ToUserName>\
<FromUserName><![CDATA[gh_0123456789ab]]></FromUserName>\
<CreateTime>1700000001</CreateTime><MsgType><![CDATA[news]]></MsgType>\
<ArticleCount>1</ArticleCount><Articles><item><Title><![CDATA[欢迎]]></Title>\
<Description><![CDATA[demo]]></Description><PicUrl><![CDATA[https://www.example.com/c.png]]></PicUrl>\
<Url><![CDATA[https://www.example.com/a/1]]></Url></item></Articles></xml>";
    assert_eq!(news.to_xml(), expected);

    let text = reply(ReplyBody::Text {
        content: "line1\nline2 ]]> 😀".into(),
    });
    assert!(text
        .to_xml()
        .contains("<MsgType><![CDATA[text]]></MsgType>"));
    reply(ReplyBody::Image {
        media_id: "m".into(),
    });
    reply(ReplyBody::Voice {
        media_id: "m".into(),
    });
    reply(ReplyBody::Video {
        media_id: "m".into(),
        title: Some("t".into()),
        description: None,
    });
    let music = reply(ReplyBody::Music {
        title: Some("t".into()),
        description: Some("d".into()),
        music_url: Some("http://m".into()),
        hq_music_url: Some("http://hq".into()),
        thumb_media_id: "th".into(),
    });
    assert!(music
        .to_xml()
        .contains("<HQMusicUrl><![CDATA[http://hq]]></HQMusicUrl>"));
    // The Mini Program guide's transfer reply (families reference §2), and
    // the Official Account form naming one customer-service account.
    let transfer = reply(ReplyBody::TransferCustomerService { kf_account: None });
    assert_eq!(
        transfer.to_xml(),
        "<xml><ToUserName><![CDATA[oUser_openid_0001]]></ToUserName>\
<FromUserName><![CDATA[gh_0123456789ab]]></FromUserName>\
<CreateTime>1700000001</CreateTime><MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>"
    );
    let to_one = reply(ReplyBody::TransferCustomerService {
        kf_account: Some("test1@test".into()),
    });
    assert!(to_one
        .to_xml()
        .ends_with("<TransInfo><KfAccount><![CDATA[test1@test]]></KfAccount></TransInfo></xml>"));
    let json: ReplyBody = serde_json::from_str(r#"{"type":"transfer_customer_service"}"#).unwrap();
    assert_eq!(
        json,
        ReplyBody::TransferCustomerService { kf_account: None }
    );
}

#[test]
fn a_reply_swaps_the_names_of_its_push() {
    let p = push("text", "<Content>hi</Content><MsgId>1</MsgId>");
    let r = Reply::to(
        &p,
        5,
        ReplyBody::Text {
            content: "yo".into(),
        },
    );
    assert_eq!(r.to_user_name, p.from_user_name);
    assert_eq!(r.from_user_name, p.to_user_name);
}

#[test]
fn reply_errors_and_no_reply() {
    let bad = format!("<xml>{HEAD}<MsgType>text</MsgType></xml>");
    assert_eq!(Reply::parse(&bad), Err(MessageError::Missing("Content")));
    let unknown = format!("<xml>{HEAD}<MsgType>fax</MsgType></xml>");
    assert!(matches!(
        Reply::parse(&unknown),
        Err(MessageError::UnknownReplyType(_))
    ));
    let miscounted = format!("<xml>{HEAD}<MsgType>news</MsgType><ArticleCount>2</ArticleCount><Articles><item><Title>a</Title></item></Articles></xml>");
    assert!(matches!(
        Reply::parse(&miscounted),
        Err(MessageError::Invalid {
            field: "ArticleCount",
            ..
        })
    ));
    assert!(is_no_reply("success") && is_no_reply("") && !is_no_reply("<xml/>"));
}

#[test]
fn pushes_serialise_to_flat_json_with_string_ids_and_extras() {
    let p = push(
        "text",
        "<Content><![CDATA[你好]]></Content><MsgId>18446744073709551615</MsgId><MsgDataId>7</MsgDataId>",
    );
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "to_user_name": "gh_0123456789ab", "from_user_name": "oUser_openid_0001",
            "create_time": 1_700_000_000, "msg_type": "text", "msg_id": "18446744073709551615",
            "content": "你好", "extra": {"MsgDataId": "7"},
        })
    );
    let e = push(
        "event",
        "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_9]]></EventKey>\
         <SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item><item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo>",
    );
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["event"], "subscribe");
    assert_eq!(json["qr_scene"], "9");
    assert!(json.get("msg_id").is_none());
    assert_eq!(
        json["extra"]["SendPicsInfo"]["PicList"]["item"][1]["PicMd5Sum"],
        "b"
    );
}

#[test]
fn replies_read_from_tagged_json() {
    let text: ReplyBody = serde_json::from_str(r#"{"type":"text","content":"hi"}"#).unwrap();
    assert_eq!(
        text,
        ReplyBody::Text {
            content: "hi".into()
        }
    );
    let news: ReplyBody =
        serde_json::from_str(r#"{"type":"news","articles":[{"title":"t","url":"https://a/"}]}"#)
            .unwrap();
    assert!(matches!(news, ReplyBody::News { ref articles } if articles[0].url == "https://a/"));
    assert!(serde_json::from_str::<ReplyBody>(r#"{"type":"fax"}"#).is_err());
    assert!(serde_json::from_str::<ReplyBody>(r#"{"type":"text"}"#).is_err());
    assert!(
        serde_json::from_str::<ReplyBody>(r#"{"type":"text","content":"x","extra":1}"#).is_err()
    );
}
