//! Lance datasets: read through DataFusion, write from a stream, add computed
//! columns in place, random-access take.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use lance::datafusion::LanceTableProvider;
use lance::dataset::{
    InsertBuilder, NewColumnTransform, ProjectionRequest, WriteMode as LanceMode, WriteParams,
};
use lance::Dataset;

use super::paths::local_path;
use super::sinks::WriteMode;
use crate::storage::{self, remote, ObjectUrl};
use crate::types::{contiguous_image_column, contiguous_image_type, is_image_type};
use crate::{EngineError, Result};

/// Where a dataset lives: a local directory or a prefix in an object store.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// What Lance is given: a local path or the object URL.
    pub(crate) uri: String,
    pub(crate) remote: Option<ObjectUrl>,
}

impl Target {
    pub(crate) fn of(input: &str) -> Result<Self> {
        if storage::is_object_url(input) {
            let url = ObjectUrl::parse(input)?;
            return Ok(Self {
                uri: url.to_string().trim_end_matches('/').to_string(),
                remote: Some(url),
            });
        }
        Ok(Self {
            uri: local_path(input)?.to_string_lossy().to_string(),
            remote: None,
        })
    }

    pub(crate) fn write_params(&self, mode: LanceMode) -> Result<WriteParams> {
        Ok(WriteParams {
            mode,
            session: Some(storage::lance_provider::session()),
            ..Default::default()
        })
    }

    /// Something (a dataset or stray files) is there.
    async fn exists(&self) -> Result<bool> {
        match &self.remote {
            Some(url) => remote::exists(url).await,
            None => Ok(std::path::Path::new(&self.uri).exists()),
        }
    }

    /// A committed dataset is there (not just the data files of uncommitted
    /// fragments that a distributed write staged).
    pub(crate) async fn is_dataset(&self) -> Result<bool> {
        match &self.remote {
            Some(url) => remote::exists(&url.join("_versions")).await,
            None => Ok(std::path::Path::new(&self.uri).join("_versions").is_dir()),
        }
    }

    pub(crate) async fn open(&self) -> Result<Dataset> {
        lance::dataset::builder::DatasetBuilder::from_uri(&self.uri)
            .with_session(storage::lance_provider::session())
            .load()
            .await
            .map_err(lance_err(&self.uri))
    }
}

pub(crate) fn lance_err(uri: &str) -> impl FnOnce(lance::Error) -> EngineError + '_ {
    move |e| EngineError::Lance {
        uri: uri.to_string(),
        message: e.to_string(),
    }
}

/// True when anything (a dataset, or stray files) is at `input`.
pub async fn anything_at(input: &str) -> Result<bool> {
    Target::of(input)?.exists().await
}

/// Opens the dataset at `input` (a path or an object-store URL).
pub async fn open(input: &str) -> Result<Dataset> {
    let target = Target::of(input)?;
    if !target.is_dataset().await? {
        return Err(EngineError::InputNotFound {
            path: input.to_string(),
            reason: "no Lance dataset there".into(),
        });
    }
    target.open().await
}

/// Version `version` of the dataset at `input` (a path or an object-store URL).
pub async fn open_version(input: &str, version: u64) -> Result<Dataset> {
    let target = Target::of(input)?;
    lance::dataset::builder::DatasetBuilder::from_uri(&target.uri)
        .with_version(version)
        .with_session(storage::lance_provider::session())
        .load()
        .await
        .map_err(lance_err(&target.uri))
}

/// A DataFusion table over the dataset at `input`, scanned in row order.
pub async fn open_lance_provider(input: &str) -> Result<LanceTableProvider> {
    let ds = open(input).await?;
    Ok(LanceTableProvider::new(Arc::new(ds), false, false))
}

/// `stream` with image columns' pixels contiguous, as Lance datasets hold them
/// (before image columns became views, and Lance's own encoder casts a view
/// column to 32-bit offsets, which a batch over 2 GiB would overflow).
pub(crate) fn lance_layout(stream: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
    let schema = stream.schema();
    if !schema.fields().iter().any(|f| is_image_type(f.data_type())) {
        return Ok(stream);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(contiguous_image_type(f.data_type()))
        })
        .collect();
    let out = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let to = out.clone();
    let batches = stream.map(move |b| {
        let b = b?;
        let columns = b
            .columns()
            .iter()
            .map(contiguous_image_column)
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(to.clone(), columns)?)
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(out, batches)))
}

