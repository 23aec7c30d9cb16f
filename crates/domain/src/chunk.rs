//! How a document becomes the pieces search indexes (issue 15). Chunk 0, the
//! heading, holds the file name, description and tags; the body follows in chunks
//! of about [`CHUNK_CHARS`] characters, cut between words, each remembering its page
//! (text extraction separates pages with a form feed) and where it starts in the
//! document's text. Only the text every reader may see is chunked: the redacted text
//! of a redacted document, never its original.
//!
//! A chunk of about a thousand characters is about 200 tokens: it fits the
//! embedding model's 256-token window whole, and a hit points the reader to a
//! paragraph rather than to the whole document.

use crate::document::Filename;
use crate::notebook::{Description, Tag};

/// The length a body chunk aims at, in characters.
pub const CHUNK_CHARS: usize = 1_000;
/// The ordinal of the heading chunk.
pub const HEADING: u32 = 0;

/// One indexed piece of a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// 0 for the heading, then 1, 2, … in reading order.
    pub ordinal: u32,
    /// The page the chunk starts on, from 1; 0 for the heading.
    pub page: u32,
    /// Where the chunk starts in the document's text, in characters; 0 for the heading.
    pub offset: u32,
    pub text: String,
}

/// The heading chunk: file name, description and tags, a line each.
pub fn heading(filename: &Filename, description: Option<&Description>, tags: &[Tag]) -> Chunk {
    let mut text = filename.as_str().to_owned();
    if let Some(description) = description {
        text.push('\n');
        text.push_str(description.as_str());
    }
    if !tags.is_empty() {
        text.push('\n');
        text.push_str(&tags.iter().map(Tag::as_str).collect::<Vec<_>>().join(" "));
    }
    Chunk { ordinal: HEADING, page: 0, offset: 0, text }
}

/// The body chunks of `text` (the text readers may see), ordinals from 1.
pub fn body(text: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut offset = 0usize; // characters before the current page
    for (page_index, page) in text.split('\u{c}').enumerate() {
        let page_number = u32::try_from(page_index + 1).unwrap_or(u32::MAX);
        for (start, piece) in split_page(page) {
            let ordinal = u32::try_from(chunks.len() + 1).unwrap_or(u32::MAX);
            chunks.push(Chunk {
                ordinal,
                page: page_number,
                offset: u32::try_from(offset + start).unwrap_or(u32::MAX),
                text: piece.to_owned(),
            });
        }
        offset += page.chars().count() + 1; // the form feed
    }
    chunks
}

/// A document's chunks: the heading, then the body of `readers_text`.
pub fn document_chunks(
    filename: &Filename,
    description: Option<&Description>,
    tags: &[Tag],
    readers_text: &str,
) -> Vec<Chunk> {
    let mut chunks = vec![heading(filename, description, tags)];
    chunks.extend(body(readers_text));
    chunks
}

/// Cuts a page into pieces of at most [`CHUNK_CHARS`] characters between words
/// (a word longer than that is cut inside), each with its start in characters.
/// White space between pieces belongs to none.
fn split_page(page: &str) -> Vec<(usize, &str)> {
    // Each word: (start char, start byte, end byte), end excluding white space.
    let mut words: Vec<(usize, usize, usize)> = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for (chars_seen, (byte, c)) in page.char_indices().enumerate() {
        if c.is_whitespace() {
            if let Some((start_char, start_byte)) = current.take() {
                words.push((start_char, start_byte, byte));
            }
        } else if current.is_none() {
            current = Some((chars_seen, byte));
        }
    }
    if let Some((start_char, start_byte)) = current {
        words.push((start_char, start_byte, page.len()));
    }

    let mut pieces = Vec::new();
    let mut piece: Option<(usize, usize, usize, usize)> = None; // start char, start byte, end byte, chars
    for (start_char, start_byte, end_byte) in words {
        let word = &page[start_byte..end_byte];
        let word_chars = word.chars().count();
        if let Some((p_char, p_byte, p_end, p_chars)) = piece {
            let gap = page[p_end..start_byte].chars().count();
            if p_chars + gap + word_chars <= CHUNK_CHARS {
                piece = Some((p_char, p_byte, end_byte, p_chars + gap + word_chars));
                continue;
            }
            pieces.push((p_char, &page[p_byte..p_end]));
            piece = None;
        }
        if word_chars <= CHUNK_CHARS {
            piece = Some((start_char, start_byte, end_byte, word_chars));
            continue;
        }
        // A run without white space longer than a chunk: cut it every CHUNK_CHARS.
        let mut cut_char = start_char;
        let mut rest = word;
        while !rest.is_empty() {
            let cut = rest.char_indices().nth(CHUNK_CHARS).map_or(rest.len(), |(byte, _)| byte);
            pieces.push((cut_char, &rest[..cut]));
            cut_char += rest[..cut].chars().count();
            rest = &rest[cut..];
        }
    }
    if let Some((p_char, p_byte, p_end, _)) = piece {
        pieces.push((p_char, &page[p_byte..p_end]));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_holds_name_description_and_tags() {
        let chunk = heading(
            &Filename::sanitize("q3.pdf"),
            Some(&Description::parse("Quarterly figures").expect("valid")),
            &[Tag::parse("finance").expect("valid"), Tag::parse("2026").expect("valid")],
        );
        assert_eq!(
            chunk,
            Chunk { ordinal: 0, page: 0, offset: 0, text: "q3.pdf\nQuarterly figures\nfinance 2026".into() }
        );
    }

    #[test]
    fn pages_and_offsets_point_into_the_text() {
        let text = "first page text\u{c}second page\u{c}\u{c}  fourth";
        let chunks = body(text);
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chunks.iter().map(|c| (c.ordinal, c.page)).collect::<Vec<_>>(), vec![(1, 1), (2, 2), (3, 4)]);
        for chunk in &chunks {
            let at: String = chars[chunk.offset as usize..].iter().take(chunk.text.chars().count()).collect();
            assert_eq!(at, chunk.text, "offset {} of chunk {}", chunk.offset, chunk.ordinal);
        }
    }

    #[test]
    fn long_text_is_cut_between_words_within_the_limit() {
        let sentence = "Zürich résumé naïve façade coöperate ";
        let text = sentence.repeat(200);
        let chunks = body(&text);
        assert!(chunks.len() > 5);
        let chars: Vec<char> = text.chars().collect();
        for (index, chunk) in chunks.iter().enumerate() {
            let length = chunk.text.chars().count();
            let last = index + 1 == chunks.len();
            assert!(length <= CHUNK_CHARS && (last || length > CHUNK_CHARS - 20), "{length}");
            assert!(!chunk.text.starts_with(' ') && !chunk.text.ends_with(' '));
            let at: String = chars[chunk.offset as usize..].iter().take(length).collect();
            assert_eq!(at, chunk.text);
        }
        // Nothing but white space is lost.
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join(" ");
        assert_eq!(joined.split_whitespace().count(), text.split_whitespace().count());
    }

    #[test]
    fn a_word_longer_than_a_chunk_is_cut_inside() {
        let text = format!("short {} tail", "x".repeat(2 * CHUNK_CHARS + 5));
        let chunks = body(&text);
        assert_eq!(chunks.iter().map(|c| c.text.chars().count()).collect::<Vec<_>>(), vec![5, 1000, 1000, 5, 4]);
        assert_eq!(chunks[2].offset, 6 + 1000);
    }

    #[test]
    fn empty_text_has_no_body() {
        assert!(body("").is_empty());
        assert!(body(" \n\u{c} ").is_empty());
    }
}
