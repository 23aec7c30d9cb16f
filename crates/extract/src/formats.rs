//! The table of supported formats: what each is, how it is recognised and what is read from it.
//! The README's table and `GET /api/v1/formats` are both made from [`FORMATS`], and a test keeps
//! the README's copy equal to [`formats_markdown_table`].

use serde::Serialize;

use crate::Format;

/// One supported format.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FormatInfo {
    pub format: Format,
    /// What users call it.
    pub name: &'static str,
    /// Usual file name extensions (the bytes decide; an extension only breaks ties between text
    /// formats).
    pub extensions: &'static [&'static str],
    /// The content types the server gives such files.
    pub content_types: &'static [&'static str],
    /// What becomes the document's text.
    pub text: &'static str,
}

const fn row(
    format: Format,
    name: &'static str,
    extensions: &'static [&'static str],
    content_types: &'static [&'static str],
    text: &'static str,
) -> FormatInfo {
    FormatInfo { format, name, extensions, content_types, text }
}

/// Every format the extractor reads, in the order of the README's table.
pub const FORMATS: &[FormatInfo] = &[
    row(Format::Pdf, "PDF", &["pdf"], &["application/pdf"], "text per page; scanned pages by OCR"),
    row(
        Format::Docx,
        "Word",
        &["docx", "docm"],
        &["application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
        "paragraphs, headers, footers, notes, comments",
    ),
    row(
        Format::Doc,
        "Word 97-2003",
        &["doc"],
        &["application/msword"],
        "main text, notes, headers, comments, text boxes",
    ),
    row(
        Format::Xlsx,
        "Excel",
        &["xlsx", "xlsm"],
        &["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"],
        "each sheet's cells, tab-separated",
    ),
    row(Format::Xls, "Excel 97-2003", &["xls"], &["application/vnd.ms-excel"], "each sheet's cells, tab-separated"),
    row(
        Format::Pptx,
        "PowerPoint",
        &["pptx", "pptm"],
        &["application/vnd.openxmlformats-officedocument.presentationml.presentation"],
        "each slide's text, then speaker notes",
    ),
    row(
        Format::Ppt,
        "PowerPoint 97-2003",
        &["ppt"],
        &["application/vnd.ms-powerpoint"],
        "each slide's text, then speaker notes",
    ),
    row(
        Format::Odt,
        "OpenDocument text",
        &["odt"],
        &["application/vnd.oasis.opendocument.text"],
        "paragraphs and headings",
    ),
    row(
        Format::Ods,
        "OpenDocument spreadsheet",
        &["ods"],
        &["application/vnd.oasis.opendocument.spreadsheet"],
        "each sheet's cells",
    ),
    row(
        Format::Odp,
        "OpenDocument presentation",
        &["odp"],
        &["application/vnd.oasis.opendocument.presentation"],
        "each slide's text",
    ),
    row(Format::Rtf, "Rich Text", &["rtf"], &["application/rtf"], "body text"),
    row(Format::Epub, "EPUB", &["epub"], &["application/epub+zip"], "chapters in reading order"),
    row(
        Format::Eml,
        "E-mail",
        &["eml"],
        &["message/rfc822"],
        "header lines, text bodies, then each attachment read as a document",
    ),
    row(Format::Mbox, "Mailbox", &["mbox"], &["application/mbox"], "each message as an e-mail, a page each"),
    row(
        Format::Msg,
        "Outlook message",
        &["msg"],
        &["application/vnd.ms-outlook"],
        "header lines, body, then each attachment read as a document",
    ),
    row(
        Format::Ics,
        "iCalendar",
        &["ics", "ical"],
        &["text/calendar"],
        "each event, to-do and journal entry: summary, when, where, who, description",
    ),
    row(
        Format::Vcf,
        "vCard",
        &["vcf", "vcard"],
        &["text/vcard"],
        "each contact: name, organisation, e-mail, phone, address, note",
    ),
    row(Format::Html, "HTML", &["html", "htm", "xhtml"], &["text/html"], "visible text, without scripts and styles"),
    row(
        Format::Xml,
        "XML",
        &["xml", "rss", "atom", "xsd", "xsl", "plist", "kml", "gpx"],
        &["application/xml", "application/rss+xml", "application/atom+xml"],
        "text nodes, one per line",
    ),
    row(Format::Svg, "SVG drawing", &["svg"], &["image/svg+xml"], "title, description and text elements"),
    row(Format::Json, "JSON", &["json"], &["application/json"], "one `key: value` line per value"),
    row(
        Format::Ipynb,
        "Jupyter notebook",
        &["ipynb"],
        &["application/x-ipynb+json"],
        "every cell's source, then its text outputs",
    ),
    row(
        Format::Text,
        "Plain text",
        &["txt", "text", "log"],
        &["text/plain"],
        "verbatim (UTF-8, UTF-16 or Windows-1252)",
    ),
    row(Format::Markdown, "Markdown", &["md", "markdown", "mdx"], &["text/markdown"], "verbatim"),
    row(Format::Rst, "reStructuredText", &["rst", "rest"], &["text/x-rst"], "text without adornments and directives"),
    row(
        Format::Asciidoc,
        "AsciiDoc",
        &["adoc", "asciidoc"],
        &["text/asciidoc"],
        "text without block delimiters and attributes",
    ),
    row(Format::Org, "Org", &["org"], &["text/x-org"], "text without keywords and drawers"),
    row(
        Format::Latex,
        "LaTeX",
        &["tex", "latex", "ltx"],
        &["application/x-tex"],
        "the body's text, without commands and comments",
    ),
    row(Format::Csv, "CSV", &["csv"], &["text/csv"], "verbatim"),
    row(Format::Tsv, "TSV", &["tsv", "tab"], &["text/tab-separated-values"], "verbatim"),
    row(Format::Yaml, "YAML", &["yaml", "yml"], &["application/yaml"], "verbatim"),
    row(Format::Toml, "TOML", &["toml"], &["application/toml"], "verbatim"),
    row(Format::Ini, "INI", &["ini", "cfg"], &["text/x-ini"], "verbatim"),
    row(
        Format::SourceCode,
        "Source code (50+ languages)",
        &["rs", "py", "js", "ts", "go", "java", "c", "cpp", "cs", "rb", "php", "sh", "sql", "..."],
        &["text/x-<language>"],
        "verbatim",
    ),
    row(
        Format::Image,
        "Images",
        &["png", "jpg", "jpeg", "gif", "webp", "tif", "tiff", "bmp"],
        &["image/png", "image/jpeg", "image/gif", "image/webp", "image/tiff", "image/bmp"],
        "OCR (every page of a TIFF); a thumbnail",
    ),
    row(
        Format::Audio,
        "Audio",
        &["mp3", "m4a", "wav", "flac", "ogg", "opus", "aac", "aiff", "amr"],
        &["audio/mpeg", "audio/m4a", "audio/wav", "audio/flac", "audio/ogg", "audio/aac", "audio/x-aiff", "audio/amr"],
        "speech, by a transcription service when one is configured; duration, codec and tags",
    ),
    row(
        Format::Video,
        "Video",
        &["mp4", "mov", "mkv", "webm", "avi", "wmv", "flv", "mpeg"],
        &[
            "video/mp4",
            "video/quicktime",
            "video/x-matroska",
            "video/webm",
            "video/x-msvideo",
            "video/x-ms-wmv",
            "video/x-flv",
            "video/mpeg",
        ],
        "speech, as for audio; duration, codecs, size, tags and a poster frame",
    ),
    row(Format::Zip, "Zip archive", &["zip"], &["application/zip"], "the listing, then each member read as a document"),
    row(
        Format::Tar,
        "Tar archive",
        &["tar", "tar.gz", "tgz"],
        &["application/x-tar", "application/gzip"],
        "the listing, then each member read as a document",
    ),
    row(Format::Gzip, "Gzip", &["gz"], &["application/gzip"], "the file inside, read as a document"),
];

/// The Markdown table of [`FORMATS`] the README carries.
pub fn formats_markdown_table() -> String {
    let mut table = String::from("| format | extensions | text |\n|---|---|---|\n");
    for info in FORMATS {
        let extensions = info.extensions.iter().map(|e| format!("`.{e}`").replace("`....`", "…")).collect::<Vec<_>>();
        table.push_str(&format!("| {} | {} | {} |\n", info.name, extensions.join(" "), info.text));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_readable_format_has_exactly_one_row() {
        use std::collections::HashSet;
        let formats: HashSet<_> = FORMATS.iter().map(|f| f.format).collect();
        assert_eq!(formats.len(), FORMATS.len(), "a format has two rows");
        for f in crate::tests::ALL_FORMATS {
            assert_eq!(formats.contains(f), *f != Format::Unsupported, "{f}");
        }
    }
}
