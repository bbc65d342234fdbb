//! Typed inbound pushes: normal messages and events (protocol reference §2.3–2.5).
//!
//! Parsing never drops a push. Fields a typed variant does not name are kept in
//! [`Push::extra`]; a push whose `MsgType` or `Event` is unknown, or whose fields
//! do not fit its type, becomes [`PushKind::Unknown`] or [`Event::Unknown`] with
//! every field kept. Only a push without the four common header fields, or one
//! that is not well-formed XML, is an error.

use crate::fields::Fields;
use crate::xml::{self, Element, XmlWriter};
use crate::MessageError;

/// One message or event pushed by WeChat.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The account's original id (`gh_…`).
    pub to_user_name: String,
    /// The sender's OpenID.
    pub from_user_name: String,
    /// Creation time, Unix seconds; identical across WeChat's retries.
    pub create_time: u64,
    /// What was pushed.
    pub kind: PushKind,
    /// Every top-level field the typed variant does not hold (`MsgDataId`, `Idx`,
    /// `MediaId16K`, `Encrypt` in compatible mode, fields WeChat adds later…).
    pub extra: Vec<Element>,
}

/// The normal message types and the event wrapper (`MsgType`).
#[derive(Debug, Clone, PartialEq)]
pub enum PushKind {
    /// `text`.
    Text {
        /// 64-bit message id.
        msg_id: u64,
        /// The text, UTF-8.
        content: String,
    },
    /// `image`.
    Image {
        /// 64-bit message id.
        msg_id: u64,
        /// System-generated picture URL.
        pic_url: String,
        /// Temporary media id.
        media_id: String,
    },
    /// `voice`.
    Voice {
        /// 64-bit message id.
        msg_id: u64,
        /// Temporary media id.
        media_id: String,
        /// Audio format (`amr`, `speex`…).
        format: String,
        /// Speech recognition result, when enabled (may be empty).
        recognition: Option<String>,
    },
    /// `video`.
    Video {
        /// 64-bit message id.
        msg_id: u64,
        /// Temporary media id.
        media_id: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// `shortvideo`.
    ShortVideo {
        /// 64-bit message id.
        msg_id: u64,
        /// Temporary media id.
        media_id: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// `location`.
    Location {
        /// 64-bit message id.
        msg_id: u64,
        /// `Location_X`: latitude.
        latitude: f64,
        /// `Location_Y`: longitude.
        longitude: f64,
        /// Map zoom.
        scale: u32,
        /// Place description.
        label: String,
    },
    /// `link`.
    Link {
        /// 64-bit message id.
        msg_id: u64,
        /// Link title.
        title: String,
        /// Link description.
        description: String,
        /// Target URL.
        url: String,
    },
    /// `event`.
    Event(Event),
    /// Any other `MsgType`, or a known one whose fields did not fit; all fields are in `extra`.
    Unknown {
        /// The `MsgType` as received.
        msg_type: String,
    },
}

/// Events (`MsgType=event`, protocol reference §2.5).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `subscribe`: a follow, possibly through a parametric QR code.
    Subscribe {
        /// `qrscene_` + scene value when followed through a QR code.
        event_key: Option<String>,
        /// QR code ticket, with a QR follow.
        ticket: Option<String>,
    },
    /// `unsubscribe`.
    Unsubscribe,
    /// `SCAN`: a follower scanned a parametric QR code.
    Scan {
        /// The scene value (no prefix).
        event_key: String,
        /// QR code ticket.
        ticket: Option<String>,
    },
    /// `LOCATION`: periodic location report.
    Location {
        /// Latitude.
        latitude: f64,
        /// Longitude.
        longitude: f64,
        /// Precision.
        precision: f64,
    },
    /// `CLICK`: a menu button.
    Click {
        /// The button's key.
        event_key: String,
    },
    /// `VIEW`: a menu link.
    View {
        /// The target URL (`EventKey`).
        url: String,
        /// Personalised menu id.
        menu_id: Option<String>,
    },
    /// `TEMPLATESENDJOBFINISH`: a template message was delivered or not.
    TemplateSendJobFinish {
        /// The template message id (`MsgID`, capital D).
        msg_id: u64,
        /// `success`, `failed:user block`, `failed: system failed`…
        status: String,
    },
    /// Any other event; its fields are in [`Push::extra`].
    Unknown {
        /// The `Event` as received.
        event: String,
    },
}

impl Event {
    /// The `Event` value; canonical case for known events.
    pub fn name(&self) -> &str {
        match self {
            Event::Subscribe { .. } => "subscribe",
            Event::Unsubscribe => "unsubscribe",
            Event::Scan { .. } => "SCAN",
            Event::Location { .. } => "LOCATION",
            Event::Click { .. } => "CLICK",
            Event::View { .. } => "VIEW",
            Event::TemplateSendJobFinish { .. } => "TEMPLATESENDJOBFINISH",
            Event::Unknown { event } => event,
        }
    }

