//! EPUB: the package (OPF) named by `META-INF/container.xml` gives title/author/language and the
//! spine, the reading order of XHTML chapters; each chapter's visible text is extracted like HTML.
//! Without a usable spine, every (X)HTML member is read in name order. At most `max_pages`
//! chapters are read.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use crate::archive::{Archive, dir_of, resolve};
use crate::out::Out;
use crate::xml::{Node, attr, first_texts, local, walk};
use crate::{ExtractError, Limits, html};

pub(crate) fn extract(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut zip = Archive::open(bytes, limits, out.budget.clone())?;
    let mut chapters = match package_path(&mut zip)? {
        Some(opf) => read_package(&mut zip, &opf, out)?,
        None => {
            out.warn("no package document; chapters read in file-name order");
            Vec::new()
        }
    };
    if chapters.is_empty() {
        let mut names: Vec<String> = zip
            .names()
            .into_iter()
            .filter(|n| {
                let lower = n.to_ascii_lowercase();
                lower.ends_with(".xhtml") || lower.ends_with(".html") || lower.ends_with(".htm")
            })
            .collect();
        names.sort();
        chapters = names;
    }
    out.meta("chapter_count", chapters.len());
    if chapters.len() > limits.max_pages {
        out.warn(format!("only the first {} of {} chapters were read (max_pages)", limits.max_pages, chapters.len()));
    }
    for chapter in chapters.iter().take(limits.max_pages) {
        if out.text.is_full() {
            break;
        }
        match zip.read_string(chapter)? {
            Some(xhtml) => {
                out.text.blank_line();
                html::to_text(&xhtml, &mut out.text);
            }
            None => out.warn(format!("spine item {chapter} is missing")),
        }
    }
    Ok(())
}

/// The OPF path from `META-INF/container.xml`.
fn package_path(zip: &mut Archive<'_>) -> Result<Option<String>, ExtractError> {
    let Some(xml) = zip.read_string("META-INF/container.xml")? else {
        return Ok(None);
    };
    let mut path = None;
    let _ = walk(&xml, |node| {
        if let Node::Open(e) = node
            && local(e) == b"rootfile"
        {
            path = attr(e, "full-path");
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    Ok(path.map(|p| resolve("", &p)))
}

/// Reads metadata from the package and returns chapter member names in spine order.
fn read_package(zip: &mut Archive<'_>, opf: &str, out: &mut Out) -> Result<Vec<String>, ExtractError> {
    let Some(xml) = zip.read_string(opf)? else {
        out.warn(format!("package document {opf} is missing"));
        return Ok(Vec::new());
    };
    let found = first_texts(&xml, &["title", "creator", "language", "publisher", "date"]);
    for (key, field) in [
        ("title", "title"),
        ("author", "creator"),
        ("language", "language"),
        ("publisher", "publisher"),
        ("created", "date"),
    ] {
        if let Some(value) = found.get(field) {
            out.meta_str(key, value);
        }
    }
    let base = dir_of(opf);
    let mut manifest: BTreeMap<String, String> = BTreeMap::new();
    let mut spine: Vec<String> = Vec::new();
    let result = walk(&xml, |node| {
        if let Node::Open(e) = node {
            match local(e) {
                b"item" => {
                    if let (Some(id), Some(href)) = (attr(e, "id"), attr(e, "href")) {
                        manifest.insert(id, resolve(base, &href));
                    }
                }
                b"itemref" => {
                    if let Some(idref) = attr(e, "idref") {
                        spine.push(idref);
                    }
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = result {
        out.warn(format!("{opf}: {e}"));
    }
    Ok(spine.iter().filter_map(|id| manifest.get(id).cloned()).collect())
}
