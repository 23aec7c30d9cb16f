//! PDF via `lopdf`: text per page (pages separated by a form feed, as `pdftotext` does), page count
//! and the document information dictionary.
//!
//! Text drawn by Form XObjects (`/Subtype /Form`, drawn with `Do`: pages placed into other PDFs,
//! stamps, repeated headers) is read where it is drawn, recursively up to [`MAX_FORM_DEPTH`] and
//! never through a form that is already being drawn. A font's `/ToUnicode` CMap wins over its
//! `/Encoding`, which for Type3 fonts often names glyphs arbitrarily; a Type3 font without one is
//! read through its `/Differences` glyph names.
//!
//! lopdf's own `extract_text` bounds each stream but not their sum, and re-decodes shared fonts
//! for every page, so a small file whose pages all reference one content or ToUnicode bomb would
//! still inflate gigabytes. The loop here therefore charges every page content stream (and every
//! Form XObject each time it is drawn) and every
//! distinct ToUnicode CMap against one `max_decompressed_bytes` budget, and reads at most
//! `max_pages` pages. Load-time object/xref streams are bounded per stream by lopdf.

use std::collections::{BTreeMap, HashMap, HashSet};

use lopdf::content::Content;
use lopdf::{DecompressError, Dictionary, Document, Encoding, LoadOptions, Object, decode_text_string};

use crate::out::{Budget, Out};
use crate::sniff::find;
use crate::{ExtractError, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let limit = usize::try_from(out.budget.remaining()).unwrap_or(usize::MAX);
    let doc = Document::load_mem_with_options(bytes, LoadOptions::with_max_decompressed_size(limit))
        .map_err(|e| pdf_error("PDF", e))?;
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    if find(tail, b"%%EOF").is_none() {
        // No end marker and a cross-reference table that had to be rebuilt: the upload was cut off.
        if doc.xref_recovery.is_some() {
            return Err(ExtractError::Malformed(
                "truncated PDF: no %%EOF and no readable cross-reference table".into(),
            ));
        }
        out.warn("PDF has no %%EOF marker");
    } else if doc.xref_recovery.is_some() {
        out.warn("PDF cross-reference table was damaged and has been rebuilt; some text may be missing");
    }
    info_dictionary(&doc, out);
    out.meta("pdf_version", doc.version.clone());
    if doc.is_encrypted() {
        out.meta("encrypted", true);
        out.warn("PDF is encrypted with a password; no text extracted");
        return Ok(());
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::Malformed("PDF has no pages".into()));
    }
    out.meta("page_count", pages.len());
    if pages.len() > limits.max_pages {
        out.warn(format!("only the first {} of {} pages were read (max_pages)", limits.max_pages, pages.len()));
    }
    let overrides = to_unicode_overrides(&doc);
    let mut reader =
        PageReader { doc: &doc, overrides: &overrides, budget: out.budget.clone(), fonts: BTreeMap::new() };
    for (index, page_id) in pages.values().take(limits.max_pages).enumerate() {
        if out.text.is_full() {
            break;
        }
        if index > 0 {
            out.text.end_line();
            out.text.push('\u{0C}');
            out.text.push('\n');
        }
        reader.page_text(*page_id, index + 1, out)?;
    }
    Ok(())
}

fn pdf_error(context: &str, e: lopdf::Error) -> ExtractError {
    match e {
        lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { limit }) => ExtractError::LimitExceeded(
            format!("{context}: a stream inflates past max_decompressed_bytes ({limit} bytes)"),
        ),
        other => ExtractError::Malformed(format!("{context}: {other}")),
    }
}

/// Form XObjects nested deeper than this are not read (a chain of forms each drawing the next).
const MAX_FORM_DEPTH: usize = 8;

/// Font resource name → key of its encoding in [`PageReader::fonts`].
type FontNames = BTreeMap<Vec<u8>, usize>;
/// XObject resource name → the object (a reference, usually).
type XObjects<'d> = BTreeMap<Vec<u8>, &'d Object>;

struct PageReader<'d> {
    doc: &'d Document,
    /// Copies of fonts that have both `/Encoding` and `/ToUnicode`, without the `/Encoding`, keyed
    /// by the original's address: lopdf reads `/Encoding` first, but `/ToUnicode` is what says
    /// which text a code stands for (Type3 fonts often name their glyphs `/g1`, `/a7`, ...).
    overrides: &'d HashMap<usize, Dictionary>,
    /// Bytes of decompressed content and CMaps still allowed, shared with the rest of the upload.
    budget: Budget,
    /// Encodings of fonts already seen, keyed by the font dictionary's address (fonts are shared
    /// between pages through references, so the same dictionary comes back).
    fonts: BTreeMap<usize, Encoding<'d>>,
}

