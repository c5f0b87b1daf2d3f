//! [`YieldExec`]: gives the runtime a turn after every batch an operator produces.
//!
//! Tokio only acts on an abort when the task yields, and a task whose inputs are
//! always ready yields only every 128 source batches (its co-operative budget).
//! Behind a join or an expensive expression that can be many seconds, so a
//! cancelled job's tasks would keep their cores. Yielding after each batch of each
//! operator bounds the delay by the work of one batch; a yield costs about a
//! microsecond, against milliseconds of work per batch.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use regatta_engine::datafusion::arrow::datatypes::SchemaRef;
use regatta_engine::datafusion::arrow::record_batch::RecordBatch;
use regatta_engine::datafusion::common::tree_node::{Transformed, TreeNode};
use regatta_engine::datafusion::error::{DataFusionError, Result};
use regatta_engine::datafusion::execution::{RecordBatchStream, TaskContext};
use regatta_engine::datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

/// Wraps an operator so its stream yields to the runtime after each batch.
#[derive(Debug)]
pub struct YieldExec {
    input: Arc<dyn ExecutionPlan>,
}

impl YieldExec {
    /// Its operator name.
    pub const NAME: &'static str = "YieldExec";

    /// `plan` with every operator below its root wrapped (the root stays itself:
    /// callers look at its type).
    pub fn wrap_below_root(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let wrapped = plan
            .transform_up(|node| {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(YieldExec { input: node });
                Ok(Transformed::yes(wrapped))
            })?
            .data;
        Ok(match wrapped.downcast_ref::<YieldExec>() {
            Some(root) => root.input.clone(),
            None => wrapped,
        })
    }
}

impl DisplayAs for YieldExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "YieldExec")
    }
}

impl ExecutionPlan for YieldExec {
    regatta_engine::unary_exec_methods!(Self::NAME);

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("YieldExec needs one child".into()))?;
        Ok(Arc::new(Self { input }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(YieldStream {
            input: self.input.execute(partition, context)?,
            yield_next: false,
        }))
    }
}

struct YieldStream {
    input: SendableRecordBatchStream,
    yield_next: bool,
}

impl Stream for YieldStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.yield_next {
            self.yield_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = self.input.as_mut().poll_next(cx);
        if matches!(next, Poll::Ready(Some(_))) {
            self.yield_next = true;
        }
        next
    }
}

impl RecordBatchStream for YieldStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
