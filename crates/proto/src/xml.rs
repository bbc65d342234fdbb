//! A small, bounded XML reader and writer for WeChat's flat `<xml>` documents
//! (protocol reference §2.2).
//!
//! Parsing goes through quick-xml and builds a tree of [`Element`]s. It refuses
//! what WeChat never sends and attackers like: any DTD (so no entity can be
//! declared, let alone expanded), references other than the five predefined
//! entities and character references, documents over [`MAX_XML_BYTES`], nesting
//! deeper than [`MAX_DEPTH`] and more than [`MAX_ELEMENTS`] elements. Every
//! failure is an [`XmlError`] value, never a panic.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;

/// Largest document accepted, in bytes. WeChat's pushes are a few KiB; the
/// gateway bounds request bodies well below this.
pub const MAX_XML_BYTES: usize = 1 << 20;
/// Deepest nesting accepted (`<xml>` is depth 1; WeChat uses at most 4).
pub const MAX_DEPTH: usize = 8;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 1024;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Larger than [`MAX_XML_BYTES`].
    #[error("XML document is {0} bytes, over the {MAX_XML_BYTES}-byte limit")]
    TooLarge(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("XML nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// More than [`MAX_ELEMENTS`] elements.
    #[error("XML has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// A `<!DOCTYPE …>`: DTDs, and with them entity declarations, are refused.
    #[error("XML document type declarations are not allowed")]
    Doctype,
    /// An entity reference that is not one of the five predefined ones.
    #[error("XML entity reference &{0}; is not allowed")]
    Entity(String),
    /// No root element.
    #[error("XML document has no root element")]
    Empty,
    /// Content after the root element, or text outside it.
    #[error("XML has content outside the root element")]
    OutsideRoot,
    /// Not well-formed.
    #[error("malformed XML: {0}")]
    Syntax(String),
}

/// One element: its name, its text (CDATA and text joined, references
/// resolved) and its child elements. Attributes are ignored: WeChat sends none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The element's name, case preserved. The names WeChat uses are
    /// borrowed from a static list rather than allocated for every element read.
    pub name: Cow<'static, str>,
    /// Text content; for elements with children, the text between them is dropped.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// A leaf element holding `text`.
    pub fn leaf(name: impl Into<Cow<'static, str>>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            children: Vec::new(),
        }
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document and returns its root element.
///
/// A document in WeChat's own shape ([`read_plain`]) is read without
/// quick-xml, at about a quarter of the cost; anything else, and every
/// error, goes through quick-xml ([`read_general`]).
pub fn parse(xml: &str) -> Result<Element, XmlError> {
    read(xml, &mut Tree, |root| root, |root| root)
}

/// The text of the root's first child named `name` (`None` without one),
/// as `parse(xml)?.child_text(name)` gives it, and refusing what [`parse`]
/// refuses; for a document in WeChat's shape, read without building the
/// tree and borrowed from `xml` (an envelope's `Encrypt`, not copied).
pub fn root_child_text<'x>(
    xml: &'x str,
    name: &'static str,
) -> Result<Option<Cow<'x, str>>, XmlError> {
    read(
        xml,
        &mut ChildText(name),
        |root| root.found.map(Cow::Borrowed),
        |root| {
            root.child_text(name)
                .map(|text| Cow::Owned(text.to_owned()))
        },
    )
}

/// Reads `xml` plainly with `build` if it is in WeChat's shape, else with
/// quick-xml; `plain` or `general` makes the answer of each's root.
fn read<'x, B: Build<'x>, T>(
    xml: &'x str,
    build: &mut B,
    plain: impl FnOnce(B::Node) -> T,
    general: impl FnOnce(Element) -> T,
) -> Result<T, XmlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge(xml.len()));
    }
    // One pass over the document decides whether its text needs filtering.
    let dirty = has_forbidden(xml.as_bytes());
    if !dirty {
        if let Some(root) = read_plain(xml, build) {
            return Ok(plain(root));
        }
    }
    read_general(xml, dirty).map(general)
}

/// What the plain reader makes of the elements it reads.
trait Build<'x> {
    type Node;
    fn leaf(&mut self, name: Cow<'static, str>, text: &'x str) -> Self::Node;
    fn parent(&mut self, name: Cow<'static, str>) -> Self::Node;
    fn name(node: &Self::Node) -> &str;
    /// `child`, read in full, is `parent`'s next child.
    fn adopt(&mut self, parent: &mut Self::Node, child: Self::Node);
}

/// The whole tree, as [`parse`] returns it.
struct Tree;

impl<'x> Build<'x> for Tree {
    type Node = Element;

    fn leaf(&mut self, name: Cow<'static, str>, text: &'x str) -> Element {
        Element::leaf(name, text)
    }

