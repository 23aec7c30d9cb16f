//! Word 97-2003 (`.doc`): the text is a sequence of character positions (CPs) stored in pieces
//! of the `WordDocument` stream, listed by the piece table (the `Clx`) in the `0Table` or
//! `1Table` stream that the file information block (FIB) at the start of `WordDocument` names.
//!
//! A piece is either "compressed" (one Windows-1252 byte per char) or UTF-16LE. The CP stream is
//! the main text, then footnotes, headers and footers, comments, endnotes and text boxes; each of
//! those stories starts on a new paragraph here. Field codes (`{ PAGE }`, hyperlinks' targets)
//! are dropped and their results kept; table cells are separated by tabs, rows by line breaks.

use crate::ExtractError;
use crate::out::Out;

use super::{Ole, summary, u16_at, u32_at, usize_at, utf16};

/// Nested fields deeper than this are flattened (their codes may then show).
const MAX_FIELD_DEPTH: usize = 32;

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let mut ole = Ole::open(bytes, out.budget.clone())?;
    summary(&mut ole, out)?;
    let Some(word) = ole.read("WordDocument")? else {
        return Err(ExtractError::Malformed("doc has no WordDocument stream".into()));
    };
    let fib = Fib::parse(&word)?;
    if fib.encrypted {
        out.meta("encrypted", true);
        out.warn("Word document is encrypted with a password; no text extracted");
        return Ok(());
    }
    let table_name = if fib.table_1 { "1Table" } else { "0Table" };
    let Some(table) = ole.read(table_name)? else {
        return Err(ExtractError::Malformed(format!("doc has no {table_name} stream")));
    };
    let clx = fib
        .fc_clx
        .checked_add(fib.lcb_clx)
        .and_then(|end| table.get(fib.fc_clx..end))
        .ok_or_else(|| ExtractError::Malformed("doc piece table lies outside the table stream".into()))?;
    let pieces = pieces(clx)?;
    let mut text = DocText { out, fields: Vec::new(), after_cell: false };
    let stories = fib.story_ends();
    let mut story = 0;
    // Pieces may not overlap, so no more chars than the stream has bytes can come out of it; a
    // hostile table that points every piece at the same bytes is stopped here.
    let mut seen = 0usize;
    for piece in pieces {
        seen = seen.saturating_add(piece.end.saturating_sub(piece.start));
        if seen > word.len() {
            return Err(ExtractError::Malformed("doc pieces describe more text than the file holds".into()));
        }
        for (cp, c) in piece.chars(&word, fib.cp_total)? {
            if text.out.text.is_full() {
                return Ok(());
            }
            while story < stories.len() && cp >= stories[story] {
                story += 1;
                text.out.text.blank_line();
            }
            text.push(c);
        }
    }
    Ok(())
}

/// What the text needs from the FIB.
#[derive(Debug)]
struct Fib {
    encrypted: bool,
    /// The piece table is in `1Table` (else `0Table`).
    table_1: bool,
    fc_clx: usize,
    lcb_clx: usize,
    /// CP counts of the main text, footnotes, headers, (macros), comments, endnotes, text boxes
    /// and header text boxes.
    ccp: [usize; 8],
    cp_total: usize,
}

impl Fib {
    fn parse(word: &[u8]) -> Result<Self, ExtractError> {
        let bad = |what: &str| ExtractError::Malformed(format!("doc file information block: {what}"));
        if u16_at(word, 0) != Some(0xA5EC) {
            return Err(bad("not a Word document (wrong wIdent)"));
        }
        let n_fib = u16_at(word, 2).ok_or_else(|| bad("truncated"))?;
        if n_fib < 101 {
            return Err(bad("Word 6/95 documents (nFib < 101) are not read"));
        }
        let flags = u16_at(word, 0x0A).ok_or_else(|| bad("truncated"))?;
        let csw = usize::from(u16_at(word, 32).ok_or_else(|| bad("truncated"))?);
        let lw_count_at = 34 + csw * 2;
        let cslw = usize::from(u16_at(word, lw_count_at).ok_or_else(|| bad("truncated"))?);
        let lw = lw_count_at + 2;
        let fc_count_at = lw + cslw * 4;
        let cb_rg_fc_lcb = usize::from(u16_at(word, fc_count_at).ok_or_else(|| bad("truncated"))?);
        if cslw < 11 || cb_rg_fc_lcb < 34 {
            return Err(bad("too short for Word 97"));
        }
        let fc_lcb = fc_count_at + 2;
        let mut ccp = [0usize; 8];
        for (i, slot) in ccp.iter_mut().enumerate() {
            // fibRgLw97: cbMac, lProductCreated, lProductRevised, then ccpText at index 3.
            *slot = usize_at(word, lw + (3 + i) * 4).ok_or_else(|| bad("truncated"))?;
        }
        // fcClx/lcbClx is the 34th pair of FibRgFcLcb97.
        let fc_clx = usize_at(word, fc_lcb + 33 * 8).ok_or_else(|| bad("truncated"))?;
        let lcb_clx = usize_at(word, fc_lcb + 33 * 8 + 4).ok_or_else(|| bad("truncated"))?;
        let cp_total = ccp.iter().fold(0usize, |a, &b| a.saturating_add(b));
        Ok(Self { encrypted: flags & 0x0100 != 0, table_1: flags & 0x0200 != 0, fc_clx, lcb_clx, ccp, cp_total })
    }

