//! HTML (and the XHTML chapters of EPUBs): the text a browser would show.
//!
//! A single forward scan, not a DOM: uploads can be malformed in every way, and text extraction only
//! needs tag boundaries, a list of invisible elements (script, style, ...) whose content is skipped,
//! and a list of block elements that start a new line. Whitespace collapses as in rendering,
//! except inside `<pre>`. Entities are decoded with the full HTML5 table.

use quick_xml::escape::resolve_html5_entity;

use crate::ExtractError;
use crate::out::{Out, TextBuf};
use crate::text::decode;

/// Facts found while scanning a document's head.
#[derive(Debug, Default)]
pub(crate) struct HtmlInfo {
    pub(crate) title: Option<String>,
    pub(crate) language: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) keywords: Option<String>,
}

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let Some(decoded) = decode(bytes) else {
        return Err(ExtractError::Malformed("HTML file is not valid text".into()));
    };
    out.meta("encoding", decoded.encoding);
    let info = to_text(&decoded.text, &mut out.text);
    for (key, value) in [
        ("title", info.title),
        ("language", info.language),
        ("description", info.description),
        ("author", info.author),
        ("keywords", info.keywords),
    ] {
        if let Some(value) = value {
            out.meta_str(key, &value);
        }
    }
    Ok(())
}

/// Elements whose content is never rendered as text.
const INVISIBLE: &[&str] = &["script", "style", "noscript", "template", "svg", "math", "object", "iframe"];

/// Elements that start a new line.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "caption",
    "blockquote",
    "pre",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "address",
    "details",
    "summary",
    "body",
    "title",
];

/// Appends the visible text of `html` to `text` and returns what the head said about it.
pub(crate) fn to_text(html: &str, text: &mut TextBuf) -> HtmlInfo {
    let mut info = HtmlInfo::default();
    let mut scan = Scanner { src: html, pos: 0 };
    let mut pending_space = false;
    let mut pre_depth = 0usize;
    while scan.pos < html.len() && !text.is_full() {
        let rest = &html[scan.pos..];
        let Some(lt) = rest.find('<') else {
            push_text(rest, pre_depth > 0, &mut pending_space, text);
            break;
        };
        push_text(&rest[..lt], pre_depth > 0, &mut pending_space, text);
        scan.pos += lt;
        let Some(tag) = scan.tag() else {
            // A '<' that opens no tag ("a < b") is text.
            push_text("<", pre_depth > 0, &mut pending_space, text);
            scan.pos += 1;
            continue;
        };
        let name = tag.name.as_str();
        if tag.closing {
            if name == "pre" {
                pre_depth = pre_depth.saturating_sub(1);
            }
        } else {
            match name {
                "html" => info.language = tag.attr("lang").or(info.language),
                "meta" => head_meta(&tag, &mut info),
                "title" => {
                    let raw = scan.skip_until_close("title");
                    if info.title.is_none() {
                        let mut title = TextBuf::new(1_000);
                        let mut space = false;
                        push_text(raw, false, &mut space, &mut title);
                        info.title = Some(title.as_str().trim().to_string());
                    }
                    continue;
                }
                "pre" => pre_depth += 1,
                _ if INVISIBLE.contains(&name) && !tag.self_closing => {
                    scan.skip_until_close(name);
                    continue;
                }
                _ => {}
            }
        }
        if BLOCK.contains(&name) {
            text.end_line();
            pending_space = false;
        } else if matches!(name, "td" | "th") && !tag.closing {
            pending_space = true;
        }
    }
    info
}

/// Appends a text run, decoding entities and collapsing whitespace unless inside `<pre>`.
fn push_text(raw: &str, preformatted: bool, pending_space: &mut bool, text: &mut TextBuf) {
    if raw.is_empty() {
        return;
    }
    let decoded = decode_entities(raw);
    if preformatted {
        text.push_str(&decoded);
        return;
    }
    if decoded.starts_with(char::is_whitespace) {
        *pending_space = true;
    }
    for word in decoded.split_whitespace() {
        if *pending_space && !text.ends_with_space() {
            text.push(' ');
        }
        text.push_str(word);
        *pending_space = true;
    }
    *pending_space = decoded.ends_with(char::is_whitespace) || (*pending_space && decoded.trim().is_empty());
}

