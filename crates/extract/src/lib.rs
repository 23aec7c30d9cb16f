#![forbid(unsafe_code)]
//! Turns an uploaded file's bytes into extracted text, metadata and a thumbnail, and detects and
//! redacts PII in text.
//!
//! The crate is pure: it reads only the bytes it is handed and performs no file or network IO, so
//! it can run inside a sandboxed child process. Every extraction is bounded by [`Limits`] because
//! uploads are hostile by default (zip bombs, 10,000-page PDFs, 60000×60000 images).
//!
//! The format is decided from the bytes ([`sniff`]), never from the client's content type; the
//! file name's extension only breaks ties between text formats.
//!
//! | format | text | metadata (besides `word_count`, `char_count`) |
//! |---|---|---|
//! | txt, md, csv, tsv, source | verbatim | encoding, line_count; md title; csv/tsv columns, column_count, row_count; source language |
//! | json | one `key: value` line per scalar | json_root, top_level_keys / item_count |
//! | xml | text nodes, one per line | root_element, element_count |
//! | html | visible text (no script/style), blocks on new lines | title, language, description, author, keywords |
//! | pdf | text per page (with Form XObjects' text), pages separated by `\f` | page_count, title, author, subject, keywords, creator, producer, created, modified, pdf_version |
//! | docx | paragraphs, then headers/footers, footnotes/endnotes/comments | title, author, created, modified, page_count (as saved), ... |
//! | xlsx, ods | per sheet: name line, then rows with tab-separated cells | sheet_names, sheet_count, title, author, ... |
//! | pptx, odp | per slide: paragraphs (pptx: then the speaker notes), slides separated by a blank line | slide_count, title, author, ... |
//! | odt | paragraphs and headings | title, author, created, page_count |
//! | rtf | body text | title, author, subject, keywords, created |
//! | epub | chapters in spine order | title, author, language, publisher, chapter_count |
//! | eml | From/To/Cc/Date/Subject lines, blank line, text bodies | subject, from, to, cc, date, message_id, attachment_count, attachments |
//! | doc (Word 97-2003) | main text, then footnotes, headers/footers, comments, endnotes, text boxes | title, subject, author, keywords, last_modified_by, created, modified |
//! | xls (Excel 97-2003, BIFF8) | as xlsx | sheet_names, sheet_count, title, author, ... |
//! | ppt (PowerPoint 97-2003) | per slide: text, blank line between slides; then the speaker notes | slide_count, title, author, ... |
//! | png, jpeg, gif, webp, tiff (every page by OCR), bmp | none here (`thumbnail_png` instead); OCR by `aether-ocr` | width, height, image_format, color_type, thumbnail_width/height |
//! | mbox | each message as eml, a page each | message_count, subjects, senders, first_date, last_date |
//! | msg (Outlook) | as eml, then each attachment read as a document, a page each | subject, from, to, cc, date, message_id, message_class, attachments |
//! | ics | per event/to-do/journal: summary, when, where, organizer, attendees, description | title, product, event_count, todo_count, journal_count, first_start |
//! | vcf | per card: name, then organisation, e-mail, phone, address, note | card_count, names, vcard_version |
//! | ipynb | cell sources in order, code cells followed by their text outputs | language, kernel, title, nbformat, cell_count, code_cell_count, markdown_cell_count, image_output_count |
//! | latex | the body without commands and comments | title, author, date, document_class, section_count |
//! | rst, asciidoc, org | lines without markup syntax (adornments, directives, drawers, link syntax) | title, author, section_count, line_count |
//! | yaml, toml, ini | verbatim | line_count; yaml top_level_keys, document_count; toml top_level_keys, tables; ini sections, key_count |
//! | svg | title, desc and text elements, one per line | width, height, viewbox, title, text_element_count |
//! | audio, video | none here; speech by a transcription service in the worker | from ffprobe, by [`media`]: duration_seconds, container, codecs, width, height, frame_rate, sample_rate, channels, tags; a video's poster frame |
//! | zip, tar (plain or gzip), gzip | the listing, then each member read as a document, a page each | member_count, directory_count, members (path, size, format, page), compression |
//!
//! [`FORMATS`] is this table for users (the README and `GET /api/v1/documents/formats`).
//!
//! Images and PDF pages without a text layer get their text from OCR after extraction:
//! [`ocr`] holds its rules, the `aether-ocr` crate runs it (`ocr_engine`, `ocr_languages`,
//! `ocr_pages`, `ocr_confidence` in the metadata).

