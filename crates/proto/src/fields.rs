//! Reading the flat children of a WeChat `<xml>` element by name, keeping track
//! of which ones a typed reader used so the rest can be kept verbatim.

use std::borrow::Cow;

use crate::xml::Element;
use crate::MessageError;

/// `text` in ASCII lowercase, written into `buf` when it fits (every type and
/// event name WeChat sends does) rather than into a new `String`.
pub(crate) fn ascii_lowercase<'b>(text: &str, buf: &'b mut [u8; 32]) -> Cow<'b, str> {
    let Some(lower) = buf.get_mut(..text.len()) else {
        return Cow::Owned(text.to_ascii_lowercase());
    };
    lower.copy_from_slice(text.as_bytes());
    lower.make_ascii_lowercase();
    // Only ASCII bytes changed, each for another: still the UTF-8 it was.
    Cow::Borrowed(std::str::from_utf8(lower).expect("ASCII lowercasing keeps UTF-8"))
}

/// `text.trim()`, in fewer steps for what WeChat sends (no whitespace, or
/// ASCII whitespace): ASCII whitespace is trimmed byte by byte, and only an
/// end that is then not ASCII (perhaps a Unicode space) goes through `trim`.
pub(crate) fn trimmed(text: &str) -> &str {
    let ascii = text.trim_ascii();
    let bytes = ascii.as_bytes();
    if bytes.first().is_some_and(|b| !b.is_ascii()) || bytes.last().is_some_and(|b| !b.is_ascii()) {
        return ascii.trim();
    }
    ascii
}

/// A cursor over an element's children that marks the ones it reads.
pub(crate) struct Fields<'a> {
    elements: &'a [Element],
    used: Marks,
}

/// Which children are used: bits in a word for the few children of every
/// push (so marking and checkpoints allocate nothing), a vector past 128.
#[derive(Clone)]
pub(crate) enum Marks {
    Few(u128),
    Many(Vec<bool>),
}

impl Marks {
    fn new(len: usize) -> Self {
        if len <= 128 {
            Marks::Few(0)
        } else {
            Marks::Many(vec![false; len])
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Marks::Few(bits) => bits >> i & 1 != 0,
            Marks::Many(used) => used[i],
        }
    }

    fn set(&mut self, i: usize) {
        match self {
            Marks::Few(bits) => *bits |= 1 << i,
            Marks::Many(used) => used[i] = true,
        }
    }
}

impl<'a> Fields<'a> {
    pub(crate) fn new(elements: &'a [Element]) -> Self {
        Self {
            elements,
            used: Marks::new(elements.len()),
        }
    }

    /// The first unused child named `name`, marked as used.
    pub(crate) fn element(&mut self, name: &str) -> Option<&'a Element> {
        let index = self
            .elements
            .iter()
            .enumerate()
            .position(|(i, e)| !self.used.get(i) && e.name == name)?;
        self.used.set(index);
        Some(&self.elements[index])
    }

    /// The first unused child named `name` that has no children of its own.
    /// An element with children where text is expected is left for `rest`.
    fn leaf(&mut self, name: &str) -> Option<&'a Element> {
        self.leaf_index(name).map(|index| &self.elements[index])
    }

    /// [`Self::leaf`]'s index among the children.
    fn leaf_index(&mut self, name: &str) -> Option<usize> {
        let index = self
            .elements
            .iter()
            .enumerate()
            .position(|(i, e)| !self.used.get(i) && e.name == name && e.children.is_empty())?;
        self.used.set(index);
        Some(index)
    }

    /// A required text field's index among the children, for a caller that
    /// owns them to move its text out rather than copy it.
    pub(crate) fn required_index(&mut self, name: &'static str) -> Result<usize, MessageError> {
        self.leaf_index(name).ok_or(MessageError::Missing(name))
    }

    /// The text of the first unused leaf child named `name`.
    pub(crate) fn text(&mut self, name: &str) -> Option<String> {
        self.leaf(name).map(|e| e.text.clone())
    }

    /// A number, surrounding whitespace ignored.
    pub(crate) fn number<T: std::str::FromStr>(&mut self, name: &str) -> Option<T> {
        self.leaf(name).and_then(|e| trimmed(&e.text).parse().ok())
    }

    /// A required text field.
    pub(crate) fn required(&mut self, name: &'static str) -> Result<String, MessageError> {
        self.text(name).ok_or(MessageError::Missing(name))
    }

    /// A required number field.
    pub(crate) fn required_number<T: std::str::FromStr>(
        &mut self,
        name: &'static str,
    ) -> Result<T, MessageError> {
        let element = self.leaf(name).ok_or(MessageError::Missing(name))?;
        trimmed(&element.text)
            .parse()
            .map_err(|_| MessageError::Invalid {
                field: name,
                value: element.text.chars().take(64).collect(),
            })
    }

    /// Remembers which children are used so a failed typed read can be undone.
    pub(crate) fn checkpoint(&self) -> Marks {
        self.used.clone()
    }

    /// Forgets every read since `checkpoint`.
    pub(crate) fn rollback(&mut self, checkpoint: Marks) {
        self.used = checkpoint;
    }

    /// The indices of the children no reader used, in document order.
    pub(crate) fn rest_indices(&self) -> Vec<usize> {
        (0..self.elements.len())
            .filter(|&i| !self.used.get(i))
            .collect()
    }

    /// The children no reader used, in document order.
    pub(crate) fn rest(&self) -> Vec<Element> {
        self.elements
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.used.get(*i))
            .map(|(_, e)| e.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_is_trim() {
        for text in [
            "",
            " ",
            "42",
            " 42 ",
            "\t\n42\r\n",
            "\u{3000}42\u{3000}",
            " \u{3000} 4 2 \u{a0}",
            "\u{c}42\u{c}",
            "é",
            " é ",
            "\u{2028}",
            "\u{85}x",
            "x\u{85}",
        ] {
            assert_eq!(trimmed(text), text.trim(), "{text:?}");
        }
    }

    #[test]
    fn lowercases_as_to_ascii_lowercase_does_in_the_buffer_or_not() {
        for text in [
            "",
            "Text",
            "EVENT",
            "templateSendJobFinish",
            "Ünï-Cödé",
            "中文Abc",
        ] {
            let mut buf = [0; 32];
            let lower = ascii_lowercase(text, &mut buf);
            assert_eq!(lower, text.to_ascii_lowercase());
            assert!(matches!(lower, Cow::Borrowed(_)));
        }
        let long = "A".repeat(33);
        let mut buf = [0; 32];
        let lower = ascii_lowercase(&long, &mut buf);
        assert!(matches!(lower, Cow::Owned(ref l) if *l == "a".repeat(33)));
    }

    #[test]
    fn marks_many_children_past_the_word_as_a_few() {
        for len in [0, 1, 2, 127, 128, 129, 300] {
            let elements: Vec<Element> = (0..len)
                .map(|i| Element::leaf(if i % 2 == 0 { "A" } else { "B" }, i.to_string()))
                .collect();
            let mut f = Fields::new(&elements);
            let checkpoint = f.checkpoint();
            // Every "A" in document order, then none.
            for i in (0..len).step_by(2) {
                assert_eq!(f.text("A"), Some(i.to_string()), "{len}");
            }
            assert_eq!(f.text("A"), None);
            let rest = f.rest();
            assert_eq!(rest.len(), len / 2, "{len}");
            assert!(rest.iter().all(|e| e.name == "B"));
            f.rollback(checkpoint);
            assert_eq!(f.rest().len(), len, "{len}");
        }
    }
}
