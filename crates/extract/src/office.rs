//! Office Open XML: docx, xlsx and pptx, read as zip + XML under the archive budget.
//!
//! Spreadsheets are parsed here rather than with a spreadsheet crate so that every inflated byte
//! goes through [`Archive`]'s budget; text extraction needs only shared strings and cell values.
//! `calamine` (0.36) was weighed and gives the corpus's text, but it inflates through its own
//! `zip` 8, whose deflate reader is not bounded by an entry's declared size, and reads the whole
//! shared string table when it opens a workbook: a bomb in `xl/sharedStrings.xml` with a lying
//! size would inflate before any limit here could apply, and checking declared sizes first does
//! not help since they are the lie. It also writes booleans as `true`/`false` and numbers
//! through `f64` (`1E-3` becomes `0.001`) instead of the stored values.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use crate::archive::{Archive, dir_of, resolve};
use crate::out::Out;
use crate::xml::{Node, attr, attr_qualified, first_texts, local, walk};
use crate::{ExtractError, Limits};

/// docx: body paragraphs of `word/document.xml`, then headers and footers, footnotes, endnotes
/// and comments, one paragraph per line, runs' tabs and breaks kept. Deleted (tracked-change) text
/// is skipped.
pub(crate) fn extract_docx(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut zip = Archive::open(bytes, limits, out.budget.clone())?;
    core_properties(&mut zip, out)?;
    let Some(body) = zip.read_string("word/document.xml")? else {
        return Err(ExtractError::Malformed("docx has no word/document.xml".into()));
    };
    word_text(&body, out).map_err(|e| ExtractError::Malformed(format!("word/document.xml: {e}")))?;
    // Headers and footers are parts of their own (one per section and kind: default, first, even),
    // named by convention `headerN.xml` / `footerN.xml`.
    let names = zip.names();
    let mut parts = numbered(names.clone(), "word/header", ".xml");
    parts.extend(numbered(names, "word/footer", ".xml"));
    parts.extend(["word/footnotes.xml", "word/endnotes.xml", "word/comments.xml"].map(String::from));
    for part in &parts {
        if out.text.is_full() {
            break;
        }
        if let Some(xml) = zip.read_string(part)? {
            out.text.blank_line();
            if let Err(e) = word_text(&xml, out) {
                out.warn(format!("{part}: {e}"));
            }
        }
    }
    Ok(())
}

