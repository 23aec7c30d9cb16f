//! Configuration files: YAML, TOML and INI.
//!
//! They are kept verbatim, like source code: comments are often the most readable part of a
//! configuration, and a search snippet should match the file. What the format adds is its
//! outline in metadata: YAML's top-level keys and document count, TOML's top-level keys and
//! tables, INI's sections. The outline comes from a line scan, not a full parse, so a file with a
//! syntax error still has its text and outline.

use crate::out::Out;
use crate::text::decode;
use crate::{ExtractError, Format};

/// Names listed in metadata, at most.
const MAX_LISTED: usize = 100;

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let decoded =
        decode(bytes).ok_or_else(|| ExtractError::Malformed(format!("{} file is not valid text", out.format)))?;
    let text = decoded.text.as_ref();
    out.meta("encoding", decoded.encoding);
    out.meta("line_count", text.lines().count());
    match out.format {
        Format::Yaml => yaml_outline(text, out),
        Format::Toml => toml_outline(text, out),
        _ => ini_outline(text, out),
    }
    out.text.push_str(text);
    Ok(())
}

fn push_unique(list: &mut Vec<String>, name: &str) {
    let name = name.trim().trim_matches(['"', '\'']);
    if !name.is_empty() && list.len() < MAX_LISTED && !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

fn yaml_outline(text: &str, out: &mut Out) {
    let mut keys = Vec::new();
    let mut documents = 0usize;
    let mut content_in_document = false;
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            documents += 1;
            content_in_document = false;
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') || line == "..." {
            continue;
        }
        if !content_in_document && documents == 0 {
            documents = 1;
        }
        content_in_document = true;
        // A top-level mapping key starts in column 0 and ends at `: ` or the line's end.
        if line.starts_with(|c: char| !c.is_whitespace() && c != '-' && c != '#')
            && let Some((key, _)) = line.split_once(": ").or_else(|| line.strip_suffix(':').map(|k| (k, "")))
            && !key.contains(['{', '[', '#'])
        {
            push_unique(&mut keys, key);
        }
    }
    out.meta("top_level_keys", keys);
    out.meta("document_count", documents);
}

fn toml_outline(text: &str, out: &mut Out) {
    let mut keys = Vec::new();
    let mut tables = Vec::new();
    let mut in_table = false;
    let mut in_multiline_string = false;
    for line in text.lines() {
        let trimmed = line.trim();
        // Lines inside a """ or ''' string are not keys.
        let quotes = trimmed.matches("\"\"\"").count() + trimmed.matches("'''").count();
        if in_multiline_string {
            in_multiline_string = quotes % 2 == 0;
            continue;
        }
        if trimmed.starts_with('[') {
            in_table = true;
            let name = trimmed.trim_start_matches('[').split(']').next().unwrap_or_default();
            push_unique(&mut tables, name);
        } else if !in_table
            && !trimmed.starts_with('#')
            && let Some((key, _)) = trimmed.split_once('=')
        {
            push_unique(&mut keys, key);
        }
        in_multiline_string = quotes % 2 == 1;
    }
    out.meta("top_level_keys", keys);
    out.meta("tables", tables);
}

fn ini_outline(text: &str, out: &mut Out) {
    let mut sections = Vec::new();
    let mut keys = 0usize;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with([';', '#']) {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            push_unique(&mut sections, name);
        } else if trimmed.contains(['=', ':']) {
            keys += 1;
        }
    }
    out.meta("sections", sections);
    out.meta("key_count", keys);
}