    fn parent(&mut self, name: Cow<'static, str>) -> Element {
        Element {
            name,
            text: String::new(),
            children: Vec::with_capacity(8),
        }
    }

    fn name(node: &Element) -> &str {
        &node.name
    }

    fn adopt(&mut self, parent: &mut Element, child: Element) {
        parent.children.push(child);
    }
}

/// Of each element, only the text of its first child named `.0`.
struct ChildText(&'static str);

/// An element as [`ChildText`] reads it.
struct Found<'x> {
    name: Cow<'static, str>,
    text: &'x str,
    found: Option<&'x str>,
}

impl<'x> Build<'x> for ChildText {
    type Node = Found<'x>;

    fn leaf(&mut self, name: Cow<'static, str>, text: &'x str) -> Found<'x> {
        Found {
            name,
            text,
            found: None,
        }
    }

    fn parent(&mut self, name: Cow<'static, str>) -> Found<'x> {
        self.leaf(name, "")
    }

    fn name<'n>(node: &'n Found<'x>) -> &'n str {
        &node.name
    }

    fn adopt(&mut self, parent: &mut Found<'x>, child: Found<'x>) {
        if parent.found.is_none() && child.name == self.0 {
            parent.found = Some(child.text);
        }
    }
}

/// The XML whitespace between elements.
fn is_layout(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n')
}

/// `xml` read as the tree [`read_general`] would read, if it is in the shape
/// WeChat writes: one root, no declaration, comment, DTD or attribute, each
/// element holding either one CDATA section, or text without references, or
/// child elements with only layout between them, no `\r` and no `]` in plain
/// text. `None` for anything else, which [`read_general`] reads (or refuses)
/// instead: this reader never refuses, so it holds no error handling of
/// its own, only the shape it accepts. The caller has checked the size and
/// that no character XML forbids is there. Its tests check it against
/// quick-xml's reading on the fuzz corpus and on mutated documents.
fn read_plain<'x, B: Build<'x>>(xml: &'x str, build: &mut B) -> Option<B::Node> {
    let bytes = xml.as_bytes();
    if memchr::memchr(b'\r', bytes).is_some() {
        return None; // Line ends: left to the general reader.
    }
    let skip_layout = |mut at: usize| {
        while bytes.get(at).copied().is_some_and(is_layout) {
            at += 1;
        }
        at
    };
    let mut stack: Vec<B::Node> = Vec::with_capacity(4);
    let mut count = 0usize;
    let mut at = skip_layout(0);
    loop {
        // Every step starts at a tag: a start tag, or an end tag.
        if bytes.get(at) != Some(&b'<') {
            return None;
        }
        at += 1;
        // Names are short: a plain loop beats a vector search's set-up.
        let close = at + bytes.get(at..)?.iter().position(|&b| b == b'>')?;
        let tag = bytes.get(at..close)?;
        at = close + 1;
        if let Some(name) = tag.strip_prefix(b"/") {
            let element = stack.pop()?;
            if B::name(&element).as_bytes() != name {
                return None;
            }
            match stack.last_mut() {
                Some(parent) => build.adopt(parent, element),
                None => return (skip_layout(at) == bytes.len()).then_some(element),
            }
            at = skip_layout(at);
            continue;
        }
        if matches!(tag.first(), Some(b'!' | b'?') | None) || tag.last() == Some(&b'/') {
            return None; // A comment, DTD, declaration, CDATA out of place, or `<a/>`.
        }
        count += 1;
        if count > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
            return None;
        }
        // An attribute, or a name XML refuses: the general reader's business.
        let name = name_of(xml, tag).ok()?;
        let rest = bytes.get(at..)?;
        let element = if let Some(data) = rest.strip_prefix(b"<![CDATA[") {
            let end = cdata_end(data)?;
            let text = xml.get(at + 9..at + 9 + end)?;
            at += 9 + end + 3;
            if !bytes.get(at..)?.starts_with(b"</") {
                return None;
            }
            build.leaf(name, text)
        } else {
            // Plain text is short (numbers, layout): one loop finds its
            // end and any reference or `]`.
            let mut plain = true;
            let lt = at
                + rest.iter().position(|&b| {
                    plain &= b != b'&' && b != b']';
                    b == b'<'
                })?;
            let text = xml.get(at..lt)?;
            if bytes.get(lt + 1) == Some(&b'/') {
                if !plain {
                    return None;
                }
                at = lt;
                build.leaf(name, text)
            } else {
                if !text.bytes().all(is_layout) {
                    return None;
                }
                at = lt;
                build.parent(name)
            }
        };
        stack.push(element);
    }
}

