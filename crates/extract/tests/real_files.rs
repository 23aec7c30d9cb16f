//! Extraction of files made by real tools (LibreOffice, pandoc, pdfTeX, dvips, Ghostscript), not
//! by the crate's own generator. The files and how they were made: `tests/corpus/README.md`.
//!
//! Every test names words that only the part it is about holds (a header, a note, a sheet), so a
//! regression in that part fails here rather than passing with the rest of the text.

mod common;

use aether_extract::{ExtractError, Extraction, Format, Limits, extract};
use common::{corpus, meta, ok, text};

fn assert_contains(ex: &Extraction, name: &str, needles: &[&str]) {
    let t = text(ex);
    for needle in needles {
        assert!(t.contains(needle), "{name}: {needle:?} missing from:\n{t}");
    }
}

/// The words of `report.fodt` that every word-processor rendering of it must keep.
const REPORT_BODY: &[&str] = &[
    "Annual Survey of Lighthouses",
    "The keeper logged forty storms in the northern archipelago.",
    "café naïve Ωmega 5 € price.",
    "Footnote about barnacles.",
    "Fastnet",
    "27 miles",
    "Closing paragraph mentions Pharos.",
];

#[test]
fn docx_body_header_footer_and_footnote() {
    let ex = ok("report.docx");
    assert_eq!(ex.format, Format::Docx);
    assert_contains(&ex, "report.docx", REPORT_BODY);
    assert_contains(&ex, "report.docx", &["Header marker Zephyr", "Footer marker Quokka"]);
    assert_eq!(meta(&ex, "title"), "Corpus Report");
    assert_eq!(meta(&ex, "author"), "Ada Lovelace");
    assert_eq!(meta(&ex, "subject"), "Extraction hardening");
}

#[test]
fn doc_word97_body_header_footer_and_footnote() {
    let ex = ok("report.doc");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Doc, "application/msword"));
    assert_contains(&ex, "report.doc", REPORT_BODY);
    assert_contains(&ex, "report.doc", &["Header marker Zephyr", "Footer marker Quokka", "Beacon\tRange"]);
    assert_eq!(meta(&ex, "title"), "Corpus Report");
    assert_eq!(meta(&ex, "author"), "Ada Lovelace");
    assert_eq!(meta(&ex, "subject"), "Extraction hardening");
    assert_eq!(meta(&ex, "keywords"), "corpus");
    // The body comes first, then the other stories.
    let t = text(&ex);
    assert!(t.find("Pharos").unwrap_or(usize::MAX) < t.find("Zephyr").unwrap_or(0), "{t}");
}

#[test]
fn odt_and_rtf_body() {
    for name in ["report.odt", "report.rtf"] {
        let ex = ok(name);
        assert_contains(&ex, name, REPORT_BODY);
        assert_eq!(meta(&ex, "title"), "Corpus Report", "{name}");
    }
    assert_eq!(ok("report.odt").format, Format::Odt);
    assert_eq!(ok("report.rtf").format, Format::Rtf);
}

#[test]
fn libreoffice_pdf() {
    let ex = ok("report.pdf");
    assert_eq!(ex.format, Format::Pdf);
    assert_contains(
        &ex,
        "report.pdf",
        &["Annual Survey of Lighthouses", "northern archipelago", "Header marker Zephyr", "Footer marker Quokka"],
    );
    assert_eq!(meta(&ex, "title"), "Corpus Report");
    assert_eq!(meta(&ex, "page_count"), 1);
}

#[test]
fn pdf_text_inside_a_form_xobject() {
    let ex = ok("form-xobject.pdf");
    // The page's own content only says `/Im1 Do`; the inner page's words are in the form.
    assert_contains(&ex, "form-xobject.pdf", &["Outer page text Walrus.", "Inner form text Xylophone quartet."]);
    assert_eq!(meta(&ex, "title"), "Form XObject sample");
}

#[test]
fn pdf_type3_fonts() {
    let ex = ok("type3-ps.pdf");
    assert_contains(&ex, "type3-ps.pdf", &["Boxed glyphs spell Marmalade", "Second line Kumquat"]);
    let ex = ok("type3-tex.pdf");
    let words: Vec<&str> = text(&ex).split_whitespace().collect();
    assert_eq!(words, ["Bitmap", "fonts", "spell", "Pumpernickel."], "{}", text(&ex));
}

