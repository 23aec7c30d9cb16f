//! Legacy binary Office formats — Word 97-2003 (`.doc`), Excel 97-2003 (`.xls`) and PowerPoint
//! 97-2003 (`.ppt`) — stored in an OLE compound file (a FAT file system inside the file, read
//! with the `cfb` crate).
//!
//! Which of the three a compound file is follows from the streams it holds (`WordDocument`,
//! `Workbook`/`Book`, `PowerPoint Document`). Streams are not compressed, so a stream can never
//! be longer than the file: every stream is read through `.take()` bounded by the input's length
//! and by what remains of `max_decompressed_bytes`, and every length field inside a stream is
//! checked against the stream before it is used.

mod doc;
mod msg;
mod ppt;
mod xls;

use std::io::{Cursor, Read};

use cfb::CompoundFile;

use crate::out::{Budget, Out};
use crate::{ExtractError, Format};

pub(crate) use doc::extract as extract_doc;
pub(crate) use msg::extract as extract_msg;
pub(crate) use ppt::extract as extract_ppt;
pub(crate) use xls::extract as extract_xls;

/// Which legacy Office format a compound file holds, from its streams. When the container does
/// not open (a prefix of the file, a truncated upload) the stream names are looked for in the raw
/// bytes, where directory entries store them as UTF-16, so a broken `.doc` is still named `doc`.
pub(crate) fn kind(bytes: &[u8]) -> Option<Format> {
    if let Ok(ole) = CompoundFile::open(Cursor::new(bytes)) {
        return if ole.is_stream("/WordDocument") {
            Some(Format::Doc)
        } else if ole.is_stream("/Workbook") || ole.is_stream("/Book") {
            Some(Format::Xls)
        } else if ole.is_stream("/PowerPoint Document") {
            Some(Format::Ppt)
        } else if ole.is_stream("/__properties_version1.0") {
            Some(Format::Msg)
        } else {
            None
        };
    }
    let utf16 = |name: &str| name.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
    let has = |name: &str| crate::sniff::find(bytes, &utf16(name)).is_some();
    if has("WordDocument") {
        Some(Format::Doc)
    } else if has("Workbook") {
        Some(Format::Xls)
    } else if has("PowerPoint Document") {
        Some(Format::Ppt)
    } else if has("__properties_version1.0") {
        Some(Format::Msg)
    } else {
        None
    }
}

/// A compound file opened for reading under the decompression budget.
pub(crate) struct Ole<'a> {
    cfb: CompoundFile<Cursor<&'a [u8]>>,
    input_len: u64,
    budget: Budget,
}

impl std::fmt::Debug for Ole<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ole").field("remaining", &self.budget.remaining()).finish()
    }
}

impl<'a> Ole<'a> {
    pub(crate) fn open(bytes: &'a [u8], budget: Budget) -> Result<Self, ExtractError> {
        let cfb = CompoundFile::open(Cursor::new(bytes))
            .map_err(|e| ExtractError::Malformed(format!("OLE compound file: {e}")))?;
        Ok(Self { cfb, input_len: bytes.len() as u64, budget })
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.cfb.is_stream(format!("/{name}"))
    }

    pub(crate) fn has_storage(&self, name: &str) -> bool {
        self.cfb.is_storage(format!("/{name}"))
    }

    /// A whole stream, charged to the budget. `Ok(None)` if there is no such stream.
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let path = format!("/{name}");
        if !self.cfb.is_stream(&path) {
            return Ok(None);
        }
        let stream = self.cfb.open_stream(&path).map_err(|e| ExtractError::Malformed(format!("stream {name}: {e}")))?;
        // A stream is stored sectors of the file, so it cannot be longer than the file; the
        // declared length is only a hint, and a bounded one.
        let bound = self.input_len.min(self.budget.remaining().saturating_add(1));
        let hint = stream.len().min(bound);
        let mut data = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        stream
            .take(bound)
            .read_to_end(&mut data)
            .map_err(|e| ExtractError::Malformed(format!("stream {name}: {e}")))?;
        self.budget.charge(data.len() as u64, "the compound file's streams")?;
        Ok(Some(data))
    }
}

/// Little-endian readers that return `None` past the end instead of panicking.
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

pub(crate) fn usize_at(b: &[u8], at: usize) -> Option<usize> {
    u32_at(b, at).and_then(|v| usize::try_from(v).ok())
}

