//! The driver's metrics: jobs, their tasks and operators, workers and their
//! resources, and this replica's Raft standing, as typed families (label sets
//! are structs; bounded values are the words of their enums).

use regatta_common::prometheus::{EncodeLabelSet, Exposition, LabelText};
use regatta_proto::JobStatus;

use crate::driver::Driver;

/// Reads one number of a job, for one per-job metric.
type JobPick = fn(&regatta_proto::JobInfo) -> f64;
/// Reads one number of an operator, for one per-operator metric.
type OperatorPick = fn(&regatta_proto::OperatorStats) -> f64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    /// A [`JobStatus`]'s word.
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobTaskLabels {
    job: u64,
    /// done, running or pending.
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperatorLabels {
    job: u64,
    stage: u32,
    operator: u32,
    name: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerStateLabels {
    /// alive or lost.
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerUseLabels {
    worker: u64,
    /// total, leased or used.
    r#use: &'static str,
}

/// `/metrics` on the driver, as OpenMetrics text.
pub fn render(driver: &Driver) -> String {
    let mut p = Exposition::new();
    let (leader, term, last, applied) = match driver.consensus().replica() {
        Some(r) => {
            let i = r.info();
            (r.is_leader(), i.term, i.last_log_index, i.applied_index)
        }
        None => (true, 0, 0, 0),
    };
    p.gauge("regatta_driver_is_leader", if leader { 1.0 } else { 0.0 });
    p.gauge("regatta_raft_term", term as f64);
    p.gauge("regatta_raft_last_log_index", last as f64);
    p.gauge("regatta_raft_applied_index", applied as f64);

    let jobs = crate::driver::jobs_info(driver);
    let by_status = p.gauges::<StatusLabels>("regatta_jobs");
    for status in [
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ] {
        let n = jobs.iter().filter(|j| j.status == status as i32).count();
        by_status
            .get_or_create(&StatusLabels {
                status: status.word(),
            })
            .set(n as f64);
    }
    let job_tasks = p.gauges::<JobTaskLabels>("regatta_job_tasks");
    for j in &jobs {
        let pending = j.tasks.saturating_sub(j.tasks_done + j.tasks_running);
        for (state, n) in [
            ("done", j.tasks_done),
            ("running", j.tasks_running),
            ("pending", pending),
        ] {
            job_tasks
                .get_or_create(&JobTaskLabels {
                    job: j.job_id,
                    state,
                })
                .set(f64::from(n));
        }
    }
    let per_job: [(&'static str, JobPick); 3] = [
        ("regatta_job_rows_out_total", |j| j.rows_out as f64),
        ("regatta_job_retried_tasks_total", |j| {
            f64::from(j.retried_tasks)
        }),
        ("regatta_job_shuffle_bytes_total", |j| {
            j.shuffle_bytes as f64
        }),
    ];
    for (name, pick) in per_job {
        let family = p.counters::<JobLabels>(name);
        for j in &jobs {
            family
                .get_or_create(&JobLabels { job: j.job_id })
                .inc_by(pick(j));
        }
    }
    let per_operator: [(&'static str, OperatorPick); 4] = [
        ("regatta_operator_rows_in_total", |o| o.rows_in as f64),
        ("regatta_operator_rows_out_total", |o| o.rows_out as f64),
        ("regatta_operator_compute_seconds_total", |o| {
            o.compute_nanos as f64 / 1e9
        }),
        ("regatta_operator_backpressure_seconds_total", |o| {
            o.backpressure_nanos as f64 / 1e9
        }),
    ];
    for (name, pick) in per_operator {
        let family = p.counters::<OperatorLabels>(name);
        for j in &jobs {
            for o in &j.operators {
                let labels = OperatorLabels {
                    job: j.job_id,
                    stage: o.stage_id,
                    operator: o.index,
                    name: LabelText(o.name.clone()),
                };
                family.get_or_create(&labels).inc_by(pick(o));
            }
        }
    }

    let workers = crate::driver::workers_info(driver);
    let alive = workers.iter().filter(|w| w.alive).count();
    let by_state = p.gauges::<WorkerStateLabels>("regatta_workers");
    for (state, n) in [("alive", alive), ("lost", workers.len() - alive)] {
        by_state
            .get_or_create(&WorkerStateLabels { state })
            .set(n as f64);
    }
    let use_of = |worker: u64, r#use: &'static str| WorkerUseLabels { worker, r#use };
    let cpus = p.gauges::<WorkerUseLabels>("regatta_worker_cpus");
    let gpus = p.gauges::<WorkerUseLabels>("regatta_worker_gpus");
    let memory = p.gauges::<WorkerUseLabels>("regatta_worker_memory_bytes");
    let running = p.gauges::<WorkerLabels>("regatta_worker_running_tasks");
    let done = p.counters::<WorkerLabels>("regatta_worker_tasks_done_total");
    for w in &workers {
        let id = w.worker_id;
        let t = w.total.unwrap_or_default();
        let u = w.used.unwrap_or_default();
        let used = w.usage.as_ref().map_or(0, |x| x.memory_used_bytes);
        cpus.get_or_create(&use_of(id, "total"))
            .set(f64::from(t.cpus));
        cpus.get_or_create(&use_of(id, "leased"))
            .set(f64::from(u.cpus));
        gpus.get_or_create(&use_of(id, "total"))
            .set(f64::from(t.gpus));
        gpus.get_or_create(&use_of(id, "leased"))
            .set(f64::from(u.gpus));
        for (kind, v) in [
            ("total", t.memory_bytes),
            ("leased", u.memory_bytes),
            ("used", used),
        ] {
            memory.get_or_create(&use_of(id, kind)).set(v as f64);
        }
        running
            .get_or_create(&WorkerLabels { worker: id })
            .set(f64::from(w.running_tasks));
        done.get_or_create(&WorkerLabels { worker: id })
            .inc_by(w.tasks_done as f64);
    }
    p.finish()
}
