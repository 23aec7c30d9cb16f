//! Structured text: JSON and generic XML.
//!
//! JSON text is one line per scalar, `key: value` (array items just `value`), with a `key:` line
//! introducing each nested object or array. That keeps every key and value searchable and
//! PII-scannable without the braces and quotes of the raw file.
//!
//! XML text is the document's text nodes, one per line, whitespace-only nodes dropped.

use std::ops::ControlFlow;

use serde_json::Value;

use crate::ExtractError;
use crate::out::{Out, TextBuf};
use crate::text::decode;
use crate::xml::{Node, local, walk};

pub(crate) fn extract_json(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let Some(decoded) = decode(bytes) else {
        return Err(ExtractError::Malformed("JSON file is not valid text".into()));
    };
    out.meta("encoding", decoded.encoding);
    // serde_json caps nesting at 128 levels, which also bounds the recursion in `json_text`.
    let value: Value =
        serde_json::from_str(decoded.text.trim_start()).map_err(|e| ExtractError::Malformed(format!("JSON: {e}")))?;
    let root = match &value {
        Value::Object(map) => {
            let keys: Vec<&String> = map.keys().take(100).collect();
            out.meta("top_level_keys", keys.into_iter().cloned().collect::<Vec<_>>());
            "object"
        }
        Value::Array(items) => {
            out.meta("item_count", items.len());
            "array"
        }
        _ => "scalar",
    };
    out.meta("json_root", root);
    json_text(None, &value, &mut out.text);
    Ok(())
}

fn json_text(key: Option<&str>, value: &Value, text: &mut TextBuf) {
    if text.is_full() {
        return;
    }
    let scalar = match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            line(key, None, text);
            for item in items {
                json_text(None, item, text);
            }
            return;
        }
        Value::Object(map) => {
            line(key, None, text);
            for (k, v) in map {
                json_text(Some(k), v, text);
            }
            return;
        }
    };
    line(key, Some(&scalar), text);
}

fn line(key: Option<&str>, value: Option<&str>, text: &mut TextBuf) {
    match (key, value) {
        (Some(k), Some(v)) => {
            text.push_str(k);
            text.push_str(": ");
            text.push_str(v);
        }
        (Some(k), None) => {
            text.push_str(k);
            text.push(':');
        }
        (None, Some(v)) => text.push_str(v),
        (None, None) => return,
    }
    text.end_line();
}

pub(crate) fn extract_xml(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let Some(decoded) = decode(bytes) else {
        return Err(ExtractError::Malformed("XML file is not valid text".into()));
    };
    out.meta("encoding", decoded.encoding);
    let mut root: Option<String> = None;
    let mut elements = 0usize;
    // Text runs arrive split at entity references; join them until the next tag.
    let mut run = String::new();
    let result = walk(&decoded.text, |node| {
        match node {
            Node::Text(t) => run.push_str(t),
            Node::Open(e) => {
                flush_run(&mut run, out);
                elements += 1;
                if root.is_none() {
                    root = Some(String::from_utf8_lossy(local(e)).into_owned());
                }
            }
            Node::Close(_) => flush_run(&mut run, out),
        }
        if out.text.is_full() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    flush_run(&mut run, out);
    if let Some(root) = root {
        out.meta("root_element", root);
    }
    out.meta("element_count", elements);
    match result {
        Ok(()) => Ok(()),
        // A damaged tail should not cost the text already read; a file that is not XML at all has
        // none, and is reported as malformed.
        Err(e) if elements > 0 => {
            out.warn(format!("stopped at malformed XML: {e}"));
            Ok(())
        }
        Err(e) => Err(ExtractError::Malformed(e)),
    }
}

fn flush_run(run: &mut String, out: &mut Out) {
    let t = run.trim();
    if !t.is_empty() {
        out.text.push_str(t);
        out.text.push('\n');
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines() {
        let mut text = TextBuf::new(1000);
        let v: Value = serde_json::from_str(r#"{"addr":{"city":"Oslo"},"age":3,"name":"Ann","tags":["x","y"]}"#)
            .expect("valid json");
        json_text(None, &v, &mut text);
        assert_eq!(text.as_str(), "addr:\ncity: Oslo\nage: 3\nname: Ann\ntags:\nx\ny\n");
    }
}
