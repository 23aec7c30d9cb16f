//! PII detection and redaction.
//!
//! Every kind is found in two steps: a permissive regex proposes candidates (the `regex` crate is
//! linear-time, so scanning is O(text) per pattern), then a validator rejects the ones that are not
//! real: Luhn for cards, mod-97 and per-country length for IBANs, issuance rules for SSNs,
//! `std::net` parsing for IP addresses, digit counts and neighbours for phones. Kinds that look like
//! any number (dates of birth, passport numbers) are only reported after a label such as `DOB:`.
//! Overlaps are resolved in favour of the more specific kind, then the longer match.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The kinds of PII the scanner reports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    CreditCard,
    Ssn,
    Iban,
    IpAddress,
    /// Hardware addresses identify a device, and so its owner (`00:1A:2B:3C:4D:5E`).
    MacAddress,
    /// Only after a label (`DOB:`, `Date of birth`, `born on`): bare dates are everywhere.
    DateOfBirth,
    /// Only after a label (`Passport No.`): bare 9-character codes are everywhere.
    PassportNumber,
}

impl PiiKind {
    /// All kinds, in declaration order.
    pub const ALL: [PiiKind; 9] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::CreditCard,
        PiiKind::Ssn,
        PiiKind::Iban,
        PiiKind::IpAddress,
        PiiKind::MacAddress,
        PiiKind::DateOfBirth,
        PiiKind::PassportNumber,
    ];

    /// SCREAMING_SNAKE name used in masks: `[REDACTED:CREDIT_CARD]`.
    pub fn label(&self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::CreditCard => "CREDIT_CARD",
            PiiKind::Ssn => "SSN",
            PiiKind::Iban => "IBAN",
            PiiKind::IpAddress => "IP_ADDRESS",
            PiiKind::MacAddress => "MAC_ADDRESS",
            PiiKind::DateOfBirth => "DATE_OF_BIRTH",
            PiiKind::PassportNumber => "PASSPORT_NUMBER",
        }
    }

    /// Overlap priority: checksummed and labelled kinds beat shape-only ones.
    fn specificity(&self) -> u8 {
        match self {
            PiiKind::CreditCard | PiiKind::Iban => 9,
            PiiKind::Email => 8,
            PiiKind::DateOfBirth | PiiKind::PassportNumber => 7,
            PiiKind::Ssn => 6,
            PiiKind::MacAddress => 5,
            PiiKind::IpAddress => 4,
            PiiKind::Phone => 3,
        }
    }
}

/// One detected item: `text[start..end]` (byte offsets on char boundaries).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

/// How [`redact`] replaces a finding.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RedactionStyle {
    /// `[REDACTED:EMAIL]`: keeps the sentence readable and says what was there.
    #[default]
    Mask,
    /// Deletes the text outright.
    Remove,
}

/// Finds PII in `text`: sorted by start, non-overlapping.
pub fn scan(text: &str) -> Vec<Finding> {
    let mut candidates = Vec::new();
    emails(text, &mut candidates);
    phones(text, &mut candidates);
    cards(text, &mut candidates);
    ssns(text, &mut candidates);
    ibans(text, &mut candidates);
    ips(text, &mut candidates);
    macs(text, &mut candidates);
    labelled(text, &mut candidates);
    resolve_overlaps(candidates)
}

