//! The rules of optical character recognition, without running it: which parts of an
//! extraction need it ([`ocr_need`]), how Tesseract's TSV output becomes text with a
//! confidence ([`parse_tesseract_tsv`]), and how recognised pages go into the
//! extraction ([`apply_ocr`]). The engine itself is a child process, run by the
//! `aether-ocr` adapter inside the processing sandbox.

use serde_json::Value;

use crate::{Extraction, Format, Limits};

/// A PDF page with fewer letters and digits than this has no usable text layer: a
/// scan, or a page whose text is drawn as curves. Page numbers and stray marks of a
/// scanner's software stay under it.
pub const MIN_TEXT_LAYER_CHARS: usize = 16;

/// What of an extraction needs OCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcrNeed {
    Nothing,
    /// The whole file is one image.
    Image,
    /// These PDF pages (from 1) have no text layer, in order, at most `max_pages`;
    /// `skipped` more had none either.
    PdfPages {
        pages: Vec<usize>,
        skipped: usize,
    },
}

/// Which parts of `extraction` (made under `limits`) need OCR: an image, or the
/// pages of a PDF without a text layer (not of an encrypted PDF, nor past where the
/// text was truncated or `limits.max_pages` stopped the reading).
pub fn ocr_need(extraction: &Extraction, limits: &Limits, max_pages: usize) -> OcrNeed {
    match extraction.format {
        Format::Image => OcrNeed::Image,
        Format::Pdf => {
            if extraction.metadata.get("encrypted").and_then(Value::as_bool) == Some(true) || extraction.text_truncated
            {
                return OcrNeed::Nothing;
            }
            let read_pages = pdf_pages_read(extraction, limits);
            let text = extraction.text.as_deref().unwrap_or_default();
            let pieces: Vec<&str> = text.split('\u{c}').collect();
            let without_text: Vec<usize> = (1..=read_pages)
                .filter(|page| {
                    let piece = pieces.get(page - 1).copied().unwrap_or_default();
                    piece.chars().filter(|c| c.is_alphanumeric()).count() < MIN_TEXT_LAYER_CHARS
                })
                .collect();
            if without_text.is_empty() {
                return OcrNeed::Nothing;
            }
            let skipped = without_text.len().saturating_sub(max_pages);
            OcrNeed::PdfPages { pages: without_text.into_iter().take(max_pages).collect(), skipped }
        }
        _ => OcrNeed::Nothing,
    }
}

/// The pages the PDF extraction read: its page count, at most `limits.max_pages`
/// (the extractor skipped the rest with a warning).
fn pdf_pages_read(extraction: &Extraction, limits: &Limits) -> usize {
    let count = extraction.metadata.get("page_count").and_then(Value::as_u64).unwrap_or(0);
    usize::try_from(count).unwrap_or(usize::MAX).min(limits.max_pages)
}

/// The text Tesseract recognised in one image (a multi-page TIFF has several
/// pages), and how sure it was.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrPage {
    /// Lines as Tesseract found them; a blank line between paragraphs, and a form
    /// feed between the pages of a multi-page image.
    pub text: String,
    /// Pages of the image Tesseract read (1 for all but multi-page TIFFs).
    pub pages: usize,
    /// Recognised words.
    pub words: usize,
    /// Mean word confidence, 0–100, weighted by word length; 0 without words.
    pub confidence: f64,
}

/// Reads Tesseract's `tsv` output: one row per page, block, paragraph, line and word
/// (level 5, with a confidence). Words are joined by spaces within a line, lines by
/// new lines, paragraphs by a blank line. Rows it cannot read are skipped.
pub fn parse_tesseract_tsv(tsv: &str) -> OcrPage {
    let mut text = String::new();
    let mut words = 0usize;
    let mut weighted = 0.0f64;
    let mut weight = 0usize;
    let mut pages = 0usize;
    let mut current_page: Option<u32> = None;
    let mut current_line: Option<(u32, u32, u32, u32)> = None;
    let mut current_paragraph: Option<(u32, u32, u32)> = None;
    for row in tsv.lines().skip(1) {
        let columns: Vec<&str> = row.split('\t').collect();
        if columns.len() < 12 {
            continue;
        }
        let number = |i: usize| columns[i].parse::<u32>().ok();
        let Some(page) = number(1) else { continue };
        if columns[0] == "1" {
            // A page row: pages without a word still count as read.
            pages += 1;
        }
        if columns[0] != "5" {
            continue;
        }
        let (Some(block), Some(paragraph), Some(line)) = (number(2), number(3), number(4)) else { continue };
        let Ok(confidence) = columns[10].parse::<f64>() else { continue };
        let word = columns[11].trim();
        if word.is_empty() || confidence < 0.0 {
            continue;
        }
        if current_line != Some((page, block, paragraph, line)) {
            let previous = current_page.unwrap_or(1);
            if page > previous {
                // One form feed per page turned, blank pages included, so that a
                // piece's place is its page number.
                for _ in previous..page {
                    text.push_str("\n\u{c}\n");
                }
            } else if current_line.is_some() {
                text.push('\n');
                if current_paragraph != Some((page, block, paragraph)) {
                    text.push('\n');
                }
            }
            current_page = Some(page);
            current_line = Some((page, block, paragraph, line));
            current_paragraph = Some((page, block, paragraph));
        } else {
            text.push(' ');
        }
        text.push_str(word);
        words += 1;
        let length = word.chars().count();
        weighted += confidence.clamp(0.0, 100.0) * length as f64;
        weight += length;
    }
    let confidence = if weight == 0 { 0.0 } else { weighted / weight as f64 };
    OcrPage { text, pages, words, confidence }
}

