//! A write job's one commit. The last stage's tasks staged their rows on the
//! workers (part files, or uncommitted Lance fragments) and reported what they
//! staged; the leader publishes the winning attempts' parts once, tagged with the
//! job, so a new leader that finds the tag knows its predecessor committed and
//! does not commit again. No row passes through the driver.

use std::io::Cursor;

use datafusion::arrow::ipc::reader::StreamReader;
use regatta_engine::io::{lance, lance_staged, staged, FileFormat, WriteMode};

use crate::{JobOutput, Result, SchedulerError};

/// The transaction property (Lance) naming the job that committed an output.
pub const JOB_TAG: &str = lance::JOB_PROPERTY;

fn output_err(out: &JobOutput) -> impl Fn(regatta_engine::EngineError) -> SchedulerError + '_ {
    move |e| SchedulerError::Commit {
        path: out.path.clone(),
        message: e.to_string(),
    }
}

/// Commits what the last stage's tasks staged (`written`, per partition, from
/// their reports) to `out` under `tag`, exactly once. Returns the rows now in a
/// Lance dataset (None for part files, whose rows the tasks counted).
pub async fn commit_output(
    out: &JobOutput,
    tag: &str,
    written: &[(u32, String)],
) -> Result<Option<u64>> {
    let format = out.format;
    let schema = || {
        StreamReader::try_new(Cursor::new(out.schema_ipc.as_slice()), None)
            .map(|r| r.schema())
            .map_err(|e| SchedulerError::Commit {
                path: out.path.clone(),
                message: format!("schema: {e}"),
            })
    };
    let Some(mode) = out.mode.write_mode() else {
        // New columns: every fragment rewritten once, committed as one Merge.
        let fragments: Vec<String> = written.iter().map(|(_, w)| w.clone()).collect();
        let version = lance::commit_added_columns(&out.path, &fragments, schema()?.as_ref(), tag)
            .await
            .map_err(output_err(out))?;
        log::info!("{tag}: added columns to {} as version {version}", out.path);
        return Ok(None);
    };
    match format {
        FileFormat::Lance => {
            let schema = schema()?;
            let fragments: Vec<String> = written.iter().map(|(_, w)| w.clone()).collect();
            let version = lance::commit_fragments(&out.path, mode, &fragments, &schema, tag)
                .await
                .map_err(output_err(out))?;
            log::info!("{tag}: committed version {version} of {}", out.path);
            // The job's own rows, not the dataset's after an append.
            let rows = fragments_rows(&fragments);
            Ok(Some(rows))
        }
        _ => {
            let parts: Vec<staged::StagedPart> = written
                .iter()
                .filter(|(_, file)| !file.is_empty())
                .map(|(p, file)| staged::StagedPart {
                    partition: *p,
                    file: file.clone(),
                })
                .collect();
            staged::publish(&out.path, format, mode, tag, &parts)
                .await
                .map_err(output_err(out))?;
            log::info!("{tag}: published {} parts to {}", written.len(), out.path);
            Ok(None)
        }
    }
}

/// The tag one part of a resumable job is committed under: the job's tag and
/// the part's partition, so each part's commit is found again, not redone.
pub fn part_tag(tag: &str, partition: u32) -> String {
    format!("{tag}-p{partition}")
}

/// Commits one finished task's part of a resumable job while the job runs:
/// the part's Lance fragments as an append of their own, or its part file
/// moved into the directory. Safe to run again (a new leader, the job's end).
pub async fn commit_part(out: &JobOutput, tag: &str, partition: u32, written: &str) -> Result<()> {
    let format = out.format;
    match format {
        FileFormat::Lance => {
            if lance_staged::staged_rows(written) == 0 {
                return Ok(());
            }
            let schema = StreamReader::try_new(Cursor::new(out.schema_ipc.as_slice()), None)
                .map(|r| r.schema())
                .map_err(|e| SchedulerError::Commit {
                    path: out.path.clone(),
                    message: format!("schema: {e}"),
                })?;
            let part_tag = part_tag(tag, partition);
            let version = lance::commit_fragments(
                &out.path,
                WriteMode::Append,
                &[written.to_string()],
                &schema,
                &part_tag,
            )
            .await
            .map_err(output_err(out))?;
            log::info!("{part_tag}: committed version {version} of {}", out.path);
        }
        _ => {
            if written.is_empty() {
                return Ok(());
            }
            let part = staged::StagedPart {
                partition,
                file: written.to_string(),
            };
            staged::publish_part(&out.path, format, tag, &part)
                .await
                .map_err(output_err(out))?;
        }
    }
    Ok(())
}

/// Rows in the fragments the tasks reported.
fn fragments_rows(fragments: &[String]) -> u64 {
    fragments.iter().map(|f| lance_staged::staged_rows(f)).sum()
}

/// Removes what a failed or cancelled job staged for `out`: part files, or
/// Lance fragments written since `since` that no version references.
pub async fn discard_output(
    out: &JobOutput,
    tag: &str,
    since: std::time::SystemTime,
) -> Result<()> {
    match out.format {
        FileFormat::Lance => {
            // Every attempt's files are under the job's staging prefix. A
            // dataset this job was creating is the job's alone, so files a
            // commit moved into it and never committed go too; in any other
            // mode, files outside the staging prefix are left to their writers.
            lance_staged::discard_staging(&out.path, tag)
                .await
                .map_err(output_err(out))?;
            if out.mode.write_mode() == Some(WriteMode::Create) {
                lance::remove_unreferenced(&out.path, since)
                    .await
                    .map_err(output_err(out))?;
            }
        }
        _ => staged::discard(&out.path, tag)
            .await
            .map_err(output_err(out))?,
    }
    Ok(())
}