    /// For a follow through a parametric QR code, the scene value after `qrscene_`.
    pub fn qr_scene(&self) -> Option<&str> {
        match self {
            Event::Subscribe {
                event_key: Some(key),
                ..
            } => key.strip_prefix("qrscene_"),
            Event::Scan { event_key, .. } => Some(event_key),
            _ => None,
        }
    }
}

impl PushKind {
    /// The `MsgType` value.
    pub fn msg_type(&self) -> &str {
        match self {
            PushKind::Unknown { msg_type } => msg_type,
            known => known.name(),
        }
    }

    /// The `MsgType` of WeChat's types, and `unknown` for any other: a name
    /// from a fixed set, for metrics labels and log fields (the sender
    /// chooses an unknown type's text).
    pub fn name(&self) -> &'static str {
        match self {
            PushKind::Text { .. } => "text",
            PushKind::Image { .. } => "image",
            PushKind::Voice { .. } => "voice",
            PushKind::Video { .. } => "video",
            PushKind::ShortVideo { .. } => "shortvideo",
            PushKind::Location { .. } => "location",
            PushKind::Link { .. } => "link",
            PushKind::Event(_) => "event",
            PushKind::Unknown { .. } => "unknown",
        }
    }
}

impl Push {
    /// Parses a decrypted push.
    pub fn parse(xml: &str) -> Result<Self, MessageError> {
        Self::from_root(xml::parse(xml)?)
    }

    /// Reads a push from an already parsed `<xml>` root.
    pub fn from_element(root: &Element) -> Result<Self, MessageError> {
        Self::from_root(root.clone())
    }

    /// Reads a push from a root it owns: the header's texts and the untyped
    /// children are moved into the push, not copied.
    pub(crate) fn from_root(root: Element) -> Result<Self, MessageError> {
        let mut children = root.children;
        let read = ReadPush::from(&children)?;
        let mut take = |i: usize| std::mem::take(&mut children[i].text);
        let to_user_name = take(read.to_user_name);
        let from_user_name = take(read.from_user_name);
        let kind = match read.kind {
            Some(kind) => kind,
            None => PushKind::Unknown {
                msg_type: take(read.msg_type),
            },
        };
        let extra = read
            .rest
            .iter()
            .map(|&i| std::mem::take(&mut children[i]))
            .collect();
        Ok(Push {
            to_user_name,
            from_user_name,
            create_time: read.create_time,
            kind,
            extra,
        })
    }

    /// The 64-bit `MsgId` of a normal message (also read from `extra` for unknown types).
    pub fn msg_id(&self) -> Option<u64> {
        match &self.kind {
            PushKind::Text { msg_id, .. }
            | PushKind::Image { msg_id, .. }
            | PushKind::Voice { msg_id, .. }
            | PushKind::Video { msg_id, .. }
            | PushKind::ShortVideo { msg_id, .. }
            | PushKind::Location { msg_id, .. }
            | PushKind::Link { msg_id, .. } => Some(*msg_id),
            PushKind::Event(_) => None,
            PushKind::Unknown { .. } => self
                .extra
                .iter()
                .find(|e| e.name == "MsgId")
                .and_then(|e| crate::fields::trimmed(&e.text).parse().ok()),
        }
    }

