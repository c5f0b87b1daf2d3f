//! [`MorselExec`]: a projection run over byte-sized morsels, concurrently, with a
//! bound on what it holds.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, Gauge, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use super::failed_rows::drop_failed_rows;
use super::in_flight::{InFlight, InFlightGuard};
use super::row_bytes::slice_bytes;
use super::sizer::MorselSizer;
use super::splitter::MorselSplitter;
use crate::functions::row_failures::capture;
use crate::functions::ModelPool;
use crate::row_errors::{FailureBudget, RowErrorSink};
use crate::EngineError;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How one morsel operator runs.
#[derive(Debug, Clone)]
pub struct MorselConfig {
    /// What the operator computes, for plans and metrics (e.g. `url_download`).
    pub label: String,
    /// Morsels computed at once, across all partitions of the operator.
    pub concurrency: usize,
    /// Morsels held per partition: in computation or waiting for the consumer.
    pub max_in_flight: usize,
    /// Target output bytes per morsel.
    pub morsel_bytes: usize,
    /// Rows in the first morsel, before any output size is known.
    pub first_rows: usize,
    /// Most rows in any morsel.
    pub max_rows: usize,
    /// Exact rows per morsel (user batch functions, models).
    pub fixed_rows: Option<usize>,
    /// The model pools this operator feeds, whose numbers go into its metrics.
    pub models: Vec<Arc<dyn ModelPool>>,
}

impl MorselConfig {
    /// The most rows the operator can hold in one partition.
    pub fn in_flight_row_bound(&self) -> usize {
        self.max_in_flight * self.fixed_rows.unwrap_or(self.max_rows)
    }
}

/// State shared by all partitions of one operator.
#[derive(Debug)]
struct Shared {
    compute_slots: Arc<Semaphore>,
    in_flight: Arc<InFlight>,
    sizer: MorselSizer,
    /// Where failed rows go when the query brought no sink of its own.
    own_errors: Arc<RowErrorSink>,
    /// Partitions not yet finished: the last one judges the failure budget.
    partitions_left: AtomicUsize,
}

/// Evaluates a projection's expressions morsel by morsel (see the module docs).
#[derive(Debug)]
pub struct MorselExec {
    input: Arc<dyn ExecutionPlan>,
    exprs: Arc<Vec<ProjectionExpr>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    config: MorselConfig,
    metrics: ExecutionPlanMetricsSet,
    shared: Arc<Shared>,
}

impl MorselExec {
    /// Replaces `projection` with a morsel operator.
    pub fn from_projection(projection: &ProjectionExec, config: MorselConfig) -> Self {
        Self::new(
            projection.input().clone(),
            projection.expr().to_vec(),
            projection.schema(),
            projection.properties().clone(),
            config,
        )
    }

    fn new(
        input: Arc<dyn ExecutionPlan>,
        exprs: Vec<ProjectionExpr>,
        schema: SchemaRef,
        properties: Arc<PlanProperties>,
        config: MorselConfig,
    ) -> Self {
        let metrics = ExecutionPlanMetricsSet::new();
        let peak = MetricBuilder::new(&metrics).global_gauge(IN_FLIGHT_PEAK_METRIC);
        MetricBuilder::new(&metrics)
            .global_gauge("concurrency")
            .set(config.concurrency);
        MetricBuilder::new(&metrics)
            .global_gauge("max_in_flight_morsels")
            .set(config.max_in_flight);
        let shared = Arc::new(Shared {
            compute_slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            in_flight: InFlight::new(peak),
            sizer: MorselSizer::new(
                config.morsel_bytes,
                config.first_rows,
                config.max_rows,
                config.fixed_rows,
            ),
            own_errors: RowErrorSink::new(FailureBudget::default()),
            partitions_left: AtomicUsize::new(properties.partitioning.partition_count()),
        });
        Self {
            input,
            exprs: Arc::new(exprs),
            schema,
            properties,
            config,
            metrics,
            shared,
        }
    }

    /// How this operator runs.
    pub fn config(&self) -> &MorselConfig {
        &self.config
    }

    /// The expressions this operator computes, with their output names.
    pub fn exprs(&self) -> &[ProjectionExpr] {
        &self.exprs
    }

    /// Rows held right now (for live progress).
    pub fn rows_in_flight(&self) -> usize {
        self.shared.in_flight.current()
    }
}

