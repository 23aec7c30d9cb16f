#![forbid(unsafe_code)]
//! Optical character recognition for images and for PDF pages without a text layer.
//!
//! Tesseract (Debian's `tesseract-ocr`) runs as a child process, and PDF pages are
//! rendered to greyscale images by poppler's `pdftoppm` first. Child processes rather
//! than the C library: the server builds and runs without Tesseract (OCR is then
//! reported unavailable), no C code runs in the server's address space, and each run
//! is bounded on its own: a deadline after which it is killed, at most
//! [`MAX_OUTPUT_BYTES`] read from it, pages rendered no larger than
//! [`MAX_SIDE_PIXELS`] on their long side. It is called inside `aether extract`, the
//! processing sandbox, whose address-space and CPU limits the children inherit and
//! whose process group the worker kills at the wall-clock timeout.
//!
//! Which pages need recognition, how Tesseract's output is read and how the text
//! joins the extraction are rules of `aether_extract::ocr`.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub mod media;

pub use media::MediaTools;

use aether_extract::ocr::{OcrNeed, OcrPage, OcrReport, apply_ocr, ocr_need, parse_tesseract_tsv};
use aether_extract::{Extraction, Limits};
use serde::{Deserialize, Serialize};

/// Output of one child beyond this is an error: a page's TSV is tens of kilobytes,
/// a rendered page a few megabytes.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;
/// PDF pages are rendered at most this many pixels on their long side (an A4 page at
/// 300 dpi), whatever size the page claims.
pub const MAX_SIDE_PIXELS: u32 = 3_508;
/// Images with more pixels than this are not recognised (Tesseract holds several
/// copies of the picture); they are still stored, with a warning.
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;

/// What the server asked for: the languages (Tesseract's `-l`, `eng+deu`) and the
/// most pages of one document recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrSettings {
    pub languages: String,
    pub max_pages: usize,
}

/// Why OCR cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrUnavailable(pub String);

impl std::fmt::Display for OcrUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tesseract (and pdftoppm) found and checked, as it crosses into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcrEngine {
    pub tesseract: PathBuf,
    /// None: PDF pages are not recognised (images still are).
    pub pdftoppm: Option<PathBuf>,
    /// `tesseract 5.3.0`.
    pub version: String,
    pub languages: String,
    pub max_pages: usize,
}

