//! Redis as production runs it (issue #29): TLS with a CA file and a client
//! certificate, Redis Cluster (the store contract, and several instances
//! making the calls of one), each on real `redis-server` processes the test
//! starts on free loopback ports.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use wxgate_gateway::store::{
    Credential, Kind, PushClaim, RedisOptions, RedisStore, RedisTls, RedisTopology, Store,
};
use wxgate_testkit::redis::{RedisCluster, TlsFiles, TlsRedis};

use crate::{Env, Setup, APPID, CLIENT_KEY};

const ADMIN_KEY: &str = "redis-topology-admin-key-0123";

/// Runs a test's body within `limit`, failing loudly past it.
async fn within<T>(limit: Duration, body: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("the test took longer than {limit:?}"))
}

fn tls_options(files: &TlsFiles, url: String, ca: &str, client: bool) -> RedisOptions {
    RedisOptions {
        topology: RedisTopology::Primary(SecretString::from(url)),
        username: None,
        password: None,
        tls: RedisTls {
            ca: Some(files.read(ca)),
            client: client.then(|| (files.read("client.crt"), files.read("client.key"))),
        },
        key_prefix: "tls:".into(),
    }
}

/// Whether a store opened with `options` answers (within 10 s), else why not.
async fn answers(options: &RedisOptions) -> Result<(), String> {
    let opened = tokio::time::timeout(Duration::from_secs(10), RedisStore::open(options));
    match opened.await.expect("connecting is bounded") {
        Ok(store) => store.ping().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// `rediss://` with the CA that signed the server's certificate and a client
/// certificate: connected. A server whose certificate another CA signed, or
/// that does not name the host connected to, is refused; so is a client
/// without a certificate (the server requires one).
#[tokio::test]
async fn rediss_connects_with_its_ca_and_refuses_a_server_whose_certificate_does_not_match() {
    let files = TlsFiles::new();
    let redis = TlsRedis::start(&files);
    let good = tls_options(&files, redis.url("127.0.0.1"), "ca.crt", true);
    let store = RedisStore::open(&good).await.unwrap();
    let credential = Credential {
        value: "over-tls".into(),
        expires_at: 7200,
        fetched_at: 1,
    };
    store
        .save("wx1", Kind::AccessToken, &credential)
        .await
        .unwrap();
    assert_eq!(
        store.load("wx1", Kind::AccessToken).await.unwrap(),
        Some(credential)
    );

    // The three refusals at once: each waits out its connection's retries.
    let other_ca = tls_options(&files, redis.url("127.0.0.1"), "other-ca.crt", true);
    let other_name = tls_options(&files, redis.url("localhost"), "ca.crt", true);
    let no_client_cert = tls_options(&files, redis.url("127.0.0.1"), "ca.crt", false);
    let refused = tokio::join!(
        answers(&other_ca),
        answers(&other_name),
        answers(&no_client_cert)
    );
    println!("[redis] TLS refusals: {refused:?}");
    let (other_ca, other_name, no_client_cert) = refused;
    let other_ca = other_ca.unwrap_err();
    assert!(other_ca.contains("UnknownIssuer"), "another CA: {other_ca}");
    let other_name = other_name.unwrap_err();
    assert!(
        other_name.contains("not valid for name"),
        "another name: {other_name}"
    );
    assert!(
        no_client_cert.is_err(),
        "the server requires a client certificate"
    );
}

/// The gateway configured with `rediss://` and the TLS files serves a token
/// it stored over TLS.
#[tokio::test]
async fn the_gateway_stores_over_tls_as_configured() {
    let files = TlsFiles::new();
    let redis = TlsRedis::start(&files);
    let mut setup = Setup::new();
    setup.store = format!(
        "backend = \"redis\"\nurl = \"{}\"\ntls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\nkey_prefix = \"test:\"",
        redis.url("127.0.0.1"),
        files.path("ca.crt"),
        files.path("client.crt"),
        files.path("client.key"),
    );
    let env = setup.start().await;
    let token = env.access_token().await;
    let options = RedisOptions {
        key_prefix: "test:".into(),
        ..tls_options(&files, redis.url("127.0.0.1"), "ca.crt", true)
    };
    let store = RedisStore::open(&options).await.unwrap();
    let stored = store.load(APPID, Kind::AccessToken).await.unwrap();
    assert_eq!(stored.map(|c| c.value), Some(token));
}

fn cluster_options(cluster: &RedisCluster, prefix: &str) -> RedisOptions {
    RedisOptions {
        topology: RedisTopology::Cluster(cluster.urls()),
        username: None,
        password: None,
        tls: RedisTls::default(),
        key_prefix: prefix.into(),
    }
}

/// Credentials of many apps land on every primary of a 3-node cluster, and
/// each one's lease, fence, fenced write, migration and announcement works
/// there: no script fails with CROSSSLOT.
#[tokio::test]
async fn on_a_cluster_every_script_runs_on_one_slot() {
    within(Duration::from_secs(60), async {
        let cluster = RedisCluster::start(3);
        let store = RedisStore::open(&cluster_options(&cluster, "wxgate:"))
            .await
            .unwrap();
        let other = RedisStore::open(&cluster_options(&cluster, "wxgate:"))
            .await
            .unwrap();
        let mut changes = other.changes().unwrap();
        let ttl = Duration::from_secs(15);
        for i in 0..30 {
            let appid = format!("wx{i:016}");
            for kind in Kind::ALL {
                let lease = store.acquire(&appid, kind, ttl).await.unwrap().unwrap();
                assert_eq!(other.acquire(&appid, kind, ttl).await.unwrap(), None);
                let credential = Credential {
                    value: format!("{appid}-{kind}"),
                    expires_at: 7200,
                    fetched_at: 10,
                };
                assert!(store
                    .save_fenced(&appid, kind, &credential, &lease)
                    .await
                    .unwrap());
                store.release(&appid, kind, &lease).await.unwrap();
                assert_eq!(other.load(&appid, kind).await.unwrap(), Some(credential));
            }
        }
        let announced = tokio::time::timeout(Duration::from_secs(5), changes.recv()).await;
        assert!(
            matches!(announced, Ok(Ok(_))),
            "changes reach another instance: {announced:?}"
        );
        // A credential under its name before the hash tags is moved, even
        // though its old and new keys are in different slots.
        let old = r#"{"value":"legacy","expires_at":7300,"fetched_at":100}"#;
        let port = cluster.nodes[0].port().to_string();
        let cli = |args: &[&str]| {
            let out = std::process::Command::new("redis-cli")
                .args(["-c", "-p", &port])
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(cli(&["set", "wxgate:wxlegacy:access_token", old]), "OK");
        let moved = other
            .load("wxlegacy", Kind::AccessToken)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((moved.value.as_str(), moved.fetched_at), ("legacy", 100));
        assert_eq!(cli(&["exists", "wxgate:wxlegacy:access_token"]), "0");
        // The keys are spread over every primary.
        let mut per_node = Vec::new();
        for node in &cluster.nodes {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &node.port().to_string(), "dbsize"])
                .output()
                .unwrap();
            per_node.push(
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
        assert!(
            per_node.iter().all(|n| *n > 0),
            "keys per primary: {per_node:?}"
        );
    })
    .await;
}

async fn cluster_env(cluster: &RedisCluster, instances: usize) -> Env {
    let mut setup = Setup::new();
    let seeds: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    setup.store = format!(
        "backend = \"redis\"\ncluster = [{}]\nkey_prefix = \"test:\"",
        seeds.join(", ")
    );
    let mut env = setup.start().await;
    for _ in 1..instances {
        env.add_instance().await;
    }
    env
}

async fn token_from(env: &Env, base: &str) -> String {
    let url = format!("{base}/v1/apps/{APPID}/access_token");
    let response = env
        .http
        .get(url)
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

/// A 3-primary Redis Cluster, 4 instances, 1,000 concurrent cold requests:
/// one upstream call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_on_a_cluster_make_one_upstream_call_on_a_cold_start() {
    within(Duration::from_secs(60), async {
        let cluster = RedisCluster::start(3);
        let env = Arc::new(cluster_env(&cluster, 4).await);
        let urls = env.urls();
        let calls = (0..1000).map(|i| {
            let (env, base) = (env.clone(), urls[i % urls.len()].clone());
            tokio::spawn(async move { token_from(&env, &base).await })
        });
        let tokens: std::collections::HashSet<String> = futures_util::future::join_all(calls)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(tokens.len(), 1, "every instance serves the same token");
        assert_eq!(env.token_calls(), 1, "exactly one upstream call");
        let ready = env.get_json("/readyz").await;
        assert_eq!(ready["store"]["mode"], "cluster", "{ready}");
        assert_eq!(ready["store"]["role"], "ok", "{ready}");
    })
    .await;
}

/// The same cluster over a virtual day: the calls of one instance, 0
/// invalid-token uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_on_a_cluster_over_a_virtual_day_make_the_ideal_calls() {
    within(Duration::from_secs(180), async {
        let cluster = RedisCluster::start(3);
        let env = cluster_env(&cluster, 4).await;
        let urls = env.urls();
        let mut rejected = Vec::new();
        for minute in 0..24 * 60 {
            let token = token_from(&env, &urls[minute % urls.len()]).await;
            let errcode = env.business_call(&token).await;
            if errcode != 0 {
                rejected.push((minute, errcode));
            }
            env.advance(60).await;
        }
        assert_eq!(rejected, [], "business calls rejected (minute, errcode)");
        assert_eq!(env.sim.stats().invalid_token_calls(), 0);
        assert_eq!(
            env.token_calls(),
            1 + 86_400 / 6_600,
            "the same as a single instance"
        );
    })
    .await;
}

/// A primary, a replica and 3 sentinels; two instances under load. A
/// renewal falls due as the primary goes away, twice: `SENTINEL FAILOVER`,
/// then `kill -9` of the new primary. Tokens keep being served (0 failed
/// client calls, 0 invalid-token uses), each failover costs at most one
/// extra upstream call, and what the store holds afterwards is what every
/// instance serves, never an older credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_during_a_renewal_under_load_fails_no_client_call() {
    within(Duration::from_secs(120), async {
        use std::sync::atomic::{AtomicBool, Ordering};
        use wxgate_testkit::redis::{RedisSentinels, MASTER};

        let started = tokio::time::Instant::now();
        let mut redis = tokio::task::spawn_blocking(RedisSentinels::start)
            .await
            .unwrap();
        let sentinels: Vec<String> = redis.urls().iter().map(|u| format!("\"{u}\"")).collect();
        let mut setup = Setup::new().admin(ADMIN_KEY);
        setup.store = format!(
            "backend = \"redis\"\nsentinels = [{}]\nmaster = \"{MASTER}\"\nkey_prefix = \"test:\"",
            sentinels.join(", ")
        );
        let mut env = setup.start().await;
        env.add_instance().await;
        let env = Arc::new(env);
        let urls = env.urls();
        let mut served = token_from(&env, &urls[0]).await;
        let store = RedisStore::open(&RedisOptions {
            topology: RedisTopology::Sentinel {
                sentinels: redis.urls(),
                master: MASTER.into(),
            },
            username: None,
            password: None,
            tls: RedisTls::default(),
            key_prefix: "test:".into(),
        })
        .await
        .unwrap();

        // Clients on both instances all along, each token used at WeChat.
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let load: Vec<_> = (0..4)
            .map(|i| {
                let (env, base, stop, failed) = (
                    env.clone(),
                    urls[i % 2].clone(),
                    stop.clone(),
                    failed.clone(),
                );
                tokio::spawn(async move {
                    let mut calls = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let url = format!("{base}/v1/apps/{APPID}/access_token");
                        let answer = env.http.get(url).bearer_auth(CLIENT_KEY).send().await;
                        let failure = match answer {
                            Ok(r) if r.status() == 200 => {
                                let token = r.json::<serde_json::Value>().await.ok();
                                match token.as_ref().and_then(|t| t["access_token"].as_str()) {
                                    Some(token) => match env.business_call(token).await {
                                        0 => None,
                                        errcode => Some(format!("WeChat answered {errcode}")),
                                    },
                                    None => Some(format!("no token in {token:?}")),
                                }
                            }
                            Ok(r) => Some(format!(
                                "{}: {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            )),
                            Err(e) => Some(e.to_string()),
                        };
                        if let Some(failure) = failure {
                            failed.lock().unwrap().push(failure);
                        }
                        calls += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    calls
                })
            })
            .collect();

        for how in ["SENTINEL FAILOVER", "kill -9"] {
            let before = env.token_calls();
            let old = redis.primary_port();
            if how == "SENTINEL FAILOVER" {
                redis.failover();
            } else {
                redis.server(old).stop();
            }
            // The renewal falls due now, while the primary changes.
            nudge(&env, 6600);
            let renewed = wxgate_testkit::wait_for(
                Duration::from_secs(30),
                format!("{how}: a new primary and a renewal served by both"),
                async || {
                    if redis.primary_port() == old {
                        return None;
                    }
                    nudge(&env, 1);
                    let tokens = [
                        token_from(&env, &urls[0]).await,
                        token_from(&env, &urls[1]).await,
                    ];
                    (tokens[0] != served && tokens[0] == tokens[1]).then(|| tokens[0].clone())
                },
            )
            .await;
            let calls = env.token_calls() - before;
            assert!(calls <= 2, "{how}: {calls} upstream calls for one renewal");
            let stored = stored(&store).await;
            assert_eq!(
                stored.value, renewed,
                "{how}: the store holds what is served"
            );
            println!(
                "[redis] {how}: renewed with {calls} upstream call(s), {} ms into the test",
                started.elapsed().as_millis()
            );
            served = renewed;
        }
        stop.store(true, Ordering::Relaxed);
        let mut requests = 0;
        for task in load {
            requests += task.await.unwrap();
        }
        let failed = failed.lock().unwrap().clone();
        let mut why = std::collections::BTreeMap::<&str, usize>::new();
        for failure in &failed {
            *why.entry(failure).or_default() += 1;
        }
        assert!(
            failed.is_empty(),
            "{} failed client calls out of {requests}, by cause: {why:?}",
            failed.len()
        );
        assert_eq!(env.sim.stats().invalid_token_calls(), 0);
        // Nothing older is written once it settled.
        env.advance(60).await;
        assert_eq!(stored(&store).await.value, served);

        // The failovers are shown: /readyz, /metrics and /admin. An instance
        // that only read meanwhile may have stayed on a node that is primary
        // again; the one that renewed saw them.
        let primary = format!("127.0.0.1:{}", redis.primary_port());
        let mut seen = Vec::new();
        for base in &urls {
            let ready: serde_json::Value = env
                .http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(ready["status"], "ready", "{ready}");
            let topology = &ready["store"];
            assert_eq!(topology["mode"], "sentinel", "{ready}");
            assert_eq!(topology["role"], "master", "{ready}");
            assert_eq!(topology["primary"], primary.as_str(), "{ready}");
            let failovers =
                wxgate_testkit::metric(&env.http, base, "wxgate_store_redis_failovers_total").await;
            assert_eq!(
                topology["failovers"].as_u64().unwrap() as f64,
                failovers,
                "{ready}"
            );
            let role = "wxgate_store_redis_role{mode=\"sentinel\",role=\"master\"}";
            assert_eq!(wxgate_testkit::metric(&env.http, base, role).await, 1.0);
            seen.push(failovers);
        }
        assert!(
            seen.iter().any(|n| *n >= 1.0),
            "failovers seen per instance: {seen:?}"
        );
        let (status, snapshot) = env.admin_get("/admin/status.json", ADMIN_KEY).await;
        assert_eq!(status, 200);
        assert_eq!(
            snapshot["store"]["topology"]["primary"],
            primary.as_str(),
            "{snapshot}"
        );
        println!(
            "[redis] two failovers under {requests} client calls in {} ms",
            started.elapsed().as_millis()
        );
    })
    .await;
}

/// Moves both clocks forward without waiting for the refreshers to settle:
/// a renewal may be waiting on the store while the primary changes.
fn nudge(env: &Env, secs: u64) {
    env.sim.clock().advance(secs);
    env.clock.advance(secs);
}

/// The stored access token, once the sentinels agree on the new primary
/// (a load may fail while some still name the old one).
async fn stored(store: &RedisStore) -> Credential {
    wxgate_testkit::wait_for(
        Duration::from_secs(60),
        "the stored access token",
        async || store.load(APPID, Kind::AccessToken).await.ok().flatten(),
    )
    .await
}

/// With Sentinel, a command whose answer is lost (the connection drops once
/// Redis has it) is sent again to the primary the sentinels name, unless it
/// is a claim: sent again, a claim that ran would find itself and answer
/// "taken by another instance". So a push claim whose answer is lost comes
/// back as an error (whose fallback, handling the push here, is right either
/// way) and ran once; the refresh lease, whose script knows its own lock,
/// is sent again and gives the lease it took; a read is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sentinel_a_claim_whose_answer_is_lost_is_not_sent_again_a_lease_and_a_read_are() {
    within(Duration::from_secs(60), async {
        use wxgate_testkit::redis::{CutProxy, MASTER};

        let primary = wxgate_testkit::RedisServer::start();
        let proxy = CutProxy::start(primary.port()).await;
        let dir = tempfile::tempdir().unwrap();
        let sentinel =
            wxgate_testkit::RedisServer::start_sentinel(&dir.path().join("sentinel.conf"), |_| {
                format!(
                    "sentinel monitor {MASTER} 127.0.0.1 {} 1\n\
                     sentinel down-after-milliseconds {MASTER} 60000\n",
                    proxy.port()
                )
            });
        let options = |topology| RedisOptions {
            topology,
            username: None,
            password: None,
            tls: RedisTls::default(),
            key_prefix: "cut:".into(),
        };
        let store = RedisStore::open(&options(RedisTopology::Sentinel {
            sentinels: vec![format!("redis://127.0.0.1:{}", sentinel.port())],
            master: MASTER.into(),
        }))
        .await
        .unwrap();
        // Another instance, straight to the primary.
        let other = RedisStore::open(&options(RedisTopology::Primary(SecretString::from(
            primary.url(),
        ))))
        .await
        .unwrap();
        let ttl = Duration::from_secs(60);

        proxy.lose_answer_to(b"$2\r\nNX\r\n");
        let claim = store.claim_push("lost", ttl).await;
        assert_eq!(proxy.cuts(), 1);
        assert!(claim.is_err(), "not read as another's claim: {claim:?}");
        assert_eq!(
            other.claim_push("lost", ttl).await.unwrap(),
            PushClaim::Pending,
            "the claim ran once"
        );

        // The lease script, loaded into Redis first (a lost `NOSCRIPT`
        // would leave the test unable to tell whether it ran).
        let warm = store.acquire("warm", Kind::AccessToken, ttl).await.unwrap();
        store
            .release("warm", Kind::AccessToken, &warm.unwrap())
            .await
            .unwrap();
        proxy.lose_answer_to(b"wx-cut:access_token}:lock");
        let lease = store.acquire("wx-cut", Kind::AccessToken, ttl).await;
        assert_eq!(proxy.cuts(), 2);
        let lease = lease.unwrap().expect("its own lease, not another's");
        assert_eq!(
            other
                .acquire("wx-cut", Kind::AccessToken, ttl)
                .await
                .unwrap(),
            None,
            "held"
        );
        store
            .release("wx-cut", Kind::AccessToken, &lease)
            .await
            .unwrap();
        let next = other
            .acquire("wx-cut", Kind::AccessToken, ttl)
            .await
            .unwrap();
        assert!(
            next.is_some_and(|next| next.fence > lease.fence),
            "released, then taken with a newer fence"
        );

        proxy.lose_answer_to(b"$3\r\nGET\r\n");
        let read = store.load("wx-cut", Kind::AccessToken).await;
        assert_eq!(proxy.cuts(), 3);
        assert!(matches!(read, Ok(None)), "sent again: {read:?}");
    })
    .await;
}
