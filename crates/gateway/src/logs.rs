//! How log lines show values: text that came from outside (a path, an
//! upstream's `errmsg`, a webhook's error) can hold newlines or terminal
//! escapes, which in a line-based log would forge lines or repaint a
//! terminal. The human format shows every value with control characters
//! escaped and cut at [`MAX_VALUE_CHARS`]; the JSON format escapes by itself.
//!
//! Every line logged while a request is answered carries its id
//! ([`in_request`]). The id is a task-local, not a tracing span: a span
//! costs its registry entry, the formatting of its fields, and an enter and
//! exit on every poll, about 4,800 instructions per request
//! (`bench/RESULTS.md`), whether a line is logged or not. [`Lines`] writes
//! the id where a span's fields would be, so the lines read as before.

use std::fmt::Write as _;
use std::future::Future;

use tracing::{Event, Subscriber};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Format, Full, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Longest value shown, in characters; the rest is counted, not shown.
pub const MAX_VALUE_CHARS: usize = 1024;

/// The field formatter of the human log format: `name=value` pairs
/// separated by spaces, the message bare, every value passed through [`escaped`].
pub fn fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let raw = format!("{value:?}");
            let text = escaped(&raw);
            if field.name() == "message" {
                w.write_str(&text)
            } else {
                write!(w, "{}={text}", field.name())
            }
        },
    )
    .delimited(" ")
}

/// `text` with control characters (newlines, ESC, NUL…) and bidirectional
/// overrides escaped as `\u{…}`, cut after [`MAX_VALUE_CHARS`] characters.
pub fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let long = text.len() > MAX_VALUE_CHARS && text.chars().count() > MAX_VALUE_CHARS;
    if !long && !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MAX_VALUE_CHARS * 2));
    for (shown, c) in text.chars().enumerate() {
        if shown == MAX_VALUE_CHARS {
            let rest = text.chars().count() - shown;
            let _ = write!(out, "…({rest} more characters)");
            break;
        }
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Longest request id kept, bytes (a longer caller's id is replaced).
pub const MAX_REQUEST_ID: usize = 64;

/// A request's id: up to [`MAX_REQUEST_ID`] plain characters
/// (letters, digits, `-_.:`), held inline so a task can carry it for free.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_REQUEST_ID],
}

impl RequestId {
    /// `id` if it is a sane request id: not empty, at most
    /// [`MAX_REQUEST_ID`] bytes, only letters, digits and `-_.:`.
    pub fn new(id: &[u8]) -> Option<Self> {
        let plain = |&b: &u8| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':');
        if id.is_empty() || id.len() > MAX_REQUEST_ID || !id.iter().all(plain) {
            return None;
        }
        let mut bytes = [0; MAX_REQUEST_ID];
        bytes[..id.len()].copy_from_slice(id);
        Some(Self {
            len: id.len() as u8,
            bytes,
        })
    }

    /// `n` as 16 lowercase hex digits: an id wxgate makes (plain by construction).
    pub fn hex(n: u64) -> Self {
        let mut bytes = [0; MAX_REQUEST_ID];
        hex::encode_to_slice(n.to_be_bytes(), &mut bytes[..16]).expect("16 bytes hold 8 in hex");
        Self { len: 16, bytes }
    }

    /// The id's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)])
            .expect("a request id is checked to be ASCII")
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    static REQUEST: RequestId;
}

/// `answer`, run as the answer to request `id`: every line it logs carries the id.
///
/// Not an `async fn`: one would hold `answer` twice, as its argument and
/// inside the scope it awaits, and a request's future is moved whole.
pub fn in_request<F: Future>(id: RequestId, answer: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(id, answer)
}

/// `log`, run as part of the answer to request `id` (a line logged once
/// the answer is ready): what it logs carries the id.
pub fn with_request<R>(id: RequestId, log: impl FnOnce() -> R) -> R {
    REQUEST.sync_scope(id, log)
}

/// The id of the request being answered, if any.
pub fn request_id() -> Option<RequestId> {
    REQUEST.try_with(|id| *id).ok()
}

/// `work` carrying the current request's id (if any), for a task spawned
/// while answering it.
pub async fn carried<F: Future>(work: F) -> F::Output {
    match request_id() {
        Some(id) => in_request(id, work).await,
        None => work.await,
    }
}

/// The event formatter: tracing-subscriber's human (`Full`) or JSON line,
/// with the id of the request being answered where the request span's
/// fields used to be: `request{request_id=…}: ` before the target, or a
/// `"span":{"request_id":…,"name":"request"}` member.
#[derive(Debug)]
pub enum Lines {
    /// Readable lines, plain and with ANSI colours.
    Human {
        /// Without colours.
        plain: Format<Full>,
        /// With colours, for a terminal.
        coloured: Format<Full>,
    },
    /// One JSON object per line.
    Json(Format<Json>),
}

impl Lines {
    /// Readable lines.
    pub fn human() -> Self {
        Self::Human {
            plain: Format::default().with_ansi(false),
            coloured: Format::default().with_ansi(true),
        }
    }

