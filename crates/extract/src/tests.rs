//! End-to-end tests through [`extract`] with fixtures built in memory by [`crate::corpus`].

use std::io::{Cursor, Write};

use image::ImageFormat;
use serde_json::Value;
use zip::write::SimpleFileOptions;

use crate::corpus;
use crate::{ExtractError, Extraction, Format, Limits, extract, sniff};

/// Every variant of [`Format`]; add new ones here (the format table's test reads it).
pub(crate) const ALL_FORMATS: &[Format] = &[
    Format::Text,
    Format::Markdown,
    Format::Csv,
    Format::Tsv,
    Format::Json,
    Format::Xml,
    Format::Html,
    Format::Pdf,
    Format::Docx,
    Format::Xlsx,
    Format::Pptx,
    Format::Odt,
    Format::Ods,
    Format::Odp,
    Format::Rtf,
    Format::Epub,
    Format::Eml,
    Format::Doc,
    Format::Xls,
    Format::Ppt,
    Format::SourceCode,
    Format::Image,
    Format::Msg,
    Format::Mbox,
    Format::Ics,
    Format::Vcf,
    Format::Ipynb,
    Format::Latex,
    Format::Rst,
    Format::Asciidoc,
    Format::Org,
    Format::Yaml,
    Format::Toml,
    Format::Ini,
    Format::Svg,
    Format::Zip,
    Format::Tar,
    Format::Gzip,
    Format::Audio,
    Format::Video,
    Format::Unsupported,
];

fn ok(bytes: &[u8], name: &str) -> Extraction {
    match extract(bytes, name, &Limits::default()) {
        Ok(ex) => ex,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn text(ex: &Extraction) -> &str {
    ex.text.as_deref().unwrap_or_default()
}

fn meta<'a>(ex: &'a Extraction, key: &str) -> &'a Value {
    ex.metadata.get(key).unwrap_or(&Value::Null)
}

fn limits(edit: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    edit(&mut l);
    l
}

// ---------------------------------------------------------------------------------------------
// Plain text family

#[test]
fn plain_text_with_counts() {
    let ex = ok("hello world\nsecond line\n".as_bytes(), "notes.txt");
    assert_eq!((ex.format, ex.content_type.as_str(), ex.supported), (Format::Text, "text/plain", true));
    assert_eq!(text(&ex), "hello world\nsecond line");
    assert_eq!(meta(&ex, "line_count"), 2);
    assert_eq!(meta(&ex, "word_count"), 4);
    assert_eq!(meta(&ex, "encoding"), "utf-8");
    assert!(!ex.text_truncated);
}

#[test]
fn legacy_8bit_text_is_decoded() {
    let ex = ok(b"Na\xefve caf\xe9", "old.txt");
    assert_eq!(text(&ex), "Naïve café");
    assert_eq!(meta(&ex, "encoding"), "windows-1252");
}

#[test]
fn markdown_title() {
    let ex = ok(corpus::markdown("Launch Plan", &["Ship it."]).as_bytes(), "plan.md");
    assert_eq!(ex.format, Format::Markdown);
    assert_eq!(ex.content_type, "text/markdown");
    assert_eq!(meta(&ex, "title"), "Launch Plan");
    assert!(text(&ex).contains("Ship it."));
}

#[test]
fn csv_and_tsv_columns() {
    let rows = vec![vec!["id".to_string(), "full name".into()], vec!["1".into(), "Doe, Jane".into()]];
    let ex = ok(corpus::delimited(&rows, ',').as_bytes(), "people.csv");
    assert_eq!(ex.format, Format::Csv);
    assert_eq!(meta(&ex, "columns"), &serde_json::json!(["id", "full name"]));
    assert_eq!(meta(&ex, "row_count"), 2);
    assert!(text(&ex).contains("\"Doe, Jane\""));
    let ex = ok(corpus::delimited(&rows, '\t').as_bytes(), "people.tsv");
    assert_eq!(ex.format, Format::Tsv);
    assert_eq!(meta(&ex, "column_count"), 2);
}

