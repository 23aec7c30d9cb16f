//! Content sniffing: what the bytes are, decided from the bytes.
//!
//! Order matters: binary magic numbers first (a PDF named `evil.png` is a PDF), then zip listings
//! (docx/xlsx/pptx/odf/epub are all zips), then text, where content markers (JSON that parses, a
//! leading `<html`, an e-mail header block) beat the extension, which only picks among text
//! formats that content cannot tell apart (md vs txt vs csv vs source code).

use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};

use crate::Format;
use crate::text::{self, extension};

/// The sniffed type of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sniffed {
    /// A MIME type, `application/octet-stream` when nothing better is known.
    pub content_type: String,
    pub format: Format,
}

impl Sniffed {
    fn new(format: Format, content_type: impl Into<String>) -> Self {
        Self { content_type: content_type.into(), format }
    }
}

/// Decides what `bytes` are. `filename` is consulted only to break ties between text formats and
/// to name broken zips; the client's content type is never trusted and not even taken.
///
/// A prefix of the file (the first 64 KiB, say) is enough: zip-based formats are then recognised
/// from their local headers, legacy Office files (OLE compound files) from the stream names in
/// their directory when it lies within the prefix, and JSON that merely runs out of input still
/// counts as JSON.
pub fn sniff(bytes: &[u8], filename: &str) -> Sniffed {
    let ext = extension(filename);
    if bytes.is_empty() {
        return Sniffed::new(Format::Text, "text/plain");
    }
    if let Some(found) = sniff_magic(bytes, &ext) {
        return found;
    }
    if is_zip(bytes) {
        return sniff_zip(bytes, &ext);
    }
    match text::decode(bytes) {
        Some(decoded) => sniff_text(&decoded.text, filename, &ext),
        None => Sniffed::new(Format::Unsupported, "application/octet-stream"),
    }
}

/// Fixed signatures of binary formats. Those the crate reads map to their format; common ones it
/// does not read still get an accurate content type, from `infer`'s table.
fn sniff_magic(b: &[u8], ext: &str) -> Option<Sniffed> {
    let head = &b[..b.len().min(1024)];
    // PDF readers accept the header anywhere in the first KiB, so attackers can put junk first.
    // (infer searches for `%PDF` without the version dash, which more text mentions.)
    if find(head, b"%PDF-").is_some() {
        return Some(Sniffed::new(Format::Pdf, "application/pdf"));
    }
    // RTF is text, so it must be named before text is left to the text rules below.
    if b.starts_with(b"{\\rtf") {
        return Some(Sniffed::new(Format::Rtf, "application/rtf"));
    }
    // infer tells compound files apart by the root entry's class id, which takes the whole file
    // to parse; the stream names in the directory tell them from a prefix.
    if b.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        // A compound file too damaged to show its streams is named by its extension, so a cut
        // `.msg` is reported as a broken message rather than stored as an unknown file.
        let named = match ext {
            "doc" | "dot" => Some(Format::Doc),
            "xls" | "xlt" => Some(Format::Xls),
            "ppt" | "pps" | "pot" => Some(Format::Ppt),
            "msg" => Some(Format::Msg),
            _ => None,
        };
        return Some(match crate::ole::kind(b).or(named) {
            Some(Format::Doc) => Sniffed::new(Format::Doc, "application/msword"),
            Some(Format::Xls) => Sniffed::new(Format::Xls, "application/vnd.ms-excel"),
            Some(Format::Ppt) => Sniffed::new(Format::Ppt, "application/vnd.ms-powerpoint"),
            Some(Format::Msg) => Sniffed::new(Format::Msg, "application/vnd.ms-outlook"),
            // Other compound files: .msi installers, Visio, encrypted OOXML, ...
            _ => Sniffed::new(Format::Unsupported, "application/x-ole-storage"),
        });
    }
    if crate::bundle::is_gzip(b) {
        return Some(sniff_gzip(b));
    }
    if crate::bundle::is_tar(b) {
        return Some(Sniffed::new(Format::Tar, "application/x-tar"));
    }
    // Zips are told apart by their members (`sniff_zip`). Some of infer's signatures are short
    // enough to begin ordinary text ("MZ", "BM", "%!", "-----BEGIN "): text is left to the text
    // rules, as every binary format here has control bytes or NULs early on.
    if is_zip(b) || text::decode(b).is_some() {
        return None;
    }
    let kind = infer::get(b)?;
    match (kind.matcher_type(), kind.extension()) {
        (infer::MatcherType::Image, "png" | "jpg" | "gif" | "webp" | "tif" | "bmp") => {
            Some(Sniffed::new(Format::Image, kind.mime_type()))
        }
        (infer::MatcherType::Audio, ext) => {
            Some(Sniffed::new(Format::Audio, registered_name(ext).unwrap_or(kind.mime_type())))
        }
        (infer::MatcherType::Video, _) => Some(Sniffed::new(Format::Video, kind.mime_type())),
        // Markup with NULs in it is not read as markup.
        (infer::MatcherType::Text, _) => None,
        (_, ext) => Some(Sniffed::new(Format::Unsupported, registered_name(ext).unwrap_or(kind.mime_type()))),
    }
}

