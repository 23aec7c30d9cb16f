//! Excel 97-2003 (`.xls`, BIFF8): the `Workbook` stream is a list of records (type, length,
//! data). The globals substream holds the sheet list (`BoundSheet8`, each with the stream offset
//! of its substream) and the shared string table (`SST`, continued in `Continue` records); each
//! worksheet substream holds its cells in row order.
//!
//! Output matches xlsx: per sheet its name on a line, then one line per row with the cells'
//! values separated by tabs. Numbers are the stored values (dates stay serial numbers), formulas
//! give their cached result. Excel 5/95 (BIFF5, a `Book` stream) is recognised but not read.
//!
//! Not `calamine`: its xls reader (0.36.1) panicked on 128 of 416 truncations of the corpus's
//! `workbook.xls` (index out of bounds in its compound-file reader, a failed assertion in its
//! record reader), where extraction must fail cleanly on any truncated input.

use crate::out::Out;
use crate::{ExtractError, Limits};

use super::{Ole, summary, u16_at, u32_at, usize_at, utf16};

const BOF: u16 = 0x0809;
const EOF: u16 = 0x000A;
const FILEPASS: u16 = 0x002F;
const BOUNDSHEET: u16 = 0x0085;
const SST: u16 = 0x00FC;
const CONTINUE: u16 = 0x003C;
const LABELSST: u16 = 0x00FD;
const LABEL: u16 = 0x0204;
const NUMBER: u16 = 0x0203;
const RK: u16 = 0x027E;
const MULRK: u16 = 0x00BD;
const FORMULA: u16 = 0x0006;
const STRING: u16 = 0x0207;
const BOOLERR: u16 = 0x0205;

pub(crate) fn extract(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut ole = Ole::open(bytes, out.budget.clone())?;
    summary(&mut ole, out)?;
    let Some(book) = ole.read("Workbook")? else {
        if ole.has("Book") {
            out.warn("Excel 5/95 (BIFF5) workbooks are not read; no text extracted");
            return Ok(());
        }
        return Err(ExtractError::Malformed("xls has no Workbook stream".into()));
    };
    if records(&book, 0).next().map(|r| r.kind) != Some(BOF) {
        return Err(ExtractError::Malformed("xls Workbook stream does not start with BOF".into()));
    }
    let mut sheets: Vec<(String, usize)> = Vec::new();
    let mut strings = Vec::new();
    let mut globals = records(&book, 0).skip(1).peekable();
    while let Some(record) = globals.next() {
        match record.kind {
            FILEPASS => {
                out.meta("encrypted", true);
                out.warn("Excel workbook is encrypted with a password; no text extracted");
                return Ok(());
            }
            // Only worksheets (type 0) have cells; chart and macro sheets are skipped.
            BOUNDSHEET if record.data.get(5) == Some(&0) => {
                let offset = usize_at(record.data, 0).unwrap_or(usize::MAX);
                let name = short_string(record.data.get(6..).unwrap_or_default());
                sheets.push((name, offset));
            }
            SST => {
                let mut segments = vec![record.data];
                while let Some(next) = globals.next_if(|r| r.kind == CONTINUE) {
                    segments.push(next.data);
                }
                strings = shared_strings(&segments);
            }
            EOF => break,
            _ => {}
        }
    }
    out.meta("sheet_count", sheets.len());
    out.meta("sheet_names", sheets.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    if sheets.len() > limits.max_pages {
        out.warn(format!("only the first {} of {} sheets were read (max_pages)", limits.max_pages, sheets.len()));
    }
    for (name, offset) in sheets.iter().take(limits.max_pages) {
        if out.text.is_full() {
            break;
        }
        out.text.blank_line();
        out.text.push_str(name);
        out.text.end_line();
        if u16_at(&book, *offset) != Some(BOF) {
            out.warn(format!("sheet {name}: its offset does not point at a BOF record"));
            continue;
        }
        sheet_text(&book, *offset, &strings, out);
    }
    Ok(())
}

#[derive(Debug)]
struct Record<'a> {
    kind: u16,
    data: &'a [u8],
}

