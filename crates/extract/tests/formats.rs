//! The formats added for breadth (mail, calendars, contacts, notebooks, lightweight markup,
//! configuration, SVG, archives), each read from a file made by a real tool (pandoc, Python's
//! icalendar, vobject, nbformat and mailbox, zip, GNU tar, gzip, Perl's OLE::Storage_Lite; see
//! `tests/corpus/formats/make.sh`), and their hostile variants failing with their reason.
//!
//! Every file holds "The quartz lantern glows over the <format> marsh.", so each test proves the
//! part of the file that carries the body was read, not just its metadata.

use std::io::Write;

mod common;

use aether_extract::{ExtractError, Extraction, FORMATS, Format, Limits, extract, formats_markdown_table};
use common::{meta, text};
use serde_json::json;

fn fixture(name: &str) -> Vec<u8> {
    common::corpus(&format!("formats/{name}"))
}

fn ok(name: &str) -> Extraction {
    common::ok(&format!("formats/{name}"))
}

fn marker(word: &str) -> String {
    format!("The quartz lantern glows over the {word} marsh.")
}

fn assert_contains(ex: &Extraction, needles: &[&str]) {
    let t = text(ex);
    for needle in needles {
        assert!(t.contains(needle), "{needle:?} missing from:\n{t}");
    }
}

fn assert_lacks(ex: &Extraction, needles: &[&str]) {
    let t = text(ex);
    for needle in needles {
        assert!(!t.contains(needle), "{needle:?} should not be in:\n{t}");
    }
}

#[test]
fn calendar_entries_are_unfolded_unescaped_and_described() {
    let ex = ok("calendar.ics");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Ics, "text/calendar"));
    assert_contains(
        &ex,
        &[
            "Event: Quartz lantern review",
            "When: 2024-03-14 09:30 (Europe/Paris) to 2024-03-14 11:00 (Europe/Paris)",
            "Where: Room 4, Heron House",
            "Ada Example <pii.ics@example.com>",
            "Bo Sample <bo.sample@example.org>",
            &marker("ics"),
            "Event: Heron count, north; south",
            "When: 2024-03-15",
            "To-do: Buy pebbles",
        ],
    );
    // Time zone definitions are not events.
    assert_lacks(&ex, &["STANDARD", "TZOFFSET", "BEGIN:"]);
    assert_eq!((meta(&ex, "event_count"), meta(&ex, "todo_count")), (&json!(2), &json!(1)));
    assert_eq!(meta(&ex, "product"), "-//Heron Institute//Fixture Maker 1.0//EN");
    assert!(ex.warnings.is_empty(), "{:?}", ex.warnings);
}

#[test]
fn truncated_calendar_keeps_what_was_read_and_says_so() {
    let ex = ok("hostile/truncated.ics");
    assert_contains(&ex, &["Quartz lantern review", &marker("ics")]);
    assert!(ex.warnings.iter().any(|w| w.contains("END:VCALENDAR")), "{:?}", ex.warnings);
    let not_calendar = extract(b"BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n", "x.ics", &Limits::default());
    assert_eq!(not_calendar.map(|e| e.format).ok(), Some(Format::Vcf), "content decides, not the name");
}

#[test]
fn vcards_become_one_paragraph_per_contact() {
    let ex = ok("contacts.vcf");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Vcf, "text/vcard"));
    assert_contains(
        &ex,
        &[
            "Ada Example",
            "Email: pii.vcf@example.com",
            "Phone: +44 20 7946 0958",
            "Organization: Heron Institute",
            "Title: Senior Heron Counter",
            "Met at the spring census; knows every reed bed.",
            &marker("vcf"),
            "Børge Sämple",
        ],
    );
    assert_eq!(meta(&ex, "card_count"), 2);
    assert_eq!(meta(&ex, "names"), &json!(["Ada Example", "Børge Sämple"]));
}

