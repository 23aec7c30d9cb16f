//! Lightweight markup: reStructuredText (`.rst`), AsciiDoc (`.adoc`) and Org (`.org`).
//!
//! Unlike Markdown, which is kept verbatim, these carry syntax a reader never sees: section
//! adornment lines (`=====`), directives and drawers, block delimiters, `#+KEYWORD:` lines and
//! inline link syntax. The text is the document's lines with that syntax removed: headings on
//! lines of their own, paragraphs and lists as written, code blocks kept, links reduced to their
//! text. The title (and the author, where the format names one) is the metadata, with a count of
//! sections.

use std::sync::LazyLock;

use regex::Regex;

use crate::out::Out;
use crate::text::decode;
use crate::{ExtractError, Format};

/// What a line-by-line reading of a document found.
#[derive(Default)]
struct Reading {
    lines: Vec<String>,
    title: Option<String>,
    author: Option<String>,
    sections: usize,
}

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let decoded =
        decode(bytes).ok_or_else(|| ExtractError::Malformed(format!("{} file is not valid text", out.format)))?;
    out.meta("encoding", decoded.encoding);
    let source = decoded.text.as_ref();
    let reading = match out.format {
        Format::Rst => rst(source),
        Format::Asciidoc => asciidoc(source),
        _ => org(source),
    };
    let mut blank = false;
    for line in &reading.lines {
        if out.text.is_full() {
            break;
        }
        if line.trim().is_empty() {
            blank = true;
            continue;
        }
        if blank {
            out.text.blank_line();
        }
        blank = false;
        out.text.push_str(line.trim_end());
        out.text.end_line();
    }
    if let Some(title) = &reading.title {
        out.meta_str("title", title);
    }
    if let Some(author) = &reading.author {
        out.meta_str("author", author);
    }
    out.meta("section_count", reading.sections);
    out.meta("line_count", source.lines().count());
    Ok(())
}

fn is_adornment(line: &str) -> bool {
    let line = line.trim_end();
    let mut chars = line.chars();
    match chars.next() {
        Some(c) if "=-~^\"'`#*+.:_<>".contains(c) => line.len() >= 3 && chars.all(|x| x == c),
        _ => false,
    }
}

