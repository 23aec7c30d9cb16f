//! Plain-text family: txt, markdown, csv, tsv and source code, plus the charset decoding every
//! text-based format shares.
//!
//! These formats are returned verbatim (markdown keeps its markup, csv its delimiters): the text is
//! already what a reader sees, and keeping it lets search snippets match the original.

use std::borrow::Cow;

use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1252};

use crate::out::Out;
use crate::{ExtractError, Format};

/// Text decoded from bytes, with the charset that was used.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub(crate) text: Cow<'a, str>,
    pub(crate) encoding: &'static str,
}

/// Decodes bytes that look like text: UTF-8 (with or without BOM), UTF-16 with a BOM, or
/// Windows-1252 for legacy 8-bit files that contain no control bytes. Returns None for binary data.
pub(crate) fn decode(bytes: &[u8]) -> Option<Decoded<'_>> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return Some(Decoded { text: String::from_utf8_lossy(rest), encoding: "utf-8" });
    }
    if bytes.starts_with(b"\xFF\xFE") {
        let (text, _) = UTF_16LE.decode_with_bom_removal(bytes);
        return Some(Decoded { text, encoding: "utf-16le" });
    }
    if bytes.starts_with(b"\xFE\xFF") {
        let (text, _) = UTF_16BE.decode_with_bom_removal(bytes);
        return Some(Decoded { text, encoding: "utf-16be" });
    }
    if bytes.contains(&0) {
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !has_binary_controls(bytes) => Some(Decoded { text: Cow::Borrowed(text), encoding: "utf-8" }),
        Ok(_) => None,
        // A file cut inside its last multi-byte char is still UTF-8 text.
        Err(e) if e.error_len().is_none() && !has_binary_controls(bytes) => {
            Some(Decoded { text: String::from_utf8_lossy(bytes), encoding: "utf-8" })
        }
        Err(_) if !has_binary_controls(bytes) && looks_like_8bit_text(bytes) => {
            let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
            Some(Decoded { text, encoding: "windows-1252" })
        }
        Err(_) => None,
    }
}

/// C0 control bytes other than tab, newline, form feed, carriage return and escape never occur in
/// text files, but are everywhere in binaries.
fn has_binary_controls(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B))
}

/// Legacy 8-bit text is mostly ASCII with occasional high bytes (accented letters); random binary
/// data is about half high bytes.
fn looks_like_8bit_text(bytes: &[u8]) -> bool {
    let high = bytes.iter().filter(|&&b| b >= 0x80).count();
    high * 4 < bytes.len()
}

/// The lowercase extension of a file name, or "" if it has none.
pub(crate) fn extension(filename: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// Programming (and config) language of a file, from its extension, its well-known base name or
/// its shebang line. None if it does not look like source code.
pub(crate) fn language(filename: &str, text: &str) -> Option<&'static str> {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename).to_ascii_lowercase();
    let by_name = match base.as_str() {
        "dockerfile" | "containerfile" => Some("dockerfile"),
        "makefile" | "gnumakefile" => Some("makefile"),
        "cmakelists.txt" => Some("cmake"),
        "jenkinsfile" => Some("groovy"),
        _ => None,
    };
    by_name.or_else(|| language_for_extension(&extension(filename))).or_else(|| shebang_language(text))
}

fn language_for_extension(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "rs" => "rust",
        "py" | "pyi" | "pyw" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "tsx" | "mts" | "cts" => "typescript",
        "go" => "go",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "scala" | "sc" => "scala",
        "groovy" | "gradle" => "groovy",
        "c" | "h" => "c",
        "cpp" | "cc" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" | "ino" => "cpp",
        "cs" => "csharp",
        "fs" | "fsx" => "fsharp",
        "vb" => "vbnet",
        "m" | "mm" => "objective-c",
        "swift" => "swift",
        "rb" | "rake" | "gemspec" => "ruby",
        "php" => "php",
        "pl" | "pm" => "perl",
        "lua" => "lua",
        "r" => "r",
        "jl" => "julia",
        "dart" => "dart",
        "ex" | "exs" => "elixir",
        "erl" | "hrl" => "erlang",
        "hs" => "haskell",
        "ml" | "mli" => "ocaml",
        "clj" | "cljs" | "cljc" | "edn" => "clojure",
        "elm" => "elm",
        "zig" => "zig",
        "nim" => "nim",
        "sh" | "bash" | "zsh" | "ksh" | "fish" => "shell",
        "ps1" | "psm1" => "powershell",
        "bat" | "cmd" => "batch",
        "sql" => "sql",
        "css" => "css",
        "scss" | "sass" => "scss",
        "less" => "less",
        "vue" => "vue",
        "svelte" => "svelte",
        "proto" => "protobuf",
        "graphql" | "gql" => "graphql",
        "tf" | "hcl" => "hcl",
        "conf" => "ini",
        "cmake" => "cmake",
        "mk" => "makefile",
        "asm" | "s" => "assembly",
        "sol" => "solidity",
        _ => return None,
    })
}