/// Where `]]>` starts in `data`, a CDATA section's content and what follows.
fn cdata_end(data: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + memchr::memchr(b']', data.get(from..)?)?;
        if data.get(at + 1..at + 3) == Some(b"]>") {
            return Some(at);
        }
        from = at + 1;
    }
}

/// Reads any document through quick-xml: references, comments, declarations,
/// mixed content, and every refusal.
fn read_general(xml: &str, dirty: bool) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut count = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Syntax(e.to_string()))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(XmlError::OutsideRoot);
            }
            Event::Start(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                forget_layout_text(&mut stack);
                stack.push(Element::leaf(name_of(xml, start.name().as_ref())?, ""));
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                forget_layout_text(&mut stack);
                let element = Element::leaf(name_of(xml, start.name().as_ref())?, "");
                close(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                let mut element = stack.pop().ok_or(XmlError::OutsideRoot)?;
                if !element.children.is_empty() {
                    element.text = element.text.trim().to_owned();
                }
                close(&mut stack, &mut root, element)?;
            }
            Event::Text(text) => {
                let text = match within(xml, &text) {
                    Some(text) => std::borrow::Cow::Borrowed(text),
                    None => text.decode().map_err(|e| XmlError::Syntax(e.to_string()))?,
                };
                append_text(&mut stack, &text, dirty)?;
            }
            Event::CData(data) => {
                let text = match within(xml, &data) {
                    Some(text) => std::borrow::Cow::Borrowed(text),
                    None => data.decode().map_err(|e| XmlError::Syntax(e.to_string()))?,
                };
                append_text(&mut stack, &text, dirty)?;
            }
            Event::GeneralRef(reference) => {
                let text = resolve_reference(&reference)?;
                append_text(&mut stack, &text, true)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("unclosed element at end of input".into()));
    }
    root.ok_or(XmlError::Empty)
}

/// The element names of WeChat's pushes, replies and envelopes (sorted, so a
/// test sees that none is there twice): an element so named borrows its name.
pub(crate) const KNOWN_NAMES: &[&str] = &[
    "AgentID",
    "AppId",
    "ArticleCount",
    "Articles",
    "AuthorizationCode",
    "AuthorizationCodeExpiredTime",
    "AuthorizerAppid",
    "ComponentVerifyTicket",
    "Content",
    "Count",
    "CreateTime",
    "Description",
    "Encrypt",
    "ErrorCount",
    "Event",
    "EventKey",
    "FilterCount",
    "Format",
    "FromUserName",
    "HQMusicUrl",
    "Image",
    "InfoType",
    "KfAccount",
    "Label",
    "Latitude",
    "Location_X",
    "Location_Y",
    "Longitude",
    "MediaId",
    "MenuId",
    "MsgID",
    "MsgId",
    "MsgSignature",
    "MsgType",
    "Music",
    "MusicUrl",
    "Nonce",
    "PicList",
    "PicMd5Sum",
    "PicUrl",
    "Poiname",
    "PreAuthCode",
    "Precision",
    "Recognition",
    "Scale",
    "ScanCodeInfo",
    "ScanResult",
    "ScanType",
    "SendCount",
    "SendLocationInfo",
    "SendPicsInfo",
    "SentCount",
    "Status",
    "ThumbMediaId",
    "Ticket",
    "TimeStamp",
    "Title",
    "ToUserName",
    "TotalCount",
    "TransInfo",
    "Url",
    "Video",
    "Voice",
    "item",
    "xml",
];

/// Slots of the open-addressing table of [`KNOWN_NAMES`], four times as many
/// as names, so a lookup probes one or two.
const NAME_SLOTS: usize = 256;
const NO_NAME: u8 = u8::MAX;

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a of a name, reduced to a slot.
const fn name_slot(bytes: &[u8]) -> usize {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u32).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash as usize % NAME_SLOTS
}

/// The bytes an ASCII XML name may hold after its first: letters, digits,
/// `_`, `-`, `.` and `:`.
const ASCII_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':');
        b += 1;
    }
    table
};

/// Each slot holds the index in [`KNOWN_NAMES`] of the name hashed there
/// (or probed on to it), [`NO_NAME`] where none is; built at compile time.
const NAME_TABLE: [u8; NAME_SLOTS] = {
    assert!(KNOWN_NAMES.len() < NAME_SLOTS / 2);
    let mut table = [NO_NAME; NAME_SLOTS];
    let mut i = 0;
    while i < KNOWN_NAMES.len() {
        let mut slot = name_slot(KNOWN_NAMES[i].as_bytes());
        while table[slot] != NO_NAME {
            slot = (slot + 1) % NAME_SLOTS;
        }
        table[slot] = i as u8;
        i += 1;
    }
    table
};

