//! The protocol's views of the driver: jobs' progress, workers, and where a
//! job's result partitions are, as clients, the CLI and the dashboard see them.

use std::collections::BTreeMap;

use regatta_common::{JobId, WorkerId};
use regatta_proto::{JobInfo, ResultPartition, WorkerInfo};

use super::core::Driver;
use crate::job_state::{JobState, JobStatus, TaskStatus};

/// Where a job's result partitions are.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLocations {
    pub stage: regatta_common::StageId,
    pub partitions: u32,
    pub done: Vec<ResultPartition>,
}

/// Every worker the driver knows, with what it said at its last heartbeat.
pub fn workers_info(driver: &Driver) -> Vec<WorkerInfo> {
    let workers: Vec<(WorkerId, WorkerInfo)> = driver.with_state(|s| {
        s.workers()
            .map(|(id, w)| {
                (
                    *id,
                    WorkerInfo {
                        worker_id: id.0,
                        flight_address: w.spec.address.clone(),
                        host: w.spec.host.clone(),
                        total: Some(resources_msg(w.spec.resources)),
                        used: Some(resources_msg(w.used)),
                        alive: w.alive,
                        running_tasks: w.running.len() as u32,
                        tasks_done: w.tasks_done,
                        node_label: w.spec.node_label.clone(),
                        gpu_ids: w.spec.gpu_ids.clone(),
                        metrics_address: w.spec.metrics_address.clone(),
                        lost_reason: w.lost_reason.clone(),
                        ..WorkerInfo::default()
                    },
                )
            })
            .collect()
    });
    workers
        .into_iter()
        .map(|(id, mut w)| {
            let report = driver.workers().report_of(id);
            w.model_builds = report.model_builds;
            w.reported_running = report.running_tasks;
            w.actor_devices = report.actor_devices;
            w.usage = Some(report.usage);
            w
        })
        .collect()
}

/// A job's progress as clients see it.
pub fn job_info(driver: &Driver, job: JobId) -> Option<JobInfo> {
    let info = driver.with_state(|s| s.job(job).map(|j| info_of(job, j)))?;
    let (planning_seconds, stage_timings) = driver.clock().timings_of(job);
    Some(JobInfo {
        elapsed_seconds: driver.clock().elapsed_seconds(job),
        planning_seconds,
        stage_timings,
        ..info
    })
}

/// Every job's progress.
pub fn jobs_info(driver: &Driver) -> Vec<JobInfo> {
    let ids: Vec<JobId> = driver.with_state(|s| s.jobs().map(|(id, _)| *id).collect());
    ids.into_iter()
        .filter_map(|j| job_info(driver, j))
        .collect()
}

/// Where a job's result partitions are: the result stage, its partition
/// count, and the finished ones (partition, worker, address, rows, bytes).
pub fn result_locations(driver: &Driver, job: JobId) -> Option<ResultLocations> {
    driver.with_state(|s| {
        let j = s.job(job)?;
        let stage = j.stages.get(&j.final_stage)?;
        let done = stage
            .tasks
            .iter()
            .enumerate()
            .filter_map(|(p, t)| match &t.status {
                TaskStatus::Done {
                    worker, outputs, ..
                } => {
                    let spec = s.worker(*worker).map(|w| &w.spec);
                    Some(ResultPartition {
                        partition: p as u32,
                        worker_id: worker.0,
                        flight_address: spec.map(|s| s.address.clone()).unwrap_or_default(),
                        rows: outputs.iter().map(|o| o.rows).sum(),
                        bytes: outputs.iter().map(|o| o.bytes).sum(),
                        shuffle_root: spec.map(|s| s.shuffle_root.clone()).unwrap_or_default(),
                        shuffle_token: spec.map(|s| s.shuffle_token.clone()).unwrap_or_default(),
                    })
                }
                _ => None,
            })
            .collect();
        Some(ResultLocations {
            stage: j.final_stage,
            partitions: stage.spec.tasks,
            done,
        })
    })
}