/// What one content stream needs to resolve names, and where its text goes.
struct Scope<'s, 'd> {
    fonts: &'s FontNames,
    xobjects: &'s XObjects<'d>,
    context: &'s str,
}

/// Fonts that `/Font` and `/ToUnicode` both describe, as copies without `/Encoding`.
fn to_unicode_overrides(doc: &Document) -> HashMap<usize, Dictionary> {
    doc.objects
        .values()
        .filter_map(|o| o.as_dict().ok())
        .filter(|d| d.has_type(b"Font") && d.has(b"ToUnicode") && d.has(b"Encoding"))
        .map(|d| {
            let mut copy = d.clone();
            copy.remove(b"Encoding");
            (std::ptr::from_ref::<Dictionary>(d) as usize, copy)
        })
        .collect()
}

/// The fonts named in a resource dictionary.
fn resource_fonts<'d>(doc: &'d Document, resources: &'d Dictionary) -> Vec<(Vec<u8>, &'d Dictionary)> {
    let Ok(fonts) = resources.get_deref(b"Font", doc).and_then(Object::as_dict) else { return Vec::new() };
    fonts
        .iter()
        .filter_map(|(name, font)| Some((name.clone(), doc.dereference(font).ok()?.1.as_dict().ok()?)))
        .collect()
}

