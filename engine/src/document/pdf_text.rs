//! [`extract_pages`]: a PDF's pages as text, by the extractor the document needs.

use std::str::FromStr;

use super::{pdf_fonts, pdf_rust, pdfium_library, PdfError};

/// One page's text. Pages count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfPage {
    pub page: i32,
    pub text: String,
}

/// Which extractor reads a PDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PdfEngine {
    /// pdf-extract, unless the document's fonts need PDFium and PDFium is there.
    #[default]
    Auto,
    /// pdf-extract only (pure Rust).
    Rust,
    /// PDFium only; an error if its library cannot be loaded.
    Pdfium,
}

impl PdfEngine {
    /// The name used in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Rust => "rust",
            Self::Pdfium => "pdfium",
        }
    }
}

impl FromStr for PdfEngine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "rust" => Ok(Self::Rust),
            "pdfium" => Ok(Self::Pdfium),
            _ => Err(format!(
                "the PDF engine must be 'auto', 'rust' or 'pdfium', got {s:?}"
            )),
        }
    }
}

/// The text of the first `max_pages` pages of `bytes` (all pages when `None`), in
/// page order, read by `engine`.
pub fn extract_pages(
    bytes: &[u8],
    max_pages: Option<usize>,
    engine: PdfEngine,
) -> Result<Vec<PdfPage>, PdfError> {
    if bytes.is_empty() {
        return Err(PdfError::Empty);
    }
    match engine {
        PdfEngine::Pdfium => pdfium_library::extract(bytes, max_pages),
        PdfEngine::Rust => pdf_rust::extract(bytes, max_pages).map(|(pages, _)| pages),
        PdfEngine::Auto => {
            if !pdfium_library::pdfium_available() {
                return pdf_rust::extract(bytes, max_pages).map(|(pages, _)| pages);
            }
            match pdf_rust::extract(bytes, max_pages) {
                Ok((pages, doc)) if !pdf_fonts::needs_pdfium(&doc) => Ok(pages),
                // Fonts pdf-extract reads wrong, or a PDF it cannot parse (lopdf is
                // stricter than PDFium about damaged cross-reference tables).
                Ok(_) | Err(PdfError::Corrupt(_)) => pdfium_library::extract(bytes, max_pages),
                Err(e) => Err(e),
            }
        }
    }
}
