//! Jupyter notebooks (`.ipynb`, nbformat 4, and 3's worksheets).
//!
//! The text is every cell's source in order (markdown, code and raw cells alike), a code cell
//! followed by its text outputs: stream output, the `text/plain` of results and displays, and
//! errors as `name: value`. Images and HTML in outputs are counted, not read: their `text/plain`
//! twin, when the kernel gave one, is what a reader searches for. Cells are separated by a blank
//! line.

use serde_json::Value;

use crate::ExtractError;
use crate::out::Out;
use crate::text::decode;

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let decoded = decode(bytes).ok_or_else(|| ExtractError::Malformed("notebook is not valid text".into()))?;
    let notebook: Value = serde_json::from_str(decoded.text.trim_start())
        .map_err(|e| ExtractError::Malformed(format!("notebook JSON: {e}")))?;
    let major = notebook.get("nbformat").and_then(Value::as_u64);
    let cells = match (&notebook["cells"], &notebook["worksheets"]) {
        (Value::Array(cells), _) => cells.as_slice(),
        (Value::Null, Value::Array(sheets)) => match sheets.first().map(|s| &s["cells"]) {
            Some(Value::Array(cells)) => cells.as_slice(),
            _ => &[],
        },
        _ => return Err(ExtractError::Malformed("notebook has no list of cells".into())),
    };
    let mut counts = [0usize; 3];
    let mut images = 0usize;
    let mut title: Option<String> = None;
    for cell in cells {
        let kind = cell["cell_type"].as_str().unwrap_or("");
        match kind {
            "code" => counts[0] += 1,
            "markdown" | "heading" => counts[1] += 1,
            _ => counts[2] += 1,
        }
        if out.text.is_full() {
            continue;
        }
        // nbformat 3 keeps code in `input`.
        let source = joined(if cell["source"].is_null() { &cell["input"] } else { &cell["source"] });
        if title.is_none() && kind == "markdown" {
            title = source.lines().find_map(|l| l.strip_prefix("# ")).map(|t| t.trim().to_string());
        }
        out.text.blank_line();
        out.text.push_str(source.trim_end());
        out.text.end_line();
        for output in cell["outputs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let data = if output["data"].is_object() { &output["data"] } else { output };
            images += ["image/png", "image/jpeg", "image/svg+xml", "png", "jpeg", "svg"]
                .iter()
                .filter(|mime| !data[**mime].is_null())
                .count()
                .min(1);
            let text = match output["output_type"].as_str() {
                Some("stream") => joined(&output["text"]),
                Some("error" | "pyerr") => format!(
                    "{}: {}",
                    output["ename"].as_str().unwrap_or("Error"),
                    output["evalue"].as_str().unwrap_or_default()
                ),
                _ => joined(if data["text/plain"].is_null() { &data["text"] } else { &data["text/plain"] }),
            };
            if !text.trim().is_empty() {
                out.text.push_str(text.trim_end());
                out.text.end_line();
            }
        }
    }
    let metadata = &notebook["metadata"];
    let language = metadata["language_info"]["name"].as_str().or_else(|| metadata["kernelspec"]["language"].as_str());
    if let Some(language) = language {
        out.meta_str("language", language);
    }
    if let Some(kernel) = metadata["kernelspec"]["display_name"].as_str() {
        out.meta_str("kernel", kernel);
    }
    if let Some(t) = metadata["title"].as_str().map(str::to_string).or(title) {
        out.meta_str("title", &t);
    }
    if let Some(major) = major {
        let minor = notebook.get("nbformat_minor").and_then(Value::as_u64).unwrap_or(0);
        out.meta("nbformat", format!("{major}.{minor}"));
    }
    out.meta("cell_count", cells.len());
    out.meta("code_cell_count", counts[0]);
    out.meta("markdown_cell_count", counts[1]);
    out.meta("image_output_count", images);
    Ok(())
}

/// A multiline string, which notebooks store either as one string or as a list of lines.
fn joined(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}