/// Records from `at` on; a record whose length runs past the stream ends the list.
fn records(stream: &[u8], mut at: usize) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let kind = u16_at(stream, at)?;
        let len = usize::from(u16_at(stream, at + 2)?);
        let data = stream.get(at + 4..at + 4 + len)?;
        at += 4 + len;
        Some(Record { kind, data })
    })
}

/// Cells of the worksheet substream at `offset`, row by row.
fn sheet_text(book: &[u8], offset: usize, strings: &[String], out: &mut Out) {
    let mut row: Option<u16> = None;
    // A string formula's value comes in the STRING record after it: the row it belongs to.
    let mut pending_string: Option<u16> = None;
    let mut cell = |r: u16, value: String, out: &mut Out| {
        if value.is_empty() {
            return;
        }
        if row == Some(r) {
            out.text.push('\t');
        } else {
            out.text.end_line();
        }
        row = Some(r);
        out.text.push_str(&value);
    };
    for record in records(book, offset).skip(1) {
        if out.text.is_full() {
            return;
        }
        let d = record.data;
        let Some(r) = u16_at(d, 0) else {
            if record.kind == EOF {
                break;
            }
            continue;
        };
        match record.kind {
            LABELSST => {
                let value = usize_at(d, 6).and_then(|i| strings.get(i)).cloned().unwrap_or_default();
                cell(r, value, out);
            }
            LABEL => cell(r, unicode_string(d.get(6..).unwrap_or_default()), out),
            NUMBER => cell(r, d.get(6..14).map(f64_le).map(number).unwrap_or_default(), out),
            RK => cell(r, u32_at(d, 6).map(rk).map(number).unwrap_or_default(), out),
            MULRK => {
                // colFirst, then (ixfe, RK) pairs, then colLast.
                for pair in d.get(4..d.len().saturating_sub(2)).unwrap_or_default().chunks_exact(6) {
                    cell(r, u32_at(pair, 2).map(rk).map(number).unwrap_or_default(), out);
                }
            }
            FORMULA => {
                let Some(result) = d.get(6..14) else { continue };
                if result[6..8] == [0xFF, 0xFF] {
                    match result[0] {
                        0 => pending_string = Some(r),
                        1 => cell(r, (if result[2] == 1 { "TRUE" } else { "FALSE" }).into(), out),
                        _ => {}
                    }
                } else {
                    cell(r, number(f64_le(result)), out);
                }
            }
            STRING => {
                if let Some(r) = pending_string.take() {
                    cell(r, unicode_string(d), out);
                }
            }
            BOOLERR if d.get(7) == Some(&0) => {
                cell(r, (if d.get(6) == Some(&1) { "TRUE" } else { "FALSE" }).into(), out);
            }
            EOF => break,
            _ => {}
        }
    }
    out.text.end_line();
}

/// A little-endian double from exactly 8 bytes (NaN, shown as nothing, otherwise).
fn f64_le(b: &[u8]) -> f64 {
    b.try_into().map(f64::from_le_bytes).unwrap_or(f64::NAN)
}

/// An RK value: a 30-bit integer or the high 30 bits of a double, optionally divided by 100.
fn rk(v: u32) -> f64 {
    let base = if v & 2 != 0 { f64::from((v as i32) >> 2) } else { f64::from_bits(u64::from(v & !3) << 32) };
    if v & 1 != 0 { base / 100.0 } else { base }
}

fn number(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { String::new() }
}

/// `ShortXLUnicodeString`: a 1-byte length, flags, then the chars.
fn short_string(d: &[u8]) -> String {
    let Some(&cch) = d.first() else { return String::new() };
    let high = d.get(1).is_some_and(|f| f & 1 != 0);
    chars(d.get(2..).unwrap_or_default(), usize::from(cch), high)
}

/// `XLUnicodeString`: a 2-byte length, flags, then the chars.
fn unicode_string(d: &[u8]) -> String {
    let Some(cch) = u16_at(d, 0) else { return String::new() };
    let high = d.get(2).is_some_and(|f| f & 1 != 0);
    chars(d.get(3..).unwrap_or_default(), usize::from(cch), high)
}

