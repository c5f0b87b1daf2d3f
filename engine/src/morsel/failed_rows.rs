//! Rows a morsel's functions gave up on (`on_error = 'skip' | 'record'`):
//! dropped from the morsel's output and handed to the query's error sink.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::error::DataFusionError;

use super::exec::{locate_source, Evaluated};
use crate::functions::row_failures::RowFailure;
use crate::row_errors::RowErrorSink;

/// Drops the rows functions gave up on (`on_error = 'skip' | 'record'`) and
/// hands them, keyed by their URL or path, to the query's error sink.
pub(super) fn drop_failed_rows(
    out: Evaluated,
    morsel: &RecordBatch,
    failures: Vec<RowFailure>,
    errors: &RowErrorSink,
) -> Result<Evaluated> {
    if failures.is_empty() {
        return Ok(out);
    }
    let rows = out.batch.num_rows();
    let mut keep = vec![true; rows];
    let mut keyed = Vec::with_capacity(failures.len());
    for f in failures {
        if f.row >= rows || !keep[f.row] {
            // A row two functions failed counts once (the first cause).
            continue;
        }
        keep[f.row] = false;
        let key = f
            .source
            .clone()
            .or_else(|| locate_source(morsel, f.row).map(|s| strip_column(&s)));
        keyed.push((f, key));
    }
    errors.add_failures(keyed).map_err(DataFusionError::from)?;
    let mask = datafusion::arrow::array::BooleanArray::from(keep);
    let batch = datafusion::arrow::compute::filter_record_batch(&out.batch, &mask)?;
    let kept = batch.num_rows();
    Ok(Evaluated {
        computed_bytes: out.computed_bytes * kept / rows.max(1),
        batch,
    })
}

/// `column=value` as located by [`locate_source`], without the column.
fn strip_column(located: &str) -> String {
    located
        .split_once('=')
        .map_or(located, |(_, v)| v)
        .to_string()
}
