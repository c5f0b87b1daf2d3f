//! Splits a physical plan into stages at its exchange boundaries.
//!
//! A hash repartition becomes a shuffle: the stage below writes hash partitions, the
//! stage above reads them. A coalesce or sort-preserving merge becomes a gather: the
//! stage below writes one partition per task, and the merge above reads them all in
//! one task. Round-robin repartitions only spread work inside one process, so they
//! go: a stage runs one task per input partition instead. Every task of a stage then
//! runs one partition of its plan, independently of the others.
//!
//! A morsel operator (downloads, decoding, models) over a scan with fewer partitions
//! than the cluster has cores gets a spread stage under it: the scan's rows are
//! dealt over that many partitions, so the expensive work uses every worker, as the
//! local engine's operators use every core of one machine. Not under a sorted scan:
//! the plan above may rely on its order.

use std::sync::Arc;

use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use regatta_common::{JobId, StageId};
use regatta_engine::morsel::MorselExec;
use regatta_shuffle::{ShufflePartitioning, ShuffleReadExec, ShuffleWriteExec};

use crate::Result;

/// One stage: its root is a [`ShuffleWriteExec`].
#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub stage: StageId,
    pub plan: Arc<ShuffleWriteExec>,
    pub inputs: Vec<StageId>,
}

impl PlannedStage {
    /// Tasks: one per partition of the plan under the shuffle write.
    pub fn tasks(&self) -> u32 {
        self.plan
            .input()
            .properties()
            .output_partitioning()
            .partition_count() as u32
    }
}

/// Splits `plan` of `job` into stages, in dependency order; the last produces the
/// job's result, one partition per task, read in partition order. `cores` is the
/// cluster's: morsel operators are spread over that many tasks.
pub fn split_into_stages(
    job: JobId,
    plan: Arc<dyn ExecutionPlan>,
    cores: usize,
) -> Result<Vec<PlannedStage>> {
    let mut splitter = Splitter {
        job,
        cores,
        stages: Vec::new(),
    };
    let (root, inputs) = splitter.visit(plan)?;
    let stage = StageId(splitter.stages.len() as u64 + 1);
    splitter.stages.push(PlannedStage {
        stage,
        plan: Arc::new(ShuffleWriteExec::new(
            (job, stage),
            root,
            ShufflePartitioning::PerTask,
            None,
        )),
        inputs,
    });
    Ok(splitter.stages)
}

struct Splitter {
    job: JobId,
    cores: usize,
    stages: Vec<PlannedStage>,
}

impl Splitter {
    /// Rewrites `plan`'s subtree; returns it and the stages it now reads.
    fn visit(
        &mut self,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<(Arc<dyn ExecutionPlan>, Vec<StageId>)> {
        let mut children = Vec::new();
        let mut inputs = Vec::new();
        for child in plan.children() {
            let (c, i) = self.visit(child.clone())?;
            children.push(c);
            inputs.extend(i);
        }
        if let Some(r) = plan.downcast_ref::<RepartitionExec>() {
            let child = children
                .into_iter()
                .next()
                .unwrap_or_else(|| r.input().clone());
            return match r.partitioning() {
                Partitioning::Hash(keys, n) => {
                    let read = self.new_stage(
                        child,
                        inputs,
                        ShufflePartitioning::Hash(keys.clone(), *n),
                        *n,
                    );
                    Ok((read.0, vec![read.1]))
                }
                // Round-robin (and anything else) only spreads rows within a process.
                _ => Ok((child, inputs)),
            };
        }
        if plan.downcast_ref::<MorselExec>().is_some() && self.cores > 1 && inputs.is_empty() {
            if let [child] = children.as_slice() {
                let n = child.properties().output_partitioning().partition_count();
                // Dealing rows out loses a sorted scan's order, which the plan above
                // may rely on.
                let sorted = child.properties().output_ordering().is_some();
                if n < self.cores && !sorted {
                    let (read, stage) = self.new_stage(
                        child.clone(),
                        inputs,
                        ShufflePartitioning::Spread(self.cores),
                        self.cores,
                    );
                    return Ok((plan.with_new_children(vec![read])?, vec![stage]));
                }
            }
        }
        let gathers = plan.downcast_ref::<CoalescePartitionsExec>().is_some()
            || plan.downcast_ref::<SortPreservingMergeExec>().is_some();
        if gathers {
            if let [child] = children.as_slice() {
                let n = child.properties().output_partitioning().partition_count();
                if n > 1 {
                    let (read, stage) =
                        self.new_stage(child.clone(), inputs, ShufflePartitioning::PerTask, n);
                    return Ok((plan.with_new_children(vec![read])?, vec![stage]));
                }
            }
        }
        if children.is_empty() {
            return Ok((plan, inputs));
        }
        Ok((plan.with_new_children(children)?, inputs))
    }

    /// Makes `input` a stage of its own; returns the reader of its output.
    fn new_stage(
        &mut self,
        input: Arc<dyn ExecutionPlan>,
        inputs: Vec<StageId>,
        partitioning: ShufflePartitioning,
        partitions: usize,
    ) -> (Arc<dyn ExecutionPlan>, StageId) {
        let stage = StageId(self.stages.len() as u64 + 1);
        let schema = input.schema();
        self.stages.push(PlannedStage {
            stage,
            plan: Arc::new(ShuffleWriteExec::new(
                (self.job, stage),
                input,
                partitioning,
                None,
            )),
            inputs,
        });
        let read = ShuffleReadExec::new((self.job, stage), schema, partitions, None);
        (Arc::new(read), stage)
    }
}