#[test]
fn spreadsheets_every_sheet_and_cell() {
    for (name, format) in
        [("workbook.xlsx", Format::Xlsx), ("workbook.ods", Format::Ods), ("workbook.xls", Format::Xls)]
    {
        let ex = ok(name);
        assert_eq!(ex.format, format);
        assert_eq!(meta(&ex, "sheet_names"), &serde_json::json!(["Budget", "Crew"]), "{name}");
        assert_contains(
            &ex,
            name,
            &[
                "Item\tCost",
                "Telescope\t1250.5",
                "Spectrograph\t42",
                "Total\t1292.5",
                "Name\tRole",
                "Émilie Ørsted\tNavigator",
            ],
        );
        // LibreOffice's xls export stores no cached value for a string formula (a 0 instead).
        let formula = if format == Format::Xls { "Kai\t0" } else { "Kai\tAstronomer" };
        assert_contains(&ex, name, &[formula]);
        assert_eq!(meta(&ex, "title"), "Observatory Budget", "{name}");
    }
    assert_eq!(ok("workbook.xls").content_type, "application/vnd.ms-excel");
}

#[test]
fn presentations_slides_and_notes() {
    for (name, format) in [("slides.pptx", Format::Pptx), ("slides.odp", Format::Odp), ("slides.ppt", Format::Ppt)] {
        let ex = ok(name);
        assert_eq!(ex.format, format);
        assert_eq!(meta(&ex, "slide_count"), 2, "{name}");
        assert_contains(
            &ex,
            name,
            &[
                "Aurora expedition overview",
                "Depart from Tromsø at dawn",
                "Bring thermal gear",
                "Second slide Borealis",
            ],
        );
        assert_eq!(meta(&ex, "title"), "Expedition Briefing", "{name}");
    }
    for name in ["slides.pptx", "slides.ppt"] {
        let ex = ok(name);
        assert_contains(
            &ex,
            name,
            &["Remind everyone about the Nebula checklist.", "Speaker note: mention the Quasar budget."],
        );
        assert!(!text(&ex).contains("Click to edit"), "{name}: master prompts leaked:\n{}", text(&ex));
    }
    // pptx notes follow their slide.
    let t = text(&ok("slides.pptx")).to_string();
    let at = |s: &str| t.find(s).unwrap_or(usize::MAX);
    assert!(at("Nebula") < at("Borealis") && at("Borealis") < at("Quasar"), "{t}");
}

#[test]
fn pandoc_epub_and_html() {
    let ex = ok("book.epub");
    assert_eq!(ex.format, Format::Epub);
    assert_contains(&ex, "book.epub", &["Spring tides", "bulge called Perigee", "estuary of Calloway"]);
    assert_eq!(meta(&ex, "title"), "Tide Tables");
    assert_eq!(meta(&ex, "author"), "Rachel Carson");
    let ex = ok("book.html");
    assert_eq!(ex.format, Format::Html);
    assert_contains(&ex, "book.html", &["Neap tides", "estuary of Calloway"]);
    assert_eq!(meta(&ex, "title"), "Tide Tables");
}

const ALL: &[&str] = &[
    "report.docx",
    "report.doc",
    "report.odt",
    "report.rtf",
    "report.pdf",
    "form-xobject.pdf",
    "type3-ps.pdf",
    "type3-tex.pdf",
    "workbook.xlsx",
    "workbook.ods",
    "workbook.xls",
    "slides.pptx",
    "slides.odp",
    "slides.ppt",
    "book.epub",
    "book.html",
];

#[test]
fn truncated_real_files_never_panic() {
    // `extract` reports a caught panic as `Malformed`; `is_panic` tells it apart, and must not be.
    for name in ALL {
        let bytes = corpus(name);
        let len = bytes.len();
        let mut cuts: Vec<usize> = (1..16).map(|i| len * i / 16).collect();
        cuts.extend([1, 8, 512, 513, 4096, len.saturating_sub(1)]);
        for cut in cuts.into_iter().filter(|&c| c > 0 && c < len) {
            if let Err(e) = extract(&bytes[..cut], name, &Limits::default()) {
                assert!(!e.is_panic(), "{name} cut at {cut} of {len} bytes panicked: {e}");
            }
        }
    }
}

#[test]
fn real_files_respect_tight_limits() {
    // A budget smaller than a file's streams ends in LimitExceeded, never a panic or an overrun.
    let tight = Limits { max_decompressed_bytes: 1024, max_text_chars: 10, ..Limits::default() };
    for name in ALL {
        match extract(&corpus(name), name, &tight) {
            Ok(ex) => assert!(text(&ex).chars().count() <= 10, "{name}"),
            Err(ExtractError::LimitExceeded(_)) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
}
