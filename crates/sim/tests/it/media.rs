//! Temporary media (`/cgi-bin/media/upload`, `/cgi-bin/media/get`), with
//! WeChat's limits, expiry and errcodes.

use serde_json::{json, Value};
use wxgate_sim::SimApp;

use crate::{access_token, errcode, start, Client, APPID};

const MIB: usize = 1024 * 1024;

/// One part of a multipart/form-data body.
pub(crate) struct Part<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    content_type: Option<&'a str>,
    bytes: &'a [u8],
}

/// The `media` field as SDKs send it.
pub(crate) fn media<'a>(
    file_name: &'a str,
    content_type: Option<&'a str>,
    bytes: &'a [u8],
) -> Part<'a> {
    Part {
        name: "media",
        file_name: Some(file_name),
        content_type,
        bytes,
    }
}

/// Deterministic, non-repeating-looking file content.
fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

const BOUNDARY: &str = "----wxgate-sim-test-boundary";

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(file_name) = part.file_name {
            disposition += &format!("; filename=\"{file_name}\"");
        }
        body.extend_from_slice(format!("{disposition}\r\n").as_bytes());
        if let Some(content_type) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

impl Client {
    pub(crate) async fn upload(&self, query: &str, parts: &[Part<'_>]) -> Value {
        let url = format!("{}/cgi-bin/media/upload?{query}", self.base);
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let response = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(multipart(parts))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn download(&self, token: &str, media_id: &str) -> reqwest::Response {
        let url = format!(
            "{}/cgi-bin/media/get?access_token={token}&media_id={media_id}",
            self.base
        );
        self.http.get(url).send().await.unwrap()
    }
}

fn media_id(answer: &Value) -> String {
    answer["media_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no media_id in {answer}"))
        .to_owned()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    let value = response.headers().get(name);
    let value = value.unwrap_or_else(|| panic!("no {name} header"));
    value.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn uploads_download_with_identical_bytes_and_headers() {
    let (sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let png = file(300 * 1024, 7);
    let before = sim.clock().now();
    let answer = wx
        .upload(
            &format!("access_token={token}&type=image"),
            &[media("cat.PNG", Some("image/png"), &png)],
        )
        .await;
    let id = media_id(&answer);
    assert_eq!(answer["type"], "image");
    let created_at = answer["created_at"].as_u64().unwrap();
    assert!(
        (before..=sim.clock().now()).contains(&created_at),
        "{answer}"
    );

    let response = wx.download(&token, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "image/png");
    // WeChat names the download after the media_id, with the file's extension.
    let disposition = format!("attachment; filename=\"{id}.png\"");
    assert_eq!(header(&response, "content-disposition"), disposition);
    assert_eq!(header(&response, "content-length"), png.len().to_string());
    assert_eq!(response.bytes().await.unwrap(), png);

    // No part Content-Type: the type's default; other fields are ignored.
    let amr = file(1000, 9);
    let fields = [
        Part {
            name: "description",
            file_name: None,
            content_type: None,
            bytes: b"{}",
        },
        media("hello", None, &amr),
    ];
    let answer = wx
        .upload(&format!("access_token={token}&type=voice"), &fields)
        .await;
    let response = wx.download(&token, &media_id(&answer)).await;
    assert_eq!(header(&response, "content-type"), "audio/amr");
    assert!(header(&response, "content-disposition").ends_with(".amr\""));
    assert_eq!(response.bytes().await.unwrap(), amr);

    // Thumbnails answer `thumb_media_id`, as WeChat does.
    let thumb = wx
        .upload(
            &format!("access_token={token}&type=thumb"),
            &[media("t.jpg", Some("image/jpeg"), &file(1000, 1))],
        )
        .await;
    assert_eq!(thumb["type"], "thumb");
    assert!(thumb["thumb_media_id"].is_string(), "{thumb}");
    assert!(thumb.get("media_id").is_none(), "{thumb}");

    let stats = wx.stats().await;
    assert_eq!(stats.app(APPID).media_uploads, 3);
    assert_eq!(stats.media_stored_bytes, (png.len() + 2000) as u64);
    assert_eq!(stats.app(APPID).calls("/cgi-bin/media/upload"), 3);
    assert_eq!(stats.app(APPID).calls("/cgi-bin/media/get"), 2);
    assert_eq!(stats.endpoint_calls("/cgi-bin/media/upload"), 3);
}

#[tokio::test]
async fn videos_answer_a_video_url() {
    let (_sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let mp4 = file(50_000, 3);
    let answer = wx
        .upload(
            &format!("access_token={token}&type=video"),
            &[media("clip.mp4", Some("video/mp4"), &mp4)],
        )
        .await;
    let id = media_id(&answer);
    let response = wx.download(&token, &id).await;
    let answer: Value = response.json().await.unwrap();
    let url = answer["video_url"].as_str().unwrap();
    assert!(url.starts_with("http://"), "{answer}");
    let video = wx.http.get(url).send().await.unwrap();
    assert_eq!(header(&video, "content-type"), "video/mp4");
    assert_eq!(video.bytes().await.unwrap(), mp4);
}

#[tokio::test]
async fn sizes_over_the_type_limit_answer_45001() {
    let (_sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let query = |kind: &str| format!("access_token={token}&type={kind}");
    let voice = file(2 * MIB + 1, 0);
    let answer = wx
        .upload(&query("voice"), &[media("a.mp3", None, &voice)])
        .await;
    assert_eq!(errcode(&answer), 45001);
    let thumb = file(64 * 1024 + 1, 0);
    let answer = wx
        .upload(&query("thumb"), &[media("t.jpg", None, &thumb)])
        .await;
    assert_eq!(errcode(&answer), 45001);
    // Exactly at the limit is accepted; 20 MB is far over axum's 2 MB default body limit.
    let image = file(10 * MIB, 0);
    media_id(
        &wx.upload(&query("image"), &[media("a.jpg", None, &image)])
            .await,
    );
    let big = file(20_000_000, 0);
    let answer = wx
        .upload(&query("image"), &[media("a.jpg", None, &big)])
        .await;
    assert_eq!(errcode(&answer), 45001);
    assert!(answer["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("media size out of limit"));
    assert_eq!(wx.stats().await.app(APPID).media_uploads, 1);
}

#[tokio::test]
async fn media_max_bytes_replaces_every_type_limit() {
    let (_sim, wx) = start(|c| c.media_max_bytes = Some(24 * MIB as u64)).await;
    let token = access_token(&wx.token().await);
    let big = file(20_000_000, 5);
    let answer = wx
        .upload(
            &format!("access_token={token}&type=video"),
            &[media("long.mp4", None, &big)],
        )
        .await;
    let id = media_id(&answer);
    // Thumbnails too are no longer limited to 64 KiB.
    let thumb = file(MIB, 0);
    let answer = wx
        .upload(
            &format!("access_token={token}&type=thumb"),
            &[media("t.jpg", None, &thumb)],
        )
        .await;
    assert!(answer["thumb_media_id"].is_string(), "{answer}");
    let answer = wx
        .download(&token, &id)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let url = answer["video_url"].as_str().unwrap();
    let video = wx.http.get(url).send().await.unwrap();
    assert_eq!(video.bytes().await.unwrap(), big);

    let (_sim, wx) = start(|c| c.media_max_bytes = Some(1000)).await;
    let token = access_token(&wx.token().await);
    let query = format!("access_token={token}&type=image");
    let answer = wx
        .upload(&query, &[media("a.gif", None, &file(1001, 0))])
        .await;
    assert_eq!(errcode(&answer), 45001);
    media_id(
        &wx.upload(&query, &[media("a.gif", None, &file(1000, 0))])
            .await,
    );
}

#[tokio::test]
async fn malformed_uploads_answer_wechat_errcodes() {
    let (sim, wx) = start(|_| {}).await;
    let token = access_token(&wx.token().await);
    let jpg = file(100, 0);
    let no_media = Part {
        name: "file",
        file_name: Some("a.jpg"),
        content_type: None,
        bytes: &jpg,
    };
    let answer = wx
        .upload(&format!("access_token={token}&type=image"), &[no_media])
        .await;
    assert_eq!(errcode(&answer), 41005);
    let empty = wx
        .upload(
            &format!("access_token={token}&type=image"),
            &[media("a.jpg", None, b"")],
        )
        .await;
    assert_eq!(errcode(&empty), 41005);
    let url = format!(
        "{}/cgi-bin/media/upload?access_token={token}&type=image",
        wx.base
    );
    let not_multipart = wx.http.post(url).body("plain").send().await.unwrap();
    assert_eq!(errcode(&not_multipart.json().await.unwrap()), 41005);

    let parts = [media("a.jpg", None, &jpg)];
    for query in [
        format!("access_token={token}&type=doc"),
        format!("access_token={token}"),
    ] {
        assert_eq!(errcode(&wx.upload(&query, &parts).await), 40004, "{query}");
    }
    let text = [media("notes.txt", None, &jpg)];
    let answer = wx
        .upload(&format!("access_token={token}&type=image"), &text)
        .await;
    assert_eq!(errcode(&answer), 40005);
    assert_eq!(errcode(&wx.upload("type=image", &parts).await), 41001);

    // The route goes through fault injection like every /cgi-bin/ route.
    sim.add_fault(
        serde_json::from_value(json!(
            {"path": "/cgi-bin/media/upload", "kind": "errcode", "errcode": -1, "count": 1}
        ))
        .unwrap(),
    );
    let answer = wx
        .upload(&format!("access_token={token}&type=image"), &parts)
        .await;
    assert_eq!(errcode(&answer), -1);
    let stats = wx.stats().await;
    assert_eq!(stats.faults_injected, 1);
    assert_eq!(
        stats.app(APPID).endpoints["/cgi-bin/media/upload"].errors,
        6
    );
    assert_eq!(stats.app(APPID).media_uploads, 0);
}

#[tokio::test]
async fn unknown_expired_and_foreign_media_answer_40007() {
    const OTHER: &str = "wx00000000000000ff";
    let (_sim, wx) = start(|c| c.apps.push(SimApp::new(OTHER, "other-secret"))).await;
    let token = access_token(&wx.token().await);
    let jpg = file(2000, 2);
    let answer = wx
        .upload(
            &format!("access_token={token}&type=image"),
            &[media("a.jpg", None, &jpg)],
        )
        .await;
    let id = media_id(&answer);
    let unknown = wx.download(&token, "sim0_nope").await;
    assert_eq!(errcode(&unknown.json().await.unwrap()), 40007);
    let missing = wx
        .get(&format!("/cgi-bin/media/get?access_token={token}"))
        .await;
    assert_eq!(errcode(&missing), 40007);

    let other = wx
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={OTHER}&secret=other-secret"
        ))
        .await;
    let foreign = wx.download(&access_token(&other), &id).await;
    assert_eq!(errcode(&foreign.json().await.unwrap()), 40007);

    // Three days after the upload the file is gone (and the token with it).
    wx.advance(259_199 - 5).await;
    let token = access_token(&wx.token().await);
    assert_eq!(wx.download(&token, &id).await.bytes().await.unwrap(), jpg);
    assert_eq!(wx.stats().await.media_stored_bytes, jpg.len() as u64);
    wx.advance(6).await;
    let expired = wx.download(&token, &id).await;
    assert_eq!(errcode(&expired.json().await.unwrap()), 40007);
    assert_eq!(wx.stats().await.media_stored_bytes, 0);
    let direct = wx
        .http
        .get(format!("{}/sim/media/{id}", wx.base))
        .send()
        .await;
    assert_eq!(direct.unwrap().status(), 404);
}

#[tokio::test]
async fn invalid_tokens_answer_40001_and_are_counted() {
    let (_sim, wx) = start(|_| {}).await;
    let jpg = file(100, 0);
    let answer = wx
        .upload(
            "access_token=forged&type=image",
            &[media("a.jpg", None, &jpg)],
        )
        .await;
    assert_eq!(errcode(&answer), 40001);
    let got = wx.download("forged", "sim1_x").await;
    assert_eq!(errcode(&got.json().await.unwrap()), 40001);
    let info = wx
        .get("/cgi-bin/user/info?access_token=forged&openid=o1")
        .await;
    assert_eq!(errcode(&info), 40001);
    let stats = wx.stats().await;
    assert_eq!(stats.invalid_token_calls(), 3);
    for path in [
        "/cgi-bin/media/upload",
        "/cgi-bin/media/get",
        "/cgi-bin/user/info",
    ] {
        assert_eq!(stats.unattributed.endpoints[path].errors, 1, "{path}");
    }
}
