//! Distributed writes of Parquet, CSV and JSON to an object store: each task
//! uploads its part under a hidden staging prefix inside the destination
//! (`dest/_regatta-staging-<job>/`, which readers skip), and the commit copies
//! the winning parts to their published names, removes what overwrite replaces,
//! writes `_SUCCESS` last and drops the staging prefix. An object store has no
//! atomic rename: the output is whole once `_SUCCESS` is there. Like the local
//! commit it is idempotent, so a new leader can run it again.

use datafusion::physical_plan::SendableRecordBatchStream;

use super::sinks::{FileFormat, WriteMode, SUCCESS_MARKER};
use super::staged::{published_part_name, tag_slug, write_part, StagedPart};
use crate::storage::{remote, ObjectUrl};
use crate::{EngineError, Result};

/// Where job `tag` stages its parts of `dest`.
pub fn staging_prefix(dest: &ObjectUrl, tag: &str) -> ObjectUrl {
    dest.join(&format!("_regatta-staging-{}", tag_slug(tag)))
}

/// Writes one task attempt's part to a local scratch file and uploads it to the
/// staging prefix. Returns the rows; no rows upload nothing.
pub async fn stage_part(
    stream: SendableRecordBatchStream,
    dest: &ObjectUrl,
    tag: &str,
    name: &str,
    format: FileFormat,
) -> Result<u64> {
    let scratch =
        std::env::temp_dir().join(format!("regatta-part-{}", regatta_common::random_hex_128()));
    let result = async {
        let rows = write_part(stream, &scratch, name, format).await?;
        if rows > 0 {
            remote::upload_file(&scratch.join(name), &staging_prefix(dest, tag).join(name)).await?;
        }
        Ok(rows)
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// True when `dest` holds objects other than staging prefixes.
async fn has_output(dest: &ObjectUrl) -> Result<bool> {
    let prefix = dest.key.trim_end_matches('/');
    Ok(remote::list_keys(dest).await?.iter().any(|k| {
        let rel = k.strip_prefix(prefix).unwrap_or(k).trim_start_matches('/');
        !rel.starts_with("_regatta-staging-")
    }))
}

/// Checks, before a job starts, that `dest` may be written in `mode`.
pub async fn check_destination(dest: &ObjectUrl, mode: WriteMode) -> Result<()> {
    if mode == WriteMode::Create && has_output(dest).await? {
        return Err(EngineError::InvalidArgument(format!(
            "{dest} already holds objects; write with mode append or overwrite"
        )));
    }
    Ok(())
}

/// Publishes the `parts` job `tag` staged for `dest` in `mode`.
pub async fn publish_parts(
    dest: &ObjectUrl,
    format: FileFormat,
    mode: WriteMode,
    tag: &str,
    parts: &[StagedPart],
) -> Result<()> {
    let staging = staging_prefix(dest, tag);
    let staged: std::collections::HashSet<String> =
        remote::list_keys(&staging).await?.into_iter().collect();
    if staged.is_empty() && remote::exists(&dest.join(SUCCESS_MARKER)).await? {
        return Ok(()); // committed before
    }
    let mut published = std::collections::HashSet::new();
    let mut keep = Vec::new();
    for p in parts {
        let to = dest.join(&published_part_name(p.partition, tag, format)?);
        let from = staging.join(&p.file);
        if staged.contains(&from.key) {
            remote::copy(&from, &to).await?;
        }
        published.insert(to.key.clone());
        keep.push(to);
    }
    let prefix = dest.key.trim_end_matches('/').to_string();
    let existing = remote::list_keys(dest).await?;
    let others: Vec<&String> = existing
        .iter()
        .filter(|k| !published.contains(*k))
        .filter(|k| {
            let rel = k.strip_prefix(&prefix).unwrap_or(k).trim_start_matches('/');
            !rel.starts_with("_regatta-staging-") && rel != SUCCESS_MARKER
        })
        .collect();
    match mode {
        WriteMode::Overwrite => {
            for k in others {
                remote::delete_object(&dest.with_key(k.clone())).await?;
            }
        }
        WriteMode::Create if !others.is_empty() => {
            return Err(EngineError::InvalidArgument(format!(
                "{dest} got other objects while the job ran; its parts are kept under {staging}"
            )));
        }
        _ => {}
    }
    let marker = std::env::temp_dir().join(format!(
        "regatta-success-{}",
        regatta_common::random_hex_128()
    ));
    std::fs::write(&marker, b"").map_err(|source| EngineError::Io {
        path: marker.display().to_string(),
        source,
    })?;
    let uploaded = remote::upload_file(&marker, &dest.join(SUCCESS_MARKER)).await;
    let _ = std::fs::remove_file(&marker);
    uploaded?;
    remote::delete_prefix(&staging).await
}

/// Copies one finished task's part of job `tag` to its published name while
/// the job still runs (a resumable job); the staging prefix stays for the
/// others. Each object appears whole, so a reader sees the part or not.
pub async fn publish_one_part(
    dest: &ObjectUrl,
    format: FileFormat,
    tag: &str,
    part: &StagedPart,
) -> Result<()> {
    let to = dest.join(&published_part_name(part.partition, tag, format)?);
    if remote::exists(&to).await? {
        return Ok(());
    }
    let from = staging_prefix(dest, tag).join(&part.file);
    remote::copy(&from, &to).await
}

/// Removes what job `tag` staged for `dest` (a failed or cancelled job).
pub async fn discard_staged(dest: &ObjectUrl, tag: &str) -> Result<()> {
    remote::delete_prefix(&staging_prefix(dest, tag)).await
}
