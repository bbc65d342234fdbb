//! Classic `/cgi-bin/token`: every fetch supersedes the previous token after the
//! grace period; tokens expire; the daily quota ends in 45009.

use crate::{access_token, errcode, start};

#[tokio::test]
async fn each_fetch_issues_a_new_token_and_the_old_one_dies_after_the_grace_period() {
    let (_sim, wx) = start(|_| {}).await;
    let first = wx.token().await;
    assert_eq!(first["expires_in"], 7200);
    assert!(
        first.get("errcode").is_none(),
        "no errcode on success: {first}"
    );
    let a = access_token(&first);
    assert!(a.len() > 100, "tokens are long and opaque like WeChat's");
    let b = access_token(&wx.token().await);
    assert_ne!(a, b);

    // Both work during the grace period…
    assert_eq!(wx.use_token(&a).await, 0);
    assert_eq!(wx.use_token(&b).await, 0);
    wx.advance(299).await;
    assert_eq!(wx.use_token(&a).await, 0);
    // …then the superseded one answers 40001.
    wx.advance(1).await;
    assert_eq!(wx.use_token(&a).await, 40001);
    assert_eq!(wx.use_token(&b).await, 0);

    let stats = wx.stats().await;
    let app = stats.app(crate::APPID);
    assert_eq!(app.tokens_issued, 2);
    assert_eq!(app.calls("/cgi-bin/token"), 2);
    assert_eq!(app.invalid_token_calls, 1);
}

#[tokio::test]
async fn a_token_expires_after_expires_in_with_42001() {
    let (_sim, wx) = start(|c| c.expires_in = 60).await;
    let answer = wx.token().await;
    assert_eq!(answer["expires_in"], 60);
    let token = access_token(&answer);
    wx.advance(59).await;
    assert_eq!(wx.use_token(&token).await, 0);
    wx.advance(1).await;
    assert_eq!(wx.use_token(&token).await, 42001);
}

#[tokio::test]
async fn unknown_and_missing_tokens_are_refused_and_counted() {
    let (_sim, wx) = start(|_| {}).await;
    assert_eq!(wx.use_token("forged").await, 40001);
    let missing = wx.get("/cgi-bin/getcallbackip").await;
    assert_eq!(errcode(&missing), 41001);
    assert_eq!(wx.stats().await.unattributed.invalid_token_calls, 1);
}

#[tokio::test]
async fn the_daily_quota_ends_in_45009_until_beijing_midnight() {
    let (sim, wx) = start(|c| c.daily_quota = 3).await;
    for _ in 0..3 {
        access_token(&wx.token().await);
    }
    let refused = wx.token().await;
    assert_eq!(errcode(&refused), 45009);
    assert!(refused["errmsg"].as_str().unwrap().contains(" rid: "));
    // The quota resets when the day (UTC+8) changes.
    let now = sim.clock().now();
    let to_midnight = 86_400 - (now + 8 * 3600) % 86_400;
    wx.advance(to_midnight).await;
    access_token(&wx.token().await);
}

#[tokio::test]
async fn a_thousand_concurrent_fetches_are_all_answered_and_counted() {
    let (_sim, wx) = start(|c| c.daily_quota = 10_000).await;
    let wx = std::sync::Arc::new(wx);
    let calls = (0..1000).map(|_| {
        let wx = wx.clone();
        tokio::spawn(async move { access_token(&wx.token().await) })
    });
    let tokens: std::collections::HashSet<_> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(tokens.len(), 1000, "each classic fetch is a new token");
    assert_eq!(wx.stats().await.app(crate::APPID).tokens_issued, 1000);
}

#[tokio::test]
async fn a_huge_clock_step_is_capped_instead_of_overflowing() {
    let (sim, wx) = start(|_| {}).await;
    let before = sim.clock().now();
    let after = wx.advance(u64::MAX).await;
    assert_eq!(after - before, wxgate_sim::clock::MAX_ADVANCE);
    access_token(&wx.token().await);
}