/// A gzipped tar is a tar (read through the decompressor); anything else gzipped is one file.
/// Inflating the first KiB is enough to see a tar header.
fn sniff_gzip(bytes: &[u8]) -> Sniffed {
    let mut head = Vec::with_capacity(1024);
    let _ = flate2::read::MultiGzDecoder::new(bytes).take(1024).read_to_end(&mut head);
    if crate::bundle::is_tar(&head) {
        Sniffed::new(Format::Tar, "application/gzip")
    } else {
        Sniffed::new(Format::Gzip, "application/gzip")
    }
}

/// The registered names this crate has always given where infer answers with older ones;
/// notebooks' `allowed_content_types` may name them.
fn registered_name(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "ico" => "image/x-icon",
        "heif" => "image/heic",
        "elf" => "application/x-elf",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "woff" | "woff2" => "font/woff",
        _ => return None,
    })
}

fn is_zip(b: &[u8]) -> bool {
    b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") || b.starts_with(b"PK\x07\x08")
}

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
const ODT: &str = "application/vnd.oasis.opendocument.text";
const ODS: &str = "application/vnd.oasis.opendocument.spreadsheet";
const ODP: &str = "application/vnd.oasis.opendocument.presentation";
const EPUB: &str = "application/epub+zip";

/// Zip-based formats are told apart by their member names, or by the `mimetype` member that ODF and
/// EPUB store first and uncompressed.
fn sniff_zip(bytes: &[u8], ext: &str) -> Sniffed {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return sniff_broken_zip(bytes, ext);
    };
    if let Ok(entry) = zip.by_name("mimetype") {
        let mut mimetype = String::new();
        // The member is ~40 bytes; never read more than a line of it.
        if entry.take(200).read_to_string(&mut mimetype).is_ok()
            && let Some(found) = by_mimetype(mimetype.trim())
        {
            return found;
        }
    }
    let has = |name: &str| zip.index_for_name(name).is_some();
    if has("word/document.xml") {
        Sniffed::new(Format::Docx, DOCX)
    } else if has("xl/workbook.xml") {
        Sniffed::new(Format::Xlsx, XLSX)
    } else if has("ppt/presentation.xml") {
        Sniffed::new(Format::Pptx, PPTX)
    } else if has("META-INF/container.xml") {
        Sniffed::new(Format::Epub, EPUB)
    } else if has("content.xml") {
        by_zip_extension(ext).unwrap_or_else(|| Sniffed::new(Format::Odt, ODT))
    } else {
        Sniffed::new(Format::Zip, "application/zip")
    }
}

fn by_mimetype(mimetype: &str) -> Option<Sniffed> {
    match mimetype {
        ODT => Some(Sniffed::new(Format::Odt, ODT)),
        ODS => Some(Sniffed::new(Format::Ods, ODS)),
        ODP => Some(Sniffed::new(Format::Odp, ODP)),
        EPUB => Some(Sniffed::new(Format::Epub, EPUB)),
        // Other ODF kinds (graphics, formulas, templates) are real but unread types.
        m if m.starts_with("application/vnd.oasis.opendocument.") => Some(Sniffed::new(Format::Unsupported, m)),
        _ => None,
    }
}

