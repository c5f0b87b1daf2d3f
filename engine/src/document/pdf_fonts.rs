//! [`needs_pdfium`]: whether a PDF's fonts defeat the pure-Rust extractor.

use pdf_extract::{Dictionary, Document, Object};

/// The standard 14 fonts: their encodings are known without the font program.
const STANDARD_14: [&str; 14] = [
    "Courier",
    "Courier-Bold",
    "Courier-Oblique",
    "Courier-BoldOblique",
    "Helvetica",
    "Helvetica-Bold",
    "Helvetica-Oblique",
    "Helvetica-BoldOblique",
    "Times-Roman",
    "Times-Bold",
    "Times-Italic",
    "Times-BoldItalic",
    "Symbol",
    "ZapfDingbats",
];

fn name_of<'a>(dict: &'a Dictionary, key: &[u8]) -> Option<&'a [u8]> {
    dict.get(key).ok().and_then(|o| o.as_name().ok())
}

/// True when some font on some page maps its codes to characters only through its
/// embedded font program: no ToUnicode map, and either a composite (Type0) or
/// Type3 font, or a simple font with an embedded Type 1 or CFF (Type 1C) program.
/// pdf-extract replaces the dictionary's encoding by the program's built-in one,
/// which a subset (Ghostscript's, above all) renumbers: the words come out lost or
/// garbled. PDFium applies the rules right. TrueType programs and the standard 14
/// fonts (not embedded) are read by their named encodings, which pdf-extract does.
pub fn needs_pdfium(doc: &Document) -> bool {
    doc.get_pages().values().any(|&page| {
        doc.get_page_fonts(page)
            .map(|fonts| fonts.values().any(|f| font_needs_pdfium(doc, f)))
            .unwrap_or(false)
    })
}

fn font_needs_pdfium(doc: &Document, font: &Dictionary) -> bool {
    if font.has(b"ToUnicode") {
        return false;
    }
    match name_of(font, b"Subtype") {
        Some(b"Type0") | Some(b"Type3") => true,
        Some(b"Type1") | Some(b"MMType1") => {
            let base = name_of(font, b"BaseFont").unwrap_or_default();
            let base = std::str::from_utf8(base).unwrap_or_default();
            let embedded =
                descriptor(doc, font).is_some_and(|d| d.has(b"FontFile") || d.has(b"FontFile3"));
            embedded || !(STANDARD_14.contains(&base) || base.is_empty())
        }
        _ => false,
    }
}

fn descriptor<'a>(doc: &'a Document, font: &'a Dictionary) -> Option<&'a Dictionary> {
    match font.get(b"FontDescriptor").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        Object::Dictionary(d) => Some(d),
        _ => None,
    }
}
