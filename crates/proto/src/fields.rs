//! Reading the flat children of a WeChat `<xml>` element by name, keeping track
//! of which ones a typed reader used so the rest can be kept verbatim.

use crate::xml::Element;
use crate::MessageError;

/// A cursor over an element's children that marks the ones it reads.
pub(crate) struct Fields<'a> {
    elements: &'a [Element],
    used: Vec<bool>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(elements: &'a [Element]) -> Self {
        Self {
            elements,
            used: vec![false; elements.len()],
        }
    }

    /// The first unused child named `name`, marked as used.
    pub(crate) fn element(&mut self, name: &str) -> Option<&'a Element> {
        let index = self
            .elements
            .iter()
            .enumerate()
            .position(|(i, e)| !self.used[i] && e.name == name)?;
        self.used[index] = true;
        Some(&self.elements[index])
    }

    /// The first unused child named `name` that has no children of its own.
    /// An element with children where text is expected is left for `rest`.
    fn leaf(&mut self, name: &str) -> Option<&'a Element> {
        let index = self
            .elements
            .iter()
            .enumerate()
            .position(|(i, e)| !self.used[i] && e.name == name && e.children.is_empty())?;
        self.used[index] = true;
        Some(&self.elements[index])
    }

    /// The text of the first unused leaf child named `name`.
    pub(crate) fn text(&mut self, name: &str) -> Option<String> {
        self.leaf(name).map(|e| e.text.clone())
    }

    /// A number, surrounding whitespace ignored.
    pub(crate) fn number<T: std::str::FromStr>(&mut self, name: &str) -> Option<T> {
        self.leaf(name).and_then(|e| e.text.trim().parse().ok())
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
        element
            .text
            .trim()
            .parse()
            .map_err(|_| MessageError::Invalid {
                field: name,
                value: element.text.chars().take(64).collect(),
            })
    }

    /// Remembers which children are used so a failed typed read can be undone.
    pub(crate) fn checkpoint(&self) -> Vec<bool> {
        self.used.clone()
    }

    /// Forgets every read since `checkpoint`.
    pub(crate) fn rollback(&mut self, checkpoint: Vec<bool>) {
        self.used = checkpoint;
    }

    /// The children no reader used, in document order.
    pub(crate) fn rest(&self) -> Vec<Element> {
        self.elements
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|(e, _)| e.clone())
            .collect()
    }
}
