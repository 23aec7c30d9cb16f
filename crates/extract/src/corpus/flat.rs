//! Builders for single-stream formats: text, markup, RTF, e-mail, PDF and raster images.

use std::io::{self, Cursor};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// XML-escapes text for element content and attribute values.
pub fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn markdown(title: &str, paras: &[&str]) -> String {
    format!("# {title}\n\n{}\n", paras.join("\n\n"))
}

/// Delimited text; cells containing the delimiter, quotes or newlines are quoted.
pub fn delimited(rows: &[Vec<String>], delimiter: char) -> String {
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .map(|c| {
                if c.contains(delimiter) || c.contains('"') || c.contains('\n') {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.clone()
                }
            })
            .collect();
        out.push_str(&cells.join(&delimiter.to_string()));
        out.push('\n');
    }
    out
}

pub fn json(title: &str, paras: &[&str]) -> String {
    serde_json::json!({ "title": title, "paragraphs": paras, "meta": { "version": 1, "draft": false } }).to_string()
}

pub fn xml(title: &str, paras: &[&str]) -> String {
    let body: String = paras.iter().map(|p| format!("  <para>{}</para>\n", escape_xml(p))).collect();
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc title=\"{}\">\n{body}</doc>\n", escape_xml(title))
}

pub fn html(title: &str, paras: &[&str]) -> String {
    let body: String = paras.iter().map(|p| format!("<p>{}</p>\n", escape_xml(p))).collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body {{ font-family: serif; }}</style><script>var tracking = 'do not index';</script></head>\
         <body><h1>{t}</h1>\n{body}</body></html>\n",
        t = escape_xml(title)
    )
}

/// An RTF document with a font table, an `\info` title and one `\par` per paragraph. Non-ASCII
/// chars are written as `\uN?` escapes.
pub fn rtf(title: &str, paras: &[&str]) -> String {
    let esc = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '\\' | '{' | '}' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_ascii() => out.push(c),
                c => {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        out.push_str(&format!("\\u{}?", *unit as i16));
                    }
                }
            }
        }
        out
    };
    let body: String = paras.iter().map(|p| format!("{}\\par\n", esc(p))).collect();
    format!(
        "{{\\rtf1\\ansi\\ansicpg1252\\deff0{{\\fonttbl{{\\f0\\fswiss Helvetica;}}}}{{\\colortbl;\\red0\\green0\\blue0;}}\n\
         {{\\info{{\\title {}}}{{\\author Corpus Generator}}}}\n\\f0\\fs24 {body}}}",
        esc(title)
    )
}

pub fn eml(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 05 Mar 2024 09:30:00 +0000\r\n\
         Message-ID: <corpus-1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
        body.replace('\n', "\r\n")
    )
}

/// A PDF with one page per entry, each line drawn in Helvetica, with an `/Info` title. Text is
/// written as WinAnsi bytes (chars outside it become `?`), with a correct xref table.
pub fn pdf(title: &str, pages: &[String]) -> Vec<u8> {
    let n = pages.len().max(1);
    // Objects: 1 catalog, 2 pages, 3 font, 4 info, then per page: page, content.
    let mut objects: Vec<String> = Vec::new();
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 5 + 2 * i)).collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into());
    objects.push(format!(
        "<< /Title ({}) /Author (Corpus Generator) /CreationDate (D:20240305093000Z) >>",
        pdf_string(title)
    ));
    for i in 0..n {
        let text = pages.get(i).map_or("", String::as_str);
        let mut content = String::from("BT /F1 11 Tf 14 TL 50 780 Td\n");
        for line in wrap(text, 90) {
            content.push_str(&format!("({}) Tj T*\n", pdf_string(&line)));
        }
        content.push_str("ET\n");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            6 + 2 * i
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}endstream", content.len()));
    }
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{obj}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    out
}

/// A PDF literal string body: WinAnsi bytes as octal escapes, parens and backslashes escaped.
fn pdf_string(s: &str) -> String {
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(s);
    let mut out = String::new();
    for &b in bytes.iter() {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7E => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.len() - 1;
        if !lines[last].is_empty() && lines[last].len() + word.len() >= width {
            lines.push(String::new());
        }
        if let Some(line) = lines.last_mut() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// A gradient image encoded as `format` (PNG, JPEG, GIF, WebP).
pub fn image(width: u32, height: u32, format: ImageFormat) -> io::Result<Vec<u8>> {
    let img = RgbImage::from_fn(width.max(1), height.max(1), |x, y| {
        Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, ((x + y) % 256) as u8])
    });
    let dynamic = match format {
        ImageFormat::Gif | ImageFormat::WebP => DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(img).to_rgba8()),
        _ => DynamicImage::ImageRgb8(img),
    };
    let mut out = Cursor::new(Vec::new());
    dynamic.write_to(&mut out, format).map_err(io::Error::other)?;
    Ok(out.into_inner())
}