/// Decodes `&name;`, `&#123;` and `&#x1F600;`. Unknown or unterminated references stay literal,
/// as browsers show them.
pub(crate) fn decode_entities(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '#')).map(|i| i + 1);
        let resolved = match end {
            Some(end) if rest[end..].starts_with(';') && end > 1 => {
                let name = &rest[1..end];
                let value = if let Some(num) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    u32::from_str_radix(num, 16).ok().and_then(char::from_u32).map(String::from)
                } else if let Some(num) = name.strip_prefix('#') {
                    num.parse::<u32>().ok().and_then(char::from_u32).map(String::from)
                } else {
                    resolve_html5_entity(name).map(String::from)
                };
                value.map(|v| (v, end + 1))
            }
            _ => None,
        };
        match resolved {
            Some((value, used)) => {
                out.push_str(&value);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn head_meta(tag: &Tag, info: &mut HtmlInfo) {
    let (Some(name), Some(content)) = (tag.attr("name").or_else(|| tag.attr("property")), tag.attr("content")) else {
        return;
    };
    let slot = match name.to_ascii_lowercase().as_str() {
        "description" | "og:description" => &mut info.description,
        "author" => &mut info.author,
        "keywords" => &mut info.keywords,
        "og:title" if info.title.is_none() => &mut info.title,
        _ => return,
    };
    if slot.is_none() {
        *slot = Some(decode_entities(&content).trim().to_string());
    }
}

/// A parsed tag: lowercase name and the raw attribute text.
#[derive(Debug)]
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    attrs: String,
}

impl Tag {
    /// The value of attribute `name` (case-insensitive), quoted or not, entity-decoded.
    fn attr(&self, name: &str) -> Option<String> {
        let bytes = self.attrs.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
                i += 1;
            }
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'=' && bytes[i] != b'/' {
                i += 1;
            }
            let key = &self.attrs[start..i];
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = "";
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                    let quote = bytes[i];
                    let vstart = i + 1;
                    let vend = bytes[vstart..].iter().position(|&b| b == quote).map_or(bytes.len(), |p| vstart + p);
                    value = &self.attrs[vstart..vend];
                    i = (vend + 1).min(bytes.len());
                } else {
                    let vstart = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    value = &self.attrs[vstart..i];
                }
            }
            if key.eq_ignore_ascii_case(name) {
                return Some(decode_entities(value).into_owned());
            }
            if i == start {
                i += 1; // never stall on a stray byte
            }
        }
        None
    }
}

#[derive(Debug)]
struct Scanner<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// At a '<': consumes a comment, doctype, processing instruction or tag and returns the tag
    /// (comments and declarations come back as a nameless, ignorable tag). None if this '<' does
    /// not start markup.
    fn tag(&mut self) -> Option<Tag> {
        let rest = &self.src[self.pos..];
        let ignorable = || Tag { name: String::new(), closing: false, self_closing: true, attrs: String::new() };
        if rest.starts_with("<!--") {
            self.pos += rest.find("-->").map_or(rest.len(), |i| i + 3);
            return Some(ignorable());
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            self.pos += rest.find('>').map_or(rest.len(), |i| i + 1);
            return Some(ignorable());
        }
        let bytes = rest.as_bytes();
        let closing = bytes.get(1) == Some(&b'/');
        let name_start = if closing { 2 } else { 1 };
        if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        let name_end = bytes[name_start..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
            .map_or(bytes.len(), |p| name_start + p);
        // Find the closing '>' outside quoted attribute values.
        let mut quote = None;
        let mut end = bytes.len();
        for (i, &b) in bytes.iter().enumerate().skip(name_end) {
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if b == b'>' => {
                    end = i;
                    break;
                }
                None => {}
            }
        }
        let name = rest[name_start..name_end].to_ascii_lowercase();
        // Tag names are ASCII, so `end` and `name_end` are char boundaries.
        let inner = &rest[name_end..end];
        let self_closing = inner.trim_end().ends_with('/');
        let tag = Tag { name, closing, self_closing, attrs: inner.to_string() };
        self.pos += (end + 1).min(rest.len());
        Some(tag)
    }

    /// Skips to just after `</name>` (case-insensitive) and returns the raw content before it.
    /// Linear in the skipped content, so many small scripts cannot make the scan quadratic.
    fn skip_until_close(&mut self, name: &str) -> &'a str {
        let rest = &self.src[self.pos..];
        let bytes = rest.as_bytes();
        let mut from = 0;
        while let Some(found) = rest[from..].find("</").map(|i| i + from) {
            let after_name = found + 2 + name.len();
            let name_matches =
                bytes.get(found + 2..after_name).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()));
            let boundary = bytes.get(after_name).is_none_or(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/');
            if name_matches && boundary {
                let close = rest[after_name..].find('>').map_or(rest.len(), |i| after_name + i + 1);
                self.pos += close;
                return &rest[..found];
            }
            from = found + 2;
        }
        self.pos = self.src.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(html: &str) -> (String, HtmlInfo) {
        let mut buf = TextBuf::new(10_000);
        let info = to_text(html, &mut buf);
        (buf.as_str().trim().to_string(), info)
    }

    #[test]
    fn visible_text_only() {
        let (text, info) = text_of(
            "<!DOCTYPE html><html lang=en><head><title>My &amp; Page</title>\
             <meta name=\"description\" content=\"About it\"><style>p{color:red}</style></head>\
             <body><script>var x = '<p>hidden</p>';</script><h1>Hello</h1><p>World &lt;3 &eacute;t&#233;</p>\
             <!-- secret comment --><p>a<b>b</b> c</p></body></html>",
        );
        assert_eq!(text, "Hello\nWorld <3 été\nab c");
        assert_eq!(info.title.as_deref(), Some("My & Page"));
        assert_eq!(info.language.as_deref(), Some("en"));
        assert_eq!(info.description.as_deref(), Some("About it"));
    }

    #[test]
    fn tolerates_broken_markup() {
        let (text, _) = text_of("a < b and <p unterminated");
        assert_eq!(text, "a < b and");
        let (text, _) = text_of("<script>never closed");
        assert_eq!(text, "");
        let (text, _) = text_of("x &bogus; &amp y");
        assert_eq!(text, "x &bogus; &amp y");
    }

    #[test]
    fn pre_keeps_whitespace() {
        let (text, _) = text_of("<p>a   b</p><pre>x\n  y</pre>");
        assert_eq!(text, "a b\nx\n  y");
    }
}
