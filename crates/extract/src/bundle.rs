//! Archives as documents: `.zip`, `.tar` (plain or gzipped) and single-file `.gz`; and the
//! members of any container (archive members, mail attachments) extracted as documents of their
//! own, each attributed.
//!
//! The text starts with the archive's listing (one path per line), then each member that has
//! text on a page of its own (`\f`), headed by its path, so a search hit's page names its member;
//! `members` in the metadata gives each member's path, size, format and page.
//!
//! Hostile archives fail cleanly: every inflated byte, at any depth, is charged to the upload's
//! one [`Budget`] (a bomb ends in `LimitExceeded`, whichever member it hides in); more entries
//! than `max_archive_entries` is refused before anything is inflated; archives nested deeper than
//! [`MAX_NESTING`] are listed but not opened (a zip that contains itself ends there); a
//! truncated archive is `Malformed`, naming where it ends. A member that is itself damaged is a
//! warning, not a failure of the archive.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use serde_json::{Map, Value};

use crate::archive::Archive;
use crate::out::{Budget, Out};
use crate::{ExtractError, Format, Limits, extract_nested};

/// Archives inside archives are opened to this depth (the upload itself is depth 0).
pub(crate) const MAX_NESTING: usize = 3;
/// Members described in the `members` metadata, at most; `member_count` counts them all.
const MAX_LISTED: usize = 1000;

pub(crate) fn extract(bytes: &[u8], filename: &str, limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let mut members = Members::default();
    match out.format {
        Format::Zip => read_zip(bytes, limits, out, &mut members)?,
        Format::Tar if is_gzip(bytes) => {
            out.meta("compression", "gzip");
            let exceeded = Rc::new(Cell::new(false));
            let reader =
                Metered { inner: MultiGzDecoder::new(bytes), budget: out.budget.clone(), exceeded: exceeded.clone() };
            read_tar(reader, &exceeded, limits, out, &mut members)?;
        }
        Format::Tar => read_tar(bytes, &Rc::new(Cell::new(false)), limits, out, &mut members)?,
        _ => read_gzip(bytes, filename, limits, out, &mut members)?,
    }
    members.finish(out);
    Ok(())
}

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// True if the first bytes of a (decompressed) stream are a POSIX or GNU tar header.
pub(crate) fn is_tar(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

/// The members of one container, as they are appended.
#[derive(Default)]
pub(crate) struct Members {
    listing: Vec<String>,
    described: Vec<Value>,
    count: usize,
    directories: usize,
    /// Pages written so far (the listing is page 1).
    pages: usize,
    /// Member texts, written after the listing.
    texts: Vec<(String, String)>,
    /// Bytes the listing and the texts will take, so each member is extracted with only
    /// the room that is left of `max_text_chars`.
    used: usize,
}

impl Members {
    fn directory(&mut self, path: &str) {
        self.count += 1;
        self.directories += 1;
        self.list(path);
    }

    fn list(&mut self, path: &str) {
        self.used += path.len() + 1;
        self.listing.push(path.to_string());
    }

    fn other(&mut self, path: &str, kind: &str) {
        self.count += 1;
        self.list(path);
        self.describe(path, None, kind, None);
    }

    fn describe(&mut self, path: &str, size: Option<u64>, format: &str, extra: Option<Map<String, Value>>) {
        if self.described.len() < MAX_LISTED {
            let mut entry = Map::new();
            entry.insert("path".into(), path.into());
            if let Some(size) = size {
                entry.insert("size".into(), size.into());
            }
            entry.insert("format".into(), format.into());
            entry.extend(extra.unwrap_or_default());
            self.described.push(Value::Object(entry));
        }
    }

    /// Extracts one member's bytes as a document of its own, one level deeper, spending the
    /// upload's budget. A damaged member is a warning; a limit hit by it fails the whole upload.
    pub(crate) fn file(
        &mut self,
        path: &str,
        bytes: &[u8],
        limits: &Limits,
        out: &mut Out,
    ) -> Result<(), ExtractError> {
        self.count += 1;
        self.list(path);
        let size = Some(bytes.len() as u64);
        let sniffed = crate::sniff(bytes, path);
        if matches!(sniffed.format, Format::Zip | Format::Tar | Format::Gzip) && out.depth + 1 > MAX_NESTING {
            out.warn(format!("{path}: an archive nested deeper than {MAX_NESTING} levels is listed but not opened"));
            self.describe(path, size, sniffed.format.as_str(), None);
            return Ok(());
        }
        let member_limits =
            Limits { max_text_chars: limits.max_text_chars.saturating_sub(self.used), ..limits.clone() };
        match extract_nested(bytes, path, &member_limits, out.budget.clone(), out.depth + 1) {
            Ok(member) => {
                let mut extra = Map::new();
                for key in ["title", "page_count", "member_count"] {
                    if let Some(value) = member.metadata.get(key) {
                        extra.insert(key.into(), value.clone());
                    }
                }
                let text = member.text.unwrap_or_default();
                if !text.trim().is_empty() {
                    // Page 1 is the listing; each member's text starts a page, and a member's own
                    // page breaks (a PDF's) count too.
                    extra.insert("page".into(), (2 + self.pages).into());
                    self.pages += 1 + text.matches('\u{0C}').count();
                    self.used += path.len() + text.len() + 3;
                    self.texts.push((path.to_string(), text));
                }
                for warning in member.warnings {
                    out.warn(format!("{path}: {warning}"));
                }
                self.describe(path, size, member.format.as_str(), Some(extra));
                Ok(())
            }
            Err(err @ ExtractError::LimitExceeded(_)) => Err(err),
            Err(ExtractError::Malformed(reason)) => {
                out.warn(format!("{path}: not read: {reason}"));
                let mut extra = Map::new();
                extra.insert("error".into(), reason.into());
                self.describe(path, size, sniffed.format.as_str(), Some(extra));
                Ok(())
            }
        }
    }

    /// Writes the listing and the members' texts, and the metadata.
    pub(crate) fn finish(self, out: &mut Out) {
        out.text.push_str("Contents:\n");
        for path in &self.listing {
            out.text.push_str(path);
            out.text.push('\n');
        }
        out.meta("member_count", self.count);
        out.meta("directory_count", self.directories);
        out.meta("members", self.described.clone());
        self.append_texts(out);
    }

    /// Writes each member's text on a page of its own, headed by its path, after what `out`
    /// holds (page 1: an archive's listing, a message's body).
    pub(crate) fn append_texts(self, out: &mut Out) {
        for (path, text) in &self.texts {
            out.text.end_line();
            out.text.push('\u{0C}');
            out.text.push('\n');
            out.text.push_str(path);
            out.text.push_str("\n\n");
            out.text.push_str(text);
        }
    }
}

fn read_zip(bytes: &[u8], limits: &Limits, out: &mut Out, members: &mut Members) -> Result<(), ExtractError> {
    let mut zip = Archive::open(bytes, limits, out.budget.clone())?;
    for name in zip.names() {
        if name.ends_with('/') {
            members.directory(&name);
            continue;
        }
        match zip.read(&name) {
            Ok(Some(data)) => members.file(&name, &data, limits, out)?,
            Ok(None) => {}
            Err(err @ ExtractError::LimitExceeded(_)) => return Err(err),
            Err(ExtractError::Malformed(reason)) => {
                out.warn(format!("{name}: not read: {reason}"));
                members.other(&name, "unreadable");
            }
        }
    }
    Ok(())
}

/// Charges every byte read from a decompressor to the budget, and stops the stream once it is
/// spent (`exceeded` then tells a bomb from a damaged stream).
struct Metered<R> {
    inner: R,
    budget: Budget,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.budget.charge(n as u64, "the compressed stream").is_err() {
            self.exceeded.set(true);
            return Err(io::Error::other("decompression budget spent"));
        }
        Ok(n)
    }
}