/// Replaces each finding per `style`. Findings that are out of range, not on char boundaries, or
/// overlap an earlier one are ignored, so any `scan` output (even of other text) is safe to pass.
pub fn redact(text: &str, findings: &[Finding], style: RedactionStyle) -> String {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| (f.start, f.end));
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for f in sorted {
        let valid = f.start >= cursor
            && f.start < f.end
            && f.end <= text.len()
            && text.is_char_boundary(f.start)
            && text.is_char_boundary(f.end);
        if !valid {
            continue;
        }
        out.push_str(&text[cursor..f.start]);
        if style == RedactionStyle::Mask {
            out.push_str("[REDACTED:");
            out.push_str(f.kind.label());
            out.push(']');
        }
        cursor = f.end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// Count of findings per kind.
pub fn summarize(findings: &[Finding]) -> BTreeMap<PiiKind, usize> {
    let mut counts = BTreeMap::new();
    for f in findings {
        *counts.entry(f.kind).or_insert(0) += 1;
    }
    counts
}

/// Keeps the most specific (then longest, then earliest) candidates that do not overlap.
fn resolve_overlaps(mut candidates: Vec<Finding>) -> Vec<Finding> {
    candidates.sort_by(|a, b| {
        b.kind
            .specificity()
            .cmp(&a.kind.specificity())
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    // start -> end of accepted findings, to test overlap in O(log n).
    let mut accepted: BTreeMap<usize, Finding> = BTreeMap::new();
    for c in candidates {
        let before = accepted.range(..c.end).next_back().map(|(_, f)| *f);
        if before.is_some_and(|f| f.end > c.start) {
            continue;
        }
        accepted.insert(c.start, c);
    }
    accepted.into_values().collect()
}

/// Compiles a pattern that is a constant of this module (covered by tests), so failure is a bug.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("PII patterns are valid regexes")
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)[a-z0-9._%+\-]{1,64}@[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)*\.[a-z]{2,24}",
    )
});
static PHONE_INTL: LazyLock<Regex> = LazyLock::new(|| re(r"\+\d{1,3}(?:[ .\-]?\(\d{1,4}\))?(?:[ .\-]?\d{1,5}){1,6}"));
static PHONE_NANP: LazyLock<Regex> = LazyLock::new(|| re(r"(?:\(\d{3}\) ?|\d{3}[.\-])\d{3}[.\-]\d{4}"));
// Up to 25 digits so a card followed by another group ("4111 1111 1111 1111 2024") is one
// candidate whose prefix can be validated, instead of a slice cut off mid-group.
static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"\d(?:[ \-]?\d){12,24}"));
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{3})-(\d{2})-(\d{4})"));
static IBAN: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){2,9}"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"));
static IPV6: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})?"));
static MAC: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)[0-9a-f]{2}(?:[:\-][0-9a-f]{2}){5}"));
static DOB: LazyLock<Regex> = LazyLock::new(|| {
    let month = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?";
    re(&format!(
        r"(?i)\b(?:dob|d\.o\.b\.?|date of birth|birth ?date|born(?: on)?)\s*[:#\-]?\s*(\d{{1,2}}[/.\-]\d{{1,2}}[/.\-]\d{{2,4}}|\d{{4}}-\d{{2}}-\d{{2}}|{month}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\s+{month},?\s+\d{{4}})"
    ))
});
static PASSPORT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\bpassport(?:\s*(?:no\.?|number|num\.?|#))?\s*[:#]?\s*([A-Z0-9]{6,9})\b"));

fn push(out: &mut Vec<Finding>, kind: PiiKind, start: usize, end: usize) {
    out.push(Finding { kind, start, end });
}

/// The char before `start` / after `end`, if any.
fn before(text: &str, start: usize) -> Option<char> {
    text[..start].chars().next_back()
}
fn after(text: &str, end: usize) -> Option<char> {
    text[end..].chars().next()
}

/// A number-like match must not be a slice of a longer token: no letter/digit right next to it,
/// and no `-`, `.` or `/` joining it to another digit (`1-555-123-4567-9`, `1.2.3.4.5`).
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    stands_alone_joined_by(text, start, end, &['-', '.', '/', ':'])
}

/// [`stands_alone`] with a custom set of chars that join digit runs into one token.
fn stands_alone_joined_by(text: &str, start: usize, end: usize, joiners: &[char]) -> bool {
    let joined = |c: Option<char>, next: Option<char>| match c {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some(c) if joiners.contains(&c) => next.is_some_and(|n| n.is_ascii_digit()),
        _ => false,
    };
    let left = before(text, start);
    let left2 = left.and_then(|c| before(text, start - c.len_utf8()));
    let right = after(text, end);
    let right2 = right.and_then(|c| after(text, end + c.len_utf8()));
    // A leading '+' makes the digits an international phone number, never a card or an SSN.
    left != Some('+') && !joined(left, left2) && !joined(right, right2)
}

fn emails(text: &str, out: &mut Vec<Finding>) {
    for m in EMAIL.find_iter(text) {
        let s = m.as_str();
        let local = s.split('@').next().unwrap_or("");
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            continue;
        }
        if after(text, m.end()).is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        push(out, PiiKind::Email, m.start(), m.end());
    }
}

