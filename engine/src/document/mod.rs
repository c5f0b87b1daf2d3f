//! Documents: the text of each page of a PDF.
//!
//! Two extractors: pdf-extract (pure Rust, on lopdf) reads most PDFs right and
//! needs nothing installed; PDFium (Chromium's PDF library, loaded at run time from
//! `libpdfium.so`) reads the rest, chiefly PDFs whose fonts carry their own glyph
//! encoding and no ToUnicode map (Ghostscript's Type 1C subsets), which pdf-extract
//! turns into a few stray words. [`PdfEngine::Auto`] picks per document by looking
//! at its fonts (see [`needs_pdfium`](pdf_fonts::needs_pdfium)).

mod pdf_error;
mod pdf_fonts;
mod pdf_rust;
mod pdf_text;
mod pdfium_library;

pub use pdf_error::PdfError;
pub use pdf_fonts::needs_pdfium;
pub use pdf_text::{extract_pages, PdfEngine, PdfPage};
pub use pdfium_library::{pdfium_available, pdfium_library_path};
