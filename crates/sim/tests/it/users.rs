//! `/cgi-bin/user/info`: a deterministic subscriber record, 40003 without an openid.

use serde_json::json;

use crate::{access_token, errcode, start, APPID};

#[tokio::test]
async fn user_info_describes_a_subscriber_deterministically() {
    let (_sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let path = format!("/cgi-bin/user/info?access_token={token}&openid=oUser1&lang=zh_CN");
    let info = wx.get(&path).await;
    let subscribe_time = info["subscribe_time"].as_u64().unwrap();
    assert!(subscribe_time > 1_500_000_000, "{info}");
    let expected = json!({
        "subscribe": 1, "openid": "oUser1", "language": "zh_CN",
        "subscribe_time": subscribe_time, "remark": "", "groupid": 0, "tagid_list": [],
        "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene": 0, "qr_scene_str": "",
    });
    assert_eq!(info, expected);
    assert_eq!(wx.get(&path).await, info);
    let other = wx
        .get(&format!(
            "/cgi-bin/user/info?access_token={token}&openid=oUser2"
        ))
        .await;
    assert_eq!(other["openid"], "oUser2");

    for query in [
        format!("access_token={token}"),
        format!("access_token={token}&openid="),
    ] {
        let answer = wx.get(&format!("/cgi-bin/user/info?{query}")).await;
        assert_eq!(errcode(&answer), 40003, "{query}");
    }
    let stats = wx.stats().await.app(APPID);
    assert_eq!(stats.endpoints["/cgi-bin/user/info"].calls, 5);
    assert_eq!(stats.endpoints["/cgi-bin/user/info"].errors, 2);
}
