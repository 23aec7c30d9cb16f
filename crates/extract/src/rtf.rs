//! RTF: a small tokenizer, not a renderer.
//!
//! Text is what remains after dropping control words and the destination groups that hold no body
//! text (`\fonttbl`, `\colortbl`, `\stylesheet`, pictures, field instructions, and every `{\* ...}`
//! group). `\'hh` bytes are decoded in the document's `\ansicpg` code page and `\uN` escapes as
//! Unicode (skipping their `\ucN` fallback chars). `\info` supplies title/author/subject/created.
//! The scan is iterative with an explicit group stack, so deep nesting cannot overflow the stack.

use encoding_rs::{Encoding, WINDOWS_1252};

use crate::ExtractError;
use crate::out::Out;

pub(crate) fn extract(bytes: &[u8], out: &mut Out) -> Result<(), ExtractError> {
    let mut p = Parser::new(bytes, out);
    p.run();
    let Parser { fields, unbalanced, .. } = p;
    for (key, value) in INFO_FIELDS.iter().zip(fields) {
        out.meta_str(key, &value);
    }
    if unbalanced {
        out.warn("unbalanced braces: the RTF is truncated or damaged");
    }
    Ok(())
}

/// Destinations whose text is not document body text.
const SKIPPED: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "listtable",
    "listoverridetable",
    "rsidtbl",
    "generator",
    "themedata",
    "colorschememapping",
    "latentstyles",
    "datastore",
    "xmlnstbl",
    "pict",
    "object",
    "objdata",
    "fldinst",
    "filetbl",
    "revtbl",
    "pgdsctbl",
    "header",
    "headerl",
    "headerr",
    "headerf",
    "footer",
    "footerl",
    "footerr",
    "footerf",
    "bkmkstart",
    "bkmkend",
    "nonshppict",
    "shpinst",
    "template",
    "userprops",
    "docvar",
    "operator",
    "comment",
    "doccomm",
    "version",
    "vern",
    "hlinkbase",
    "company",
    "category",
    "manager",
];

/// `\info` sub-destinations kept as metadata, in `Parser::fields` order.
const INFO_FIELDS: [&str; 5] = ["title", "author", "subject", "keywords", "created"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Body,
    Skip,
    /// Inside `\info` but not in a kept field.
    Info,
    Field(usize),
}

#[derive(Debug, Clone, Copy)]
struct Group {
    dest: Dest,
    /// `\ucN`: how many fallback chars follow each `\uN`.
    uc: usize,
}

struct Parser<'a, 'o> {
    src: &'a [u8],
    pos: usize,
    out: &'o mut Out,
    group: Group,
    stack: Vec<Group>,
    /// True right after `{`, where a destination control word may appear.
    group_start: bool,
    encoding: &'static Encoding,
    /// Raw code-page bytes waiting to be decoded together (multi-byte code pages need that).
    pending: Vec<u8>,
    /// Fallback chars still to drop after a `\uN`.
    skip_fallback: usize,
    high_surrogate: Option<u16>,
    fields: [String; 5],
    /// `\creatim` parts: year, month, day, hour, minute.
    created: [Option<i64>; 5],
    unbalanced: bool,
}

impl<'a, 'o> Parser<'a, 'o> {
    fn new(src: &'a [u8], out: &'o mut Out) -> Self {
        Self {
            src,
            pos: 0,
            out,
            group: Group { dest: Dest::Body, uc: 1 },
            stack: Vec::new(),
            group_start: false,
            encoding: WINDOWS_1252,
            pending: Vec::new(),
            skip_fallback: 0,
            high_surrogate: None,
            fields: Default::default(),
            created: [None; 5],
            unbalanced: false,
        }
    }

