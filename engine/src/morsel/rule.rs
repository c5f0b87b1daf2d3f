//! The physical optimizer rule that puts expensive projections into morsel operators.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::{ProjectionExpr, ProjectionExprs};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::Partitioning;

use super::exec::{MorselConfig, MorselExec};
use super::filter::StreamingFilterExec;
use crate::functions::{FunctionCost, FunctionRegistry, ModelPool, ModelUdf};
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
                FunctionCost::Batch(n) | FunctionCost::Model(n) => Some(*n),
                _ => None,
            })
            .min();
        names.dedup();
        let mut models = Vec::new();
        for e in projection.expr() {
            collect_models(&e.expr, &mut models);
        }
        // Keep two batches per actor waiting, so a pool's actors never idle for want
        // of input and its queue shows when it should grow.
        let model_depth = models.iter().map(|m| 2 * m.max_actors()).sum::<usize>();
        let o = &self.options;
        let base = if io {
            o.io_concurrency
        } else {
            o.cpu_concurrency
        };
        Some(MorselConfig {
            label: names.join("+"),
            concurrency: base.max(model_depth),
            max_in_flight: o
                .max_in_flight_morsels
                .max(if io { o.io_concurrency } else { 1 })
                .max(model_depth),
            models,
            morsel_bytes: o.morsel_bytes,
            first_rows: o.first_morsel_rows,
            max_rows: o.max_morsel_rows,
            fixed_rows,
        })
    }
}

