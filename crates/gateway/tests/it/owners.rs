//! Issue #25 item 4: owners come and go while the server runs, and a family
//! can declare what the next ones need: a fetch that depends on another
//! owner's credential, a fetch that hands back a second credential (a rotated
//! refresh token), and a credential that arrives by push.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use wxgate_gateway::family::{Family, OFFICIAL_ACCOUNT};
use wxgate_gateway::store::Kind;
use wxgate_gateway::token::issuer::{Dependency, Inputs, Issuer};
use wxgate_gateway::token::owners::{Owner, OwnerId};
use wxgate_gateway::token::{Cause, Failure, Requester, Upstream};
use wxgate_gateway::upstream::{Fetched, Rotated};

use wxgate_gateway::clock::Clock;

use crate::{Setup, APPID};

const LATER: &str = "wx00000000000later";
const LATER_SECRET: &str = "later-secret";
const ADMIN_KEY: &str = "owners-admin-key-0123456789abcdef";
const OPS_KEY: &str = "owners-ops-client-key-0123456789";

/// The owner of an `[[apps]]` entry, read as the configuration reads one.
fn app_owner(appid: &str, secret: &str) -> Owner {
    let toml =
        format!("[[apps]]\nappid = \"{appid}\"\nsecret = \"{secret}\"\ntoken_api = \"classic\"\n");
    let config = wxgate_gateway::config::load(&toml, &Default::default()).unwrap();
    let app = config.apps.into_iter().next().unwrap();
    Owner::app(Arc::new(app))
}

fn listed(snapshot: &serde_json::Value, appid: &str) -> bool {
    snapshot["apps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["appid"] == appid)
}

#[tokio::test]
async fn an_owner_added_at_run_time_is_warmed_served_listed_and_removed_cleanly() {
    let mut setup = Setup::new().admin(ADMIN_KEY);
    setup
        .sim
        .apps
        .push(wxgate_sim::SimApp::new(LATER, LATER_SECRET));
    // A client that may use every app, those added later among them.
    let key_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(OPS_KEY));
    let setup = setup.extra(&format!(
        "[[clients]]\nname = \"ops\"\nkey_sha256 = \"{key_sha256}\"\napps = [\"*\"]\n"
    ));
    let env = setup.start().await;
    let path = format!("/v1/apps/{LATER}/access_token");
    let get = async |path: &str| {
        let answer = env
            .http
            .get(format!("{}{path}", env.url))
            .bearer_auth(OPS_KEY);
        let answer = answer.send().await.unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    };
    assert_eq!(get(&path).await.0, 404, "not configured yet");

    env.center().add_owner(app_owner(LATER, LATER_SECRET));
    env.settle().await;
    // Warmed at once by its own refresher, before anyone asks.
    assert_eq!(env.sim.stats().app(LATER).tokens_issued, 1);
    let (status, body) = get(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        env.sim.stats().app(LATER).tokens_issued,
        1,
        "served from memory"
    );
    let snapshot = env.admin_get("/admin/status.json", ADMIN_KEY).await.1;
    assert!(listed(&snapshot, LATER), "{snapshot}");
    let metrics = env.http.get(format!("{}/metrics", env.url)).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("appid=\"{LATER}\"")), "{metrics}");
    // Renewed ahead of expiry like any configured app.
    env.step(7200 - 600).await;
    assert_eq!(env.sim.stats().app(LATER).tokens_issued, 2);

    assert!(env.center().remove_owner(LATER));
    assert!(!env.center().remove_owner(LATER), "removed once");
    assert_eq!(get(&path).await.0, 404);
    let snapshot = env.admin_get("/admin/status.json", ADMIN_KEY).await.1;
    assert!(!listed(&snapshot, LATER), "{snapshot}");
    // Its refresher stopped with it: a day of renewal times passes (each
    // step waits until every task woken by it is asleep again), no fetch.
    for _ in 0..12 {
        env.step(7200).await;
    }
    assert_eq!(env.sim.stats().app(LATER).tokens_issued, 2);
    // The configured app went on being renewed meanwhile.
    assert!(env.sim.stats().app(APPID).tokens_issued >= 12);
}

/// A family whose access token is made from another owner's (as an
/// authorizer's needs its component's), whose fetch also rotates its second
/// credential, and whose second credential otherwise only arrives by push.
const CHAINED: Family = Family {
    name: "chained_test",
    kinds: &[Kind::AccessToken, Kind::JsapiTicket],
    tickets: &[],
    ..OFFICIAL_ACCOUNT
};

#[derive(Debug)]
struct ChainedIssuer {
    key: String,
    fetches: AtomicU32,
}