#[test]
fn source_code_language() {
    let ex = ok(b"fn main() {\n    println!(\"hi\");\n}\n", "src/main.rs");
    assert_eq!((ex.format, meta(&ex, "language")), (Format::SourceCode, &Value::from("rust")));
    let ex = ok(b"#!/usr/bin/env python3\nprint('hi')\n", "tool");
    assert_eq!((ex.format, meta(&ex, "language")), (Format::SourceCode, &Value::from("python")));
    assert_eq!(ex.content_type, "text/x-python");
}

#[test]
fn empty_file_is_empty_text() {
    let ex = ok(b"", "empty.dat");
    assert_eq!(ex.format, Format::Text);
    assert_eq!(ex.text.as_deref(), Some(""));
    assert!(ex.supported);
}

#[test]
fn text_is_truncated_at_a_char_boundary() {
    let l = limits(|l| l.max_text_chars = 10);
    let ex = extract("héllo wörld and much more".as_bytes(), "a.txt", &l).expect("text");
    assert_eq!(text(&ex), "héllo wörl");
    assert!(ex.text_truncated);
    // Structured formats stop early too.
    let docx = corpus::docx("T", &["aaaaaaaa", "bbbbbbbb", "cccccccc"]).expect("docx");
    let ex = extract(&docx, "a.docx", &l).expect("docx");
    assert!(ex.text_truncated);
    assert_eq!(text(&ex), "aaaaaaaa\nb");
}

// ---------------------------------------------------------------------------------------------
// Structured text

#[test]
fn json_keys_and_values() {
    let ex = ok(corpus::json("Budget 2024", &["first para", "second para"]).as_bytes(), "data.json");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Json, "application/json"));
    let t = text(&ex);
    assert!(t.contains("title: Budget 2024"), "{t}");
    assert!(t.contains("paragraphs:\nfirst para\nsecond para"), "{t}");
    assert!(t.contains("version: 1"), "{t}");
    assert_eq!(meta(&ex, "json_root"), "object");
}

#[test]
fn xml_text_nodes() {
    let ex = ok(corpus::xml("Inventory", &["Widgets & gadgets", "Bolts <M8>"]).as_bytes(), "feed");
    assert_eq!(ex.format, Format::Xml);
    assert_eq!(text(&ex), "Widgets & gadgets\nBolts <M8>");
    assert_eq!(meta(&ex, "root_element"), "doc");
}

#[test]
fn html_visible_text_and_title() {
    let ex = ok(corpus::html("Team Page", &["Alice leads <b>design</b>.", "Bob runs ops."]).as_bytes(), "index.html");
    assert_eq!(ex.format, Format::Html);
    assert_eq!(meta(&ex, "title"), "Team Page");
    assert_eq!(meta(&ex, "language"), "en");
    let t = text(&ex);
    assert!(t.contains("Alice leads <b>design</b>."), "escaped markup is text: {t}");
    assert!(t.contains("Bob runs ops."));
    assert!(!t.contains("tracking") && !t.contains("font-family"), "script/style leaked: {t}");
}

// ---------------------------------------------------------------------------------------------
// PDF

#[test]
fn pdf_text_pages_and_info() {
    let pdf = corpus::pdf("Annual (Report)", &["Revenue grew strongly".into(), "Costs fell in Zürich".into()]);
    let ex = ok(&pdf, "report.pdf");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Pdf, "application/pdf"));
    assert_eq!(meta(&ex, "page_count"), 2);
    assert_eq!(meta(&ex, "title"), "Annual (Report)");
    assert_eq!(meta(&ex, "author"), "Corpus Generator");
    assert_eq!(meta(&ex, "created"), "2024-03-05T09:30:00Z");
    assert_eq!(text(&ex), "Revenue grew strongly\n\u{c}\nCosts fell in Zürich");
    assert!(ex.warnings.is_empty(), "{:?}", ex.warnings);
}

#[test]
fn pdf_pages_are_capped() {
    let pages: Vec<String> = (1..=5).map(|i| format!("page number {i}")).collect();
    let ex = extract(&corpus::pdf("T", &pages), "a.pdf", &limits(|l| l.max_pages = 2)).expect("pdf");
    assert_eq!(meta(&ex, "page_count"), 5);
    assert!(text(&ex).contains("page number 2"));
    assert!(!text(&ex).contains("page number 3"));
    assert!(ex.warnings.iter().any(|w| w.contains("max_pages")));
}

