//! Fixture builders for every supported format, and a deterministic mixed corpus built from them.
//!
//! The builders write minimal but valid files (real zip containers with the parts each format
//! requires, a PDF with a correct cross-reference table), so tests and benchmarks exercise the same
//! code paths as real uploads without shipping binary fixtures. Zip-based builders return
//! `io::Result` because the zip writer does; writing to memory does not fail in practice.

mod flat;
mod zipped;

use std::io;

use image::ImageFormat;

pub use flat::{delimited, eml, escape_xml, html, image, json, markdown, pdf, rtf, xml};
pub use zipped::{docx, epub, odp, ods, odt, pptx, xlsx};

/// Produces `count` files cycling through every supported format, with text from a fixed
/// vocabulary and valid PII (Luhn-valid cards, checksummed IBANs, ...) sprinkled into about one
/// paragraph in five. The same `seed` always gives the same bytes.
pub fn generate_corpus(seed: u64, count: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
    (0..count)
        .filter_map(|i| {
            let kind = KINDS[i % KINDS.len()];
            let file = build(kind, i, &mut rng).ok()?;
            Some((format!("doc-{i:05}.{kind}"), file))
        })
        .collect()
}

/// Extensions produced by [`generate_corpus`], in rotation order.
const KINDS: [&str; 23] = [
    "txt", "md", "csv", "tsv", "json", "xml", "html", "pdf", "docx", "xlsx", "pptx", "odt", "ods", "odp", "rtf",
    "epub", "eml", "rs", "py", "png", "jpg", "gif", "webp",
];

fn build(kind: &str, i: usize, rng: &mut Rng) -> io::Result<Vec<u8>> {
    // One file in ten is ten times larger, so throughput covers more than tiny files.
    let n = rng.range(3, 12) * if rng.range(0, 10) == 0 { 10 } else { 1 };
    let paras: Vec<String> = (0..n).map(|_| paragraph(rng)).collect();
    let refs: Vec<&str> = paras.iter().map(String::as_str).collect();
    let title = format!("Document {i} {}", words(rng, 3));
    Ok(match kind {
        "txt" => refs.join("\n\n").into_bytes(),
        "md" => markdown(&title, &refs).into_bytes(),
        "csv" => delimited(&table(rng, n), ',').into_bytes(),
        "tsv" => delimited(&table(rng, n), '\t').into_bytes(),
        "json" => json(&title, &refs).into_bytes(),
        "xml" => xml(&title, &refs).into_bytes(),
        "html" => html(&title, &refs).into_bytes(),
        "pdf" => pdf(&title, &refs.chunks(3).map(|c| c.join(" ")).collect::<Vec<_>>()),
        "docx" => docx(&title, &refs)?,
        "xlsx" => xlsx(&[("Data", table(rng, n)), ("Notes", vec![vec![paras[0].clone()]])])?,
        "pptx" => pptx(&title, &slides(&paras))?,
        "odt" => odt(&title, &refs)?,
        "ods" => ods(&[("Data", table(rng, n))])?,
        "odp" => odp(&title, &slides(&paras))?,
        "rtf" => rtf(&title, &refs).into_bytes(),
        "epub" => epub(&title, "A. Author", &[("One", &refs[..1]), ("Two", &refs[1..])])?,
        "eml" => eml("Ann Example <ann@example.com>", "bob@example.org", &title, &refs.join("\n\n")).into_bytes(),
        "rs" => format!("/// {title}\nfn main() {{\n    // {}\n    println!(\"{}\");\n}}\n", paras[0], words(rng, 4))
            .into_bytes(),
        "py" => format!("# {title}\ndef main():\n    \"\"\"{}\"\"\"\n    return 42\n", paras[0]).into_bytes(),
        "png" => image(rng.range(16, 400) as u32, rng.range(16, 300) as u32, ImageFormat::Png)?,
        "jpg" => image(rng.range(16, 400) as u32, rng.range(16, 300) as u32, ImageFormat::Jpeg)?,
        "gif" => image(rng.range(16, 200) as u32, rng.range(16, 200) as u32, ImageFormat::Gif)?,
        _ => image(rng.range(16, 200) as u32, rng.range(16, 200) as u32, ImageFormat::WebP)?,
    })
}

/// SplitMix64: tiny, fast and good enough for fixtures; no dependency on `rand`'s versioning.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo).max(1) as u64) as usize
    }
}

const VOCABULARY: &[&str] = &[
    "quarterly",
    "revenue",
    "forecast",
    "customer",
    "invoice",
    "project",
    "meeting",
    "summary",
    "contract",
    "policy",
    "review",
    "budget",
    "analysis",
    "report",
    "schedule",
    "delivery",
    "service",
    "account",
    "payment",
    "support",
    "network",
    "security",
    "release",
    "migration",
    "database",
    "warehouse",
    "shipment",
    "order",
    "supplier",
    "audit",
    "team",
    "roadmap",
    "milestone",
    "risk",
    "compliance",
    "training",
    "hiring",
    "office",
    "travel",
    "expense",
];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| VOCABULARY[rng.range(0, VOCABULARY.len())]).collect::<Vec<_>>().join(" ")
}

fn paragraph(rng: &mut Rng) -> String {
    let n = rng.range(8, 40);
    let p = words(rng, n);
    let mut p = p[..1].to_ascii_uppercase() + &p[1..] + ".";
    if rng.range(0, 5) == 0 {
        p.push_str(" Contact: ");
        p.push_str(&pii_sample(rng));
        p.push_str(" today.");
    }
    p
}

/// One valid PII item of a random kind.
fn pii_sample(rng: &mut Rng) -> String {
    match rng.range(0, 8) {
        0 => format!("user{}@example.com", rng.range(1, 9999)),
        1 => format!("+44 20 7946 {:04}", rng.range(0, 10_000)),
        2 => format!("(415) 555-{:04}", rng.range(0, 10_000)),
        3 => card_number(rng),
        4 => ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606"]
            [rng.range(0, 3)]
        .to_string(),
        5 => format!("{:03}-{:02}-{:04}", rng.range(1, 600), rng.range(1, 100), rng.range(1, 10_000)),
        6 => format!("10.{}.{}.{}", rng.range(0, 256), rng.range(0, 256), rng.range(1, 255)),
        _ => format!("00:1A:2B:{:02X}:{:02X}:{:02X}", rng.range(0, 256), rng.range(0, 256), rng.range(0, 256)),
    }
}

/// A Luhn-valid 16-digit Visa-style number, printed in groups of four.
fn card_number(rng: &mut Rng) -> String {
    let mut digits: Vec<u32> = vec![4];
    digits.extend((0..14).map(|_| rng.range(0, 10) as u32));
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 0 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    digits.push((10 - sum % 10) % 10);
    let s: String = digits.iter().filter_map(|d| char::from_digit(*d, 10)).collect();
    format!("{} {} {} {}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
}

fn table(rng: &mut Rng, rows: usize) -> Vec<Vec<String>> {
    let mut t = vec![vec!["id".to_string(), "name".into(), "amount".into(), "note".into()]];
    for r in 0..rows * 3 {
        let note = if rng.range(0, 6) == 0 { pii_sample(rng) } else { words(rng, 3) };
        t.push(vec![r.to_string(), words(rng, 1), format!("{}.{:02}", rng.range(1, 10_000), rng.range(0, 100)), note]);
    }
    t
}

fn slides(paras: &[String]) -> Vec<Vec<String>> {
    paras.chunks(2).map(|c| c.to_vec()).collect()
}