/// Whether `languages` is a valid `-l` argument: names of letters, digits and `_`
/// joined by `+`, at most 100 characters.
pub fn valid_languages(languages: &str) -> bool {
    languages.len() <= 100
        && languages
            .split('+')
            .all(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// The first executable called `name` in the directories of `path` (a `PATH` value).
pub fn find_program(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

impl OcrEngine {
    /// Finds `tesseract` and `pdftoppm` in `path` (a `PATH` value) and checks that
    /// Tesseract runs and has every asked-for language installed.
    pub fn locate(settings: &OcrSettings, path: Option<&OsStr>) -> Result<Self, OcrUnavailable> {
        if !valid_languages(&settings.languages) {
            return Err(OcrUnavailable(format!("bad OCR languages {:?}", settings.languages)));
        }
        let tesseract = find_program("tesseract", path)
            .ok_or_else(|| OcrUnavailable("tesseract is not installed (Debian: tesseract-ocr)".into()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let version_output = run(&tesseract, &[OsStr::new("--version")], None, deadline)
            .map_err(|e| OcrUnavailable(format!("{} --version: {e}", tesseract.display())))?;
        let version = String::from_utf8_lossy(&version_output).lines().next().unwrap_or("tesseract").trim().to_owned();
        let listed = run(&tesseract, &[OsStr::new("--list-langs")], None, deadline)
            .map_err(|e| OcrUnavailable(format!("{} --list-langs: {e}", tesseract.display())))?;
        let installed: Vec<String> =
            String::from_utf8_lossy(&listed).lines().skip(1).map(|line| line.trim().to_owned()).collect();
        if let Some(missing) = settings.languages.split('+').find(|name| !installed.iter().any(|i| i == name)) {
            return Err(OcrUnavailable(format!(
                "the OCR language {missing} is not installed (Debian: tesseract-ocr-{missing}); installed: {}",
                installed.join(", ")
            )));
        }
        Ok(OcrEngine {
            tesseract,
            pdftoppm: find_program("pdftoppm", path),
            version,
            languages: settings.languages.clone(),
            max_pages: settings.max_pages,
        })
    }

    /// Recognises what `extraction` (of `bytes`) needs, before `deadline`, and puts
    /// the text in. Pages it could not recognise are warned about, never fatal: the
    /// document is kept with the text it has.
    pub fn recognise(&self, extraction: &mut Extraction, bytes: &[u8], limits: &Limits, deadline: Instant) {
        let mut report = OcrReport {
            engine: self.version.clone(),
            languages: self.languages.clone(),
            failed: Vec::new(),
            skipped: 0,
        };
        let mut recognised = Vec::new();
        match ocr_need(extraction, limits, self.max_pages) {
            OcrNeed::Nothing => return,
            OcrNeed::Image => {
                let pixels = ["width", "height"]
                    .iter()
                    .map(|key| extraction.metadata.get(*key).and_then(serde_json::Value::as_u64).unwrap_or(0))
                    .product::<u64>();
                if pixels > MAX_IMAGE_PIXELS {
                    report.failed.push((1, format!("{pixels} pixels, more than OCR takes ({MAX_IMAGE_PIXELS})")));
                } else {
                    match self.image(bytes, deadline) {
                        Ok(page) => recognised.push((1, page)),
                        Err(reason) => report.failed.push((1, reason)),
                    }
                }
            }
            OcrNeed::PdfPages { pages, skipped } => {
                report.skipped = skipped;
                let Some(pdftoppm) = &self.pdftoppm else {
                    extraction.warnings.push(
                        "PDF pages without text were not recognised: pdftoppm (poppler-utils) is not installed".into(),
                    );
                    return;
                };
                for (done, page) in pages.iter().enumerate() {
                    if Instant::now() >= deadline {
                        report.skipped += pages.len() - done;
                        break;
                    }
                    match self.pdf_page(pdftoppm, bytes, *page, deadline) {
                        Ok(found) => recognised.push((*page, found)),
                        Err(reason) => report.failed.push((*page, reason)),
                    }
                }
            }
        }
        apply_ocr(extraction, &recognised, &report, limits);
    }

    fn image(&self, image: &[u8], deadline: Instant) -> Result<OcrPage, String> {
        let args = self.tesseract_args();
        let tsv = run(&self.tesseract, &as_os(&args), Some(image), deadline)?;
        Ok(parse_tesseract_tsv(&String::from_utf8_lossy(&tsv)))
    }

    fn pdf_page(&self, pdftoppm: &Path, pdf: &[u8], page: usize, deadline: Instant) -> Result<OcrPage, String> {
        let page = page.to_string();
        let side = MAX_SIDE_PIXELS.to_string();
        let render = ["-f", &page, "-l", &page, "-gray", "-scale-to", &side, "fd://0"];
        let image = run(pdftoppm, &as_os(&render), Some(pdf), deadline).map_err(|e| format!("rendering: {e}"))?;
        if image.is_empty() {
            return Err("rendering gave no image".into());
        }
        self.image(&image, deadline)
    }

    fn tesseract_args(&self) -> Vec<String> {
        ["stdin", "stdout", "-l", &self.languages, "tsv"].map(str::to_owned).to_vec()
    }
}

fn as_os<S: AsRef<str>>(args: &[S]) -> Vec<OsString> {
    args.iter().map(|a| OsString::from(a.as_ref())).collect()
}

/// Runs `program` with `args`, `input` on its standard input, and returns its standard
/// output; kills it at `deadline`. No environment but a single OpenMP thread: the
/// sandbox runs one file at a time, and Tesseract's threads would only contend.
fn run<A: AsRef<OsStr>>(
    program: &Path,
    args: &[A],
    input: Option<&[u8]>,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let stdout = child.stdout.take().ok_or("no standard output")?;
    let reader = std::thread::spawn(move || {
        let mut output = Vec::new();
        let read = stdout.take(MAX_OUTPUT_BYTES as u64 + 1).read_to_end(&mut output);
        read.map(|_| output)
    });
    let writer = match (input, child.stdin.take()) {
        (Some(bytes), Some(mut stdin)) => {
            let bytes = bytes.to_vec();
            // A child that stops reading (it failed, or has what it needs) closes the
            // pipe: the write error is not the child's outcome.
            Some(std::thread::spawn(move || drop(stdin.write_all(&bytes))))
        }
        _ => None,
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("timed out".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let output = reader.join().map_err(|_| "reader panicked".to_owned())?.map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    if output.len() > MAX_OUTPUT_BYTES {
        return Err(format!("more than {MAX_OUTPUT_BYTES} bytes of output"));
    }
    Ok(output)
}

#[cfg(test)]
mod tests;