#[test]
fn notebook_cells_and_text_outputs_in_order() {
    let ex = ok("analysis.ipynb");
    assert_eq!(ex.format, Format::Ipynb);
    let t = text(&ex);
    let order = [
        "# Heron analysis",
        &marker("ipynb"),
        "print(\"herons counted\")",
        "herons counted\n",
        "<Heron map 1x1>",
        "raw cell: heron tally 42",
    ];
    let mut at = 0;
    for needle in order {
        let found = t[at..].find(needle).unwrap_or_else(|| panic!("{needle:?} missing after byte {at} of:\n{t}"));
        at += found + needle.len();
    }
    // The PNG's base64 is not text.
    assert_lacks(&ex, &["iVBORw0KGgo"]);
    assert_eq!(meta(&ex, "cell_count"), 4);
    assert_eq!(meta(&ex, "code_cell_count"), 2);
    assert_eq!(meta(&ex, "image_output_count"), 1);
    assert_eq!(meta(&ex, "language"), "python");
    assert_eq!(meta(&ex, "title"), "Heron analysis");
    match extract(&fixture("hostile/broken.ipynb"), "broken.ipynb", &Limits::default()) {
        Err(ExtractError::Malformed(reason)) => assert!(reason.contains("cells"), "{reason}"),
        other => panic!("a notebook whose cells are not a list must fail: {other:?}"),
    }
}

#[test]
fn mailbox_messages_each_on_a_page() {
    let ex = ok("mailbox.mbox");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Mbox, "application/mbox"));
    assert_contains(
        &ex,
        &[
            "From: Ada Example <pii.mbox@example.com>",
            "Subject: Heron sighting 1",
            &marker("mbox"),
            // mboxrd quoting is undone.
            "\nFrom the hide we saw three egrets.",
            "Subject: Heron sighting 3",
        ],
    );
    let pages: Vec<&str> = text(&ex).split('\u{0C}').collect();
    assert_eq!(pages.len(), 3, "one page per message");
    assert!(pages[1].contains("Heron sighting 2") && !pages[1].contains("Heron sighting 3"));
    assert_eq!(meta(&ex, "message_count"), 3);
    assert_eq!(meta(&ex, "subjects"), &json!(["Heron sighting 1", "Heron sighting 2", "Heron sighting 3"]));
}

#[test]
fn lightweight_markup_loses_its_syntax_and_keeps_its_text() {
    for (name, format, word) in [
        ("notes.rst", Format::Rst, "rst"),
        ("notes.adoc", Format::Asciidoc, "asciidoc"),
        ("notes.org", Format::Org, "org"),
    ] {
        let ex = ok(name);
        assert_eq!(ex.format, format, "{name}");
        assert_contains(
            &ex,
            &[&marker(word), "Observations", "Method", "def count(birds):", "Heron Institute", "Bittern"],
        );
        assert_eq!(meta(&ex, "title"), "Heron Field Notes", "{name}");
        assert!(meta(&ex, "section_count").as_u64() >= Some(2), "{name}: {:?}", ex.metadata);
        // Adornments, keywords and link syntax are gone.
        assert_lacks(&ex, &["=====", "#+title", "#+TITLE", "<https://", "[[", ".. code::"]);
    }
    assert_eq!(meta(&ok("notes.rst"), "author"), "Ada Example");
    assert_eq!(meta(&ok("notes.org"), "author"), "Ada Example");
}

#[test]
fn latex_body_without_commands() {
    let ex = ok("paper.tex");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Latex, "application/x-tex"));
    assert_contains(&ex, &[&marker("latex"), "Observations", "pii.latex@example.com", "The formula is a joke"]);
    assert_lacks(&ex, &["\\section", "\\usepackage", "\\begin", "microtype", "\\textbf", "hypersetup"]);
    assert_eq!(meta(&ex, "title"), "Heron Field Notes");
    assert_eq!(meta(&ex, "author"), "Ada Example");
    assert_eq!(meta(&ex, "document_class"), "article");
}

#[test]
fn configuration_files_keep_their_comments_and_outline() {
    let yaml = ok("settings.yaml");
    assert_eq!((yaml.format, yaml.content_type.as_str()), (Format::Yaml, "application/yaml"));
    assert_contains(&yaml, &[&marker("yaml"), "pii.yaml@example.com", "#"]);
    assert!(
        meta(&yaml, "top_level_keys").as_array().is_some_and(|k| k.contains(&json!("owner_email"))),
        "{:?}",
        yaml.metadata
    );
    let toml = ok("settings.toml");
    assert_eq!((toml.format, toml.content_type.as_str()), (Format::Toml, "application/toml"));
    assert_contains(&toml, &[&marker("toml"), "pii.toml@example.com"]);
    assert!(
        meta(&toml, "top_level_keys").as_array().is_some_and(|k| k.contains(&json!("owner_email"))),
        "{:?}",
        toml.metadata
    );
    assert!(!meta(&toml, "tables").as_array().is_none_or(Vec::is_empty), "{:?}", toml.metadata);
    let ini = ok("settings.ini");
    assert_eq!(ini.format, Format::Ini);
    assert_contains(&ini, &[&marker("ini"), "pii.ini@example.com", "; Survey settings"]);
    assert_eq!(meta(&ini, "sections"), &json!(["general", "survey", "survey.counter"]));
}

