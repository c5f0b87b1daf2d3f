//! [`DataFrame`]: a lazy query over a session's engine.

use futures::{StreamExt as _, TryStreamExt};
use regatta_engine::arrow::record_batch::RecordBatch;
use regatta_engine::arrow::util::pretty::pretty_format_batches;
use regatta_engine::datafusion::common::UnnestOptions;
use regatta_engine::datafusion::dataframe::DataFrame as DfFrame;
use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::datafusion::functions_nested::expr_fn::{cardinality, range};
use regatta_engine::datafusion::logical_expr::{Expr, JoinType, SortExpr};
use regatta_engine::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use regatta_engine::datafusion::physical_plan::SendableRecordBatchStream;
use regatta_engine::datafusion::prelude::{col, lit};
use regatta_engine::io::resume::ResumeTarget;
use regatta_engine::io::{FileFormat, WriteMode};
use regatta_engine::{Engine, FailureBudget, RowErrorPolicy, RowErrorSink};
use std::sync::Arc;

use crate::cluster::ClusterClient;
use crate::{Execution, Result};

/// A lazy DataFrame: operations build a plan; `collect`, `stream`, `show`, `count`
/// and the writers run it.
#[derive(Debug, Clone)]
pub struct DataFrame {
    df: DfFrame,
    engine: Engine,
    cluster: Option<ClusterClient>,
    row_errors: RowErrorPolicy,
    /// The source column a write resumes on (see [`Self::resume_on`]).
    resume_key: Option<String>,
}

