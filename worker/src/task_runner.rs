//! Runs one task: decodes its stage plan, runs its partition, writes its output.

use std::collections::HashMap;
use std::sync::Arc;

use crate::yield_exec::YieldExec;
use datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec;
use regatta_common::{JobId, StageId};
use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::datafusion::physical_plan::ExecutionPlan;
use regatta_engine::{Engine, FailureBudget, RowErrorSink, RowFailureCounts};
use regatta_proto::{FailureClass, OperatorStats, PartitionStats, TaskAssignment, TaskReport};
use regatta_shuffle::{
    MapLocation, RegattaCodec, ShuffleError, ShuffleFetcher, ShuffleInput, ShuffleLayout,
    ShuffleWriteExec,
};

/// What every task of one worker shares.
pub struct TaskRunner {
    pub worker: u64,
    pub engine: Engine,
    pub layout: ShuffleLayout,
    pub fetcher: Arc<ShuffleFetcher>,
}

impl TaskRunner {
    /// Runs `task` and says how it went.
    pub async fn run(&self, task: TaskAssignment) -> TaskReport {
        let key = task.key;
        let started = std::time::Instant::now();
        let limit =
            (task.timeout_ms > 0).then(|| std::time::Duration::from_millis(task.timeout_ms));
        let result = match limit {
            // Dropping the task's future stops its operators; a decoder stuck
            // in a blocking call finishes on its thread, its result unused.
            Some(limit) => match tokio::time::timeout(limit, self.execute(task)).await {
                Ok(r) => r,
                Err(_) => {
                    return TaskReport {
                        worker_id: self.worker,
                        key,
                        ok: false,
                        error: format!(
                            "the task ran past driver.task_timeout_secs ({}s) and was ended",
                            limit.as_secs_f64()
                        ),
                        failure_class: FailureClass::Timeout.into(),
                        task_nanos: started.elapsed().as_nanos() as u64,
                        ..TaskReport::default()
                    }
                }
            },
            None => self.execute(task).await,
        };
        match result {
            Ok(done) => TaskReport {
                worker_id: self.worker,
                key,
                ok: true,
                outputs: done.stats,
                spilled_bytes: done.spilled_bytes,
                written: done.written,
                task_nanos: started.elapsed().as_nanos() as u64,
                read_nanos: done.read_nanos,
                write_nanos: done.write_nanos,
                operators: done.operators,
                failed_rows: done.row_failures.failed,
                checked_rows: done.row_failures.checked,
                ..TaskReport::default()
            },
            Err(e) => TaskReport {
                worker_id: self.worker,
                key,
                ok: false,
                lost_input_worker: ShuffleError::lost_worker(&e).unwrap_or(0),
                failure_class: crate::failure::classify(&e).into(),
                error: e.to_string(),
                ..TaskReport::default()
            },
        }
    }

