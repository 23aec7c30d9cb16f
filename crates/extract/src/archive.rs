//! Budgeted zip reading for the zip-based formats (docx, xlsx, pptx, odt, ods, odp, epub).
//!
//! A zip's declared sizes are attacker-controlled, so inflated bytes are counted while reading:
//! every member is read through `.take()` with what remains of the file's [`Budget`] (its
//! `max_decompressed_bytes`), and a member that would overrun it fails the whole file with
//! `LimitExceeded` instead of allocating.

use std::io::{Cursor, Read};

use zip::ZipArchive;
use zip::result::ZipError;

use crate::out::Budget;
use crate::{ExtractError, Limits};

/// A zip opened for reading under a shared decompression budget.
pub(crate) struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    budget: Budget,
}

impl std::fmt::Debug for Archive<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("entries", &self.zip.len())
            .field("remaining", &self.budget.remaining())
            .finish()
    }
}

impl<'a> Archive<'a> {
    /// Opens the central directory and checks the entry count before anything is inflated.
    pub(crate) fn open(bytes: &'a [u8], limits: &Limits, budget: Budget) -> Result<Self, ExtractError> {
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| ExtractError::Malformed(format!("zip: {e}")))?;
        if zip.len() > limits.max_archive_entries {
            return Err(ExtractError::LimitExceeded(format!(
                "archive has {} entries, more than max_archive_entries ({})",
                zip.len(),
                limits.max_archive_entries
            )));
        }
        Ok(Self { zip, budget })
    }

    /// Member names in central-directory order (names that are not valid UTF-8 are skipped).
    pub(crate) fn names(&self) -> Vec<String> {
        self.zip.file_names().filter_map(Result::ok).map(|n| n.into_owned()).collect()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    /// Inflates one member, charging it to the budget. `Ok(None)` if there is no such member.
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let entry = match self.zip.by_name(name) {
            Ok(entry) => entry,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(ExtractError::Malformed(format!("zip member {name}: {e}"))),
        };
        if entry.encrypted() {
            return Err(ExtractError::Malformed(format!("zip member {name} is encrypted")));
        }
        // Trust the declared size only as a capacity hint, and a bounded one.
        let remaining = self.budget.remaining();
        let hint = entry.size().min(remaining).min(16 << 20);
        let mut data = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        entry
            .take(remaining.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| ExtractError::Malformed(format!("zip member {name}: {e}")))?;
        self.budget.charge(data.len() as u64, "archive")?;
        Ok(Some(data))
    }

    /// [`Archive::read`] as text. Members of these formats are XML, which is UTF-8 in practice; a
    /// BOM is dropped and invalid sequences are replaced rather than failing the whole file.
    pub(crate) fn read_string(&mut self, name: &str) -> Result<Option<String>, ExtractError> {
        Ok(self.read(name)?.map(|data| {
            let body = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&data);
            match std::str::from_utf8(body) {
                Ok(s) => s.to_string(),
                Err(_) => String::from_utf8_lossy(body).into_owned(),
            }
        }))
    }
}

/// Resolves a relationship or manifest `target` against the folder of the part that names it, the
/// way OPC and EPUB define it: `/x` is from the root, `..` climbs, `%20` is a space.
pub(crate) fn resolve(base_dir: &str, target: &str) -> String {
    let target = percent_decode(target.split(['#', '?']).next().unwrap_or(target));
    let mut parts: Vec<&str> = Vec::new();
    let joined;
    let full = if let Some(abs) = target.strip_prefix('/') {
        abs
    } else {
        joined = format!("{base_dir}/{target}");
        joined.as_str()
    };
    for seg in full.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The folder part of a member name (`""` for a top-level member).
pub(crate) fn dir_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_targets() {
        assert_eq!(resolve("ppt", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert_eq!(resolve("xl", "/xl/worksheets/sheet1.xml"), "xl/worksheets/sheet1.xml");
        assert_eq!(resolve("OEBPS/text", "../ch%201.xhtml#top"), "OEBPS/ch 1.xhtml");
        assert_eq!(resolve("", "content.opf"), "content.opf");
        assert_eq!(dir_of("OEBPS/content.opf"), "OEBPS");
        assert_eq!(dir_of("content.opf"), "");
    }
}