/// The static copy of `name`, whose slot is `slot`, when it is one of
/// [`KNOWN_NAMES`]: usually one comparison, cheaper than allocating a copy.
fn known_name(name: &str, mut slot: usize) -> Option<&'static str> {
    loop {
        let index = NAME_TABLE[slot];
        if index == NO_NAME {
            return None;
        }
        let known = KNOWN_NAMES[usize::from(index)];
        if known == name {
            return Some(known);
        }
        slot = (slot + 1) % NAME_SLOTS;
    }
}

/// `part` as the `&str` it is when it is a slice of `whole`, as what a reader
/// over `whole` hands out borrowed is: its UTF-8 was checked with `whole`'s,
/// only its ends are checked to be character boundaries. `None` for bytes
/// from anywhere else (or cut inside a character).
fn within<'a>(whole: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    whole.get(start..start.checked_add(part.len())?)
}

/// Element names must be XML names (a letter or `_` first, then letters,
/// digits, `_`, `-`, `.` or `:`); quick-xml itself lets `<@a/>` through.
fn name_of(xml: &str, raw: &[u8]) -> Result<Cow<'static, str>, XmlError> {
    let invalid = || {
        XmlError::Syntax(format!(
            "invalid element name {:?}",
            String::from_utf8_lossy(raw)
        ))
    };
    let name = match within(xml, raw) {
        Some(name) => name,
        None => std::str::from_utf8(raw).map_err(|_| invalid())?,
    };
    // WeChat's names are ASCII: check those without decoding characters,
    // hashing them for the known names in the same pass.
    let mut ascii = raw
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
    let mut hash = FNV_OFFSET;
    for &b in raw {
        ascii &= ASCII_NAME_BYTE[usize::from(b)];
        hash = (hash ^ u32::from(b)).wrapping_mul(FNV_PRIME);
    }
    if ascii {
        return Ok(match known_name(name, hash as usize % NAME_SLOTS) {
            Some(known) => Cow::Borrowed(known),
            None => Cow::Owned(name.to_owned()),
        });
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')) {
        Ok(Cow::Owned(name.to_owned()))
    } else {
        Err(invalid())
    }
}

/// A child is starting: its parent's text so far, if only whitespace, is
/// layout that the parent's final trim would drop anyway. Dropping it now
/// (keeping the buffer) stops the newlines between a flat document's
/// elements from growing the root's text.
fn forget_layout_text(stack: &mut [Element]) {
    if let Some(parent) = stack.last_mut() {
        if parent.text.trim().is_empty() {
            parent.text.clear();
        }
    }
}

fn close(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            // A push's root has 5 to 10 fields: room for 8 at once, not 4
            // and then 8.
            if parent.children.capacity() == 0 {
                parent.children.reserve(8);
            }
            parent.children.push(element);
        }
        None if root.is_none() => *root = Some(element),
        None => return Err(XmlError::OutsideRoot),
    }
    Ok(())
}

/// With `filter`, characters XML 1.0 forbids (quick-xml lets them through,
/// raw or as character references like `&#xFFFE;`) are dropped, as the
/// writer drops them, so what is read is what would be written back.
#[inline]
fn append_text(stack: &mut [Element], text: &str, filter: bool) -> Result<(), XmlError> {
    let text = if filter {
        xml_text(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    match stack.last_mut() {
        Some(element) => element.text.push_str(&text),
        None if text.trim().is_empty() => {}
        None => return Err(XmlError::OutsideRoot),
    }
    Ok(())
}

fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, XmlError> {
    if let Some(ch) = reference
        .resolve_char_ref()
        .map_err(|e| XmlError::Syntax(e.to_string()))?
    {
        return Ok(ch.to_string());
    }
    let name = reference
        .decode()
        .map_err(|e| XmlError::Syntax(e.to_string()))?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| XmlError::Entity(name.into_owned()))
}

/// Whether XML 1.0 allows `c` in a document (`Char` production:
/// `#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`;
/// a Rust `char` is never a surrogate).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text` without the characters XML 1.0 forbids. Borrowed, without
/// allocating, when there are none (the common case).
pub fn xml_text(text: &str) -> std::borrow::Cow<'_, str> {
    if !has_forbidden(text.as_bytes()) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.chars().filter(|&c| is_xml_char(c)).collect())
}

