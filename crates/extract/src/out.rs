//! The accumulator every format extractor writes into.
//!
//! Text goes through [`TextBuf`], which stops growing at `max_text_chars`, so a format never has to
//! hold more text than will be returned, and can ask [`TextBuf::is_full`] to stop parsing early.

use std::cell::Cell;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::{ExtractError, Extraction, Format, Limits};

/// What remains of `max_decompressed_bytes` for one uploaded file, shared by every reader that
/// inflates (zip members, OLE streams, PDF streams) and by the members of an archive, so that a
/// bomb nested in an archive spends the same budget as one at the top.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    remaining: Rc<Cell<u64>>,
    limit: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Self { remaining: Rc::new(Cell::new(limit)), limit }
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.remaining.get()
    }

    /// Spends `bytes`, or fails with `LimitExceeded` naming `what` and the limit.
    pub(crate) fn charge(&self, bytes: u64, what: &str) -> Result<(), ExtractError> {
        let remaining = self.remaining.get();
        if bytes > remaining {
            self.remaining.set(0);
            return Err(ExtractError::LimitExceeded(format!(
                "{what} inflates to more than max_decompressed_bytes ({} bytes)",
                self.limit
            )));
        }
        self.remaining.set(remaining - bytes);
        Ok(())
    }
}

/// Text with a hard char cap. Pushes past the cap are dropped and mark the buffer truncated.
#[derive(Debug)]
pub(crate) struct TextBuf {
    buf: String,
    chars: usize,
    max_chars: usize,
    truncated: bool,
}

impl TextBuf {
    pub(crate) fn new(max_chars: usize) -> Self {
        Self { buf: String::new(), chars: 0, max_chars, truncated: false }
    }

    /// Appends as much of `s` as fits, cutting at a char boundary.
    pub(crate) fn push_str(&mut self, s: &str) {
        if self.truncated || s.is_empty() {
            return;
        }
        let room = self.max_chars - self.chars;
        // Bytes >= chars, so a string no longer in bytes than the room always fits.
        if s.len() <= room {
            self.buf.push_str(s);
            self.chars += s.chars().count();
            return;
        }
        match s.char_indices().nth(room) {
            None => {
                self.buf.push_str(s);
                self.chars += s.chars().count();
            }
            Some((cut, _)) => {
                self.buf.push_str(&s[..cut]);
                self.chars = self.max_chars;
                self.truncated = true;
            }
        }
    }

    pub(crate) fn push(&mut self, c: char) {
        if self.truncated {
            return;
        }
        if self.chars >= self.max_chars {
            self.truncated = true;
            return;
        }
        self.buf.push(c);
        self.chars += 1;
    }

    /// Ends the current line unless the text is empty or already at a line start.
    pub(crate) fn end_line(&mut self) {
        if !self.buf.is_empty() && !self.buf.ends_with('\n') {
            self.push('\n');
        }
    }

    /// Ensures a blank line separates what came before from what comes next.
    pub(crate) fn blank_line(&mut self) {
        if self.buf.is_empty() || self.buf.ends_with("\n\n") {
            return;
        }
        self.end_line();
        self.push('\n');
    }

    /// True if the last char is whitespace (or nothing was written yet).
    pub(crate) fn ends_with_space(&self) -> bool {
        self.buf.chars().next_back().is_none_or(char::is_whitespace)
    }

    /// Once true, every further push is dropped: callers may stop parsing.
    pub(crate) fn is_full(&self) -> bool {
        self.truncated
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.buf
    }
}

/// Everything an extractor produces, finished into an [`Extraction`] by [`Out::finish`].
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) format: Format,
    pub(crate) text: TextBuf,
    /// False for formats that have no text (images, unsupported): `Extraction::text` is then None.
    pub(crate) has_text: bool,
    pub(crate) meta: Map<String, Value>,
    pub(crate) warnings: Vec<String>,
    pub(crate) thumbnail_png: Option<Vec<u8>>,
    pub(crate) budget: Budget,
    /// How many archives this file is inside (0 for the upload itself).
    pub(crate) depth: usize,
}

impl Out {
    /// An accumulator spending `budget`: a fresh one for an upload, its archive's for a member.
    pub(crate) fn new(limits: &Limits, format: Format, budget: Budget) -> Self {
        Self {
            format,
            text: TextBuf::new(limits.max_text_chars),
            has_text: format.has_text(),
            meta: Map::new(),
            warnings: Vec::new(),
            thumbnail_png: None,
            budget,
            depth: 0,
        }
    }

    pub(crate) fn meta(&mut self, key: &str, value: impl Into<Value>) {
        self.meta.insert(key.to_string(), value.into());
    }

    /// Sets a string field unless it is blank; documents often carry empty title fields.
    pub(crate) fn meta_str(&mut self, key: &str, value: &str) {
        let value = value.trim();
        if !value.is_empty() {
            self.meta(key, value);
        }
    }

    pub(crate) fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// Trims trailing whitespace from the text and adds `word_count` and `char_count`.
    pub(crate) fn finish(self, content_type: String, format: Format) -> Extraction {
        let truncated = self.text.truncated;
        let mut meta = self.meta;
        let text = if self.has_text {
            let mut text = self.text.buf;
            text.truncate(text.trim_end().len());
            meta.entry("word_count").or_insert_with(|| Value::from(text.split_whitespace().count()));
            meta.insert("char_count".to_string(), Value::from(text.chars().count()));
            Some(text)
        } else {
            None
        };
        Extraction {
            content_type,
            format,
            supported: format != Format::Unsupported,
            text,
            text_truncated: truncated,
            metadata: meta,
            thumbnail_png: self.thumbnail_png,
            warnings: self.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TextBuf;

    #[test]
    fn truncates_at_char_boundary() {
        let mut t = TextBuf::new(3);
        t.push_str("aé");
        t.push_str("ü€x");
        assert_eq!(t.as_str(), "aéü");
        assert!(t.is_full());
        t.push('z');
        assert_eq!(t.as_str(), "aéü");
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let mut t = TextBuf::new(4);
        t.push_str("abcd");
        assert!(!t.is_full());
        t.push_str("");
        assert!(!t.is_full());
        t.push('e');
        assert!(t.is_full());
    }
}
