//! The physical optimizer rule that puts expensive projections into morsel operators.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::ExecutionPlan;

use super::exec::{MorselConfig, MorselExec};
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
            let Some(projection) = node.downcast_ref::<ProjectionExec>() else {
                return Ok(Transformed::no(node));
            };
            match self.config_for(projection) {
                Some(cfg) => Ok(Transformed::yes(Arc::new(MorselExec::from_projection(
                    projection, cfg,
                ))
                    as Arc<dyn ExecutionPlan>)),
                None => Ok(Transformed::no(node)),
            }
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
