//! Builders for zip-based formats: OOXML (docx, xlsx, pptx), OpenDocument and EPUB.

use std::io::{self, Cursor, Write};

use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use super::escape_xml;

/// In-memory zip writer; `mimetype` members are stored uncompressed as ODF and EPUB require.
struct ZipBuilder(ZipWriter<Cursor<Vec<u8>>>);

impl ZipBuilder {
    fn new() -> Self {
        Self(ZipWriter::new(Cursor::new(Vec::new())))
    }

    fn file(mut self, name: &str, body: &str) -> io::Result<Self> {
        let method = if name == "mimetype" { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated };
        self.0.start_file(name, SimpleFileOptions::default().compression_method(method)).map_err(io::Error::other)?;
        self.0.write_all(body.as_bytes())?;
        Ok(self)
    }

    fn finish(self) -> io::Result<Vec<u8>> {
        Ok(self.0.finish().map_err(io::Error::other)?.into_inner())
    }
}

const CORE_PROPS_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<cp:coreProperties \
    xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
    xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:dcterms=\"http://purl.org/dc/terms/\" \
    xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">";

fn core_props(title: &str) -> String {
    format!(
        "{CORE_PROPS_HEAD}<dc:title>{}</dc:title><dc:creator>Corpus Generator</dc:creator>\
         <dcterms:created xsi:type=\"dcterms:W3CDTF\">2024-03-05T09:30:00Z</dcterms:created></cp:coreProperties>",
        escape_xml(title)
    )
}

fn content_types(overrides: &[(&str, &str)]) -> String {
    let parts: String =
        overrides.iter().map(|(part, ct)| format!("<Override PartName=\"{part}\" ContentType=\"{ct}\"/>")).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
         <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
         <Default Extension=\"xml\" ContentType=\"application/xml\"/>{parts}\
         <Override PartName=\"/docProps/core.xml\" ContentType=\"application/vnd.openxmlformats-package.core-properties+xml\"/></Types>"
    )
}

fn rels(entries: &[(&str, &str, &str)]) -> String {
    let body: String = entries
        .iter()
        .map(|(id, ty, target)| {
            format!(
                "<Relationship Id=\"{id}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/{ty}\" Target=\"{target}\"/>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">{body}</Relationships>"
    )
}

const PKG_RELS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
    <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"MAIN\"/>\
    <Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties\" Target=\"docProps/core.xml\"/></Relationships>";

/// A Word document: one paragraph per entry, title in the core properties.
pub fn docx(title: &str, paras: &[&str]) -> io::Result<Vec<u8>> {
    let body: String = paras
        .iter()
        .map(|p| format!("<w:p><w:pPr><w:tabs><w:tab w:val=\"left\" w:pos=\"720\"/></w:tabs></w:pPr><w:r><w:t xml:space=\"preserve\">{}</w:t></w:r></w:p>", escape_xml(p)))
        .collect();
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}<w:sectPr/></w:body></w:document>"
    );
    ZipBuilder::new()
        .file(
            "[Content_Types].xml",
            &content_types(&[(
                "/word/document.xml",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
            )]),
        )?
        .file("_rels/.rels", &PKG_RELS.replace("MAIN", "word/document.xml"))?
        .file("word/document.xml", &document)?
        .file("docProps/core.xml", &core_props(title))?
        .finish()
}

