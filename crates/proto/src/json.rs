//! JSON forms for the business side: a push as a flat object (what a webhook
//! receives) and replies as `{"type": "text", "content": "…"}` (what it answers).
//!
//! A push's JSON names every field in snake_case, keeps the 64-bit `msg_id` as
//! a string (JavaScript numbers stop at 2^53), and puts fields wxgate does not
//! type under `extra`, so nothing WeChat sent is lost.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::message::{Event, Push, PushKind};
use crate::xml::Element;

impl Serialize for Push {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("to_user_name", &self.to_user_name)?;
        map.serialize_entry("from_user_name", &self.from_user_name)?;
        map.serialize_entry("create_time", &self.create_time)?;
        map.serialize_entry("msg_type", self.kind.msg_type())?;
        if let Some(id) = self.msg_id() {
            map.serialize_entry("msg_id", &id.to_string())?;
        }
        kind_fields(&mut map, &self.kind)?;
        map.serialize_entry("extra", &Extra(&self.extra))?;
        map.end()
    }
}

fn kind_fields<M: SerializeMap>(map: &mut M, kind: &PushKind) -> Result<(), M::Error> {
    match kind {
        PushKind::Text { content, .. } => map.serialize_entry("content", content),
        PushKind::Image {
            pic_url, media_id, ..
        } => {
            map.serialize_entry("pic_url", pic_url)?;
            map.serialize_entry("media_id", media_id)
        }
        PushKind::Voice {
            media_id,
            format,
            recognition,
            ..
        } => {
            map.serialize_entry("media_id", media_id)?;
            map.serialize_entry("format", format)?;
            map.serialize_entry("recognition", recognition)
        }
        PushKind::Video {
            media_id,
            thumb_media_id,
            ..
        }
        | PushKind::ShortVideo {
            media_id,
            thumb_media_id,
            ..
        } => {
            map.serialize_entry("media_id", media_id)?;
            map.serialize_entry("thumb_media_id", thumb_media_id)
        }
        PushKind::Location {
            latitude,
            longitude,
            scale,
            label,
            ..
        } => {
            map.serialize_entry("latitude", latitude)?;
            map.serialize_entry("longitude", longitude)?;
            map.serialize_entry("scale", scale)?;
            map.serialize_entry("label", label)
        }
        PushKind::Link {
            title,
            description,
            url,
            ..
        } => {
            map.serialize_entry("title", title)?;
            map.serialize_entry("description", description)?;
            map.serialize_entry("url", url)
        }
        PushKind::Event(event) => event_fields(map, event),
        PushKind::Unknown { .. } => Ok(()),
    }
}

fn event_fields<M: SerializeMap>(map: &mut M, event: &Event) -> Result<(), M::Error> {
    map.serialize_entry("event", event.name())?;
    match event {
        Event::Subscribe { event_key, ticket } => {
            map.serialize_entry("event_key", event_key)?;
            map.serialize_entry("ticket", ticket)?;
            map.serialize_entry("qr_scene", &event.qr_scene())
        }
        Event::Scan { event_key, ticket } => {
            map.serialize_entry("event_key", event_key)?;
            map.serialize_entry("ticket", ticket)
        }
        Event::Location {
            latitude,
            longitude,
            precision,
        } => {
            map.serialize_entry("latitude", latitude)?;
            map.serialize_entry("longitude", longitude)?;
            map.serialize_entry("precision", precision)
        }
        Event::Click { event_key } => map.serialize_entry("event_key", event_key),
        Event::View { url, menu_id } => {
            map.serialize_entry("url", url)?;
            map.serialize_entry("menu_id", menu_id)
        }
        Event::TemplateSendJobFinish { msg_id, status } => {
            map.serialize_entry("template_msg_id", &msg_id.to_string())?;
            map.serialize_entry("status", status)
        }
        Event::Unsubscribe | Event::Unknown { .. } => Ok(()),
    }
}

/// Untyped fields as `{"Name": "text"}`, nested elements as objects, repeated
/// names as arrays (e.g. `SendPicsInfo.PicList.item`).
struct Extra<'a>(&'a [Element]);

impl Serialize for Extra<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut names: Vec<&str> = Vec::new();
        for element in self.0 {
            if !names.contains(&&*element.name) {
                names.push(&element.name);
            }
        }
        let mut map = serializer.serialize_map(Some(names.len()))?;
        for name in names {
            let same: Vec<Node<'_>> = self.0.iter().filter(|e| e.name == name).map(Node).collect();
            match same.as_slice() {
                [one] => map.serialize_entry(name, one)?,
                many => map.serialize_entry(name, many)?,
            }
        }
        map.end()
    }
}

struct Node<'a>(&'a Element);

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.children.is_empty() {
            serializer.serialize_str(&self.0.text)
        } else {
            Extra(&self.0.children).serialize(serializer)
        }
    }
}