fn rst(source: &str) -> Reading {
    static ROLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r":[A-Za-z:+-]+:`([^`<]*?)(?:\s*<[^>]*>)?`").expect("regex"));
    static LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"`([^`<]+?)\s*<([^>]*)>`__?").expect("regex"));
    static MARKS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|``([^`]+)``|`([^`]+)`_{0,2}").expect("regex"));
    let lines: Vec<&str> = source.lines().collect();
    let mut reading = Reading::default();
    let mut skip_indented = false;
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied().unwrap_or("");
        if is_adornment(line) {
            continue;
        }
        if skip_indented {
            if line.starts_with([' ', '\t']) || line.trim().is_empty() {
                continue;
            }
            skip_indented = false;
        }
        if let Some(directive) = line.strip_prefix(".. ") {
            // Comments, targets and directives; admonitions' content is text and stays.
            let keeps_content =
                ["note::", "warning::", "tip::", "important::", "attention::", "caution::", "code-block::", "code::"]
                    .iter()
                    .any(|d| directive.starts_with(d));
            if let Some(rest) = directive.strip_prefix("title::") {
                reading.title.get_or_insert_with(|| rest.trim().to_string());
            }
            skip_indented = !keeps_content;
            continue;
        }
        if line.starts_with(":Author:") || line.starts_with(":author:") {
            reading.author = Some(line[8..].trim().to_string());
        }
        // A heading is a line underlined by an adornment at least as long.
        if !line.trim().is_empty() && is_adornment(next) && next.trim_end().len() >= line.trim().chars().count() {
            reading.sections += 1;
            if reading.title.is_none() {
                reading.title = Some(line.trim().to_string());
            }
        }
        let line = ROLE.replace_all(line, "$1");
        let line = LINK.replace_all(&line, "$1 $2");
        let line = MARKS.replace_all(&line, "$1$2$3$4");
        reading.lines.push(line.trim_end_matches("::").to_string());
    }
    reading
}

fn asciidoc(source: &str) -> Reading {
    static LINK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?:link:|mailto:)?((?:https?://|mailto:)?[^\s\[]*)\[([^\]]*)\]").expect("regex"));
    static MARKS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|`([^`]+)`|#([^#]+)#").expect("regex"));
    let mut reading = Reading::default();
    let mut in_header = true;
    let mut in_comment_block = false;
    for (i, line) in source.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "////" {
            in_comment_block = !in_comment_block;
            continue;
        }
        if in_comment_block || trimmed.starts_with("//") {
            continue;
        }
        if let Some(title) = trimmed.strip_prefix("= ") {
            reading.title.get_or_insert_with(|| title.trim().to_string());
            reading.lines.push(title.trim().to_string());
            continue;
        }
        if let Some(heading) = trimmed.strip_prefix("==").map(|h| h.trim_start_matches('='))
            && heading.starts_with(' ')
        {
            reading.sections += 1;
            reading.lines.push(heading.trim().to_string());
            continue;
        }
        // The author line follows the title in the header.
        if in_header && i == 1 && reading.title.is_some() && !trimmed.is_empty() && !trimmed.starts_with(':') {
            reading.author = Some(trimmed.split('<').next().unwrap_or(trimmed).trim().to_string());
            continue;
        }
        if trimmed.is_empty() {
            in_header = false;
        }
        // Attribute entries: `:name: value` or `:name:`.
        if let Some((name, value)) = trimmed.strip_prefix(':').and_then(|a| a.split_once(':'))
            && !name.is_empty()
            && !name.contains(char::is_whitespace)
        {
            if name == "author" {
                reading.author = Some(value.trim().to_string());
            }
            continue;
        }
        // Block delimiters, block attributes and titles, table rules.
        if is_adornment(trimmed) || trimmed == "|===" || (trimmed.starts_with('[') && trimmed.ends_with(']')) {
            continue;
        }
        let line =
            trimmed.strip_prefix('.').filter(|t| t.starts_with(|c: char| c.is_alphanumeric())).unwrap_or(trimmed);
        let line = LINK.replace_all(line, |c: &regex::Captures<'_>| {
            let (target, label) = (&c[1], &c[2]);
            if label.is_empty() { target.to_string() } else { format!("{label} {target}") }
        });
        let line = MARKS.replace_all(&line, "$1$2$3$4");
        reading.lines.push(line.trim_start_matches('|').replace(" |", " ").to_string());
    }
    reading
}

fn org(source: &str) -> Reading {
    static LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[\[([^\]]+)\](?:\[([^\]]+)\])?\]").expect("regex"));
    static MARKS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(^|\s)[*/=~+]([^\s*/=~+][^*/=~+]*?)[*/=~+](\s|$|[.,;:!?])").expect("regex"));
    static HEADING: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\*+\s+(?:(?:TODO|DONE|NEXT|WAITING|CANCELLED)\s+)?(?:\[#[A-C]\]\s+)?(.*?)(?:\s+:[\w@:]+:)?$")
            .expect("regex")
    });
    let mut reading = Reading::default();
    let mut in_drawer = false;
    for line in source.lines() {
        let trimmed = line.trim();
        if in_drawer {
            in_drawer = !trimmed.eq_ignore_ascii_case(":END:");
            continue;
        }
        if trimmed.starts_with(':') && trimmed.ends_with(':') && trimmed.len() > 2 && !trimmed.contains(' ') {
            in_drawer = true;
            continue;
        }
        if let Some(keyword) = trimmed.strip_prefix("#+") {
            match keyword.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("title") => reading.title = Some(v.trim().to_string()),
                Some((k, v)) if k.eq_ignore_ascii_case("author") => reading.author = Some(v.trim().to_string()),
                _ => {}
            }
            continue;
        }
        if trimmed.starts_with("# ") || trimmed == "#" {
            continue;
        }
        if let Some(c) = HEADING.captures(line) {
            reading.sections += 1;
            reading.lines.push(String::new());
            reading.lines.push(c[1].to_string());
            reading.lines.push(String::new());
            continue;
        }
        let line = LINK.replace_all(line, |c: &regex::Captures<'_>| match c.get(2) {
            Some(label) => format!("{} {}", label.as_str(), &c[1]),
            None => c[1].to_string(),
        });
        let line = MARKS.replace_all(&line, "$1$2$3");
        reading.lines.push(line.to_string());
    }
    reading
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(reading: &Reading) -> String {
        reading.lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
    }

    #[test]
    fn rst_headings_links_and_directives() {
        let r = rst(
            "=====\nTitle\n=====\n\nIntro **bold** and `Site <https://x.org>`_.\n\n.. image:: pic.png\n   :alt: x\n\nSection\n-------\n\nSee :ref:`the part <sec>`.\n",
        );
        assert_eq!(r.title.as_deref(), Some("Title"));
        assert_eq!(r.sections, 2);
        assert_eq!(text(&r), "Title | Intro bold and Site https://x.org. | Section | See the part.");
    }

    #[test]
    fn asciidoc_header_and_inline() {
        let r = asciidoc(
            "= Heron Notes\nAda Example <ada@x.org>\n:toc:\n\n== Birds\n\n*Bold* and https://x.org[site].\n\n----\ncode\n----\n// hidden\n",
        );
        assert_eq!(
            (r.title.as_deref(), r.author.as_deref(), r.sections),
            (Some("Heron Notes"), Some("Ada Example"), 1)
        );
        assert_eq!(text(&r), "Heron Notes | Birds | Bold and site https://x.org. | code");
    }

    #[test]
    fn org_keywords_headings_and_drawers() {
        let r = org(
            "#+TITLE: Heron Notes\n#+AUTHOR: Ada\n* TODO Birds :tag:\n:PROPERTIES:\n:ID: 1\n:END:\nSome *bold* and [[https://x.org][site]].\n#+BEGIN_SRC python\nprint(1)\n#+END_SRC\n",
        );
        assert_eq!((r.title.as_deref(), r.author.as_deref(), r.sections), (Some("Heron Notes"), Some("Ada"), 1));
        assert_eq!(text(&r), "Birds | Some bold and site https://x.org. | print(1)");
    }
}
