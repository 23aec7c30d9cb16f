//! Extraction throughput on the mixed corpus that `aether_extract::generate_corpus`
//! builds (text, Markdown, CSV, JSON, HTML, XML, PDF, OOXML, ODF, RTF, EPUB, e-mail,
//! source code, images, with personal data sprinkled in): the whole processing step
//! a worker runs per file (extraction, PII scan, redaction), in this process, one
//! file at a time. Then, where Tesseract is installed, OCR on its own: a scanned
//! page as an image and as a PDF page without a text layer (Ghostscript renders of
//! `crates/ocr/tests/fixtures`). In between, every file of the real-tool corpus
//! (`crates/extract/tests/corpus`, made by LibreOffice, pandoc, TeX, Python's
//! icalendar/vobject/nbformat, zip, tar, Perl ...), each processed repeatedly, for
//! documents/s per format. Prints figures; asserts nothing.
//!
//! `cargo bench -p aether --bench extract`, or `scripts/bench`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aether::processor::{Tools, process_bytes};
use aether_domain::compliance::RedactionMode;
use aether_domain::processing::ProcessRequest;

fn main() {
    let corpus = aether_extract::generate_corpus(42, 600);
    let bytes: usize = corpus.iter().map(|(_, b)| b.len()).sum();
    let mut by_format: BTreeMap<String, (usize, Duration)> = BTreeMap::new();
    let started = Instant::now();
    let mut failed = 0;
    for (name, file) in &corpus {
        let request = ProcessRequest { filename: name.clone(), scan_pii: true, redaction: RedactionMode::Mask };
        let at = Instant::now();
        let format = match process_bytes(file, None, &request, &Tools::default(), Instant::now()) {
            Ok(processed) => processed.extraction.format.as_str().to_owned(),
            Err(_) => {
                failed += 1;
                "error".to_owned()
            }
        };
        let entry = by_format.entry(format).or_default();
        entry.0 += 1;
        entry.1 += at.elapsed();
    }
    let elapsed = started.elapsed();
    println!(
        "extraction: {} files, {:.1} MiB, {:.2} s: {:.0} files/s, {:.1} MiB/s ({failed} errors)",
        corpus.len(),
        bytes as f64 / 1048576.0,
        elapsed.as_secs_f64(),
        corpus.len() as f64 / elapsed.as_secs_f64(),
        bytes as f64 / 1048576.0 / elapsed.as_secs_f64()
    );
    for (format, (count, time)) in by_format {
        println!("  {format:<12} {count:>4} files  mean {:>8.2} ms", time.as_secs_f64() * 1000.0 / count as f64);
    }
    real_files();
    ocr();
    media();
}

/// ffprobe (and ffmpeg's poster frame) on ffmpeg-made audio and video.
fn media() {
    let tools = match aether_ocr::MediaTools::locate(std::env::var_os("PATH").as_deref()) {
        Ok(media) => Tools { ocr: None, media: Some(media) },
        Err(why) => {
            println!("media: not measured ({why})");
            return;
        }
    };
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ocr/tests/fixtures");
    for name in ["tone.mp3", "clip.mp4"] {
        let path = fixtures.join(name);
        let file = std::fs::read(&path).unwrap();
        let request = ProcessRequest { filename: name.into(), scan_pii: true, redaction: RedactionMode::Mask };
        let runs = 10;
        let started = Instant::now();
        for _ in 0..runs {
            let found =
                process_bytes(&file, Some(&path), &request, &tools, Instant::now() + Duration::from_secs(60)).unwrap();
            assert!(found.extraction.metadata.contains_key("duration_seconds"));
        }
        let elapsed = started.elapsed();
        println!(
            "media ({}): {name:<10} {runs} files, {:.2} s: {:.1} documents/s, mean {:.0} ms",
            tools.media.as_ref().map(|m| m.version.as_str()).unwrap_or_default(),
            elapsed.as_secs_f64(),
            runs as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / runs as f64
        );
    }
}

/// Each file of the real-tool corpus, processed until a quarter-second has passed.
fn real_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../extract/tests/corpus");
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in [root.clone(), root.join("formats")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            // The scripts and sources that make the corpus are not part of it.
            let source = ["md", "sh", "py", "pl"].contains(&path.extension().and_then(|e| e.to_str()).unwrap_or(""));
            if path.is_file() && !source {
                files.push(path);
            }
        }
    }
    files.sort();
    println!("real-tool corpus, per file (documents/s, one core, extraction + PII scan + redaction):");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = std::fs::read(&path).unwrap();
        let request = ProcessRequest { filename: name.clone(), scan_pii: true, redaction: RedactionMode::Mask };
        let (mut runs, started) = (0u32, Instant::now());
        let mut format = String::new();
        while started.elapsed() < Duration::from_millis(250) {
            format = match process_bytes(&file, Some(&path), &request, &Tools::default(), Instant::now()) {
                Ok(processed) => processed.extraction.format.as_str().to_owned(),
                Err(_) => "error".to_owned(),
            };
            runs += 1;
        }
        let per_second = f64::from(runs) / started.elapsed().as_secs_f64();
        println!("  {name:<20} {format:<10} {:>7} bytes  {per_second:>9.0} documents/s", file.len());
    }
}

fn ocr() {
    let settings = aether_ocr::OcrSettings { languages: "eng".into(), max_pages: 50 };
    let engine = match aether_ocr::OcrEngine::locate(&settings, std::env::var_os("PATH").as_deref()) {
        Ok(engine) => engine,
        Err(why) => {
            println!("ocr: not measured ({why})");
            return;
        }
    };
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ocr/tests/fixtures");
    let tools = Tools { ocr: Some(engine.clone()), media: None };
    for name in ["scanned-page.png", "scanned.pdf"] {
        let file = std::fs::read(fixtures.join(name)).unwrap();
        let request = ProcessRequest { filename: name.into(), scan_pii: true, redaction: RedactionMode::Mask };
        let runs = 10;
        let started = Instant::now();
        for _ in 0..runs {
            let found = process_bytes(&file, None, &request, &tools, Instant::now() + Duration::from_secs(60)).unwrap();
            assert_eq!(found.extraction.metadata["ocr_pages"], 1);
        }
        let elapsed = started.elapsed();
        println!(
            "ocr ({}): {name:<16} {runs} files, {:.2} s: {:.2} pages/s, mean {:.0} ms",
            engine.version,
            elapsed.as_secs_f64(),
            runs as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / runs as f64
        );
    }
}
