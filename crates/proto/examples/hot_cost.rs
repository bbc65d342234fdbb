//! The protocol core's share of one push, as the gateway spends it, in a loop
//! for an instruction counter (criterion's timings wander on a shared machine;
//! callgrind's counts do not):
//!
//! ```sh
//! cargo build --release -p wxgate-proto --example hot_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/hc.out target/release/examples/hot_cost w3 2000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/hc0.out target/release/examples/hot_cost w3 0
//! ```
//!
//! (Collected of the first − Collected of the second) ÷ 2000 is the cost of one
//! request. `w3`: a safe-mode (AES) text push answered with an encrypted text
//! reply, as bench/run.py's W3: `signature` checked, `open_signed_push`
//! (`msg_signature` and decryption), `Push::parse`, the reply built and
//! sealed. `w2`: the same push in plain mode, answered in plain XML. Every
//! request has its own `MsgId`, timestamp and nonce, as the benchmark's pool.

use std::hint::black_box;

use wxgate_proto::{
    open_signed_push, seal_push, seal_reply, verify_signature, AesKey, MessageCrypto, Push,
    PushMode, Reply, ReplyBody, SealedPush,
};

// bench/run.py's values.
const TOKEN: &str = "bench-server-token";
const APPID: &str = "wxbenchsafe000001";
const AES_KEY: &str = "wxgateBenchKey0123456789abcdefghijklmnopqrs";
const OPENID: &str = "oBenchUser0000000000000000000";
const ACCOUNT: &str = "gh_bench000000";
const RULE_REPLY: &str = "Thanks for benchmarking wxgate.";
/// Distinct pushes cycled through (sealing them is not measured per request).
const POOL: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "w3".to_owned());
    let n: usize = args
        .next()
        .map(|n| n.parse().expect("N is a number"))
        .unwrap_or(2_000);
    let mode = match workload.as_str() {
        "w3" => {
            let key = AesKey::try_new(AES_KEY).expect("a valid EncodingAESKey");
            PushMode::Safe(MessageCrypto::new(key, APPID))
        }
        "w2" => PushMode::Plain,
        other => panic!("unknown workload {other:?}: w2 or w3"),
    };
    let pool: Vec<SealedPush> = (0..POOL)
        .map(|i| {
            let timestamp = (1_700_000_000 + i).to_string();
            let nonce = (1_320_315_837 + 7 * i).to_string();
            let xml = format!(
                "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>\
                 <FromUserName><![CDATA[{OPENID}]]></FromUserName>\
                 <CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
                 <Content><![CDATA[bench]]></Content><MsgId>{}</MsgId></xml>",
                23_456_789_012_345_678u64 + i as u64
            );
            seal_push(
                &mode,
                TOKEN,
                &xml,
                Some(OPENID),
                &timestamp,
                &nonce,
                &[7; 16],
            )
            .expect("the push XML is well formed")
        })
        .collect();
    let mut total = 0usize;
    for i in 0..n {
        let sealed = black_box(&pool[i % POOL]);
        let q = &sealed.query;
        verify_signature(TOKEN, &q.timestamp, &q.nonce, &q.signature).expect("signed");
        let xml = open_signed_push(&mode, TOKEN, q, &sealed.body).expect("the push opens");
        let push = Push::parse(&xml).expect("the push parses");
        let body = ReplyBody::Text {
            content: RULE_REPLY.to_owned(),
        };
        let reply = Reply::to(&push, 1_700_000_001, body).to_xml();
        let sealed_reply = seal_reply(&mode, TOKEN, &reply, "1700000001", &q.nonce, &[9; 16]);
        total += black_box(sealed_reply).len();
    }
    println!("{workload}: {n} requests, {total} reply bytes");
}