impl MorselRule {
    /// The morsel operators computing `exprs` over `input`: one per level of nested
    /// expensive calls, innermost first, so each (download, decode, resize, a batch
    /// function) runs with its own concurrency, sized in bytes by what it holds, and
    /// no operator keeps another's intermediate results (full-size images on their
    /// way to a resize, say) beyond its own morsels.
    fn morsel_plan(
        &self,
        exprs: &[ProjectionExpr],
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut input = input;
        let mut exprs = exprs.to_vec();
        let mut stage = 0usize;
        loop {
            stage += 1;
            let schema = input.schema();
            let width = schema.fields().len();
            let (inner, outer) = self.extract_inner(&exprs, width, stage)?;
            if inner.is_empty() {
                break;
            }
            // Pass on only the input columns the outer expressions still read
            // (not, say, downloaded bytes once they are decoded).
            let mut used: Vec<usize> = outer
                .iter()
                .flat_map(|pe| collect_columns(&pe.expr))
                .map(|c| c.index())
                .filter(|&i| i < width)
                .collect();
            // Keep URL-like columns too: row errors name the URL of the failing row.
            used.extend(schema.fields().iter().enumerate().filter_map(|(i, f)| {
                let n = f.name().to_ascii_lowercase();
                let urlish = ["url", "uri", "path", "file"].iter().any(|k| n.contains(k));
                (urlish && !n.starts_with("__regatta_")).then_some(i)
            }));
            used.sort_unstable();
            used.dedup();
            let mut remap = std::collections::HashMap::new();
            let mut lower: Vec<ProjectionExpr> = Vec::new();
            for (new, &old) in used.iter().enumerate() {
                remap.insert(old, new);
                let f = schema.field(old);
                lower.push(ProjectionExpr {
                    expr: Arc::new(Column::new(f.name(), old)) as Arc<dyn PhysicalExpr>,
                    alias: f.name().clone(),
                });
            }
            for (k, e) in inner.into_iter().enumerate() {
                remap.insert(width + k, lower.len());
                lower.push(e);
            }
            input = self.operator(lower, input)?;
            exprs = outer
                .into_iter()
                .map(|pe| {
                    let expr = pe.expr.transform_up(|e| {
                        let Some(c) = e.downcast_ref::<Column>() else {
                            return Ok(Transformed::no(e));
                        };
                        match remap.get(&c.index()) {
                            Some(&i) => Ok(Transformed::yes(
                                Arc::new(Column::new(c.name(), i)) as Arc<dyn PhysicalExpr>
                            )),
                            None => Ok(Transformed::no(e)),
                        }
                    })?;
                    Ok(ProjectionExpr {
                        expr: expr.data,
                        alias: pe.alias,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        }
        self.per_model_operators(exprs, input)
    }

    /// Top-level calls of different models get an operator each, chained, so each
    /// pool runs with its own batch size, in-flight bound and pace (a slow image model
    /// does not hold a text model's batches back).
    fn per_model_operators(
        &self,
        mut exprs: Vec<ProjectionExpr>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut groups: Vec<(Arc<dyn ModelPool>, Vec<usize>)> = Vec::new();
        for (i, pe) in exprs.iter().enumerate() {
            let mut models = Vec::new();
            collect_models(&pe.expr, &mut models);
            if let [model] = models.as_slice() {
                match groups.iter_mut().find(|(m, _)| Arc::ptr_eq(m, model)) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((model.clone(), vec![i])),
                }
            }
        }
        let mut input = input;
        for (g, (_, members)) in groups.iter().enumerate().rev().skip(1) {
            let schema = input.schema();
            let width = schema.fields().len();
            let mut lower = pass_through(&schema);
            for (k, &i) in members.iter().enumerate() {
                let name = format!("__regatta_m{g}_{k}");
                lower.push(ProjectionExpr {
                    expr: exprs[i].expr.clone(),
                    alias: name.clone(),
                });
                exprs[i].expr = Arc::new(Column::new(&name, width + k));
            }
            input = self.operator(lower, input)?;
        }
        self.operator(exprs, input)
    }

    /// The morsel operator for an already split `projection` (one decoded from a
    /// shipped plan), sized by this node's options; the projection itself when it
    /// calls nothing expensive.
    pub fn operator_for(&self, projection: ProjectionExec) -> Arc<dyn ExecutionPlan> {
        match self.config_for(&projection) {
            Some(cfg) => Arc::new(MorselExec::from_projection(&projection, cfg)),
            None => Arc::new(projection),
        }
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

    /// Takes the innermost expensive calls that feed another expression out of
    /// `exprs`, as new columns after the `width` input columns. Returns them and
    /// `exprs` reading them as columns.
    #[allow(clippy::type_complexity)]
    fn extract_inner(
        &self,
        exprs: &[ProjectionExpr],
        width: usize,
        stage: usize,
    ) -> Result<(Vec<ProjectionExpr>, Vec<ProjectionExpr>)> {
        let mut inner: Vec<ProjectionExpr> = Vec::new();
        let mut outer = Vec::with_capacity(exprs.len());
        for pe in exprs {
            // The root stays: it is what this projection outputs.
            let root = pe.expr.clone();
            let mut children = Vec::new();
            for child in root.children() {
                let t = child.clone().transform_up(|e| {
                    let expensive = e
                        .downcast_ref::<ScalarFunctionExpr>()
                        .is_some_and(|f| self.registry.cost(f.name()).is_some());
                    let innermost = e
                        .children()
                        .iter()
                        .all(|c| !is_expensive(c, &self.registry) && !is_extracted(c, width));
                    if !(expensive && innermost) {
                        return Ok(Transformed::no(e));
                    }
                    let index = width + inner.len();
                    let name = format!("__regatta_s{stage}_{}", inner.len());
                    inner.push(ProjectionExpr {
                        expr: e,
                        alias: name.clone(),
                    });
                    Ok(Transformed::yes(
                        Arc::new(Column::new(&name, index)) as Arc<dyn PhysicalExpr>
                    ))
                })?;
                children.push(t.data);
            }
            let expr = if children.is_empty() {
                root
            } else {
                root.with_new_children(children)?
            };
            outer.push(ProjectionExpr {
                expr,
                alias: pe.alias.clone(),
            });
        }
        Ok((inner, outer))
    }

    /// A filter whose predicate calls expensive functions (`WHERE
    /// image_width(image_decode(url_download(url))) >= 224` straight over a
    /// scan) would compute them inline, one batch at a time per partition: the
    /// predicate becomes a column computed by morsel operators, with their
    /// concurrency and bounds, and the filter keeps rows by that column.
    fn expensive_predicate(
        &self,
        filter: &FilterExec,
        node: Arc<dyn ExecutionPlan>,
    ) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
        if !is_expensive(filter.predicate(), &self.registry) {
            return Ok(Transformed::no(node));
        }
        let input = unwrap_round_robin(filter.input()).unwrap_or_else(|| filter.input().clone());
        let schema = input.schema();
        let width = schema.fields().len();
        let mut exprs = pass_through(&schema);
        exprs.push(ProjectionExpr {
            expr: filter.predicate().clone(),
            alias: KEEP_ROW.to_string(),
        });
        let computed = self.morsel_plan(&exprs, input)?;
        let keep = Arc::new(Column::new(KEEP_ROW, width)) as Arc<dyn PhysicalExpr>;
        let projection = match filter.projection() {
            Some(p) => p.to_vec(),
            None => (0..width).collect(),
        };
        let rewritten = FilterExecBuilder::new(keep, computed)
            .apply_projection(Some(projection))?
            .with_fetch(filter.fetch())
            .build()?;
        Ok(Transformed::yes(Arc::new(rewritten)))
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
        || plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.downcast_ref::<CoalescePartitionsExec>().is_some();
    streaming && plan.children().iter().any(|c| feeds_from_morsels(c))
}

/// Every column of `schema`, passed on as it is.
fn pass_through(schema: &SchemaRef) -> Vec<ProjectionExpr> {
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    ProjectionExprs::from_indices(&all, schema)
        .iter()
        .cloned()
        .collect()
}

/// The column an expensive filter predicate is computed into.
const KEEP_ROW: &str = "__regatta_keep_row";

/// A column this rule made in the current round (it reads a lower operator).
fn is_extracted(e: &Arc<dyn PhysicalExpr>, width: usize) -> bool {
    e.downcast_ref::<Column>()
        .is_some_and(|c| c.index() >= width && c.name().starts_with("__regatta_s"))
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

/// The model pools `e` calls, for the operator's metrics.
fn collect_models(e: &Arc<dyn PhysicalExpr>, out: &mut Vec<Arc<dyn ModelPool>>) {
    for c in e.children() {
        collect_models(c, out);
    }
    if let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() {
        if let Some(m) = f.fun().inner().downcast_ref::<ModelUdf>() {
            if !out.iter().any(|p| Arc::ptr_eq(p, m.pool())) {
                out.push(m.pool().clone());
            }
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
            if self.last {
                // A round-robin repartition drains its input as fast as it can into
                // buffers: above a morsel operator it would undo the backpressure.
                if let Some(r) = node.downcast_ref::<RepartitionExec>() {
                    if matches!(r.partitioning(), Partitioning::RoundRobinBatch(_))
                        && feeds_from_morsels(r.input())
                    {
                        return Ok(Transformed::yes(r.input().clone()));
                    }
                }
            }
            if let Some(filter) = node.downcast_ref::<FilterExec>() {
                if self.last {
                    return self.rewrite_filter(filter, node.clone());
                }
                return self.expensive_predicate(filter, node.clone());
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