#[async_trait::async_trait]
impl Issuer for ChainedIssuer {
    fn family(&self) -> &'static Family {
        &CHAINED
    }

    fn owner(&self) -> &str {
        &self.key
    }

    fn token_api(&self) -> &'static str {
        "chained"
    }

    fn warm(&self, kind: Kind) -> bool {
        kind == Kind::AccessToken
    }

    /// Earlier than the component's own renewal (600 s ahead), so the
    /// renewal below is made with the component token of the moment.
    fn renew_ahead(&self, _kind: Kind) -> (u64, u64) {
        (1200, 0)
    }

    fn forced_daily_limit(&self, _kind: Kind, policy_limit: u32) -> u32 {
        policy_limit
    }

    fn depends_on(&self, kind: Kind) -> Vec<Dependency> {
        match kind {
            Kind::AccessToken => vec![Dependency {
                owner: APPID.to_owned(),
                kind: Kind::AccessToken,
            }],
            _ => Vec::new(),
        }
    }

    async fn fetch_access_token(&self, _: &Upstream, _: bool) -> Result<Fetched, Failure> {
        unreachable!("fetch is overridden")
    }

    async fn fetch(
        &self,
        _upstream: &Upstream,
        kind: Kind,
        _forced: bool,
        inputs: &Inputs,
    ) -> Result<Fetched, Failure> {
        if kind != Kind::AccessToken {
            return Err(Failure::transient("arrives by push only"));
        }
        let Some(component_token) = inputs.get(APPID, Kind::AccessToken) else {
            return Err(Failure::transient("the dependency was not given"));
        };
        let n = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Fetched {
            value: format!("chained-{n}-from-{component_token}"),
            expires_in: 7200,
            rotated: Some(Rotated {
                kind: Kind::JsapiTicket,
                value: format!("rotated-{n}"),
                expires_in: 30 * 86_400,
            }),
        })
    }
}

fn chained_owner(key: &str) -> Owner {
    Owner {
        id: OwnerId::App(key.to_owned()),
        key: key.to_owned(),
        family: &CHAINED,
        issuer: Arc::new(ChainedIssuer {
            key: key.to_owned(),
            fetches: AtomicU32::new(0),
        }),
        secret: String::new().into(),
        js_domains: Vec::new(),
        agentid: None,
        app: None,
    }
}

#[tokio::test]
async fn a_fetch_gets_what_it_depends_on_and_keeps_what_it_rotated_and_pushes_are_accepted() {
    let env = Setup::new().start().await;
    let center = env.center();
    let by = Requester::Admin;
    center.add_owner(chained_owner("chained"));
    env.settle().await;
    let token = center.get("chained", Kind::AccessToken, &by).await.unwrap();
    let component = center.get(APPID, Kind::AccessToken, &by).await.unwrap();
    assert_eq!(token.value, format!("chained-1-from-{}", component.value));

    // The rotated credential came with the fetch: kept, stored and audited.
    let rotated = center.get("chained", Kind::JsapiTicket, &by).await.unwrap();
    assert_eq!(rotated.value, "rotated-1");
    let audit = center.audit_log(Some("chained"), 10).await.unwrap();
    let events: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.kind.as_str(), e.event.as_str()))
        .collect();
    assert!(events.contains(&("jsapi_ticket", "rotation")), "{events:?}");
    assert!(events.contains(&("access_token", "fetch")), "{events:?}");

    // The renewal fetches again with the component's token of the moment
    // and rotates the second credential once more.
    env.step(7200 - 1200).await;
    let renewed = center.get("chained", Kind::AccessToken, &by).await.unwrap();
    let component = center.get(APPID, Kind::AccessToken, &by).await.unwrap();
    assert_eq!(renewed.value, format!("chained-2-from-{}", component.value));
    let rotated = center.get("chained", Kind::JsapiTicket, &by).await.unwrap();
    assert_eq!(rotated.value, "rotated-2");

    // A pushed credential replaces the held one, stored and audited like a fetch.
    let pushed = center
        .accept(
            "chained",
            Kind::JsapiTicket,
            "pushed-1".into(),
            600,
            Cause::Request(Requester::Push),
        )
        .await
        .unwrap();
    assert_eq!(pushed.expires_at, env.clock.now() + 600);
    let held = center.get("chained", Kind::JsapiTicket, &by).await.unwrap();
    assert_eq!(held.value, "pushed-1");
    let audit = center.audit_log(Some("chained"), 10).await.unwrap();
    assert_eq!(
        (audit[0].kind.as_str(), audit[0].event.as_str()),
        ("jsapi_ticket", "push")
    );
    // Nothing is accepted for an owner that does not exist, or a kind its family lacks.
    let unknown = center
        .accept("nobody", Kind::JsapiTicket, "x".into(), 600, Cause::Admin)
        .await;
    assert!(unknown.is_err());
    let lacking = center
        .accept("chained", Kind::WxCardTicket, "x".into(), 600, Cause::Admin)
        .await;
    assert!(lacking.is_err());
}
