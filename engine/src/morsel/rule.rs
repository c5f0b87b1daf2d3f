//! The physical optimizer rule that puts expensive projections into morsel operators.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::Partitioning;

use super::exec::{MorselConfig, MorselExec};
use super::filter::StreamingFilterExec;
use crate::functions::{FunctionCost, FunctionRegistry};
use crate::EngineOptions;

/// Replaces projections that call expensive functions with [`MorselExec`].
#[derive(Debug)]
pub struct MorselRule {
    registry: FunctionRegistry,
    options: EngineOptions,
}

impl MorselRule {
    /// A rule that consults `registry` for function costs.
    pub fn new(registry: FunctionRegistry, options: EngineOptions) -> Self {
        Self { registry, options }
    }

    fn config_for(&self, projection: &ProjectionExec) -> Option<MorselConfig> {
        let mut names = Vec::new();
        let mut costs = Vec::new();
        for e in projection.expr() {
            collect_costs(&e.expr, &self.registry, &mut names, &mut costs);
        }
        if costs.is_empty() {
            return None;
        }
        let io = costs.contains(&FunctionCost::Io);
        let fixed_rows = costs
            .iter()
            .filter_map(|c| match c {
                FunctionCost::Batch(n) => Some(*n),
                _ => None,
            })
            .min();
        names.dedup();
        let o = &self.options;
        Some(MorselConfig {
            label: names.join("+"),
            concurrency: if io {
                o.io_concurrency
            } else {
                o.cpu_concurrency
            },
            max_in_flight: o
                .max_in_flight_morsels
                .max(if io { o.io_concurrency } else { 1 }),
            morsel_bytes: o.morsel_bytes,
            first_rows: o.first_morsel_rows,
            max_rows: o.max_morsel_rows,
            fixed_rows,
        })
    }
}

impl MorselRule {
    /// A filter over a morsel operator must not coalesce its wide rows.
    fn rewrite_filter(
        &self,
        filter: &FilterExec,
        node: Arc<dyn ExecutionPlan>,
    ) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
        if !feeds_from_morsels(filter.input()) {
            return Ok(Transformed::no(node));
        }
        if filter.projection().is_none() && filter.fetch().is_none() {
            return Ok(Transformed::yes(Arc::new(
                StreamingFilterExec::from_filter(filter),
            )));
        }
        // A filter with an embedded projection or limit stays, coalescing little.
        let small = self.options.first_morsel_rows.max(1);
        Ok(Transformed::yes(Arc::new(filter.with_batch_size(small)?)))
    }
}

/// The input of a round-robin repartition, if `plan` is one.
fn unwrap_round_robin(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let r = plan.downcast_ref::<RepartitionExec>()?;
    match r.partitioning() {
        Partitioning::RoundRobinBatch(_) => Some(r.input().clone()),
        _ => None,
    }
}

/// True if rows reach `plan` from a morsel operator through row-by-row operators.
fn feeds_from_morsels(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if plan.downcast_ref::<MorselExec>().is_some() {
        return true;
    }
    let streaming = plan.downcast_ref::<ProjectionExec>().is_some()
        || plan.downcast_ref::<FilterExec>().is_some()
        || plan.downcast_ref::<StreamingFilterExec>().is_some()
        || plan.name() == "RepartitionExec"
        || plan.name() == "CoalescePartitionsExec";
    streaming && plan.children().iter().any(|c| feeds_from_morsels(c))
}

fn collect_costs(
    e: &Arc<dyn PhysicalExpr>,
    registry: &FunctionRegistry,
    names: &mut Vec<String>,
    costs: &mut Vec<FunctionCost>,
) {
    for c in e.children() {
        collect_costs(c, registry, names, costs);
    }
    if let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() {
        if let Some(cost) = registry.cost(f.name()) {
            names.push(f.name().to_string());
            costs.push(cost);
        }
    }
}

impl PhysicalOptimizerRule for MorselRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if let Some(filter) = node.downcast_ref::<FilterExec>() {
                return self.rewrite_filter(filter, node.clone());
            }
            let Some(projection) = node.downcast_ref::<ProjectionExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(cfg) = self.config_for(projection) else {
                return Ok(Transformed::no(node));
            };
            // A morsel operator parallelises across morsels itself; a round-robin
            // repartition in front of it would only split its in-flight bound.
            let rebuilt;
            let projection = match unwrap_round_robin(projection.input()) {
                Some(input) => {
                    rebuilt = ProjectionExec::try_new(projection.expr().iter().cloned(), input)?;
                    &rebuilt
                }
                None => projection,
            };
            Ok(Transformed::yes(
                Arc::new(MorselExec::from_projection(projection, cfg)) as Arc<dyn ExecutionPlan>,
            ))
        })
        .data()
    }

    fn name(&self) -> &str {
        "regatta_morsel_operators"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
