//! The physical optimizer rule that puts expensive projections into morsel operators.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExpr;
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

/// Replaces projections that call expensive functions with [`MorselExec`], and
/// filters over them with [`StreamingFilterExec`].
///
/// It runs twice. First, before DataFusion's own rules: otherwise projection
/// pushdown folds an expensive projection into the file scan, which then evaluates
/// it over whole batches with no bound at all. Last, after them: filters are only
/// final then, and any projection a rule created in between is caught.
#[derive(Debug)]
pub struct MorselRule {
    registry: FunctionRegistry,
    options: EngineOptions,
    last: bool,
}

impl MorselRule {
    /// The rule that runs before DataFusion's physical optimizer rules.
    pub fn first(registry: FunctionRegistry, options: EngineOptions) -> Self {
        Self {
            registry,
            options,
            last: false,
        }
    }

    /// The rule that runs after them.
    pub fn last(registry: FunctionRegistry, options: EngineOptions) -> Self {
        Self {
            registry,
            options,
            last: true,
        }
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
    /// The morsel operator(s) computing `exprs` over `input`.
    fn morsel_plan(
        &self,
        exprs: &[ProjectionExpr],
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (input, exprs) = match self.split_batch_args(exprs, &input)? {
            Some((lower, upper)) => (self.operator(lower, input)?, upper),
            None => (input, exprs.to_vec()),
        };
        self.operator(exprs, input)
    }

    fn operator(
        &self,
        exprs: Vec<ProjectionExpr>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection = ProjectionExec::try_new(exprs, input)?;
        Ok(match self.config_for(&projection) {
            Some(cfg) => Arc::new(MorselExec::from_projection(&projection, cfg)),
            None => Arc::new(projection),
        })
    }

    /// A batch function must get its declared rows per call; if its arguments are
    /// themselves expensive (say `model(image_resize(decoded))`), computing them in the
    /// same morsel would hold that many *inputs* (full-size images) at once. So the
    /// arguments move into an operator of their own, sized in bytes, and the batch
    /// function's operator then holds only the small results.
    ///
    /// Returns the lower expressions (input columns, then the arguments) and the
    /// upper ones (the original, reading the arguments as columns).
    #[allow(clippy::type_complexity)]
    fn split_batch_args(
        &self,
        exprs: &[ProjectionExpr],
        input: &Arc<dyn ExecutionPlan>,
    ) -> Result<Option<(Vec<ProjectionExpr>, Vec<ProjectionExpr>)>> {
        let schema = input.schema();
        let width = schema.fields().len();
        let mut args: Vec<ProjectionExpr> = Vec::new();
        let mut upper = Vec::with_capacity(exprs.len());
        for pe in exprs {
            let rewritten = pe.expr.clone().transform_down(|e| {
                let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() else {
                    return Ok(Transformed::no(e));
                };
                if !matches!(self.registry.cost(f.name()), Some(FunctionCost::Batch(_))) {
                    return Ok(Transformed::no(e));
                }
                let mut changed = false;
                let mut children = Vec::new();
                for arg in e.children() {
                    if is_expensive(arg, &self.registry) {
                        let index = width + args.len();
                        let name = format!("__regatta_arg_{index}");
                        args.push(ProjectionExpr {
                            expr: arg.clone(),
                            alias: name.clone(),
                        });
                        children.push(Arc::new(Column::new(&name, index)) as Arc<dyn PhysicalExpr>);
                        changed = true;
                    } else {
                        children.push(arg.clone());
                    }
                }
                if !changed {
                    return Ok(Transformed::no(e));
                }
                let e = e.with_new_children(children)?;
                Ok(Transformed::new(e, true, TreeNodeRecursion::Jump))
            })?;
            upper.push(ProjectionExpr {
                expr: rewritten.data,
                alias: pe.alias.clone(),
            });
        }
        if args.is_empty() {
            return Ok(None);
        }
        let mut lower: Vec<ProjectionExpr> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| ProjectionExpr {
                expr: Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>,
                alias: f.name().clone(),
            })
            .collect();
        lower.extend(args);
        Ok(Some((lower, upper)))
    }

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

fn is_expensive(e: &Arc<dyn PhysicalExpr>, registry: &FunctionRegistry) -> bool {
    let mut names = Vec::new();
    let mut costs = Vec::new();
    collect_costs(e, registry, &mut names, &mut costs);
    !costs.is_empty()
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
                if self.last {
                    return self.rewrite_filter(filter, node.clone());
                }
                return Ok(Transformed::no(node));
            }
            let Some(projection) = node.downcast_ref::<ProjectionExec>() else {
                return Ok(Transformed::no(node));
            };
            if self.config_for(projection).is_none() {
                return Ok(Transformed::no(node));
            }
            // A morsel operator parallelises across morsels itself; a round-robin
            // repartition in front of it would only split its in-flight bound.
            let input = unwrap_round_robin(projection.input())
                .unwrap_or_else(|| projection.input().clone());
            Ok(Transformed::yes(
                self.morsel_plan(projection.expr(), input)?,
            ))
        })
        .data()
    }

    fn name(&self) -> &str {
        if self.last {
            "regatta_morsel_operators_last"
        } else {
            "regatta_morsel_operators_first"
        }
    }

    fn schema_check(&self) -> bool {
        true
    }
}
