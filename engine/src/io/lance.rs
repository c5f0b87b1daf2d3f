//! Lance datasets: read through DataFusion, write from a stream, add computed
//! columns in place, random-access take.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use lance::datafusion::LanceTableProvider;
use lance::dataset::{
    InsertBuilder, NewColumnTransform, ProjectionRequest, WriteMode as LanceMode, WriteParams,
};
use lance::Dataset;

use super::paths::local_path;
use super::sinks::WriteMode;
use crate::{EngineError, Result};

fn uri_of(input: &str) -> Result<String> {
    Ok(local_path(input)?.to_string_lossy().to_string())
}

fn lance_err(uri: &str) -> impl FnOnce(lance::Error) -> EngineError + '_ {
    move |e| EngineError::Lance {
        uri: uri.to_string(),
        message: e.to_string(),
    }
}

/// Opens the dataset at `input`.
pub async fn open(input: &str) -> Result<Dataset> {
    let uri = uri_of(input)?;
    if !std::path::Path::new(&uri).exists() {
        return Err(EngineError::InputNotFound {
            path: input.to_string(),
            reason: "no Lance dataset there".into(),
        });
    }
    Dataset::open(&uri).await.map_err(lance_err(&uri))
}

/// A DataFusion table over the dataset at `input`, scanned in row order.
pub async fn open_lance_provider(input: &str) -> Result<LanceTableProvider> {
    let ds = open(input).await?;
    Ok(LanceTableProvider::new(Arc::new(ds), false, false))
}

/// Writes `stream` to the dataset at `dest`. Returns the dataset's row count after.
pub async fn write_stream(
    stream: SendableRecordBatchStream,
    dest: &str,
    mode: WriteMode,
) -> Result<u64> {
    let uri = uri_of(dest)?;
    let exists = std::path::Path::new(&uri).exists();
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
    let params = WriteParams {
        mode: lance_mode,
        ..Default::default()
    };
    let ds = InsertBuilder::new(uri.as_str())
        .with_params(&params)
        .execute_stream(stream)
        .await
        .map_err(lance_err(&uri))?;
    let rows = ds.count_rows(None).await.map_err(lance_err(&uri))?;
    Ok(rows as u64)
}

/// Adds the columns of `stream` to the dataset at `dest`, row for row in the
/// dataset's order. Existing columns are not rewritten: Lance writes only new files.
pub async fn add_columns(dest: &str, stream: SendableRecordBatchStream) -> Result<u64> {
    let uri = uri_of(dest)?;
    let mut ds = open(dest).await?;
    ds.add_columns(NewColumnTransform::Stream(stream), None, None)
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
