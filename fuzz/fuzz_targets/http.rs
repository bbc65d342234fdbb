#![no_main]
//! The HTTP edge: arbitrary requests at every route of a gateway in front of
//! the simulator (in this process). Any 5xx or panic is a finding.

#[path = "../http_edge.rs"]
mod http_edge;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use tower::ServiceExt;
use wxgate_gateway::clock::{Clock, SystemClock};
use wxgate_gateway::token::center::Policy;
use wxgate_gateway::Gateway;
use wxgate_sim::{RunningSim, SimApp, SimConfig, Simulator};

const APPID: &str = "wx0123456789abcdef";
const SERVER_TOKEN: &str = "edge-server-token";
const CLIENT_KEY: &str = "edge-client-key";
const ADMIN_KEY: &str = "edge-admin-key-0123456789";

struct World {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _gateway: Gateway,
    _sim: RunningSim,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (gateway, sim) = runtime.block_on(async {
            let sim = Simulator::spawn(SimConfig::with_apps(vec![SimApp::new(APPID, "s1")]))
                .await
                .unwrap();
            let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(CLIENT_KEY));
            let toml = format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n\
                 [upstream]\nbase_url = \"{}\"\n[admin]\nkey = \"{ADMIN_KEY}\"\n\
                 [[apps]]\nappid = \"{APPID}\"\nsecret = \"s1\"\ntoken = \"{SERVER_TOKEN}\"\n\
                 encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\nmode = \"compat\"\n\
                 js_domains = [\"example.com\"]\n\
                 [[apps.rules]]\nkeyword = \"hi\"\nreply = {{ text = \"hello\" }}\n\
                 [[clients]]\nname = \"c\"\nkey_sha256 = \"{hash}\"\napps = [\"{APPID}\"]\n",
                sim.url()
            );
            let config = wxgate_gateway::config::load(&toml, &BTreeMap::new()).unwrap();
            let gateway = Gateway::new(config, Arc::new(SystemClock), Policy::default())
                .await
                .unwrap();
            (gateway, sim)
        });
        World {
            router: gateway.router(),
            runtime,
            _gateway: gateway,
            _sim: sim,
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let world = world();
    let target = http_edge::Target {
        appid: APPID,
        server_token: SERVER_TOKEN,
        client_key: CLIENT_KEY,
        admin_key: ADMIN_KEY,
        now: SystemClock.now(),
    };
    let edge = http_edge::request(data, &target);
    let mut builder = axum::http::Request::builder()
        .method(edge.method)
        .uri(&edge.path_and_query);
    for (name, value) in &edge.headers {
        builder = builder.header(name, value);
    }
    // Requests no HTTP parser would produce are not inputs.
    let Ok(request) = builder.body(axum::body::Body::from(edge.body)) else {
        return;
    };
    let response = world
        .runtime
        .block_on(world.router.clone().oneshot(request))
        .unwrap();
    assert!(
        response.status().as_u16() < 500,
        "{} {} -> {}",
        edge.method,
        edge.path_and_query,
        response.status()
    );
});