#[test]
fn svg_text_without_geometry() {
    let ex = ok("drawing.svg");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Svg, "image/svg+xml"));
    assert_contains(&ex, &["Heron map", "A sketch of the marsh", &marker("svg"), "North pool: three herons seen"]);
    assert_lacks(&ex, &["Comments are not", "#dfeee0"]);
    assert_eq!(
        (meta(&ex, "width"), meta(&ex, "height"), meta(&ex, "viewbox")),
        (&json!("320"), &json!("160"), &json!("0 0 320 160"))
    );
    assert_eq!(meta(&ex, "title"), "Heron map");
    assert_eq!(meta(&ex, "text_element_count"), 2);
}

/// The members every archive fixture holds, and where each member's text must be.
fn assert_archive(ex: &Extraction, word: &str) {
    let t = text(ex);
    let pages: Vec<&str> = t.split('\u{0C}').collect();
    // Page 1 is the listing.
    for member in ["docs/notes.md", "docs/data.csv", "empty/", "inner.zip", "readme.txt"] {
        assert!(pages[0].contains(member), "{member} missing from the listing:\n{}", pages[0]);
    }
    let members = meta(ex, "members").as_array().expect("members");
    let page_of = |path: &str| {
        let entry = members.iter().find(|m| m["path"] == path).unwrap_or_else(|| panic!("{path} not in {members:?}"));
        entry["page"].as_u64().unwrap_or_else(|| panic!("{path} has no page: {entry}")) as usize
    };
    // Each member's text is on its page, headed by its path.
    for (path, needle) in
        [("readme.txt", marker(word)), ("docs/notes.md", "Nested member text for the archive.".into())]
    {
        let page = pages[page_of(path) - 1];
        assert!(
            page.trim_start().starts_with(path) && page.contains(&needle),
            "{path}: page {}:\n{page}",
            page_of(path)
        );
    }
    // The zip inside is opened too, one level down: its listing, then its member on the next page.
    let inner = page_of("inner.zip");
    assert!(pages[inner - 1].contains("Contents:\ndeep.txt"), "inner.zip:\n{}", pages[inner - 1]);
    assert!(
        pages[inner].trim_start().starts_with("deep.txt") && pages[inner].contains("Deep member text."),
        "{}",
        pages[inner]
    );
    let format_of = |path: &str| members.iter().find(|m| m["path"] == path).map(|m| m["format"].clone());
    assert_eq!(format_of("docs/data.csv"), Some(json!("csv")));
    assert_eq!(format_of("inner.zip"), Some(json!("zip")));
    assert_eq!(meta(ex, "member_count"), 6);
    assert_eq!(meta(ex, "directory_count"), 2);
}

#[test]
fn zip_tar_and_tar_gz_list_and_read_their_members() {
    let zip = ok("bundle.zip");
    assert_eq!((zip.format, zip.content_type.as_str()), (Format::Zip, "application/zip"));
    assert_archive(&zip, "zip");
    let tar = ok("bundle.tar");
    assert_eq!((tar.format, tar.content_type.as_str()), (Format::Tar, "application/x-tar"));
    assert_archive(&tar, "tar");
    let tgz = ok("bundle.tar.gz");
    assert_eq!(
        (tgz.format, tgz.content_type.as_str(), meta(&tgz, "compression")),
        (Format::Tar, "application/gzip", &json!("gzip"))
    );
    assert_archive(&tgz, "targz");
}

#[test]
fn a_gzipped_file_is_read_as_the_file_inside() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"# Heron\n\nThe quartz lantern glows over the gz marsh.\n").expect("in memory");
    let bytes = gz.finish().expect("in memory");
    let ex = extract(&bytes, "notes.md.gz", &Limits::default()).expect("gz");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Gzip, "application/gzip"));
    assert_contains(&ex, &["notes.md", &marker("gz")]);
    assert_eq!(meta(&ex, "members")[0]["format"], "markdown");
}