/// A workbook with the given sheets; strings go through the shared string table, numbers inline.
pub fn xlsx(sheets: &[(&str, Vec<Vec<String>>)]) -> io::Result<Vec<u8>> {
    let mut shared: Vec<String> = Vec::new();
    let mut zip = ZipBuilder::new();
    let mut sheet_entries = String::new();
    let mut wb_rels = Vec::new();
    let mut overrides = vec![(
        "/xl/workbook.xml".to_string(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml".to_string(),
    )];
    for (i, (name, rows)) in sheets.iter().enumerate() {
        let n = i + 1;
        let mut data = String::new();
        for (r, row) in rows.iter().enumerate() {
            data.push_str(&format!("<row r=\"{}\">", r + 1));
            for (c, cell) in row.iter().enumerate() {
                let col = char::from(b'A' + (c % 26) as u8);
                if cell.parse::<f64>().is_ok() {
                    data.push_str(&format!("<c r=\"{col}{}\"><v>{cell}</v></c>", r + 1));
                } else {
                    shared.push(cell.clone());
                    data.push_str(&format!("<c r=\"{col}{}\" t=\"s\"><v>{}</v></c>", r + 1, shared.len() - 1));
                }
            }
            data.push_str("</row>");
        }
        zip = zip.file(
            &format!("xl/worksheets/sheet{n}.xml"),
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>{data}</sheetData></worksheet>"
            ),
        )?;
        sheet_entries.push_str(&format!("<sheet name=\"{}\" sheetId=\"{n}\" r:id=\"rId{n}\"/>", escape_xml(name)));
        wb_rels.push((format!("rId{n}"), format!("worksheets/sheet{n}.xml")));
        overrides.push((
            format!("/xl/worksheets/sheet{n}.xml"),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml".to_string(),
        ));
    }
    let sst: String = shared.iter().map(|s| format!("<si><t>{}</t></si>", escape_xml(s))).collect();
    let rel_refs: Vec<(&str, &str, &str)> =
        wb_rels.iter().map(|(id, t)| (id.as_str(), "worksheet", t.as_str())).collect();
    let mut all_rels = rel_refs;
    all_rels.push(("rIdS", "sharedStrings", "sharedStrings.xml"));
    let override_refs: Vec<(&str, &str)> = overrides.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    zip.file("[Content_Types].xml", &content_types(&override_refs))?
        .file("_rels/.rels", &PKG_RELS.replace("MAIN", "xl/workbook.xml"))?
        .file(
            "xl/workbook.xml",
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
                 xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets>{sheet_entries}</sheets></workbook>"
            ),
        )?
        .file("xl/_rels/workbook.xml.rels", &rels(&all_rels))?
        .file(
            "xl/sharedStrings.xml",
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" count=\"{0}\" uniqueCount=\"{0}\">{sst}</sst>",
                shared.len()
            ),
        )?
        .file("docProps/core.xml", &core_props("Workbook"))?
        .finish()
}

/// A presentation: one slide per entry, one text paragraph per string. Slide parts are numbered in
/// reverse to prove extraction follows the presentation's order, not file names.
pub fn pptx(title: &str, slides: &[Vec<String>]) -> io::Result<Vec<u8>> {
    let n = slides.len();
    let mut zip = ZipBuilder::new();
    let mut ids = String::new();
    let mut pres_rels = Vec::new();
    for (i, paras) in slides.iter().enumerate() {
        let file_no = n - i;
        let body: String =
            paras.iter().map(|p| format!("<a:p><a:r><a:t>{}</a:t></a:r></a:p>", escape_xml(p))).collect();
        zip = zip.file(
            &format!("ppt/slides/slide{file_no}.xml"),
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><p:sld xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" \
                 xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\"><p:cSld><p:spTree><p:sp><p:txBody>{body}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
            ),
        )?;
        ids.push_str(&format!("<p:sldId id=\"{}\" r:id=\"rId{}\"/>", 256 + i, i + 1));
        pres_rels.push((format!("rId{}", i + 1), format!("slides/slide{file_no}.xml")));
    }
    let rel_refs: Vec<(&str, &str, &str)> =
        pres_rels.iter().map(|(id, t)| (id.as_str(), "slide", t.as_str())).collect();
    zip.file(
        "[Content_Types].xml",
        &content_types(&[(
            "/ppt/presentation.xml",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
        )]),
    )?
    .file("_rels/.rels", &PKG_RELS.replace("MAIN", "ppt/presentation.xml"))?
    .file(
        "ppt/presentation.xml",
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><p:presentation xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\" \
             xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"
        ),
    )?
    .file("ppt/_rels/presentation.xml.rels", &rels(&rel_refs))?
    .file("docProps/core.xml", &core_props(title))?
    .finish()
}

const ODF_NS: &str = "xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
    xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
    xmlns:draw=\"urn:oasis:names:tc:opendocument:xmlns:drawing:1.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
    xmlns:meta=\"urn:oasis:names:tc:opendocument:xmlns:meta:1.0\"";

fn odf(mimetype: &str, title: &str, body: &str) -> io::Result<Vec<u8>> {
    // Only text documents record a page count.
    let stats = if mimetype.ends_with(".text") { "<meta:document-statistic meta:page-count=\"1\"/>" } else { "" };
    ZipBuilder::new()
        .file("mimetype", mimetype)?
        .file(
            "META-INF/manifest.xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\">\
             <manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"MIME\"/>\
             <manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/></manifest:manifest>"
                .replace("MIME", mimetype)
                .as_str(),
        )?
        .file(
            "meta.xml",
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><office:document-meta {ODF_NS}><office:meta><dc:title>{}</dc:title>\
                 <meta:initial-creator>Corpus Generator</meta:initial-creator><meta:creation-date>2024-03-05T09:30:00</meta:creation-date>\
                 {stats}</office:meta></office:document-meta>",
                escape_xml(title)
            ),
        )?
        .file(
            "content.xml",
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><office:document-content {ODF_NS}><office:body>{body}</office:body></office:document-content>"
            ),
        )?
        .finish()
}

