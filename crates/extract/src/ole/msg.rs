//! Outlook messages (`.msg`, MS-OXMSG): a compound file holding MAPI properties as streams.
//!
//! Strings are streams named `__substg1.0_<id><type>` (type `001F` UTF-16, `001E` 8-bit);
//! fixed-size values (dates) sit in the `__properties_version1.0` stream; each recipient and each
//! attachment is a storage of its own. The text is written like an `.eml`'s (From/To/Cc/Date/
//! Subject lines, a blank line, the plain-text body, or the HTML body as text when there is no
//! plain one), followed by each attachment on a page of its own, read as a document.

use serde_json::Value;

use super::{Ole, u16_at, u32_at, utf16};
use crate::bundle::{MAX_NESTING, Members};
use crate::out::{Out, TextBuf};
use crate::{ExtractError, Limits};

const SUBJECT: u16 = 0x0037;
const BODY: u16 = 0x1000;
const BODY_HTML: u16 = 0x1013;
const SENDER_NAME: u16 = 0x0C1A;
const SENDER_EMAIL: u16 = 0x0C1F;
const SENDER_SMTP: u16 = 0x5D01;
const DISPLAY_TO: u16 = 0x0E04;
const DISPLAY_CC: u16 = 0x0E03;
const MESSAGE_CLASS: u16 = 0x001A;
const INTERNET_MESSAGE_ID: u16 = 0x1035;
const CLIENT_SUBMIT_TIME: u16 = 0x0039;
const DELIVERY_TIME: u16 = 0x0E06;
const RECIPIENT_NAME: u16 = 0x3001;
const RECIPIENT_EMAIL: u16 = 0x3003;
const RECIPIENT_SMTP: u16 = 0x39FE;
const ATTACH_LONG_FILENAME: u16 = 0x3707;
const ATTACH_FILENAME: u16 = 0x3704;
const ATTACH_DATA: u16 = 0x3701;

/// Recipients and attachments read, at most (each is a storage to open).
const MAX_PARTS: usize = 2048;

pub(crate) fn extract(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut ole = Ole::open(bytes, out.budget.clone())?;
    if !ole.has("__properties_version1.0") {
        return Err(ExtractError::Malformed("Outlook message has no property stream".into()));
    }
    let subject = string(&mut ole, "", SUBJECT)?.unwrap_or_default();
    let sender_name = string(&mut ole, "", SENDER_NAME)?.unwrap_or_default();
    let sender_address = match string(&mut ole, "", SENDER_SMTP)? {
        Some(smtp) => Some(smtp),
        None => string(&mut ole, "", SENDER_EMAIL)?,
    };
    let from = match (sender_name.trim(), sender_address.as_deref().map(str::trim)) {
        (name, Some(addr)) if !name.is_empty() && name != addr => format!("{name} <{addr}>"),
        (_, Some(addr)) => addr.to_string(),
        (name, None) => name.to_string(),
    };
    let date = match time(&mut ole, CLIENT_SUBMIT_TIME)? {
        Some(date) => Some(date),
        None => time(&mut ole, DELIVERY_TIME)?,
    };

    let (mut to, mut cc) = (Vec::new(), Vec::new());
    for i in 0..MAX_PARTS {
        let storage = format!("__recip_version1.0_#{i:08X}");
        if !ole.has_storage(&storage) {
            break;
        }
        let name = string(&mut ole, &storage, RECIPIENT_NAME)?.unwrap_or_default();
        let address = match string(&mut ole, &storage, RECIPIENT_SMTP)? {
            Some(a) => Some(a),
            None => string(&mut ole, &storage, RECIPIENT_EMAIL)?,
        };
        let shown = match address {
            Some(a) if !name.is_empty() && name != a => format!("{name} <{a}>"),
            Some(a) => a,
            None => name,
        };
        // PR_RECIPIENT_TYPE: 1 To, 2 Cc, 3 Bcc.
        match ole.fixed_property(&format!("{storage}/__properties_version1.0"), 8, 0x0C15)? {
            Some(2) => cc.push(shown),
            Some(3) => {}
            _ => to.push(shown),
        }
    }
    // Without recipient storages, the display lists are all there is.
    if to.is_empty()
        && let Some(display) = string(&mut ole, "", DISPLAY_TO)?
    {
        to.extend(display.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from));
    }
    if cc.is_empty()
        && let Some(display) = string(&mut ole, "", DISPLAY_CC)?
    {
        cc.extend(display.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from));
    }

    if !from.is_empty() {
        out.text.push_str(&format!("From: {from}\n"));
    }
    for (label, list) in [("To", &to), ("Cc", &cc)] {
        if !list.is_empty() {
            out.text.push_str(&format!("{label}: {}\n", list.join(", ")));
        }
    }
    if let Some(date) = &date {
        out.text.push_str(&format!("Date: {date}\n"));
    }
    if !subject.is_empty() {
        out.text.push_str(&format!("Subject: {}\n", subject.trim()));
    }
    out.text.blank_line();
    match string(&mut ole, "", BODY)? {
        Some(body) => out.text.push_str(body.trim_end()),
        None => {
            if let Some(html) = html_body(&mut ole)? {
                let mut text = TextBuf::new(usize::MAX);
                crate::html::to_text(&html, &mut text);
                out.text.push_str(text.as_str().trim_end());
            }
        }
    }

    let mut attachments = Members::default();
    let mut names = Vec::new();
    for i in 0..MAX_PARTS {
        let storage = format!("__attach_version1.0_#{i:08X}");
        if !ole.has_storage(&storage) {
            break;
        }
        let name = match string(&mut ole, &storage, ATTACH_LONG_FILENAME)? {
            Some(n) => n,
            None => string(&mut ole, &storage, ATTACH_FILENAME)?.unwrap_or_else(|| format!("attachment-{}", i + 1)),
        };
        names.push(Value::from(name.clone()));
        // Embedded messages are storages, not data streams: listed, not read.
        let data = ole.read(&format!("{storage}/__substg1.0_{ATTACH_DATA:04X}0102"))?;
        match data {
            Some(data) if out.depth < MAX_NESTING => attachments.file(&name, &data, limits, out)?,
            _ => {}
        }
    }

    out.meta_str("subject", subject.trim());
    out.meta_str("from", &from);
    out.meta("to", to);
    if !cc.is_empty() {
        out.meta("cc", cc);
    }
    if let Some(date) = date {
        out.meta("date", date);
    }
    if let Some(id) = string(&mut ole, "", INTERNET_MESSAGE_ID)? {
        out.meta_str("message_id", &id);
    }
    if let Some(class) = string(&mut ole, "", MESSAGE_CLASS)? {
        out.meta_str("message_class", &class);
    }
    out.meta("attachment_count", names.len());
    if !names.is_empty() {
        out.meta("attachments", names);
        attachments.append_texts(out);
    }
    Ok(())
}