#[test]
fn truncated_pdf_is_malformed() {
    let pdf = corpus::pdf("T", &["some text here".into(), "more".into()]);
    for cut in [pdf.len() / 2, pdf.len() - 30, 20] {
        match extract(&pdf[..cut], "cut.pdf", &Limits::default()) {
            Err(ExtractError::Malformed(_)) => {}
            other => panic!("cut at {cut}: expected Malformed, got {other:?}"),
        }
    }
}

/// Writes a PDF from raw object bodies with a correct xref table (object numbers from 1).
fn pdf_from_objects(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.5\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(obj);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// `pages` pages that all share content stream object 3, whose body is `stream`.
fn pdf_sharing_one_stream(pages: usize, dict: &str, stream: &[u8]) -> Vec<u8> {
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 4 + i)).collect();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")).into_bytes(),
    ];
    let mut content = format!("<< {dict} /Length {} >>\nstream\n", stream.len()).into_bytes();
    content.extend_from_slice(stream);
    content.extend_from_slice(b"\nendstream");
    objects.push(content);
    for _ in 0..pages {
        objects.push(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>".to_vec());
    }
    pdf_from_objects(&objects)
}

#[test]
fn pdf_stream_bomb_hits_the_budget() {
    let mut stream = lopdf::Stream::new(lopdf::Dictionary::new(), vec![b' '; 8 << 20]);
    stream.compress().expect("deflate");
    assert!(stream.content.len() < 100_000);
    let pdf = pdf_sharing_one_stream(1, "/Filter /FlateDecode", &stream.content);
    let result = extract(&pdf, "bomb.pdf", &limits(|l| l.max_decompressed_bytes = 1 << 20));
    assert!(matches!(result, Err(ExtractError::LimitExceeded(_))), "{result:?}");
    // Under the default budget the same file is fine (8 MiB of spaces, no text).
    assert!(extract(&pdf, "bomb.pdf", &Limits::default()).is_ok());
}

