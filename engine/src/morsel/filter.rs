//! [`StreamingFilterExec`]: a filter that passes each batch on as soon as it is
//! filtered, for inputs with wide rows.
//!
//! DataFusion's `FilterExec` coalesces its output up to 8192 rows; over a column of
//! decoded images that piles gigabytes up before anything moves on, which breaks the
//! morsel operators' memory bound. Batches from a morsel operator are already sized
//! in bytes, so this filter leaves them as they are.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::compute::filter_record_batch;
use datafusion::common::cast::as_boolean_array;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

/// Filters batch by batch without coalescing (see the module docs).
#[derive(Debug)]
pub struct StreamingFilterExec {
    predicate: Arc<dyn PhysicalExpr>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl StreamingFilterExec {
    /// Replaces `filter`, which must have no embedded projection or fetch.
    pub fn from_filter(filter: &FilterExec) -> Self {
        Self {
            predicate: filter.predicate().clone(),
            input: filter.input().clone(),
            properties: filter.properties().clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl StreamingFilterExec {
    /// A streaming filter of `input` by `predicate`, as a plain filter would be.
    pub fn try_new(
        predicate: Arc<dyn PhysicalExpr>,
        input: Arc<dyn ExecutionPlan>,
    ) -> datafusion::error::Result<Self> {
        Ok(Self::from_filter(&FilterExec::try_new(predicate, input)?))
    }

    /// The rows this filter keeps.
    pub fn predicate(&self) -> &Arc<dyn PhysicalExpr> {
        &self.predicate
    }
}

impl DisplayAs for StreamingFilterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StreamingFilterExec: {}", self.predicate)
    }
}

impl ExecutionPlan for StreamingFilterExec {
    crate::unary_exec_methods!("StreamingFilterExec");

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let child = children.into_iter().next().ok_or_else(|| {
            DataFusionError::Internal("StreamingFilterExec needs one child".into())
        })?;
        let filter = FilterExec::try_new(self.predicate.clone(), child)?;
        Ok(Arc::new(Self::from_filter(&filter)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let predicate = self.predicate.clone();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let stream = input.filter_map(move |batch| {
            let predicate = predicate.clone();
            let baseline = baseline.clone();
            async move {
                let out = batch.and_then(|batch| {
                    let _timer = baseline.elapsed_compute().timer();
                    let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
                    let mask = as_boolean_array(&mask)?;
                    Ok(filter_record_batch(&batch, mask)?)
                });
                match out {
                    Ok(b) if b.num_rows() == 0 => None,
                    Ok(b) => {
                        baseline.record_output(b.num_rows());
                        Some(Ok(b))
                    }
                    Err(e) => Some(Err(e)),
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
