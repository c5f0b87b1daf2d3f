//! A job's result: kept as Arrow IPC in the replicated state, or committed to the
//! job's output (Parquet or Lance) exactly once.
//!
//! The output is tagged with the job (`regatta.job` in its schema metadata) and
//! created only if absent: a new leader that finds it already there with its
//! job's tag knows its predecessor committed it and does not write it again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use regatta_engine::io::{FileFormat, WriteMode};

use crate::{JobOutput, Result, SchedulerError};

/// The schema metadata key naming the job that wrote an output.
pub const JOB_TAG: &str = "regatta.job";

fn plan_err(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Plan(e.to_string())
}

/// `batches` as one Arrow IPC stream (empty bytes for no batches).
pub fn encode_ipc(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &first.schema()).map_err(plan_err)?;
    for b in batches {
        w.write(b).map_err(plan_err)?;
    }
    w.finish().map_err(plan_err)?;
    drop(w);
    Ok(buf)
}

/// The format of `out`: as named, else guessed from its path.
pub fn output_format(out: &JobOutput) -> Result<FileFormat> {
    let format = if out.format.is_empty() {
        FileFormat::from_path(&out.path).unwrap_or(FileFormat::Parquet)
    } else {
        FileFormat::parse(&out.format).map_err(plan_err)?
    };
    match format {
        FileFormat::Parquet | FileFormat::Lance => Ok(format),
        other => Err(SchedulerError::Plan(format!(
            "output {}: a job writes Parquet or Lance, not {other:?}",
            out.path
        ))),
    }
}

/// The job tag of the output at `path`, if it has one.
async fn tag_of(path: &str, format: FileFormat) -> Result<Option<String>> {
    let meta: HashMap<String, String> = match format {
        FileFormat::Lance => regatta_engine::io::lance::schema_metadata(path)
            .await
            .map_err(plan_err)?,
        _ => {
            let file = std::fs::File::open(path).map_err(|e| plan_err(format!("{path}: {e}")))?;
            ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| plan_err(format!("{path}: {e}")))?
                .schema()
                .metadata()
                .clone()
        }
    };
    Ok(meta.get(JOB_TAG).cloned())
}

/// Commits `batches` to `out` once: writes it tagged with `tag` if it does not
/// exist; if it exists with the same tag, an earlier leader already did.
pub async fn write_output(out: &JobOutput, tag: &str, batches: Vec<RecordBatch>) -> Result<()> {
    let format = output_format(out)?;
    let path = out.path.as_str();
    if Path::new(path).exists() {
        return already_written(path, format, tag).await;
    }
    let Some(first) = batches.first() else {
        log::warn!("{tag}: no rows, so nothing is written to {path}");
        return Ok(());
    };
    let mut metadata = first.schema().metadata().clone();
    metadata.insert(JOB_TAG.to_string(), tag.to_string());
    let schema = Arc::new(Schema::new_with_metadata(
        first.schema().fields().clone(),
        metadata,
    ));
    let batches = batches
        .into_iter()
        .map(|b| b.with_schema(schema.clone()).map_err(plan_err))
        .collect::<Result<Vec<_>>>()?;
    let written = match format {
        FileFormat::Lance => {
            let stream = RecordBatchStreamAdapter::new(
                schema.clone(),
                futures::stream::iter(batches.into_iter().map(Ok)),
            );
            regatta_engine::io::lance::write_stream(Box::pin(stream), path, WriteMode::Create)
                .await
                .map(|_| ())
                .map_err(plan_err)
        }
        _ => write_parquet_once(path, tag, &schema, &batches),
    };
    match written {
        Ok(()) => {
            log::info!("{tag}: result committed to {path}");
            Ok(())
        }
        // Another writer won the race to create it: fine if it was this job.
        Err(e) if Path::new(path).exists() => {
            already_written(path, format, tag).await.map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

async fn already_written(path: &str, format: FileFormat, tag: &str) -> Result<()> {
    match tag_of(path, format).await? {
        Some(t) if t == tag => {
            log::info!("{tag}: {path} was already committed; not writing it again");
            Ok(())
        }
        other => Err(SchedulerError::Plan(format!(
            "output {path} already exists ({}); the job writes only to a new path",
            other.map_or_else(
                || "not written by regatta".into(),
                |t| format!("written by {t}")
            )
        ))),
    }
}

/// Writes a temporary file beside `path`, then links it into place, which fails
/// if `path` appeared meanwhile: the file appears whole, once.
fn write_parquet_once(
    path: &str,
    tag: &str,
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
) -> Result<()> {
    let target = Path::new(path);
    let tmp = target.with_file_name(format!(
        ".{}.{}.tmp",
        target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        tag.replace(['/', ' '], "_")
    ));
    let io = |e: std::io::Error| plan_err(format!("writing {path}: {e}"));
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = ArrowWriter::try_new(file, schema.clone(), None).map_err(plan_err)?;
    for b in batches {
        w.write(b).map_err(plan_err)?;
    }
    let file = w.into_inner().map_err(plan_err)?;
    file.sync_all().map_err(io)?;
    let linked = std::fs::hard_link(&tmp, target);
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(io)
}