#[test]
fn pdf_budget_is_shared_across_pages() {
    // Each page alone is under the budget; ten pages sharing the stream are not.
    let pdf = pdf_sharing_one_stream(10, "", &vec![b' '; 300_000]);
    let result = extract(&pdf, "shared.pdf", &limits(|l| l.max_decompressed_bytes = 1_000_000));
    assert!(matches!(result, Err(ExtractError::LimitExceeded(_))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Office Open XML

#[test]
fn docx_text_and_properties() {
    let docx = corpus::docx("Offer Letter", &["Dear Ms. Smith,", "We are pleased & proud."]).expect("docx");
    let ex = ok(&docx, "offer.docx");
    assert_eq!(ex.format, Format::Docx);
    assert_eq!(ex.content_type, "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
    assert_eq!(text(&ex), "Dear Ms. Smith,\nWe are pleased & proud.");
    assert_eq!(meta(&ex, "title"), "Offer Letter");
    assert_eq!(meta(&ex, "author"), "Corpus Generator");
    assert_eq!(meta(&ex, "created"), "2024-03-05T09:30:00Z");
}

#[test]
fn broken_docx_is_malformed() {
    let docx = corpus::docx("T", &["text"; 50]).expect("docx");
    let cut = &docx[..docx.len() * 2 / 3];
    let sniffed = sniff(cut, "upload.docx");
    assert_eq!(sniffed.format, Format::Docx);
    assert!(matches!(extract(cut, "upload.docx", &Limits::default()), Err(ExtractError::Malformed(_))));
}

#[test]
fn xlsx_sheets_and_cells() {
    let sheets = [
        ("Revenue", vec![vec!["region".to_string(), "total".into()], vec!["North".into(), "1250.5".into()]]),
        ("Staff", vec![vec!["Ann Lee".to_string()]]),
    ];
    let ex = ok(&corpus::xlsx(&sheets).expect("xlsx"), "book.xlsx");
    assert_eq!(ex.format, Format::Xlsx);
    assert_eq!(meta(&ex, "sheet_names"), &serde_json::json!(["Revenue", "Staff"]));
    assert_eq!(text(&ex), "Revenue\nregion\ttotal\nNorth\t1250.5\n\nStaff\nAnn Lee");
}

#[test]
fn pptx_slides_in_presentation_order() {
    let slides = vec![vec!["Intro slide".to_string(), "Agenda".into()], vec!["Closing slide".to_string()]];
    let ex = ok(&corpus::pptx("Deck", &slides).expect("pptx"), "deck.pptx");
    assert_eq!(ex.format, Format::Pptx);
    assert_eq!(meta(&ex, "slide_count"), 2);
    assert_eq!(text(&ex), "Intro slide\nAgenda\n\nClosing slide");
}

// ---------------------------------------------------------------------------------------------
// OpenDocument, EPUB, RTF, e-mail

#[test]
fn odt_text() {
    let ex = ok(&corpus::odt("Minutes", &["Attendees: Ann, Bob", "Decisions & actions"]).expect("odt"), "m.odt");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Odt, "application/vnd.oasis.opendocument.text"));
    assert_eq!(text(&ex), "Minutes\nAttendees: Ann, Bob\nDecisions & actions");
    assert_eq!(meta(&ex, "title"), "Minutes");
    assert_eq!(meta(&ex, "author"), "Corpus Generator");
    assert_eq!(meta(&ex, "page_count"), 1);
}

#[test]
fn ods_sheets_rows_and_repeats() {
    let sheets = [("Q1", vec![vec!["item".to_string(), "cost".into()], vec!["paper".into(), "12".into()]])];
    let ex = ok(&corpus::ods(&sheets).expect("ods"), "s.ods");
    assert_eq!(ex.format, Format::Ods);
    assert_eq!(meta(&ex, "sheet_names"), &serde_json::json!(["Q1"]));
    // The million repeated empty rows the builder adds produce nothing.
    assert_eq!(text(&ex), "Q1\nitem\tcost\npaper\t12");
}

#[test]
fn odp_slides() {
    let slides = vec![vec!["First".to_string()], vec!["Second".to_string(), "More".into()]];
    let ex = ok(&corpus::odp("Talk", &slides).expect("odp"), "t.odp");
    assert_eq!(ex.format, Format::Odp);
    assert_eq!(meta(&ex, "slide_count"), 2);
    assert_eq!(text(&ex), "First\n\nSecond\nMore");
}

#[test]
fn epub_chapters_in_spine_order() {
    let epub = corpus::epub("The Book", "Jo Writer", &[("Opening", &["It began."]), ("Ending", &["It ended."])])
        .expect("epub");
    let ex = ok(&epub, "book.epub");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Epub, "application/epub+zip"));
    assert_eq!(meta(&ex, "title"), "The Book");
    assert_eq!(meta(&ex, "author"), "Jo Writer");
    assert_eq!(meta(&ex, "language"), "en");
    assert_eq!(meta(&ex, "chapter_count"), 2);
    assert_eq!(text(&ex), "Opening\nIt began.\n\nEnding\nIt ended.");
}

#[test]
fn rtf_document() {
    let ex = ok(corpus::rtf("Memo {draft}", &["First paragraph.", "Naïve café"]).as_bytes(), "memo.rtf");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Rtf, "application/rtf"));
    assert_eq!(text(&ex), "First paragraph.\nNaïve café");
    assert_eq!(meta(&ex, "title"), "Memo {draft}");
    assert_eq!(meta(&ex, "author"), "Corpus Generator");
}

#[test]
fn eml_headers_and_body() {
    let mail = corpus::eml("Ann Example <ann@example.com>", "bob@example.org", "Lunch?", "Noon at the usual place.");
    let ex = ok(mail.as_bytes(), "msg.eml");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Eml, "message/rfc822"));
    assert_eq!(meta(&ex, "subject"), "Lunch?");
    assert_eq!(meta(&ex, "from"), "Ann Example <ann@example.com>");
    assert_eq!(meta(&ex, "to"), &serde_json::json!(["bob@example.org"]));
    assert_eq!(meta(&ex, "date"), "2024-03-05T09:30:00Z");
    assert_eq!(
        text(&ex),
        "From: Ann Example <ann@example.com>\nTo: bob@example.org\nDate: 2024-03-05T09:30:00Z\nSubject: Lunch?\n\nNoon at the usual place."
    );
}

