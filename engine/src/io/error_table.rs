//! Writing a job's recorded row failures (`on_error = 'record'`) as Parquet
//! files under the `--errors` URL, one file per query or per task, so tasks
//! never write the same object and a reader sees the directory as one table.

use std::path::Path;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

use crate::error::io_err;
use crate::row_errors::{error_table_batch, RecordedRow};
use crate::storage::{self, ObjectUrl};
use crate::Result;

/// Writes `rows` as `<dest>/<name>.parquet` (local directory or object-store
/// prefix). Nothing is written for no rows. Returns the file's URL or path.
pub async fn write_error_rows(
    dest: &str,
    name: &str,
    rows: &[RecordedRow],
    job: &str,
    attempt: u32,
) -> Result<Option<String>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let batch = error_table_batch(rows, job, attempt)?;
    let file = format!("{name}.parquet");
    if storage::is_object_url(dest) {
        let url = ObjectUrl::parse(dest)?.join(&file);
        let tmp = tempfile::Builder::new()
            .prefix(".regatta-errors-")
            .tempfile()
            .map_err(io_err(Path::new("temporary file")))?;
        write_parquet(tmp.path(), &batch)?;
        storage::remote::upload_file(tmp.path(), &url).await?;
        return Ok(Some(url.to_string()));
    }
    let dir = super::local_path(dest)?;
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join(&file);
    // Whole or absent: written beside, then renamed into place.
    let tmp = dir.join(format!(".{file}.tmp"));
    write_parquet(&tmp, &batch)?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(Some(path.display().to_string()))
}

/// A run's recorded rows kept: written as `<dest>/<name>.parquet` when the job
/// has an errors URL, else logged (counted, not kept).
pub async fn keep_recorded(
    dest: Option<&str>,
    name: &str,
    rows: &[RecordedRow],
    job: &str,
    attempt: u32,
) -> Result<()> {
    match dest {
        Some(dest) => {
            write_error_rows(dest, name, rows, job, attempt).await?;
        }
        None => {
            for r in rows {
                log::warn!(
                    "{name}: {} failed for {}: {} (set an errors URL to keep these rows)",
                    r.function,
                    r.key.as_deref().unwrap_or("a row"),
                    r.message
                );
            }
        }
    }
    Ok(())
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let parquet_err = |e| io_err(path)(std::io::Error::other(e));
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).map_err(parquet_err)?;
    w.write(batch).map_err(parquet_err)?;
    w.close().map_err(parquet_err)?;
    Ok(())
}