/// Writes `stream` to the dataset at `dest`. Returns the dataset's row count after.
pub async fn write_stream(
    stream: SendableRecordBatchStream,
    dest: &str,
    mode: WriteMode,
) -> Result<u64> {
    let target = Target::of(dest)?;
    let uri = target.uri.clone();
    let exists = target.exists().await?;
    let lance_mode = match mode {
        WriteMode::Create => {
            if exists {
                return Err(EngineError::InvalidArgument(format!(
                    "Lance dataset {uri} already exists; write with mode append or overwrite"
                )));
            }
            LanceMode::Create
        }
        WriteMode::Append if exists => LanceMode::Append,
        WriteMode::Append => LanceMode::Create,
        WriteMode::Overwrite => LanceMode::Overwrite,
    };
    let params = target.write_params(lance_mode)?;
    let ds = InsertBuilder::new(uri.as_str())
        .with_params(&params)
        .execute_stream(lance_layout(stream)?)
        .await
        .map_err(lance_err(&uri))?;
    let rows = ds.count_rows(None).await.map_err(lance_err(&uri))?;
    Ok(rows as u64)
}

/// Adds the columns of `stream` to the dataset at `dest`, row for row in the
/// dataset's order. Existing columns are not rewritten: Lance writes only new files.
pub async fn add_columns(dest: &str, stream: SendableRecordBatchStream) -> Result<u64> {
    let uri = Target::of(dest)?.uri;
    let mut ds = open(dest).await?;
    ds.add_columns(
        NewColumnTransform::Stream(lance_layout(stream)?),
        None,
        None,
    )
    .await
    .map_err(lance_err(&uri))?;
    Ok(ds.version().version)
}

/// The rows at `indices` (row positions), all columns, in request order.
pub async fn take(ds: &Dataset, indices: &[u64]) -> Result<RecordBatch> {
    let schema = Arc::new(ds.schema().clone());
    ds.take(indices, ProjectionRequest::Schema(schema))
        .await
        .map_err(|e| EngineError::Lance {
            uri: ds.uri().to_string(),
            message: e.to_string(),
        })
}

/// The `k` rows of the dataset at `input` whose vector `column` is nearest to
/// `query` (L2 distance, exact search when the column has no index), nearest first,
/// with their distance in `_distance`.
pub async fn nearest(input: &str, column: &str, query: &[f32], k: usize) -> Result<RecordBatch> {
    let ds = open(input).await?;
    let uri = ds.uri().to_string();
    let q = datafusion::arrow::array::Float32Array::from(query.to_vec());
    let mut scan = ds.scan();
    scan.nearest(column, &q, k).map_err(lance_err(&uri))?;
    scan.try_into_batch().await.map_err(lance_err(&uri))
}

/// The schema metadata of the dataset at `input` (what its writer tagged it with).
pub async fn schema_metadata(input: &str) -> Result<std::collections::HashMap<String, String>> {
    let ds = open(input).await?;
    Ok(ds.schema().metadata.clone())
}

/// The transaction property naming the job that committed a version.
pub const JOB_PROPERTY: &str = "regatta.job";

/// The dataset version job `tag` committed to `dest`, if it did.
pub async fn committed_version(dest: &str, tag: &str) -> Result<Option<u64>> {
    let target = Target::of(dest)?;
    let uri = target.uri.clone();
    if !target.is_dataset().await? {
        return Ok(None);
    }
    let ds = target.open().await?;
    let versions = ds.versions().await.map_err(lance_err(&uri))?;
    for v in versions.iter().rev() {
        let txn = ds
            .read_transaction_by_version(v.version)
            .await
            .map_err(lance_err(&uri))?;
        let by_tag = txn
            .and_then(|t| t.transaction_properties)
            .is_some_and(|p| p.get(JOB_PROPERTY).is_some_and(|t| t == tag));
        if by_tag {
            return Ok(Some(v.version));
        }
    }
    Ok(None)
}

