//! A small event walker over quick-xml shared by every XML-based format.
//!
//! quick-xml never expands DTD-declared entities (no billion-laughs) and does not recurse (no stack
//! exhaustion on deep nesting), which is why it is used for all untrusted XML here. Elements are
//! matched by local name: office formats are namespaced, but their prefixes vary between producers.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// One step of a document walk. Empty elements arrive as an `Open` immediately followed by `Close`.
#[derive(Debug)]
pub(crate) enum Node<'a, 'e> {
    Open(&'a BytesStart<'e>),
    Close(&'a [u8]),
    Text(&'a str),
}

/// Walks `xml`, calling `visit` for each element boundary and text run (entities resolved) until
/// the end or until `visit` breaks. Malformed XML stops the walk with an error describing where.
pub(crate) fn walk(xml: &str, mut visit: impl FnMut(Node<'_, '_>) -> ControlFlow<()>) -> Result<(), String> {
    let mut reader = Reader::from_str(xml);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    loop {
        let event = reader.read_event().map_err(|e| format!("XML error at byte {}: {e}", reader.error_position()))?;
        let flow = match &event {
            Event::Start(e) => visit(Node::Open(e)),
            Event::End(e) => visit(Node::Close(e.local_name().into_inner())),
            Event::Text(t) => match t.decode() {
                Ok(text) => visit(Node::Text(&text)),
                Err(_) => ControlFlow::Continue(()),
            },
            Event::CData(c) => match c.decode() {
                Ok(text) => visit(Node::Text(&text)),
                Err(_) => ControlFlow::Continue(()),
            },
            Event::GeneralRef(r) => {
                let resolved: Option<Cow<'_, str>> = if r.is_char_ref() {
                    r.resolve_char_ref().ok().flatten().map(|c| Cow::Owned(c.to_string()))
                } else {
                    r.decode().ok().and_then(|name| resolve_xml_entity(&name)).map(Cow::Borrowed)
                };
                match resolved {
                    Some(text) => visit(Node::Text(&text)),
                    None => ControlFlow::Continue(()),
                }
            }
            Event::Eof => return Ok(()),
            _ => ControlFlow::Continue(()),
        };
        if flow.is_break() {
            return Ok(());
        }
    }
}

/// The local (unprefixed) name of an element.
pub(crate) fn local<'a>(e: &'a BytesStart<'_>) -> &'a [u8] {
    e.local_name().into_inner()
}

/// An attribute's unescaped value, matched by local name (any prefix).
pub(crate) fn attr(e: &BytesStart<'_>, local_name: &str) -> Option<String> {
    e.attributes()
        .with_checks(false)
        .filter_map(Result::ok)
        .find(|a| a.key.local_name().as_ref() == local_name.as_bytes())
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(Cow::into_owned))
}

/// An attribute matched by its full qualified name, for when the local name is ambiguous (the
/// `r:id` relationship reference next to a plain `id`).
pub(crate) fn attr_qualified(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .with_checks(false)
        .filter_map(Result::ok)
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(Cow::into_owned))
}

/// The trimmed text of the first element with each wanted local name, for metadata parts
/// (docProps/core.xml, meta.xml, the EPUB package). Best effort: stops quietly at malformed XML.
pub(crate) fn first_texts(xml: &str, wanted: &[&str]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let _ = walk(xml, |node| {
        match node {
            Node::Open(e) if current.is_none() => {
                let name = String::from_utf8_lossy(local(e));
                if wanted.contains(&name.as_ref()) && !found.contains_key(name.as_ref()) {
                    current = Some((name.into_owned(), String::new()));
                }
            }
            Node::Text(t) => {
                if let Some((_, text)) = current.as_mut() {
                    text.push_str(t);
                }
            }
            Node::Close(name) => {
                if let Some((wanted_name, text)) = current.take() {
                    if wanted_name.as_bytes() == name {
                        let text = text.trim();
                        if !text.is_empty() {
                            found.insert(wanted_name, text.to_string());
                        }
                    } else {
                        current = Some((wanted_name, text));
                    }
                }
            }
            Node::Open(_) => {}
        }
        ControlFlow::Continue(())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_text_with_entities_and_cdata() {
        let mut text = String::new();
        walk("<a x='1'>Fish &amp; chips&#33; <b/><![CDATA[<raw>]]></a>", |n| {
            if let Node::Text(t) = n {
                text.push_str(t);
            }
            ControlFlow::Continue(())
        })
        .expect("well-formed");
        assert_eq!(text, "Fish & chips! <raw>");
    }

    #[test]
    fn undeclared_entities_are_not_expanded() {
        let xml = "<!DOCTYPE a [<!ENTITY lol \"lol\">]><a>&lol;&lol;</a>";
        let mut text = String::new();
        let _ = walk(xml, |n| {
            if let Node::Text(t) = n {
                text.push_str(t);
            }
            ControlFlow::Continue(())
        });
        assert_eq!(text, "");
    }

    #[test]
    fn first_texts_finds_metadata() {
        let xml = "<cp><dc:title>Report</dc:title><dc:creator> Ann </dc:creator><dc:title>x</dc:title></cp>";
        let found = first_texts(xml, &["title", "creator"]);
        assert_eq!(found.get("title").map(String::as_str), Some("Report"));
        assert_eq!(found.get("creator").map(String::as_str), Some("Ann"));
    }
}