#[test]
fn eml_multipart_with_attachment() {
    let mail = "From: a@example.com\r\nTo: b@example.com\r\nSubject: =?UTF-8?Q?Caf=C3=A9_report?=\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n\
        --XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
        Totals are attached =E2=80=94 see sheet.\r\n\
        --XX\r\nContent-Type: application/pdf; name=\"totals.pdf\"\r\nContent-Disposition: attachment; filename=\"totals.pdf\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n";
    let ex = ok(mail.as_bytes(), "fwd.eml");
    assert_eq!(meta(&ex, "subject"), "Café report");
    assert_eq!(meta(&ex, "attachment_count"), 1);
    assert_eq!(meta(&ex, "attachments"), &serde_json::json!(["totals.pdf"]));
    assert!(text(&ex).ends_with("Totals are attached — see sheet."), "{}", text(&ex));
}

// ---------------------------------------------------------------------------------------------
// Images

#[test]
fn images_have_dimensions_and_thumbnails() {
    for (format, name, expected) in [
        (ImageFormat::Png, "a.png", "png"),
        (ImageFormat::Jpeg, "a.jpg", "jpeg"),
        (ImageFormat::Gif, "a.gif", "gif"),
        (ImageFormat::WebP, "a.webp", "webp"),
        (ImageFormat::Tiff, "a.tif", "tiff"),
        (ImageFormat::Bmp, "a.bmp", "bmp"),
    ] {
        let bytes = corpus::image(600, 300, format).expect("encode");
        // Named .bin: the bytes decide.
        let ex = ok(&bytes, "upload.bin");
        assert_eq!((ex.format, ex.text.as_deref()), (Format::Image, None), "{name}");
        assert_eq!(ex.content_type, format!("image/{expected}"));
        assert_eq!((meta(&ex, "width"), meta(&ex, "height")), (&Value::from(600), &Value::from(300)));
        assert_eq!(meta(&ex, "image_format"), expected);
        let thumb =
            image::load_from_memory_with_format(ex.thumbnail_png.as_deref().expect("thumbnail"), ImageFormat::Png)
                .expect("thumbnail is a PNG");
        assert_eq!((thumb.width(), thumb.height()), (256, 128), "{name}");
    }
}