/// A resumable local write commits at least this often (rows)...
const RESUME_COMMIT_ROWS: usize = 50_000;
/// ...or this often (time), so a crash loses little work.
const RESUME_COMMIT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl DataFrame {
    pub(crate) fn new(df: DfFrame, engine: Engine, cluster: Option<ClusterClient>) -> Self {
        Self {
            df,
            engine,
            cluster,
            row_errors: RowErrorPolicy::default(),
            resume_key: None,
        }
    }

    fn with(self, df: DfFrame) -> Self {
        Self { df, ..self }
    }

    /// Writes the rows its functions give up on under `on_error = 'record'`
    /// to a table (Parquet files) under `url`, a directory or object-store
    /// prefix: each with its key (URL or path), function, error class,
    /// message, attempt, job and time.
    pub fn errors_to(mut self, url: &str) -> Self {
        self.row_errors.errors_url = Some(url.to_string());
        self
    }

    /// How many rows may fail (`on_error = 'skip' | 'record'`) before the
    /// job does; the default allows 5 % of the rows.
    pub fn failure_budget(mut self, budget: FailureBudget) -> Self {
        self.row_errors.budget = budget;
        self
    }

    /// Makes the next write resumable on `key`, a column of the source that
    /// the output keeps: rows whose key the output already holds are skipped
    /// before any function runs on them, the rest appended, and the output
    /// committed as the write goes (locally every 50,000 rows or 10 s; on a
    /// cluster as each task finishes). Rerunning the same write after a
    /// failure does only what is left; each key is written once.
    pub fn resume_on(mut self, key: &str) -> Self {
        self.resume_key = Some(key.to_string());
        self
    }

    /// Both [`Self::errors_to`] and [`Self::failure_budget`] at once.
    pub fn with_row_error_policy(mut self, policy: RowErrorPolicy) -> Self {
        self.row_errors = policy;
        self
    }

    /// The local plan with a fresh sink for its failed rows.
    fn local_with_sink(&self) -> (DfFrame, Arc<RowErrorSink>) {
        let sink = RowErrorSink::new(self.row_errors.budget);
        let df = self.engine.with_row_errors(self.df.clone(), sink.clone());
        (df, sink)
    }

    /// After a local run: the budget judged, the recorded rows written.
    async fn finish_local(&self, sink: &RowErrorSink) -> Result<()> {
        let counts = sink.counts();
        let recorded = sink.take_recorded();
        if counts.failed > 0 {
            log::warn!(
                "{} of {} rows failed and were left out (on_error skip or record)",
                counts.failed,
                counts.checked
            );
        }
        let job = format!("local-{}", regatta_common::RequestId::generate());
        regatta_engine::io::error_table::keep_recorded(
            self.row_errors.errors_url.as_deref(),
            &format!("errors-{job}"),
            &recorded,
            &job,
            1,
        )
        .await?;
        sink.check()?;
        Ok(())
    }

    /// The policy's fields of a cluster request.
    fn with_policy(
        &self,
        mut request: regatta_proto::SubmitRequest,
    ) -> regatta_proto::SubmitRequest {
        request.errors_url = self.row_errors.errors_url.clone().unwrap_or_default();
        request.failure_budget = Some(regatta_proto::FailureBudget {
            max_failed_rows: self.row_errors.budget.max_failed_rows,
            max_failed_fraction: self.row_errors.budget.max_failed_fraction,
        });
        request
    }

    /// The request that runs this DataFrame's plan on a cluster.
    fn remote_request(&self) -> Result<regatta_proto::SubmitRequest> {
        let plan = self.df.logical_plan().clone();
        let codec = regatta_shuffle::RegattaLogicalCodec::default();
        let bytes =
            datafusion_proto::bytes::logical_plan_to_bytes_with_extension_codec(&plan, &codec)
                .map_err(|e| {
                    crate::Error::InvalidArgument(format!(
                        "this DataFrame cannot be sent to a cluster: {e} (in-memory tables and \
                 functions registered only in this process cannot run remotely; write the \
                 data to Parquet, or register the function in the workers)"
                    ))
                })?;
        Ok(self.with_policy(regatta_proto::SubmitRequest {
            plan: Some(regatta_proto::submit_request::Plan::LogicalPlan(
                bytes.to_vec(),
            )),
            ..Default::default()
        }))
    }

    /// Runs the plan on the cluster and streams its rows from the workers;
    /// None for a local DataFrame.
    async fn run_remote(&self) -> Result<Option<SendableRecordBatchStream>> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let rows = cluster.run_stream(self.remote_request()?).await?;
        let schema = std::sync::Arc::new(self.df.schema().as_arrow().clone());
        let rows = rows.map_err(|e| DataFusionError::External(Box::new(e)));
        Ok(Some(Box::pin(RecordBatchStreamAdapter::new(schema, rows))))
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

    /// Runs the query and returns every batch. On a cluster the rows come
    /// straight from the workers that made them.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        if let Some(rows) = self.run_remote().await? {
            return Ok(rows.try_collect().await?);
        }
        let (df, sink) = self.local_with_sink();
        let batches = df.collect().await?;
        self.finish_local(&sink).await?;
        Ok(batches)
    }

    /// Runs the query as a stream of batches, in bounded memory. On a cluster
    /// the rows stream from the workers as their partitions finish.
    pub async fn stream(self) -> Result<SendableRecordBatchStream> {
        if let Some(rows) = self.run_remote().await? {
            return Ok(rows);
        }
        let (df, sink) = self.local_with_sink();
        let rows = df.execute_stream().await?;
        let schema = rows.schema();
        // After the last batch: the budget judged and the error table written,
        // an error then ending the stream.
        let this = self.clone();
        let tail = futures::stream::once(async move { this.finish_local(&sink).await }).filter_map(
            |done| async move {
                done.err()
                    .map(|e| Err(DataFusionError::External(Box::new(e))))
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::StreamExt::chain(rows, tail),
        )))
    }

    /// Runs the query as a stream and keeps its plan, so per-operator metrics can be
    /// read while and after it runs. On a cluster the stream comes from the
    /// workers and the plan is the one planned here (its operators do not run
    /// here, so their metrics stay empty; see [`Self::explain_analyze`]).
    pub async fn execute(self) -> Result<Execution> {
        let plan = self.engine.physical_plan(self.df.clone()).await?;
        if let Some(rows) = self.run_remote().await? {
            return Ok(Execution::new(plan, rows));
        }
        let stream = self.engine.execute(plan.clone())?;
        Ok(Execution::new(plan, stream))
    }

    /// Counts the rows. On a cluster only the count travels: the rows stay on
    /// the workers.
    pub async fn count(self) -> Result<usize> {
        if let Some(cluster) = &self.cluster {
            let end = cluster.run_to_end(self.remote_request()?).await?;
            return Ok(end.rows_out as usize);
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
        let batches = self.limit(n)?.collect().await?;
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
        if let (true, Some(cluster)) = (analyze, &self.cluster) {
            // The job runs on the workers and its rows stay there; what it did
            // is in the job's numbers.
            let plan = self.df.clone().explain(false, false)?.collect().await?;
            let end = cluster.run_to_end(self.remote_request()?).await?;
            let mut out = plan_text(&plan)?;
            out.push_str(&format!(
                "cluster job-{}: {} rows out, {} stages, {} tasks ({} retried, {} outputs \
                 recomputed), {} shuffle bytes, {} bytes spilled, {:.3} s\n",
                end.job_id,
                end.rows_out,
                end.stages,
                end.tasks,
                end.retried_tasks,
                end.recomputed_outputs,
                end.shuffle_bytes,
                end.spilled_bytes,
                end.elapsed_seconds
            ));
            return Ok(out);
        }
        let batches = self.df.explain(false, analyze)?.collect().await?;
        plan_text(&batches)
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

    /// Writes in any format and mode (create, append, overwrite). On a cluster
    /// the workers write their parts (or Lance fragments) and the driver
    /// commits them once; a path is then a directory of part files (Parquet,
    /// CSV, JSON) or a Lance dataset, visible to every worker and the driver.
    pub async fn write(self, path: &str, format: FileFormat, mode: WriteMode) -> Result<u64> {
        if let Some(cluster) = &self.cluster {
            let request = regatta_proto::SubmitRequest {
                output_path: path.to_string(),
                output_format: regatta_proto::FileFormat::from(format) as i32,
                output_mode: regatta_proto::WriteMode::from(mode) as i32,
                resume_key: self.resume_key.clone().unwrap_or_default(),
                ..self.remote_request()?
            };
            let end = cluster.run_to_end(request).await?;
            return Ok(end.rows_out);
        }
        if let Some(key) = &self.resume_key {
            return self.write_resumable(path, format, mode, key).await;
        }
        let (df, sink) = self.local_with_sink();
        let rows = self.engine.write(df, path, format, mode).await?;
        self.finish_local(&sink).await?;
        Ok(rows)
    }

    /// A local resumable write: the rows the output lacks, appended in
    /// chunks, each committed whole.
    async fn write_resumable(
        &self,
        path: &str,
        format: FileFormat,
        mode: WriteMode,
        key: &str,
    ) -> Result<u64> {
        if mode == WriteMode::Overwrite {
            return Err(crate::Error::InvalidArgument(format!(
                "a write resumable on {key:?} appends to {path}; it cannot overwrite it"
            )));
        }
        if format != FileFormat::Lance && path.to_ascii_lowercase().ends_with(format.extension()) {
            return Err(crate::Error::InvalidArgument(format!(
                "a write resumable on {key:?} appends as it goes: write to a directory or \
                 a Lance dataset, not the single file {path}"
            )));
        }
        if self.df.schema().field_with_unqualified_name(key).is_err() {
            return Err(crate::Error::InvalidArgument(format!(
                "resume key {key:?} is not a column of the result"
            )));
        }
        let target = ResumeTarget {
            output: path.to_string(),
            format,
            key: key.to_string(),
            snapshot: regatta_common::random_hex_128(),
        };
        let df = self.df.clone().filter(target.filter())?;
        let sink = RowErrorSink::new(self.row_errors.budget);
        let df = self.engine.with_row_errors(df, sink.clone());
        let mut stream = df.execute_stream().await?;
        let (mut rows, mut chunk, mut chunk_rows) = (0u64, Vec::new(), 0usize);
        let mut since = std::time::Instant::now();
        loop {
            let next = stream.next().await.transpose()?;
            let last = next.is_none();
            if let Some(batch) = next {
                chunk_rows += batch.num_rows();
                chunk.push(batch);
            }
            let due = chunk_rows >= RESUME_COMMIT_ROWS || since.elapsed() >= RESUME_COMMIT_EVERY;
            if chunk_rows > 0 && (due || last) {
                let batches = std::mem::take(&mut chunk);
                let part = self.engine.context().read_batches(batches)?;
                self.engine
                    .write(part, path, format, WriteMode::Append)
                    .await?;
                rows += chunk_rows as u64;
                chunk_rows = 0;
                since = std::time::Instant::now();
            }
            if last {
                break;
            }
        }
        let skipped = target.skipped_rows();
        if skipped > 0 {
            log::info!("{path}: skipped {skipped} rows whose {key} it already holds");
        }
        self.finish_local(&sink).await?;
        Ok(rows)
    }
}

/// EXPLAIN's rows as text.
fn plan_text(batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::new();
    for b in batches {
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