    fn run(&mut self) {
        while self.pos < self.src.len() && !self.out.text.is_full() {
            let b = self.src[self.pos];
            self.pos += 1;
            match b {
                b'{' => {
                    self.flush();
                    self.stack.push(self.group);
                    self.group_start = true;
                    self.skip_fallback = 0;
                    continue;
                }
                b'}' => {
                    self.flush();
                    match self.stack.pop() {
                        Some(g) => self.group = g,
                        None => self.unbalanced = true,
                    }
                    self.skip_fallback = 0;
                }
                b'\\' => self.control(),
                b'\r' | b'\n' => continue, // line breaks in RTF source are not text
                _ => {
                    if self.skip_fallback > 0 {
                        self.skip_fallback -= 1;
                    } else if self.group.dest != Dest::Skip {
                        self.pending.push(b);
                    }
                }
            }
            self.group_start = false;
        }
        self.flush();
        if !self.stack.is_empty() {
            self.unbalanced = true;
        }
        if let [Some(y), mo, d, h, mi] = self.created {
            let two = |v: Option<i64>| v.unwrap_or(0).clamp(0, 99);
            self.fields[4] = format!(
                "{y:04}-{:02}-{:02}T{:02}:{:02}:00",
                two(mo).max(1),
                two(d).max(1),
                two(h).min(23),
                two(mi).min(59)
            );
        }
    }

    /// Handles what follows a backslash.
    fn control(&mut self) {
        let Some(&c) = self.src.get(self.pos) else { return };
        if c.is_ascii_alphabetic() {
            let (word, param) = self.control_word();
            self.word(&word, param);
            return;
        }
        self.pos += 1;
        match c {
            b'\'' => {
                let hex = self.src.get(self.pos..self.pos + 2).and_then(|h| std::str::from_utf8(h).ok());
                if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    self.pos += 2;
                    if self.skip_fallback > 0 {
                        self.skip_fallback -= 1;
                    } else if self.group.dest != Dest::Skip {
                        self.pending.push(byte);
                    }
                }
            }
            b'*' => self.group.dest = Dest::Skip,
            b'\\' | b'{' | b'}' => self.char_text(char::from(c)),
            b'~' => self.char_text('\u{a0}'),
            b'_' => self.char_text('-'),
            b'\r' | b'\n' => self.char_text('\n'),
            _ => {} // \- optional hyphen, \: index subentry, ...
        }
    }

    /// Reads `[a-zA-Z]+` then an optional signed number, eating one delimiting space.
    fn control_word(&mut self) -> (String, Option<i64>) {
        let start = self.pos;
        while self.pos < self.src.len() && self.src[self.pos].is_ascii_alphabetic() && self.pos - start < 32 {
            self.pos += 1;
        }
        let word = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
        let num_start = self.pos;
        if self.src.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        while self.pos < self.src.len() && self.src[self.pos].is_ascii_digit() && self.pos - num_start < 11 {
            self.pos += 1;
        }
        let param = std::str::from_utf8(&self.src[num_start..self.pos]).ok().and_then(|n| n.parse().ok());
        if self.src.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
        (word, param)
    }

    fn word(&mut self, word: &str, param: Option<i64>) {
        let at_group_start = self.group_start;
        match word {
            "par" | "line" | "sect" | "page" | "row" => self.char_text('\n'),
            "tab" | "cell" => self.char_text('\t'),
            "emdash" => self.char_text('—'),
            "endash" => self.char_text('–'),
            "bullet" => self.char_text('•'),
            "lquote" => self.char_text('‘'),
            "rquote" => self.char_text('’'),
            "ldblquote" => self.char_text('“'),
            "rdblquote" => self.char_text('”'),
            "enspace" | "emspace" | "qmspace" => self.char_text(' '),
            "u" => self.unicode(param.unwrap_or(0)),
            "uc" => self.group.uc = usize::try_from(param.unwrap_or(1)).unwrap_or(1).min(8),
            "ansicpg" => self.encoding = code_page(param.unwrap_or(1252)),
            "mac" => self.encoding = code_page(10000),
            "bin" => {
                // Raw binary payload: skip it unread.
                let n = usize::try_from(param.unwrap_or(0)).unwrap_or(0);
                self.pos = self.pos.saturating_add(n).min(self.src.len());
            }
            // Footnotes are body text, though writers mark them `{\*\footnote ...}` (ignorable).
            "footnote" if self.stack.last().is_some_and(|g| g.dest == Dest::Body) => {
                self.group.dest = Dest::Body;
                self.char_text(' ');
            }
            "info" if at_group_start => self.group.dest = Dest::Info,
            "creatim" if at_group_start => self.group.dest = Dest::Info,
            "yr" | "mo" | "dy" | "hr" | "min" if self.group.dest == Dest::Info => {
                let slot = ["yr", "mo", "dy", "hr", "min"].iter().position(|w| *w == word).unwrap_or(0);
                // Only the first timestamp (\creatim comes before \revtim in practice) is kept.
                if self.created[slot].is_none() {
                    self.created[slot] = param;
                }
            }
            "revtim" | "printim" | "buptim" if at_group_start => self.group.dest = Dest::Skip,
            w if at_group_start && self.group.dest == Dest::Info => {
                self.group.dest = match INFO_FIELDS.iter().position(|f| *f == w) {
                    Some(i) if i < 4 => Dest::Field(i),
                    _ => Dest::Skip,
                };
            }
            w if at_group_start && SKIPPED.contains(&w) => self.group.dest = Dest::Skip,
            _ => {}
        }
        if self.skip_fallback > 0 && word != "u" {
            self.skip_fallback -= 1;
        }
    }

    fn unicode(&mut self, n: i64) {
        // Values above 32767 are written as negative 16-bit numbers.
        let unit = u16::try_from(if n < 0 { n + 65536 } else { n }).unwrap_or(0xFFFD);
        let c = match unit {
            0xD800..=0xDBFF => {
                self.high_surrogate = Some(unit);
                None
            }
            0xDC00..=0xDFFF => {
                self.high_surrogate.take().and_then(|high| char::decode_utf16([high, unit]).next().and_then(Result::ok))
            }
            _ => char::from_u32(u32::from(unit)),
        };
        if let Some(c) = c {
            self.char_text(c);
        }
        self.skip_fallback = self.group.uc;
    }

    fn char_text(&mut self, c: char) {
        self.flush();
        let mut buf = [0u8; 4];
        self.emit(c.encode_utf8(&mut buf));
    }

    /// Decodes pending code-page bytes into the current destination.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.pending);
        let (text, _) = self.encoding.decode_without_bom_handling(&bytes);
        self.emit(&text);
    }

    fn emit(&mut self, s: &str) {
        match self.group.dest {
            Dest::Body => self.out.text.push_str(s),
            Dest::Field(i) => {
                if self.fields[i].len() < 1_000 {
                    self.fields[i].push_str(s);
                }
            }
            Dest::Skip | Dest::Info => {}
        }
    }
}

