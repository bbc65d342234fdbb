//! Temporary media (临时素材): `POST /cgi-bin/media/upload`, `GET /cgi-bin/media/get`
//! and the store behind them. Uploads live in memory for three days, as WeChat's do.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use crate::api::{error_of, Params};
use crate::error::WxError;
use crate::state::path;
use crate::Simulator;

/// Seconds a temporary media file can be downloaded after its upload (three days).
pub(crate) const EXPIRES: u64 = 259_200;
/// Bytes read of a request body at most, whatever its limit, before answering
/// without reading the rest (the connection then closes).
const DRAIN_MIN: u64 = 64 * 1024 * 1024;

/// The `type` of a temporary media file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaType {
    Image,
    Voice,
    Video,
    Thumb,
}

impl MediaType {
    const ALL: [Self; 4] = [Self::Image, Self::Voice, Self::Video, Self::Thumb];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Voice => "voice",
            Self::Video => "video",
            Self::Thumb => "thumb",
        }
    }

    /// WeChat's size limit for the type.
    fn default_limit(self) -> u64 {
        match self {
            Self::Image | Self::Video => 10 * 1024 * 1024,
            Self::Voice => 2 * 1024 * 1024,
            Self::Thumb => 64 * 1024,
        }
    }

    /// The file extensions WeChat accepts, lowercase; the first is the default.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Image => &["jpg", "jpeg", "png", "gif"],
            Self::Voice => &["amr", "mp3"],
            Self::Video => &["mp4"],
            Self::Thumb => &["jpg", "jpeg"],
        }
    }

    fn content_type_of(ext: &str) -> &'static str {
        match ext {
            "png" => "image/png",
            "gif" => "image/gif",
            "amr" => "audio/amr",
            "mp3" => "audio/mpeg",
            "mp4" => "video/mp4",
            _ => "image/jpeg",
        }
    }
}

/// One uploaded file.
#[derive(Clone)]
struct Media {
    appid: String,
    kind: MediaType,
    content_type: String,
    /// Extension of the uploaded file's name, or the type's default: WeChat names
    /// a download after its media_id (`MEDIA_ID.jpg`), not after the uploaded file.
    ext: &'static str,
    bytes: Bytes,
    created_at: u64,
}

impl Media {
    fn live(&self, now: u64) -> bool {
        now < self.created_at.saturating_add(EXPIRES)
    }
}

/// Temporary media of every account, by media_id.
pub(crate) struct Store {
    max_bytes: Option<u64>,
    items: HashMap<String, Media>,
    seq: u64,
}

impl Store {
    pub(crate) fn new(max_bytes: Option<u64>) -> Self {
        Self {
            max_bytes,
            items: HashMap::new(),
            seq: 0,
        }
    }

    /// The size limit of `kind`; of every type when it is not known.
    fn limit(&self, kind: Option<MediaType>) -> u64 {
        let default = |k: MediaType| k.default_limit();
        self.max_bytes.unwrap_or_else(|| match kind {
            Some(kind) => default(kind),
            None => MediaType::ALL.into_iter().map(default).max().unwrap_or(0),
        })
    }

    /// Bytes of the files not expired at `now`.
    pub(crate) fn stored_bytes(&self, now: u64) -> u64 {
        let live = self.items.values().filter(|m| m.live(now));
        live.map(|m| m.bytes.len() as u64).sum()
    }

    fn insert(&mut self, media: Media, now: u64) -> String {
        self.items.retain(|_, m| m.live(now));
        self.seq += 1;
        let id = format!(
            "sim{}_{}",
            self.seq,
            hex::encode(rand::random::<[u8; 24]>())
        );
        self.items.insert(id.clone(), media);
        id
    }

    /// `appid`'s live file `id`.
    fn get(&self, appid: &str, id: &str, now: u64) -> Option<&Media> {
        self.items
            .get(id)
            .filter(|m| m.appid == appid && m.live(now))
    }
}

/// What the `media` field of an upload held.
enum Received {
    Missing,
    TooLarge,
    File {
        file_name: Option<String>,
        content_type: Option<String>,
        bytes: Bytes,
    },
}

