//! The protocol core's hot paths, one criterion benchmark each: what the gateway
//! does per ownership check (signature check), per safe-mode push (decrypt and
//! parse a text push) and per encrypted reply (serialise and encrypt a text
//! reply). `cargo bench -p wxgate-proto`; add `-- --quick` for a short run.

use std::hint::black_box;

use criterion::Criterion;
use wxgate_proto::{
    jssdk_signature, open_push, seal_push, seal_reply, signature, verify_signature, AesKey,
    MessageCrypto, Push, PushMode, Reply, ReplyBody,
};

const TOKEN: &str = "bench-server-token";
const APPID: &str = "wx0123456789abcdef";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const TIMESTAMP: &str = "1700000000";
const NONCE: &str = "1320315837";
const PUSH_XML: &str = "<xml><ToUserName><![CDATA[gh_bench000000]]></ToUserName>\
    <FromUserName><![CDATA[oBenchUser0000000000000000000]]></FromUserName>\
    <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
    <Content><![CDATA[bench]]></Content><MsgId>23456789012345678</MsgId></xml>";

fn safe_mode() -> PushMode {
    let key = AesKey::try_new(AES_KEY).expect("a valid EncodingAESKey");
    PushMode::Safe(MessageCrypto::new(key, APPID))
}

fn hot_paths(c: &mut Criterion) {
    let given = signature(TOKEN, TIMESTAMP, NONCE);
    c.bench_function("signature_check", |b| {
        b.iter(|| {
            verify_signature(
                black_box(TOKEN),
                black_box(TIMESTAMP),
                black_box(NONCE),
                black_box(&given),
            )
        })
    });

    let mode = safe_mode();
    let sealed = seal_push(
        &mode,
        TOKEN,
        PUSH_XML,
        Some("oBenchUser0000000000000000000"),
        TIMESTAMP,
        NONCE,
        &[7; 16],
    )
    .expect("the push XML is well formed");
    c.bench_function("safe_push_verify_decrypt_parse", |b| {
        b.iter(|| {
            let xml = open_push(
                &mode,
                TOKEN,
                black_box(&sealed.query),
                black_box(&sealed.body),
            )
            .expect("the push opens");
            Push::parse(&xml).expect("the push parses")
        })
    });

    c.bench_function("plain_push_verify_parse", |b| {
        let query = seal_push(
            &PushMode::Plain,
            TOKEN,
            PUSH_XML,
            None,
            TIMESTAMP,
            NONCE,
            &[0; 16],
        )
        .expect("the push XML is well formed")
        .query;
        b.iter(|| {
            let xml = open_push(
                &PushMode::Plain,
                TOKEN,
                black_box(&query),
                black_box(PUSH_XML),
            )
            .expect("the push opens");
            Push::parse(&xml).expect("the push parses")
        })
    });

    let push = Push::parse(PUSH_XML).expect("the push parses");
    // Serialising alone: the XML writer's own cost, with full-width punctuation
    // (UTF-8 lead byte 0xEF, like U+FFFE) that its forbidden-character scan must look at.
    c.bench_function("text_reply_serialise", |b| {
        b.iter(|| {
            let body = ReplyBody::Text {
                content: "感谢使用 wxgate，欢迎再来！Thanks for benchmarking wxgate.".to_owned(),
            };
            Reply::to(black_box(&push), 1_700_000_001, body).to_xml()
        })
    });
    c.bench_function("text_reply_serialise_encrypt", |b| {
        b.iter(|| {
            let body = ReplyBody::Text {
                content: "Thanks for benchmarking wxgate.".to_owned(),
            };
            let xml = Reply::to(black_box(&push), 1_700_000_001, body).to_xml();
            seal_reply(&mode, TOKEN, &xml, TIMESTAMP, NONCE, &[9; 16])
        })
    });

    c.bench_function("jssdk_signature", |b| {
        b.iter(|| {
            jssdk_signature(
                black_box("kgt8ON7yVITDhtdwci0qeZK3Bt0cG9mGw0Z8b7ioCJ3wtDS9x9xH9Q"),
                black_box("Wm3WZYTPz0wzccnW"),
                black_box(TIMESTAMP),
                black_box("https://www.example.com/page?x=1#frag"),
            )
        })
    });
}

fn main() {
    // What criterion_group!/criterion_main! expand to, without their undocumented `pub fn`.
    let mut criterion = Criterion::default().configure_from_args();
    hot_paths(&mut criterion);
    criterion.final_summary();
}
