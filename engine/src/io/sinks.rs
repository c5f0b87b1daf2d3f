//! Writing DataFrames to files, atomically per directory.

use std::path::{Path, PathBuf};

use datafusion::common::config::{CsvOptions, TableParquetOptions};
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};

use super::dir_append::{append_parts, NewPart};
use super::paths::local_path;
use crate::error::io_err;
use crate::storage::{self, remote, ObjectUrl};
use crate::{EngineError, Result};

/// The marker written last into an output directory on an object store: the
/// output is whole once it is there (an object store has no atomic rename).
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// Writes to an object store: the files are written to a local scratch
/// directory first, then uploaded, then (for a directory) `_SUCCESS`. Overwrite
/// removes the old objects only once the new ones are all uploaded; a failed
/// upload removes what it uploaded.
async fn write_to_store(
    df: DataFrame,
    dest: &str,
    format: FileFormat,
    mode: WriteMode,
) -> Result<u64> {
    let url = ObjectUrl::parse(dest)?;
    let single_file = url.key.to_ascii_lowercase().ends_with(format.extension());
    let exists = remote::exists(&url).await?;
    if mode == WriteMode::Create && exists {
        return Err(EngineError::InvalidArgument(format!(
            "{url} already exists; write with mode append or overwrite"
        )));
    }
    if mode == WriteMode::Append && single_file && exists {
        return Err(EngineError::InvalidArgument(format!(
            "cannot append to the single object {url}; write to a prefix instead"
        )));
    }
    let old: Vec<String> = if mode == WriteMode::Overwrite && exists {
        let mut keys = remote::list_keys(&url).await?;
        if single_file {
            keys.push(url.key.clone());
        }
        keys
    } else {
        Vec::new()
    };
    let scratch = std::env::temp_dir().join(format!(
        "regatta-upload-{}",
        regatta_common::random_hex_128()
    ));
    let local = scratch.join(if single_file { url.file_name() } else { "out" });
    let written = async {
        let rows = write_local(df, &local.to_string_lossy(), format, WriteMode::Create).await?;
        let mut uploaded: Vec<ObjectUrl> = Vec::new();
        let uploads = async {
            if single_file {
                remote::upload_file(&local, &url).await?;
                uploaded.push(url.clone());
            } else {
                let mut files = Vec::new();
                collect_files(&local, &mut files)?;
                for f in files {
                    let rel = f
                        .strip_prefix(&local)
                        .map(|r| r.to_string_lossy().to_string())
                        .unwrap_or_default();
                    let to = url.join(&rel);
                    remote::upload_file(&f, &to).await?;
                    uploaded.push(to);
                }
            }
            Ok::<_, EngineError>(())
        }
        .await;
        if let Err(e) = uploads {
            for u in &uploaded {
                let _ = remote::delete_object(u).await;
            }
            return Err(e);
        }
        let new: std::collections::HashSet<&str> =
            uploaded.iter().map(|u| u.key.as_str()).collect();
        for key in old.iter().filter(|k| !new.contains(k.as_str())) {
            remote::delete_object(&url.with_key(key.clone())).await?;
        }
        if !single_file {
            let marker = scratch.join(SUCCESS_MARKER);
            std::fs::write(&marker, b"").map_err(io_err(&marker))?;
            remote::upload_file(&marker, &url.join(SUCCESS_MARKER)).await?;
        }
        Ok(rows)
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    written
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let p = entry.map_err(io_err(dir))?.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    out.sort();
    Ok(())
}

// One type each across the system (defined in common, where the protocol's
// wire enums convert to them).
pub use regatta_common::{FileFormat, WriteMode};

fn is_nonempty(p: &Path) -> bool {
    if p.is_dir() {
        std::fs::read_dir(p)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    } else {
        p.exists()
    }
}

/// Writes `df` to `dest` as `format` (not Lance: see [`super::lance`]). A destination
/// ending in the format's extension is one file; anything else is a directory of files.
/// Returns the rows written.
pub async fn write(df: DataFrame, dest: &str, format: FileFormat, mode: WriteMode) -> Result<u64> {
    if storage::is_object_url(dest) {
        return write_to_store(df, dest, format, mode).await;
    }
    write_local(df, dest, format, mode).await
}

async fn write_local(
    df: DataFrame,
    dest: &str,
    format: FileFormat,
    mode: WriteMode,
) -> Result<u64> {
    let path = local_path(dest)?;
    let single_file = path
        .to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(format.extension());
    if mode == WriteMode::Create && is_nonempty(&path) {
        return Err(EngineError::InvalidArgument(format!(
            "{} already exists; write with mode append or overwrite",
            path.display()
        )));
    }
    if mode == WriteMode::Append && single_file && path.exists() {
        return Err(EngineError::InvalidArgument(format!(
            "cannot append to the single file {}; write to a directory instead",
            path.display()
        )));
    }
    // Every mode writes next to the destination first and moves the result in
    // once the query succeeded: a failed query (an error, a failure budget
    // passed) leaves no half output and loses nothing that was there.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let target = path.with_file_name(format!(
        ".{name}.regatta-tmp-{}-{}",
        std::process::id(),
        regatta_common::RequestId::generate()
    ));
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let target_str = target.to_string_lossy().to_string();
    let opts = DataFrameWriteOptions::new().with_single_file_output(single_file);
    let result = match format {
        FileFormat::Parquet => {
            let mut po = TableParquetOptions::default();
            po.global.compression = Some("snappy".into());
            df.write_parquet(&target_str, opts, Some(po)).await
        }
        FileFormat::Csv => {
            df.write_csv(
                &target_str,
                opts,
                Some(CsvOptions::default().with_has_header(true)),
            )
            .await
        }
        FileFormat::Json => df.write_json(&target_str, opts, None).await,
        FileFormat::Lance => {
            return Err(EngineError::InvalidArgument(
                "Lance datasets are written with write_lance".into(),
            ))
        }
    };
    let batches = match result {
        Ok(b) => b,
        Err(e) => {
            if target.exists() {
                let _ = remove_path(&target);
            }
            return Err(e.into());
        }
    };
    let published = publish_local(&target, &path, mode);
    if published.is_err() && target.exists() {
        let _ = remove_path(&target);
    }
    published?;
    Ok(count_rows(&batches))
}

