//! `/cgi-bin/ticket/getticket`: jsapi and wx_card tickets, fetched with a valid token.

use crate::{access_token, errcode, start};

#[tokio::test]
async fn tickets_need_a_valid_token_and_a_known_type() {
    let (_sim, wx) = start(|c| c.expires_in = 600).await;
    let token = access_token(&wx.token().await);
    for kind in ["jsapi", "wx_card"] {
        let answer = wx
            .get(&format!(
                "/cgi-bin/ticket/getticket?access_token={token}&type={kind}"
            ))
            .await;
        assert_eq!(answer["errcode"], 0, "{answer}");
        assert_eq!(answer["errmsg"], "ok");
        assert_eq!(answer["expires_in"], 600);
        assert!(answer["ticket"].as_str().unwrap().len() > 20);
    }
    let bad_type = wx
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={token}&type=other"
        ))
        .await;
    assert_eq!(errcode(&bad_type), 40097);
    wx.advance(600).await;
    let expired = wx
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
        ))
        .await;
    assert_eq!(
        errcode(&expired),
        42001,
        "the token, not the ticket, is bad"
    );
    let stats = wx.stats().await.app(crate::APPID);
    assert_eq!(stats.tickets_issued, 2);
    assert_eq!(stats.invalid_token_calls, 1);
}

#[tokio::test]
async fn ticket_fetches_have_their_own_daily_quota() {
    let (_sim, wx) = start(|c| c.daily_quota = 2).await;
    let token = access_token(&wx.token().await);
    let url = format!("/cgi-bin/ticket/getticket?access_token={token}&type=jsapi");
    assert_eq!(wx.get(&url).await["errcode"], 0);
    assert_eq!(wx.get(&url).await["errcode"], 0);
    assert_eq!(errcode(&wx.get(&url).await), 45009);
    // The token quota is separate: one of two used.
    access_token(&wx.token().await);
}
