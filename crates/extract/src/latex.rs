//! LaTeX (`.tex`): the text a reader of the typeset document sees, without rendering it.
//!
//! Only the body (after `\begin{document}`, or the whole file for a fragment) is text. Comments
//! are dropped; sectioning commands become paragraphs of their own; a command's brace arguments
//! are kept as text unless the command names something that is not (`\label`, `\cite`,
//! `\includegraphics`, `\usepackage`, ...); `verbatim`-like environments are kept raw; maths is kept
//! as written between its dollars (`E = mc^2`); `\\`, `~`, `&` and the escaped specials become
//! what they print. `\title`, `\author` and `\date` are the metadata, wherever they are.
//!
//! This is a reading, not a TeX engine: user macros are not expanded.

use crate::ExtractError;
use crate::out::Out;
use crate::text::decode;

/// Commands whose arguments (optional and braced) are not text.
const SKIP_ARGUMENTS: &[&str] = &[
    "label",
    "ref",
    "eqref",
    "pageref",
    "autoref",
    "cref",
    "Cref",
    "cite",
    "citep",
    "citet",
    "nocite",
    "includegraphics",
    "usepackage",
    "RequirePackage",
    "documentclass",
    "bibliographystyle",
    "bibliography",
    "addbibresource",
    "input",
    "include",
    "includeonly",
    "vspace",
    "hspace",
    "setlength",
    "addtolength",
    "setcounter",
    "newcommand",
    "renewcommand",
    "providecommand",
    "newenvironment",
    "renewenvironment",
    "def",
    "hypersetup",
    "pagestyle",
    "thispagestyle",
    "pagenumbering",
    "geometry",
    "color",
    "definecolor",
    "newtheorem",
    "graphicspath",
    "title",
    "author",
    "date",
    "thanks",
];

/// Sectioning commands: their argument is a paragraph of its own.
const HEADINGS: &[&str] = &["part", "chapter", "section", "subsection", "subsubsection", "paragraph", "subparagraph"];

/// Environments whose content is kept as written.
const VERBATIM: &[&str] = &["verbatim", "verbatim*", "lstlisting", "minted", "Verbatim", "comment"];

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let decoded = decode(bytes).ok_or_else(|| ExtractError::Malformed("LaTeX file is not valid text".into()))?;
    let source = decoded.text.as_ref();
    out.meta("encoding", decoded.encoding);
    let stripped = strip_comments(source);
    for (key, command) in [("title", "title"), ("author", "author"), ("date", "date")] {
        if let Some(arg) = argument_of(&stripped, command) {
            let mut text = String::new();
            to_text(arg, &mut text);
            let value = text.split_whitespace().collect::<Vec<_>>().join(" ");
            out.meta_str(key, &value);
        }
    }
    if let Some(class) = argument_of(&stripped, "documentclass") {
        out.meta_str("document_class", class);
    }
    let body = match stripped.find("\\begin{document}") {
        Some(at) => {
            let rest = &stripped[at + "\\begin{document}".len()..];
            rest.find("\\end{document}").map_or(rest, |end| &rest[..end])
        }
        None => stripped.as_str(),
    };
    let sections = HEADINGS
        .iter()
        .map(|h| body.matches(&format!("\\{h}{{")).count() + body.matches(&format!("\\{h}*{{")).count())
        .sum::<usize>();
    out.meta("section_count", sections);
    let mut text = String::new();
    to_text(body, &mut text);
    // Collapse the runs of blank lines that dropped commands leave behind.
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if blank > 0 {
            out.text.blank_line();
        }
        blank = 0;
        out.text.push_str(line.trim_start());
        out.text.end_line();
    }
    Ok(())
}

/// The source without `%` comments (an escaped `\%` stays).
fn strip_comments(source: &str) -> String {
    let mut kept = String::with_capacity(source.len());
    for line in source.lines() {
        let mut escaped = false;
        let mut end = line.len();
        for (i, c) in line.char_indices() {
            match c {
                '\\' => escaped = !escaped,
                '%' if !escaped => {
                    end = i;
                    break;
                }
                _ => escaped = false,
            }
        }
        kept.push_str(&line[..end]);
        kept.push('\n');
    }
    kept
}

/// The braced argument of the first `\command` (after any `[options]`).
fn argument_of<'a>(source: &'a str, command: &str) -> Option<&'a str> {
    let pattern = format!("\\{command}");
    let mut from = 0;
    while let Some(found) = source[from..].find(&pattern) {
        let after = from + found + pattern.len();
        from = after;
        // `\titlepage` is not `\title`.
        if source[after..].chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        let rest = skip_options(&source[after..]);
        return group(rest).map(|(inner, _)| inner);
    }
    None
}

/// The text after leading whitespace and `[...]` groups.
fn skip_options(mut s: &str) -> &str {
    loop {
        let trimmed = s.trim_start();
        match trimmed.strip_prefix('[') {
            Some(rest) => match rest.find(']') {
                Some(end) => s = &rest[end + 1..],
                None => return trimmed,
            },
            None => return trimmed,
        }
    }
}

/// A `{...}` group at the start of `s` (braces balanced, `\{` and `\}` ignored): its inside and
/// what follows it.
fn group(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix('{')?;
    let mut depth = 1usize;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' => {
                escaped = !escaped;
                continue;
            }
            '{' if !escaped => depth += 1,
            '}' if !escaped => {
                depth -= 1;
                if depth == 0 {
                    return Some((&rest[..i], &rest[i + 1..]));
                }
            }
            _ => {}
        }
        escaped = false;
    }
    None
}