/// `POST /cgi-bin/media/upload?access_token=…&type=…`, the file in the multipart field `media`.
pub(crate) async fn upload(
    State(sim): State<Simulator>,
    caller: ConnectInfo<SocketAddr>,
    Query(q): Params,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let kind = q.get("type").and_then(|t| MediaType::parse(t));
    let limit = sim.state().media.limit(kind);
    // The whole body is read before answering, so that a client still sending gets the answer.
    let received = match multipart {
        Ok(multipart) => read_media(multipart, limit).await,
        Err(_) => Received::Missing,
    };
    let now = sim.clock().now();
    let mut state = sim.state();
    let token = q.get("access_token").map(String::as_str);
    let appid = match state.authorize(path::MEDIA_UPLOAD, token, caller.ip(), now) {
        Ok(appid) => appid,
        Err(outcome) => return error_of(outcome),
    };
    let result = match (kind, received) {
        (None, _) => Err(WxError::new(40004, "invalid media type")),
        (Some(_), Received::Missing) => Err(WxError::new(41005, "media data missing")),
        (Some(_), Received::TooLarge) => Err(WxError::new(45001, "media size out of limit")),
        (
            Some(kind),
            Received::File {
                file_name,
                content_type,
                bytes,
            },
        ) => {
            let ext = file_name
                .as_deref()
                .and_then(|n| n.rsplit_once('.'))
                .map(|(_, ext)| ext.to_ascii_lowercase());
            match ext.map(|ext| kind.extensions().iter().find(|e| **e == ext)) {
                Some(None) => Err(WxError::new(40005, "invalid file type")),
                known => {
                    let ext = known.flatten().copied().unwrap_or(kind.extensions()[0]);
                    let content_type =
                        content_type.unwrap_or_else(|| MediaType::content_type_of(ext).to_owned());
                    let media = Media {
                        appid: appid.clone(),
                        kind,
                        content_type,
                        ext,
                        bytes,
                        created_at: now,
                    };
                    Ok(media)
                }
            }
        }
    };
    let result = result.map(|media| {
        let (kind, size) = (media.kind, media.bytes.len());
        let id = state.media.insert(media, now);
        state.app_stats(Some(&appid)).media_uploads += 1;
        tracing::debug!(appid, media_id = id, size, "temporary media stored");
        // Thumbnails answer `thumb_media_id` instead of `media_id`, unlike the documentation says.
        let key = if kind == MediaType::Thumb {
            "thumb_media_id"
        } else {
            "media_id"
        };
        json!({ "type": kind.as_str(), key: id, "created_at": now })
    });
    match state.answer(path::MEDIA_UPLOAD, Some(appid), result).1 {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Reads every field, keeping the first `media` field unless it is over `limit`;
/// fields are read chunk by chunk, so no more than `limit` bytes are ever held.
async fn read_media(mut multipart: Multipart, limit: u64) -> Received {
    let cap = limit.saturating_mul(4).max(DRAIN_MIN);
    let mut received = Received::Missing;
    let mut total = 0_u64;
    while let Ok(Some(mut field)) = multipart.next_field().await {
        let wanted = field.name() == Some("media") && matches!(received, Received::Missing);
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let (mut bytes, mut over, mut complete) = (Vec::new(), false, false);
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    total = total.saturating_add(chunk.len() as u64);
                    if total > cap {
                        return Received::TooLarge;
                    }
                    if wanted && !over {
                        over = (bytes.len() + chunk.len()) as u64 > limit;
                        if over {
                            bytes = Vec::new();
                        } else {
                            bytes.extend_from_slice(&chunk);
                        }
                    }
                }
                Ok(None) => {
                    complete = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if wanted && over {
            received = Received::TooLarge;
        } else if wanted && complete && !bytes.is_empty() {
            received = Received::File {
                file_name,
                content_type,
                bytes: Bytes::from(bytes),
            };
        }
        if !complete {
            break;
        }
    }
    received
}

/// `GET /cgi-bin/media/get?access_token=…&media_id=…`: the file, or for a video
/// `{"video_url"}`.
pub(crate) async fn get(
    State(sim): State<Simulator>,
    caller: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let now = sim.clock().now();
    let mut state = sim.state();
    let token = q.get("access_token").map(String::as_str);
    let appid = match state.authorize(path::MEDIA_GET, token, caller.ip(), now) {
        Ok(appid) => appid,
        Err(outcome) => return error_of(outcome),
    };
    let id = q.get("media_id").map_or("", String::as_str);
    let found = state.media.get(&appid, id, now).cloned();
    let result = found.ok_or_else(|| WxError::new(40007, "invalid media_id"));
    match state.answer(path::MEDIA_GET, Some(appid), result).1 {
        Ok(media) if media.kind == MediaType::Video => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
                })
                .unwrap_or("127.0.0.1");
            Json(json!({ "video_url": format!("http://{host}/sim/media/{id}") })).into_response()
        }
        Ok(media) => file_response(id, &media),
        Err(err) => err.into_response(),
    }
}

/// `GET /sim/media/{media_id}`: the file behind a `video_url`, without a token
/// (WeChat's video URLs are plain download links).
pub(crate) async fn video(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let now = sim.clock().now();
    let found = sim
        .state()
        .media
        .items
        .get(&id)
        .filter(|m| m.live(now))
        .cloned();
    match found {
        Some(media) => file_response(&id, &media),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn file_response(id: &str, media: &Media) -> Response {
    let disposition = format!("attachment; filename=\"{id}.{}\"", media.ext);
    let headers = [
        (header::CONTENT_TYPE, media.content_type.clone()),
        (header::CONTENT_DISPOSITION, disposition),
        (
            header::CACHE_CONTROL,
            "no-cache, must-revalidate".to_owned(),
        ),
    ];
    // A `Bytes` body has an exact size, so the answer carries a Content-Length.
    (headers, media.bytes.clone()).into_response()
}
