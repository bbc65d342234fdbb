//! Passive replies (被动回复, protocol reference §2.6–2.7): the HTTP response body of a push.

use crate::fields::Fields;
use crate::message::Push;
use crate::xml::{self, XmlWriter};
use crate::MessageError;

/// The 7-byte answer that tells WeChat "no reply, do not retry".
pub const SUCCESS: &str = "success";

/// Whether a push response means "no reply": `success` or an empty body (§2.7).
pub fn is_no_reply(body: &str) -> bool {
    body.is_empty() || body == SUCCESS
}

/// A passive reply to one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The user's OpenID (the push's `FromUserName`).
    pub to_user_name: String,
    /// The account's `gh_…` id (the push's `ToUserName`).
    pub from_user_name: String,
    /// When the reply was made, Unix seconds.
    pub create_time: u64,
    /// What is replied.
    pub body: ReplyBody,
}

/// The reply types WeChat accepts. Media must have been uploaded beforehand.
///
/// Its JSON form is tagged by `type`: `{"type": "text", "content": "hi"}`,
/// `{"type": "news", "articles": [{"title", "description", "pic_url", "url"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ReplyBody {
    /// `text`; newlines allowed.
    Text {
        /// The text.
        content: String,
    },
    /// `image`.
    Image {
        /// Uploaded media id.
        media_id: String,
    },
    /// `voice`.
    Voice {
        /// Uploaded media id.
        media_id: String,
    },
    /// `video`.
    Video {
        /// Uploaded media id.
        media_id: String,
        /// Optional title.
        #[serde(default)]
        title: Option<String>,
        /// Optional description.
        #[serde(default)]
        description: Option<String>,
    },
    /// `music`.
    Music {
        /// Optional title.
        #[serde(default)]
        title: Option<String>,
        /// Optional description.
        #[serde(default)]
        description: Option<String>,
        /// Optional music URL.
        #[serde(default)]
        music_url: Option<String>,
        /// Optional high-quality music URL (preferred on Wi-Fi).
        #[serde(default)]
        hq_music_url: Option<String>,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// `news`: article cards. WeChat shows 1 in answer to a user message, up to 8 otherwise.
    News {
        /// The articles, in order.
        articles: Vec<Article>,
    },
    /// `transfer_customer_service`: hands the user's message to the
    /// customer-service tools (a Mini Program's only passive reply; an
    /// Official Account's 多客服), to one account when `kf_account` is given.
    #[serde(rename = "transfer_customer_service")]
    TransferCustomerService {
        /// `TransInfo/KfAccount`: the customer-service account to hand it to.
        #[serde(default)]
        kf_account: Option<String>,
    },
}

/// One card of a `news` reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Article {
    /// Card title.
    pub title: String,
    /// Card description.
    pub description: String,
    /// Picture URL (JPG/PNG).
    pub pic_url: String,
    /// Link opened on tap.
    pub url: String,
}

impl ReplyBody {
    /// The `MsgType` value.
    pub fn msg_type(&self) -> &'static str {
        match self {
            ReplyBody::Text { .. } => "text",
            ReplyBody::Image { .. } => "image",
            ReplyBody::Voice { .. } => "voice",
            ReplyBody::Video { .. } => "video",
            ReplyBody::Music { .. } => "music",
            ReplyBody::News { .. } => "news",
            ReplyBody::TransferCustomerService { .. } => "transfer_customer_service",
        }
    }
}

impl Reply {
    /// A reply to `push`: the user and account names swapped, as WeChat requires.
    pub fn to(push: &Push, create_time: u64, body: ReplyBody) -> Self {
        Self {
            to_user_name: push.from_user_name.clone(),
            from_user_name: push.to_user_name.clone(),
            create_time,
            body,
        }
    }

    /// Serialises the reply to WeChat's XML.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.cdata("ToUserName", &self.to_user_name)
            .cdata("FromUserName", &self.from_user_name)
            .integer("CreateTime", self.create_time)
            .cdata("MsgType", self.body.msg_type());
        write_body(&mut w, &self.body);
        w.finish()
    }

    /// Parses a passive reply (what a WeChat server answered to a push).
    pub fn parse(xml: &str) -> Result<Self, MessageError> {
        let root = xml::parse(xml)?;
        let mut f = Fields::new(&root.children);
        let to_user_name = f.required("ToUserName")?;
        let from_user_name = f.required("FromUserName")?;
        let create_time = f.required_number("CreateTime")?;
        let msg_type = f.required("MsgType")?;
        let body = read_body(&msg_type, &mut f)?;
        Ok(Self {
            to_user_name,
            from_user_name,
            create_time,
            body,
        })
    }
}