mod archive;
mod b64;
mod bundle;
mod config;
pub mod corpus;
mod email;
mod epub;
mod formats;
mod html;
mod latex;
mod lightweight;
mod markup;
pub mod media;
mod notebook;
pub mod ocr;
mod odf;
mod office;
mod ole;
mod out;
mod pdf;
pub mod pii;
mod raster;
mod rtf;
mod sniff;
mod svg;
mod text;
mod vobject;
mod xml;

use serde::{Deserialize, Serialize};

pub use corpus::generate_corpus;
pub use formats::{FORMATS, FormatInfo, formats_markdown_table};
pub use sniff::{Sniffed, sniff};

/// Bounds every extraction, so hostile files (zip bombs, 10,000-page PDFs, huge images) cannot
/// exhaust memory or time.
///
/// Bounds on *input size* are the caller's job (it knows the upload limit); these bound what the
/// input can expand into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Extracted text beyond this many chars is dropped and `text_truncated` is set.
    pub max_text_chars: usize,
    /// Total bytes inflated from compressed containers (zip entries, PDF streams, OLE streams,
    /// gzip) per uploaded file, archive members at any depth included.
    pub max_decompressed_bytes: u64,
    /// Zip-based files and archives with more entries than this are rejected outright.
    pub max_archive_entries: usize,
    /// PDF pages / slides / sheets / EPUB chapters processed; the rest are skipped with a warning.
    pub max_pages: usize,
    /// Images whose header claims more pixels than this are rejected before decoding.
    pub max_image_pixels: u64,
    /// Thumbnails fit within a square of this many pixels.
    pub thumbnail_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_chars: 2_000_000,
            max_decompressed_bytes: 200 * 1024 * 1024,
            max_archive_entries: 10_000,
            max_pages: 2_000,
            max_image_pixels: 100_000_000,
            thumbnail_size: 256,
        }
    }
}

/// The file formats the crate recognises. `Unsupported` covers every binary it cannot read.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Text,
    Markdown,
    Csv,
    Tsv,
    Json,
    Xml,
    Html,
    Pdf,
    Docx,
    Xlsx,
    Pptx,
    Odt,
    Ods,
    Odp,
    Rtf,
    Epub,
    Eml,
    Doc,
    Xls,
    Ppt,
    SourceCode,
    Image,
    Msg,
    Mbox,
    Ics,
    Vcf,
    Ipynb,
    Latex,
    Rst,
    Asciidoc,
    Org,
    Yaml,
    Toml,
    Ini,
    Svg,
    Zip,
    Tar,
    Gzip,
    Audio,
    Video,
    Unsupported,
}

impl Format {
    /// The snake_case name, identical to the serde representation.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Xlsx => "xlsx",
            Format::Pptx => "pptx",
            Format::Odt => "odt",
            Format::Ods => "ods",
            Format::Odp => "odp",
            Format::Rtf => "rtf",
            Format::Epub => "epub",
            Format::Eml => "eml",
            Format::Doc => "doc",
            Format::Xls => "xls",
            Format::Ppt => "ppt",
            Format::SourceCode => "source_code",
            Format::Image => "image",
            Format::Msg => "msg",
            Format::Mbox => "mbox",
            Format::Ics => "ics",
            Format::Vcf => "vcf",
            Format::Ipynb => "ipynb",
            Format::Latex => "latex",
            Format::Rst => "rst",
            Format::Asciidoc => "asciidoc",
            Format::Org => "org",
            Format::Yaml => "yaml",
            Format::Toml => "toml",
            Format::Ini => "ini",
            Format::Svg => "svg",
            Format::Zip => "zip",
            Format::Tar => "tar",
            Format::Gzip => "gzip",
            Format::Audio => "audio",
            Format::Video => "video",
            Format::Unsupported => "unsupported",
        }
    }

    /// False for formats whose files have no text of their own (images are read by OCR later,
    /// speech may be transcribed).
    pub fn has_text(&self) -> bool {
        !matches!(self, Format::Image | Format::Audio | Format::Video | Format::Unsupported)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of a successful extraction.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Extraction {
    /// Content type decided from the bytes (see [`sniff`]).
    pub content_type: String,
    pub format: Format,
    /// False for unknown binaries: they are accepted, just not read.
    pub supported: bool,
    /// `None` for formats without text (images, unsupported binaries).
    pub text: Option<String>,
    /// True when text was cut at `max_text_chars`.
    pub text_truncated: bool,
    /// Format-specific facts: page_count, title, author, created, sheet_names, slide_count, width,
    /// height, image_format, line_count, word_count, language, from/to/subject/date, encoding, ...
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// A PNG fitted within `thumbnail_size`, base64 in JSON.
    #[serde(with = "b64", default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_png: Option<Vec<u8>>,
    /// Non-fatal problems: skipped pages, recovered damage, unreadable parts.
    pub warnings: Vec<String>,
}

/// Why a file of a known type could not be extracted. Unknown types are not errors.
///
/// Serializable (`{"kind": "limit_exceeded", "message": "..."}`) so it can cross a process boundary.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum ExtractError {
    /// A corrupt file of a known type (truncated PDF, broken zip, ...).
    #[error("malformed file: {0}")]
    Malformed(String),
    /// A [`Limits`] bound was hit; the message names it.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
}

