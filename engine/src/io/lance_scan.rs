//! A Lance dataset read fragment by fragment, at one version: the scan a cluster
//! ships to its workers. Lance's own DataFusion provider holds an open dataset,
//! which cannot travel in a plan; [`LanceFragmentScanExec`] holds only the
//! dataset's address, its version and which fragments each partition reads, so
//! a worker opens the very same snapshot and reads its share, in row order.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use super::lance::open_version;
use crate::Result;

/// One snapshot of a dataset, as a table whose scan reads whole fragments.
#[derive(Debug, Clone)]
pub struct LanceFragmentTable {
    uri: String,
    version: u64,
    schema: SchemaRef,
    /// Fragment ids, in the dataset's order.
    fragments: Vec<u64>,
    /// One partition per fragment (an added column is written fragment by
    /// fragment); else the fragments are dealt into at most the session's
    /// target partitions, in order.
    per_fragment: bool,
}

impl LanceFragmentTable {
    /// The latest version of the dataset at `uri`.
    pub async fn open(uri: &str, per_fragment: bool) -> Result<Self> {
        let ds = super::lance::open(uri).await?;
        Ok(Self {
            uri: uri.to_string(),
            version: ds.version().version,
            schema: Arc::new(Schema::from(ds.schema())),
            fragments: ds.get_fragments().iter().map(|f| f.id() as u64).collect(),
            per_fragment,
        })
    }

    /// A snapshot already described (a plan's table, decoded): nothing is opened.
    pub fn from_parts(
        uri: String,
        version: u64,
        schema: SchemaRef,
        fragments: Vec<u64>,
        per_fragment: bool,
    ) -> Self {
        Self {
            uri,
            version,
            schema,
            fragments,
            per_fragment,
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn per_fragment(&self) -> bool {
        self.per_fragment
    }

    pub fn fragments(&self) -> &[u64] {
        &self.fragments
    }

    /// Contiguous groups of fragments, one per partition (never none: an empty
    /// dataset is one partition with nothing to read).
    fn groups(&self, target: usize) -> Vec<Vec<u64>> {
        if self.fragments.is_empty() {
            return vec![Vec::new()];
        }
        let n = if self.per_fragment {
            self.fragments.len()
        } else {
            self.fragments.len().min(target.max(1))
        };
        let per = self.fragments.len().div_ceil(n);
        self.fragments.chunks(per).map(<[u64]>::to_vec).collect()
    }
}

#[async_trait]
impl TableProvider for LanceFragmentTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let groups = self.groups(state.config().target_partitions());
        Ok(Arc::new(LanceFragmentScanExec::new(
            self.uri.clone(),
            self.version,
            schema,
            groups,
        )))
    }
}

/// Reads the fragments of partition `p` (`groups[p]`) of one dataset version,
/// projected to `schema`'s columns, in row order.
#[derive(Debug)]
pub struct LanceFragmentScanExec {
    uri: String,
    version: u64,
    schema: SchemaRef,
    groups: Vec<Vec<u64>>,
    properties: Arc<PlanProperties>,
}

impl LanceFragmentScanExec {
    pub fn new(uri: String, version: u64, schema: SchemaRef, groups: Vec<Vec<u64>>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(groups.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            uri,
            version,
            schema,
            groups,
            properties,
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn groups(&self) -> &[Vec<u64>] {
        &self.groups
    }
}

impl DisplayAs for LanceFragmentScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LanceFragmentScanExec: {} version {}, {} partitions",
            self.uri,
            self.version,
            self.groups.len()
        )
    }
}

impl ExecutionPlan for LanceFragmentScanExec {
    fn name(&self) -> &str {
        "LanceFragmentScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let fragments = self.groups.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "Lance scan of {}: no partition {partition} (of {})",
                self.uri,
                self.groups.len()
            ))
        })?;
        let (uri, version, schema) = (self.uri.clone(), self.version, self.schema.clone());
        let rows = futures::stream::once(read_fragments(uri, version, schema.clone(), fragments))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }
}

/// The rows of `fragments` of version `version`, projected to `schema`.
async fn read_fragments(
    uri: String,
    version: u64,
    schema: SchemaRef,
    fragments: Vec<u64>,
) -> DfResult<futures::stream::BoxStream<'static, DfResult<RecordBatch>>> {
    let external = |e: crate::EngineError| DataFusionError::External(Box::new(e));
    let lance_err =
        |e: lance::Error| DataFusionError::Execution(format!("Lance dataset {uri}: {e}"));
    if fragments.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    let ds = open_version(&uri, version).await.map_err(external)?;
    let mut chosen = Vec::with_capacity(fragments.len());
    for id in &fragments {
        let f = ds.get_fragment(*id as usize).ok_or_else(|| {
            DataFusionError::Execution(format!(
                "Lance dataset {uri} version {version} has no fragment {id}"
            ))
        })?;
        chosen.push(f.metadata().clone());
    }
    let mut scan = ds.scan();
    scan.with_fragments(chosen);
    scan.scan_in_order(true);
    // A scan of no columns (a count) still needs rows: read the first column and
    // keep only the row counts.
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let counting = columns.is_empty();
    let read: Vec<String> = if counting {
        ds.schema()
            .fields
            .first()
            .map(|f| f.name.clone())
            .into_iter()
            .collect()
    } else {
        columns
    };
    scan.project(&read).map_err(lance_err)?;
    let stream = scan.try_into_stream().await.map_err(lance_err)?;
    let uri_for_rows = uri.clone();
    Ok(stream
        .map(move |batch| {
            let batch = batch.map_err(|e| {
                DataFusionError::Execution(format!("Lance dataset {uri_for_rows}: {e}"))
            })?;
            if counting {
                let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                return Ok(RecordBatch::try_new_with_options(
                    schema.clone(),
                    Vec::new(),
                    &options,
                )?);
            }
            // Lance may give a field other metadata than the table declared;
            // the columns are the same.
            let columns = batch.columns().to_vec();
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .boxed())
}
