//! [`DataFrame`]: a lazy query over a session's engine.

use regatta_engine::arrow::record_batch::RecordBatch;
use regatta_engine::arrow::util::pretty::pretty_format_batches;
use regatta_engine::datafusion::common::UnnestOptions;
use regatta_engine::datafusion::dataframe::DataFrame as DfFrame;
use regatta_engine::datafusion::functions_nested::expr_fn::{cardinality, range};
use regatta_engine::datafusion::logical_expr::{Expr, JoinType, SortExpr};
use regatta_engine::datafusion::physical_plan::SendableRecordBatchStream;
use regatta_engine::datafusion::prelude::{col, lit};
use regatta_engine::io::{FileFormat, WriteMode};
use regatta_engine::Engine;

use crate::cluster::ClusterClient;
use crate::{Execution, Result};

/// A lazy DataFrame: operations build a plan; `collect`, `stream`, `show`, `count`
/// and the writers run it.
#[derive(Debug, Clone)]
pub struct DataFrame {
    df: DfFrame,
    engine: Engine,
    cluster: Option<ClusterClient>,
}

impl DataFrame {
    pub(crate) fn new(df: DfFrame, engine: Engine, cluster: Option<ClusterClient>) -> Self {
        Self {
            df,
            engine,
            cluster,
        }
    }

    fn with(self, df: DfFrame) -> Self {
        Self {
            df,
            engine: self.engine,
            cluster: self.cluster,
        }
    }

