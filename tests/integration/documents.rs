//! PDF text from real producers (fpdf2, cairo, Ghostscript) against the text they
//! were made from; the page limit; corrupt, encrypted and empty PDFs under
//! on_error = null and raise.

use regatta::arrow::array::{Array, AsArray};
use regatta::arrow::datatypes::Int32Type;
use regatta::prelude::*;
use regatta_tests::pdf_makers::{make_pdf, test_python, words, PdfProducer};
use regatta_tests::pdfium_dir;

use crate::{bytes_frame, concat};

/// Ninety lines of prose-like text (enough for two pages from enscript), with
/// punctuation, capitals and digits; the same for every run.
pub fn source_text() -> String {
    const WORDS: [&str; 24] = [
        "the",
        "river",
        "carries",
        "Data,",
        "through",
        "seven",
        "bridges",
        "and",
        "every",
        "morsel",
        "finds",
        "its",
        "worker.",
        "Regatta",
        "streams",
        "2048",
        "pages",
        "while",
        "models",
        "transcribe",
        "quietly;",
        "boats",
        "race",
        "home.",
    ];
    let mut lines = Vec::new();
    let mut k = 7usize;
    for _ in 0..90 {
        let n = 6 + k % 5;
        let line: Vec<&str> = (0..n)
            .map(|_| {
                k = (k * 31 + 17) % 1009;
                WORDS[k % WORDS.len()]
            })
            .collect();
        lines.push(line.join(" "));
    }
    lines.join("\n") + "\n"
}

/// (page numbers, text joined) per row; None for a null row.
async fn pages(
    blobs: Vec<Option<Vec<u8>>>,
    args: &str,
) -> Result<Vec<Option<(Vec<i32>, String)>>, String> {
    pdfium_dir();
    let session = Session::local();
    session
        .register_dataframe("docs", bytes_frame(&session, blobs))
        .unwrap();
    let sql = format!("SELECT id, pdf_pages(bytes{args}) AS p FROM docs ORDER BY id");
    let batches = session
        .sql(&sql)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let b = concat(&batches);
    let list = b.column(1).as_list::<i32>();
    Ok((0..list.len())
        .map(|i| {
            (!list.is_null(i)).then(|| {
                let pages = list.value(i);
                let s = pages.as_struct();
                let nums = s.column(0).as_primitive::<Int32Type>().values().to_vec();
                let text = s.column(1).as_string::<i32>();
                let joined: Vec<&str> = (0..text.len()).map(|j| text.value(j)).collect();
                (nums, joined.join("\n"))
            })
        })
        .collect())
}

fn produce(producer: PdfProducer, dir: &std::path::Path) -> Vec<u8> {
    let path = make_pdf(producer, &source_text(), dir, producer.name())
        .unwrap_or_else(|e| panic!("making the {} test PDF: {e}", producer.name()));
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn every_producer_s_pdf_gives_back_its_source_words_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let want = words(&source_text());
    for producer in PdfProducer::ALL {
        let pdf = produce(producer, dir.path());
        let got = pages(vec![Some(pdf)], "").await.unwrap();
        let (nums, text) = got[0].clone().expect("a page list");
        assert_eq!(nums, (1..=nums.len() as i32).collect::<Vec<_>>());
        assert_eq!(words(&text), want, "{}: {text}", producer.name());
    }
}

#[tokio::test]
async fn ghostscript_pdfs_need_pdfium_and_get_it() {
    // The reason PDFium is there: pdf-extract alone loses Ghostscript's words.
    let dir = tempfile::tempdir().unwrap();
    let pdf = produce(PdfProducer::Ghostscript, dir.path());
    let want = words(&source_text());
    let rust = pages(vec![Some(pdf.clone())], ", 0, 'raise', 'rust'")
        .await
        .unwrap();
    let rust_words = words(&rust[0].clone().unwrap().1);
    assert_ne!(
        rust_words, want,
        "pdf-extract read Ghostscript's fonts right after all"
    );
    let pdfium = pages(vec![Some(pdf)], ", 0, 'raise', 'pdfium'")
        .await
        .unwrap();
    assert_eq!(words(&pdfium[0].clone().unwrap().1), want);
}

#[tokio::test]
async fn max_pages_keeps_the_first_pages() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = produce(PdfProducer::Ghostscript, dir.path());
    let all = pages(vec![Some(pdf.clone())], "").await.unwrap()[0]
        .clone()
        .unwrap();
    assert!(
        all.0.len() >= 2,
        "the test text should fill two pages: {:?}",
        all.0
    );
    let first = pages(vec![Some(pdf)], ", 1").await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(first.0, vec![1]);
    assert!(all.1.starts_with(&first.1) && first.1.len() < all.1.len());
}