/// A string property of the message (`storage` "") or of a recipient or attachment storage.
fn string(ole: &mut Ole<'_>, storage: &str, id: u16) -> Result<Option<String>, ExtractError> {
    let prefix = if storage.is_empty() { String::new() } else { format!("{storage}/") };
    if let Some(raw) = ole.read(&format!("{prefix}__substg1.0_{id:04X}001F"))? {
        let text = utf16(&raw);
        return Ok(Some(text.trim_end_matches('\0').to_string()).filter(|s| !s.trim().is_empty()));
    }
    if let Some(raw) = ole.read(&format!("{prefix}__substg1.0_{id:04X}001E"))? {
        let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
        let (text, _, _) = encoding_rs::WINDOWS_1252.decode(raw);
        return Ok(Some(text.into_owned()).filter(|s| !s.trim().is_empty()));
    }
    Ok(None)
}

/// The HTML body, stored as binary (usually) or as a string.
fn html_body(ole: &mut Ole<'_>) -> Result<Option<String>, ExtractError> {
    if let Some(raw) = ole.read(&format!("__substg1.0_{BODY_HTML:04X}0102"))? {
        return Ok(Some(String::from_utf8_lossy(&raw).into_owned()));
    }
    string(ole, "", BODY_HTML)
}

/// A PT_SYSTIME property of the message as RFC 3339.
fn time(ole: &mut Ole<'_>, id: u16) -> Result<Option<String>, ExtractError> {
    // The top-level property stream has a 32-byte header.
    let Some(ticks) = ole.fixed_property("__properties_version1.0", 32, id)? else { return Ok(None) };
    Ok(super::filetime(ticks))
}

impl Ole<'_> {
    /// The 8-byte value of fixed-size property `id` in a property stream whose entries start at
    /// `header` (32 for the message, 8 for recipients and attachments).
    fn fixed_property(&mut self, stream: &str, header: usize, id: u16) -> Result<Option<u64>, ExtractError> {
        let Some(data) = self.read(stream)? else { return Ok(None) };
        let mut at = header;
        // Entries are 16 bytes: the tag (type in the low half, id in the high), flags, value.
        while let (Some(kind), Some(prop), Some(lo), Some(hi)) =
            (u16_at(&data, at), u16_at(&data, at + 2), u32_at(&data, at + 8), u32_at(&data, at + 12))
        {
            if prop == id && matches!(kind, 0x0040 | 0x0003 | 0x0014 | 0x000B) {
                return Ok(Some((u64::from(hi) << 32) | u64::from(lo)));
            }
            at += 16;
        }
        Ok(None)
    }
}
