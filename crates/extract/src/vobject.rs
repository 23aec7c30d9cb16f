//! iCalendar (`.ics`, RFC 5545) and vCard (`.vcf`, RFC 6350 and the older 2.1/3.0), which share
//! one syntax: folded "content lines" `NAME;PARAM=value:value` grouped by `BEGIN:`/`END:` into
//! components.
//!
//! A calendar's text is one paragraph per event, to-do or journal entry (its summary, when, where,
//! who, then its description); a vCard file's is one paragraph per card (name, then organisation,
//! e-mail, phone, address, note). Alarms, time zones and binary properties (photos, keys,
//! attachments) carry nothing a reader searches for and are skipped. A file cut before its last
//! `END:` keeps what was read, with a warning.

use crate::ExtractError;
use crate::out::Out;
use crate::text::decode;

/// Components nested deeper than this are skipped (a real calendar nests three deep).
const MAX_DEPTH: usize = 8;
/// Values of properties listed in metadata are cut to this many chars.
const MAX_META_CHARS: usize = 200;

/// One unfolded content line.
#[derive(Debug, PartialEq)]
struct Line {
    /// Upper case, without a vCard group prefix (`item1.EMAIL` is `EMAIL`).
    name: String,
    /// `(NAME, value)` pairs, names upper case, quotes removed.
    params: Vec<(String, String)>,
    value: String,
}

impl Line {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Unfolds (a line break followed by a space or tab continues the line) and parses content lines.
/// Lines without a colon are counted in the second value and skipped.
fn content_lines(text: &str) -> (Vec<Line>, usize) {
    let mut lines = Vec::new();
    let mut bad = 0;
    let mut current = String::new();
    let mut quoted_printable_soft_break = false;
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if quoted_printable_soft_break {
            // vCard 2.1 quoted-printable values continue after a line ending in `=`.
            current.push_str(raw);
        } else if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            current.push_str(rest);
        } else {
            if !current.is_empty() {
                match parse_line(&current) {
                    Some(line) => lines.push(line),
                    None => bad += 1,
                }
            }
            current = raw.to_string();
        }
        quoted_printable_soft_break =
            current.ends_with('=') && current.to_ascii_uppercase().contains("QUOTED-PRINTABLE");
        if quoted_printable_soft_break {
            current.pop();
        }
    }
    if !current.trim().is_empty() {
        match parse_line(&current) {
            Some(line) => lines.push(line),
            None => bad += 1,
        }
    }
    (lines, bad)
}

fn parse_line(line: &str) -> Option<Line> {
    // The value starts at the first colon outside double quotes.
    let mut in_quotes = false;
    let colon = line.char_indices().find_map(|(i, c)| match c {
        '"' => {
            in_quotes = !in_quotes;
            None
        }
        ':' if !in_quotes => Some(i),
        _ => None,
    })?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut parts = split_outside_quotes(head, ';').into_iter();
    let name = parts.next()?.trim();
    let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let params = parts
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim().to_ascii_uppercase(), v.trim().trim_matches('"').to_string()),
            // vCard 2.1 allows bare types: `TEL;WORK;VOICE:`.
            None => ("TYPE".to_string(), p.trim().to_string()),
        })
        .collect();
    Some(Line { name, params, value: value.to_string() })
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A TEXT value with its escapes (`\n`, `\,`, `\;`, `\\`) resolved, or a 2.1 quoted-printable one
/// decoded.
fn text_value(line: &Line) -> String {
    unescape(&raw_value(line)).trim().to_string()
}