fn by_zip_extension(ext: &str) -> Option<Sniffed> {
    match ext {
        "docx" | "docm" => Some(Sniffed::new(Format::Docx, DOCX)),
        "xlsx" | "xlsm" => Some(Sniffed::new(Format::Xlsx, XLSX)),
        "pptx" | "pptm" => Some(Sniffed::new(Format::Pptx, PPTX)),
        "odt" => Some(Sniffed::new(Format::Odt, ODT)),
        "ods" => Some(Sniffed::new(Format::Ods, ODS)),
        "odp" => Some(Sniffed::new(Format::Odp, ODP)),
        "epub" => Some(Sniffed::new(Format::Epub, EPUB)),
        _ => None,
    }
}

/// A zip whose central directory is unreadable (typically a truncated upload) is still recognisable
/// from the member names in its local headers, which are stored uncompressed. Naming it keeps
/// "your docx is corrupt" distinct from "we do not read this file".
fn sniff_broken_zip(bytes: &[u8], ext: &str) -> Sniffed {
    let head = &bytes[..bytes.len().min(1 << 20)];
    if find(head, b"word/").is_some() {
        return Sniffed::new(Format::Docx, DOCX);
    }
    if find(head, b"xl/").is_some() {
        return Sniffed::new(Format::Xlsx, XLSX);
    }
    if find(head, b"ppt/").is_some() {
        return Sniffed::new(Format::Pptx, PPTX);
    }
    if let Some(found) = stored_mimetype(bytes).and_then(by_mimetype) {
        return found;
    }
    by_zip_extension(ext).unwrap_or_else(|| Sniffed::new(Format::Zip, "application/zip"))
}

/// The content of a stored `mimetype` first member, read from its local header (ODF and EPUB put
/// it there precisely so that it can be read this way).
fn stored_mimetype(bytes: &[u8]) -> Option<&str> {
    let u16_at = |i: usize| Some(u16::from_le_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]) as usize);
    let size = u32::from_le_bytes(bytes.get(18..22)?.try_into().ok()?) as usize;
    let (name_len, extra_len) = (u16_at(26)?, u16_at(28)?);
    if bytes.get(30..30 + name_len)? != b"mimetype" || size > 100 {
        return None;
    }
    let start = 30 + name_len + extra_len;
    std::str::from_utf8(bytes.get(start..start + size)?).ok().map(str::trim)
}

