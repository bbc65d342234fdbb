//! The gateway against the simulator, over real HTTP. Each test starts its own
//! simulator and gateway on free loopback ports, with one manual clock driving both.

mod admin;
mod callbacks;
mod client_api;
mod compat;
mod config;
mod diagnostics;
mod facade;
mod families;
mod faults;
mod layers;
mod ops;
mod owners;
mod platform;
mod platform_compat;
mod platform_scale;
mod platform_vectors;
mod proxy;
mod pushes;
mod redis;
mod redis_topologies;
mod rejections;
mod release_check;
mod reload;
mod rotation;
mod sdk;
mod signin;
mod sources;
mod token_center;
mod upstream;

use serde_json::Value;
pub(crate) use wxgate_testkit::gateway::{Env, Setup, APPID, CLIENT_KEY, SECRET, T0};
pub(crate) use wxgate_testkit::logs;

/// Runs a Python script with wechatpy (an independent WeChat implementation)
/// and reads the JSON it prints. Fails, never skips, when wechatpy is missing.
pub(crate) async fn wechatpy(script: &'static str, args: Vec<String>) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .expect("python3 must be installed (scripts/test installs wechatpy)");
    assert!(
        output.status.success(),
        "wechatpy failed (scripts/test runs pip install wechatpy):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// How often an instance reads its platforms' authorizers from the store.
pub(crate) fn platform_sync_secs() -> u64 {
    wxgate_gateway::platform::SYNC_SECS
}
