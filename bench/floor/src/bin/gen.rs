//! Writes the signed request data the wrk scripts of `bench/run` read in `init`,
//! signed with the protocol core (`wxgate-proto`) exactly as WeChat signs.
//! Every request is signed at `--timestamp` (the caller passes the current Unix
//! time), so run it right before the load: wxgate accepts pushes signed at
//! most `timestamp_tolerance_secs` (300) from now.
//!
//! ```text
//! wxgate-bench-gen --out DIR --timestamp UNIX_SECS --token T --plain-appid A --safe-appid B
//!                  --corpid C [--agentid 1000002] --aes-key K [--pool 5000] [--wecom-pool N]
//!                  [--plain-pool N] [--queries 1000] [--msgid-base 1]
//! ```
//! Files, one request per line:
//! - `w1.txt`: `PATH?QUERY` of signed ownership checks (`GET /wx/{plain}`);
//! - `w2.txt`: `PATH?QUERY<TAB>BODY`, `--plain-pool` (default `--pool`) plain-mode
//!   text pushes to `/wx/{plain}`, each its own nonce, signature and `MsgId`
//!   (`--msgid-base` × 10^9 + 500,000,000 + i). Plain mode signs only the query,
//!   and wxgate binds the first body seen to a signed query, so a query is never
//!   sent with a second body (it would measure the refusal);
//! - `w3.txt`: `PATH?QUERY<TAB>BODY`, `--pool` safe-mode text pushes to `/wx/{safe}`,
//!   each a distinct `MsgId` (`--msgid-base` × 10^9 + i) under its own
//!   timestamp, nonce, `signature` and `msg_signature`;
//! - `w8.txt`: the same for a WeCom app, `--wecom-pool` (default `--pool`) encrypted
//!   text callbacks to `/wecom/{corpid}/{agentid}` (receiveid = corpid, only
//!   `msg_signature` in the query), under the same token and key.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use wxgate_proto::{
    seal_callback, seal_push, signature, AesKey, BodyFormat, CallbackShape, MessageCrypto,
    PushMode, PushQuery,
};

/// The content of every text push: the benchmark configuration has a keyword rule for it.
const CONTENT: &str = "bench";
/// The simulated user and account.
const OPENID: &str = "oBenchUser0000000000000000000";
const ACCOUNT: &str = "gh_bench000000";
/// The simulated WeCom member (a userid).
const USERID: &str = "BenchUser";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxgate-bench-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, as `--name value` pairs.
struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(name) = args.next() {
            let key = name
                .strip_prefix("--")
                .ok_or_else(|| format!("{name:?}: expected --name value"))?;
            let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            map.insert(key.to_owned(), value);
        }
        Ok(Self(map))
    }

    fn text(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        self.0.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("--{name} {v:?}: not a number"))
        })
    }
}

/// xorshift64*: distinct nonces and IVs, no cryptographic quality needed here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes16(&mut self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.next().to_le_bytes());
        out[8..].copy_from_slice(&self.next().to_le_bytes());
        out
    }
}

fn query_string(q: &PushQuery) -> String {
    let mut s = format!(
        "signature={}&timestamp={}&nonce={}",
        q.signature, q.timestamp, q.nonce
    );
    for (name, value) in [
        ("openid", &q.openid),
        ("encrypt_type", &q.encrypt_type),
        ("msg_signature", &q.msg_signature),
    ] {
        if let Some(value) = value {
            s.push_str(&format!("&{name}={value}"));
        }
    }
    s
}