/// UTF-16LE to a string, unpaired surrogates replaced.
pub(crate) fn utf16(bytes: &[u8]) -> String {
    let units = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
}

/// Title, subject, author, keywords, last saved by and dates from the `\u{5}SummaryInformation`
/// property set, shared by the three formats. Unreadable properties are skipped: they are
/// metadata, not the document.
pub(crate) fn summary(ole: &mut Ole<'_>, out: &mut Out) -> Result<(), ExtractError> {
    let Some(data) = ole.read("\u{5}SummaryInformation")? else { return Ok(()) };
    let Some(section) = usize_at(&data, 44) else { return Ok(()) };
    let Some(count) = usize_at(&data, section + 4) else { return Ok(()) };
    let mut codepage = 1252u16;
    let mut props = Vec::new();
    // Each property needs 8 bytes of index, so the count is bounded by the data.
    for i in 0..count.min(data.len() / 8) {
        let entry = section + 8 + i * 8;
        let (Some(id), Some(offset)) = (u32_at(&data, entry), usize_at(&data, entry + 4)) else { break };
        let at = section.saturating_add(offset);
        if id == 1 && u32_at(&data, at) == Some(2) {
            codepage = u16_at(&data, at + 4).unwrap_or(codepage);
        }
        props.push((id, at));
    }
    let encoding = codepage_encoding(codepage);
    for (id, at) in props {
        let key = match id {
            2 => "title",
            3 => "subject",
            4 => "author",
            5 => "keywords",
            8 => "last_modified_by",
            12 => "created",
            13 => "modified",
            _ => continue,
        };
        match u32_at(&data, at) {
            // VT_LPSTR: a length (with the NUL) and bytes in the property set's code page.
            Some(0x1E) => {
                let Some(len) = usize_at(&data, at + 4) else { continue };
                let Some(raw) = data.get(at + 8..at.saturating_add(8).saturating_add(len)) else { continue };
                let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
                let text = match encoding {
                    Some(enc) => enc.decode_without_bom_handling(raw).0.into_owned(),
                    None => String::from_utf8_lossy(raw).into_owned(),
                };
                out.meta_str(key, &text);
            }
            // VT_FILETIME: 100 ns ticks since 1601-01-01 UTC.
            Some(0x40) => {
                let (Some(lo), Some(hi)) = (u32_at(&data, at + 4), u32_at(&data, at + 8)) else { continue };
                if let Some(date) = filetime((u64::from(hi) << 32) | u64::from(lo)) {
                    out.meta_str(key, &date);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The encoding of a Windows code page number; `None` for UTF-8 (65001) and unknown pages.
fn codepage_encoding(codepage: u16) -> Option<&'static encoding_rs::Encoding> {
    match codepage {
        65001 => None,
        1200 => Some(encoding_rs::UTF_16LE),
        10000 => Some(encoding_rs::MACINTOSH),
        874 | 1250..=1258 => encoding_rs::Encoding::for_label(format!("windows-{codepage}").as_bytes()),
        932 => Some(encoding_rs::SHIFT_JIS),
        936 => Some(encoding_rs::GBK),
        949 => Some(encoding_rs::EUC_KR),
        950 => Some(encoding_rs::BIG5),
        _ => Some(encoding_rs::WINDOWS_1252),
    }
}

/// A FILETIME as RFC 3339 UTC, or `None` for zero (unset) and times past year 9999.
pub(crate) fn filetime(ticks: u64) -> Option<String> {
    // Ticks between 1601-01-01 and 1970-01-01.
    const UNIX_EPOCH: u64 = 116_444_736_000_000_000;
    let secs = ticks.checked_sub(UNIX_EPOCH)? / 10_000_000;
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year > 9999 {
        return None;
    }
    Some(format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60))
}

#[cfg(test)]
mod tests {
    use super::filetime;

    #[test]
    fn filetimes() {
        assert_eq!(filetime(116_444_736_000_000_000).as_deref(), Some("1970-01-01T00:00:00Z"));
        // 2024-03-05T09:30:00Z
        assert_eq!(filetime(133_541_046_000_000_000).as_deref(), Some("2024-03-05T09:30:00Z"));
        assert_eq!(filetime(0), None);
        assert_eq!(filetime(u64::MAX), None);
    }
}