fn limit_error(exceeded: &Cell<bool>, limits: &Limits, reason: impl FnOnce() -> String) -> ExtractError {
    if exceeded.get() {
        ExtractError::LimitExceeded(format!(
            "archive inflates to more than max_decompressed_bytes ({} bytes)",
            limits.max_decompressed_bytes
        ))
    } else {
        ExtractError::Malformed(reason())
    }
}

fn read_tar<R: Read>(
    reader: R,
    exceeded: &Cell<bool>,
    limits: &Limits,
    out: &mut Out,
    members: &mut Members,
) -> Result<(), ExtractError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| limit_error(exceeded, limits, || format!("tar: {e}")))?;
    let mut read = 0usize;
    for entry in entries {
        let after = |read: usize| if read == 0 { "at its start".to_string() } else { format!("after {read} members") };
        let mut entry = entry
            .map_err(|e| limit_error(exceeded, limits, || format!("truncated or damaged tar {}: {e}", after(read))))?;
        read += 1;
        if read > limits.max_archive_entries {
            return Err(ExtractError::LimitExceeded(format!(
                "archive has more than max_archive_entries ({}) entries",
                limits.max_archive_entries
            )));
        }
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Directory => members.directory(&path),
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                // The header's size is a claim: read at most what the budget allows, plus one byte
                // to notice a lie.
                let cap = entry.size().min(limits.max_decompressed_bytes);
                let mut data = Vec::with_capacity(usize::try_from(cap.min(16 << 20)).unwrap_or(0));
                (&mut entry).take(cap).read_to_end(&mut data).map_err(|e| {
                    limit_error(exceeded, limits, || format!("truncated tar: member {path} ends early: {e}"))
                })?;
                if (data.len() as u64) < entry.size() {
                    return Err(limit_error(exceeded, limits, || format!("truncated tar: member {path} ends early")));
                }
                members.file(&path, &data, limits, out)?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => members.other(&path, "link"),
            _ => members.other(&path, "special"),
        }
    }
    Ok(())
}

fn read_gzip(
    bytes: &[u8],
    filename: &str,
    limits: &Limits,
    out: &mut Out,
    members: &mut Members,
) -> Result<(), ExtractError> {
    let exceeded = Rc::new(Cell::new(false));
    let mut decoder = MultiGzDecoder::new(bytes);
    let mut data = Vec::new();
    let result = Metered { inner: &mut decoder, budget: out.budget.clone(), exceeded: exceeded.clone() }
        .take(limits.max_decompressed_bytes.saturating_add(1))
        .read_to_end(&mut data);
    result.map_err(|e| limit_error(&exceeded, limits, || format!("gzip: {e}")))?;
    // The name the compressor stored, else the upload's name without `.gz`.
    let stored = decoder.header().and_then(|h| h.filename()).map(|n| String::from_utf8_lossy(n).into_owned());
    let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    let name = stored.filter(|n| !n.is_empty()).unwrap_or_else(|| {
        let lower = base.to_ascii_lowercase();
        if lower.ends_with(".gz") { base[..base.len() - 3].to_string() } else { format!("{base}.uncompressed") }
    });
    out.meta("compression", "gzip");
    members.file(&name, &data, limits, out)
}