/// Whether UTF-8 `bytes` hold a character XML forbids: the only ones a `str`
/// can hold are the C0 controls but tab, newline and carriage return, and
/// U+FFFE/U+FFFF (`EF BF BE`/`EF BF BF`). The writer runs this on every
/// value and the parser once per document, so the common case is a clean
/// text: its smallest and largest bytes (a reduction the compiler runs 16
/// bytes at a time) say whether it holds any control, or any 0xEF byte,
/// at all. Only then are the bytes looked at one by one, or memchr sent to
/// the 0xEF bytes (full-width punctuation has one too; most Chinese text
/// none) that might start one of the two noncharacters.
fn has_forbidden(bytes: &[u8]) -> bool {
    let (smallest, largest) = (bytes.iter()).fold((u8::MAX, 0), |(smallest, largest), &b| {
        (smallest.min(b), largest.max(b))
    });
    let control = |&b: &u8| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r');
    smallest < 0x20 && bytes.iter().any(control)
        || largest >= 0xEF
            && memchr::memchr_iter(0xEF, bytes).any(|i| {
                bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
            })
}

/// Builds a WeChat-style document: strings as CDATA, numbers bare.
#[derive(Debug, Default)]
pub(crate) struct XmlWriter {
    out: String,
}

impl XmlWriter {
    pub(crate) fn new() -> Self {
        // Room for a typical reply or push, so writing one does not reallocate.
        let mut out = String::with_capacity(512);
        out.push_str("<xml>");
        Self { out }
    }

    /// `<name><![CDATA[value]]></name>`, splitting any `]]>` inside the value.
    pub(crate) fn cdata(&mut self, name: &str, value: &str) -> &mut Self {
        let value = xml_text(value);
        // Most values have no `]` at all: no `]]>` to split, and the
        // element goes out in a few appends (every reply and envelope
        // field is written here).
        if memchr::memchr(b']', value.as_bytes()).is_none() {
            let out = &mut self.out;
            out.reserve(2 * name.len() + value.len() + "<><![CDATA[]]></>".len());
            out.push('<');
            out.push_str(name);
            out.push_str("><![CDATA[");
            out.push_str(&value);
            out.push_str("]]></");
            out.push_str(name);
            out.push('>');
            return self;
        }
        self.open(name).cdata_sections(&value).close(name)
    }

    /// Characters XML 1.0 forbids are dropped first (a webhook's text may
    /// carry NUL or U+FFFE), then `]]>` is split, so stripping cannot forge a
    /// terminator.
    fn raw_cdata(&mut self, value: &str) -> &mut Self {
        self.cdata_sections(&xml_text(value))
    }

    /// `value`, already without forbidden characters, as CDATA, split
    /// wherever it holds `]]>`.
    fn cdata_sections(&mut self, value: &str) -> &mut Self {
        self.out.push_str("<![CDATA[");
        if memchr::memchr(b']', value.as_bytes()).is_none() {
            self.out.push_str(value);
            self.out.push_str("]]>");
            return self;
        }
        let mut parts = value.split("]]>");
        self.out.push_str(parts.next().unwrap_or_default());
        for part in parts {
            self.out.push_str("]]]]><![CDATA[>");
            self.out.push_str(part);
        }
        self.out.push_str("]]>");
        self
    }

    /// `<name>value</name>` for numbers.
    pub(crate) fn number(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        use std::fmt::Write as _;
        self.open(name);
        write!(self.out, "{value}").expect("writing to a String cannot fail");
        self.close(name)
    }

    /// `<name>value</name>` for an integer: [`Self::number`] without the
    /// formatting machinery, for the `CreateTime` of every reply.
    pub(crate) fn integer(&mut self, name: &str, value: u64) -> &mut Self {
        self.open(name);
        self.out.push_str(itoa::Buffer::new().format(value));
        self.close(name)
    }