/// How the OCR of one file went, for its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrReport {
    /// `tesseract 5.3.0`, say.
    pub engine: String,
    /// Tesseract's `-l` argument: `eng`, `eng+deu`.
    pub languages: String,
    /// Pages (from 1) that needed OCR but were not recognised, each with the reason.
    pub failed: Vec<(usize, String)>,
    /// Pages that needed OCR beyond `max_pages` or the time budget.
    pub skipped: usize,
}

/// Puts recognised text into `extraction`: an image's text becomes the text; a PDF
/// page's replaces what the page had (next to nothing). Records `ocr_engine`,
/// `ocr_languages`, `ocr_pages` (the pages recognised), `ocr_confidence` (mean,
/// weighted by words) in the metadata, warns about failed and skipped pages, and
/// counts words and characters again, within `max_text_chars`.
pub fn apply_ocr(extraction: &mut Extraction, recognised: &[(usize, OcrPage)], report: &OcrReport, limits: &Limits) {
    for (page, reason) in &report.failed {
        extraction.warnings.push(format!("OCR of page {page} failed: {reason}"));
    }
    if report.skipped > 0 {
        extraction
            .warnings
            .push(format!("{} more pages without text were not recognised (OCR limits)", report.skipped));
    }
    let words: usize = recognised.iter().map(|(_, page)| page.words).sum();
    let confidence = if words == 0 {
        0.0
    } else {
        recognised.iter().map(|(_, page)| page.confidence * page.words as f64).sum::<f64>() / words as f64
    };
    let metadata = &mut extraction.metadata;
    metadata.insert("ocr_engine".into(), Value::from(report.engine.clone()));
    metadata.insert("ocr_languages".into(), Value::from(report.languages.clone()));
    metadata
        .insert("ocr_pages".into(), Value::from(recognised.iter().map(|(_, page)| page.pages.max(1)).sum::<usize>()));
    metadata.insert("ocr_confidence".into(), Value::from((confidence * 10.0).round() / 10.0));
    if recognised.is_empty() {
        return;
    }
    let text = match extraction.format {
        Format::Pdf => {
            let original = extraction.text.take().unwrap_or_default();
            let mut pieces: Vec<String> = original.split('\u{c}').map(|p| p.trim().to_owned()).collect();
            for (page, found) in recognised {
                if *page == 0 {
                    continue;
                }
                if pieces.len() < *page {
                    pieces.resize(*page, String::new());
                }
                pieces[page - 1] = found.text.clone();
            }
            pieces.join("\n\u{c}\n")
        }
        _ => recognised.iter().map(|(_, page)| page.text.as_str()).collect::<Vec<_>>().join("\n\u{c}\n"),
    };
    let mut text = text.trim_end().to_owned();
    if text.chars().count() > limits.max_text_chars {
        let cut = text.char_indices().nth(limits.max_text_chars).map_or(text.len(), |(at, _)| at);
        text.truncate(cut);
        extraction.text_truncated = true;
    }
    extraction.metadata.insert("word_count".into(), Value::from(text.split_whitespace().count()));
    extraction.metadata.insert("char_count".into(), Value::from(text.chars().count()));
    extraction.text = Some(text);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn extraction(format: Format, text: Option<&str>, pages: u64) -> Extraction {
        let mut metadata = serde_json::Map::new();
        if format == Format::Pdf {
            metadata.insert("page_count".into(), Value::from(pages));
        }
        Extraction {
            content_type: "application/pdf".into(),
            format,
            supported: true,
            text: text.map(str::to_owned),
            text_truncated: false,
            metadata,
            thumbnail_png: None,
            warnings: vec![],
        }
    }

    const TSV: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
        1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
        5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t96.5\tThe\n\
        5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t90\tharvest\n\
        5\t1\t1\t1\t2\t1\t0\t0\t1\t1\t80\texceeded\n\
        5\t1\t2\t1\t1\t1\t0\t0\t1\t1\t70\tContact:\n\
        5\t1\t2\t1\t1\t2\t0\t0\t1\t1\t-1\t \n\
        garbage row\n";

    #[test]
    fn tsv_becomes_lines_and_paragraphs_with_a_weighted_confidence() {
        let page = parse_tesseract_tsv(TSV);
        assert_eq!(page.text, "The harvest\nexceeded\n\nContact:");
        assert_eq!(page.words, 4);
        let expected = (96.5 * 3.0 + 90.0 * 7.0 + 80.0 * 8.0 + 70.0 * 8.0) / 26.0;
        assert!((page.confidence - expected).abs() < 1e-9, "{}", page.confidence);
        assert_eq!(page.pages, 1);
        assert_eq!(parse_tesseract_tsv(""), OcrPage { text: String::new(), pages: 0, words: 0, confidence: 0.0 });
    }

    #[test]
    fn the_pages_of_a_multi_page_image_are_separated_by_form_feeds() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t9\t9\t-1\t\n\
            5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t90\tfirst\n\
            1\t2\t0\t0\t0\t0\t0\t0\t9\t9\t-1\t\n\
            1\t3\t0\t0\t0\t0\t0\t0\t9\t9\t-1\t\n\
            5\t3\t1\t1\t1\t1\t0\t0\t1\t1\t90\tthird\n";
        let page = parse_tesseract_tsv(tsv);
        // The blank second page keeps its (empty) slot.
        assert_eq!((page.text.as_str(), page.pages), ("first\n\u{c}\n\n\u{c}\nthird", 3));
    }

    #[test]
    fn only_pdf_pages_without_a_text_layer_need_ocr() {
        let text = "A page with plenty of real text on it\n\u{c}\n3\n\u{c}\nAnother page full of real words here";
        let pdf = extraction(Format::Pdf, Some(text), 4);
        // Page 2 has only a page number; page 4 has nothing at all.
        assert_eq!(ocr_need(&pdf, &Limits::default(), 10), OcrNeed::PdfPages { pages: vec![2, 4], skipped: 0 });
        assert_eq!(ocr_need(&pdf, &Limits::default(), 1), OcrNeed::PdfPages { pages: vec![2], skipped: 1 });
        let scanned = extraction(Format::Pdf, None, 2);
        assert_eq!(ocr_need(&scanned, &Limits::default(), 10), OcrNeed::PdfPages { pages: vec![1, 2], skipped: 0 });
        let mut encrypted = scanned.clone();
        encrypted.metadata.insert("encrypted".into(), Value::from(true));
        assert_eq!(ocr_need(&encrypted, &Limits::default(), 10), OcrNeed::Nothing);
        let mut truncated = scanned;
        truncated.text_truncated = true;
        assert_eq!(ocr_need(&truncated, &Limits::default(), 10), OcrNeed::Nothing);
        assert_eq!(ocr_need(&extraction(Format::Image, None, 0), &Limits::default(), 10), OcrNeed::Image);
        assert_eq!(ocr_need(&extraction(Format::Docx, None, 0), &Limits::default(), 10), OcrNeed::Nothing);
    }

    fn report() -> OcrReport {
        OcrReport { engine: "tesseract 5.3.0".into(), languages: "eng".into(), failed: vec![], skipped: 0 }
    }

    #[test]
    fn recognised_pages_replace_their_slot_and_are_counted() {
        let mut pdf = extraction(Format::Pdf, Some("Real text on the first page of this file\n\u{c}\n"), 3);
        let page = |text: &str, words, confidence| OcrPage { text: text.into(), pages: 1, words, confidence };
        let recognised = vec![(2, page("scanned words", 2, 90.0)), (3, page("more", 1, 60.0))];
        let mut report = report();
        report.failed.push((4, "timed out".into()));
        report.skipped = 2;
        apply_ocr(&mut pdf, &recognised, &report, &Limits::default());
        assert_eq!(
            pdf.text.as_deref(),
            Some("Real text on the first page of this file\n\u{c}\nscanned words\n\u{c}\nmore")
        );
        assert_eq!(pdf.metadata["ocr_pages"], 2);
        assert_eq!(pdf.metadata["ocr_confidence"], 80.0);
        assert_eq!(pdf.metadata["ocr_engine"], "tesseract 5.3.0");
        assert_eq!(pdf.metadata["word_count"], 12);
        assert_eq!(pdf.warnings.len(), 2, "{:?}", pdf.warnings);
    }

    #[test]
    fn an_image_gets_its_text_within_the_text_limit() {
        let mut image = extraction(Format::Image, None, 0);
        let recognised = vec![(1, OcrPage { text: "abcdef ghij".into(), pages: 1, words: 2, confidence: 99.0 })];
        let limits = Limits { max_text_chars: 4, ..Limits::default() };
        apply_ocr(&mut image, &recognised, &report(), &limits);
        assert_eq!(image.text.as_deref(), Some("abcd"));
        assert!(image.text_truncated);
        assert_eq!(image.metadata["char_count"], 4);
        let mut nothing = extraction(Format::Image, None, 0);
        apply_ocr(&mut nothing, &[], &report(), &Limits::default());
        assert_eq!(nothing.text, None);
        assert_eq!(nothing.metadata["ocr_pages"], 0);
    }
}
