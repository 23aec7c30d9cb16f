//! OCR with the real Tesseract and pdftoppm, on pages Ghostscript rendered
//! (`tests/fixtures/make.sh`). Runs where `tesseract` is on the PATH; `scripts/test`
//! installs it and sets `AETHER_TEST_OCR=1`, which makes its absence a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aether_extract::{Extraction, Format, Limits, extract};
use aether_ocr::{OcrEngine, OcrSettings};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(path).unwrap()
}

fn engine() -> Option<OcrEngine> {
    let settings = OcrSettings { languages: "eng".into(), max_pages: 10 };
    match OcrEngine::locate(&settings, std::env::var_os("PATH").as_deref()) {
        Ok(engine) => Some(engine),
        Err(why) if std::env::var_os("AETHER_TEST_OCR").is_none() => {
            eprintln!("skipped: {why}");
            None
        }
        Err(why) => panic!("AETHER_TEST_OCR is set but OCR is unavailable: {why}"),
    }
}

fn recognised(engine: &OcrEngine, name: &str) -> Extraction {
    let bytes = fixture(name);
    let mut extraction = extract(&bytes, name, &Limits::default()).unwrap();
    engine.recognise(&mut extraction, &bytes, &Limits::default(), Instant::now() + Duration::from_secs(60));
    extraction
}

#[test]
fn a_scanned_image_is_read_with_its_confidence() {
    let Some(engine) = engine() else { return };
    assert!(engine.version.starts_with("tesseract "), "{}", engine.version);
    let image = recognised(&engine, "scanned-page.png");
    assert_eq!(image.format, Format::Image);
    let text = image.text.as_deref().unwrap();
    assert!(text.contains("The quarterly harvest of saffron\nexceeded every forecast in Kashmir."), "{text}");
    assert!(text.contains("ledger.desk@example.com"), "{text}");
    assert_eq!(image.metadata["ocr_pages"], 1);
    assert_eq!(image.metadata["ocr_languages"], "eng");
    let confidence = image.metadata["ocr_confidence"].as_f64().unwrap();
    assert!((80.0..=100.0).contains(&confidence), "{confidence}");
    assert_eq!(image.metadata["word_count"], 16, "{text}");
    assert!(image.warnings.is_empty(), "{:?}", image.warnings);
}

#[test]
fn a_pdf_page_without_a_text_layer_is_recognised_and_a_typed_page_kept() {
    let Some(engine) = engine() else { return };
    let bytes = fixture("scanned.pdf");
    let before = extract(&bytes, "scanned.pdf", &Limits::default()).unwrap();
    assert!(!before.text.as_deref().unwrap_or_default().contains("saffron"));
    let pdf = recognised(&engine, "scanned.pdf");
    let text = pdf.text.as_deref().unwrap();
    let pages: Vec<&str> = text.split('\u{c}').map(str::trim).collect();
    assert_eq!(pages.len(), 2, "{text}");
    assert!(pages[0].starts_with("The quarterly harvest of saffron"), "{text}");
    assert_eq!(pages[1], "This appendix page was typed and keeps its text layer.");
    assert_eq!(pdf.metadata["ocr_pages"], 1);
    assert_eq!(pdf.metadata["page_count"], 2);
}

#[test]
fn an_enormous_page_is_rendered_within_bounds_and_found_blank() {
    let Some(engine) = engine() else { return };
    let started = Instant::now();
    let blank = recognised(&engine, "huge-blank.pdf");
    assert_eq!(blank.metadata["ocr_pages"], 1, "{:?}", blank.warnings);
    assert_eq!(blank.metadata["ocr_confidence"], 0.0);
    assert_eq!(blank.text.as_deref().unwrap_or_default().trim(), "");
    // 200 inches at 300 dpi would be 3.6 gigapixels; at 3508 a side it is quick.
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn past_the_deadline_pages_are_skipped_with_a_warning_and_the_text_kept() {
    let Some(engine) = engine() else { return };
    let bytes = fixture("scanned.pdf");
    let mut pdf = extract(&bytes, "scanned.pdf", &Limits::default()).unwrap();
    let typed = pdf.text.clone();
    engine.recognise(&mut pdf, &bytes, &Limits::default(), Instant::now());
    assert_eq!(pdf.text, typed);
    assert_eq!(pdf.metadata["ocr_pages"], 0);
    assert!(pdf.warnings.iter().any(|w| w.contains("not recognised (OCR limits)")), "{:?}", pdf.warnings);
}

#[test]
fn an_image_tesseract_cannot_read_is_a_warning_not_a_failure() {
    let Some(engine) = engine() else { return };
    // A PNG whose pixel data is damaged after a valid header: the decoder of the
    // extractor stops at it, so hand it to OCR as the extraction of a valid image.
    let mut extraction = extract(&fixture("scanned-page.png"), "scan.png", &Limits::default()).unwrap();
    let mut damaged = fixture("scanned-page.png");
    damaged.truncate(200);
    engine.recognise(&mut extraction, &damaged, &Limits::default(), Instant::now() + Duration::from_secs(30));
    assert_eq!(extraction.metadata["ocr_pages"], 0);
    assert!(extraction.warnings.iter().any(|w| w.starts_with("OCR of page 1 failed")), "{:?}", extraction.warnings);
}

#[test]
fn a_language_that_is_not_installed_makes_ocr_unavailable() {
    if engine().is_none() {
        return;
    }
    let settings = OcrSettings { languages: "eng+zzz".into(), max_pages: 10 };
    let why = OcrEngine::locate(&settings, std::env::var_os("PATH").as_deref()).unwrap_err();
    assert!(why.0.contains("tesseract-ocr-zzz"), "{why}");
    let none = OcrEngine::locate(&OcrSettings { languages: "eng".into(), max_pages: 1 }, Some("/nonexistent".as_ref()));
    assert!(none.unwrap_err().0.contains("not installed"));
}

#[test]
fn every_page_of_a_multi_page_fax_tiff_is_read_in_its_place() {
    let Some(engine) = engine() else { return };
    let tiff = recognised(&engine, "scanned.tif");
    assert_eq!((tiff.format, tiff.metadata["image_format"].as_str()), (Format::Image, Some("tiff")));
    let text = tiff.text.as_deref().unwrap();
    let pages: Vec<&str> = text.split('\u{c}').map(str::trim).collect();
    assert_eq!(pages.len(), 2, "{text}");
    assert!(pages[0].starts_with("The quarterly harvest of saffron"), "{text}");
    assert_eq!(pages[1], "This appendix page was typed and keeps its text layer.");
    assert_eq!(tiff.metadata["ocr_pages"], 2);
}
