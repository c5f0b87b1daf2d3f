//! What the dashboard shows ([`super::page_data`]): read from the driver's
//! state (jobs, stages, operators, workers) and its replica (role, term, log).
//! Counts and states only; no token or storage secret is ever in it.

use regatta_common::JobId;
use regatta_proto::{DriverRole, JobInfo, WorkerInfo};

use super::page_data::{
    DriverRow, FailureRow, JobDetail, JobSummary, OperatorRow, Overview, PoolRow, StageRow,
    StageTimingRow, TaskWorkerRow, WorkerRow,
};
use crate::driver::Driver;
use crate::job_state::TaskStatus;

/// The overview: the cluster's replicas, every job (newest first) and worker.
pub async fn overview(driver: &Driver) -> Overview {
    let mut jobs = crate::driver::jobs_info(driver);
    jobs.sort_by_key(|j| std::cmp::Reverse(j.job_id));
    Overview {
        now_unix_ms: crate::unix_ms_now(),
        drivers: drivers(driver).await,
        jobs: jobs.iter().map(job_summary).collect(),
        workers: crate::driver::workers_info(driver)
            .iter()
            .map(worker)
            .collect(),
    }
}

/// One job in full: its summary, stage graph, operators, failures, tasks by worker.
pub fn job(driver: &Driver, id: u64) -> Option<JobDetail> {
    let info = crate::driver::job_info(driver, JobId(id))?;
    let stages = driver.with_state(|s| {
        s.job(JobId(id)).map(|j| {
            j.stages
                .iter()
                .map(|(sid, st)| StageRow {
                    stage: sid.0,
                    inputs: st.spec.inputs.iter().map(|i| i.0).collect(),
                    tasks: st.spec.tasks,
                    done: st.done,
                    running: st
                        .tasks
                        .iter()
                        .filter(|t| matches!(t.status, TaskStatus::Running { .. }))
                        .count(),
                })
                .collect()
        })
    })?;
    let operators = info
        .operators
        .iter()
        .map(|o| OperatorRow {
            stage: o.stage_id,
            index: o.index,
            depth: o.depth,
            name: o.name.clone(),
            rows_in: o.rows_in,
            rows_out: o.rows_out,
            bytes_out: o.bytes_out,
            compute_seconds: o.compute_nanos as f64 / 1e9,
            in_flight_peak: o.in_flight_peak,
            backpressure_seconds: o.backpressure_nanos as f64 / 1e9,
        })
        .collect();
    let failures = info
        .failures
        .iter()
        .map(|f| FailureRow {
            stage: f.stage_id,
            partition: f.partition,
            attempt: f.attempt,
            worker: f.worker_id,
            error: f.error.clone(),
        })
        .collect();
    let task_workers = info
        .task_workers
        .iter()
        .map(|w| TaskWorkerRow {
            worker: w.worker_id,
            running: w.running,
            done: w.done,
            failed: w.failed,
        })
        .collect();
    let stage_timings = info
        .stage_timings
        .iter()
        .map(|t| StageTimingRow {
            stage: t.stage_id,
            started_seconds: t.started_seconds,
            ended_seconds: t.ended_seconds,
            task_seconds: t.task_seconds,
            read_seconds: t.read_seconds,
            write_seconds: t.write_seconds,
        })
        .collect();
    Some(JobDetail {
        summary: JobSummary {
            stages: None,
            ..job_summary(&info)
        },
        stages,
        operators,
        failures,
        task_workers,
        stage_timings,
    })
}

fn job_summary(info: &JobInfo) -> JobSummary {
    let progress = if info.tasks == 0 {
        0.0
    } else {
        f64::from(info.tasks_done) / f64::from(info.tasks)
    };
    JobSummary {
        id: info.job_id,
        name: info.name.clone(),
        status: info.status().word(),
        error: info.error.clone(),
        progress,
        stages: Some(info.stages),
        stages_done: info.stages_done,
        tasks: info.tasks,
        tasks_done: info.tasks_done,
        tasks_running: info.tasks_running,
        retried_tasks: info.retried_tasks,
        recomputed_outputs: info.recomputed_outputs,
        failed_rows: info.failed_rows,
        checked_rows: info.checked_rows,
        // A presigned URL's signature stays out of the page.
        errors_url: info
            .errors_url
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string(),
        rows_in: info.rows_in,
        bytes_in: info.bytes_in,
        rows_out: info.rows_out,
        bytes_out: info.bytes_out,
        shuffle_bytes: info.shuffle_bytes,
        spilled_bytes: info.spilled_bytes,
        elapsed_seconds: info.elapsed_seconds,
        submitted_unix_ms: info.submitted_unix_ms,
    }
}

fn worker(w: &WorkerInfo) -> WorkerRow {
    let total = w.total.unwrap_or_default();
    let used = w.used.unwrap_or_default();
    let usage = w.usage.clone().unwrap_or_default();
    WorkerRow {
        id: w.worker_id,
        address: w.flight_address.clone(),
        host: w.host.clone(),
        alive: w.alive,
        lost_reason: w.lost_reason.clone(),
        node_label: w.node_label.clone(),
        metrics_address: w.metrics_address.clone(),
        cpus: total.cpus,
        cpus_leased: used.cpus,
        gpus: total.gpus,
        gpus_leased: used.gpus,
        gpu_ids: w.gpu_ids.clone(),
        memory_bytes: total.memory_bytes,
        memory_leased_bytes: used.memory_bytes,
        memory_used_bytes: usage.memory_used_bytes,
        spilled_bytes: usage.spilled_bytes,
        shuffle_written_bytes: usage.shuffle_written_bytes,
        shuffle_served_bytes: usage.shuffle_served_bytes,
        running_tasks: w.running_tasks,
        tasks_done: w.tasks_done,
        actor_devices: w.actor_devices.clone(),
        pools: usage
            .pools
            .iter()
            .map(|p| PoolRow {
                model: p.model.clone(),
                actors: p.actors,
                queue_depth: p.queue_depth,
                batches: p.batches,
                builds: p.builds,
                batch_latency_ms: p.batch_latency_ms,
            })
            .collect(),
    }
}

/// The driver replicas as they answer (a lone driver is its own leader).
async fn drivers(driver: &Driver) -> Vec<DriverRow> {
    let Some(replica) = driver.consensus().replica() else {
        return vec![DriverRow {
            node_id: 0,
            address: String::new(),
            role: DriverRole::Leader.word(),
            term: 0,
            last_log_index: 0,
            applied_index: 0,
            voter: true,
        }];
    };
    let listed = tokio::time::timeout(
        std::time::Duration::from_millis(800),
        replica.list_drivers(),
    )
    .await;
    let list = match listed {
        Ok(l) => l.drivers,
        Err(_) => vec![replica.info()],
    };
    list.iter()
        .map(|d| DriverRow {
            node_id: d.node_id,
            address: d.address.clone(),
            role: d.role().word(),
            term: d.term,
            last_log_index: d.last_log_index,
            applied_index: d.applied_index,
            voter: d.voter,
        })
        .collect()
}