/// Appends the readable text of LaTeX `source` to `text`. Iterative, so deep nesting costs no
/// stack.
fn to_text(source: &str, text: &mut String) {
    let mut rest = source;
    // What to write when each open brace closes.
    let mut closers: Vec<&'static str> = Vec::new();
    let mut next_group_closer: Option<&'static str> = None;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\\' => {
                let name_len = rest.find(|ch: char| !ch.is_ascii_alphabetic()).unwrap_or(rest.len());
                if name_len == 0 {
                    // A control symbol: `\\`, `\%`, `\&`, `\,` ...
                    let Some(symbol) = rest.chars().next() else { break };
                    rest = &rest[symbol.len_utf8()..];
                    match symbol {
                        '\\' => text.push('\n'),
                        '%' | '&' | '$' | '#' | '_' | '{' | '}' => text.push(symbol),
                        ',' | ';' | ' ' | '!' | ':' => text.push(' '),
                        _ => {}
                    }
                    continue;
                }
                let name = &rest[..name_len];
                rest = &rest[name_len..];
                let starred = rest.starts_with('*');
                if starred {
                    rest = &rest[1..];
                }
                match name {
                    "begin" | "end" => {
                        let Some((env, after)) = group(rest.trim_start()) else { continue };
                        rest = after;
                        if name == "begin" && VERBATIM.contains(&env) {
                            let close = format!("\\end{{{env}}}");
                            let end = rest.find(&close).unwrap_or(rest.len());
                            let body = rest[..end].strip_prefix(skip_options_len(&rest[..end])).unwrap_or(&rest[..end]);
                            text.push('\n');
                            text.push_str(body.trim_matches('\n'));
                            text.push('\n');
                            rest = rest.get(end + close.len()..).unwrap_or("");
                        } else {
                            text.push('\n');
                        }
                    }
                    "item" => {
                        rest = skip_options(rest);
                        text.push_str("\n- ");
                    }
                    "par" | "newline" | "linebreak" => text.push('\n'),
                    "maketitle" | "tableofcontents" | "centering" | "noindent" | "clearpage" | "newpage" => {}
                    "LaTeX" => text.push_str("LaTeX"),
                    "TeX" => text.push_str("TeX"),
                    "ldots" | "dots" => text.push('…'),
                    _ if SKIP_ARGUMENTS.contains(&name) => {
                        let mut after = skip_options(rest);
                        while let Some((_, next)) = group(after) {
                            after = skip_options(next);
                        }
                        rest = after;
                    }
                    _ if HEADINGS.contains(&name) => {
                        rest = skip_options(rest);
                        text.push_str("\n\n");
                        next_group_closer = Some("\n\n");
                    }
                    "footnote" => {
                        rest = skip_options(rest);
                        text.push_str(" (");
                        next_group_closer = Some(")");
                    }
                    _ => {
                        // Unknown commands and formatting (`\emph`, `\textbf`, `\href`'s text):
                        // the command goes, its braced arguments stay as text.
                        let trimmed = skip_options(rest);
                        if trimmed.starts_with('{') {
                            rest = trimmed;
                        }
                    }
                }
            }
            '{' => closers.push(next_group_closer.take().unwrap_or("")),
            '}' => {
                if let Some(closer) = closers.pop() {
                    text.push_str(closer);
                }
                // `\href{url}{text}`: adjacent arguments are separate words.
                if rest.starts_with('{') {
                    text.push(' ');
                }
            }
            '$' => {}
            '~' => text.push(' '),
            '&' => text.push(' '),
            c => text.push(c),
        }
    }
}

/// The length of a leading `[...]` (listing options), for verbatim-like environments.
fn skip_options_len(s: &str) -> &str {
    match s.strip_prefix('[').and_then(|r| r.find(']')) {
        Some(end) => &s[..end + 2],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(source: &str) -> String {
        let mut text = String::new();
        to_text(&strip_comments(source), &mut text);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn commands_become_their_text() {
        assert_eq!(
            read(r"\section{Birds} The \emph{heron}\footnote{A wader.} flies~far. % no"),
            "Birds The heron (A wader.) flies far."
        );
        assert_eq!(read(r"See \cite[p.~3]{knuth} and \ref{fig:1}. 50\% of $E = mc^2$"), "See and . 50% of E = mc^2");
        assert_eq!(read(r"\href{https://x.org}{the site} \textbf{bold}"), "https://x.org the site bold");
        assert_eq!(read("\\begin{itemize}\\item one \\item[b)] two\\end{itemize}"), "- one - two");
        assert_eq!(read("\\begin{verbatim}\n$x = {1}\\n\n\\end{verbatim} after"), "$x = {1}\\n after");
    }

    #[test]
    fn metadata_arguments() {
        let src = "\\documentclass[11pt]{article}\n\\title{Heron \\emph{Notes}}\\titlepage\n";
        assert_eq!(argument_of(src, "title"), Some(r"Heron \emph{Notes}"));
        assert_eq!(argument_of(src, "documentclass"), Some("article"));
        assert_eq!(argument_of("\\titlepage only", "title"), None);
    }

    #[test]
    fn unbalanced_input_ends_quietly() {
        assert_eq!(read(r"\section{never closed"), "never closed");
        assert_eq!(read(r"}}} \begin"), "");
        assert_eq!(read("\\"), "");
    }
}