/// Moves a finished write from `staged` to `path`: in one rename for create,
/// replacing what was there for overwrite, file by file into the directory
/// for append.
fn publish_local(staged: &Path, path: &Path, mode: WriteMode) -> Result<()> {
    if !staged.exists() {
        // No rows and no file written: nothing to publish.
        return Ok(());
    }
    match mode {
        WriteMode::Append if path.is_dir() => {
            // All the new files at once, as a cluster job's commit appends.
            let mut parts = Vec::new();
            for entry in std::fs::read_dir(staged).map_err(io_err(staged))? {
                let entry = entry.map_err(io_err(staged))?;
                parts.push(NewPart {
                    staged: entry.path(),
                    name: entry.file_name().to_string_lossy().to_string(),
                });
            }
            let mut work = staged.as_os_str().to_owned();
            work.push("-publish");
            append_parts(path, Path::new(&work), &parts)?;
            remove_path(staged)
        }
        WriteMode::Overwrite if path.exists() => {
            let old = path.with_file_name(format!(
                ".{}.regatta-old-{}",
                path.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                std::process::id()
            ));
            std::fs::rename(path, &old).map_err(io_err(path))?;
            std::fs::rename(staged, path).map_err(io_err(path))?;
            remove_path(&old)
        }
        _ => {
            // Create (checked empty above) or a first append: an empty
            // directory in the way goes first.
            if path.is_dir() {
                std::fs::remove_dir(path).map_err(io_err(path))?;
            }
            std::fs::rename(staged, path).map_err(io_err(path))
        }
    }
}

fn remove_path(p: &Path) -> Result<()> {
    if p.is_dir() {
        std::fs::remove_dir_all(p).map_err(io_err(p))
    } else {
        std::fs::remove_file(p).map_err(io_err(p))
    }
}

/// DataFusion's writers return one batch with a `count` column.
fn count_rows(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> u64 {
    use datafusion::arrow::array::{Array, UInt64Array};
    batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map(|a| (0..a.len()).map(|i| a.value(i)).sum::<u64>())
        })
        .sum()
}