impl DisplayAs for MorselExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let exprs: Vec<String> = self
            .exprs
            .iter()
            .map(|e| format!("{} as {}", e.expr, e.alias))
            .collect();
        match t {
            DisplayFormatType::TreeRender => write!(f, "op={}", self.config.label),
            _ => write!(
                f,
                "MorselExec: op={}, concurrency={}, max_in_flight={}, morsel_bytes={}{}, expr=[{}]",
                self.config.label,
                self.config.concurrency,
                self.config.max_in_flight,
                self.config.morsel_bytes,
                self.config
                    .fixed_rows
                    .map(|n| format!(", batch_rows={n}"))
                    .unwrap_or_default(),
                exprs.join(", ")
            ),
        }
    }
}

impl ExecutionPlan for MorselExec {
    crate::unary_exec_methods!("MorselExec");

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let child = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("MorselExec needs one child".into()))?;
        // Re-derive properties through a projection over the new child.
        let projection = ProjectionExec::try_new(self.exprs.iter().cloned(), child)?;
        Ok(Arc::new(MorselExec::from_projection(
            &projection,
            self.config.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let errors = context
            .session_config()
            .get_extension::<RowErrorSink>()
            .unwrap_or_else(|| self.shared.own_errors.clone());
        let input = self.input.execute(partition, context)?;
        let metrics = PartitionMetrics::new(&self.metrics, partition, &self.config.models);
        let (tx, rx) = mpsc::channel(self.config.max_in_flight.max(1));
        let driver = Driver {
            exprs: self.exprs.clone(),
            schema: self.schema.clone(),
            config: self.config.clone(),
            shared: self.shared.clone(),
            metrics,
            in_flight_slots: Arc::new(Semaphore::new(self.config.max_in_flight.max(1))),
            errors,
        };
        let task = SpawnedTask::spawn(driver.run(input, tx));
        // The stream owns the driver task: dropping the stream aborts it.
        let stream = futures::stream::unfold((rx, task), |(mut rx, task)| async move {
            let item: Item = rx.recv().await?;
            let batch = item.map(|(batch, guard)| {
                drop(guard);
                batch
            });
            Some((batch, (rx, task)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Per-partition metrics.
#[derive(Debug, Clone)]
struct PartitionMetrics {
    input_rows: Count,
    output_rows: Count,
    output_bytes: Count,
    morsels: Count,
    compute: Time,
    /// Time finished morsels waited for the consumer to take them.
    backpressure: Time,
    model: Option<ModelMetrics>,
}

/// A model operator's numbers: what its pools did while this query ran.
#[derive(Debug, Clone)]
struct ModelMetrics {
    pools: Vec<Arc<dyn ModelPool>>,
    batches: Count,
    batch_latency: Time,
    batch_latency_max_ms: Gauge,
    queue_depth_peak: Gauge,
    actors_peak: Gauge,
    actors: Gauge,
    builds: Gauge,
    failed_attempts: Gauge,
}

impl ModelMetrics {
    fn new(set: &ExecutionPlanMetricsSet, partition: usize, pools: &[Arc<dyn ModelPool>]) -> Self {
        Self {
            pools: pools.to_vec(),
            batches: MetricBuilder::new(set).counter("model_batches", partition),
            batch_latency: MetricBuilder::new(set).subset_time("model_batch_latency", partition),
            batch_latency_max_ms: MetricBuilder::new(set)
                .global_gauge("model_batch_latency_max_ms"),
            queue_depth_peak: MetricBuilder::new(set).global_gauge("model_queue_depth_peak"),
            actors_peak: MetricBuilder::new(set).global_gauge("model_actors_peak"),
            actors: MetricBuilder::new(set).global_gauge("model_actors"),
            builds: MetricBuilder::new(set).global_gauge("model_builds_total"),
            failed_attempts: MetricBuilder::new(set).global_gauge("model_failed_attempts_total"),
        }
    }

    /// Samples the pools (queue depth is sampled as batches go in and come out).
    fn sample(&self) {
        let mut actors = 0;
        let mut builds = 0;
        let mut failed = 0;
        for p in &self.pools {
            let s = p.stats();
            self.queue_depth_peak.set_max(s.queue_depth);
            self.actors_peak.set_max(s.actors);
            actors += s.actors;
            builds += s.builds as usize;
            failed += s.failed_attempts as usize;
        }
        self.actors.set(actors);
        self.builds.set(builds);
        self.failed_attempts.set(failed);
    }

    fn record_batch(&self, started: Instant) {
        self.batches.add(1);
        self.batch_latency.add_elapsed(started);
        let ms = started.elapsed().as_millis() as usize;
        self.batch_latency_max_ms.set_max(ms);
        self.sample();
    }
}

impl PartitionMetrics {
    fn new(set: &ExecutionPlanMetricsSet, partition: usize, pools: &[Arc<dyn ModelPool>]) -> Self {
        Self {
            model: (!pools.is_empty()).then(|| ModelMetrics::new(set, partition, pools)),
            input_rows: MetricBuilder::new(set).counter("input_rows", partition),
            output_rows: MetricBuilder::new(set).output_rows(partition),
            output_bytes: MetricBuilder::new(set).output_bytes(partition),
            morsels: MetricBuilder::new(set).counter("morsels", partition),
            compute: MetricBuilder::new(set).elapsed_compute(partition),
            backpressure: MetricBuilder::new(set).subset_time(BACKPRESSURE_METRIC, partition),
        }
    }
}

type Item = Result<(RecordBatch, InFlightGuard)>;

/// The metric of time an operator's finished output waited on its consumer.
pub const BACKPRESSURE_METRIC: &str = "backpressure_wait";
/// The metric of the most rows an operator held in flight.
pub const IN_FLIGHT_PEAK_METRIC: &str = "in_flight_rows_peak";

/// Runs one partition: pulls morsels, computes them, hands them on in order.
struct Driver {
    exprs: Arc<Vec<ProjectionExpr>>,
    schema: SchemaRef,
    config: MorselConfig,
    shared: Arc<Shared>,
    metrics: PartitionMetrics,
    in_flight_slots: Arc<Semaphore>,
    errors: Arc<RowErrorSink>,
}

impl Driver {
    async fn run(self, input: SendableRecordBatchStream, tx: mpsc::Sender<Item>) {
        if let Err(e) = self.pump(input, &tx).await {
            // The consumer may be gone already; then nobody needs the error.
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn pump(&self, input: SendableRecordBatchStream, tx: &mpsc::Sender<Item>) -> Result<()> {
        let mut splitter = MorselSplitter::new(input);
        let mut pending = FuturesOrdered::new();
        let mut input_done = false;
        let mut row_offset = 0usize;
        loop {
            let can_start = !input_done && pending.len() < self.config.max_in_flight.max(1);
            if !can_start && pending.is_empty() {
                // Every partition's rows are counted once the last ends: judge
                // the share of failed rows before the consumer sees the end.
                if self.shared.partitions_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.errors.check().map_err(DataFusionError::from)?;
                }
                return Ok(());
            }
            tokio::select! {
                biased;
                done = pending.next(), if !pending.is_empty() => {
                    let Some(done) = done else { continue };
                    let item: Item = done;
                    let item = item?;
                    let waited = Instant::now();
                    let sent = tx.send(Ok(item)).await;
                    self.metrics.backpressure.add_elapsed(waited);
                    if sent.is_err() {
                        return Ok(()); // consumer dropped the stream
                    }
                }
                permit = self.in_flight_slots.clone().acquire_owned(), if can_start => {
                    let permit = permit.map_err(|_| DataFusionError::Internal("in-flight slots closed".into()))?;
                    let Some(morsel) = splitter.next(self.shared.sizer.rows()).await? else {
                        input_done = true;
                        continue;
                    };
                    let rows = morsel.num_rows();
                    self.metrics.input_rows.add(rows);
                    self.metrics.morsels.add(1);
                    let guard = self.shared.in_flight.hold(rows, permit);
                    pending.push_back(self.compute(morsel, guard, row_offset));
                    row_offset += rows;
                }
            }
        }
    }

    /// Computes one morsel on a blocking thread, once a compute slot is free.
    fn compute(
        &self,
        morsel: RecordBatch,
        mut guard: InFlightGuard,
        row_offset: usize,
    ) -> impl std::future::Future<Output = Item> + Send + 'static {
        let exprs = self.exprs.clone();
        let schema = self.schema.clone();
        let shared = self.shared.clone();
        let metrics = self.metrics.clone();
        let label = self.config.label.clone();
        let errors = self.errors.clone();
        let task = SpawnedTask::spawn(async move {
            let _slot = shared
                .compute_slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| DataFusionError::Internal("compute slots closed".into()))?;
            let started = Instant::now();
            if let Some(m) = &metrics.model {
                m.sample();
            }
            let in_bytes = slice_bytes(&morsel);
            let checked_label = label.clone();
            let job = SpawnedTask::spawn_blocking(move || {
                let (out, failures) = capture(|| evaluate(&exprs, &morsel, schema));
                let out = out.map_err(|e| with_row_context(e, &morsel, row_offset))?;
                errors.add_checked(&checked_label, morsel.num_rows() as u64);
                drop_failed_rows(out, &morsel, failures, &errors)
            });
            let out = job.join().await.map_err(|e| {
                DataFusionError::Execution(format!("{label}: worker thread failed: {e}"))
            })??;
            metrics.compute.add_elapsed(started);
            if let Some(m) = &metrics.model {
                m.record_batch(started);
            }
            let (rows, bytes) = (out.batch.num_rows(), out.computed_bytes);
            // A morsel holds its input while computing: size by the larger side, so
            // wide inputs (full-size images going to a resize) get few rows too.
            shared.sizer.observe(rows, bytes.max(in_bytes));
            metrics.output_rows.add(rows);
            metrics.output_bytes.add(bytes);
            guard.set_rows(rows);
            Ok((out.batch, guard))
        });
        async move {
            task.join()
                .await
                .map_err(|e| DataFusionError::Execution(format!("morsel task failed: {e}")))?
        }
    }
}

pub(super) struct Evaluated {
    pub(super) batch: RecordBatch,
    /// Bytes of the columns this operator computed (pass-through columns excluded).
    pub(super) computed_bytes: usize,
}

fn evaluate(
    exprs: &[ProjectionExpr],
    morsel: &RecordBatch,
    schema: SchemaRef,
) -> Result<Evaluated> {
    let rows = morsel.num_rows();
    let mut computed_bytes = 0;
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(exprs.len());
    for e in exprs {
        let a = e.expr.evaluate(morsel)?.into_array(rows)?;
        if !is_column(&e.expr) {
            computed_bytes += a.get_array_memory_size();
        }
        cols.push(a);
    }
    let opts = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(Evaluated {
        batch: RecordBatch::try_new_with_options(schema, cols, &opts)?,
        computed_bytes,
    })
}

fn is_column(e: &Arc<dyn PhysicalExpr>) -> bool {
    e.downcast_ref::<datafusion::physical_expr::expressions::Column>()
        .is_some()
}

/// Turns a morsel-relative row error into one naming the partition-relative row and,
/// when the row has one, its URL or path.
fn with_row_context(
    e: DataFusionError,
    morsel: &RecordBatch,
    row_offset: usize,
) -> DataFusionError {
    let Some(EngineError::Row {
        function,
        row,
        source_value,
        message,
    }) = EngineError::find_row_error(&e)
    else {
        return e;
    };
    let source = source_value.clone().or_else(|| locate_source(morsel, *row));
    DataFusionError::External(Box::new(EngineError::Row {
        function,
        row: row_offset + row,
        source_value: source,
        message: message.clone(),
    }))
}

/// The URL or path of `row`, from a string column that holds one.
pub(super) fn locate_source(morsel: &RecordBatch, row: usize) -> Option<String> {
    let schema = morsel.schema();
    let mut best: Option<String> = None;
    for (i, f) in schema.fields().iter().enumerate() {
        let col = morsel.column(i);
        let Some(v) = string_value(col, row) else {
            continue;
        };
        let name = f.name().to_ascii_lowercase();
        let named = ["url", "uri", "path", "file"]
            .iter()
            .any(|n| name.contains(n));
        let looks = v.contains("://") || v.starts_with('/');
        if named && looks {
            return Some(format!("{}={v}", f.name()));
        }
        if looks && best.is_none() {
            best = Some(format!("{}={v}", f.name()));
        }
    }
    best
}

fn string_value(col: &ArrayRef, row: usize) -> Option<String> {
    if row >= col.len() || col.is_null(row) {
        return None;
    }
    use datafusion::arrow::datatypes::DataType;
    match col.data_type() {
        DataType::Utf8 => Some(col.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Some(col.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Some(col.as_string_view().value(row).to_string()),
        _ => None,
    }
}
