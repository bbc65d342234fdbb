//! How log lines show values: text that came from outside (a path, an
//! upstream's `errmsg`, a webhook's error) can hold newlines or terminal
//! escapes, which in a line-based log would forge lines or repaint a
//! terminal. The human format shows every value with control characters
//! escaped and cut at [`MAX_VALUE_CHARS`]; the JSON format escapes by itself.

use std::fmt::Write as _;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::fmt::FormatFields;

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

#[cfg(test)]
mod tests {
    use super::*;

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