/// `count` chars from `d`, UTF-16LE if `high`, else one Latin-1 byte each; cut short at the end.
fn chars(d: &[u8], count: usize, high: bool) -> String {
    if high { utf16(&d[..d.len().min(count * 2)]) } else { d.iter().take(count).map(|&b| char::from(b)).collect() }
}

/// Reads strings that may be split across `SST` and `Continue` records: a string's chars may
/// continue in the next record, which then starts with a fresh flags byte.
struct Segments<'a> {
    segments: &'a [&'a [u8]],
    index: usize,
    at: usize,
}

impl<'a> Segments<'a> {
    fn current(&self) -> &'a [u8] {
        self.segments.get(self.index).copied().unwrap_or_default()
    }

    /// Moves to the next segment once the current one is used up; false at the very end.
    fn ensure(&mut self) -> bool {
        while self.at >= self.current().len() {
            if self.index + 1 >= self.segments.len() {
                return false;
            }
            self.index += 1;
            self.at = 0;
        }
        true
    }

    fn u8(&mut self) -> Option<u8> {
        if !self.ensure() {
            return None;
        }
        let b = *self.current().get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }

    fn skip(&mut self, mut n: usize) -> Option<()> {
        while n > 0 {
            if !self.ensure() {
                return None;
            }
            let step = n.min(self.current().len() - self.at);
            self.at += step;
            n -= step;
        }
        Some(())
    }

    /// `count` chars starting with width `high`; at a segment boundary a new flags byte says
    /// the width of the rest.
    fn chars(&mut self, mut count: usize, mut high: bool) -> Option<String> {
        let mut s = String::new();
        while count > 0 {
            if self.at >= self.current().len() {
                if !self.ensure() {
                    return None;
                }
                high = self.u8()? & 1 != 0;
            }
            let rest = &self.current()[self.at..];
            let take = count.min(if high { rest.len() / 2 } else { rest.len() });
            if take == 0 {
                return None; // half a UTF-16 unit at a boundary: corrupt
            }
            s.push_str(&chars(rest, take, high));
            self.at += if high { take * 2 } else { take };
            count -= take;
        }
        Some(s)
    }
}

/// The shared string table. Stops at the first unreadable string and keeps what it read.
fn shared_strings(segments: &[&[u8]]) -> Vec<String> {
    let mut reader = Segments { segments, index: 0, at: 8 }; // skip cstTotal and cstUnique
    let declared = segments.first().and_then(|d| usize_at(d, 4)).unwrap_or(0);
    let mut strings = Vec::new();
    while strings.len() < declared {
        let Some(s) = sst_string(&mut reader) else { break };
        strings.push(s);
    }
    strings
}

/// One `XLUnicodeRichExtendedString`: length, flags, optional run and phonetic sizes, chars,
/// then formatting runs and phonetic data (skipped).
fn sst_string(r: &mut Segments<'_>) -> Option<String> {
    let cch = usize::from(r.u16()?);
    let flags = r.u8()?;
    let runs = if flags & 0x08 != 0 { usize::from(r.u16()?) } else { 0 };
    let ext = if flags & 0x04 != 0 { usize::try_from(r.u32()?).ok()? } else { 0 };
    let s = if cch == 0 { String::new() } else { r.chars(cch, flags & 1 != 0)? };
    r.skip(runs * 4)?;
    r.skip(ext)?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sst_strings_continue_across_records_with_a_new_width() {
        // Two strings: "ab" (8-bit) and "cdé" split after "c", continuing as UTF-16.
        let first: &[u8] = &[2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, b'a', b'b', 3, 0, 0, b'c'];
        let second: &[u8] = &[1, b'd', 0, 0xE9, 0];
        assert_eq!(shared_strings(&[first, second]), ["ab", "cdé"]);
        // A table that declares more strings than it holds keeps what it has.
        let short: &[u8] = &[9, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, b'z'];
        assert_eq!(shared_strings(&[short]), ["z"]);
    }

    #[test]
    fn rk_values() {
        assert_eq!(rk((42 << 2) | 2), 42.0);
        assert_eq!(rk((1234 << 2) | 3), 12.34);
        assert_eq!(number(rk(u32::try_from(1.5f64.to_bits() >> 32).unwrap_or(0))), "1.5");
    }
}
