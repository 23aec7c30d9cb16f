//! SVG drawings: the text a viewer shows or reads aloud, not the geometry.
//!
//! The text is the drawing's `<title>` and `<desc>` elements (accessibility text) and its
//! `<text>` elements with their `<tspan>`s and `<textPath>`s, one line per element, in document
//! order. `<style>`, `<script>` and `<metadata>` are skipped. Metadata: the root's width, height
//! and viewBox, the title, and how many text elements there are. The drawing is not rendered, so
//! there is no thumbnail.

use std::ops::ControlFlow;

use crate::ExtractError;
use crate::out::Out;
use crate::text::decode;
use crate::xml::{Node, attr, local, walk};

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let decoded = decode(bytes).ok_or_else(|| ExtractError::Malformed("SVG file is not valid text".into()))?;
    out.meta("encoding", decoded.encoding);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    // How many open elements are skipped (style, script, metadata) and wanted (text,
    // title, desc): counted, so a deeply nested drawing costs no scan per text node.
    let (mut skipped, mut wanted) = (0usize, 0usize);
    let kind = |name: &[u8]| match name {
        b"style" | b"script" | b"metadata" => (1, 0),
        b"text" | b"title" | b"desc" => (0, 1),
        _ => (0, 0),
    };
    let mut line = String::new();
    let mut title: Option<String> = None;
    let mut texts = 0usize;
    let mut root_is_svg: Option<bool> = None;
    let mut collecting_title = false;
    let result = walk(&decoded.text, |node| {
        match node {
            Node::Open(e) => {
                let name = local(e).to_vec();
                if root_is_svg.is_none() {
                    root_is_svg = Some(name == b"svg");
                    if name != b"svg" {
                        return ControlFlow::Break(());
                    }
                    for key in ["width", "height", "viewBox"] {
                        if let Some(value) = attr(e, key) {
                            out.meta_str(&key.to_ascii_lowercase(), &value);
                        }
                    }
                }
                match name.as_slice() {
                    b"text" => texts += 1,
                    b"title" if title.is_none() => collecting_title = true,
                    _ => {}
                }
                let (skip, want) = kind(&name);
                skipped += skip;
                wanted += want;
                stack.push(name);
            }
            Node::Close(name) => {
                if matches!(name, b"text" | b"title" | b"desc") {
                    let finished = line.split_whitespace().collect::<Vec<_>>().join(" ");
                    if collecting_title && name == b"title" {
                        title = Some(finished.clone());
                        collecting_title = false;
                    }
                    if !finished.is_empty() {
                        out.text.push_str(&finished);
                        out.text.end_line();
                    }
                    line.clear();
                }
                if let Some(at) = stack.iter().rposition(|n| n == name) {
                    for closed in stack.drain(at..) {
                        let (skip, want) = kind(&closed);
                        skipped -= skip;
                        wanted -= want;
                    }
                }
            }
            Node::Text(t) => {
                if wanted > 0 && skipped == 0 {
                    if !line.is_empty() && !line.ends_with(char::is_whitespace) && !t.starts_with(char::is_whitespace) {
                        // Adjacent tspans are usually separate words or lines.
                        line.push(' ');
                    }
                    line.push_str(t);
                }
            }
        }
        if out.text.is_full() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    if root_is_svg != Some(true) {
        return Err(ExtractError::Malformed("not an SVG drawing: the root element is not <svg>".into()));
    }
    if let Err(e) = result {
        out.warn(format!("stopped at malformed XML: {e}"));
    }
    if let Some(title) = title {
        out.meta_str("title", &title);
    }
    out.meta("text_element_count", texts);
    Ok(())
}