/// A text document: one `text:p` per paragraph under a `text:h` heading.
pub fn odt(title: &str, paras: &[&str]) -> io::Result<Vec<u8>> {
    let ps: String = paras.iter().map(|p| format!("<text:p>{}</text:p>", escape_xml(p))).collect();
    let body =
        format!("<office:text><text:h text:outline-level=\"1\">{}</text:h>{ps}</office:text>", escape_xml(title));
    odf("application/vnd.oasis.opendocument.text", title, &body)
}

/// A spreadsheet with the given sheets (`table:table` per sheet, one `text:p` per cell).
pub fn ods(sheets: &[(&str, Vec<Vec<String>>)]) -> io::Result<Vec<u8>> {
    let mut body = String::from("<office:spreadsheet>");
    for (name, rows) in sheets {
        body.push_str(&format!("<table:table table:name=\"{}\">", escape_xml(name)));
        for row in rows {
            body.push_str("<table:table-row>");
            for cell in row {
                body.push_str(&format!("<table:table-cell><text:p>{}</text:p></table:table-cell>", escape_xml(cell)));
            }
            body.push_str("</table:table-row>");
        }
        body.push_str("<table:table-row table:number-rows-repeated=\"1048000\"><table:table-cell/></table:table-row>");
        body.push_str("</table:table>");
    }
    body.push_str("</office:spreadsheet>");
    odf("application/vnd.oasis.opendocument.spreadsheet", "Spreadsheet", &body)
}

/// A presentation: one `draw:page` per slide, text in frames.
pub fn odp(title: &str, slides: &[Vec<String>]) -> io::Result<Vec<u8>> {
    let mut body = String::from("<office:presentation>");
    for (i, paras) in slides.iter().enumerate() {
        let ps: String = paras.iter().map(|p| format!("<text:p>{}</text:p>", escape_xml(p))).collect();
        body.push_str(&format!(
            "<draw:page draw:name=\"page{}\"><draw:frame><draw:text-box>{ps}</draw:text-box></draw:frame></draw:page>",
            i + 1
        ));
    }
    body.push_str("</office:presentation>");
    odf("application/vnd.oasis.opendocument.presentation", title, &body)
}

/// An EPUB 3 book; chapter files are named so that name order differs from spine order.
pub fn epub(title: &str, author: &str, chapters: &[(&str, &[&str])]) -> io::Result<Vec<u8>> {
    let mut zip = ZipBuilder::new().file("mimetype", "application/epub+zip")?.file(
        "META-INF/container.xml",
        "<?xml version=\"1.0\"?><container version=\"1.0\" xmlns=\"urn:oasis:names:tc:opendocument:xmlns:container\">\
         <rootfiles><rootfile full-path=\"OEBPS/content.opf\" media-type=\"application/oebps-package+xml\"/></rootfiles></container>",
    )?;
    let mut manifest = String::new();
    let mut spine = String::new();
    for (i, (heading, paras)) in chapters.iter().enumerate() {
        let file = format!("text/{}-chapter.xhtml", char::from(b'z' - (i % 26) as u8));
        let ps: String = paras.iter().map(|p| format!("<p>{}</p>", escape_xml(p))).collect();
        zip = zip.file(
            &format!("OEBPS/{file}"),
            &format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>{h}</title></head>\
                 <body><h1>{h}</h1>{ps}</body></html>",
                h = escape_xml(heading)
            ),
        )?;
        manifest.push_str(&format!("<item id=\"c{i}\" href=\"{file}\" media-type=\"application/xhtml+xml\"/>"));
        spine.push_str(&format!("<itemref idref=\"c{i}\"/>"));
    }
    zip.file(
        "OEBPS/content.opf",
        &format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><package xmlns=\"http://www.idpf.org/2007/opf\" version=\"3.0\">\
             <metadata xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><dc:title>{}</dc:title><dc:creator>{}</dc:creator>\
             <dc:language>en</dc:language></metadata><manifest>{manifest}</manifest><spine>{spine}</spine></package>",
            escape_xml(title),
            escape_xml(author)
        ),
    )?
    .finish()
}
