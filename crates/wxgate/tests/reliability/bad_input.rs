//! Bad input at the HTTP edge: property-generated requests at every route
//! (signature parameters, query strings, XML and JSON bodies, ciphertext,
//! client keys, admin cookies), then the `http` fuzz target's saved corpus.
//! Target: no 5xx, no dropped connection.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use wxgate_gateway::clock::Clock;
use wxgate_testkit::gateway::{Env, Setup, APPID, CLIENT_KEY};

use crate::figure;

#[path = "../../../../fuzz/http_edge.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod http_edge;

const SERVER_TOKEN: &str = "edge-server-token";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const ADMIN_KEY: &str = "edge-admin-key-0123456789";

/// What a request came to: its status, or `None` when the connection broke.
async fn send(env: &Env, data: &[u8]) -> Option<Option<u16>> {
    let target = http_edge::Target {
        appid: APPID,
        server_token: SERVER_TOKEN,
        client_key: CLIENT_KEY,
        admin_key: ADMIN_KEY,
        now: env.clock.now(),
    };
    let edge = http_edge::request(data, &target);
    let url = reqwest::Url::parse(&format!("{}{}", env.url, edge.path_and_query)).ok()?;
    let method = reqwest::Method::from_bytes(edge.method.as_bytes()).ok()?;
    let mut request = env.http.request(method, url).body(edge.body);
    for (name, value) in &edge.headers {
        // Values no HTTP client can send are not inputs the server can get.
        if reqwest::header::HeaderValue::from_str(value).is_ok() {
            request = request.header(name, value);
        }
    }
    Some(request.send().await.ok().map(|r| r.status().as_u16()))
}

#[derive(Default)]
struct Tally {
    tried: u64,
    server_errors: Vec<(u16, Vec<u8>)>,
    broken: Vec<Vec<u8>>,
    by_class: [u64; 6],
}

impl Tally {
    fn record(&mut self, data: &[u8], outcome: Option<Option<u16>>) {
        let Some(outcome) = outcome else {
            return; // Not a sendable request.
        };
        self.tried += 1;
        match outcome {
            Some(status) => {
                self.by_class[(status / 100) as usize % 6] += 1;
                if status >= 500 {
                    self.server_errors.push((status, data.to_vec()));
                }
            }
            None => self.broken.push(data.to_vec()),
        }
    }
}

#[test]
fn generated_and_fuzzed_requests_get_no_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let env = runtime.block_on(
        Setup::new()
            .app(&format!(
                "token = \"{SERVER_TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\nmode = \"compat\"\n\
                 [[apps.rules]]\nkeyword = \"hi\"\nreply = {{ text = \"hello\" }}"
            ))
            .admin(ADMIN_KEY)
            .start(),
    );
    let cases: u32 = std::env::var("WXGATE_BAD_INPUT_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3000);
    let tally = std::cell::RefCell::new(Tally::default());
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..700), |data| {
            let outcome = runtime.block_on(send(&env, &data));
            tally.borrow_mut().record(&data, outcome);
            Ok(())
        })
        .unwrap();

    // The fuzzer's corpus (fuzz/corpus/http), replayed.
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/http");
    let mut replayed = 0;
    for entry in std::fs::read_dir(corpus).expect("fuzz/corpus/http exists") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let outcome = runtime.block_on(send(&env, &data));
        tally.borrow_mut().record(&data, outcome);
        replayed += 1;
    }
    let tally = tally.into_inner();
    figure(
        "bad input",
        format!(
            "{} requests ({cases} generated, {replayed} from the fuzz corpus): 2xx {} 3xx {} 4xx {} 5xx {}, broken connections {}",
            tally.tried,
            tally.by_class[2],
            tally.by_class[3],
            tally.by_class[4],
            tally.by_class[5],
            tally.broken.len()
        ),
    );
    assert!(
        replayed > 0,
        "the fuzz corpus (fuzz/corpus/http) is replayed"
    );
    assert!(
        tally.by_class[2] > 0 && tally.by_class[4] > 0,
        "inputs reached past the checks"
    );
    assert!(
        tally.server_errors.is_empty(),
        "5xx for {:?}",
        &tally.server_errors[..tally.server_errors.len().min(3)]
    );
    assert!(
        tally.broken.is_empty(),
        "broken connections for {:?}",
        &tally.broken[..tally.broken.len().min(3)]
    );
    drop(env);
}
