//! Interop with wechatpy, an implementation nobody here wrote: wechatpy seals
//! pushes that the core opens, opens replies that the core seals, parses pushes
//! the core serialises, and renders replies the core parses.
//!
//! `scripts/test` installs wechatpy; without it this test fails, it never skips.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use wxgate_proto::{
    open_push, seal_reply, AesKey, Event, MessageCrypto, Push, PushKind, PushMode, PushQuery,
    Reply, ReplyBody,
};

const TOKEN: &str = "wxgatetoken";
const AES_KEY: &str = "7lptTsZ0Ni5eEh3Bb264G0D0AhqloTHkxnhR6rKqPUq";
const APPID: &str = "wx0123456789abcdef";

fn wechatpy(request: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/wechatpy_peer.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "python3 must be installed for the wechatpy interop test (scripts/test installs it)",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "wechatpy peer failed (is wechatpy installed? scripts/test runs `pip install wechatpy`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn header(create_time: u64) -> (String, String, u64) {
    (
        "gh_0123456789ab".into(),
        "oUser_openid_0001".into(),
        create_time,
    )
}

fn pushes() -> Vec<Push> {
    let kinds = [
        PushKind::Text {
            msg_id: 24_512_345_678_901_234,
            content: "你好，wxgate！".into(),
        },
        PushKind::Text {
            msg_id: 2,
            content: "emoji 😀🎉 and ]]> and <tags> & ampersands".into(),
        },
        PushKind::Text {
            msg_id: 3,
            content: format!("{}末尾", "多行\n文本\n".repeat(50)),
        },
        PushKind::Location {
            msg_id: 4,
            latitude: 23.134521,
            longitude: 113.358803,
            scale: 20,
            label: "广州市海珠区".into(),
        },
        PushKind::Event(Event::Subscribe {
            event_key: Some("qrscene_123123".into()),
            ticket: Some("gQH47joAAAAA".into()),
        }),
        PushKind::Event(Event::Click {
            event_key: "V1001_菜单".into(),
        }),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let (to_user_name, from_user_name, create_time) = header(1_700_000_000 + i as u64);
            Push {
                to_user_name,
                from_user_name,
                create_time,
                kind,
                extra: Vec::new(),
            }
        })
        .collect()
}

fn crypto() -> MessageCrypto {
    MessageCrypto::new(AesKey::try_new(AES_KEY).unwrap(), APPID)
}

#[test]
fn wechatpy_and_wxgate_understand_each_other() {
    let pushes = pushes();
    let mode = PushMode::Safe(crypto());
    let replies: Vec<(String, String, String)> = pushes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let text = format!("回复 {i} 😀 ]]> done");
            let xml = Reply::to(p, 1_700_000_100, ReplyBody::Text { content: text }).to_xml();
            let (ts, nonce) = (format!("{}", 1_700_000_100 + i), format!("{}", 9000 + i));
            let sealed = seal_reply(&mode, TOKEN, &xml, &ts, &nonce, &[i as u8; 16]);
            (xml, sealed, format!("{ts}|{nonce}"))
        })
        .collect();
    // Not "]]>": wechatpy renders it inside one CDATA section unsplit, which is
    // not the text it was given (a wechatpy bug; our writer splits it).
    let reply_texts = ["纯文本回复", "emoji 🎉", "quotes \" & <angle> 引号"];
    let request = json!({
        "token": TOKEN, "encoding_aes_key": AES_KEY, "appid": APPID,
        "seal": pushes.iter().enumerate().map(|(i, p)| json!({
            "xml": p.to_xml(), "timestamp": (1_700_000_000 + i).to_string(), "nonce": (100 + i).to_string(),
        })).collect::<Vec<_>>(),
        "open": replies.iter().map(|(_, sealed, tn)| {
            let envelope = wxgate_proto::EncryptedReply::parse(sealed).unwrap();
            let (ts, nonce) = tn.split_once('|').unwrap();
            json!({"xml": sealed, "msg_signature": envelope.msg_signature, "timestamp": ts, "nonce": nonce})
        }).collect::<Vec<_>>(),
        "parse": pushes.iter().map(Push::to_xml).collect::<Vec<_>>(),
        "reply_texts": reply_texts,
    });
    let answer = wechatpy(&request);

    // wechatpy sealed → wxgate opens, as a safe-mode push with wechatpy's msg_signature.
    let sealed = answer["sealed"].as_array().unwrap();
    assert_eq!(sealed.len(), pushes.len());
    for (i, (push, s)) in pushes.iter().zip(sealed).enumerate() {
        let (ts, nonce) = ((1_700_000_000 + i).to_string(), (100 + i).to_string());
        let encrypt = s["encrypt"].as_str().unwrap();
        let query = PushQuery {
            signature: wxgate_proto::signature(TOKEN, &ts, &nonce),
            timestamp: ts,
            nonce,
            openid: Some(push.from_user_name.clone()),
            encrypt_type: Some("aes".into()),
            msg_signature: Some(s["msg_signature"].as_str().unwrap().into()),
        };
        let body = format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
            push.to_user_name
        );
        let xml = open_push(&mode, TOKEN, &query, &body).unwrap();
        assert_eq!(&Push::parse(&xml).unwrap(), push);
    }

    // wxgate sealed → wechatpy opens to the very bytes wxgate encrypted.
    let opened = answer["opened"].as_array().unwrap();
    assert_eq!(opened.len(), replies.len());
    for ((xml, _, _), plain) in replies.iter().zip(opened) {
        assert_eq!(plain.as_str().unwrap(), xml);
    }

    // wxgate serialised → wechatpy parses the same message.
    for (push, parsed) in pushes.iter().zip(answer["parsed"].as_array().unwrap()) {
        assert_eq!(parsed["source"], push.from_user_name.as_str());
        assert_eq!(parsed["target"], push.to_user_name.as_str());
        assert_eq!(parsed["time"], push.create_time);
        match &push.kind {
            PushKind::Text { msg_id, content } => {
                assert_eq!(parsed["type"], "text");
                assert_eq!(parsed["id"], *msg_id);
                assert_eq!(parsed["content"], content.as_str());
            }
            PushKind::Location { .. } => assert_eq!(parsed["type"], "location"),
            PushKind::Event(Event::Subscribe { .. }) => {
                assert_eq!(parsed["event"], "subscribe_scan");
                assert_eq!(parsed["scene_id"], "123123");
            }
            PushKind::Event(Event::Click { .. }) => assert_eq!(parsed["event"], "click"),
            other => panic!("no check for {other:?}"),
        }
    }

    // wechatpy rendered → wxgate parses.
    let rendered: Vec<Reply> = answer["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Reply::parse(x.as_str().unwrap()).unwrap_or_else(|e| panic!("{x}: {e}")))
        .collect();
    for (reply, text) in rendered.iter().zip(reply_texts) {
        assert_eq!(
            reply.body,
            ReplyBody::Text {
                content: text.into()
            }
        );
        assert_eq!(reply.to_user_name, "oUser_openid_0001");
        assert_eq!(reply.create_time, 1_700_000_001);
    }
    let types: Vec<_> = rendered[reply_texts.len()..]
        .iter()
        .map(|r| r.body.msg_type())
        .collect();
    assert_eq!(types, ["image", "voice", "video", "music", "news"]);
    match &rendered.last().unwrap().body {
        ReplyBody::News { articles } => {
            assert_eq!(articles.len(), 1);
            assert_eq!(articles[0].title, "欢迎 😀");
            assert_eq!(articles[0].pic_url, "https://www.example.com/c.png");
        }
        other => panic!("expected news, got {other:?}"),
    }
}