    /// Runs the plan on the cluster; None for a local DataFrame.
    async fn run_remote(&self) -> Result<Option<Vec<RecordBatch>>> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let plan = self.df.logical_plan().clone();
        let bytes = datafusion_proto::bytes::logical_plan_to_bytes(&plan).map_err(|e| {
            crate::Error::InvalidArgument(format!(
                "this DataFrame cannot be sent to a cluster: {e} (in-memory tables and \
                 functions registered only in this process cannot run remotely; write the \
                 data to Parquet, or register the function in the workers)"
            ))
        })?;
        let request = regatta_proto::SubmitRequest {
            name: String::new(),
            plan: Some(regatta_proto::submit_request::Plan::LogicalPlan(
                bytes.to_vec(),
            )),
            tables: Vec::new(),
            ..Default::default()
        };
        Ok(Some(cluster.run(request).await?))
    }

    /// This DataFrame's rows as a local one (cluster DataFrames run first).
    async fn localized(self) -> Result<Self> {
        match self.run_remote().await? {
            None => Ok(self),
            Some(batches) => {
                let schema = std::sync::Arc::new(self.df.schema().as_arrow().clone());
                let df = self.engine.read_batches(schema, batches)?;
                Ok(Self::new(df, self.engine, None))
            }
        }
    }

    fn bind_all(&self, exprs: Vec<Expr>) -> Result<Vec<Expr>> {
        exprs
            .into_iter()
            .map(|e| self.engine.bind(e).map_err(Into::into))
            .collect()
    }

    /// The DataFusion DataFrame underneath.
    pub fn into_inner(self) -> DfFrame {
        self.df
    }

    /// The output schema.
    pub fn schema(&self) -> regatta_engine::arrow::datatypes::Schema {
        self.df.schema().as_arrow().clone()
    }

    /// Keeps the given expressions as columns.
    pub fn select(self, exprs: Vec<Expr>) -> Result<Self> {
        let exprs = self.bind_all(exprs)?;
        let df = self.df.clone().select(exprs)?;
        Ok(self.with(df))
    }

    /// Keeps the named columns.
    pub fn select_columns(self, names: &[&str]) -> Result<Self> {
        let df = self.df.clone().select_columns(names)?;
        Ok(self.with(df))
    }

    /// Adds (or replaces) column `name` computed by `expr`.
    pub fn with_column(self, name: &str, expr: Expr) -> Result<Self> {
        let expr = self.engine.bind(expr)?;
        let df = self.df.clone().with_column(name, expr)?;
        Ok(self.with(df))
    }

    /// Renames a column.
    pub fn with_column_renamed(self, old: &str, new: &str) -> Result<Self> {
        let df = self.df.clone().with_column_renamed(old, new)?;
        Ok(self.with(df))
    }

    /// Drops the named columns.
    pub fn drop_columns(self, names: &[&str]) -> Result<Self> {
        let df = self.df.clone().drop_columns(names)?;
        Ok(self.with(df))
    }

    /// Keeps rows where `predicate` is true.
    pub fn filter(self, predicate: Expr) -> Result<Self> {
        let predicate = self.engine.bind(predicate)?;
        let df = self.df.clone().filter(predicate)?;
        Ok(self.with(df))
    }

    /// The first `n` rows.
    pub fn limit(self, n: usize) -> Result<Self> {
        let df = self.df.clone().limit(0, Some(n))?;
        Ok(self.with(df))
    }

    /// Sorts by the given keys (`col("a").sort(true, false)` is ascending, nulls last).
    pub fn sort(self, keys: Vec<SortExpr>) -> Result<Self> {
        let df = self.df.clone().sort(keys)?;
        Ok(self.with(df))
    }

    /// Groups by `group_by` and computes `aggregates` (`sum`, `count`, `avg`, ...).
    pub fn aggregate(self, group_by: Vec<Expr>, aggregates: Vec<Expr>) -> Result<Self> {
        let group_by = self.bind_all(group_by)?;
        let aggregates = self.bind_all(aggregates)?;
        let df = self.df.clone().aggregate(group_by, aggregates)?;
        Ok(self.with(df))
    }

    /// Joins on equal columns. Every [`JoinType`] works: inner, left, right, full,
    /// semi, anti and mark joins.
    pub fn join(
        self,
        right: DataFrame,
        how: JoinType,
        left_cols: &[&str],
        right_cols: &[&str],
    ) -> Result<Self> {
        let df = self
            .df
            .clone()
            .join(right.df, how, left_cols, right_cols, None)?;
        Ok(self.with(df))
    }

    /// Joins on arbitrary predicates.
    pub fn join_on(self, right: DataFrame, how: JoinType, on: Vec<Expr>) -> Result<Self> {
        let on = self.bind_all(on)?;
        let df = self.df.clone().join_on(right.df, how, on)?;
        Ok(self.with(df))
    }

    /// Removes duplicate rows.
    pub fn distinct(self) -> Result<Self> {
        let df = self.df.clone().distinct()?;
        Ok(self.with(df))
    }

    /// All rows of both (same schema), duplicates kept.
    pub fn union(self, other: DataFrame) -> Result<Self> {
        let df = self.df.clone().union(other.df)?;
        Ok(self.with(df))
    }

    /// One row per element of the list column `column` (empty and null lists give
    /// no rows).
    pub fn explode(self, column: &str) -> Result<Self> {
        let df = self.df.clone().unnest_columns_with_options(
            &[column],
            UnnestOptions::new().with_preserve_nulls(false),
        )?;
        Ok(self.with(df))
    }

    /// Like [`Self::explode`], and adds `index_column`: each element's 0-based
    /// position in its list.
    ///
    /// ```
    /// use regatta::prelude::*;
    ///
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> regatta::Result<()> {
    /// let session = Session::local();
    /// let chunks = session
    ///     .sql("SELECT 7 AS doc, 'one two three four five' AS text")
    ///     .await?
    ///     .with_column("chunk", col("text").text_chunk(2, 0))?
    ///     .explode_with_index("chunk", "pos")?
    ///     .select(vec![col("doc"), col("pos"), col("chunk")])?;
    /// assert_eq!(chunks.count().await?, 3); // "one two", "three four", "five"
    /// # Ok(())
    /// # }
    /// ```
    pub fn explode_with_index(self, column: &str, index_column: &str) -> Result<Self> {
        let positions = range(lit(0i64), cardinality(col(column)), lit(1i64));
        let df = self
            .df
            .clone()
            .with_column(index_column, positions)?
            .unnest_columns_with_options(
                &[column, index_column],
                UnnestOptions::new().with_preserve_nulls(false),
            )?;
        Ok(self.with(df))
    }

    /// Runs the query and returns every batch.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        if let Some(rows) = self.run_remote().await? {
            return Ok(rows);
        }
        Ok(self.df.collect().await?)
    }

    /// Runs the query as a stream of batches, in bounded memory.
    pub async fn stream(self) -> Result<SendableRecordBatchStream> {
        let me = self.localized().await?;
        Ok(me.df.execute_stream().await?)
    }

    /// Runs the query as a stream and keeps its plan, so per-operator metrics can be
    /// read while and after it runs.
    pub async fn execute(self) -> Result<Execution> {
        let plan = self.engine.physical_plan(self.df).await?;
        let stream = self.engine.execute(plan.clone())?;
        Ok(Execution::new(plan, stream))
    }

    /// Counts the rows.
    pub async fn count(self) -> Result<usize> {
        if let Some(rows) = self.run_remote().await? {
            return Ok(rows.iter().map(|b| b.num_rows()).sum());
        }
        Ok(self.df.count().await?)
    }

    /// Prints the first 20 rows as a table.
    pub async fn show(self) -> Result<()> {
        println!("{}", self.to_table_string(20).await?);
        Ok(())
    }

    /// The first `n` rows formatted as a table.
    pub async fn to_table_string(self, n: usize) -> Result<String> {
        let batches = self.df.limit(0, Some(n))?.collect().await?;
        Ok(pretty_format_batches(&batches)?.to_string())
    }

    /// The logical and physical plans, as text.
    pub async fn explain(self) -> Result<String> {
        self.explain_inner(false).await
    }

    /// Runs the query and returns its physical plan annotated with each operator's
    /// metrics (rows, bytes, time, in-flight peak, ...).
    pub async fn explain_analyze(self) -> Result<String> {
        self.explain_inner(true).await
    }

    async fn explain_inner(self, analyze: bool) -> Result<String> {
        let batches = self.df.explain(false, analyze)?.collect().await?;
        let mut out = String::new();
        for b in &batches {
            let kinds = b.column(0);
            let plans = b.column(1);
            for i in 0..b.num_rows() {
                let k = regatta_engine::arrow::util::display::array_value_to_string(kinds, i)?;
                let p = regatta_engine::arrow::util::display::array_value_to_string(plans, i)?;
                out.push_str(&format!("{k}:\n{p}\n"));
            }
        }
        Ok(out)
    }

    /// Writes Parquet into directory `path` (or the file `path` if it ends in
    /// `.parquet`); fails if it exists and is not empty. Returns rows written.
    pub async fn write_parquet(self, path: &str) -> Result<u64> {
        self.write(path, FileFormat::Parquet, WriteMode::Create)
            .await
    }

    /// Writes CSV with a header row. Returns rows written.
    pub async fn write_csv(self, path: &str) -> Result<u64> {
        self.write(path, FileFormat::Csv, WriteMode::Create).await
    }

    /// Writes newline-delimited JSON. Returns rows written.
    pub async fn write_json(self, path: &str) -> Result<u64> {
        self.write(path, FileFormat::Json, WriteMode::Create).await
    }

    /// Creates the Lance dataset `path`. Returns its rows.
    pub async fn write_lance(self, path: &str) -> Result<u64> {
        self.write(path, FileFormat::Lance, WriteMode::Create).await
    }

    /// Writes in any format and mode (create, append, overwrite).
    pub async fn write(self, path: &str, format: FileFormat, mode: WriteMode) -> Result<u64> {
        let me = self.localized().await?;
        Ok(me.engine.write(me.df, path, format, mode).await?)
    }
}