    async fn execute(&self, task: TaskAssignment) -> Result<Executed, DataFusionError> {
        let key = task
            .key
            .ok_or_else(|| DataFusionError::Plan("task without a key".into()))?;
        let inputs: HashMap<StageId, ShuffleInput> = task
            .inputs
            .into_iter()
            .map(|i| {
                let maps = i
                    .outputs
                    .into_iter()
                    .map(|m| MapLocation {
                        map_partition: m.map_partition,
                        worker: m.worker_id,
                        address: m.flight_address,
                        partitions: m.partitions,
                        shuffle_root: m.shuffle_root,
                        shuffle_token: m.shuffle_token,
                    })
                    .collect();
                (
                    StageId(u64::from(i.stage_id)),
                    ShuffleInput {
                        maps,
                        fetcher: self.fetcher.clone(),
                    },
                )
            })
            .collect();
        let codec = RegattaCodec::for_task(self.engine.clone(), self.layout.clone(), inputs);
        // The task's own sink for rows its functions give up on: its count
        // against max_failed_rows here, the job's share on the driver.
        let row_errors = RowErrorSink::new(FailureBudget {
            max_failed_rows: task.max_failed_rows,
            max_failed_fraction: None,
        });
        let ctx = self.engine.task_ctx_with_row_errors(row_errors.clone());
        let plan = physical_plan_from_bytes_with_extension_codec(&task.plan, &ctx, &codec)?;
        let plan = YieldExec::wrap_below_root(plan)?;
        log::debug!(
            "task {}/{}/{}:\n{}",
            key.job_id,
            key.stage_id,
            key.partition,
            regatta_engine::datafusion::physical_plan::displayable(plan.as_ref()).indent(true)
        );
        let root = plan.downcast_ref::<ShuffleWriteExec>().ok_or_else(|| {
            DataFusionError::Plan("a stage plan must end in a shuffle write".into())
        })?;
        if root.job() != JobId(key.job_id) {
            return Err(DataFusionError::Plan(format!(
                "stage plan of {} sent for job-{}",
                root.job(),
                key.job_id
            )));
        }
        let done = root
            .run_task(key.partition as usize, key.attempt, ctx)
            .await?;
        let outputs = done.outputs;
        let recorded = row_errors.take_recorded();
        // Written before the task reports success, so a finished task's
        // failed rows are never lost; a retried attempt writes its own file.
        let name = format!(
            "errors-{}-s{}-p{}-a{}",
            task.job_tag.replace('/', "_"),
            key.stage_id,
            key.partition,
            key.attempt
        );
        regatta_engine::io::error_table::keep_recorded(
            (!task.errors_url.is_empty()).then_some(task.errors_url.as_str()),
            &name,
            &recorded,
            &task.job_tag,
            key.attempt,
        )
        .await
        .map_err(DataFusionError::from)?;
        log::debug!(
            "task {}/{}/{} wrote {:?}",
            key.job_id,
            key.stage_id,
            key.partition,
            outputs
                .iter()
                .map(|o| (o.partition, o.rows))
                .collect::<Vec<_>>()
        );
        let stats = outputs
            .iter()
            .map(|o| PartitionStats {
                partition: o.partition,
                rows: o.rows,
                bytes: o.bytes,
            })
            .collect();
        Ok(Executed {
            stats,
            spilled_bytes: spilled_bytes(&plan),
            written: done.written,
            read_nanos: metric_nanos(&plan, "fetch_time"),
            write_nanos: metric_nanos(&plan, "write_time"),
            row_failures: row_errors.counts(),
            operators: {
                let mut ops = operator_stats(&plan, key.stage_id);
                // The root writes the task's output: what it wrote is its output.
                if let Some(root) = ops.first_mut() {
                    root.rows_out = outputs.iter().map(|o| o.rows).sum();
                    root.bytes_out = outputs.iter().map(|o| o.bytes).sum();
                }
                ops
            },
        })
    }
}

/// What a task did, for its report.
struct Executed {
    stats: Vec<PartitionStats>,
    spilled_bytes: u64,
    written: String,
    read_nanos: u64,
    write_nanos: u64,
    operators: Vec<OperatorStats>,
    row_failures: RowFailureCounts,
}

/// The plan's operators as the report carries them (the yield wrappers this
/// worker adds are left out, so every task of a stage lists the same ones).
fn operator_stats(plan: &Arc<dyn ExecutionPlan>, stage_id: u32) -> Vec<OperatorStats> {
    regatta_engine::operator_summary::operator_summaries(plan, &[YieldExec::NAME])
        .iter()
        .map(|o| OperatorStats::of(o, stage_id))
        .collect()
}

/// The sum of the time metric `name` over every operator of `plan`.
fn metric_nanos(plan: &Arc<dyn ExecutionPlan>, name: &str) -> u64 {
    let own = plan
        .metrics()
        .and_then(|m| m.sum_by_name(name))
        .map_or(0, |v| v.as_usize() as u64);
    own + plan
        .children()
        .iter()
        .map(|c| metric_nanos(c, name))
        .sum::<u64>()
}

/// Bytes every operator of `plan` spilled.
fn spilled_bytes(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let own = plan.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0) as u64;
    own + plan
        .children()
        .iter()
        .map(|c| spilled_bytes(c))
        .sum::<u64>()
}
