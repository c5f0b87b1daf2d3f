//! [`ShuffleReadExec`]: the leaf of a stage that reads an earlier stage's output.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{
    ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::{Stream, StreamExt, TryStreamExt};
use regatta_common::{JobId, StageId};
use regatta_engine::plan_methods::leaf_properties;

use crate::{MapLocation, ShuffleFetcher};

/// Map outputs one reduce task reads at once.
const FETCH_CONCURRENCY: usize = 4;

/// Where a task finds its inputs: every map output of the stage it reads.
#[derive(Debug, Clone)]
pub struct ShuffleInput {
    pub maps: Vec<MapLocation>,
    pub fetcher: Arc<ShuffleFetcher>,
}

/// Reads partition `p` of stage `stage`: every map output's file for `p`.
#[derive(Debug)]
pub struct ShuffleReadExec {
    job: JobId,
    stage: StageId,
    schema: SchemaRef,
    /// Known only on the worker that runs the task.
    input: Option<ShuffleInput>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ShuffleReadExec {
    /// A reader of `partitions` partitions of `stage`'s output.
    pub fn new(
        (job, stage): (JobId, StageId),
        schema: SchemaRef,
        partitions: usize,
        input: Option<ShuffleInput>,
    ) -> Self {
        let properties = leaf_properties(&schema, partitions);
        Self {
            job,
            stage,
            schema,
            input,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn job(&self) -> JobId {
        self.job
    }

    pub fn stage(&self) -> StageId {
        self.stage
    }

    pub fn partitions(&self) -> usize {
        self.properties.partitioning.partition_count()
    }
}

impl DisplayAs for ShuffleReadExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ShuffleReadExec: {}/{} partitions={}",
            self.job,
            self.stage,
            self.partitions()
        )
    }
}

impl ExecutionPlan for ShuffleReadExec {
    regatta_engine::leaf_exec_methods!("ShuffleReadExec");

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.clone().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "{}/{}: shuffle read without input locations",
                self.job, self.stage
            ))
        })?;
        let part = partition as u32;
        let ids = (self.job, self.stage);
        let maps: Vec<MapLocation> = input
            .maps
            .iter()
            .filter(|m| m.partitions.contains(&part))
            .cloned()
            .collect();
        let fetcher = input.fetcher.clone();
        // Several map outputs are read at once (a slow worker does not stall the
        // rest), each as a stream: the task holds a few batches per input, not
        // its inputs whole. Rows of one partition have no order to keep.
        let stream = futures::stream::iter(maps)
            .map(move |map| {
                let fetcher = fetcher.clone();
                async move { fetcher.fetch(ids, &map, part).await }
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_flatten_unordered(FETCH_CONCURRENCY)
            .map_err(|e| DataFusionError::External(Box::new(e)));
        // Time spent waiting for input batches (the task report's shuffle-read
        // share): fetching, reading and decoding them.
        let fetch_time = MetricBuilder::new(&self.metrics).subset_time("fetch_time", partition);
        let stream = Timed {
            inner: Box::pin(stream),
            time: fetch_time,
            waiting_since: None,
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// A stream that adds to `time` how long its consumer waited for each batch:
/// from the first poll that found none ready to the batch (network waits
/// included, which time inside polls would miss).
struct Timed {
    inner: std::pin::Pin<Box<dyn Stream<Item = DfResult<RecordBatch>> + Send>>,
    time: Time,
    waiting_since: Option<std::time::Instant>,
}

impl Stream for Timed {
    type Item = DfResult<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let since = *self
            .waiting_since
            .get_or_insert_with(std::time::Instant::now);
        let polled = self.inner.poll_next_unpin(cx);
        if polled.is_ready() {
            self.time.add_duration(since.elapsed());
            self.waiting_since = None;
        }
        polled
    }
}