fn word_text(xml: &str, out: &mut Out) -> Result<(), String> {
    let mut in_text = false;
    let mut run_depth = 0usize;
    walk(xml, |node| {
        match node {
            Node::Open(e) => match local(e) {
                b"t" => in_text = true,
                b"r" => run_depth += 1,
                // `tab` also names tab stops in paragraph properties; only tabs inside runs are text.
                b"tab" if run_depth > 0 => out.text.push('\t'),
                b"br" | b"cr" if run_depth > 0 => out.text.push('\n'),
                _ => {}
            },
            Node::Close(name) => match name {
                b"t" => in_text = false,
                b"r" => run_depth = run_depth.saturating_sub(1),
                b"p" => out.text.end_line(),
                _ => {}
            },
            Node::Text(t) if in_text => out.text.push_str(t),
            Node::Text(_) => {}
        }
        if out.text.is_full() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
}

/// pptx: slide text in presentation order (`a:t` runs, one paragraph per line), each slide
/// followed by its speaker notes, slides separated by a blank line; at most `max_pages` slides.
pub(crate) fn extract_pptx(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut zip = Archive::open(bytes, limits, out.budget.clone())?;
    core_properties(&mut zip, out)?;
    let slides = slide_order(&mut zip)?;
    out.meta("slide_count", slides.len());
    if slides.len() > limits.max_pages {
        out.warn(format!("only the first {} of {} slides were read (max_pages)", limits.max_pages, slides.len()));
    }
    for slide in slides.iter().take(limits.max_pages) {
        if out.text.is_full() {
            break;
        }
        let Some(xml) = zip.read_string(slide)? else {
            out.warn(format!("missing slide part {slide}"));
            continue;
        };
        out.text.blank_line();
        if let Err(e) = drawing_text(&xml, out) {
            out.warn(format!("{slide}: {e}"));
        }
        let notes = relationships_of_type(&mut zip, slide, "/notesSlide")?;
        for part in notes {
            if let Some(xml) = zip.read_string(&part)? {
                out.text.end_line();
                if let Err(e) = drawing_text(&xml, out) {
                    out.warn(format!("{part}: {e}"));
                }
            }
        }
    }
    Ok(())
}

/// The `a:t` runs of a slide or notes part, one paragraph per line. Fields (`a:fld`: slide numbers,
/// dates) are skipped: on notes pages they are only the slide number.
fn drawing_text(xml: &str, out: &mut Out) -> Result<(), String> {
    let mut in_text = false;
    let mut in_field = 0usize;
    walk(xml, |node| {
        match node {
            Node::Open(e) if local(e) == b"t" => in_text = true,
            Node::Open(e) if local(e) == b"fld" => in_field += 1,
            Node::Open(e) if local(e) == b"br" => out.text.push('\n'),
            Node::Close(b"t") => in_text = false,
            Node::Close(b"fld") => in_field = in_field.saturating_sub(1),
            Node::Close(b"p") => out.text.end_line(),
            Node::Text(t) if in_text && in_field == 0 => out.text.push_str(t),
            _ => {}
        }
        if out.text.is_full() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
}

/// Slide part names in the order `ppt/presentation.xml` lists them, falling back to the numeric
/// order of `ppt/slides/slideN.xml` when the presentation part or its relationships are unusable.
fn slide_order(zip: &mut Archive<'_>) -> Result<Vec<String>, ExtractError> {
    let rels = relationships(zip, "ppt/presentation.xml")?;
    let mut ordered = Vec::new();
    if let Some(xml) = zip.read_string("ppt/presentation.xml")? {
        let _ = walk(&xml, |node| {
            if let Node::Open(e) = node
                && local(e) == b"sldId"
                && let Some(target) = attr_qualified(e, "r:id").and_then(|id| rels.get(&id))
            {
                ordered.push(target.clone());
            }
            ControlFlow::Continue(())
        });
    }
    ordered.retain(|name| zip.contains(name));
    if !ordered.is_empty() {
        return Ok(ordered);
    }
    Ok(numbered(zip.names(), "ppt/slides/slide", ".xml"))
}

/// Members named `{prefix}{number}{suffix}`, sorted by number.
fn numbered(names: Vec<String>, prefix: &str, suffix: &str) -> Vec<String> {
    let mut found: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|n| {
            let num = n.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()?;
            Some((num, n))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

/// xlsx: each sheet (at most `max_pages`) as its name on a line, then one line per row with cells
/// separated by tabs. Shared strings are resolved; numbers are the stored values (dates stay serial
/// numbers, formulas give their cached result).
pub(crate) fn extract_xlsx(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut zip = Archive::open(bytes, limits, out.budget.clone())?;
    core_properties(&mut zip, out)?;
    let Some(workbook) = zip.read_string("xl/workbook.xml")? else {
        return Err(ExtractError::Malformed("xlsx has no xl/workbook.xml".into()));
    };
    let rels = relationships(&mut zip, "xl/workbook.xml")?;
    let mut sheets: Vec<(String, Option<String>)> = Vec::new();
    walk(&workbook, |node| {
        if let Node::Open(e) = node
            && local(e) == b"sheet"
        {
            let name = attr(e, "name").unwrap_or_default();
            let target = attr_qualified(e, "r:id").and_then(|id| rels.get(&id).cloned());
            sheets.push((name, target));
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| ExtractError::Malformed(format!("xl/workbook.xml: {e}")))?;
    out.meta("sheet_count", sheets.len());
    out.meta("sheet_names", sheets.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    if sheets.len() > limits.max_pages {
        out.warn(format!("only the first {} of {} sheets were read (max_pages)", limits.max_pages, sheets.len()));
    }
    let strings = match zip.read_string("xl/sharedStrings.xml")? {
        Some(xml) => shared_strings(&xml, out),
        None => Vec::new(),
    };
    for (index, (name, target)) in sheets.into_iter().take(limits.max_pages).enumerate() {
        if out.text.is_full() {
            break;
        }
        // Workbooks without relationships still follow the sheetN naming convention.
        let part = target.unwrap_or_else(|| format!("xl/worksheets/sheet{}.xml", index + 1));
        let Some(xml) = zip.read_string(&part)? else {
            out.warn(format!("missing sheet part {part}"));
            continue;
        };
        out.text.blank_line();
        out.text.push_str(&name);
        out.text.end_line();
        if let Err(e) = sheet_text(&xml, &strings, out) {
            out.warn(format!("{part}: {e}"));
        }
    }
    Ok(())
}

/// The shared string table: one entry per `si`, joining its rich-text runs, skipping phonetic
/// (`rPh`) annotations that would duplicate East Asian text.
fn shared_strings(xml: &str, out: &mut Out) -> Vec<String> {
    let mut strings = Vec::new();
    let mut current = String::new();
    let mut in_text = false;
    let mut in_phonetic = false;
    let result = walk(xml, |node| {
        match node {
            Node::Open(e) => match local(e) {
                b"t" => in_text = true,
                b"rPh" => in_phonetic = true,
                _ => {}
            },
            Node::Close(name) => match name {
                b"t" => in_text = false,
                b"rPh" => in_phonetic = false,
                b"si" => strings.push(std::mem::take(&mut current)),
                _ => {}
            },
            Node::Text(t) if in_text && !in_phonetic => current.push_str(t),
            Node::Text(_) => {}
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = result {
        out.warn(format!("xl/sharedStrings.xml: {e}"));
    }
    strings
}

fn sheet_text(xml: &str, strings: &[String], out: &mut Out) -> Result<(), String> {
    let mut cell_type = String::new();
    let mut value = String::new();
    let mut in_value = false;
    let mut cells_in_row = 0usize;
    walk(xml, |node| {
        match node {
            Node::Open(e) => match local(e) {
                b"c" => {
                    cell_type = attr(e, "t").unwrap_or_default();
                    value.clear();
                }
                b"v" | b"t" => in_value = true,
                b"row" => cells_in_row = 0,
                _ => {}
            },
            Node::Text(t) if in_value => value.push_str(t),
            Node::Text(_) => {}
            Node::Close(name) => match name {
                b"v" | b"t" => in_value = false,
                b"c" => {
                    let shown = match cell_type.as_str() {
                        "s" => {
                            value.trim().parse::<usize>().ok().and_then(|i| strings.get(i)).cloned().unwrap_or_default()
                        }
                        "b" => (if value.trim() == "1" { "TRUE" } else { "FALSE" }).to_string(),
                        _ => std::mem::take(&mut value),
                    };
                    if !shown.is_empty() {
                        if cells_in_row > 0 {
                            out.text.push('\t');
                        }
                        out.text.push_str(&shown);
                        cells_in_row += 1;
                    }
                }
                b"row" if cells_in_row > 0 => {
                    out.text.end_line();
                }
                _ => {}
            },
        }
        if out.text.is_full() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
}

/// Relationship id → resolved member name for `part` (from `<dir>/_rels/<file>.rels`).
fn relationships(zip: &mut Archive<'_>, part: &str) -> Result<BTreeMap<String, String>, ExtractError> {
    Ok(typed_relationships(zip, part)?.into_iter().map(|(id, (_, target))| (id, target)).collect())
}

/// Members that `part` relates to with a relationship type ending in `type_suffix`, in id order.
fn relationships_of_type(zip: &mut Archive<'_>, part: &str, type_suffix: &str) -> Result<Vec<String>, ExtractError> {
    let rels = typed_relationships(zip, part)?;
    Ok(rels.into_values().filter(|(kind, _)| kind.ends_with(type_suffix)).map(|(_, target)| target).collect())
}

/// Relationship id → (type, resolved member name) for `part`; external targets are left out.
fn typed_relationships(zip: &mut Archive<'_>, part: &str) -> Result<BTreeMap<String, (String, String)>, ExtractError> {
    let dir = dir_of(part);
    let file = part.rsplit('/').next().unwrap_or(part);
    let rels_name = if dir.is_empty() { format!("_rels/{file}.rels") } else { format!("{dir}/_rels/{file}.rels") };
    let mut rels = BTreeMap::new();
    if let Some(xml) = zip.read_string(&rels_name)? {
        let _ = walk(&xml, |node| {
            if let Node::Open(e) = node
                && local(e) == b"Relationship"
                && attr(e, "TargetMode").as_deref() != Some("External")
                && let (Some(id), Some(target)) = (attr(e, "Id"), attr(e, "Target"))
            {
                rels.insert(id, (attr(e, "Type").unwrap_or_default(), resolve(dir, &target)));
            }
            ControlFlow::Continue(())
        });
    }
    Ok(rels)
}

/// Dublin Core document properties (`docProps/core.xml`) and page/word counts from
/// `docProps/app.xml`, shared by all three formats.
fn core_properties(zip: &mut Archive<'_>, out: &mut Out) -> Result<(), ExtractError> {
    if let Some(xml) = zip.read_string("docProps/core.xml")? {
        let found = first_texts(
            &xml,
            &[
                "title",
                "subject",
                "creator",
                "keywords",
                "description",
                "lastModifiedBy",
                "created",
                "modified",
                "language",
            ],
        );
        for (key, field) in [
            ("title", "title"),
            ("subject", "subject"),
            ("author", "creator"),
            ("keywords", "keywords"),
            ("description", "description"),
            ("last_modified_by", "lastModifiedBy"),
            ("created", "created"),
            ("modified", "modified"),
            ("language", "language"),
        ] {
            if let Some(value) = found.get(field) {
                out.meta_str(key, value);
            }
        }
    }
    if let Some(xml) = zip.read_string("docProps/app.xml")? {
        let found = first_texts(&xml, &["Pages", "Application"]);
        if let Some(pages) = found.get("Pages").and_then(|p| p.parse::<u64>().ok()) {
            out.meta("page_count", pages);
        }
        if let Some(app) = found.get("Application") {
            out.meta_str("application", app);
        }
    }
    Ok(())
}
