//! A running query with access to its operators' metrics.

use std::sync::Arc;

use regatta_engine::datafusion::physical_plan::metrics::MetricValue;
use regatta_engine::datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};

/// A query being executed: its output stream and its plan.
pub struct Execution {
    plan: Arc<dyn ExecutionPlan>,
    /// The query's output; poll it to make progress.
    pub stream: SendableRecordBatchStream,
}

impl std::fmt::Debug for Execution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execution").finish_non_exhaustive()
    }
}

/// Metrics of one operator, summed over its partitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorMetrics {
    /// The operator's name (`MorselExec`, `ParquetExec`, ...).
    pub name: String,
    /// Its one-line description from the plan.
    pub description: String,
    /// Rows produced.
    pub output_rows: usize,
    /// Bytes produced (where the operator counts them).
    pub output_bytes: usize,
    /// CPU time spent computing, in nanoseconds.
    pub compute_nanos: usize,
    /// Most rows the operator held at once (morsel operators).
    pub in_flight_rows_peak: Option<usize>,
    /// Every other named counter or gauge.
    pub others: Vec<(String, usize)>,
}

impl Execution {
    pub(crate) fn new(plan: Arc<dyn ExecutionPlan>, stream: SendableRecordBatchStream) -> Self {
        Self { plan, stream }
    }

    /// Takes the output stream out (to hand it to a writer), leaving an empty one;
    /// the metrics stay readable.
    pub fn take_stream(&mut self) -> SendableRecordBatchStream {
        let empty = Box::pin(
            regatta_engine::datafusion::physical_plan::EmptyRecordBatchStream::new(
                self.stream.schema(),
            ),
        );
        std::mem::replace(&mut self.stream, empty)
    }

    /// The physical plan being run.
    pub fn plan(&self) -> &Arc<dyn ExecutionPlan> {
        &self.plan
    }

    /// Every operator's metrics so far, in plan order (root first).
    pub fn metrics(&self) -> Vec<OperatorMetrics> {
        let mut out = Vec::new();
        collect(&self.plan, &mut out);
        out
    }
}

fn collect(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<OperatorMetrics>) {
    let mut m = OperatorMetrics {
        name: plan.name().to_string(),
        description: one_line(plan),
        ..Default::default()
    };
    if let Some(set) = plan.metrics() {
        let set = set.aggregate_by_name();
        for metric in set.iter() {
            let v = metric.value();
            match v {
                MetricValue::OutputRows(c) => m.output_rows += c.value(),
                MetricValue::OutputBytes(c) => m.output_bytes += c.value(),
                MetricValue::ElapsedCompute(t) => m.compute_nanos += t.value(),
                MetricValue::Gauge { name, gauge } if name == "in_flight_rows_peak" => {
                    m.in_flight_rows_peak = Some(gauge.value())
                }
                MetricValue::Count { name, count } => {
                    m.others.push((name.to_string(), count.value()))
                }
                MetricValue::Gauge { name, gauge } => {
                    m.others.push((name.to_string(), gauge.value()))
                }
                _ => {}
            }
        }
    }
    out.push(m);
    for c in plan.children() {
        collect(c, out);
    }
}

fn one_line(plan: &Arc<dyn ExecutionPlan>) -> String {
    use regatta_engine::datafusion::physical_plan::displayable;
    displayable(plan.as_ref())
        .one_line()
        .to_string()
        .trim()
        .to_string()
}
