//! E-mail (RFC 5322 / MIME `.eml`) via `mail-parser`, which decodes transfer encodings, charsets
//! and RFC 2047 encoded words.
//!
//! The text starts with the From/To/Cc/Date/Subject header lines, then a blank line, then every
//! text body part (HTML-only parts converted to text). The headers are part of the text on purpose:
//! they are what people search mail for, and the addresses in them are PII the scanner must see.
//! Attachments are listed in metadata, not extracted.

use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::Value;

use crate::ExtractError;
use crate::out::Out;

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| ExtractError::Malformed("not a parseable e-mail message".into()))?;

    let from = message.from().map(addresses).unwrap_or_default();
    let to = message.to().map(addresses).unwrap_or_default();
    let cc = message.cc().map(addresses).unwrap_or_default();
    let subject = message.subject().unwrap_or_default().trim().to_string();
    let date = message.date().map(|d| d.to_rfc3339());

    for (label, list) in [("From", &from), ("To", &to), ("Cc", &cc)] {
        if !list.is_empty() {
            out.text.push_str(&format!("{label}: {}\n", list.join(", ")));
        }
    }
    if let Some(date) = &date {
        out.text.push_str(&format!("Date: {date}\n"));
    }
    if !subject.is_empty() {
        out.text.push_str(&format!("Subject: {subject}\n"));
    }
    out.text.blank_line();
    for i in 0..message.text_body_count() {
        if out.text.is_full() {
            break;
        }
        if let Some(body) = message.body_text(i) {
            out.text.blank_line();
            out.text.push_str(body.trim_end());
        }
    }

    out.meta_str("subject", &subject);
    if let Some(first) = from.first() {
        out.meta("from", first.clone());
    }
    out.meta("to", to);
    if !cc.is_empty() {
        out.meta("cc", cc);
    }
    if let Some(date) = date {
        out.meta("date", date);
    }
    if let Some(id) = message.message_id() {
        out.meta_str("message_id", id);
    }
    let attachments: Vec<Value> =
        message.attachments().map(|a| Value::from(a.attachment_name().unwrap_or("(unnamed)"))).collect();
    out.meta("attachment_count", attachments.len());
    if !attachments.is_empty() {
        out.meta("attachments", attachments);
    }
    Ok(())
}

/// `Name <addr>` (or just the address) for every mailbox, groups flattened.
fn addresses(address: &Address<'_>) -> Vec<String> {
    address
        .iter()
        .filter_map(|a| match (a.name(), a.address()) {
            (Some(name), Some(addr)) if !name.trim().is_empty() => Some(format!("{} <{addr}>", name.trim())),
            (_, Some(addr)) => Some(addr.to_string()),
            (Some(name), None) => Some(name.to_string()),
            (None, None) => None,
        })
        .collect()
}