fn shebang_language(text: &str) -> Option<&'static str> {
    let first = text.lines().next()?.strip_prefix("#!")?;
    let mut words = first.split_whitespace();
    let program = words.next()?.rsplit('/').next()?;
    // `#!/usr/bin/env python3` names the interpreter in the second word.
    let program = if program == "env" { words.find(|w| !w.starts_with('-'))? } else { program };
    let program = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    Some(match program {
        "sh" | "bash" | "zsh" | "dash" | "ksh" | "fish" => "shell",
        "python" => "python",
        "node" | "deno" | "bun" => "javascript",
        "ruby" => "ruby",
        "perl" => "perl",
        "php" => "php",
        "lua" => "lua",
        "Rscript" => "r",
        "pwsh" => "powershell",
        _ => return None,
    })
}

/// A MIME type for source in `language`; `text/x-<language>` where there is no registered one.
pub(crate) fn language_content_type(language: &str) -> String {
    match language {
        "javascript" => "text/javascript".into(),
        "typescript" => "text/x-typescript".into(),
        "cpp" => "text/x-c++".into(),
        "shell" => "text/x-shellscript".into(),
        "php" => "application/x-php".into(),
        "sql" => "application/sql".into(),
        "css" => "text/css".into(),
        other => format!("text/x-{other}"),
    }
}

/// Verbatim text with encoding, line/word counts, and per-format facts (language, csv columns,
/// markdown title).
pub(crate) fn extract(bytes: &[u8], filename: &str, out: &mut Out) -> Result<(), ExtractError> {
    if bytes.is_empty() {
        out.meta("line_count", 0);
        return Ok(());
    }
    let Some(decoded) = decode(bytes) else {
        return Err(ExtractError::Malformed("text file is not valid text in any supported encoding".into()));
    };
    let text = decoded.text.as_ref();
    out.meta("encoding", decoded.encoding);
    out.meta("line_count", text.lines().count());
    match out.format {
        Format::SourceCode => {
            if let Some(lang) = language(filename, text) {
                out.meta("language", lang);
            }
        }
        Format::Csv => table_facts(text, ',', out),
        Format::Tsv => table_facts(text, '\t', out),
        Format::Markdown => {
            let title = text.lines().find_map(|l| l.strip_prefix("# ")).map(str::trim);
            if let Some(title) = title {
                out.meta_str("title", title);
            }
        }
        _ => {}
    }
    out.text.push_str(text);
    Ok(())
}

/// Row count and header columns of a delimited file. The header is split quote-aware; rows are
/// counted as lines (a quoted newline inside a cell is rare enough not to warrant a full parser).
fn table_facts(text: &str, delimiter: char, out: &mut Out) {
    let rows = text.lines().filter(|l| !l.trim().is_empty()).count();
    out.meta("row_count", rows);
    if let Some(header) = text.lines().next() {
        let columns = split_delimited(header, delimiter);
        out.meta("column_count", columns.len());
        let names: Vec<_> = columns.into_iter().take(100).collect();
        out.meta("columns", names);
    }
}

fn split_delimited(line: &str, delimiter: char) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == delimiter && !quoted => cells.push(std::mem::take(&mut cell).trim().to_string()),
            c => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_charsets() {
        assert_eq!(decode(b"plain").map(|d| d.encoding), Some("utf-8"));
        let latin = decode(b"caf\xe9 cr\xe8me").expect("8-bit text");
        assert_eq!(latin.encoding, "windows-1252");
        assert_eq!(latin.text, "café crème");
        let utf16 = decode(b"\xFF\xFEh\0i\0").expect("utf-16");
        assert_eq!(utf16.text, "hi");
        assert!(decode(b"\x7fELF\x02\x01\x01\0\0\0").is_none());
        assert!(decode(&[0x89, 0x01, 0x02, 0xff, 0xfe, 0x03]).is_none());
    }

    #[test]
    fn languages() {
        assert_eq!(language("main.rs", ""), Some("rust"));
        assert_eq!(language("x/Dockerfile", ""), Some("dockerfile"));
        assert_eq!(language("run", "#!/usr/bin/env python3\nprint(1)"), Some("python"));
        assert_eq!(language("run", "#!/bin/bash\n"), Some("shell"));
        assert_eq!(language("notes.txt", "hello"), None);
    }

    #[test]
    fn csv_header_split_is_quote_aware() {
        assert_eq!(split_delimited(r#"a,"b,c","d""e""#, ','), vec!["a", "b,c", "d\"e"]);
    }
}
