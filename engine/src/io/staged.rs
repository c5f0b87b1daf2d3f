//! Distributed writes of Parquet, CSV and JSON: each task writes its own part
//! file into a staging directory beside the destination, and one commit
//! publishes the parts of the winning attempts. Readers never see a half-written
//! output; parts of failed or superseded attempts are never published.
//!
//! The commit is idempotent: each published part has a name fixed by the job
//! and partition, and every step skips what an earlier (interrupted) commit of
//! the same job already did, so a new leader can simply run it again.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use super::dir_append::{append_parts, NewPart};
use super::paths::local_path;
use super::sinks::{FileFormat, WriteMode};
use super::staged_remote;
use crate::error::io_err;
use crate::storage::{self, ObjectUrl};
use crate::{EngineError, Result};

fn pq(e: datafusion::parquet::errors::ParquetError) -> EngineError {
    EngineError::DataFusion(e.into())
}

/// A job tag (`cluster/job-7`) as a file-name fragment.
pub fn tag_slug(tag: &str) -> String {
    tag.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn sibling(dest: &Path, what: &str, tag: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    dest.with_file_name(format!(".{name}.regatta-{what}-{}", tag_slug(tag)))
}

/// Where the tasks of job `tag` stage their parts of `dest`.
pub fn staging_dir(dest: &str, tag: &str) -> Result<PathBuf> {
    Ok(sibling(&local_path(dest)?, "staging", tag))
}

fn extension(format: FileFormat) -> Result<&'static str> {
    match format {
        FileFormat::Parquet => Ok("parquet"),
        FileFormat::Csv => Ok("csv"),
        FileFormat::Json => Ok("json"),
        FileFormat::Lance => Err(EngineError::InvalidArgument(
            "Lance datasets are written as fragments, not part files".into(),
        )),
    }
}

/// The staged file of one task attempt: attempts never share a file, so a
/// straggler cannot clobber the attempt that won.
pub fn staged_part_name(partition: u32, attempt: u32, format: FileFormat) -> Result<String> {
    Ok(format!(
        "part-{partition:05}-a{attempt}.{}",
        extension(format)?
    ))
}

/// The name a part is published under: fixed by job and partition.
pub(crate) fn published_part_name(partition: u32, tag: &str, format: FileFormat) -> Result<String> {
    Ok(format!(
        "part-{partition:05}-{}.{}",
        tag_slug(tag),
        extension(format)?
    ))
}

/// Checks, before a job starts, that `dest` may be written in `mode`.
pub fn check_destination(dest: &str, format: FileFormat, mode: WriteMode) -> Result<()> {
    let path = local_path(dest)?;
    extension(format)?;
    if path.is_file() {
        return Err(EngineError::InvalidArgument(format!(
            "{} is a file; a cluster job writes a directory of part files",
            path.display()
        )));
    }
    let nonempty = std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_some());
    if mode == WriteMode::Create && nonempty {
        return Err(EngineError::InvalidArgument(format!(
            "{} already exists and is not empty; write with mode append or overwrite",
            path.display()
        )));
    }
    Ok(())
}

/// One part file being written.
enum PartWriter {
    Parquet(ArrowWriter<File>),
    Csv(Box<datafusion::arrow::csv::Writer<BufWriter<File>>>),
    Json(datafusion::arrow::json::LineDelimitedWriter<BufWriter<File>>),
}