/// The version job `tag` already committed to `dest` (logged): a commit run
/// again (a new leader, a retried `CompleteJob`) returns it unchanged.
async fn earlier_commit(dest: &str, tag: &str) -> Result<Option<u64>> {
    let version = committed_version(dest, tag).await?;
    version.inspect(|v| log::info!("{tag}: {dest} version {v} was already committed by this job"));
    Ok(version)
}

/// Commits the fragments every task of job `tag` staged (reports from
/// [`stage_fragments`](super::lance_staged::stage_fragments)) to `dest` as one
/// new version: an append, or an overwrite (which creates a new dataset). Their
/// data files are moved into the dataset first; what else the job staged (the
/// attempts that lost) is removed after. Exactly once: a version already
/// committed by `tag` is found and returned instead of committing again, and a
/// commit that fails removes the files it moved. Returns the version.
pub async fn commit_fragments(
    dest: &str,
    mode: WriteMode,
    reports: &[String],
    schema: &datafusion::arrow::datatypes::Schema,
    tag: &str,
) -> Result<u64> {
    use super::lance_staged;
    use lance::dataset::transaction::Operation;
    if let Some(version) = earlier_commit(dest, tag).await? {
        lance_staged::discard_staging(dest, tag).await?;
        return Ok(version);
    }
    let target = Target::of(dest)?;
    let uri = target.uri.clone();
    let existing = if target.is_dataset().await? {
        Some(target.open().await?)
    } else {
        None
    };
    if let (WriteMode::Create, Some(_)) = (mode, &existing) {
        return Err(EngineError::InvalidArgument(format!(
            "Lance dataset {uri} appeared while the job ran; write with mode append or overwrite"
        )));
    }
    let read_version = existing.as_ref().map_or(0, |d| d.version().version);
    let (fragments, moved) = lance_staged::adopt(dest, reports).await?;
    let operation = match (mode, &existing) {
        (WriteMode::Append, Some(_)) => Operation::Append { fragments },
        _ => Operation::Overwrite {
            fragments,
            schema: lance::datatypes::Schema::try_from(schema).map_err(lance_err(&uri))?,
            config_upsert_values: None,
            initial_bases: None,
        },
    };
    match commit_tagged(&uri, read_version, operation, tag).await {
        Ok(version) => {
            lance_staged::discard_staging(dest, tag).await?;
            Ok(version)
        }
        Err(e) => {
            // Unless the commit landed after all, its moved files are strays.
            if committed_version(dest, tag).await.ok().flatten().is_none() {
                if let Err(r) = lance_staged::remove_moved(dest, &moved).await {
                    log::warn!("{tag}: removing the files of a failed commit: {r}");
                }
            }
            Err(e)
        }
    }
}

/// Commits `operation` on version `read_version` of the dataset at `uri`, the
/// transaction tagged with job `tag` (see [`committed_version`]). Returns the
/// new version.
async fn commit_tagged(
    uri: &str,
    read_version: u64,
    operation: lance::dataset::transaction::Operation,
    tag: &str,
) -> Result<u64> {
    use lance::dataset::transaction::Transaction;
    let properties = std::collections::HashMap::from([(JOB_PROPERTY.to_string(), tag.to_string())]);
    let ds = lance::dataset::CommitBuilder::new(uri)
        .with_session(storage::lance_provider::session())
        .with_transaction_properties(properties)
        .execute(Transaction::new(read_version, operation, None))
        .await
        .map_err(lance_err(uri))?;
    Ok(ds.version().version)
}

