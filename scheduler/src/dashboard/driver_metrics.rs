//! The driver's Prometheus text: jobs, their tasks and operators, workers and
//! their resources, and this replica's Raft standing.

use regatta_common::prometheus::PromText;
use regatta_proto::JobStatus;

use crate::driver::Driver;

/// Reads one number of a job, for one per-job metric.
type JobPick = fn(&regatta_proto::JobInfo) -> f64;
/// Reads one number of an operator, for one per-operator metric.
type OperatorPick = fn(&regatta_proto::OperatorStats) -> f64;

/// `/metrics` on the driver.
pub fn render(driver: &Driver) -> String {
    let mut p = PromText::new();
    let (leader, term, last, applied) = match driver.replica() {
        Some(r) => {
            let i = r.info();
            (r.is_leader(), i.term, i.last_log_index, i.applied_index)
        }
        None => (true, 0, 0, 0),
    };
    p.sample(
        "regatta_driver_is_leader",
        &[],
        if leader { 1.0 } else { 0.0 },
    );
    p.sample("regatta_raft_term", &[], term as f64);
    p.sample("regatta_raft_last_log_index", &[], last as f64);
    p.sample("regatta_raft_applied_index", &[], applied as f64);

    let jobs = driver.jobs();
    for (status, word) in [
        (JobStatus::Running, "running"),
        (JobStatus::Succeeded, "succeeded"),
        (JobStatus::Failed, "failed"),
        (JobStatus::Cancelled, "cancelled"),
    ] {
        let n = jobs.iter().filter(|j| j.status == status as i32).count();
        p.sample("regatta_jobs", &[("status", word)], n as f64);
    }
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.to_string()).collect();
    for (j, id) in jobs.iter().zip(&ids) {
        let pending = j.tasks.saturating_sub(j.tasks_done + j.tasks_running);
        for (state, n) in [
            ("done", j.tasks_done),
            ("running", j.tasks_running),
            ("pending", pending),
        ] {
            p.sample(
                "regatta_job_tasks",
                &[("job", id), ("state", state)],
                f64::from(n),
            );
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
        for (j, id) in jobs.iter().zip(&ids) {
            p.sample(name, &[("job", id)], pick(j));
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
        for (j, id) in jobs.iter().zip(&ids) {
            for o in &j.operators {
                let stage = o.stage_id.to_string();
                let index = o.index.to_string();
                p.sample(
                    name,
                    &[
                        ("job", id),
                        ("stage", &stage),
                        ("operator", &index),
                        ("name", &o.name),
                    ],
                    pick(o),
                );
            }
        }
    }

    let workers = driver.workers_info();
    let alive = workers.iter().filter(|w| w.alive).count();
    p.sample("regatta_workers", &[("state", "alive")], alive as f64);
    p.sample(
        "regatta_workers",
        &[("state", "lost")],
        (workers.len() - alive) as f64,
    );
    let wids: Vec<String> = workers.iter().map(|w| w.worker_id.to_string()).collect();
    for (w, id) in workers.iter().zip(&wids) {
        let t = w.total.unwrap_or_default();
        let u = w.used.unwrap_or_default();
        p.sample(
            "regatta_worker_cpus",
            &[("worker", id), ("use", "total")],
            f64::from(t.cpus),
        );
        p.sample(
            "regatta_worker_cpus",
            &[("worker", id), ("use", "leased")],
            f64::from(u.cpus),
        );
    }
    for (w, id) in workers.iter().zip(&wids) {
        let t = w.total.unwrap_or_default();
        let u = w.used.unwrap_or_default();
        p.sample(
            "regatta_worker_gpus",
            &[("worker", id), ("use", "total")],
            f64::from(t.gpus),
        );
        p.sample(
            "regatta_worker_gpus",
            &[("worker", id), ("use", "leased")],
            f64::from(u.gpus),
        );
    }
    for (w, id) in workers.iter().zip(&wids) {
        let t = w.total.unwrap_or_default();
        let u = w.used.unwrap_or_default();
        let used = w.usage.as_ref().map_or(0, |x| x.memory_used_bytes);
        for (kind, v) in [
            ("total", t.memory_bytes),
            ("leased", u.memory_bytes),
            ("used", used),
        ] {
            p.sample(
                "regatta_worker_memory_bytes",
                &[("worker", id), ("use", kind)],
                v as f64,
            );
        }
    }
    for (w, id) in workers.iter().zip(&wids) {
        p.sample(
            "regatta_worker_running_tasks",
            &[("worker", id)],
            f64::from(w.running_tasks),
        );
    }
    for (w, id) in workers.iter().zip(&wids) {
        p.sample(
            "regatta_worker_tasks_done_total",
            &[("worker", id)],
            w.tasks_done as f64,
        );
    }
    p.finish()
}
