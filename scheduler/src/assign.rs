//! The placement policy: which pending tasks go to which workers now.
//!
//! A pure function of the state, so the driver decides and then records each
//! decision as a `TaskAssigned` command.

use std::collections::BTreeMap;

use regatta_common::{Resources, WorkerId};

use crate::job_state::{JobState, StageState};
use crate::{DriverState, TaskKey, WorkerState};

/// Up to `limit` assignments: jobs first come first served; within a job, stages
/// whose inputs are complete, partitions in order. Each task goes to a live worker
/// with room for its CPU, GPU and memory demand, preferring the worker that holds
/// most of its shuffle input, then the one with the largest share of its CPUs free,
/// then the one with most free CPUs. A worker never gets
/// more than fits, so its queue stays short and late tasks can still go to whichever
/// worker frees up first.
pub fn next_assignments(state: &DriverState, limit: usize) -> Vec<(TaskKey, WorkerId)> {
    // Each live worker's free resources, and what a task takes there.
    let mut free: BTreeMap<WorkerId, (Resources, &WorkerState)> = state
        .workers()
        .filter(|(_, w)| w.alive)
        .map(|(id, w)| (*id, (w.free(), w)))
        .collect();
    let mut out = Vec::new();
    if free.is_empty() {
        return out;
    }
    for (job_id, job) in state.jobs() {
        if !job.is_active() {
            continue;
        }
        for (stage_id, stage) in &job.stages {
            if stage.pending.is_empty() || !job.is_runnable(stage) {
                continue;
            }
            let demand = stage.spec.demand;
            let fits = |(f, w): &(Resources, &WorkerState)| w.share_of(demand).fits_in(f);
            if !free.values().any(fits) {
                continue;
            }
            for &partition in &stage.pending {
                if out.len() >= limit {
                    return out;
                }
                let local = input_bytes_by_worker(job, stage, partition);
                let best = free
                    .iter()
                    .filter(|(_, fw)| fits(fw))
                    .max_by(|(a_id, (a, aw)), (b_id, (b, bw))| {
                        let la = local.get(a_id).copied().unwrap_or(0);
                        let lb = local.get(b_id).copied().unwrap_or(0);
                        la.cmp(&lb)
                            .then(idle_share(a, aw).total_cmp(&idle_share(b, bw)))
                            .then(a.cpus.total_cmp(&b.cpus))
                            .then(b_id.cmp(a_id))
                    })
                    .map(|(id, _)| *id);
                let Some(worker) = best else {
                    break;
                };
                if let Some((f, w)) = free.get_mut(&worker) {
                    let share = w.share_of(demand);
                    f.cpus -= share.cpus;
                    f.gpus -= share.gpus;
                    f.memory = f.memory.saturating_sub(share.memory);
                }
                out.push((
                    TaskKey {
                        job: *job_id,
                        stage: *stage_id,
                        partition,
                    },
                    worker,
                ));
            }
        }
    }
    out
}

/// The share of `worker`'s CPUs still free. Spreading by share rather than by
/// count keeps a small worker from idling beside a big one (2 free of 4 and 1
/// free of 1: the small one is idle, the big one half busy), whichever of them
/// joined first.
fn idle_share(free: &Resources, worker: &WorkerState) -> f64 {
    let total = worker.spec.resources.cpus;
    if total > 0.0 {
        free.cpus / total
    } else {
        0.0
    }
}

/// Bytes of `partition`'s input that each worker holds.
fn input_bytes_by_worker(
    job: &JobState,
    stage: &StageState,
    partition: u32,
) -> BTreeMap<WorkerId, u64> {
    let mut out = BTreeMap::new();
    for input in &stage.spec.inputs {
        let Some(s) = job.stages.get(input) else {
            continue;
        };
        for t in &s.tasks {
            if let crate::job_state::TaskStatus::Done {
                worker, outputs, ..
            } = &t.status
            {
                let bytes: u64 = outputs
                    .iter()
                    .filter(|o| o.partition == partition)
                    .map(|o| o.bytes)
                    .sum();
                *out.entry(*worker).or_insert(0) += bytes;
            }
        }
    }
    out
}
