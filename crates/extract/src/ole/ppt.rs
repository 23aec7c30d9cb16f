//! PowerPoint 97-2003 (`.ppt`): the `PowerPoint Document` stream is a tree of records (8-byte
//! header: version/instance, type, length; version 0xF marks a container). Text sits in
//! `TextCharsAtom` (UTF-16) and `TextBytesAtom` (8-bit) records, either inside a slide's drawing
//! or, for placeholders written by PowerPoint itself, in the document's `SlideListWithText`.
//!
//! Records are read in stream order: slides (text in the slide list, then each `Slide` container)
//! separated by blank lines, then the speaker notes. Masters' placeholder prompts are skipped. A
//! file saved incrementally can keep superseded copies of slides, which are then read too.

use crate::out::Out;
use crate::{ExtractError, Limits};

use super::{Ole, summary, u16_at, usize_at, utf16};

const DOCUMENT: u16 = 0x03E8;
const SLIDE: u16 = 0x03EE;
const NOTES: u16 = 0x03F0;
const MAIN_MASTER: u16 = 0x03F8;
const SLIDE_LIST_WITH_TEXT: u16 = 0x0FF0;
const SLIDE_PERSIST_ATOM: u16 = 0x03F3;
const TEXT_CHARS_ATOM: u16 = 0x0FA0;
const TEXT_BYTES_ATOM: u16 = 0x0FA8;
/// Containers nested deeper than this are not descended into.
const MAX_DEPTH: usize = 16;

pub(crate) fn extract(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut ole = Ole::open(bytes, out.budget.clone())?;
    summary(&mut ole, out)?;
    let Some(stream) = ole.read("PowerPoint Document")? else {
        return Err(ExtractError::Malformed("ppt has no PowerPoint Document stream".into()));
    };
    // Slide texts from the slide list (index by position) and from slide containers.
    let mut listed: Vec<Vec<String>> = Vec::new();
    let mut slides: Vec<Vec<String>> = Vec::new();
    let mut notes: Vec<Vec<String>> = Vec::new();
    for record in records(&stream) {
        match record.kind {
            DOCUMENT => {
                for child in records(record.body) {
                    // Instance 0 lists the slides (1 masters, 2 notes).
                    if child.kind == SLIDE_LIST_WITH_TEXT && child.instance == 0 {
                        for atom in records(child.body) {
                            if atom.kind == SLIDE_PERSIST_ATOM {
                                listed.push(Vec::new());
                            } else if let (Some(text), Some(slide)) = (atom_text(&atom), listed.last_mut()) {
                                slide.push(text);
                            }
                        }
                    }
                }
            }
            SLIDE => slides.push(texts(record.body)),
            NOTES => {
                let found = texts(record.body);
                // The notes master has only field prompts ("*"); real notes pages have text.
                if !found.is_empty() {
                    notes.push(found);
                }
            }
            _ => {}
        }
    }
    let count = slides.len().max(listed.len());
    out.meta("slide_count", count);
    if count > limits.max_pages {
        out.warn(format!("only the first {} of {count} slides were read (max_pages)", limits.max_pages));
    }
    for i in 0..count.min(limits.max_pages) {
        out.text.blank_line();
        for text in listed.get(i).into_iter().chain(slides.get(i)).flatten() {
            out.text.push_str(text);
            out.text.end_line();
        }
    }
    for page in notes.iter().take(limits.max_pages) {
        out.text.blank_line();
        for text in page {
            out.text.push_str(text);
            out.text.end_line();
        }
    }
    Ok(())
}

#[derive(Debug)]
struct Record<'a> {
    kind: u16,
    instance: u16,
    container: bool,
    body: &'a [u8],
}

/// The records laid end to end in `data`; a record whose length runs past `data` ends the list.
fn records(data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let ver_inst = u16_at(data, at)?;
        let kind = u16_at(data, at + 2)?;
        let len = usize_at(data, at + 4)?;
        let body = data.get(at + 8..(at + 8).checked_add(len)?)?;
        at += 8 + len;
        Some(Record { kind, instance: ver_inst >> 4, container: ver_inst & 0xF == 0xF, body })
    })
}

/// Every text atom under a container, in order, skipping masters' prompts.
fn texts(body: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    collect(body, 0, &mut found);
    found
}

fn collect(data: &[u8], depth: usize, found: &mut Vec<String>) {
    for record in records(data) {
        if record.container {
            if record.kind != MAIN_MASTER && depth < MAX_DEPTH {
                collect(record.body, depth + 1, found);
            }
        } else if let Some(text) = atom_text(&record) {
            found.push(text);
        }
    }
}

/// The text of a text atom, paragraph marks (`\r`) and line breaks (`\v`) as newlines; `None` for
/// other records and for the `*` that stands for a field (slide number, date) on masters.
fn atom_text(record: &Record<'_>) -> Option<String> {
    let text = match record.kind {
        TEXT_CHARS_ATOM => utf16(record.body),
        // 8-bit text is the low bytes of UTF-16 code units, i.e. Latin-1.
        TEXT_BYTES_ATOM => record.body.iter().map(|&b| char::from(b)).collect(),
        _ => return None,
    };
    let text: String = text
        .chars()
        .filter_map(|c| match c {
            '\r' | '\u{0B}' => Some('\n'),
            '\t' => Some('\t'),
            c if c < ' ' => None,
            c => Some(c),
        })
        .collect();
    let text = text.trim_end().to_string();
    (!text.is_empty() && text != "*").then_some(text)
}

#[cfg(test)]
mod tests {
    use super::super::u32_at;
    use super::*;

    fn record(ver_inst: u16, kind: u16, body: &[u8]) -> Vec<u8> {
        let mut r = ver_inst.to_le_bytes().to_vec();
        r.extend(kind.to_le_bytes());
        r.extend(u32::try_from(body.len()).unwrap_or(0).to_le_bytes());
        r.extend(body);
        r
    }

    #[test]
    fn nested_text_atoms_and_bounds() {
        let chars: Vec<u8> = "Hi\rthere".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let inner = [record(0, TEXT_CHARS_ATOM, &chars), record(0, TEXT_BYTES_ATOM, b"caf\xe9")].concat();
        let mut data = record(0xF, SLIDE, &inner);
        assert_eq!(texts(&data), ["Hi\nthere", "café"]);
        // A length past the end stops the walk instead of reading out of bounds.
        data.extend(record(0, TEXT_BYTES_ATOM, b"x")[..6].iter());
        assert_eq!(records(&data).count(), 1);
        assert_eq!(u32_at(&data, data.len()), None);
    }
}