fn raw_value(line: &Line) -> String {
    if line.param("ENCODING").is_some_and(|e| e.eq_ignore_ascii_case("QUOTED-PRINTABLE")) {
        quoted_printable(&line.value)
    } else {
        line.value.clone()
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn quoted_printable(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'='
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            decoded.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A structured value (`N`, `ADR`, `ORG`): its parts, split at unescaped `;`, unescaped, blanks
/// dropped.
fn parts(line: &Line) -> Vec<String> {
    let raw = raw_value(line);
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut escaped = false;
    for c in raw.chars() {
        match c {
            ';' if !escaped => parts.push(std::mem::take(&mut part)),
            c => {
                escaped = c == '\\' && !escaped;
                part.push(c);
            }
        }
    }
    parts.push(part);
    parts.iter().map(|p| unescape(p).trim().to_string()).filter(|p| !p.is_empty()).collect()
}

/// What [`walk`] reports: a property with the names of the components around it
/// (`["VCALENDAR", "VEVENT"]`), or the end of the innermost component of a path.
enum Step<'a> {
    Property(&'a [String], &'a Line),
    End(&'a [String]),
}

/// Walks the components of `lines`, returning whether every component was closed.
fn walk(lines: &[Line], mut visit: impl FnMut(Step<'_>)) -> bool {
    let mut path: Vec<String> = Vec::new();
    let mut skipped_depth = 0usize;
    for line in lines {
        match line.name.as_str() {
            "BEGIN" => {
                if path.len() >= MAX_DEPTH {
                    skipped_depth += 1;
                } else {
                    path.push(line.value.trim().to_ascii_uppercase());
                }
            }
            "END" if skipped_depth > 0 => skipped_depth -= 1,
            "END" => {
                let name = line.value.trim().to_ascii_uppercase();
                // A stray END closes up to its BEGIN, if there is one.
                if let Some(at) = path.iter().rposition(|p| *p == name) {
                    while path.len() > at {
                        visit(Step::End(&path));
                        path.pop();
                    }
                }
            }
            _ if skipped_depth == 0 && !path.is_empty() => visit(Step::Property(&path, line)),
            _ => {}
        }
    }
    let closed = path.is_empty();
    while !path.is_empty() {
        visit(Step::End(&path));
        path.pop();
    }
    closed
}

fn decode_text<'a>(bytes: &'a [u8], what: &str, out: &mut Out) -> Result<std::borrow::Cow<'a, str>, ExtractError> {
    let decoded = decode(bytes).ok_or_else(|| ExtractError::Malformed(format!("{what} is not valid text")))?;
    out.meta("encoding", decoded.encoding);
    Ok(decoded.text)
}

/// One event, to-do or journal entry being collected.
#[derive(Default)]
struct Entry {
    kind: &'static str,
    summary: String,
    start: Option<String>,
    end: Option<String>,
    location: String,
    organizer: String,
    attendees: Vec<String>,
    status: String,
    description: String,
}

pub(crate) fn extract_ics(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let text = decode_text(bytes, "calendar", out)?;
    let (lines, bad) = content_lines(&text);
    if !lines.first().is_some_and(|l| l.name == "BEGIN" && l.value.trim().eq_ignore_ascii_case("VCALENDAR")) {
        return Err(ExtractError::Malformed("calendar does not begin with BEGIN:VCALENDAR".into()));
    }
    let mut entry: Option<Entry> = None;
    let mut counts = [0usize; 3];
    let mut title = String::new();
    let mut product = String::new();
    let mut first_start: Option<String> = None;
    let mut written = Vec::new();
    let closed = walk(&lines, |step| match step {
        Step::Property(path, line) => {
            let Some(component) = path.last() else { return };
            if path.len() == 1 {
                match line.name.as_str() {
                    "X-WR-CALNAME" | "NAME" => title = text_value(line),
                    "PRODID" => product = text_value(line),
                    _ => {}
                }
                return;
            }
            // Properties of alarms and time zones inside an entry are not the entry's.
            let kind = match component.as_str() {
                "VEVENT" => "Event",
                "VTODO" => "To-do",
                "VJOURNAL" => "Journal",
                _ => return,
            };
            let current = entry.get_or_insert_with(|| Entry { kind, ..Entry::default() });
            match line.name.as_str() {
                "SUMMARY" => current.summary = text_value(line),
                "DTSTART" => current.start = Some(when(line)),
                "DTEND" | "DUE" => current.end = Some(when(line)),
                "LOCATION" => current.location = text_value(line),
                "ORGANIZER" => current.organizer = person(line),
                "ATTENDEE" if current.attendees.len() < 100 => current.attendees.push(person(line)),
                "STATUS" => current.status = text_value(line),
                "DESCRIPTION" => current.description = text_value(line),
                _ => {}
            }
        }
        Step::End(path) => {
            if path.len() >= 2
                && matches!(path.last().map(String::as_str), Some("VEVENT" | "VTODO" | "VJOURNAL"))
                && let Some(done) = entry.take()
            {
                counts[match done.kind {
                    "Event" => 0,
                    "To-do" => 1,
                    _ => 2,
                }] += 1;
                if first_start.is_none() {
                    first_start.clone_from(&done.start);
                }
                written.push(done);
            }
        }
    });
    for done in written {
        if out.text.is_full() {
            break;
        }
        write_entry(&done, out);
    }
    out.meta_str("title", &title);
    out.meta_str("product", &product);
    out.meta("event_count", counts[0]);
    out.meta("todo_count", counts[1]);
    out.meta("journal_count", counts[2]);
    if let Some(start) = first_start {
        out.meta("first_start", start);
    }
    if !closed {
        out.warn("calendar ends before END:VCALENDAR (truncated?); the entries read so far are kept");
    }
    if bad > 0 {
        out.warn(format!("{bad} lines without a property name and value were skipped"));
    }
    Ok(())
}

fn write_entry(entry: &Entry, out: &mut Out) {
    out.text.blank_line();
    let heading = if entry.summary.is_empty() { "(no summary)" } else { entry.summary.as_str() };
    out.text.push_str(&format!("{}: {heading}\n", entry.kind));
    match (&entry.start, &entry.end) {
        (Some(start), Some(end)) => out.text.push_str(&format!("When: {start} to {end}\n")),
        (Some(start), None) => out.text.push_str(&format!("When: {start}\n")),
        (None, Some(end)) => out.text.push_str(&format!("Due: {end}\n")),
        (None, None) => {}
    }
    for (label, value) in [("Where", &entry.location), ("Organizer", &entry.organizer), ("Status", &entry.status)] {
        if !value.is_empty() {
            out.text.push_str(&format!("{label}: {value}\n"));
        }
    }
    if !entry.attendees.is_empty() {
        out.text.push_str(&format!("Attendees: {}\n", entry.attendees.join(", ")));
    }
    if !entry.description.is_empty() {
        out.text.push_str(&entry.description);
        out.text.end_line();
    }
}

/// `20240501T090000` → `2024-05-01 09:00`, with ` UTC` for a `Z` time and the TZID in brackets.
fn when(line: &Line) -> String {
    let v = line.value.trim();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let formatted = match (v.get(..8), v.get(8..9), v.get(9..13)) {
        (Some(date), None, None) if digits(date) => format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..8]),
        (Some(date), Some("T"), Some(time)) if digits(date) && digits(time) => {
            let utc = if v.ends_with('Z') { " UTC" } else { "" };
            format!("{}-{}-{} {}:{}{utc}", &date[..4], &date[4..6], &date[6..8], &time[..2], &time[2..4])
        }
        _ => v.to_string(),
    };
    match line.param("TZID") {
        Some(zone) if !zone.is_empty() => format!("{formatted} ({zone})"),
        _ => formatted,
    }
}

