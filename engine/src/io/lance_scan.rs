//! A Lance dataset read fragment by fragment, at one version: the scan a cluster
//! ships to its workers. Lance's own DataFusion provider holds an open dataset,
//! which cannot travel in a plan; [`LanceFragmentScanExec`] holds only the
//! dataset's address, its version and which fragments each partition reads, so
//! a worker opens the very same snapshot and reads its share, in row order.
//! Simple filters (a column against literals, joined by AND, OR and NOT) and a
//! limit go into Lance's own scan of each share, as they do in Lance's provider
//! on a local session; DataFusion still applies both above it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Column;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use super::lance::open_version;
use crate::plan_methods::leaf_properties;
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

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if pushable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let groups = self.groups(state.config().target_partitions());
        let filter = filters
            .iter()
            .filter(|f| pushable(f))
            .map(|f| unqualified(f.clone()))
            .collect::<DfResult<Vec<_>>>()?
            .into_iter()
            .reduce(Expr::and);
        Ok(Arc::new(
            LanceFragmentScanExec::new(self.uri.clone(), self.version, schema, groups)
                .with_pushdown(filter, limit),
        ))
    }
}

/// Whether Lance's scan can take `filter`: columns compared with literals, null
/// checks, BETWEEN and IN over literals, joined by AND, OR and NOT. Anything
/// else (a function call, a cast, arithmetic) stays with DataFusion.
fn pushable(filter: &Expr) -> bool {
    let mut ok = true;
    let _ = filter.apply(|e| {
        let allowed = match e {
            Expr::Column(c) => c.name.split('.').count() == 1,
            Expr::Literal(v, _) => !v.is_null(),
            Expr::BinaryExpr(b) => matches!(
                b.op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::And
                    | Operator::Or
            ),
            Expr::Not(_) | Expr::IsNull(_) | Expr::IsNotNull(_) => true,
            Expr::Between(_) => true,
            Expr::InList(l) => l.list.iter().all(|v| matches!(v, Expr::Literal(..))),
            _ => false,
        };
        ok &= allowed;
        Ok(if allowed {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

/// `filter` with its columns unqualified: Lance knows its own columns by name.
fn unqualified(filter: Expr) -> DfResult<Expr> {
    filter
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                Column::new_unqualified(c.name),
            ))),
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
}

/// Reads the fragments of partition `p` (`groups[p]`) of one dataset version,
/// projected to `schema`'s columns, in row order.
#[derive(Debug)]
pub struct LanceFragmentScanExec {
    uri: String,
    version: u64,
    schema: SchemaRef,
    groups: Vec<Vec<u64>>,
    /// Rows Lance may skip (DataFusion filters again above).
    filter: Option<Expr>,
    /// Rows each partition needs at most.
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl LanceFragmentScanExec {
    pub fn new(uri: String, version: u64, schema: SchemaRef, groups: Vec<Vec<u64>>) -> Self {
        let properties = leaf_properties(&schema, groups.len());
        Self {
            uri,
            version,
            schema,
            groups,
            filter: None,
            limit: None,
            properties,
        }
    }

    /// The filter and limit Lance applies to each partition's scan.
    pub fn with_pushdown(mut self, filter: Option<Expr>, limit: Option<usize>) -> Self {
        self.filter = filter;
        self.limit = limit;
        self
    }

    pub fn filter(&self) -> Option<&Expr> {
        self.filter.as_ref()
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
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
        )?;
        if let Some(filter) = &self.filter {
            write!(f, ", filter={filter}")?;
        }
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for LanceFragmentScanExec {
    crate::leaf_exec_methods!("LanceFragmentScanExec");

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
        let share = Share {
            uri: self.uri.clone(),
            version: self.version,
            schema: self.schema.clone(),
            fragments,
            filter: self.filter.clone(),
            limit: self.limit,
        };
        let schema = self.schema.clone();
        let rows = futures::stream::once(read_fragments(share)).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }
}

/// One partition's read: `fragments` of version `version`, projected to
/// `schema`, filtered and limited by Lance where the plan says so.
struct Share {
    uri: String,
    version: u64,
    schema: SchemaRef,
    fragments: Vec<u64>,
    filter: Option<Expr>,
    limit: Option<usize>,
}

/// The rows of one [`Share`].
async fn read_fragments(
    share: Share,
) -> DfResult<futures::stream::BoxStream<'static, DfResult<RecordBatch>>> {
    let Share {
        uri,
        version,
        schema,
        fragments,
        filter,
        limit,
    } = share;
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
    if let Some(filter) = filter {
        scan.filter_expr(filter);
    }
    if let Some(limit) = limit {
        scan.limit(Some(limit as i64), None).map_err(lance_err)?;
    }
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::physical_plan::displayable;

    use super::*;
    use crate::io::WriteMode;
    use crate::Engine;

    /// A dataset of ids 0..300 in three fragments, tagged by id modulo 3.
    async fn dataset(dir: &std::path::Path) -> String {
        let uri = dir.join("t.lance").display().to_string();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tag", DataType::Utf8, false),
        ]));
        for part in 0..3i64 {
            let ids: Vec<i64> = (part * 100..(part + 1) * 100).collect();
            let tags: Vec<String> = ids.iter().map(|i| format!("t{}", i % 3)).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(tags)),
                ],
            )
            .unwrap();
            let engine = Engine::with_defaults();
            let df = engine.read_batches(schema.clone(), vec![batch]).unwrap();
            let stream = df.execute_stream().await.unwrap();
            crate::io::lance::write_stream(stream, &uri, WriteMode::Append)
                .await
                .unwrap();
        }
        uri
    }

    #[tokio::test]
    async fn simple_filters_and_limits_go_into_lance_and_others_stay_above() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dataset(dir.path()).await;
        let engine = Engine::with_defaults();
        engine
            .register_lance_fragments("t", &uri, false)
            .await
            .unwrap();

        let df = engine
            .sql("SELECT id FROM t WHERE t.id >= 150 AND tag IN ('t0', 't1') ORDER BY id")
            .await
            .unwrap();
        let plan = engine.physical_plan(df.clone()).await.unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        let scan = text
            .lines()
            .find(|l| l.contains("LanceFragmentScanExec"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            scan.contains("filter=") && scan.contains("id >= Int64(150)"),
            "{scan}"
        );
        let ids: Vec<i64> = df
            .collect()
            .await
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        let want: Vec<i64> = (150..300).filter(|i| i % 3 != 2).collect();
        assert_eq!(ids, want);

        // A function call is not Lance's to evaluate: nothing is pushed.
        let df = engine
            .sql("SELECT id FROM t WHERE length(tag) > 5")
            .await
            .unwrap();
        let plan = engine.physical_plan(df).await.unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        assert!(!text.contains("filter="), "{text}");

        // A bare limit reaches each partition's scan.
        let df = engine.sql("SELECT id FROM t LIMIT 7").await.unwrap();
        let plan = engine.physical_plan(df.clone()).await.unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        assert!(text.contains("limit=7"), "{text}");
        let rows: usize = df
            .collect()
            .await
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 7);
    }
}
