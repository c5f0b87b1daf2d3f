//! Printing results as a table, CSV or JSON lines.

use std::io::Write;

use regatta::arrow::record_batch::RecordBatch;
use regatta::arrow::util::pretty::pretty_format_batches;

use crate::{CliError, Result};

/// How `regatta sql` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Json,
}

/// Writes `batches` to `out` in `format`.
pub fn write_batches(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: PrintFormat,
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| CliError::Output(e.to_string());
    match format {
        PrintFormat::Table => {
            let table = pretty_format_batches(batches).map_err(|e| err(&e))?;
            writeln!(out, "{table}").map_err(|e| err(&e))?;
        }
        PrintFormat::Csv => {
            let mut w = regatta::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
        }
        PrintFormat::Json => {
            let mut w = regatta::arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.finish().map_err(|e| err(&e))?;
        }
    }
    Ok(())
}

/// Writes a stream of batches to `out` as they arrive: CSV and JSON rows go
/// out batch by batch (memory stays flat however many rows come); a table
/// needs every row to size its columns, so it gathers them first.
pub async fn write_stream(
    out: &mut dyn Write,
    mut rows: regatta::ResultStream,
    format: PrintFormat,
) -> Result<()> {
    use futures::StreamExt;
    let err = |e: &dyn std::fmt::Display| CliError::Output(e.to_string());
    match format {
        PrintFormat::Table => {
            let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(rows).await?;
            write_batches(out, &batches, format)
        }
        PrintFormat::Csv => {
            let mut header = true;
            while let Some(batch) = rows.next().await {
                let batch = batch?;
                let mut w = regatta::arrow::csv::WriterBuilder::new()
                    .with_header(header)
                    .build(&mut *out);
                w.write(&batch).map_err(|e| err(&e))?;
                header = false;
            }
            out.flush().map_err(|e| err(&e))
        }
        PrintFormat::Json => {
            while let Some(batch) = rows.next().await {
                let batch = batch?;
                let mut w = regatta::arrow::json::LineDelimitedWriter::new(&mut *out);
                w.write(&batch).map_err(|e| err(&e))?;
                w.finish().map_err(|e| err(&e))?;
            }
            out.flush().map_err(|e| err(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regatta::arrow::array::{Int64Array, StringArray};
    use regatta::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["a", "b,c"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn csv_and_json_render_every_row() {
        let mut csv = Vec::new();
        write_batches(&mut csv, &[batch()], PrintFormat::Csv).unwrap();
        assert_eq!(String::from_utf8(csv).unwrap(), "id,name\n1,a\n2,\"b,c\"\n");
        let mut json = Vec::new();
        write_batches(&mut json, &[batch()], PrintFormat::Json).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"b,c\"}\n"
        );
    }
}