#[test]
fn truncated_archives_fail_with_their_reason() {
    match extract(&fixture("hostile/truncated.tar.gz"), "bundle.tar.gz", &Limits::default()) {
        Err(ExtractError::Malformed(reason)) => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("a cut tar.gz must fail: {other:?}"),
    }
    let zip = fixture("bundle.zip");
    match extract(&zip[..zip.len() / 3], "bundle.zip", &Limits::default()) {
        Err(ExtractError::Malformed(reason)) => assert!(reason.contains("zip"), "{reason}"),
        other => panic!("a cut zip must fail: {other:?}"),
    }
    let tar = fixture("bundle.tar");
    match extract(&tar[..2000], "bundle.tar", &Limits::default()) {
        Err(ExtractError::Malformed(reason)) => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("a cut tar must fail: {other:?}"),
    }
}

/// A zip of `count` members of `size` zero bytes each.
fn zip_of_zeros(count: usize, size: usize) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let zeros = vec![0u8; size];
    for i in 0..count {
        zip.start_file(format!("zeros-{i}.bin"), options).expect("in memory");
        zip.write_all(&zeros).expect("in memory");
    }
    zip.finish().expect("in memory").into_inner()
}

#[test]
fn bombs_spend_one_budget_at_every_depth() {
    let limits = Limits { max_decompressed_bytes: 8 << 20, ..Limits::default() };
    // A flat bomb: 16 MiB of zeros in a few KiB.
    let flat = zip_of_zeros(4, 4 << 20);
    assert!(flat.len() < 64 << 10);
    assert!(matches!(extract(&flat, "bomb.zip", &limits), Err(ExtractError::LimitExceeded(_))));
    // The same bomb split across nested zips, each level under the budget on its own.
    let inner = zip_of_zeros(1, 3 << 20);
    let mut outer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for i in 0..4 {
        outer.start_file(format!("inner-{i}.zip"), options).expect("in memory");
        outer.write_all(&inner).expect("in memory");
    }
    let nested = outer.finish().expect("in memory").into_inner();
    match extract(&nested, "nested.zip", &limits) {
        Err(ExtractError::LimitExceeded(reason)) => assert!(reason.contains("max_decompressed_bytes"), "{reason}"),
        other => panic!("nested bombs share the budget: {other:?}"),
    }
    // A gzip bomb and a tar.gz bomb.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 16 << 20]).expect("in memory");
    let gz = gz.finish().expect("in memory");
    assert!(matches!(extract(&gz, "zeros.gz", &limits), Err(ExtractError::LimitExceeded(_))));
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best()));
    let mut header = tar::Header::new_gnu();
    header.set_size(16 << 20);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "zeros.bin", std::io::Read::take(std::io::repeat(0), 16 << 20)).expect("in memory");
    let tgz = tar.into_inner().expect("in memory").finish().expect("in memory");
    assert!(matches!(extract(&tgz, "zeros.tar.gz", &limits), Err(ExtractError::LimitExceeded(_))));
    // Too many entries is refused before inflating anything.
    let many = zip_of_zeros(50, 1);
    let few = Limits { max_archive_entries: 20, ..Limits::default() };
    assert!(matches!(extract(&many, "many.zip", &few), Err(ExtractError::LimitExceeded(_))));
}

#[test]
fn an_archive_that_contains_itself_ends_at_the_nesting_limit() {
    // Each level holds the one before: a chain deeper than any real archive, as a quine zip is.
    let mut level = b"bottom".to_vec();
    for depth in 0..8 {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file(format!("level-{depth}.zip"), zip::write::SimpleFileOptions::default()).expect("in memory");
        zip.write_all(&level).expect("in memory");
        level = zip.finish().expect("in memory").into_inner();
    }
    let ex = extract(&level, "chain.zip", &Limits::default()).expect("listed, not failed");
    assert!(ex.warnings.iter().any(|w| w.contains("nested deeper than 3")), "{:?}", ex.warnings);
    assert!(!text(&ex).contains("bottom"));
}