/// The encoding for a Windows code page number, Windows-1252 when unknown.
fn code_page(cp: i64) -> &'static Encoding {
    let label = match cp {
        932 => "shift_jis".to_string(),
        936 => "gbk".to_string(),
        949 => "euc-kr".to_string(),
        950 => "big5".to_string(),
        10000 => "macintosh".to_string(),
        65001 => "utf-8".to_string(),
        n => format!("windows-{n}"),
    };
    Encoding::for_label(label.as_bytes()).unwrap_or(WINDOWS_1252)
}

#[cfg(test)]
mod tests {
    use crate::{Format, Limits, out::Out};

    fn rtf_text(src: &str) -> (String, serde_json::Map<String, serde_json::Value>) {
        let mut out = Out::new(&Limits::default(), Format::Rtf, crate::out::Budget::new(1 << 20));
        super::extract(src.as_bytes(), &mut out).expect("rtf never errors");
        let ex = out.finish("application/rtf".into(), Format::Rtf);
        (ex.text.unwrap_or_default(), ex.metadata)
    }

    #[test]
    fn drops_tables_and_decodes_escapes() {
        let (text, meta) = rtf_text(
            r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times New Roman;}}{\colortbl;\red255\green0\blue0;}
{\info{\title Quarterly Report}{\author Jane Roe}{\creatim\yr2024\mo3\dy5\hr9\min30}}
{\*\generator Riched20;}\f0 Caf\'e9 \b bold\b0\par
Snowman \u9731? and \u-10179?\u-8704? done\par
{\*\unknowndest hidden}Tab\tab end}",
        );
        assert_eq!(text, "Café bold\nSnowman ☃ and 😀 done\nTab\tend");
        assert_eq!(meta.get("title").and_then(|v| v.as_str()), Some("Quarterly Report"));
        assert_eq!(meta.get("author").and_then(|v| v.as_str()), Some("Jane Roe"));
        assert_eq!(meta.get("created").and_then(|v| v.as_str()), Some("2024-03-05T09:30:00"));
    }

    #[test]
    fn truncated_rtf_keeps_text() {
        let (text, _) = rtf_text(r"{\rtf1\ansi Hello {\i world");
        assert_eq!(text, "Hello world");
    }
}
