//! The simulator over real HTTP: each test starts its own on a free loopback
//! port and talks to it with reqwest, as the gateway and SDKs will.

mod authorizers;
mod component;
mod diagnostics;
mod errors;
mod faults;
mod media;
mod methods;
mod miniprogram;
mod push;
mod push_families;
mod quota;
mod release_check;
mod signin;
mod stable;
mod tickets;
mod tokens;
mod users;
mod wecom;

use serde_json::{json, Value};
use wxgate_sim::{RunningSim, SimApp, SimConfig, Simulator, VirtualClock};

pub(crate) const APPID: &str = "wx0123456789abcdef";
pub(crate) const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A simulator with one app and WeChat's default limits, changed by `tweak`.
pub(crate) async fn start(tweak: impl FnOnce(&mut SimConfig)) -> (RunningSim, Client) {
    start_with(VirtualClock::starting_at(START), tweak).await
}

/// Where [`start`]'s clock starts (then it runs in real time): 2024-01-01
/// 04:00 Beijing time, far from the midnight that resets WeChat's daily
/// counts, so that no test depends on the hour it runs at (one failed when
/// run at 23:58 Beijing time, its forced refreshes spread over two days).
const START: u64 = 1_704_052_800;

/// [`start`] with a clock that stands at `unix` until advanced.
pub(crate) async fn start_at(
    unix: u64,
    tweak: impl FnOnce(&mut SimConfig),
) -> (RunningSim, Client) {
    start_with(VirtualClock::manual(unix), tweak).await
}

async fn start_with(
    clock: VirtualClock,
    tweak: impl FnOnce(&mut SimConfig),
) -> (RunningSim, Client) {
    let mut config = SimConfig::with_apps(vec![SimApp::new(APPID, SECRET)]);
    tweak(&mut config);
    let sim = Simulator::with_clock(config, clock)
        .spawn_on("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        base: sim.url(),
    };
    (sim, client)
}

/// Calls the simulator's API as a WeChat client would.
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

impl Client {
    pub(crate) async fn get(&self, path_and_query: &str) -> Value {
        let url = format!("{}{path_and_query}", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn post(&self, path_and_query: &str, body: Value) -> Value {
        let url = format!("{}{path_and_query}", self.base);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// POSTs `body` as is and returns the status and the answer's text.
    pub(crate) async fn post_raw(&self, path_and_query: &str, body: String) -> (u16, String) {
        let url = format!("{}{path_and_query}", self.base);
        let response = self.http.post(url).body(body).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub(crate) async fn token(&self) -> Value {
        self.get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
        ))
        .await
    }

    pub(crate) async fn stable(&self, force_refresh: bool) -> Value {
        let body = json!({
            "grant_type": "client_credential", "appid": APPID, "secret": SECRET,
            "force_refresh": force_refresh,
        });
        self.post("/cgi-bin/stable_token", body).await
    }

    /// A cheap token-authenticated call: 0 when the token works, else the errcode.
    pub(crate) async fn use_token(&self, token: &str) -> i64 {
        let answer = self
            .get(&format!("/cgi-bin/get_api_domain_ip?access_token={token}"))
            .await;
        answer["errcode"].as_i64().unwrap_or(0)
    }

    pub(crate) async fn advance(&self, secs: u64) -> u64 {
        let answer = self
            .post("/sim/clock", json!({ "advance_secs": secs }))
            .await;
        answer["now"].as_u64().unwrap()
    }

    pub(crate) async fn stats(&self) -> wxgate_sim::Stats {
        let url = format!("{}/sim/stats", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The access token of an answer, failing the test with the answer otherwise.
pub(crate) fn access_token(answer: &Value) -> String {
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {answer}"))
        .to_owned()
}

/// The rid at the end of an error answer's errmsg.
pub(crate) fn rid(answer: &Value) -> String {
    let errmsg = answer["errmsg"].as_str().unwrap_or_default();
    let (_, rid) = errmsg
        .rsplit_once(" rid: ")
        .unwrap_or_else(|| panic!("no rid in {answer}"));
    rid.to_owned()
}

/// The errcode of an error answer.
pub(crate) fn errcode(answer: &Value) -> i64 {
    answer["errcode"]
        .as_i64()
        .unwrap_or_else(|| panic!("no errcode in {answer}"))
}