impl PartWriter {
    fn create(path: &Path, format: FileFormat, batch: &RecordBatch) -> Result<Self> {
        let file = File::create(path).map_err(io_err(path))?;
        Ok(match format {
            FileFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                Self::Parquet(ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(pq)?)
            }
            FileFormat::Csv => Self::Csv(Box::new(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(BufWriter::new(file)),
            )),
            FileFormat::Json => Self::Json(datafusion::arrow::json::LineDelimitedWriter::new(
                BufWriter::new(file),
            )),
            FileFormat::Lance => {
                return Err(EngineError::InvalidArgument(
                    "Lance datasets are written as fragments, not part files".into(),
                ))
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Self::Parquet(w) => w.write(batch).map_err(pq)?,
            Self::Csv(w) => w.write(batch)?,
            Self::Json(w) => w.write(batch)?,
        }
        Ok(())
    }

    fn finish(self, path: &Path) -> Result<()> {
        let file = match self {
            Self::Parquet(w) => w.into_inner().map_err(pq)?,
            Self::Csv(w) => w.into_inner().into_inner().map_err(|e| EngineError::Io {
                path: path.display().to_string(),
                source: e.into_error(),
            })?,
            Self::Json(mut w) => {
                w.finish()?;
                w.into_inner().into_inner().map_err(|e| EngineError::Io {
                    path: path.display().to_string(),
                    source: e.into_error(),
                })?
            }
        };
        file.sync_all().map_err(io_err(path))
    }
}

/// Writes `stream` to the staged part `name` under `staging`, batch by batch,
/// under a temporary name renamed into place at the end, so a staged part is
/// whole or absent. Returns the rows written; no rows write no file.
pub async fn write_part(
    mut stream: SendableRecordBatchStream,
    staging: &Path,
    name: &str,
    format: FileFormat,
) -> Result<u64> {
    std::fs::create_dir_all(staging).map_err(io_err(staging))?;
    let path = staging.join(name);
    let tmp = staging.join(format!("{name}.tmp"));
    let mut writer: Option<PartWriter> = None;
    let mut rows = 0u64;
    let written: Result<()> = async {
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            if writer.is_none() {
                writer = Some(PartWriter::create(&tmp, format, &batch)?);
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch)?;
            }
            rows += batch.num_rows() as u64;
        }
        Ok(())
    }
    .await;
    if let Err(e) = written {
        drop(writer);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(w) = writer {
        w.finish(&tmp)?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    }
    Ok(rows)
}

/// One winning task's staged part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedPart {
    pub partition: u32,
    /// Its file name under the staging directory.
    pub file: String,
}

/// Publishes the `parts` job `tag` staged for `dest`, in `mode`, and removes the
/// staging directory with whatever else is in it (failed attempts' files). Safe
/// to run again after an interruption: it finishes what is left.
pub fn publish_parts(
    dest: &str,
    format: FileFormat,
    mode: WriteMode,
    tag: &str,
    parts: &[StagedPart],
) -> Result<()> {
    let dest = local_path(dest)?;
    let staging = sibling(&dest, "staging", tag);
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    match mode {
        WriteMode::Append => {
            // All the job's parts appear in one step (see dir_append).
            let mut new_parts = Vec::with_capacity(parts.len());
            for p in parts {
                new_parts.push(NewPart {
                    staged: staging.join(&p.file),
                    name: published_part_name(p.partition, tag, format)?,
                });
            }
            append_parts(&dest, &sibling(&dest, "publish", tag), &new_parts)?;
        }
        WriteMode::Create | WriteMode::Overwrite => {
            // The parts gather in a directory beside `dest` that becomes `dest` in
            // one rename: readers see the old output or the whole new one.
            let publish = sibling(&dest, "publish", tag);
            let old = sibling(&dest, "old", tag);
            if !publish.exists() && published_before(&dest, &staging, tag, format, parts)? {
                // A rerun (a new leader, a lost acknowledgement): the output is
                // this job's already. A straggling attempt may have recreated
                // the staging directory; it must not be published over it.
                for dir in [&staging, &old] {
                    if dir.exists() {
                        std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
                    }
                }
                return Ok(());
            }
            std::fs::create_dir_all(&publish).map_err(io_err(&publish))?;
            for p in parts {
                let from = staging.join(&p.file);
                let to = publish.join(published_part_name(p.partition, tag, format)?);
                if from.exists() {
                    std::fs::rename(&from, &to).map_err(io_err(&to))?;
                } else if !to.exists() {
                    return Err(EngineError::InvalidArgument(format!(
                        "staged part {} is gone and was never published to {}",
                        from.display(),
                        dest.display()
                    )));
                }
            }
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
            }
            if dest.exists() {
                let empty = std::fs::read_dir(&dest).is_ok_and(|mut d| d.next().is_none());
                if mode == WriteMode::Create && !empty {
                    return Err(EngineError::InvalidArgument(format!(
                        "{} appeared while the job ran; its parts are kept in {}",
                        dest.display(),
                        publish.display()
                    )));
                }
                std::fs::rename(&dest, &old).map_err(io_err(&dest))?;
            }
            std::fs::rename(&publish, &dest).map_err(io_err(&dest))?;
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
            }
        }
    }
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    Ok(())
}

