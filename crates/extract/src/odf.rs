//! OpenDocument: odt, ods and odp, whose text all lives in `content.xml`.
//!
//! Paragraphs (`text:p`, `text:h`) become lines. Inside tables, a row becomes one line with cells
//! separated by tabs, which is what a spreadsheet's text looks like. Repeated rows/cells
//! (`number-rows-repeated`) are emitted once: repetition is how ODF encodes a million empty rows.

use std::ops::ControlFlow;

use crate::archive::Archive;
use crate::out::Out;
use crate::xml::{Node, attr, first_texts, local, walk};
use crate::{ExtractError, Format, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut zip = Archive::open(bytes, limits, out.budget.clone())?;
    if let Some(meta) = zip.read_string("meta.xml")? {
        document_meta(&meta, out);
    }
    let Some(content) = zip.read_string("content.xml")? else {
        return Err(ExtractError::Malformed("OpenDocument has no content.xml".into()));
    };
    let mut walker = Walker::new(out.format, limits.max_pages);
    walk(&content, |node| walker.visit(node, out)).map_err(|e| ExtractError::Malformed(format!("content.xml: {e}")))?;
    match out.format {
        Format::Ods => {
            out.meta("sheet_count", walker.sections.len());
            out.meta("sheet_names", walker.sections.clone());
        }
        Format::Odp => out.meta("slide_count", walker.section_count),
        _ => {}
    }
    if walker.section_count > limits.max_pages {
        let what = if out.format == Format::Ods { "sheets" } else { "slides" };
        out.warn(format!(
            "only the first {} of {} {what} were read (max_pages)",
            limits.max_pages, walker.section_count
        ));
    }
    Ok(())
}

/// Walk state for `content.xml`. A "section" is a sheet (ods) or a slide (odp); sections past
/// `max_pages` are skipped whole.
#[derive(Debug)]
struct Walker {
    format: Format,
    max_sections: usize,
    section_count: usize,
    sections: Vec<String>,
    /// Depth inside a skipped subtree (tracked deletions, sections over the limit).
    skip_depth: usize,
    para_depth: usize,
    cell_depth: usize,
    cells_with_text: usize,
    cell_started: bool,
    /// A paragraph ended inside the current cell: the next text needs a separating space.
    cell_para_pending: bool,
}

impl Walker {
    fn new(format: Format, max_sections: usize) -> Self {
        Self {
            format,
            max_sections,
            section_count: 0,
            sections: Vec::new(),
            skip_depth: 0,
            para_depth: 0,
            cell_depth: 0,
            cells_with_text: 0,
            cell_started: false,
            cell_para_pending: false,
        }
    }

    fn visit(&mut self, node: Node<'_, '_>, out: &mut Out) -> ControlFlow<()> {
        if self.skip_depth > 0 {
            match node {
                Node::Open(_) => self.skip_depth += 1,
                Node::Close(_) => self.skip_depth -= 1,
                Node::Text(_) => {}
            }
            return ControlFlow::Continue(());
        }
        match node {
            Node::Open(e) => match local(e) {
                b"tracked-changes" => self.skip_depth = 1,
                b"page" if self.format == Format::Odp => self.start_section(None, out),
                b"table" if self.format == Format::Ods => self.start_section(attr(e, "name"), out),
                b"p" | b"h" => self.para_depth += 1,
                b"s" if self.para_depth > 0 => {
                    let n = attr(e, "c").and_then(|c| c.parse::<usize>().ok()).unwrap_or(1).clamp(1, 64);
                    self.text(&" ".repeat(n), out);
                }
                b"tab" if self.para_depth > 0 => self.text("\t", out),
                b"line-break" if self.para_depth > 0 => self.text("\n", out),
                b"table-row" => self.cells_with_text = 0,
                b"table-cell" | b"covered-table-cell" => {
                    self.cell_depth += 1;
                    self.cell_started = false;
                    self.cell_para_pending = false;
                }
                _ => {}
            },
            Node::Close(name) => match name {
                b"p" | b"h" => {
                    self.para_depth = self.para_depth.saturating_sub(1);
                    if self.cell_depth > 0 {
                        self.cell_para_pending = self.cell_started;
                    } else {
                        out.text.end_line();
                    }
                }
                b"table-cell" | b"covered-table-cell" => self.cell_depth = self.cell_depth.saturating_sub(1),
                b"table-row" if self.cells_with_text > 0 => {
                    out.text.end_line();
                    self.cells_with_text = 0;
                }
                _ => {}
            },
            Node::Text(t) if self.para_depth > 0 => self.text(t, out),
            Node::Text(_) => {}
        }
        if out.text.is_full() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }

    fn start_section(&mut self, name: Option<String>, out: &mut Out) {
        self.section_count += 1;
        if self.section_count > self.max_sections {
            self.skip_depth = 1;
            return;
        }
        out.text.blank_line();
        if let Some(name) = name {
            out.text.push_str(&name);
            out.text.end_line();
            self.sections.push(name);
        }
    }

    fn text(&mut self, t: &str, out: &mut Out) {
        if self.cell_depth > 0 && !t.is_empty() {
            if !self.cell_started {
                if self.cells_with_text > 0 {
                    out.text.push('\t');
                }
                self.cells_with_text += 1;
                self.cell_started = true;
            } else if self.cell_para_pending {
                out.text.push(' ');
            }
            self.cell_para_pending = false;
        }
        out.text.push_str(t);
    }
}

/// Title, author, dates and the page count that `meta.xml` records.
fn document_meta(xml: &str, out: &mut Out) {
    let found = first_texts(
        xml,
        &[
            "title",
            "subject",
            "initial-creator",
            "creator",
            "creation-date",
            "date",
            "keyword",
            "language",
            "generator",
        ],
    );
    for (key, field) in [
        ("title", "title"),
        ("subject", "subject"),
        ("author", "initial-creator"),
        ("last_modified_by", "creator"),
        ("created", "creation-date"),
        ("modified", "date"),
        ("keywords", "keyword"),
        ("language", "language"),
        ("application", "generator"),
    ] {
        if let Some(value) = found.get(field) {
            out.meta_str(key, value);
        }
    }
    if !out.meta.contains_key("author")
        && let Some(creator) = found.get("creator")
    {
        out.meta_str("author", creator);
    }
    let _ = walk(xml, |node| {
        if let Node::Open(e) = node
            && local(e) == b"document-statistic"
        {
            if let Some(pages) = attr(e, "page-count").and_then(|p| p.parse::<u64>().ok()) {
                out.meta("page_count", pages);
            }
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
}
