//! PDFium, loaded once per process from `libpdfium.so`.
//!
//! The library is found at `$REGATTA_PDFIUM_DIR/libpdfium.so`, else
//! `models/pdfium/libpdfium.so` under the current directory (where
//! `scripts/fetch_pdfium.sh` puts it). PDFium is not thread-safe: pdfium-render's
//! `thread_safe` feature serialises calls into it.

use std::path::PathBuf;
use std::sync::OnceLock;

use pdfium_render::prelude::Pdfium;
use pdfium_render::prelude::{PdfiumError, PdfiumInternalError};

use super::pdf_rust::tidy;
use super::{PdfError, PdfPage};

static PDFIUM: OnceLock<Result<Pdfium, String>> = OnceLock::new();

/// Where the library is looked for.
pub fn pdfium_library_path() -> PathBuf {
    std::env::var_os("REGATTA_PDFIUM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models").join("pdfium"))
        .join(Pdfium::pdfium_platform_library_name())
}

fn pdfium() -> Result<&'static Pdfium, PdfError> {
    PDFIUM
        .get_or_init(|| {
            let path = pdfium_library_path();
            if !path.is_file() {
                return Err(format!(
                    "{} is missing (run scripts/fetch_pdfium.sh, or set REGATTA_PDFIUM_DIR)",
                    path.display()
                ));
            }
            Pdfium::bind_to_library(&path)
                .map(Pdfium::new)
                .map_err(|e| format!("{}: {e:?}", path.display()))
        })
        .as_ref()
        .map_err(|e| PdfError::PdfiumMissing(e.clone()))
}

/// True when PDFium can be loaded (it is loaded by this call if it was not yet).
pub fn pdfium_available() -> bool {
    let ok = pdfium().is_ok();
    static WARNED: OnceLock<()> = OnceLock::new();
    if !ok {
        WARNED.get_or_init(|| {
            log::warn!(
                "PDFium not found at {}: PDFs whose fonts need it are read by pdf-extract alone (run scripts/fetch_pdfium.sh)",
                pdfium_library_path().display()
            )
        });
    }
    ok
}

pub(super) fn extract(bytes: &[u8], max_pages: Option<usize>) -> Result<Vec<PdfPage>, PdfError> {
    let pdfium = pdfium()?;
    let doc = pdfium
        .load_pdf_from_byte_slice(bytes, None)
        .map_err(|e| match e {
            PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError) => {
                PdfError::Encrypted
            }
            e => PdfError::Corrupt(format!("{e:?}")),
        })?;
    let pages = doc.pages();
    let take = max_pages.unwrap_or(usize::MAX).min(pages.len() as usize);
    let mut out = Vec::with_capacity(take);
    for (i, page) in pages.iter().take(take).enumerate() {
        let text = page
            .text()
            .map_err(|e| PdfError::Corrupt(format!("page {}: {e:?}", i + 1)))?
            .all();
        out.push(PdfPage {
            page: i as i32 + 1,
            // PDFium marks a word hyphenated across a line break with U+0002 and
            // joins the halves: keep the hyphen ("non-free").
            text: tidy(
                &text
                    .replace("\r\n", "\n")
                    .replace('\r', "\n")
                    .replace('\u{2}', "-"),
            ),
        });
    }
    Ok(out)
}