    /// JSON lines.
    pub fn json() -> Self {
        Self::Json(Format::default().json().with_span_list(false))
    }
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let ansi = writer.has_ansi_escapes();
        let inner = |line: Writer<'_>| match self {
            Self::Human { coloured, .. } if ansi => coloured.format_event(ctx, line, event),
            Self::Human { plain, .. } => plain.format_event(ctx, line, event),
            Self::Json(json) => json.format_event(ctx, line, event),
        };
        let Some(id) = request_id() else {
            return inner(writer);
        };
        let mut line = String::new();
        inner(Writer::new(&mut line))?;
        let id = id.as_str();
        match self {
            Self::Human { .. } => {
                let target = event.metadata().target();
                let at = line.find(target).unwrap_or(line.len());
                line.insert_str(at, &format!("request{{request_id={id}}}: "));
            }
            // The id is plain ASCII: no escaping needed. Within a span of
            // its own (a sign-in exchange), the id joins that span's fields.
            Self::Json(_) => match line.find(r#""span":{"#) {
                Some(at) => {
                    let at = at + r#""span":{"#.len();
                    line.insert_str(at, &format!(r#""request_id":"{id}","#));
                }
                None => {
                    let at = line.rfind('}').unwrap_or(line.len());
                    let member = format!(r#","span":{{"request_id":"{id}","name":"request"}}"#);
                    line.insert_str(at, &member);
                }
            },
        }
        writer.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_id_is_sixteen_hex_digits_of_its_number_and_plain() {
        for n in [0, 1, 0xfedc_ba98_7654_3210, u64::MAX] {
            let id = RequestId::hex(n);
            assert_eq!(id.as_str(), format!("{n:016x}"));
            assert_eq!(RequestId::new(id.as_bytes()), Some(id));
        }
    }

    #[test]
    fn control_characters_and_overrides_are_escaped() {
        assert_eq!(escaped("wx123"), "wx123");
        assert!(matches!(
            escaped("plain text"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            escaped("wx\nERROR forged\u{1b}[2J\u{0}\u{202e}"),
            "wx\\u{a}ERROR forged\\u{1b}[2J\\u{0}\\u{202e}"
        );
    }

    #[test]
    fn long_values_are_cut() {
        let long = "a".repeat(MAX_VALUE_CHARS + 10);
        let shown = escaped(&long);
        assert!(shown.starts_with(&"a".repeat(MAX_VALUE_CHARS)));
        assert!(shown.ends_with("…(10 more characters)"), "{shown}");
    }
}

#[cfg(test)]
mod lines_tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a subscriber with [`Lines`] writes for two events, one outside
    /// a request and one answering `req-1`, the second within a span of its own.
    async fn written(json: bool) -> Vec<String> {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let make = move || Sink(sink.clone());
        let builder = tracing_subscriber::fmt().with_writer(make).with_ansi(false);
        let _default = if json {
            tracing::subscriber::set_default(builder.json().event_format(Lines::json()).finish())
        } else {
            let lines = builder.fmt_fields(fields()).event_format(Lines::human());
            tracing::subscriber::set_default(lines.finish())
        };
        tracing::info!(n = 1, "outside");
        let id = RequestId::new(b"req-1").unwrap();
        in_request(id, async {
            tracing::info!(n = 2, "inside");
            let span = tracing::info_span!("exchange", appid = "wx1");
            span.in_scope(|| tracing::info!(n = 3, "in a span"));
            carried(async { tracing::info!(n = 4, "carried") }).await;
        })
        .await;
        carried(async { tracing::info!(n = 5, "carried outside") }).await;
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn human_lines_carry_the_request_id_before_the_target() {
        let lines = written(false).await;
        assert_eq!(lines.len(), 5, "{lines:?}");
        let target = "wxgate_gateway::logs::lines_tests";
        assert!(
            lines[0].contains(&format!(" INFO {target}: outside n=1")),
            "{lines:?}"
        );
        assert!(!lines[0].contains("request"), "{lines:?}");
        assert!(
            lines[1].contains(&format!(
                " INFO request{{request_id=req-1}}: {target}: inside n=2"
            )),
            "{lines:?}"
        );
        assert!(
            lines[2].contains(&format!(
                "exchange{{appid=\"wx1\"}}: request{{request_id=req-1}}: {target}: in a span n=3"
            )),
            "{lines:?}"
        );
        assert!(
            lines[3].contains("request{request_id=req-1}: "),
            "{lines:?}"
        );
        assert!(!lines[4].contains("request"), "{lines:?}");
    }

    #[tokio::test]
    async fn json_lines_carry_the_request_id_as_the_request_span_did() {
        let lines: Vec<serde_json::Value> = written(true)
            .await
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(lines[0].get("span").is_none(), "{lines:?}");
        assert_eq!(lines[0]["fields"]["n"], 1);
        let request = serde_json::json!({ "request_id": "req-1", "name": "request" });
        assert_eq!(lines[1]["span"], request);
        assert_eq!(lines[1]["fields"]["message"], "inside");
        assert_eq!(
            lines[2]["span"],
            serde_json::json!({ "request_id": "req-1", "appid": "wx1", "name": "exchange" })
        );
        assert_eq!(lines[3]["span"], request);
        assert!(lines[4].get("span").is_none(), "{lines:?}");
    }

    #[test]
    fn a_line_logged_once_the_answer_is_ready_carries_the_id() {
        let id = RequestId::new(b"req-2").unwrap();
        assert_eq!(with_request(id, request_id), Some(id));
        assert_eq!(request_id(), None);
    }

    #[test]
    fn request_ids_are_plain_and_bounded() {
        assert_eq!(RequestId::new(b"a-b_c.d:1").unwrap().as_str(), "a-b_c.d:1");
        let longest = [b'x'; MAX_REQUEST_ID];
        assert_eq!(
            RequestId::new(&longest).unwrap().as_str().len(),
            MAX_REQUEST_ID
        );
        for refused in [
            &b""[..],
            b"a b",
            b"a\"b",
            b"a\nb",
            &[b'x'; MAX_REQUEST_ID + 1],
        ] {
            assert!(RequestId::new(refused).is_none(), "{refused:?}");
        }
    }
}