/// An fpdf2 PDF encrypted with a user password.
fn encrypted_pdf(dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join("locked.pdf");
    let script = r#"
import sys
from fpdf import FPDF
from fpdf.enums import EncryptionMethod
pdf = FPDF()
pdf.set_encryption(owner_password="owner", user_password="secret", encryption_method=EncryptionMethod.RC4)
pdf.add_page()
pdf.set_font("Helvetica", size=11)
pdf.cell(0, 5, "locked words")
pdf.output(sys.argv[1])
"#;
    let status = std::process::Command::new(test_python())
        .args(["-c", script])
        .arg(&out)
        .status()
        .expect("the document tests need fpdf2 (REGATTA_TEST_PYTHON)");
    assert!(status.success(), "fpdf2 could not write an encrypted PDF");
    std::fs::read(out).unwrap()
}

#[tokio::test]
async fn corrupt_encrypted_and_empty_pdfs_are_null_or_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let good = produce(PdfProducer::FpdfCore, dir.path());
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 3);
    let garbage = b"%PDF-1.7\nthis is not really a PDF at all".to_vec();
    let locked = encrypted_pdf(dir.path());
    let bad = [
        ("truncated", truncated),
        ("garbage", garbage),
        ("encrypted", locked),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in &bad {
        // Under null: the bad row is null, the good rows keep their text.
        let got = pages(
            vec![Some(good.clone()), Some(bytes.clone()), None],
            ", 0, 'null'",
        )
        .await
        .unwrap_or_else(|e| panic!("{what} under on_error null failed the query: {e}"));
        assert!(got[0].is_some(), "{what}: the good row lost its text");
        assert!(got[1].is_none(), "{what}: expected null, got {:?}", got[1]);
        assert!(got[2].is_none());
        // Under raise: an error naming the function and the row.
        let err = pages(vec![Some(good.clone()), Some(bytes.clone())], "")
            .await
            .expect_err(what);
        assert!(
            err.contains("pdf_pages") && err.contains("row 1"),
            "{what}: {err}"
        );
        if *what == "encrypted" {
            assert!(err.contains("encrypted"), "{err}");
        }
        if *what == "empty" {
            assert!(err.contains("0 bytes"), "{err}");
        }
    }
}

#[tokio::test]
async fn bad_arguments_are_plan_errors() {
    let session = Session::local();
    session
        .register_dataframe("docs", bytes_frame(&session, vec![None]))
        .unwrap();
    for (sql, needle) in [
        ("SELECT pdf_pages(id) FROM docs", "expects PDF bytes"),
        ("SELECT pdf_pages(bytes, -1) FROM docs", "max_pages"),
        ("SELECT pdf_pages(bytes, 0, 'maybe') FROM docs", "on_error"),
        (
            "SELECT pdf_pages(bytes, 0, 'null', 'acrobat') FROM docs",
            "engine",
        ),
        (
            "SELECT pdf_pages(bytes, 0, 'null', 'auto', -5) FROM docs",
            "timeout_ms must be 0 (no limit) or positive, got -5",
        ),
    ] {
        let err = crate::query_error(&session, sql).await;
        assert!(err.contains(needle), "{sql}: {err}");
    }
}

/// A PDF whose reading runs past `timeout_ms` is that row's timeout error:
/// null under 'null', the query's error naming the row and the deadline under
/// 'raise'; with no limit the same PDF reads whole.
#[tokio::test]
async fn a_pdf_read_past_its_timeout_is_the_rows_timeout_error() {
    let _one = crate::decoder_deadline_test().await;
    let dir = tempfile::tempdir().unwrap();
    let long = vec![source_text(); 8].join("\n\n");
    let path = make_pdf(PdfProducer::FpdfCore, &long, dir.path(), "long").unwrap();
    let pdf = std::fs::read(path).unwrap();
    let whole = pages(vec![Some(pdf.clone())], ", 0, 'raise', 'rust', 0")
        .await
        .unwrap();
    let (nums, text) = whole[0].clone().expect("a page list");
    assert!(nums.len() >= 2, "{} pages", nums.len());
    assert_eq!(words(&text), words(&long));

    let got = pages(vec![Some(pdf.clone()), None], ", 0, 'null', 'rust', 1")
        .await
        .unwrap();
    assert_eq!(got, vec![None, None], "the PDF was read within 1 ms");
    let err = pages(vec![None, Some(pdf)], ", 0, 'raise', 'rust', 1")
        .await
        .unwrap_err();
    assert!(
        err.contains("pdf_pages failed at row 1") && err.contains("timed out after 1 ms"),
        "{err}"
    );
}