/// How a caught panic's [`ExtractError::Malformed`] message starts; see [`ExtractError::is_panic`].
const PANIC_PREFIX: &str = "parser panicked";

impl ExtractError {
    /// True if this error stands for a panic that [`extract`] caught, not a typed error that a
    /// parser returned. Callers treat both as a corrupt file, but a panic is a bug in this crate or
    /// a dependency, so tests assert it never happens and monitoring may count it.
    ///
    /// Panics are reported as `Malformed` rather than as a variant of their own so that callers'
    /// exhaustive matches and the serialized form stay as they were.
    pub fn is_panic(&self) -> bool {
        matches!(self, ExtractError::Malformed(m) if m.starts_with(PANIC_PREFIX))
    }
}

/// Extracts text, metadata and (for images) a thumbnail from `bytes`.
///
/// The format comes from [`sniff`]. Unknown binaries return `Ok` with `supported: false`; corrupt
/// files of a known type return [`ExtractError::Malformed`]; hostile ones that would expand past
/// `limits` return [`ExtractError::LimitExceeded`]. Never panics on bad input: third-party parsers
/// run under `catch_unwind` (this relies on the default `panic = "unwind"`).
pub fn extract(bytes: &[u8], filename: &str, limits: &Limits) -> Result<Extraction, ExtractError> {
    extract_nested(bytes, filename, limits, out::Budget::new(limits.max_decompressed_bytes), 0)
}

/// [`extract`] for a file at `depth` inside archives, spending their `budget`.
pub(crate) fn extract_nested(
    bytes: &[u8],
    filename: &str,
    limits: &Limits,
    budget: out::Budget,
    depth: usize,
) -> Result<Extraction, ExtractError> {
    let sniffed = sniff(bytes, filename);
    let format = sniffed.format;
    let mut out = out::Out::new(limits, format, budget);
    out.depth = depth;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(bytes, filename, limits, &mut out)));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(err),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            return Err(ExtractError::Malformed(format!("{PANIC_PREFIX} on this {format} file: {msg}")));
        }
    }
    Ok(out.finish(sniffed.content_type, format))
}

fn dispatch(bytes: &[u8], filename: &str, limits: &Limits, out: &mut out::Out) -> Result<(), ExtractError> {
    match out.format {
        Format::Text | Format::Markdown | Format::Csv | Format::Tsv | Format::SourceCode => {
            text::extract(bytes, filename, out)
        }
        Format::Json => markup::extract_json(bytes, out),
        Format::Xml => markup::extract_xml(bytes, out),
        Format::Html => html::extract(bytes, out),
        Format::Pdf => pdf::extract(bytes, limits, out),
        Format::Docx => office::extract_docx(bytes, limits, out),
        Format::Xlsx => office::extract_xlsx(bytes, limits, out),
        Format::Pptx => office::extract_pptx(bytes, limits, out),
        Format::Odt | Format::Ods | Format::Odp => odf::extract(bytes, limits, out),
        Format::Rtf => rtf::extract(bytes, out),
        Format::Epub => epub::extract(bytes, limits, out),
        Format::Eml => email::extract(bytes, limits, out),
        Format::Doc => ole::extract_doc(bytes, out),
        Format::Xls => ole::extract_xls(bytes, limits, out),
        Format::Ppt => ole::extract_ppt(bytes, limits, out),
        Format::Image => raster::extract(bytes, limits, out),
        Format::Msg => ole::extract_msg(bytes, limits, out),
        Format::Mbox => email::extract_mbox(bytes, limits, out),
        Format::Ics => vobject::extract_ics(bytes, out),
        Format::Vcf => vobject::extract_vcf(bytes, out),
        Format::Ipynb => notebook::extract(bytes, out),
        Format::Latex => latex::extract(bytes, out),
        Format::Rst | Format::Asciidoc | Format::Org => lightweight::extract(bytes, out),
        Format::Yaml | Format::Toml | Format::Ini => config::extract(bytes, out),
        Format::Svg => svg::extract(bytes, out),
        Format::Zip | Format::Tar | Format::Gzip => bundle::extract(bytes, filename, limits, out),
        // Described by ffprobe in the sandbox (`media`); nothing to read here.
        Format::Audio | Format::Video | Format::Unsupported => Ok(()),
    }
}

#[cfg(test)]
mod tests;