fn run() -> Result<(), String> {
    let args = Args::parse()?;
    let out = PathBuf::from(args.text("out")?);
    let token = args.text("token")?;
    let plain = args.text("plain-appid")?;
    let safe = args.text("safe-appid")?;
    let corpid = args.text("corpid")?;
    let agentid = args.number("agentid", 1_000_002)?;
    let key = AesKey::try_new(args.text("aes-key")?).map_err(|e| e.to_string())?;
    let pool = args.number("pool", 5000)?;
    let wecom_pool = args.number("wecom-pool", pool)?;
    let plain_pool = args.number("plain-pool", pool)?;
    let queries = args.number("queries", 1000)?.max(1);
    let msgid_base = args.number("msgid-base", 1)?;
    let timestamp = args.number("timestamp", u64::MAX)?;
    if timestamp == u64::MAX {
        return Err("--timestamp is required (the current Unix time)".into());
    }
    let timestamp = timestamp.to_string();
    let mut rng = Rng((msgid_base ^ 0x9E37_79B9_7F4A_7C15) | 1);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let create = |name: &str| {
        File::create(out.join(name))
            .map(BufWriter::new)
            .map_err(|e| format!("{name}: {e}"))
    };
    let io = |e: std::io::Error| e.to_string();

    let mut w1 = create("w1.txt")?;
    let mut w2 = create("w2.txt")?;
    for _ in 0..queries {
        let nonce = (rng.next() % 1_000_000_000).to_string();
        let sig = signature(token, &timestamp, &nonce);
        let echostr = rng.next();
        writeln!(
            w1,
            "/wx/{plain}?signature={sig}&timestamp={timestamp}&nonce={nonce}&echostr={echostr}"
        )
        .map_err(io)?;
    }
    w1.flush().map_err(io)?;
    for i in 0..plain_pool {
        let msg_id = msgid_base * 1_000_000_000 + 500_000_000 + i;
        // 18 random digits: a plain push's signature covers only timestamp
        // and nonce, so two entries of one pool (same timestamp) sharing a
        // 9-digit nonce (about 125 pairs in 500,000) would be one signed
        // query with two bodies, which wxgate refuses (body_mismatch).
        let nonce = (rng.next() % 1_000_000_000_000_000_000).to_string();
        let q = PushQuery {
            signature: signature(token, &timestamp, &nonce),
            timestamp: timestamp.clone(),
            nonce,
            openid: Some(OPENID.to_owned()),
            ..PushQuery::default()
        };
        writeln!(
            w2,
            "/wx/{plain}?{}\t<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>\
             <FromUserName><![CDATA[{OPENID}]]></FromUserName>\
             <CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[{CONTENT}]]></Content><MsgId>{msg_id}</MsgId></xml>",
            query_string(&q)
        )
        .map_err(io)?;
    }
    w2.flush().map_err(io)?;

    let mode = PushMode::Safe(MessageCrypto::new(key.clone(), safe));
    let mut w3 = create("w3.txt")?;
    for i in 0..pool {
        let msg_id = msgid_base * 1_000_000_000 + i;
        let xml = format!(
            "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>\
             <FromUserName><![CDATA[{OPENID}]]></FromUserName>\
             <CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[{CONTENT}]]></Content><MsgId>{msg_id}</MsgId></xml>"
        );
        let nonce = (rng.next() % 1_000_000_000).to_string();
        let sealed = seal_push(
            &mode,
            token,
            &xml,
            Some(OPENID),
            &timestamp,
            &nonce,
            &rng.bytes16(),
        )
        .map_err(|e| e.to_string())?;
        let body = sealed.body.replace(['\n', '\r', '\t'], "");
        writeln!(w3, "/wx/{safe}?{}\t{body}", query_string(&sealed.query)).map_err(io)?;
    }
    w3.flush().map_err(io)?;

    let crypto = MessageCrypto::new(key, corpid);
    let shape = CallbackShape {
        format: BodyFormat::Xml,
        agent_id: Some(agentid),
    };
    let mut w8 = create("w8.txt")?;
    for i in 0..wecom_pool {
        let msg_id = msgid_base * 1_000_000_000 + i;
        let xml = format!(
            "<xml><ToUserName><![CDATA[{corpid}]]></ToUserName>\
             <FromUserName><![CDATA[{USERID}]]></FromUserName>\
             <CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[{CONTENT}]]></Content><MsgId>{msg_id}</MsgId>\
             <AgentID>{agentid}</AgentID></xml>"
        );
        let nonce = (rng.next() % 1_000_000_000).to_string();
        let sealed = seal_callback(
            &crypto,
            token,
            &xml,
            shape,
            &timestamp,
            &nonce,
            &rng.bytes16(),
        );
        let q = &sealed.query;
        let body = sealed.body.replace(['\n', '\r', '\t'], "");
        writeln!(
            w8,
            "/wecom/{corpid}/{agentid}?msg_signature={}&timestamp={}&nonce={}\t{body}",
            q.msg_signature, q.timestamp, q.nonce
        )
        .map_err(io)?;
    }
    w8.flush().map_err(io)?;
    Ok(())
}