    /// The key that identifies WeChat's retries of this push (protocol reference
    /// §2.8): `m:{MsgId}` for messages; for events (and anything without a
    /// `MsgId`) `e:{FromUserName}:{CreateTime}:{Event}:{digest}`, where the
    /// digest (16 hex digits of SHA-1) covers every field of the push. WeChat's
    /// retries are identical, so they share the key; two different events of one
    /// user in one second (two menu clicks, two template results) do not.
    /// Prefix it with the appid when keys of several accounts share a store.
    pub fn dedupe_key(&self) -> String {
        if let Some(id) = self.msg_id() {
            return format!("m:{id}");
        }
        let name = match &self.kind {
            PushKind::Event(event) => event.name(),
            kind => kind.msg_type(),
        };
        let digest = crate::signature::Sha1::digest(self.to_xml().as_bytes());
        format!(
            "e:{}:{}:{}:{}",
            self.from_user_name,
            self.create_time,
            name,
            hex_simd::encode_to_string(&digest[..8], hex_simd::AsciiCase::Lower)
        )
    }

    /// Serialises the push as WeChat sends it (plaintext mode body).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.cdata("ToUserName", &self.to_user_name)
            .cdata("FromUserName", &self.from_user_name)
            .integer("CreateTime", self.create_time)
            .cdata("MsgType", self.kind.msg_type());
        write_kind(&mut w, &self.kind);
        for element in &self.extra {
            w.element(element);
        }
        w.finish()
    }
}

/// A push read from a root's children: the indices of the header's texts
/// and of the children left untyped, for [`Push::from_root`] to move them
/// out of the tree.
struct ReadPush {
    to_user_name: usize,
    from_user_name: usize,
    create_time: u64,
    msg_type: usize,
    /// `None`: an unknown type, or a known one missing a field.
    kind: Option<PushKind>,
    rest: Vec<usize>,
}

impl ReadPush {
    fn from(children: &[Element]) -> Result<Self, MessageError> {
        let mut f = Fields::new(children);
        let to_user_name = f.required_index("ToUserName")?;
        let from_user_name = f.required_index("FromUserName")?;
        let create_time = f.required_number("CreateTime")?;
        let msg_type = f.required_index("MsgType")?;
        let checkpoint = f.checkpoint();
        let kind = read_kind(&children[msg_type].text, &mut f);
        if kind.is_none() {
            f.rollback(checkpoint);
        }
        Ok(ReadPush {
            to_user_name,
            from_user_name,
            create_time,
            msg_type,
            kind,
            rest: f.rest_indices(),
        })
    }
}

fn read_kind(msg_type: &str, f: &mut Fields<'_>) -> Option<PushKind> {
    let kind = match crate::fields::ascii_lowercase(msg_type, &mut [0; 32]).as_ref() {
        "text" => PushKind::Text {
            content: f.text("Content")?,
            msg_id: f.number("MsgId")?,
        },
        "image" => PushKind::Image {
            pic_url: f.text("PicUrl")?,
            media_id: f.text("MediaId")?,
            msg_id: f.number("MsgId")?,
        },
        "voice" => PushKind::Voice {
            media_id: f.text("MediaId")?,
            format: f.text("Format")?,
            recognition: f.text("Recognition"),
            msg_id: f.number("MsgId")?,
        },
        "video" => PushKind::Video {
            media_id: f.text("MediaId")?,
            thumb_media_id: f.text("ThumbMediaId")?,
            msg_id: f.number("MsgId")?,
        },
        "shortvideo" => PushKind::ShortVideo {
            media_id: f.text("MediaId")?,
            thumb_media_id: f.text("ThumbMediaId")?,
            msg_id: f.number("MsgId")?,
        },
        "location" => PushKind::Location {
            latitude: f.number("Location_X")?,
            longitude: f.number("Location_Y")?,
            scale: f.number("Scale")?,
            label: f.text("Label")?,
            msg_id: f.number("MsgId")?,
        },
        "link" => PushKind::Link {
            title: f.text("Title")?,
            description: f.text("Description")?,
            url: f.text("Url")?,
            msg_id: f.number("MsgId")?,
        },
        "event" => PushKind::Event(read_event(f)?),
        _ => return None,
    };
    Some(kind)
}