/// Progress numbers of one job.
pub fn info_of(job: JobId, j: &JobState) -> JobInfo {
    JobInfo {
        job_id: job.0,
        name: j.name.clone(),
        status: j.status.to_proto() as i32,
        results: results_state(j) as i32,
        results_note: j
            .released
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default(),
        error: match &j.status {
            JobStatus::Failed(r) => r.clone(),
            _ => String::new(),
        },
        stages: j.stages.len() as u32,
        stages_done: j.stages_done(),
        tasks: j.tasks(),
        tasks_done: j.tasks_done(),
        tasks_running: j.tasks_running(),
        retried_tasks: j.retried_tasks,
        recomputed_outputs: j.recomputed_outputs,
        rows_out: j.rows_out,
        spilled_bytes: j.spilled_bytes,
        shuffle_bytes: j.shuffle_bytes,
        elapsed_seconds: 0.0,
        operators: j
            .stages
            .iter()
            .flat_map(|(id, s)| {
                s.operators
                    .iter()
                    .map(|o| regatta_proto::OperatorStats::of(o, id.0 as u32))
            })
            .collect(),
        failures: j
            .failures
            .iter()
            .map(|f| regatta_proto::TaskFailure {
                stage_id: f.stage.0 as u32,
                partition: f.partition,
                attempt: f.attempt,
                worker_id: f.worker.0,
                error: f.error.clone(),
            })
            .collect(),
        task_workers: task_workers(j),
        rows_in: source_leaves(j).map(|o| o.rows_out).sum(),
        bytes_in: source_leaves(j).map(|o| o.bytes_out).sum(),
        bytes_out: j.stages.get(&j.final_stage).map_or(0, |s| {
            s.tasks
                .iter()
                .filter_map(|t| match &t.status {
                    TaskStatus::Done { outputs, .. } => {
                        Some(outputs.iter().map(|o| o.bytes).sum::<u64>())
                    }
                    _ => None,
                })
                .sum()
        }),
        submitted_unix_ms: j.submitted_unix_ms,
        failed_rows: j.row_failures.failed,
        checked_rows: j.row_failures.checked,
        errors_url: j.row_errors.errors_url.clone().unwrap_or_default(),
        ..JobInfo::default()
    }
}

/// The leaf operators (scans) of the stages that read no other stage.
fn source_leaves(j: &JobState) -> impl Iterator<Item = &regatta_common::OperatorSummary> {
    j.stages
        .values()
        .filter(|s| s.spec.inputs.is_empty())
        .flat_map(|s| {
            s.operators.iter().enumerate().filter(move |(i, o)| {
                s.operators
                    .get(i + 1)
                    .is_none_or(|next| next.depth <= o.depth)
            })
        })
        .map(|(_, o)| o)
}

/// A job's tasks by worker: running, done, and failed attempts.
fn task_workers(j: &JobState) -> Vec<regatta_proto::WorkerTasks> {
    fn slot(
        by: &mut BTreeMap<u64, regatta_proto::WorkerTasks>,
        w: WorkerId,
    ) -> &mut regatta_proto::WorkerTasks {
        by.entry(w.0).or_insert_with(|| regatta_proto::WorkerTasks {
            worker_id: w.0,
            ..Default::default()
        })
    }
    let mut by = BTreeMap::new();
    for t in j.stages.values().flat_map(|s| &s.tasks) {
        match &t.status {
            TaskStatus::Running { worker, .. } => slot(&mut by, *worker).running += 1,
            TaskStatus::Done { worker, .. } => slot(&mut by, *worker).done += 1,
            TaskStatus::Pending => {}
        }
    }
    for f in &j.failures {
        slot(&mut by, f.worker).failed += 1;
    }
    by.into_values().collect()
}

fn resources_msg(r: regatta_common::Resources) -> regatta_proto::Resources {
    regatta_proto::Resources {
        cpus: r.cpus.round() as u32,
        gpus: r.gpus.ceil() as u32,
        memory_bytes: r.memory,
    }
}

/// What a job's result rows are to clients.
fn results_state(j: &JobState) -> regatta_proto::ResultsState {
    use regatta_proto::ResultsState;
    if j.released.is_some() {
        return ResultsState::Released;
    }
    if j.output.is_some() {
        return match j.status {
            JobStatus::Succeeded => ResultsState::Written,
            _ => ResultsState::Pending,
        };
    }
    let all_done = j
        .stages
        .get(&j.final_stage)
        .is_some_and(crate::StageState::is_done);
    match j.status {
        JobStatus::Succeeded if all_done => ResultsState::Available,
        JobStatus::Running | JobStatus::Succeeded => ResultsState::Pending,
        _ => ResultsState::Unspecified,
    }
}