fn sniff_text(text: &str, filename: &str, ext: &str) -> Sniffed {
    let trimmed = text.trim_start();
    let head: String = trimmed.chars().take(1024).collect::<String>().to_ascii_lowercase();

    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // Running out of input still counts, so sniffing the first KiBs of a large upload works.
        let json = match serde_json::from_str::<serde::de::IgnoredAny>(trimmed) {
            Ok(_) => true,
            Err(e) => e.is_eof(),
        };
        if json {
            // nbformat writes its keys sorted, so `"nbformat"` may be far from the start.
            if ext == "ipynb" || (head.contains("\"cell_type\"") && head.contains("\"cells\"")) {
                return Sniffed::new(Format::Ipynb, "application/x-ipynb+json");
            }
            return Sniffed::new(Format::Json, "application/json");
        }
    }
    if trimmed.starts_with('<') {
        if head.starts_with("<!doctype html") || head.contains("<html") {
            return Sniffed::new(Format::Html, "text/html");
        }
        if head.starts_with("<svg") || (head.contains("<svg") && (head.starts_with("<?xml") || head.starts_with("<!")))
        {
            return Sniffed::new(Format::Svg, "image/svg+xml");
        }
        if head.starts_with("<?xml") {
            return xml_flavour(ext);
        }
    }
    if head.starts_with("begin:vcalendar") {
        return Sniffed::new(Format::Ics, "text/calendar");
    }
    if head.starts_with("begin:vcard") {
        return Sniffed::new(Format::Vcf, "text/vcard");
    }
    if trimmed.starts_with("From ") && looks_like_email(trimmed, true) {
        return Sniffed::new(Format::Mbox, "application/mbox");
    }
    if looks_like_email(trimmed, ext == "eml") {
        return Sniffed::new(Format::Eml, "message/rfc822");
    }
    if head.starts_with("\\documentclass") {
        return Sniffed::new(Format::Latex, "application/x-tex");
    }
    match ext {
        "tex" | "latex" | "ltx" => return Sniffed::new(Format::Latex, "application/x-tex"),
        "rst" | "rest" => return Sniffed::new(Format::Rst, "text/x-rst"),
        "adoc" | "asciidoc" => return Sniffed::new(Format::Asciidoc, "text/asciidoc"),
        "org" => return Sniffed::new(Format::Org, "text/x-org"),
        "yaml" | "yml" => return Sniffed::new(Format::Yaml, "application/yaml"),
        "toml" => return Sniffed::new(Format::Toml, "application/toml"),
        "ini" | "cfg" => return Sniffed::new(Format::Ini, "text/x-ini"),
        "ics" | "ical" if head.contains("begin:vcalendar") => return Sniffed::new(Format::Ics, "text/calendar"),
        "vcf" | "vcard" if head.contains("begin:vcard") => return Sniffed::new(Format::Vcf, "text/vcard"),
        _ => {}
    }
    match ext {
        "md" | "markdown" | "mdown" | "mkd" | "mdx" => return Sniffed::new(Format::Markdown, "text/markdown"),
        "csv" => return Sniffed::new(Format::Csv, "text/csv"),
        "tsv" | "tab" => return Sniffed::new(Format::Tsv, "text/tab-separated-values"),
        "html" | "htm" | "xhtml" => return Sniffed::new(Format::Html, "text/html"),
        "xml" | "svg" | "rss" | "atom" | "xsd" | "xsl" | "xslt" | "plist" | "kml" | "gpx" | "xaml" | "csproj"
            if trimmed.starts_with('<') =>
        {
            return xml_flavour(ext);
        }
        "txt" | "text" | "log" => return Sniffed::new(Format::Text, "text/plain"),
        _ => {}
    }
    if let Some(lang) = text::language(filename, text) {
        return Sniffed::new(Format::SourceCode, text::language_content_type(lang));
    }
    Sniffed::new(Format::Text, "text/plain")
}

fn xml_flavour(ext: &str) -> Sniffed {
    let mime = match ext {
        "svg" => "image/svg+xml",
        "rss" => "application/rss+xml",
        "atom" => "application/atom+xml",
        _ => "application/xml",
    };
    Sniffed::new(Format::Xml, mime)
}

/// An RFC 5322 message starts with a header block. Two well-known headers among the first lines
/// (one if the file is named `.eml`) tell it from a text that merely begins "Subject: ...".
fn looks_like_email(text: &str, named_eml: bool) -> bool {
    const KNOWN: &[&str] = &[
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "received",
        "return-path",
        "message-id",
        "mime-version",
        "delivered-to",
        "reply-to",
        "content-type",
        "sender",
        "x-mailer",
        "dkim-signature",
        "authentication-results",
    ];
    let mut known = 0;
    for (i, line) in text.lines().take(60).enumerate() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue; // folded continuation of the previous header
        }
        if i == 0 && line.starts_with("From ") {
            continue; // mbox separator line
        }
        let Some((name, _)) = line.split_once(':') else { return false };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return false;
        }
        let name = name.to_ascii_lowercase();
        if KNOWN.contains(&name.as_str()) || name.starts_with("x-") {
            known += 1;
        }
    }
    known >= if named_eml { 1 } else { 2 }
}

