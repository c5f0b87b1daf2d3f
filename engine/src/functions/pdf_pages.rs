//! `pdf_pages(bytes [, max_pages [, on_error [, engine [, timeout_ms]]]])`: each
//! page's text.
//!
//! Returns `List<Struct{page: Int32, text: Utf8}>`, pages from 1 in order. A row
//! that is not a readable PDF (corrupt, encrypted with a password, 0 bytes) fails
//! the query naming the row, or is null under `on_error = 'null'`. A PDF whose
//! reading runs past `timeout_ms` (default 300 s; 0 for no limit) is the row's
//! timeout error, under the same `on_error` (see `decoder_guard`).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::Array;
use datafusion::arrow::array::{
    ArrayRef, AsArray, Int32Builder, ListBuilder, StringBuilder, StructBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{array_arg, check_arity, int_arg, str_arg, OnError};
use crate::decoder_guard::{guarded_within, limit_from_ms};
use crate::document::{extract_pages, PdfEngine};

/// The name `pdf_pages` is called by.
pub const PDF_PAGES: &str = "pdf_pages";

const USAGE: &str =
    "pdf_pages(bytes [, max_pages (0 = all) [, on_error 'raise'|'null'|'skip'|'record' [, engine 'auto'|'rust'|'pdfium' [, timeout_ms (0 = none)]]]])";

/// How long one PDF may take unless `timeout_ms` says otherwise: long enough
/// for a book of thousands of pages, short enough that a PDF crafted to loop
/// does not hold a task for good.
pub const DEFAULT_PDF_TIMEOUT_MS: i64 = 300_000;

/// The fields of one page.
pub fn page_fields() -> Fields {
    Fields::from(vec![
        Field::new("page", DataType::Int32, false),
        Field::new("text", DataType::Utf8, false),
    ])
}

/// The Arrow type `pdf_pages` returns.
pub fn pdf_pages_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(page_fields()),
        true,
    )))
}

/// `pdf_pages`, see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PdfPages {
    signature: Signature,
}

impl Default for PdfPages {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PdfPages {
    fn name(&self) -> &str {
        PDF_PAGES
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(PDF_PAGES, arg_types.len(), 1, 5, USAGE)?;
        match &arg_types[0] {
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null => {
                Ok(pdf_pages_type())
            }
            other => Err(DataFusionError::Plan(format!(
                "{PDF_PAGES} expects PDF bytes (url_download's result, say), got {other}; usage: {USAGE}"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = array_arg(&args.args, 0, args.number_rows)?;
        let max_pages = match int_arg(&args.args, 1, PDF_PAGES, "max_pages")? {
            None | Some(0) => None,
            Some(n) if n > 0 => Some(n as usize),
            Some(n) => {
                return Err(DataFusionError::Plan(format!(
                    "{PDF_PAGES}: max_pages must be 0 (all) or positive, got {n}"
                )))
            }
        };
        let on_error = match str_arg(&args.args, 2, PDF_PAGES, "on_error")? {
            Some(s) => OnError::parse(&s)?,
            None => OnError::Raise,
        };
        let engine = match str_arg(&args.args, 3, PDF_PAGES, "engine")? {
            Some(s) => s
                .parse::<PdfEngine>()
                .map_err(|e| DataFusionError::Plan(format!("{PDF_PAGES}: {e}")))?,
            None => PdfEngine::Auto,
        };
        let timeout_ms =
            int_arg(&args.args, 4, PDF_PAGES, "timeout_ms")?.unwrap_or(DEFAULT_PDF_TIMEOUT_MS);
        let limit = limit_from_ms(Some(timeout_ms), PDF_PAGES).map_err(DataFusionError::Plan)?;
        Ok(ColumnarValue::Array(pages(
            &input, max_pages, on_error, engine, limit,
        )?))
    }
}

fn pages(
    input: &ArrayRef,
    max_pages: Option<usize>,
    on_error: OnError,
    engine: PdfEngine,
    limit: Option<Duration>,
) -> Result<ArrayRef> {
    let bytes = cast(input, &DataType::Binary)?;
    let bytes = bytes.as_binary::<i32>();
    let fields = page_fields();
    let item = StructBuilder::new(
        fields.clone(),
        vec![
            Box::new(Int32Builder::new()),
            Box::new(StringBuilder::new()),
        ],
    );
    let mut out = ListBuilder::new(item).with_field(Arc::new(Field::new(
        "item",
        DataType::Struct(fields),
        true,
    )));
    for i in 0..bytes.len() {
        if bytes.is_null(i) {
            out.append(false);
            continue;
        }
        // The array shares its buffers: the decoder's thread reads the row
        // where it lies.
        let pdfs = bytes.clone();
        let got = guarded_within("pdf", limit, move || {
            extract_pages(pdfs.value(i), max_pages, engine).map_err(|e| e.to_string())
        });
        let got = match got {
            Ok(p) => p,
            Err(e) => {
                on_error.fail_decode(PDF_PAGES, i, None, e)?;
                out.append(false);
                continue;
            }
        };
        let item = out.values();
        for p in got {
            item.field_builder::<Int32Builder>(0)
                .ok_or_else(|| DataFusionError::Internal("pdf_pages: page builder".into()))?
                .append_value(p.page);
            item.field_builder::<StringBuilder>(1)
                .ok_or_else(|| DataFusionError::Internal("pdf_pages: text builder".into()))?
                .append_value(&p.text);
            item.append(true);
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}
