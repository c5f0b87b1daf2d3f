//! [`PdfError`]: why a PDF's text could not be read.

/// A PDF that could not be read, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    /// Zero bytes: nothing to parse.
    #[error("empty input (0 bytes), not a PDF")]
    Empty,
    /// Not a PDF, or one too damaged to parse.
    #[error("not a readable PDF: {0}")]
    Corrupt(String),
    /// Encrypted with a user password.
    #[error("the PDF is encrypted and needs a password to open")]
    Encrypted,
    /// PDFium was asked for but cannot be loaded.
    #[error("PDFium is not available: {0}")]
    PdfiumMissing(String),
}
