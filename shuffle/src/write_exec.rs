//! [`ShuffleWriteExec`]: the root of every stage; writes one task's output to
//! shuffle files.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;
use regatta_common::{JobId, MapPartition, StageId};

use crate::{OutputSink, PartitionOutput, ShuffleError, ShuffleLayout, ShuffleWriter};

/// What one task of a stage produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutput {
    /// Rows (and bytes) per output partition.
    pub outputs: Vec<PartitionOutput>,
    /// A write task's staged output for the commit (see [`crate::StagedOutput`]).
    pub written: String,
}

/// How a stage's output is split for the next stage.
#[derive(Debug, Clone)]
pub enum ShufflePartitioning {
    /// By the hash of key expressions into this many partitions.
    Hash(Vec<Arc<dyn PhysicalExpr>>, usize),
    /// Each task's output is its own partition (gathered by a coalesce or merge, or
    /// the job's result).
    PerTask,
    /// Rows dealt round-robin, in slices of each batch, over this many partitions:
    /// spreads a scan with few partitions over more tasks for the expensive
    /// operators above it.
    Spread(usize),
}

/// Runs one partition of its input and writes it to shuffle files.
#[derive(Debug, Clone)]
pub struct ShuffleWriteExec {
    job: JobId,
    stage: StageId,
    input: Arc<dyn ExecutionPlan>,
    partitioning: ShufflePartitioning,
    /// Where files go; only known on the worker that runs the task.
    layout: Option<ShuffleLayout>,
    /// Set on a write job's last stage: rows go there instead of to shuffle files.
    sink: Option<OutputSink>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ShuffleWriteExec {
    /// A stage root writing `input`'s partitions for stage `stage` of `job`.
    pub fn new(
        (job, stage): (JobId, StageId),
        input: Arc<dyn ExecutionPlan>,
        partitioning: ShufflePartitioning,
        layout: Option<ShuffleLayout>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(stats_schema()),
            Partitioning::UnknownPartitioning(
                input.properties().output_partitioning().partition_count(),
            ),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            job,
            stage,
            input,
            partitioning,
            layout,
            sink: None,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The same stage writing its rows to `sink` (a write job's last stage).
    pub fn with_sink(mut self, sink: Option<OutputSink>) -> Self {
        self.sink = sink;
        self
    }

    /// Where a write job's last stage writes, if this is one.
    pub fn sink(&self) -> Option<&OutputSink> {
        self.sink.as_ref()
    }

    /// Runs input partition `partition` as attempt `attempt` of its task: to
    /// the sink when there is one, else to shuffle files.
    pub async fn run_task(
        &self,
        partition: usize,
        attempt: u32,
        ctx: Arc<TaskContext>,
    ) -> DfResult<TaskOutput> {
        let Some(sink) = &self.sink else {
            return Ok(TaskOutput {
                outputs: self.write(partition, ctx).await?,
                written: String::new(),
            });
        };
        let stream = self.input.execute(partition, ctx)?;
        let staged = sink.write(stream, partition as u32, attempt).await?;
        Ok(TaskOutput {
            outputs: vec![PartitionOutput {
                partition: partition as u32,
                rows: staged.rows,
                bytes: 0,
                path: std::path::PathBuf::from(&sink.path),
            }],
            written: staged.written,
        })
    }

    pub fn job(&self) -> JobId {
        self.job
    }

    pub fn stage(&self) -> StageId {
        self.stage
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    pub fn partitioning(&self) -> &ShufflePartitioning {
        &self.partitioning
    }

    /// Partitions of the output: what the next stage's reader sees.
    pub fn output_partitions(&self) -> usize {
        match &self.partitioning {
            ShufflePartitioning::Hash(_, n) | ShufflePartitioning::Spread(n) => *n,
            ShufflePartitioning::PerTask => self
                .input
                .properties()
                .output_partitioning()
                .partition_count(),
        }
    }

    /// Runs input partition `partition` (one task) to completion and writes its
    /// output. Returns what it wrote per output partition.
    pub async fn write(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> DfResult<Vec<PartitionOutput>> {
        let layout = self.layout.clone().ok_or_else(|| {
            DataFusionError::Internal("shuffle write without a spill directory".into())
        })?;
        let task = MapPartition(partition as u64);
        let mut writer = ShuffleWriter::new(
            layout,
            (self.job, self.stage, task),
            self.input.schema(),
            self.output_partitions() as u32,
        )
        .map_err(external)?;
        let timer = MetricBuilder::new(&self.metrics).subset_time("repart_time", partition);
        // Time spent encoding and writing shuffle files (the task report's
        // shuffle-write share).
        let write_time = MetricBuilder::new(&self.metrics).subset_time("write_time", partition);
        let mut partitioner =
            match &self.partitioning {
                ShufflePartitioning::Hash(exprs, n) => Some(
                    BatchPartitioner::new_hash_partitioner(exprs.clone(), *n, timer)?,
                ),
                ShufflePartitioning::PerTask | ShufflePartitioning::Spread(_) => None,
            };
        let spread = match &self.partitioning {
            ShufflePartitioning::Spread(n) => Some((*n).max(1)),
            _ => None,
        };
        // Tasks start dealing at different partitions, so small inputs spread too.
        let mut next = partition;
        let mut stream = self.input.execute(partition, ctx)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            match (partitioner.as_mut(), spread) {
                (Some(p), _) => p.partition(batch, |part, b| {
                    let _t = write_time.timer();
                    writer.append(part as u32, &b).map_err(external)
                })?,
                (None, Some(n)) => {
                    // Rows, not batches, are dealt: a small scan is often one batch.
                    let rows = batch.num_rows();
                    let chunk = rows.div_ceil(n);
                    for offset in (0..rows).step_by(chunk) {
                        let slice = batch.slice(offset, chunk.min(rows - offset));
                        let _t = write_time.timer();
                        writer.append((next % n) as u32, &slice).map_err(external)?;
                        next += 1;
                    }
                }
                (None, None) => {
                    let _t = write_time.timer();
                    writer.append(partition as u32, &batch).map_err(external)?
                }
            }
        }
        let _t = write_time.timer();
        writer.finish().map_err(external)
    }
}

fn external(e: ShuffleError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The schema of what `execute` yields: one row per written partition.
fn stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
    ]))
}

impl DisplayAs for ShuffleWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(sink) = &self.sink {
            return write!(
                f,
                "ShuffleWriteExec: {}/{} write {:?} ({}) to {}",
                self.job, self.stage, sink.format, sink.mode, sink.path
            );
        }
        match &self.partitioning {
            ShufflePartitioning::Hash(exprs, n) => {
                let keys: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                write!(
                    f,
                    "ShuffleWriteExec: {}/{} hash([{}], {n})",
                    self.job,
                    self.stage,
                    keys.join(", ")
                )
            }
            ShufflePartitioning::PerTask => {
                write!(f, "ShuffleWriteExec: {}/{} per task", self.job, self.stage)
            }
            ShufflePartitioning::Spread(n) => {
                write!(
                    f,
                    "ShuffleWriteExec: {}/{} spread({n})",
                    self.job, self.stage
                )
            }
        }
    }
}

impl ExecutionPlan for ShuffleWriteExec {
    fn name(&self) -> &str {
        "ShuffleWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("ShuffleWriteExec needs one child".into()))?;
        Ok(Arc::new(
            Self::new(
                (self.job, self.stage),
                input,
                self.partitioning.clone(),
                self.layout.clone(),
            )
            .with_sink(self.sink.clone()),
        ))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let me = self.clone();
        let stream = futures::stream::once(async move {
            let outputs = me.write(partition, context).await?;
            let parts: UInt32Array = outputs.iter().map(|o| o.partition).collect();
            let rows: UInt64Array = outputs.iter().map(|o| o.rows).collect();
            let bytes: UInt64Array = outputs.iter().map(|o| o.bytes).collect();
            Ok(RecordBatch::try_new(
                stats_schema(),
                vec![Arc::new(parts), Arc::new(rows), Arc::new(bytes)],
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            stats_schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