/// The XObjects named in resource dictionaries; the first one naming a name wins.
fn resource_xobjects<'d>(doc: &'d Document, resources: &[&'d Dictionary]) -> XObjects<'d> {
    let mut found = XObjects::new();
    for res in resources {
        if let Ok(xobjects) = res.get_deref(b"XObject", doc).and_then(Object::as_dict) {
            for (name, obj) in xobjects.iter() {
                found.entry(name.clone()).or_insert(obj);
            }
        }
    }
    found
}

impl<'d> PageReader<'d> {
    fn charge(&mut self, bytes: usize) -> Result<(), ExtractError> {
        self.budget.charge(bytes as u64, "PDF streams")
    }

    fn remaining(&self) -> usize {
        usize::try_from(self.budget.remaining()).unwrap_or(usize::MAX)
    }

    fn page_text(&mut self, page_id: lopdf::ObjectId, page_no: usize, out: &mut Out) -> Result<(), ExtractError> {
        let context = format!("page {page_no}");
        let fonts = match self.doc.get_page_fonts(page_id) {
            Ok(fonts) => fonts,
            Err(e) => {
                out.warn(format!("{context}: fonts unreadable: {e}"));
                BTreeMap::new()
            }
        };
        let by_name = self.register_fonts(fonts, &context, out)?;
        let doc = self.doc;
        let resources: Vec<&'d Dictionary> = match doc.get_page_resources(page_id) {
            Ok((dict, ids)) => {
                dict.into_iter().chain(ids.into_iter().filter_map(|id| doc.get_dictionary(id).ok())).collect()
            }
            Err(_) => Vec::new(),
        };
        let xobjects = resource_xobjects(self.doc, &resources);
        let data =
            self.doc.get_page_content_with_limit(page_id, self.remaining()).map_err(|e| pdf_error(&context, e))?;
        self.charge(data.len())?;
        let content = match Content::decode(&data) {
            Ok(content) => content,
            Err(e) => {
                out.warn(format!("{context}: content stream unreadable: {e}"));
                return Ok(());
            }
        };
        let scope = Scope { fonts: &by_name, xobjects: &xobjects, context: &context };
        self.run(&content.operations, &scope, None, &mut Vec::new(), out)
    }

    /// Decodes (once per font dictionary) the encodings of `fonts`, charging their CMaps.
    fn register_fonts(
        &mut self,
        fonts: impl IntoIterator<Item = (Vec<u8>, &'d Dictionary)>,
        context: &str,
        out: &mut Out,
    ) -> Result<FontNames, ExtractError> {
        let mut by_name = FontNames::new();
        for (name, font) in fonts {
            let key = std::ptr::from_ref::<Dictionary>(font) as usize;
            if !self.fonts.contains_key(&key) {
                let overrides = self.overrides;
                let font = overrides.get(&key).unwrap_or(font);
                self.charge_to_unicode(font)?;
                match font.get_font_encoding_with_limit(self.doc, self.remaining()) {
                    Ok(encoding) => {
                        self.fonts.insert(key, encoding);
                    }
                    Err(e @ lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. })) => {
                        return Err(pdf_error(context, e));
                    }
                    Err(e) => out.warn(format!("{context}: font encoding unreadable: {e}")),
                }
            }
            by_name.insert(name, key);
        }
        Ok(by_name)
    }

    /// Runs the text operators of one content stream. `font` is the font in effect when it starts
    /// (a form inherits its caller's); `forms` the Form XObjects being drawn, against loops.
    fn run(
        &mut self,
        operations: &[lopdf::content::Operation],
        scope: &Scope<'_, 'd>,
        mut font: Option<usize>,
        forms: &mut Vec<Option<lopdf::ObjectId>>,
        out: &mut Out,
    ) -> Result<(), ExtractError> {
        let mut last_y: Option<f32> = None;
        for op in operations {
            if out.text.is_full() {
                break;
            }
            let operands = op.operands.as_slice();
            let encoding = font.and_then(|k| self.fonts.get(&k));
            match op.operator.as_str() {
                "Tf" => {
                    font = operands.first().and_then(|o| o.as_name().ok()).and_then(|n| scope.fonts.get(n)).copied();
                }
                "Tj" | "TJ" => show(encoding, operands, out),
                "'" => {
                    out.text.end_line();
                    show(encoding, operands, out);
                }
                "\"" => {
                    out.text.end_line();
                    show(encoding, operands.get(2..).unwrap_or(&[]), out);
                }
                "T*" | "ET" => out.text.end_line(),
                // Text positioning: a vertical move starts a new line, a horizontal one a new word.
                "Td" | "TD" => match operands.get(1).and_then(number) {
                    Some(ty) if ty.abs() > 0.01 => out.text.end_line(),
                    _ => space(out),
                },
                "Tm" => {
                    let y = operands.get(5).and_then(number);
                    if y.is_some() && last_y.is_some() && y != last_y {
                        out.text.end_line();
                    } else {
                        space(out);
                    }
                    last_y = y;
                }
                "Do" => {
                    if let Some(name) = operands.first().and_then(|o| o.as_name().ok()) {
                        self.form(name, scope, font, forms, out)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Draws the XObject `name` if it is a Form XObject: its content stream is run with its own
    /// resources (or, lacking them, its caller's), charged to the budget each time it is drawn.
    fn form(
        &mut self,
        name: &[u8],
        scope: &Scope<'_, 'd>,
        font: Option<usize>,
        forms: &mut Vec<Option<lopdf::ObjectId>>,
        out: &mut Out,
    ) -> Result<(), ExtractError> {
        let Some(object) = scope.xobjects.get(name) else { return Ok(()) };
        let Ok((id, Object::Stream(stream))) = self.doc.dereference(object) else { return Ok(()) };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form".as_slice()) {
            return Ok(()); // an image
        }
        let context = scope.context;
        if forms.len() >= MAX_FORM_DEPTH {
            out.warn(format!("{context}: Form XObjects nested deeper than {MAX_FORM_DEPTH} were skipped"));
            return Ok(());
        }
        if id.is_some() && forms.contains(&id) {
            out.warn(format!("{context}: a Form XObject draws itself; the loop was cut"));
            return Ok(());
        }
        let data = stream.get_plain_content_with_limit(self.remaining()).map_err(|e| pdf_error(context, e))?;
        self.charge(data.len())?;
        let content = match Content::decode(&data) {
            Ok(content) => content,
            Err(e) => {
                out.warn(format!("{context}: Form XObject content unreadable: {e}"));
                return Ok(());
            }
        };
        let own = stream.dict.get_deref(b"Resources", self.doc).and_then(Object::as_dict).ok();
        forms.push(id);
        let result = match own {
            Some(resources) => {
                let fonts = self.register_fonts(resource_fonts(self.doc, resources), context, out)?;
                let xobjects = resource_xobjects(self.doc, &[resources]);
                self.run(&content.operations, &Scope { fonts: &fonts, xobjects: &xobjects, context }, font, forms, out)
            }
            None => self.run(&content.operations, scope, font, forms, out),
        };
        forms.pop();
        result
    }

    /// Charges a font's ToUnicode CMap to the budget before lopdf decodes it, so many fonts each
    /// carrying a CMap bomb cannot together exceed the budget.
    fn charge_to_unicode(&mut self, font: &Dictionary) -> Result<(), ExtractError> {
        let Ok(obj) = font.get(b"ToUnicode") else { return Ok(()) };
        let Ok((_, Object::Stream(stream))) = self.doc.dereference(obj) else { return Ok(()) };
        let size =
            stream.decompressed_content_with_limit(self.remaining()).map_err(|e| pdf_error("ToUnicode", e))?.len();
        self.charge(size)
    }
}

fn show(encoding: Option<&Encoding<'_>>, operands: &[Object], out: &mut Out) {
    let Some(encoding) = encoding else { return };
    let mut text = String::new();
    collect(encoding, operands, &mut text, 0);
    out.text.push_str(&text);
}

/// Text of `Tj`/`TJ` operands; in a `TJ` array a large negative kerning adjustment is a word gap.
fn collect(encoding: &Encoding<'_>, operands: &[Object], text: &mut String, depth: usize) {
    for operand in operands {
        match operand {
            Object::String(bytes, _) => {
                let _ = encoding.write_to_string(bytes, text);
            }
            Object::Array(items) if depth < 2 => collect(encoding, items, text, depth + 1),
            Object::Integer(i) if *i < -200 => text.push(' '),
            Object::Real(r) if *r < -200.0 => text.push(' '),
            _ => {}
        }
    }
}

fn space(out: &mut Out) {
    if !out.text.ends_with_space() {
        out.text.push(' ');
    }
}

fn number(o: &Object) -> Option<f32> {
    match o {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    }
}

/// Title, author, subject, keywords, creator, producer and dates from the trailer's `/Info`.
fn info_dictionary(doc: &Document, out: &mut Out) {
    let Ok(info) = doc.trailer.get(b"Info").and_then(|o| doc.dereference(o)).and_then(|(_, o)| o.as_dict()) else {
        return;
    };
    let mut seen = HashSet::new();
    for (key, field) in [
        ("title", b"Title".as_slice()),
        ("author", b"Author"),
        ("subject", b"Subject"),
        ("keywords", b"Keywords"),
        ("creator", b"Creator"),
        ("producer", b"Producer"),
        ("created", b"CreationDate"),
        ("modified", b"ModDate"),
    ] {
        let Some(value) = info.get(field).ok().and_then(|o| doc.dereference(o).ok()).map(|(_, o)| o) else {
            continue;
        };
        let Ok(text) = decode_text_string(value) else { continue };
        let text = if key == "created" || key == "modified" { pdf_date(&text).unwrap_or(text) } else { text };
        if seen.insert(key) {
            out.meta_str(key, &text);
        }
    }
}

/// `D:YYYYMMDDHHmmSS+HH'mm'` → RFC 3339 (`2024-03-05T09:30:00+01:00`); missing parts default.
fn pdf_date(raw: &str) -> Option<String> {
    let s = raw.trim().strip_prefix("D:").unwrap_or(raw.trim());
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return None;
    }
    let part = |from: usize, default: &'static str| digits.get(from..from + 2).unwrap_or(default).to_string();
    let date = format!(
        "{}-{}-{}T{}:{}:{}",
        &digits[..4],
        part(4, "01"),
        part(6, "01"),
        part(8, "00"),
        part(10, "00"),
        part(12, "00")
    );
    let zone = &s[digits.len()..];
    let offset = match zone.chars().next() {
        Some('Z') | None => "Z".to_string(),
        Some(sign @ ('+' | '-')) => {
            let z: String = zone[1..].chars().filter(char::is_ascii_digit).collect();
            format!("{sign}{}:{}", z.get(0..2).unwrap_or("00"), z.get(2..4).unwrap_or("00"))
        }
        Some(_) => "Z".to_string(),
    };
    Some(date + &offset)
}

#[cfg(test)]
mod tests {
    use super::pdf_date;

    #[test]
    fn dates() {
        assert_eq!(pdf_date("D:20240305093000+01'00'").as_deref(), Some("2024-03-05T09:30:00+01:00"));
        assert_eq!(pdf_date("D:2023").as_deref(), Some("2023-01-01T00:00:00Z"));
        assert_eq!(pdf_date("garbage"), None);
    }
}