/// Byte-substring search; inputs here are at most a MiB, so the naive scan is fine.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tie_breaks() {
        assert_eq!(sniff(b"# Title\nbody", "a.md").format, Format::Markdown);
        assert_eq!(sniff(b"a,b\n1,2", "a.csv").format, Format::Csv);
        assert_eq!(sniff(b"a\tb\n1\t2", "a.tsv").format, Format::Tsv);
        assert_eq!(sniff(b"fn main() {}", "main.rs").content_type, "text/x-rust");
        assert_eq!(sniff(b"just words", "notes").format, Format::Text);
        assert_eq!(sniff(b"{\"a\": 1}", "data.txt").format, Format::Json);
        assert_eq!(sniff(b"{not json", "data.json").format, Format::Text);
        assert_eq!(sniff(b"<!DOCTYPE html><p>x", "page").format, Format::Html);
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><a/>", "x").format, Format::Xml);
        assert_eq!(sniff(b"<svg xmlns=\"x\"/>", "pic.svg").format, Format::Svg);
        assert_eq!(sniff(b"<?xml version=\"1.0\"?>\n<svg/>", "x").format, Format::Svg);
        assert_eq!(sniff(b"BEGIN:VCALENDAR\r\nVERSION:2.0", "x").format, Format::Ics);
        assert_eq!(sniff(b"BEGIN:VCARD\r\nVERSION:3.0", "x").format, Format::Vcf);
        assert_eq!(
            sniff(b"From a@b.c Mon Jan  1 00:00:00 2024\nFrom: a@b.c\nSubject: x\n\nbody", "m").format,
            Format::Mbox
        );
        assert_eq!(sniff(b"{\"cells\": [{\"cell_type\": \"code\"", "x").format, Format::Ipynb);
        assert_eq!(sniff(b"{\"metadata\": {}}", "x.ipynb").format, Format::Ipynb);
        assert_eq!(sniff(b"\\documentclass{article}", "x").format, Format::Latex);
        for (name, format) in [
            ("a.rst", Format::Rst),
            ("a.adoc", Format::Asciidoc),
            ("a.org", Format::Org),
            ("a.yml", Format::Yaml),
            ("a.toml", Format::Toml),
            ("a.ini", Format::Ini),
        ] {
            assert_eq!(sniff(b"text", name).format, format, "{name}");
        }
        assert_eq!(sniff(b"", "empty.bin").format, Format::Text);
    }

    #[test]
    fn email_needs_a_header_block() {
        assert_eq!(sniff(b"From: a@b.c\nTo: d@e.f\nSubject: hi\n\nbody", "mail").format, Format::Eml);
        assert_eq!(sniff(b"Subject: my essay\n\nIt was a dark night", "essay").format, Format::Text);
    }

    #[test]
    fn binaries_get_content_types_but_no_format() {
        let s = sniff(b"\x1f\x8b\x08\x00rest", "a.gz");
        assert_eq!((s.format, s.content_type.as_str()), (Format::Gzip, "application/gzip"));
        let s = sniff(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", "e.zip");
        assert_eq!((s.format, s.content_type.as_str()), (Format::Zip, "application/zip"));
    }

    #[test]
    fn binary_signatures_keep_their_names_and_text_stays_text() {
        let named = |bytes: &[u8]| sniff(bytes, "upload").content_type;
        assert_eq!(named(b"fLaC\0\0\0\x22\x10\0"), "audio/flac");
        assert_eq!(named(b"RIFF\x24\0\0\0WAVEfmt \x10\0"), "audio/wav");
        assert_eq!(named(b"wOFF\0\x01\0\0\0\0"), "font/woff");
        assert_eq!(named(b"\0\0\x01\0\x01\0\x10\x10"), "image/x-icon");
        let elf: Vec<u8> = b"\x7fELF\x02\x01\x01".iter().copied().chain([0; 60]).collect();
        assert_eq!(named(&elf), "application/x-elf");
        let mz: Vec<u8> = b"MZ\x90\0\x03".iter().copied().chain([0; 60]).collect();
        assert_eq!(named(&mz), "application/vnd.microsoft.portable-executable");
        // infer's short signatures that also begin ordinary text.
        for text in ["MZ is a postcode area", "BMW service notes", "%!PS in a sentence", "-----BEGIN notes"] {
            assert_eq!(sniff(text.as_bytes(), "notes").format, Format::Text, "{text}");
        }
    }

    #[test]
    fn broken_zip_is_named_by_local_headers() {
        let s = sniff(b"PK\x03\x04garbage....word/document.xml....", "upload.bin");
        assert_eq!(s.format, Format::Docx);
    }
}