fn write_body(w: &mut XmlWriter, body: &ReplyBody) {
    match body {
        ReplyBody::Text { content } => {
            w.cdata("Content", content);
        }
        ReplyBody::Image { media_id } => {
            w.open("Image").cdata("MediaId", media_id).close("Image");
        }
        ReplyBody::Voice { media_id } => {
            w.open("Voice").cdata("MediaId", media_id).close("Voice");
        }
        ReplyBody::Video {
            media_id,
            title,
            description,
        } => {
            w.open("Video")
                .cdata("MediaId", media_id)
                .opt_cdata("Title", title.as_deref())
                .opt_cdata("Description", description.as_deref())
                .close("Video");
        }
        ReplyBody::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => {
            w.open("Music")
                .opt_cdata("Title", title.as_deref())
                .opt_cdata("Description", description.as_deref())
                .opt_cdata("MusicUrl", music_url.as_deref())
                .opt_cdata("HQMusicUrl", hq_music_url.as_deref())
                .cdata("ThumbMediaId", thumb_media_id)
                .close("Music");
        }
        ReplyBody::News { articles } => {
            w.number("ArticleCount", articles.len()).open("Articles");
            for article in articles {
                w.open("item")
                    .cdata("Title", &article.title)
                    .cdata("Description", &article.description)
                    .cdata("PicUrl", &article.pic_url)
                    .cdata("Url", &article.url)
                    .close("item");
            }
            w.close("Articles");
        }
        ReplyBody::TransferCustomerService { kf_account } => {
            if let Some(account) = kf_account {
                w.open("TransInfo")
                    .cdata("KfAccount", account)
                    .close("TransInfo");
            }
        }
    }
}

fn read_body(msg_type: &str, f: &mut Fields<'_>) -> Result<ReplyBody, MessageError> {
    let body = match crate::fields::ascii_lowercase(msg_type, &mut [0; 32]).as_ref() {
        "text" => ReplyBody::Text {
            content: f.required("Content")?,
        },
        "image" => ReplyBody::Image {
            media_id: nested(f, "Image")?.required("MediaId")?,
        },
        "voice" => ReplyBody::Voice {
            media_id: nested(f, "Voice")?.required("MediaId")?,
        },
        "video" => {
            let mut v = nested(f, "Video")?;
            ReplyBody::Video {
                media_id: v.required("MediaId")?,
                title: v.text("Title"),
                description: v.text("Description"),
            }
        }
        "music" => {
            let mut m = nested(f, "Music")?;
            ReplyBody::Music {
                title: m.text("Title"),
                description: m.text("Description"),
                music_url: m.text("MusicUrl"),
                hq_music_url: m.text("HQMusicUrl"),
                thumb_media_id: m.required("ThumbMediaId")?,
            }
        }
        "news" => {
            let count: usize = f.required_number("ArticleCount")?;
            let items = f
                .element("Articles")
                .ok_or(MessageError::Missing("Articles"))?;
            let articles = items
                .children
                .iter()
                .filter(|item| item.name == "item")
                .map(|item| {
                    let mut a = Fields::new(&item.children);
                    Article {
                        title: a.text("Title").unwrap_or_default(),
                        description: a.text("Description").unwrap_or_default(),
                        pic_url: a.text("PicUrl").unwrap_or_default(),
                        url: a.text("Url").unwrap_or_default(),
                    }
                })
                .collect::<Vec<_>>();
            if articles.len() != count {
                return Err(MessageError::Invalid {
                    field: "ArticleCount",
                    value: count.to_string(),
                });
            }
            ReplyBody::News { articles }
        }
        "transfer_customer_service" => ReplyBody::TransferCustomerService {
            kf_account: f
                .element("TransInfo")
                .and_then(|info| Fields::new(&info.children).text("KfAccount")),
        },
        other => {
            return Err(MessageError::UnknownReplyType(
                other.chars().take(64).collect(),
            ))
        }
    };
    Ok(body)
}

fn nested<'a>(f: &mut Fields<'a>, name: &'static str) -> Result<Fields<'a>, MessageError> {
    let element = f.element(name).ok_or(MessageError::Missing(name))?;
    Ok(Fields::new(&element.children))
}