fn read_event(f: &mut Fields<'_>) -> Option<Event> {
    let event = f.text("Event")?;
    let checkpoint = f.checkpoint();
    let typed = match crate::fields::ascii_lowercase(&event, &mut [0; 32]).as_ref() {
        "subscribe" => Some(Event::Subscribe {
            event_key: f.text("EventKey"),
            ticket: f.text("Ticket"),
        }),
        "unsubscribe" => Some(Event::Unsubscribe),
        "scan" => f.text("EventKey").map(|event_key| Event::Scan {
            event_key,
            ticket: f.text("Ticket"),
        }),
        "location" => (|| {
            Some(Event::Location {
                latitude: f.number("Latitude")?,
                longitude: f.number("Longitude")?,
                precision: f.number("Precision")?,
            })
        })(),
        "click" => f
            .text("EventKey")
            .map(|event_key| Event::Click { event_key }),
        "view" => f.text("EventKey").map(|url| Event::View {
            url,
            menu_id: f.text("MenuId"),
        }),
        "templatesendjobfinish" => (|| {
            Some(Event::TemplateSendJobFinish {
                msg_id: f.number("MsgID")?,
                status: f.text("Status")?,
            })
        })(),
        _ => None,
    };
    Some(typed.unwrap_or_else(|| {
        f.rollback(checkpoint);
        Event::Unknown { event }
    }))
}

fn write_kind(w: &mut XmlWriter, kind: &PushKind) {
    match kind {
        PushKind::Text { msg_id, content } => {
            w.cdata("Content", content).number("MsgId", msg_id);
        }
        PushKind::Image {
            msg_id,
            pic_url,
            media_id,
        } => {
            w.cdata("PicUrl", pic_url)
                .cdata("MediaId", media_id)
                .number("MsgId", msg_id);
        }
        PushKind::Voice {
            msg_id,
            media_id,
            format,
            recognition,
        } => {
            w.cdata("MediaId", media_id)
                .cdata("Format", format)
                .opt_cdata("Recognition", recognition.as_deref())
                .number("MsgId", msg_id);
        }
        PushKind::Video {
            msg_id,
            media_id,
            thumb_media_id,
        }
        | PushKind::ShortVideo {
            msg_id,
            media_id,
            thumb_media_id,
        } => {
            w.cdata("MediaId", media_id)
                .cdata("ThumbMediaId", thumb_media_id)
                .number("MsgId", msg_id);
        }
        PushKind::Location {
            msg_id,
            latitude,
            longitude,
            scale,
            label,
        } => {
            w.number("Location_X", latitude)
                .number("Location_Y", longitude)
                .number("Scale", scale)
                .cdata("Label", label)
                .number("MsgId", msg_id);
        }
        PushKind::Link {
            msg_id,
            title,
            description,
            url,
        } => {
            w.cdata("Title", title)
                .cdata("Description", description)
                .cdata("Url", url)
                .number("MsgId", msg_id);
        }
        PushKind::Event(event) => write_event(w, event),
        PushKind::Unknown { .. } => {}
    }
}

fn write_event(w: &mut XmlWriter, event: &Event) {
    w.cdata("Event", event.name());
    match event {
        Event::Subscribe { event_key, ticket } => {
            w.opt_cdata("EventKey", event_key.as_deref())
                .opt_cdata("Ticket", ticket.as_deref());
        }
        Event::Scan { event_key, ticket } => {
            w.cdata("EventKey", event_key)
                .opt_cdata("Ticket", ticket.as_deref());
        }
        Event::Location {
            latitude,
            longitude,
            precision,
        } => {
            w.number("Latitude", latitude)
                .number("Longitude", longitude)
                .number("Precision", precision);
        }
        Event::Click { event_key } => {
            w.cdata("EventKey", event_key);
        }
        Event::View { url, menu_id } => {
            w.cdata("EventKey", url)
                .opt_cdata("MenuId", menu_id.as_deref());
        }
        Event::TemplateSendJobFinish { msg_id, status } => {
            w.number("MsgID", msg_id).cdata("Status", status);
        }
        Event::Unsubscribe | Event::Unknown { .. } => {}
    }
}
