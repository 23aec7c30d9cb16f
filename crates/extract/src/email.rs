//! E-mail (RFC 5322 / MIME `.eml`) via `mail-parser`, which decodes transfer encodings, charsets
//! and RFC 2047 encoded words.
//!
//! The text starts with the From/To/Cc/Date/Subject header lines, then a blank line, then every
//! text body part (HTML-only parts converted to text). The headers are part of the text on purpose:
//! they are what people search mail for, and the addresses in them are PII the scanner must see.
//! Attachments follow, each read as a document on a page of its own (headed by its name), so a
//! search hit in an attachment names it; `attachments` lists them all.
//!
//! A mailbox (`.mbox`, the mboxrd flavour with `>From ` quoting) is its messages in order, each
//! written as above and each on a page of its own, so that a search hit's page is the message's
//! number.

use std::collections::BTreeSet;

use mail_parser::mailbox::mbox::MessageIterator;
use mail_parser::{Address, Message, MessageParser, MimeHeaders};
use serde_json::Value;

use crate::bundle::{MAX_NESTING, Members};
use crate::out::Out;
use crate::{ExtractError, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| ExtractError::Malformed("not a parseable e-mail message".into()))?;
    let facts = write_message(&message, out);
    let mut attachments = Members::default();
    if out.depth < MAX_NESTING {
        for (i, part) in message.attachments().enumerate() {
            let name = part.attachment_name().map_or_else(|| format!("attachment-{}", i + 1), str::to_string);
            attachments.file(&name, part.contents(), limits, out)?;
        }
    }
    attachments.append_texts(out);
    out.meta_str("subject", &facts.subject);
    if let Some(first) = facts.from.first() {
        out.meta("from", first.clone());
    }
    out.meta("to", facts.to);
    if !facts.cc.is_empty() {
        out.meta("cc", facts.cc);
    }
    if let Some(date) = facts.date {
        out.meta("date", date);
    }
    if let Some(id) = message.message_id() {
        out.meta_str("message_id", id);
    }
    out.meta("attachment_count", facts.attachments.len());
    if !facts.attachments.is_empty() {
        out.meta("attachments", facts.attachments);
    }
    Ok(())
}

/// Subjects and senders listed in a mailbox's metadata, at most.
const MAX_LISTED: usize = 100;

pub(crate) fn extract_mbox(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut count = 0usize;
    let mut unreadable = 0usize;
    let mut subjects = Vec::new();
    let mut senders = BTreeSet::new();
    let (mut first_date, mut last_date) = (None, None);
    for item in MessageIterator::new(bytes) {
        let Ok(raw) = item else { break };
        if count == limits.max_pages {
            out.warn(format!("only the first {} messages were read (max_pages)", limits.max_pages));
            break;
        }
        let Some(message) = MessageParser::default().parse(raw.contents()) else {
            unreadable += 1;
            continue;
        };
        if count > 0 {
            out.text.end_line();
            out.text.push('\u{0C}');
            out.text.push('\n');
        }
        count += 1;
        let facts = write_message(&message, out);
        if subjects.len() < MAX_LISTED && !facts.subject.is_empty() {
            subjects.push(facts.subject);
        }
        if senders.len() < MAX_LISTED
            && let Some(from) = facts.from.into_iter().next()
        {
            senders.insert(from);
        }
        if let Some(date) = facts.date {
            first_date.get_or_insert_with(|| date.clone());
            last_date = Some(date);
        }
        if out.text.is_full() {
            break;
        }
    }
    if count == 0 && unreadable == 0 {
        return Err(ExtractError::Malformed("mailbox has no message after a \"From \" line".into()));
    }
    out.meta("message_count", count);
    out.meta("subjects", subjects);
    out.meta("senders", senders.into_iter().collect::<Vec<_>>());
    if let (Some(first), Some(last)) = (first_date, last_date) {
        out.meta("first_date", first);
        out.meta("last_date", last);
    }
    if unreadable > 0 {
        out.warn(format!("{unreadable} messages could not be parsed and were skipped"));
    }
    Ok(())
}

/// What a message's metadata lists.
struct Facts {
    subject: String,
    from: Vec<String>,
    to: Vec<String>,
    cc: Vec<String>,
    date: Option<String>,
    attachments: Vec<Value>,
}

/// Writes a message's header lines and text bodies.
fn write_message(message: &Message<'_>, out: &mut Out) -> Facts {
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

    let attachments: Vec<Value> =
        message.attachments().map(|a| Value::from(a.attachment_name().unwrap_or("(unnamed)"))).collect();
    Facts { subject, from, to, cc, date, attachments }
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