fn phones(text: &str, out: &mut Vec<Finding>) {
    for m in PHONE_INTL.find_iter(text) {
        let digits = m.as_str().chars().filter(char::is_ascii_digit).count();
        // E.164 numbers have at most 15 digits; fewer than 8 is a code or a quantity.
        if (8..=15).contains(&digits) && stands_alone(text, m.start(), m.end()) {
            push(out, PiiKind::Phone, m.start(), m.end());
        }
    }
    for m in PHONE_NANP.find_iter(text) {
        let digits: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).collect();
        // NANP area codes and exchanges start with 2-9.
        if digits.first().is_none_or(|d| *d < b'2') || digits.get(3).is_none_or(|d| *d < b'2') {
            continue;
        }
        // A leading "1-" or "1 " country code belongs to the number.
        let mut start = m.start();
        if text[..start].ends_with("1-") || text[..start].ends_with("1 ") || text[..start].ends_with("1.") {
            let s = start - 2;
            if stands_alone(text, s, m.end()) {
                start = s;
            }
        }
        if stands_alone(text, start, m.end()) {
            push(out, PiiKind::Phone, start, m.end());
        }
    }
}

fn cards(text: &str, out: &mut Vec<Finding>) {
    for m in CARD.find_iter(text) {
        // The greedy match may run into a following number; try each group boundary, longest first.
        let s = m.as_str();
        let groups: Vec<(usize, &str)> = split_groups(s);
        // The separator before each group after the first.
        let seps: Vec<u8> = groups.iter().skip(1).map(|(at, _)| s.as_bytes()[at - 1]).collect();
        for k in (1..=groups.len()).rev() {
            // "4111 1111-1111 1111" mixes separators: not how cards are written.
            if seps[..k - 1].windows(2).any(|w| w[0] != w[1]) {
                continue;
            }
            let (last_at, last) = groups[k - 1];
            let end = last_at + last.len();
            let digits: String = groups[..k].iter().map(|(_, g)| *g).collect();
            let lens: Vec<usize> = groups[..k].iter().map(|(_, g)| g.len()).collect();
            if is_card(&digits, &lens) && stands_alone(text, m.start(), m.start() + end) {
                push(out, PiiKind::CreditCard, m.start(), m.start() + end);
                break;
            }
        }
    }
}

/// Digit groups of a candidate with their byte offsets.
fn split_groups(s: &str) -> Vec<(usize, &str)> {
    let mut groups = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == ' ' || c == '-' {
            groups.push((start, &s[start..i]));
            start = i + 1;
        }
    }
    groups.push((start, &s[start..]));
    groups
}

/// 13–19 digits, a known issuer prefix, Luhn-valid, grouped as cards are printed (no separators,
/// or 4-digit groups with a short tail, or Amex's 4-6-5 / Diners' 4-6-4).
fn is_card(digits: &str, groups: &[usize]) -> bool {
    if !(13..=19).contains(&digits.len()) || !matches!(digits.as_bytes()[0], b'2'..=b'6') {
        return false;
    }
    let grouping_ok = match groups {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [head @ .., last] => head.iter().all(|g| *g == 4) && (1..=4).contains(last),
        [] => false,
    };
    let first = digits.as_bytes()[0];
    grouping_ok && digits.bytes().any(|b| b != first) && luhn(digits)
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

fn ssns(text: &str, out: &mut Vec<Finding>) {
    for c in SSN.captures_iter(text) {
        let (Some(m), Some(area), Some(group), Some(serial)) = (c.get(0), c.get(1), c.get(2), c.get(3)) else {
            continue;
        };
        let area = area.as_str();
        // Never issued: area 000, 666 or 900-999; group 00; serial 0000.
        if area == "000"
            || area == "666"
            || area.starts_with('9')
            || group.as_str() == "00"
            || serial.as_str() == "0000"
        {
            continue;
        }
        if stands_alone(text, m.start(), m.end()) {
            push(out, PiiKind::Ssn, m.start(), m.end());
        }
    }
}

fn ibans(text: &str, out: &mut Vec<Finding>) {
    for m in IBAN.find_iter(text) {
        if before(text, m.start()).is_some_and(char::is_alphanumeric) {
            continue;
        }
        let s = m.as_str();
        let Some(len) = iban_length(&s[..2]) else { continue };
        // Take exactly the country's length of non-space chars; the regex may overrun into a word.
        let mut count = 0;
        let mut end = None;
        for (i, c) in s.char_indices() {
            if c != ' ' {
                count += 1;
                if count == len {
                    end = Some(i + 1);
                    break;
                }
            }
        }
        let Some(end) = end else { continue };
        let compact: String = s[..end].chars().filter(|c| *c != ' ').collect();
        if after(text, m.start() + end).is_some_and(char::is_alphanumeric) || !iban_checksum(&compact) {
            continue;
        }
        push(out, PiiKind::Iban, m.start(), m.start() + end);
    }
}

/// ISO 13616 mod-97: move the first four chars to the end, letters to 10..35, remainder 1.
fn iban_checksum(iban: &str) -> bool {
    let rearranged = iban[4..].chars().chain(iban[..4].chars());
    let mut rem = 0u32;
    for c in rearranged {
        let Some(v) = c.to_digit(36) else { return false };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// IBAN length per country (SWIFT IBAN registry).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "IQ" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        "RU" => 33,
        _ => return None,
    })
}

