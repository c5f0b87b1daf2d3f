//! Distributed Lance writes, staged: each task attempt writes its uncommitted
//! fragments under a staging prefix of its own inside the dataset
//! (`dest/_regatta-staging-<job>/p<partition>-a<attempt>/`, which Lance never
//! reads), and the commit moves the winning attempts' data files into `data/`
//! and commits them in one transaction. Files of killed, failed or superseded
//! attempts never reach `data/`, so they can be removed with the staging prefix
//! in any mode, without telling them apart from another writer's files.

use std::collections::HashMap;

use datafusion::physical_plan::SendableRecordBatchStream;
use lance::dataset::transaction::Operation;
use lance::dataset::{InsertBuilder, WriteMode as LanceMode};
use lance::table::format::Fragment;

use super::lance::{lance_err, Target};
use super::sinks::WriteMode;
use super::staged::tag_slug;
use crate::storage::remote;
use crate::{EngineError, Result};

/// What one task attempt staged: its fragments, whose data files lie under
/// `dir/data/` until the commit moves them into the dataset.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StagedFragments {
    /// The attempt's staging directory (a path or an object URL).
    pub dir: String,
    pub fragments: Vec<Fragment>,
}

impl StagedFragments {
    /// Rows in the staged fragments.
    pub fn rows(&self) -> u64 {
        self.fragments
            .iter()
            .map(|f| f.physical_rows.unwrap_or(0) as u64)
            .sum()
    }

    fn decode(uri: &str, json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| EngineError::Lance {
            uri: uri.to_string(),
            message: format!("a task's staged fragments do not decode: {e}"),
        })
    }
}

/// Rows in a task's report from [`stage_fragments`] (0 if it does not decode).
pub fn staged_rows(json: &str) -> u64 {
    serde_json::from_str::<StagedFragments>(json).map_or(0, |s| s.rows())
}

/// The prefix under `dest` where job `tag` stages its fragments.
pub fn staging_root(dest: &str, tag: &str) -> Result<String> {
    let target = Target::of(dest)?;
    Ok(format!(
        "{}/_regatta-staging-{}",
        target.uri.trim_end_matches('/'),
        tag_slug(tag)
    ))
}

/// Writes `stream` as uncommitted fragments for `dest` (one task attempt of a
/// distributed write) under the attempt's own staging prefix. In append mode
/// the files use the dataset's storage version and field ids, so the commit
/// can add them as they are. Returns the report for [`commit_staged`] as JSON,
/// and the rows written.
pub async fn stage_fragments(
    stream: SendableRecordBatchStream,
    dest: &str,
    mode: WriteMode,
    tag: &str,
    partition: u32,
    attempt: u32,
) -> Result<(String, u64)> {
    let target = Target::of(dest)?;
    let dir = format!("{}/p{partition:05}-a{attempt}", staging_root(dest, tag)?);
    let mut stream = futures::StreamExt::peekable(stream);
    // Lance refuses an empty write; a task with no rows stages no fragment.
    let staged = |fragments: Vec<Fragment>| StagedFragments {
        dir: dir.clone(),
        fragments,
    };
    if std::pin::Pin::new(&mut stream).peek().await.is_none() {
        return encode(&target.uri, &staged(Vec::new()));
    }
    let schema = stream.get_ref().schema();
    let existing = if target.is_dataset().await? {
        Some(target.open().await?)
    } else {
        None
    };
    let mut params = target.write_params(LanceMode::Create)?;
    if let Some(ds) = &existing {
        params.data_storage_version = Some(
            ds.manifest()
                .data_storage_format
                .lance_file_format()
                .to_selector(),
        );
    }
    let stream: SendableRecordBatchStream = super::lance::lance_layout(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream),
    ))?;
    let txn = InsertBuilder::new(dir.as_str())
        .with_params(&params)
        .execute_uncommitted_stream(stream)
        .await
        .map_err(lance_err(&dir))?;
    let (mut fragments, written_schema) = match txn.operation {
        Operation::Overwrite {
            fragments, schema, ..
        } => (fragments, schema),
        other => {
            return Err(EngineError::Lance {
                uri: dir,
                message: format!("an uncommitted write gave a {other} transaction"),
            })
        }
    };
    if let (WriteMode::Append, Some(ds)) = (mode, &existing) {
        renumber_fields(&target.uri, &mut fragments, &written_schema, ds.schema())?;
    }
    encode(&target.uri, &staged(fragments))
}

fn encode(uri: &str, staged: &StagedFragments) -> Result<(String, u64)> {
    let json = serde_json::to_string(staged).map_err(|e| EngineError::Lance {
        uri: uri.to_string(),
        message: format!("encoding fragments: {e}"),
    })?;
    Ok((json, staged.rows()))
}