/// Appends one finished task's part of job `tag` to the directory `dest`
/// while the job still runs (a resumable job), leaving the other parts
/// staged. Safe to run again: a part already published is left as it is.
pub fn publish_one_part(
    dest: &str,
    format: FileFormat,
    tag: &str,
    part: &StagedPart,
) -> Result<()> {
    let dest = local_path(dest)?;
    let name = published_part_name(part.partition, tag, format)?;
    if dest.join(&name).exists() {
        return Ok(());
    }
    let staging = sibling(&dest, "staging", tag);
    let work = sibling(&dest, "publish", &format!("{tag}-p{}", part.partition));
    append_parts(
        &dest,
        &work,
        &[NewPart {
            staged: staging.join(&part.file),
            name,
        }],
    )
}

/// True when job `tag`'s commit of `dest` finished before: every part is
/// published under its job-unique name (or, for a job with no rows, nothing is
/// staged any more).
fn published_before(
    dest: &Path,
    staging: &Path,
    tag: &str,
    format: FileFormat,
    parts: &[StagedPart],
) -> Result<bool> {
    if parts.is_empty() {
        return Ok(!staging.exists());
    }
    for p in parts {
        if !dest
            .join(published_part_name(p.partition, tag, format)?)
            .exists()
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes what job `tag` staged for `dest` (a failed or cancelled job).
pub fn discard_staged(dest: &str, tag: &str) -> Result<()> {
    let dest = local_path(dest)?;
    for what in ["staging", "publish"] {
        let dir = sibling(&dest, what, tag);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
    }
    Ok(())
}

/// Stages one task attempt's part of `dest`: locally beside the destination, or
/// under a staging prefix in its object store. Returns the rows written.
pub async fn stage_part(
    stream: SendableRecordBatchStream,
    dest: &str,
    tag: &str,
    name: &str,
    format: FileFormat,
) -> Result<u64> {
    if storage::is_object_url(dest) {
        let url = ObjectUrl::parse(dest)?;
        return staged_remote::stage_part(stream, &url, tag, name, format).await;
    }
    write_part(stream, &staging_dir(dest, tag)?, name, format).await
}

/// Publishes what job `tag` staged for `dest` (a path or an object-store URL).
pub async fn publish(
    dest: &str,
    format: FileFormat,
    mode: WriteMode,
    tag: &str,
    parts: &[StagedPart],
) -> Result<()> {
    if storage::is_object_url(dest) {
        let url = ObjectUrl::parse(dest)?;
        return staged_remote::publish_parts(&url, format, mode, tag, parts).await;
    }
    publish_parts(dest, format, mode, tag, parts)
}

/// Publishes one finished task's part of job `tag` (a resumable job's
/// commit as it goes; see [`publish_one_part`]).
pub async fn publish_part(
    dest: &str,
    format: FileFormat,
    tag: &str,
    part: &StagedPart,
) -> Result<()> {
    if storage::is_object_url(dest) {
        let url = ObjectUrl::parse(dest)?;
        return staged_remote::publish_one_part(&url, format, tag, part).await;
    }
    publish_one_part(dest, format, tag, part)
}

/// Removes what job `tag` staged for `dest`.
pub async fn discard(dest: &str, tag: &str) -> Result<()> {
    if storage::is_object_url(dest) {
        return staged_remote::discard_staged(&ObjectUrl::parse(dest)?, tag).await;
    }
    discard_staged(dest, tag)
}

/// Checks, before a job starts, that `dest` may be written in `mode`.
pub async fn check_output(dest: &str, format: FileFormat, mode: WriteMode) -> Result<()> {
    if storage::is_object_url(dest) {
        extension(format)?;
        return staged_remote::check_destination(&ObjectUrl::parse(dest)?, mode).await;
    }
    check_destination(dest, format, mode)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;

    fn stream(values: Vec<i64>) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))]).unwrap();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        ))
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn only_winning_parts_are_published_once_and_a_rerun_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out").to_string_lossy().to_string();
        let tag = "c/job-3";
        let staging = staging_dir(&dest, tag).unwrap();
        let f = FileFormat::Csv;
        // Partition 0 ran twice (attempt 1 lost), partition 1 once.
        for (p, a, v) in [(0, 1, vec![1, 2]), (0, 2, vec![1, 2]), (1, 1, vec![3])] {
            let name = staged_part_name(p, a, f).unwrap();
            let rows = write_part(stream(v.clone()), &staging, &name, f)
                .await
                .unwrap();
            assert_eq!(rows, v.len() as u64);
        }
        assert!(
            !Path::new(&dest).exists(),
            "nothing visible before the commit"
        );
        let parts = [
            StagedPart {
                partition: 0,
                file: staged_part_name(0, 2, f).unwrap(),
            },
            StagedPart {
                partition: 1,
                file: staged_part_name(1, 1, f).unwrap(),
            },
        ];
        publish_parts(&dest, f, WriteMode::Create, tag, &parts).unwrap();
        assert_eq!(
            files(Path::new(&dest)),
            ["part-00000-c_job_3.csv", "part-00001-c_job_3.csv"]
        );
        assert!(!staging.exists(), "the losing attempt's file is removed");
        // A new leader that commits again finds it done.
        publish_parts(&dest, f, WriteMode::Create, tag, &parts).unwrap();
        assert_eq!(files(Path::new(&dest)).len(), 2);
        let text =
            std::fs::read_to_string(Path::new(&dest).join("part-00000-c_job_3.csv")).unwrap();
        assert_eq!(text, "v\n1\n2\n");
        // Create refuses a non-empty destination up front.
        assert!(check_destination(&dest, f, WriteMode::Create).is_err());
        assert!(check_destination(&dest, f, WriteMode::Append).is_ok());
    }

    async fn stage(dest: &str, tag: &str, values: &[Vec<i64>]) -> Vec<StagedPart> {
        let staging = staging_dir(dest, tag).unwrap();
        let mut parts = Vec::new();
        for (p, v) in values.iter().enumerate() {
            let file = staged_part_name(p as u32, 1, FileFormat::Csv).unwrap();
            write_part(stream(v.clone()), &staging, &file, FileFormat::Csv)
                .await
                .unwrap();
            parts.push(StagedPart {
                partition: p as u32,
                file,
            });
        }
        parts
    }

    fn values(dir: &Path) -> Vec<i64> {
        let mut v: Vec<i64> = files(dir)
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(dir.join(f))
                    .unwrap()
                    .lines()
                    .skip(1)
                    .map(|l| l.parse::<i64>().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn an_overwrite_committed_twice_with_a_straggler_in_between_keeps_its_output() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out").to_string_lossy().to_string();
        let f = FileFormat::Csv;
        let first = stage(&dest, "req-a", &[vec![1], vec![2]]).await;
        publish_parts(&dest, f, WriteMode::Create, "req-a", &first).unwrap();
        let parts = stage(&dest, "req-b", &[vec![7], vec![8, 9]]).await;
        publish_parts(&dest, f, WriteMode::Overwrite, "req-b", &parts).unwrap();
        assert_eq!(values(Path::new(&dest)), [7, 8, 9]);
        // A losing attempt that finishes after the commit recreates the
        // staging directory; the commit, run again by a new leader, must not
        // publish that directory over the output.
        let staging = staging_dir(&dest, "req-b").unwrap();
        let late = staged_part_name(1, 2, f).unwrap();
        write_part(stream(vec![8, 9]), &staging, &late, f)
            .await
            .unwrap();
        publish_parts(&dest, f, WriteMode::Overwrite, "req-b", &parts).unwrap();
        assert_eq!(values(Path::new(&dest)), [7, 8, 9], "the output was lost");
        assert!(!staging.exists(), "the straggler's file is removed");
    }

    #[tokio::test]
    async fn appends_of_two_submissions_keep_both_and_each_commit_runs_twice_safely() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out").to_string_lossy().to_string();
        let f = FileFormat::Csv;
        for (tag, v) in [("req-a", 1), ("req-b", 2), ("req-c", 3)] {
            let parts = stage(&dest, tag, &[vec![v], vec![v * 10]]).await;
            publish_parts(&dest, f, WriteMode::Append, tag, &parts).unwrap();
            publish_parts(&dest, f, WriteMode::Append, tag, &parts).unwrap();
        }
        assert_eq!(values(Path::new(&dest)), [1, 2, 3, 10, 20, 30]);
    }
}