/// An ORGANIZER or ATTENDEE: `Name <address>`, the `mailto:` dropped.
fn person(line: &Line) -> String {
    let value = line.value.trim();
    let address = value.strip_prefix("mailto:").or_else(|| value.strip_prefix("MAILTO:")).unwrap_or(value);
    match line.param("CN") {
        Some(name) if !name.is_empty() => format!("{name} <{address}>"),
        _ => address.to_string(),
    }
}

pub(crate) fn extract_vcf(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let text = decode_text(bytes, "vCard file", out)?;
    let (lines, bad) = content_lines(&text);
    if !lines.first().is_some_and(|l| l.name == "BEGIN" && l.value.trim().eq_ignore_ascii_case("VCARD")) {
        return Err(ExtractError::Malformed("vCard file does not begin with BEGIN:VCARD".into()));
    }
    let mut cards: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    let mut version = String::new();
    let closed = walk(&lines, |step| match step {
        Step::Property(path, line) => {
            if path.last().map(String::as_str) != Some("VCARD") {
                return;
            }
            let value = match line.name.as_str() {
                "VERSION" => {
                    version = line.value.trim().to_string();
                    return;
                }
                "N" | "ORG" | "ADR" => parts(line).join(if line.name == "N" { " " } else { ", " }),
                "FN" | "NICKNAME" | "TITLE" | "ROLE" | "EMAIL" | "TEL" | "URL" | "NOTE" | "BDAY" | "CATEGORIES" => {
                    text_value(line)
                }
                _ => return,
            };
            if !value.is_empty() {
                current.push((line.name.clone(), value));
            }
        }
        Step::End(path) => {
            if path.last().map(String::as_str) == Some("VCARD") {
                cards.push(std::mem::take(&mut current));
            }
        }
    });
    let mut names = Vec::new();
    for card in &cards {
        let get = |name: &str| card.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let name = get("FN").or_else(|| get("N")).unwrap_or("(no name)");
        if names.len() < 100 {
            names.push(name.chars().take(MAX_META_CHARS).collect::<String>());
        }
        if out.text.is_full() {
            continue;
        }
        out.text.blank_line();
        out.text.push_str(name);
        out.text.end_line();
        for (property, value) in card {
            let label = match property.as_str() {
                "NICKNAME" => "Nickname",
                "TITLE" => "Title",
                "ROLE" => "Role",
                "ORG" => "Organization",
                "EMAIL" => "Email",
                "TEL" => "Phone",
                "ADR" => "Address",
                "URL" => "Web",
                "BDAY" => "Birthday",
                "CATEGORIES" => "Categories",
                "NOTE" => "Note",
                _ => continue,
            };
            out.text.push_str(&format!("{label}: {value}"));
            out.text.end_line();
        }
    }
    out.meta("card_count", cards.len());
    out.meta("names", names);
    out.meta_str("vcard_version", &version);
    if !closed {
        out.warn("vCard file ends inside a card (truncated?); the cards read so far are kept");
    }
    if bad > 0 {
        out.warn(format!("{bad} lines without a property name and value were skipped"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_unfold_and_keep_quoted_colons() {
        let (lines, bad) = content_lines(
            "BEGIN:VEVENT\r\nATTENDEE;CN=\"Doe: Jane\";ROLE=CHAIR:mailto:j@x.org\r\nDESCRIPTION:long\r\n  line\r\nno colon\r\n",
        );
        assert_eq!(bad, 1);
        assert_eq!(lines[1].param("CN"), Some("Doe: Jane"));
        assert_eq!(lines[1].value, "mailto:j@x.org");
        assert_eq!(lines[2].value, "long line");
    }

    #[test]
    fn text_escapes_and_quoted_printable() {
        let line = parse_line(r"SUMMARY:Heron count\, north\; south\nsecond").expect("line");
        assert_eq!(text_value(&line), "Heron count, north; south\nsecond");
        let (lines, _) = content_lines("NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:B=C3=B8rge =\r\nS=C3=A4mple\r\n");
        assert_eq!(text_value(&lines[0]), "Børge Sämple");
        let adr = parse_line(r"ADR;TYPE=work:;;4 Heron Row\;Annex;Paris;;75001;France").expect("line");
        assert_eq!(parts(&adr), vec!["4 Heron Row;Annex", "Paris", "75001", "France"]);
    }

    #[test]
    fn times() {
        let at = |s: &str| when(&parse_line(s).expect("line"));
        assert_eq!(at("DTSTART;TZID=Europe/Paris:20240501T090000"), "2024-05-01 09:00 (Europe/Paris)");
        assert_eq!(at("DTSTART:20240501T070000Z"), "2024-05-01 07:00 UTC");
        assert_eq!(at("DTSTART;VALUE=DATE:20240502"), "2024-05-02");
        assert_eq!(at("DTSTART:garbage"), "garbage");
    }
}
