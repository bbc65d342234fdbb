//! `/cgi-bin/stable_token`: the same token while valid, isolated from the
//! classic API; `force_refresh` replaces it, rate-limited as WeChat does.

use crate::{access_token, start};

#[tokio::test]
async fn repeated_calls_return_the_same_token_until_the_last_five_minutes() {
    let (_sim, wx) = start(|_| {}).await;
    let first = wx.stable(false).await;
    let token = access_token(&first);
    assert_eq!(first["expires_in"], 7200);
    wx.advance(1000).await;
    let again = wx.stable(false).await;
    assert_eq!(access_token(&again), token);
    assert_eq!(again["expires_in"], 6200);

    // In the last 300 s a call gets the next token; the old one works to its end.
    wx.advance(6200 - 300).await;
    let next = access_token(&wx.stable(false).await);
    assert_ne!(next, token);
    assert_eq!(wx.use_token(&token).await, 0);
    wx.advance(300).await;
    assert_eq!(wx.use_token(&token).await, 42001);
    assert_eq!(wx.use_token(&next).await, 0);
    assert_eq!(wx.stats().await.app(crate::APPID).stable_tokens_issued, 2);
}

#[tokio::test]
async fn the_stable_token_renews_300_s_before_expiry_whatever_the_classic_grace() {
    for grace in [10, 1000] {
        let (_sim, wx) = start(|c| c.grace = grace).await;
        let token = access_token(&wx.stable(false).await);
        wx.advance(7200 - 301).await;
        let late = wx.stable(false).await;
        assert_eq!(access_token(&late), token, "grace {grace}: 301 s left");
        assert_eq!(late["expires_in"], 301);
        wx.advance(1).await;
        let next = access_token(&wx.stable(false).await);
        assert_ne!(next, token, "grace {grace}: 300 s left");
        assert_eq!(
            wx.use_token(&token).await,
            0,
            "the old one works to its end"
        );
    }
}

#[tokio::test]
async fn classic_and_stable_tokens_do_not_touch_each_other() {
    let (_sim, wx) = start(|_| {}).await;
    let stable = access_token(&wx.stable(false).await);
    for _ in 0..3 {
        access_token(&wx.token().await);
    }
    wx.advance(301).await;
    assert_eq!(wx.use_token(&stable).await, 0);
    assert_eq!(access_token(&wx.stable(false).await), stable);
}

#[tokio::test]
async fn force_refresh_replaces_the_token_at_most_every_30_s_and_20_times_a_day() {
    let (_sim, wx) = start(|_| {}).await;
    let leaked = access_token(&wx.stable(false).await);
    let forced = access_token(&wx.stable(true).await);
    assert_ne!(forced, leaked);
    // A second force within 30 s refreshes nothing.
    assert_eq!(access_token(&wx.stable(true).await), forced);
    // Two forced calls 30 s apart kill the leaked token.
    wx.advance(30).await;
    let again = access_token(&wx.stable(true).await);
    assert_ne!(again, forced);
    assert_eq!(wx.use_token(&leaked).await, 40001);

    let mut last = again;
    for _ in 0..18 {
        wx.advance(30).await;
        last = access_token(&wx.stable(true).await);
    }
    // Past 20 forced refreshes a day, no refresh happens (§4.2): the same token.
    wx.advance(30).await;
    let over = access_token(&wx.stable(true).await);
    assert_eq!(over, last, "21st forced refresh of the day");
    let issued = wx.stats().await.app(crate::APPID).stable_tokens_issued;
    assert_eq!(issued, 21, "1 normal + 20 forced");
}
