//! The pure-Rust path: lopdf parses, pdf-extract lays out each page's text.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pdf_extract::{output_doc_page, Document, PlainTextOutput};

use super::{PdfError, PdfPage};

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the extractor failed".into())
}

/// The parsed document (for the font check) and its pages' text.
pub(super) fn extract(
    bytes: &[u8],
    max_pages: Option<usize>,
) -> Result<(Vec<PdfPage>, Document), PdfError> {
    // pdf-extract and lopdf panic on some malformed input: a damaged PDF is that
    // row's error, never the process's.
    catch_unwind(AssertUnwindSafe(|| extract_inner(bytes, max_pages)))
        .unwrap_or_else(|p| Err(PdfError::Corrupt(panic_text(p))))
}

fn extract_inner(
    bytes: &[u8],
    max_pages: Option<usize>,
) -> Result<(Vec<PdfPage>, Document), PdfError> {
    let mut doc = Document::load_mem(bytes).map_err(|e| match e {
        pdf_extract::Error::Decryption(_) => PdfError::Encrypted,
        e => PdfError::Corrupt(e.to_string()),
    })?;
    if doc.is_encrypted() {
        // An owner password alone still opens with the empty user password.
        doc.decrypt("").map_err(|_| PdfError::Encrypted)?;
    }
    let numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
    let take = max_pages.unwrap_or(usize::MAX).min(numbers.len());
    let mut pages = Vec::with_capacity(take);
    for &n in &numbers[..take] {
        let mut text = String::new();
        {
            let mut out = PlainTextOutput::new(&mut text);
            output_doc_page(&doc, &mut out, n)
                .map_err(|e| PdfError::Corrupt(format!("page {n}: {e}")))?;
        }
        pages.push(PdfPage {
            page: n as i32,
            text: tidy(&text),
        });
    }
    Ok((pages, doc))
}

/// Typographic ligatures (as cairo and TeX emit them) and their letters: a
/// search for "finds" must find the word set with an "fi" ligature.
const LIGATURES: [(char, &str); 7] = [
    ('\u{FB00}', "ff"),
    ('\u{FB01}', "fi"),
    ('\u{FB02}', "fl"),
    ('\u{FB03}', "ffi"),
    ('\u{FB04}', "ffl"),
    ('\u{FB05}', "st"),
    ('\u{FB06}', "st"),
];

/// Spells out ligatures, trims each line's trailing blanks and drops leading and
/// trailing blank lines; words and their order are kept as extracted.
pub(super) fn tidy(text: &str) -> String {
    let text: String = if text.chars().any(|c| ('\u{FB00}'..='\u{FB06}').contains(&c)) {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match LIGATURES.iter().find(|(l, _)| *l == c) {
                Some((_, letters)) => out.push_str(letters),
                None => out.push(c),
            }
        }
        out
    } else {
        text.to_string()
    };
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let start = lines.iter().position(|l| !l.trim().is_empty());
    let end = lines.iter().rposition(|l| !l.trim().is_empty());
    match (start, end) {
        (Some(s), Some(e)) => lines[s..=e].join("\n"),
        _ => String::new(),
    }
}
