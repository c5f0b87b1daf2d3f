//! The [`OperatorSummary`]s of a finished physical plan, read off its metrics.

use std::sync::Arc;

use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::ExecutionPlan;

use crate::morsel::{MorselExec, BACKPRESSURE_METRIC, IN_FLIGHT_PEAK_METRIC};

pub use regatta_common::OperatorSummary;

/// Every operator of `plan`, pre-order, with its metrics so far; operators
/// named in `pass_through` (wrappers that add nothing to look at) are left out.
pub fn operator_summaries(
    plan: &Arc<dyn ExecutionPlan>,
    pass_through: &[&str],
) -> Vec<OperatorSummary> {
    let mut out = Vec::new();
    walk(plan, 0, pass_through, &mut out);
    out
}

fn walk(
    plan: &Arc<dyn ExecutionPlan>,
    depth: u32,
    pass_through: &[&str],
    out: &mut Vec<OperatorSummary>,
) {
    if pass_through.contains(&plan.name()) {
        for c in plan.children() {
            walk(c, depth, pass_through, out);
        }
        return;
    }
    let index = out.len() as u32;
    let metrics = plan.metrics();
    // Every metric of this name, whatever its kind (sum_by_name skips the
    // built-in kinds such as output_bytes).
    let sum = |name: &str| {
        metrics
            .as_ref()
            .and_then(|m| m.sum(|x| x.value().name() == name))
            .map_or(0, |v| v.as_usize() as u64)
    };
    let gauge_max = |name: &str| {
        metrics.as_ref().map_or(0, |m| {
            m.iter()
                .filter(|x| x.value().name() == name)
                .map(|x| match x.value() {
                    MetricValue::Gauge { gauge, .. } => gauge.value() as u64,
                    other => other.as_usize() as u64,
                })
                .max()
                .unwrap_or(0)
        })
    };
    let name = match plan.downcast_ref::<MorselExec>() {
        Some(m) => format!("{} ({})", plan.name(), m.config().label),
        None => plan.name().to_string(),
    };
    let children = plan.children();
    let rows_in_children: u64 = children
        .iter()
        .map(|c| rows_out_through(c, pass_through))
        .sum();
    let rows_in = match sum("input_rows") {
        0 => rows_in_children,
        n => n,
    };
    out.push(OperatorSummary {
        index,
        depth,
        name,
        rows_in,
        rows_out: metrics
            .as_ref()
            .and_then(|m| m.output_rows())
            .map_or(0, |n| n as u64),
        // A scan measures what it read instead.
        bytes_out: match sum("output_bytes") {
            0 => sum("bytes_scanned"),
            n => n,
        },
        compute_nanos: metrics
            .as_ref()
            .and_then(|m| m.elapsed_compute())
            .map_or(0, |n| n as u64),
        in_flight_peak: gauge_max(IN_FLIGHT_PEAK_METRIC),
        backpressure_nanos: sum(BACKPRESSURE_METRIC),
    });
    for c in children {
        walk(c, depth + 1, pass_through, out);
    }
}

/// The rows `plan` gave out, looking through pass-through wrappers.
fn rows_out_through(plan: &Arc<dyn ExecutionPlan>, pass_through: &[&str]) -> u64 {
    if pass_through.contains(&plan.name()) {
        return plan
            .children()
            .iter()
            .map(|c| rows_out_through(c, pass_through))
            .sum();
    }
    plan.metrics()
        .and_then(|m| m.output_rows())
        .map_or(0, |n| n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Engine;

    #[tokio::test]
    async fn a_finished_plan_reports_each_operator_rows_in_order() {
        let engine = Engine::new(Default::default()).unwrap();
        let ctx = engine.context();
        let df = ctx
            .sql("SELECT v * 2 AS w FROM (VALUES (1), (2), (3)) AS t(v) WHERE v > 1")
            .await
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
            .await
            .unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let ops = operator_summaries(&plan, &["RepartitionExec"]);
        assert_eq!(ops[0].index, 0);
        assert_eq!(ops[0].depth, 0);
        assert_eq!(ops[0].rows_out, rows as u64, "{ops:?}");
        let filter = ops
            .iter()
            .position(|o| o.name == "FilterExec")
            .expect("a filter");
        assert_eq!(ops[filter].rows_out, 2, "{ops:?}");
        // Its parent's input is what the filter let through.
        let parent = &ops[filter - 1];
        assert_eq!(
            (parent.depth + 1, parent.rows_in),
            (ops[filter].depth, 2),
            "{ops:?}"
        );
        assert!(ops.windows(2).all(|w| w[1].index == w[0].index + 1));
        assert!(ops.iter().all(|o| o.name != "RepartitionExec"), "{ops:?}");
    }
}