    /// The CP at which each story after the main text begins.
    fn story_ends(&self) -> Vec<usize> {
        let mut at = 0usize;
        self.ccp
            .iter()
            .filter_map(|&n| {
                at = at.saturating_add(n);
                (n > 0).then_some(at)
            })
            .collect()
    }
}

/// One piece: CPs `start..end`, stored at byte offset `fc` of `WordDocument`.
#[derive(Debug)]
struct Piece {
    start: usize,
    end: usize,
    fc: usize,
    compressed: bool,
}

impl Piece {
    /// The piece's chars with their CPs, stopping at `cp_total` (the end of the last story).
    fn chars(&self, word: &[u8], cp_total: usize) -> Result<Vec<(usize, char)>, ExtractError> {
        let end = self.end.min(cp_total);
        if end <= self.start {
            return Ok(Vec::new());
        }
        let count = end - self.start;
        let width = if self.compressed { 1 } else { 2 };
        let bytes = count
            .checked_mul(width)
            .and_then(|len| self.fc.checked_add(len))
            .and_then(|stop| word.get(self.fc..stop))
            .ok_or_else(|| ExtractError::Malformed("doc text piece lies outside the WordDocument stream".into()))?;
        let text = if self.compressed {
            encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0.into_owned()
        } else {
            utf16(bytes)
        };
        Ok(text.chars().enumerate().map(|(i, c)| (self.start + i, c)).collect())
    }
}

/// Parses the Clx: property modifiers (`Prc`, skipped) then the piece table (`Pcdt`).
fn pieces(clx: &[u8]) -> Result<Vec<Piece>, ExtractError> {
    let bad = |what: &str| ExtractError::Malformed(format!("doc piece table: {what}"));
    let mut at = 0usize;
    let plc = loop {
        match clx.get(at) {
            Some(1) => {
                let cb = usize::from(u16_at(clx, at + 1).ok_or_else(|| bad("truncated"))?);
                at += 3 + cb;
            }
            Some(2) => {
                let lcb = usize_at(clx, at + 1).ok_or_else(|| bad("truncated"))?;
                break at.checked_add(5 + lcb).and_then(|end| clx.get(at + 5..end)).ok_or_else(|| bad("truncated"))?;
            }
            Some(_) => return Err(bad("unknown entry")),
            None => return Err(bad("no piece descriptors")),
        }
    };
    // n pieces take (n + 1) CPs of 4 bytes and n descriptors of 8.
    if plc.len() < 4 {
        return Err(bad("empty"));
    }
    let n = (plc.len() - 4) / 12;
    let mut pieces = Vec::with_capacity(n);
    for i in 0..n {
        let start = usize_at(plc, i * 4).ok_or_else(|| bad("truncated"))?;
        let end = usize_at(plc, (i + 1) * 4).ok_or_else(|| bad("truncated"))?;
        let raw = u32_at(plc, (n + 1) * 4 + i * 8 + 2).ok_or_else(|| bad("truncated"))?;
        let compressed = raw & 0x4000_0000 != 0;
        let fc = usize::try_from(raw & 0x3FFF_FFFF).map_err(|_| bad("offset"))?;
        pieces.push(Piece { start, end, fc: if compressed { fc / 2 } else { fc }, compressed });
    }
    Ok(pieces)
}

/// Turns Word's special characters into plain text as they stream by.
struct DocText<'o> {
    out: &'o mut Out,
    /// For each open field: true once its separator is passed (its result is shown).
    fields: Vec<bool>,
    /// The previous char was a cell mark: a second one in a row ends the table row.
    after_cell: bool,
}

impl DocText<'_> {
    fn push(&mut self, c: char) {
        match c {
            '\u{13}' => {
                if self.fields.len() < MAX_FIELD_DEPTH {
                    self.fields.push(false);
                }
                return;
            }
            '\u{14}' => {
                if let Some(shown) = self.fields.last_mut() {
                    *shown = true;
                }
                return;
            }
            '\u{15}' => {
                self.fields.pop();
                return;
            }
            _ => {}
        }
        if self.fields.iter().any(|shown| !shown) {
            return; // inside a field code
        }
        let after_cell = std::mem::take(&mut self.after_cell);
        let text = &mut self.out.text;
        match c {
            '\r' | '\u{0B}' | '\u{0C}' | '\u{0E}' => text.end_line(),
            '\u{07}' if after_cell => text.end_line(),
            '\u{07}' => {
                text.push('\t');
                self.after_cell = true;
            }
            '\t' => text.push('\t'),
            '\u{1E}' => text.push('-'),
            c if c < ' ' => {} // anchors of pictures, notes, separators; optional hyphens
            c => text.push(c),
        }
    }
}