    /// A CDATA element only when `value` is present.
    pub(crate) fn opt_cdata(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.cdata(name, value);
        }
        self
    }

    /// Writes an element tree as-is: leaves as CDATA.
    pub(crate) fn element(&mut self, element: &Element) -> &mut Self {
        if element.children.is_empty() {
            return self.cdata(&element.name, &element.text);
        }
        self.open(&element.name);
        if !element.text.is_empty() {
            self.raw_cdata(&element.text);
        }
        for child in &element.children {
            self.element(child);
        }
        self.close(&element.name)
    }

    pub(crate) fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    pub(crate) fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</xml>");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`parse`] relies on: where the plain reader reads a document,
    /// quick-xml reads the same tree.
    fn plain_agrees(xml: &str) -> bool {
        // Whichever reader reads it: a child's text as the tree has it.
        let tree = parse(xml);
        for name in ["Encrypt", "ToUserName", "A", "a", "b"] {
            let text = tree.as_ref().map_err(Clone::clone);
            assert_eq!(
                root_child_text(xml, name).map(|text| text.map(Cow::into_owned)),
                text.map(|root| root.child_text(name).map(str::to_owned)),
                "{name} of {xml:?}"
            );
        }
        if xml.len() > MAX_XML_BYTES || has_forbidden(xml.as_bytes()) {
            return false;
        }
        let Some(plain) = read_plain(xml, &mut Tree) else {
            return false;
        };
        assert_eq!(Ok(plain), read_general(xml, false), "{xml:?}");
        true
    }

    /// Documents in WeChat's shape: a push with nested fields, an envelope,
    /// a leaf root, layout around and between elements, names outside the
    /// known list, non-ASCII text and names.
    const SHAPED: &[&str] = &[
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 ]] <> a]]></Content><MsgId>1234567890123456</MsgId></xml>",
        "<xml>\n  <ToUserName><![CDATA[gh_1]]></ToUserName>\n  <Encrypt><![CDATA[abc/+=]]></Encrypt>\n</xml>\n",
        "<xml><Event><![CDATA[scancode_push]]></Event><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult>1 > 0</ScanResult></ScanCodeInfo><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[x]]></PicMd5Sum></item></PicList></SendPicsInfo></xml>",
        "<root>text</root>",
        "<xml><Empty></Empty><Spaced> a </Spaced><名字>值</名字><_x.y-z:w>1</_x.y-z:w></xml>",
        "\t<a>\n\t<b><![CDATA[]]></b>\n</a>",
    ];

    #[test]
    fn the_plain_reader_reads_wechats_shape_as_quick_xml_does() {
        for xml in SHAPED {
            assert!(plain_agrees(xml), "not read by the plain reader: {xml}");
        }
    }

    #[test]
    fn the_plain_reader_leaves_every_other_shape_to_quick_xml() {
        for xml in [
            "<?xml version=\"1.0\"?><xml/>",
            "<xml><!-- c --><A>1</A></xml>",
            "<xml><A>1 &lt; 2</A></xml>",
            "<xml><A>a]]>b</A></xml>",
            "<xml><A x=\"1\">1</A></xml>",
            "<xml><A/></xml>",
            "<xml><A>1</A >x</xml>",
            "<xml><A>1</B></xml>",
            "<xml><A> <![CDATA[x]]></A></xml>",
            "<xml><A><![CDATA[x]]> </A></xml>",
            "<xml>text<A>1</A></xml>",
            "<xml><A>1</A>text</xml>",
            "<xml><A>\r\n</A></xml>",
            "<xml><A>1</A></xml>junk",
            "<xml><A>1</A></xml><xml/>",
            "\u{feff}<xml/>",
            "<xml><@a>1</@a></xml>",
            "<xml><A>1</A>",
            "",
        ] {
            assert!(
                read_plain(xml, &mut Tree).is_none(),
                "read by the plain reader: {xml:?}"
            );
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(read_plain(&deep, &mut Tree).is_none());
        let many = format!("<xml>{}</xml>", "<a>1</a>".repeat(MAX_ELEMENTS));
        assert!(read_plain(&many, &mut Tree).is_none());
        let most = format!("<xml>{}</xml>", "<a>1</a>".repeat(MAX_ELEMENTS - 1));
        assert!(plain_agrees(&most));
    }

    /// Every saved fuzz input, and every one-byte change (replace, insert,
    /// delete) of the shaped documents with the bytes XML's syntax turns
    /// on: wherever the plain reader reads, it reads what quick-xml reads.
    #[test]
    fn the_plain_reader_agrees_with_quick_xml_on_the_corpus_and_on_mutations() {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/push");
        let (mut inputs, mut plain) = (0, 0);
        for entry in std::fs::read_dir(&corpus).expect("the push corpus") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            inputs += 1;
            plain += usize::from(plain_agrees(&String::from_utf8_lossy(&data)));
        }
        assert!(
            inputs > 1000 && plain > 30,
            "{plain} of {inputs} read plainly"
        );
        let specials = b"<>/!?&];[ \n\r\tCDA=\"x\xc3";
        let mut read = 0;
        for xml in SHAPED {
            let bytes = xml.as_bytes();
            for at in 0..=bytes.len() {
                for &b in specials {
                    let mut changed = Vec::with_capacity(bytes.len() + 1);
                    for variant in 0..3 {
                        changed.clear();
                        changed.extend_from_slice(&bytes[..at]);
                        match variant {
                            0 if at < bytes.len() => changed.push(b),
                            1 => changed.push(b),
                            2 if at < bytes.len() && b == b'<' => {}
                            _ => continue,
                        }
                        let tail = if variant == 1 { at } else { at + 1 };
                        changed.extend_from_slice(bytes.get(tail..).unwrap_or_default());
                        if let Ok(text) = std::str::from_utf8(&changed) {
                            read += usize::from(plain_agrees(text));
                        }
                    }
                }
            }
        }
        assert!(read > 1000, "only {read} mutations read plainly");
    }

    #[test]
    fn a_root_childs_text_is_the_first_of_that_name_among_the_roots_children() {
        for (xml, expected) in [
            ("<xml><A>1</A><A>2</A></xml>", Some("1")),
            ("<xml><b><A>3</A></b><A>4</A></xml>", Some("4")),
            ("<xml><b><A>3</A></b></xml>", None),
            ("<xml><A><c>1</c></A><A>2</A></xml>", Some("")),
            ("<xml><A><![CDATA[a]]></A></xml>", Some("a")),
            ("<A>1</A>", None),
        ] {
            let text = root_child_text(xml, "A").unwrap();
            assert_eq!(text.as_deref(), expected, "{xml}");
            assert!(plain_agrees(xml), "{xml}");
            assert!(
                matches!(text, None | Some(Cow::Borrowed(_))),
                "copied: {xml}"
            );
        }
        // What the plain reader leaves to quick-xml is read there, and copied.
        let text = root_child_text("<xml><A>1 &lt; 2</A></xml>", "A").unwrap();
        assert!(matches!(text, Some(Cow::Owned(ref t)) if t == "1 < 2"));
        assert!(root_child_text("<xml><A>1</B></xml>", "A").is_err());
    }

    #[test]
    fn reads_cdata_text_and_predefined_references() {
        let root = parse(
            "<?xml version=\"1.0\"?>\n<xml> <A><![CDATA[ a]]>b</A>\n<B>1 &lt; 2 &#x4F60;</B><C/></xml>",
        )
        .unwrap();
        assert_eq!(root.name, "xml");
        assert_eq!(root.child_text("A"), Some(" ab"));
        assert_eq!(root.child_text("B"), Some("1 < 2 你"));
        assert_eq!(root.child_text("C"), Some(""));
    }

    #[test]
    fn layout_between_children_is_dropped_but_leaf_whitespace_kept() {
        let root = parse("<xml>\n  <A> </A>\n  text \n<B/>\n</xml>").unwrap();
        assert_eq!(root.text, "text");
        assert_eq!(root.child_text("A"), Some(" "));
        assert_eq!(parse("<xml>\n<A>1</A>\n</xml>").unwrap().text, "");
    }

    #[test]
    fn refuses_dtds_and_custom_entities() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><xml><A>&lol2;</A></xml>";
        assert_eq!(parse(bomb), Err(XmlError::Doctype));
        assert_eq!(
            parse("<xml><A>&xxe;</A></xml>"),
            Err(XmlError::Entity("xxe".into()))
        );
    }

    #[test]
    fn refuses_malformed_and_unbounded_documents() {
        assert!(matches!(parse("<xml><A></xml>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<xml><A>"), Err(XmlError::Syntax(_))));
        assert_eq!(parse(""), Err(XmlError::Empty));
        assert_eq!(parse("<xml/><xml/>"), Err(XmlError::OutsideRoot));
        assert_eq!(parse("junk<xml/>"), Err(XmlError::OutsideRoot));
        assert!(matches!(
            parse("<xml><@a/></xml>"),
            Err(XmlError::Syntax(_))
        ));
        assert!(matches!(parse("<1a/>"), Err(XmlError::Syntax(_))));
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), Err(XmlError::TooDeep));
        let wide = format!("<xml>{}</xml>", "<a/>".repeat(MAX_ELEMENTS));
        assert_eq!(parse(&wide), Err(XmlError::TooManyElements));
        let big = " ".repeat(MAX_XML_BYTES + 1);
        assert_eq!(parse(&big), Err(XmlError::TooLarge(MAX_XML_BYTES + 1)));
    }

    /// The block-wise pass finds what a character-by-character check finds,
    /// wherever the character is, in a block or in the padded tail.
    #[test]
    fn has_forbidden_agrees_with_the_character_rule_at_every_place() {
        let reference = |s: &str| !s.chars().all(is_xml_char);
        let samples = [
            "\u{0}", "\u{1f}", "\u{b}", "\u{fffe}", "\u{ffff}", "\t", "\n", "\r", "\u{ff0c}",
            "\u{fffd}", "é",
        ];
        for len in 0..40 {
            for at in 0..=len {
                for sample in samples {
                    let text = format!("{}{sample}{}", "a".repeat(at), "b".repeat(len - at));
                    assert_eq!(has_forbidden(text.as_bytes()), reference(&text), "{text:?}");
                }
            }
            let clean = "x".repeat(len);
            assert!(!has_forbidden(clean.as_bytes()));
        }
    }

    #[test]
    fn characters_xml_forbids_are_dropped_when_writing() {
        let mut w = XmlWriter::new();
        w.cdata(
            "Content",
            "a\u{0}b\u{1}c\u{fffe}d\u{ffff}e]]\u{0}>f\t\n\u{10000}，",
        );
        let xml = w.finish();
        assert!(xml.chars().all(is_xml_char), "{xml:?}");
        let root = parse(&xml).unwrap();
        assert_eq!(root.child_text("Content"), Some("abcde]]>f\t\n\u{10000}，"));
        // Read the same way, raw or as character references.
        let root = parse("<xml><A>a\u{1}b\u{0}c&#xFFFE;d</A></xml>").unwrap();
        assert_eq!(root.child_text("A"), Some("abcd"));
        // Nothing to drop: borrowed, not copied.
        assert!(matches!(
            xml_text("你好，world\u{fffd}"),
            std::borrow::Cow::Borrowed(_)
        ));
        for c in ['\u{0}', '\u{8}', '\u{b}', '\u{1f}', '\u{fffe}', '\u{ffff}'] {
            assert!(!is_xml_char(c), "{c:?}");
            assert_eq!(xml_text(&format!("x{c}y")), "xy");
            // At every offset against the 16-byte blocks, across their edges too.
            for pad in 0..40 {
                let text = format!("{}{c}，\n{}", "a".repeat(pad), "b".repeat(pad));
                let expected = format!("{}，\n{}", "a".repeat(pad), "b".repeat(pad));
                assert_eq!(xml_text(&text), expected, "{pad}");
            }
        }
        let clean = format!("{}\u{fffd}\u{ffef}，\t\r\n", "a".repeat(30));
        assert!(matches!(xml_text(&clean), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn within_finds_slices_of_the_document_only() {
        let doc = "<a>你好</a>";
        let bytes = doc.as_bytes();
        assert_eq!(within(doc, &bytes[3..9]), Some("你好"));
        assert_eq!(within(doc, &bytes[..0]), Some(""));
        assert_eq!(within(doc, bytes), Some(doc));
        // Cut inside a character, past the end, or another buffer: not found.
        assert_eq!(within(doc, &bytes[3..5]), None);
        assert_eq!(within(&doc[..6], &bytes[3..9]), None);
        let copy = bytes[3..9].to_vec();
        assert_eq!(within(doc, &copy), None);
        assert_eq!(within(&doc[6..], &bytes[3..9]), None);
    }

    #[test]
    fn the_ascii_name_table_is_the_name_rule() {
        for b in 0..=255u8 {
            let rule = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
            assert_eq!(ASCII_NAME_BYTE[usize::from(b)], rule, "{b}");
        }
        for name in ["a", "_", "a-b.c:d_9", "Z"] {
            assert!(parse(&format!("<{name}/>")).is_ok(), "{name}");
        }
        for name in ["-a", ".a", "9", "a@b", "a\u{80}"] {
            assert!(parse(&format!("<xml><{name}/></xml>")).is_err(), "{name}");
        }
    }

    #[test]
    fn known_names_are_sorted_valid_and_borrowed_when_read() {
        assert!(KNOWN_NAMES.windows(2).all(|w| w[0] < w[1]));
        for name in KNOWN_NAMES {
            let doc = format!("<xml><{name}>v</{name}><{name}x/></xml>");
            let root = parse(&doc).unwrap();
            let read = &root.children[0];
            assert!(
                matches!(read.name, Cow::Borrowed(n) if n == *name),
                "{name}"
            );
            assert_eq!(read.text, "v");
            // A name that only starts like a known one is owned.
            let other = &root.children[1];
            assert!(matches!(other.name, Cow::Owned(ref n) if *n == format!("{name}x")));
        }
        assert!(matches!(
            parse("<xml/>").unwrap().name,
            Cow::Borrowed("xml")
        ));
        // Names are case-sensitive: no known one is borrowed for another case.
        assert!(matches!(parse("<XML/>").unwrap().name, Cow::Owned(_)));
    }

    #[test]
    fn cdata_terminators_inside_values_survive_a_round_trip() {
        for (value, read) in [
            ("a]]>b<c>&", "a]]>b<c>&"),
            ("]]>", "]]>"),
            ("x]", "x]"),
            // Dropping what XML forbids cannot forge a terminator.
            ("a]]\u{0}>b", "a]]>b"),
            ("a]\u{1}]>\u{fffe}", "a]]>"),
        ] {
            let mut w = XmlWriter::new();
            w.cdata("Content", value);
            let root = parse(&w.finish()).unwrap();
            assert_eq!(root.child_text("Content"), Some(read), "{value:?}");
        }
    }
}