/// Gives the data files of fragments written as a new dataset (`written`'s
/// field ids) the ids the same columns have in the dataset they are appended to.
fn renumber_fields(
    uri: &str,
    fragments: &mut [Fragment],
    written: &lance::datatypes::Schema,
    dataset: &lance::datatypes::Schema,
) -> Result<()> {
    let mut ids: HashMap<i32, i32> = HashMap::new();
    for field in written.fields_pre_order() {
        let path = written.field_path(field.id).map_err(lance_err(uri))?;
        let target = dataset
            .resolve(&path)
            .and_then(|chain| chain.last().map(|f| f.id))
            .ok_or_else(|| EngineError::Lance {
                uri: uri.to_string(),
                message: format!("column {path} is not in the dataset appended to"),
            })?;
        ids.insert(field.id, target);
    }
    for file in fragments.iter_mut().flat_map(|f| f.files.iter_mut()) {
        let fields: Vec<i32> = file
            .fields
            .iter()
            .map(|id| ids.get(id).copied().unwrap_or(*id))
            .collect();
        file.fields = fields.into();
    }
    Ok(())
}

/// Moves the data files of every task's report (`reports`, JSON from
/// [`stage_fragments`]) from their staging prefixes into `dest`'s `data/`.
/// Safe to run again: a file already moved is skipped. Returns the fragments
/// and the paths now in `data/`.
pub(crate) async fn adopt(dest: &str, reports: &[String]) -> Result<(Vec<Fragment>, Vec<String>)> {
    let target = Target::of(dest)?;
    let mut fragments = Vec::new();
    let mut moved = Vec::new();
    if target.remote.is_none() {
        let data = std::path::Path::new(&target.uri).join("data");
        std::fs::create_dir_all(&data).map_err(|source| EngineError::Io {
            path: data.display().to_string(),
            source,
        })?;
    }
    for json in reports {
        let staged = StagedFragments::decode(&target.uri, json)?;
        for file in staged.fragments.iter().flat_map(|f| &f.files) {
            let from = format!("{}/data/{}", staged.dir, file.path);
            let to = format!("{}/data/{}", target.uri, file.path);
            move_file(&target, &from, &to).await?;
            moved.push(to);
        }
        fragments.extend(staged.fragments);
    }
    Ok((fragments, moved))
}

/// Moves one data file; one already at `to` (an earlier commit's move) is kept.
async fn move_file(target: &Target, from: &str, to: &str) -> Result<()> {
    match &target.remote {
        Some(_) => {
            let (from_url, to_url) = (
                crate::storage::ObjectUrl::parse(from)?,
                crate::storage::ObjectUrl::parse(to)?,
            );
            if remote::exists(&from_url).await? {
                remote::copy(&from_url, &to_url).await?;
                remote::delete_object(&from_url).await?;
            } else if !remote::exists(&to_url).await? {
                return Err(missing(&target.uri, from));
            }
        }
        None => {
            if std::path::Path::new(from).exists() {
                std::fs::rename(from, to).map_err(|source| EngineError::Io {
                    path: to.to_string(),
                    source,
                })?;
            } else if !std::path::Path::new(to).exists() {
                return Err(missing(&target.uri, from));
            }
        }
    }
    Ok(())
}

fn missing(uri: &str, from: &str) -> EngineError {
    EngineError::Lance {
        uri: uri.to_string(),
        message: format!("staged data file {from} is gone and was never moved into the dataset"),
    }
}

/// Removes data files the commit moved into `dest` but did not commit.
pub(crate) async fn remove_moved(dest: &str, moved: &[String]) -> Result<()> {
    let target = Target::of(dest)?;
    for path in moved {
        match &target.remote {
            Some(_) => remote::delete_object(&crate::storage::ObjectUrl::parse(path)?).await?,
            None => match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(EngineError::Io {
                        path: path.clone(),
                        source,
                    })
                }
            },
        }
    }
    Ok(())
}

/// Removes everything job `tag` staged under `dest`: after its commit, the
/// attempts that lost; after a failure, all of them.
pub async fn discard_staging(dest: &str, tag: &str) -> Result<()> {
    let target = Target::of(dest)?;
    let root = staging_root(dest, tag)?;
    match &target.remote {
        Some(_) => remote::delete_prefix(&crate::storage::ObjectUrl::parse(&root)?).await,
        None => match std::fs::remove_dir_all(&root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(EngineError::Io { path: root, source }),
        },
    }
}

/// Checks a task's report of what it staged for job `tag` at `dest`: its
/// staging directory must lie under the job's own prefix and its data files
/// be plain names there. The commit moves those files into the dataset, so a
/// forged report naming another directory would otherwise have the driver
/// move files from wherever it pointed.
pub fn check_reported(dest: &str, tag: &str, json: &str) -> Result<()> {
    let staged = StagedFragments::decode(dest, json)?;
    let root = staging_root(dest, tag)?;
    let inside = staged
        .dir
        .strip_prefix(&root)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| {
            !rest.is_empty() && rest.split('/').all(super::reported::is_plain_name)
        });
    if !inside {
        return Err(EngineError::InvalidArgument(format!(
            "a task reported fragments staged in {}, outside its job's staging prefix {root}",
            staged.dir
        )));
    }
    for f in &staged.fragments {
        if let Some(file) = f
            .files
            .iter()
            .find(|d| !super::reported::is_plain_name(&d.path))
        {
            return Err(EngineError::InvalidArgument(format!(
                "a task reported a data file {:?}, not a file name in its staging directory",
                file.path
            )));
        }
    }
    Ok(())
}