fn ips(text: &str, out: &mut Vec<Finding>) {
    for m in IPV4.find_iter(text) {
        // Only '.' joins: "10.0.0.1:8080" and "10.0.0.0/8" contain addresses, "1.2.3.4.5" does not.
        if m.as_str().parse::<Ipv4Addr>().is_ok() && stands_alone_joined_by(text, m.start(), m.end(), &['.']) {
            push(out, PiiKind::IpAddress, m.start(), m.end());
        }
    }
    for m in IPV6.find_iter(text) {
        let s = m.as_str();
        // Require real content: two or more non-empty groups and a digit, which keeps `a::b`
        // paths, `dead::beef` and clock times (12:30:45, which also fail to parse) out.
        let groups = s.split(':').filter(|g| !g.is_empty()).count();
        let boundary = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == ':' || c == '_');
        if groups < 2
            || !s.bytes().any(|b| b.is_ascii_digit())
            || boundary(before(text, m.start()))
            || boundary(after(text, m.end()))
            || s.parse::<Ipv6Addr>().is_err()
        {
            continue;
        }
        push(out, PiiKind::IpAddress, m.start(), m.end());
    }
}

fn macs(text: &str, out: &mut Vec<Finding>) {
    for m in MAC.find_iter(text) {
        let s = m.as_str();
        let sep = s.as_bytes()[2];
        let consistent = s.bytes().enumerate().filter(|(i, _)| i % 3 == 2).all(|(_, b)| b == sep);
        let boundary = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == ':' || c == '-');
        if consistent && !boundary(before(text, m.start())) && !boundary(after(text, m.end())) {
            push(out, PiiKind::MacAddress, m.start(), m.end());
        }
    }
}

/// Kinds that only count after a label; the finding covers the value, not the label.
fn labelled(text: &str, out: &mut Vec<Finding>) {
    for c in DOB.captures_iter(text) {
        if let Some(v) = c.get(1)
            && plausible_date(v.as_str())
        {
            push(out, PiiKind::DateOfBirth, v.start(), v.end());
        }
    }
    for c in PASSPORT.captures_iter(text) {
        if let Some(v) = c.get(1) {
            // A passport number has digits; "Passport holder" must not match.
            if v.as_str().bytes().filter(u8::is_ascii_digit).count() >= 5 {
                push(out, PiiKind::PassportNumber, v.start(), v.end());
            }
        }
    }
}

/// Numeric dates need a month and day in range in either order (US or European).
fn plausible_date(s: &str) -> bool {
    let nums: Vec<u32> = s.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    match nums.as_slice() {
        [y, m, d] if *y > 31 => (1..=12).contains(m) && (1..=31).contains(d),
        [a, b, _] if s.chars().all(|c| c.is_ascii_digit() || "/.-".contains(c)) => {
            ((1..=12).contains(a) && (1..=31).contains(b)) || ((1..=31).contains(a) && (1..=12).contains(b))
        }
        _ => true, // month names were matched by the regex
    }
}

#[cfg(test)]
mod tests;