#[test]
fn a_damaged_member_is_a_warning_not_a_failed_archive() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("broken.pdf", options).expect("in memory");
    zip.write_all(b"%PDF-1.7\nnot really").expect("in memory");
    zip.start_file("fine.txt", options).expect("in memory");
    zip.write_all(b"The quartz lantern glows over the member marsh.").expect("in memory");
    let bytes = zip.finish().expect("in memory").into_inner();
    let ex = extract(&bytes, "mixed.zip", &Limits::default()).expect("archive");
    assert_contains(&ex, &[&marker("member")]);
    assert!(ex.warnings.iter().any(|w| w.starts_with("broken.pdf: not read")), "{:?}", ex.warnings);
    let members = meta(&ex, "members").as_array().expect("in memory");
    assert!(members[0]["error"].is_string(), "{members:?}");
}

#[test]
fn outlook_message_headers_body_and_attachment() {
    let ex = ok("message.msg");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Msg, "application/vnd.ms-outlook"));
    assert_contains(
        &ex,
        &[
            "From: Ada Example <pii.msg@example.com>",
            "To: Bo Sample <bo.sample@example.org>",
            "Cc: Cy Other <cy.other@example.org>",
            "Date: 2024-03-14T09:30:00Z",
            "Subject: Heron survey results",
            &marker("msg"),
            "Attachment marker: the heron tally is forty-two.",
        ],
    );
    let pages: Vec<&str> = text(&ex).split('\u{0C}').collect();
    assert!(pages.len() == 2 && pages[1].trim_start().starts_with("tally.txt"), "the attachment is page 2: {pages:?}");
    assert_eq!(meta(&ex, "subject"), "Heron survey results");
    assert_eq!(meta(&ex, "attachments"), &json!(["tally.txt"]));
    assert_eq!(meta(&ex, "message_id"), "<heron-survey-1@example.com>");
    // A cut message has lost its directory: it is named by its extension and fails with why.
    match extract(&fixture("hostile/truncated.msg"), "message.msg", &Limits::default()) {
        Err(ExtractError::Malformed(reason)) => assert!(reason.contains("compound file"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_readme_carries_the_format_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let table = formats_markdown_table();
    assert!(readme.contains(&table), "README.md must carry this table (from aether_extract::FORMATS):\n{table}");
    assert!(FORMATS.len() >= 35, "{}", FORMATS.len());
}

#[test]
fn every_cut_of_every_fixture_fails_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/formats");
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("fixture");
        for cut in [1, 7, 64, 511, bytes.len() / 4, bytes.len() / 2, bytes.len() * 3 / 4, bytes.len().saturating_sub(1)]
        {
            let cut = cut.min(bytes.len());
            if let Err(e) = extract(&bytes[..cut], &name, &Limits::default()) {
                assert!(!e.is_panic(), "{name} cut at {cut} of {} bytes panicked: {e}", bytes.len());
            }
        }
    }
}

#[test]
fn an_archive_text_stays_within_the_text_limit() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in ["a.txt", "b.txt", "c.txt"] {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).expect("in memory");
        zip.write_all("heron ".repeat(40).as_bytes()).expect("in memory");
    }
    let bytes = zip.finish().expect("in memory").into_inner();
    let limits = Limits { max_text_chars: 300, ..Limits::default() };
    let ex = extract(&bytes, "long.zip", &limits).expect("archive");
    assert!(ex.text_truncated, "{:?}", ex.text);
    assert!(text(&ex).chars().count() <= 300, "{}", text(&ex).len());
    assert_eq!(meta(&ex, "member_count"), 3, "every member is still listed");
}

#[test]
fn a_deeply_nested_drawing_is_read_whole() {
    // 50,000 nested groups, each with a text node (the walk keeps counts, not a scan of
    // the open elements per node, and does not recurse).
    let depth = 50_000;
    let mut svg = String::from("<svg xmlns=\"http://www.w3.org/2000/svg\"><text>");
    for _ in 0..depth {
        svg.push_str("<g>x ");
    }
    for _ in 0..depth {
        svg.push_str("</g>");
    }
    svg.push_str("</text></svg>");
    let ex = extract(svg.as_bytes(), "deep.svg", &Limits::default()).expect("svg");
    assert_eq!(ex.format, Format::Svg);
    assert_eq!(text(&ex).split_whitespace().count(), depth);
}