/// Removes data files under `dest` that no committed version references and
/// that were written at or after `since` (the job's start): for a failed job
/// that was creating the dataset, files a commit moved in and never committed.
/// A dataset that was never committed is removed whole.
pub async fn remove_unreferenced(dest: &str, since: std::time::SystemTime) -> Result<usize> {
    let target = Target::of(dest)?;
    if !target.exists().await? {
        return Ok(0);
    }
    if !target.is_dataset().await? {
        // Never committed: only this job's stray fragments are there.
        match &target.remote {
            Some(url) => remote::delete_prefix(url).await?,
            None => std::fs::remove_dir_all(&target.uri).map_err(|source| EngineError::Io {
                path: target.uri.clone(),
                source,
            })?,
        }
        return Ok(1);
    }
    let uri = target.uri.clone();
    let ds = target.open().await?;
    let mut referenced = std::collections::HashSet::new();
    let versions = ds.versions().await.map_err(lance_err(&uri))?;
    for v in versions {
        let at = ds
            .checkout_version(v.version)
            .await
            .map_err(lance_err(&uri))?;
        for f in at.get_fragments() {
            for file in &f.metadata().files {
                referenced.insert(file.path.clone());
            }
        }
    }
    let mut removed = 0;
    match &target.remote {
        Some(url) => {
            let data = url.join("data");
            for (key, modified) in remote::list_meta(&data).await? {
                let name = key.rsplit('/').next().unwrap_or_default().to_string();
                if modified >= since && !referenced.contains(&name) {
                    remote::delete_object(&data.with_key(key)).await?;
                    removed += 1;
                }
            }
        }
        None => {
            let Ok(entries) = std::fs::read_dir(std::path::Path::new(&uri).join("data")) else {
                return Ok(0);
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let recent = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since);
                if recent
                    && !referenced.contains(&name)
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// What one task of a distributed column add wrote: fragment `fragment` of
/// version `read_version`, with its new column's data file added.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AddedColumnFragment {
    pub read_version: u64,
    pub fragment: lance::table::format::Fragment,
}

/// Writes the columns of `stream` (one row per live row of fragment `fragment`
/// of version `version`, in its order) as a new data file of that fragment,
/// uncommitted (one task of a distributed column add). Returns the updated
/// fragment as JSON, for [`commit_added_columns`], and its rows.
pub async fn add_columns_to_fragment(
    stream: SendableRecordBatchStream,
    dest: &str,
    version: u64,
    fragment: u64,
) -> Result<(String, u64)> {
    let uri = Target::of(dest)?.uri;
    let ds = open_version(dest, version).await?;
    let file = ds
        .get_fragment(fragment as usize)
        .ok_or_else(|| EngineError::Lance {
            uri: uri.clone(),
            message: format!("version {version} has no fragment {fragment}"),
        })?;
    let (updated, _schema) = file
        .add_columns(
            NewColumnTransform::Stream(lance_layout(stream)?),
            None,
            None,
        )
        .await
        .map_err(lance_err(&uri))?;
    let rows = updated.physical_rows.unwrap_or(0) as u64;
    let json = serde_json::to_string(&AddedColumnFragment {
        read_version: version,
        fragment: updated,
    })
    .map_err(|e| EngineError::Lance {
        uri: uri.clone(),
        message: format!("encoding a fragment: {e}"),
    })?;
    Ok((json, rows))
}

/// Commits the fragments every task of job `tag` rewrote (JSON from
/// [`add_columns_to_fragment`], one per fragment of the version they read) as
/// one new version holding the columns of `columns`. Exactly once: a version
/// already committed by `tag` is returned instead. Every fragment of the read
/// version must be there, or nothing is committed.
/// Checks a task's report of a fragment it rewrote with new columns: every
/// data file it names must be a plain file name in the dataset's `data/`. The
/// commit makes them part of the dataset, so a forged `../../etc/shadow` would
/// otherwise be read back as rows.
pub fn check_added_columns_report(json: &str) -> Result<()> {
    let a: AddedColumnFragment = serde_json::from_str(json).map_err(|e| {
        EngineError::InvalidArgument(format!("a task's fragment does not decode: {e}"))
    })?;
    match a
        .fragment
        .files
        .iter()
        .find(|f| !super::reported::is_plain_name(&f.path))
    {
        Some(f) => Err(EngineError::InvalidArgument(format!(
            "a task reported a data file {:?}, not a file name in the dataset's data/",
            f.path
        ))),
        None => Ok(()),
    }
}

/// Commits the `columns` the tasks of job `tag` wrote beside the dataset's
/// fragments (`written`: a JSON [`AddedColumnFragment`] each) as one merge on
/// the version they read, every fragment once; exactly once. Returns the version.
pub async fn commit_added_columns(
    dest: &str,
    written: &[String],
    columns: &datafusion::arrow::datatypes::Schema,
    tag: &str,
) -> Result<u64> {
    use lance::dataset::transaction::Operation;
    if let Some(version) = earlier_commit(dest, tag).await? {
        return Ok(version);
    }
    let target = Target::of(dest)?;
    let uri = target.uri.clone();
    let bad = |message: String| EngineError::Lance {
        uri: uri.clone(),
        message,
    };
    let mut added = Vec::with_capacity(written.len());
    for json in written {
        let a: AddedColumnFragment = serde_json::from_str(json)
            .map_err(|e| bad(format!("a task's fragment does not decode: {e}")))?;
        added.push(a);
    }
    let Some(read_version) = added.first().map(|a| a.read_version) else {
        return Err(bad("no task wrote a fragment".into()));
    };
    if added.iter().any(|a| a.read_version != read_version) {
        return Err(bad("the tasks read different versions".into()));
    }
    let base = open_version(dest, read_version).await?;
    let mut fragments: Vec<lance::table::format::Fragment> =
        added.into_iter().map(|a| a.fragment).collect();
    fragments.sort_by_key(|f| f.id);
    let expected: Vec<u64> = base.get_fragments().iter().map(|f| f.id() as u64).collect();
    let got: Vec<u64> = fragments.iter().map(|f| f.id).collect();
    if expected != got {
        return Err(bad(format!(
            "version {read_version} has fragments {expected:?} but the tasks wrote {got:?}"
        )));
    }
    // The schema the tasks wrote against: the read version's plus the new
    // columns, numbered after its highest field id, as Lance numbers them.
    let mut schema = base.schema().merge(columns).map_err(lance_err(&uri))?;
    schema
        .try_set_field_id(Some(base.manifest().max_field_id()))
        .map_err(lance_err(&uri))?;
    let preserves_nullability = columns.fields().iter().all(|f| f.is_nullable());
    let operation = Operation::Merge {
        fragments,
        schema,
        preserves_nullability,
    };
    commit_tagged(&uri, read_version, operation, tag).await
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;

    use super::*;
    use crate::image::{DecodedImage, ImageMode};
    use crate::io::WriteMode;
    use crate::types::{image_type, ImageColumn, ImageColumnBuilder, IMAGE_DATA};
    use crate::Engine;

    #[tokio::test]
    async fn image_columns_are_written_with_contiguous_pixels_and_read_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let uri = dir.path().join("images.lance").display().to_string();
        let schema = Arc::new(Schema::new(vec![Field::new("img", image_type(), true)]));
        let images: Vec<Vec<u8>> = (0..3u8).map(|s| vec![s; 20 * 10 * 3]).collect();
        let engine = Engine::with_defaults();
        for mode in [WriteMode::Create, WriteMode::Append] {
            let mut column = ImageColumnBuilder::with_capacity(images.len());
            for px in &images {
                let image = DecodedImage {
                    pixels: px.clone(),
                    width: 20,
                    height: 10,
                    mode: ImageMode::Rgb,
                };
                column.append(image).expect("append");
            }
            let batch = RecordBatch::try_new(schema.clone(), vec![column.finish()]).expect("batch");
            let df = engine
                .read_batches(schema.clone(), vec![batch])
                .expect("df");
            let stream = df.execute_stream().await.expect("stream");
            write_stream(stream, &uri, mode)
                .await
                .expect("an append to the same type");
        }
        let ds = open(&uri).await.expect("open");
        let stored = ds
            .schema()
            .field("img")
            .expect("img field")
            .children
            .clone();
        let data = stored
            .iter()
            .find(|f| f.name == IMAGE_DATA)
            .expect("data child");
        assert_eq!(data.data_type(), DataType::LargeBinary);
        let batch = ds.scan().try_into_batch().await.expect("scan");
        let column = ImageColumn::try_new(batch.column(0).as_ref(), "test").expect("images");
        assert_eq!(column.len(), 6);
        for i in 0..column.len() {
            let row = column.get(i).expect("row").expect("not null");
            assert_eq!(row.pixels, images[i % 3].as_slice());
        }
    }
}