#[test]
fn small_images_are_not_upscaled() {
    let ex = ok(&corpus::image(40, 20, ImageFormat::Png).expect("png"), "tiny.png");
    let thumb = image::load_from_memory(ex.thumbnail_png.as_deref().expect("thumbnail")).expect("png");
    assert_eq!((thumb.width(), thumb.height()), (40, 20));
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn huge_png_header_is_rejected_before_decoding() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&60_000u32.to_be_bytes());
    ihdr.extend_from_slice(&60_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // The decoder reads up to the first IDAT for the header; the data itself is never inflated.
    for chunk in [b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01".as_slice(), b"IEND"] {
        png.extend_from_slice(&((chunk.len() - 4) as u32).to_be_bytes());
        png.extend_from_slice(chunk);
        png.extend_from_slice(&crc32(chunk).to_be_bytes());
    }
    match extract(&png, "huge.png", &Limits::default()) {
        Err(ExtractError::LimitExceeded(msg)) => assert!(msg.contains("max_image_pixels"), "{msg}"),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

#[test]
fn corrupt_image_is_malformed() {
    let mut png = corpus::image(50, 50, ImageFormat::Png).expect("png");
    png.truncate(60);
    assert!(matches!(extract(&png, "bad.png", &Limits::default()), Err(ExtractError::Malformed(_))));
}

// ---------------------------------------------------------------------------------------------
// Sniffing and hostile input

#[test]
fn pdf_named_png_is_a_pdf() {
    let pdf = corpus::pdf("Disguised", &["hidden text".into()]);
    assert_eq!(sniff(&pdf, "evil.png").format, Format::Pdf);
    let ex = ok(&pdf, "evil.png");
    assert_eq!((ex.format, ex.content_type.as_str()), (Format::Pdf, "application/pdf"));
    assert!(text(&ex).contains("hidden text"));
}

#[test]
fn sniffing_a_prefix_is_enough() {
    let docx = corpus::docx("T", &["text"; 200]).expect("docx");
    assert_eq!(sniff(&docx[..docx.len() / 2], "upload").format, Format::Docx);
    let xlsx = corpus::xlsx(&[("S", vec![vec!["x".to_string()]; 500])]).expect("xlsx");
    assert_eq!(sniff(&xlsx[..xlsx.len() / 2], "upload").format, Format::Xlsx);
    let odt = corpus::odt("T", &["text"]).expect("odt");
    assert_eq!(sniff(&odt[..100], "upload").format, Format::Odt);
    let epub = corpus::epub("T", "A", &[("C", &["text"])]).expect("epub");
    assert_eq!(sniff(&epub[..100], "upload").format, Format::Epub);
    let json = corpus::json("T", &["p"; 100]);
    assert_eq!(sniff(&json.as_bytes()[..200], "upload").format, Format::Json);
    assert_eq!(sniff(b"[draft] notes about things", "upload").format, Format::Text);
}

#[test]
fn random_bytes_are_unsupported() {
    let mut state = 0x1234_5678_u32;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let ex = ok(&bytes, "blob.bin");
    assert_eq!((ex.format, ex.supported, ex.text.as_deref()), (Format::Unsupported, false, None));
    assert_eq!(ex.content_type, "application/octet-stream");
}

#[test]
fn a_zip_of_unknown_files_is_an_archive_listing_them() {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("photo.raw", SimpleFileOptions::default()).expect("start");
    w.write_all(b"\x00\x01data").expect("write");
    let bytes = w.finish().expect("finish").into_inner();
    let ex = ok(&bytes, "archive.zip");
    assert_eq!((ex.format, ex.content_type.as_str(), ex.supported), (Format::Zip, "application/zip", true));
    assert_eq!(text(&ex), "Contents:\nphoto.raw");
    assert_eq!(meta(&ex, "members")[0]["format"], "unsupported");
}

/// A docx-shaped zip whose document part is `size` zero bytes, compressed while streaming.
fn zip_bomb(size: u64) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(size >= 1 << 32);
    w.start_file("[Content_Types].xml", opts).expect("start");
    w.write_all(b"<Types/>").expect("write");
    w.start_file("word/document.xml", opts).expect("start");
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < size {
        let n = chunk.len().min((size - written) as usize);
        w.write_all(&chunk[..n]).expect("write");
        written += n as u64;
    }
    w.finish().expect("finish").into_inner()
}

#[test]
fn zip_bomb_hits_the_decompression_limit() {
    let bomb = zip_bomb(300 << 20);
    assert!(bomb.len() < 1 << 20, "compressed to {} bytes", bomb.len());
    assert_eq!(sniff(&bomb, "bomb.docx").format, Format::Docx);
    match extract(&bomb, "bomb.docx", &Limits::default()) {
        Err(ExtractError::LimitExceeded(msg)) => assert!(msg.contains("max_decompressed_bytes"), "{msg}"),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

#[test]
fn decompression_budget_is_shared_across_members() {
    // Each sheet alone fits in the budget; together they do not.
    let big: Vec<Vec<String>> = (0..2000).map(|i| vec![format!("row {i} with some filler text")]).collect();
    let xlsx = corpus::xlsx(&[("A", big.clone()), ("B", big.clone()), ("C", big)]).expect("xlsx");
    assert!(extract(&xlsx, "x.xlsx", &Limits::default()).is_ok());
    let result = extract(&xlsx, "x.xlsx", &limits(|l| l.max_decompressed_bytes = 200_000));
    assert!(matches!(result, Err(ExtractError::LimitExceeded(_))), "{result:?}");
}

#[test]
fn too_many_archive_entries() {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("word/document.xml", SimpleFileOptions::default()).expect("start");
    for i in 0..50 {
        w.start_file(format!("junk/{i}"), SimpleFileOptions::default()).expect("start");
    }
    let bytes = w.finish().expect("finish").into_inner();
    let result = extract(&bytes, "many.docx", &limits(|l| l.max_archive_entries = 10));
    match result {
        Err(ExtractError::LimitExceeded(msg)) => assert!(msg.contains("max_archive_entries"), "{msg}"),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

#[test]
fn truncated_inputs_never_panic() {
    // Every prefix length class of every corpus format must give Ok or a typed error. `extract`
    // turns a panic into `Malformed` too, so the test asks which one it was: a caught panic fails.
    for (name, bytes) in crate::generate_corpus(7, 23) {
        for cut in [1, 2, 8, 64, bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            let cut = cut.min(bytes.len());
            if let Err(e) = extract(&bytes[..cut], &name, &Limits::default()) {
                assert!(!e.is_panic(), "{name} cut at {cut} of {} bytes panicked: {e}", bytes.len());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serialization and the corpus

#[test]
fn extraction_round_trips_through_json() {
    let ex = ok(&corpus::image(300, 300, ImageFormat::Png).expect("png"), "a.png");
    let json = serde_json::to_string(&ex).expect("serialize");
    assert!(json.contains("\"thumbnail_png\":\"iVBORw0KGgo"), "base64 PNG expected");
    assert!(json.contains("\"format\":\"image\""));
    let back: Extraction = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, ex);
    let text_ex = ok(b"plain", "a.txt");
    let back: Extraction = serde_json::from_str(&serde_json::to_string(&text_ex).expect("ser")).expect("de");
    assert_eq!(back, text_ex);
}

#[test]
fn format_names_match_serde() {
    for f in [Format::SourceCode, Format::Unsupported, Format::Pdf, Format::Eml] {
        assert_eq!(serde_json::to_value(f).expect("ser"), Value::from(f.as_str()));
    }
}

#[test]
fn corpus_is_deterministic_and_extractable() {
    let a = crate::generate_corpus(42, 69);
    let b = crate::generate_corpus(42, 69);
    assert_eq!(a.len(), 69);
    assert_eq!(a, b);
    assert_ne!(a, crate::generate_corpus(43, 69));
    let mut formats = std::collections::BTreeSet::new();
    let mut pii_kinds = std::collections::BTreeSet::new();
    for (name, bytes) in &a {
        let ex = ok(bytes, name);
        assert!(ex.supported, "{name}");
        assert!(ex.warnings.is_empty(), "{name}: {:?}", ex.warnings);
        if ex.format != Format::Image {
            assert!(meta(&ex, "word_count").as_u64().unwrap_or(0) > 3, "{name}: {:?}", ex.text);
        }
        formats.insert(ex.format.as_str());
        for f in crate::pii::scan(text(&ex)) {
            pii_kinds.insert(f.kind);
        }
    }
    assert_eq!(formats.len(), 19, "{formats:?}");
    assert!(pii_kinds.len() >= 6, "{pii_kinds:?}");
}

#[test]
fn errors_and_limits_serialize() {
    let e = ExtractError::LimitExceeded("max_pages".into());
    let json = serde_json::to_string(&e).expect("ser");
    assert_eq!(json, r#"{"kind":"limit_exceeded","message":"max_pages"}"#);
    assert_eq!(serde_json::from_str::<ExtractError>(&json).expect("de"), e);
    // Partial limit configs fill in defaults.
    let l: Limits = serde_json::from_str(r#"{"max_pages": 5}"#).expect("de");
    assert_eq!(l, limits(|l| l.max_pages = 5));
}

#[test]
fn deeply_nested_inputs_are_safe() {
    // No recursion on untrusted nesting: each of these would overflow a recursive parser's stack.
    let deep_json = "[".repeat(200_000);
    let deep_xml = "<a>".repeat(200_000);
    let deep_rtf = format!("{{\\rtf1 {}", "{".repeat(200_000));
    let deep_html = "<div>".repeat(200_000);
    let mut eml = String::from("From: a@b.com\r\nTo: c@d.com\r\nSubject: deep\r\n");
    for i in 0..5000 {
        eml.push_str(&format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"));
    }
    eml.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
    let deep_pdf_arr = format!("%PDF-1.4\n1 0 obj\n{}\nendobj\n%%EOF\n", "[".repeat(200_000));
    for (name, bytes) in [
        ("a.json", deep_json.as_bytes()),
        ("a.xml", deep_xml.as_bytes()),
        ("a.rtf", deep_rtf.as_bytes()),
        ("a.html", deep_html.as_bytes()),
        ("a.eml", eml.as_bytes()),
        ("a.pdf", deep_pdf_arr.as_bytes()),
    ] {
        match extract(bytes, name, &Limits::default()) {
            Ok(ex) => assert!(ex.supported, "{name}"),
            Err(ExtractError::Malformed(_)) => assert!(name.ends_with(".json") || name.ends_with(".pdf"), "{name}"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}
