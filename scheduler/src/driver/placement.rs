//! Placement: one round decides which pending tasks go where (the state's
//! [`next_assignments`]), commits the decisions, then sends each task's order.

use std::collections::BTreeSet;

use regatta_common::WorkerId;
use regatta_proto::{worker_order, MapOutput, StageInput, TaskAssignment, WorkerOrder};

use super::core::Driver;
use crate::{commit_tag, next_assignments, Command, TaskKey};

/// Assignments made per scheduling round.
const ROUND_LIMIT: usize = 4096;

/// One round of placement: decide, commit, send. Returns the orders sent.
pub async fn schedule_round(driver: &Driver) -> usize {
    let connected: BTreeSet<WorkerId> = driver.workers().connected();
    let picks: Vec<(TaskKey, WorkerId)> = driver
        .with_state(|s| next_assignments(s, ROUND_LIMIT))
        .into_iter()
        .filter(|(_, w)| connected.contains(w))
        .collect();
    if picks.is_empty() {
        return 0;
    }
    let term = driver.term();
    let batch = picks
        .iter()
        .map(|(task, worker)| Command::TaskAssigned {
            task: *task,
            worker: *worker,
        })
        .collect();
    let outcomes = match driver.consensus().propose(Command::Batch(batch)).await {
        Ok(o) => o,
        Err(e) => {
            log::warn!("placing tasks: {e}");
            return 0;
        }
    };
    let mut sent = 0;
    for ((task, worker), refused) in picks.into_iter().zip(outcomes) {
        if refused.is_some() {
            continue;
        }
        let Some(order) = assignment(driver, task, term) else {
            continue;
        };
        let delivered = match driver.workers().orders_of(worker) {
            Some(tx) => tx.send(order).await.is_ok(),
            None => false,
        };
        if delivered {
            sent += 1;
            driver.clock().placed(task);
        } else {
            driver
                .membership()
                .lose(worker, "its order stream closed")
                .await;
        }
    }
    if sent > 0 {
        note_first_placement(driver, term);
    }
    sent
}

/// Notes (and logs) the first placement of a new leader's term: the moment
/// the cluster makes progress again. `regatta drivers` reports it, which is
/// what the failover benchmark measures up to.
fn note_first_placement(driver: &Driver, term: u64) {
    let Some(replica) = driver.consensus().replica() else {
        return;
    };
    if replica.placed_tasks_in(term) {
        log::info!("driver {}: first tasks placed in term {term}", replica.id());
    }
}

/// The order that runs `task`: its stage plan and where its inputs are.
fn assignment(driver: &Driver, task: TaskKey, term: u64) -> Option<WorkerOrder> {
    let timeout_ms = driver
        .options()
        .task_timeout
        .map_or(0, |t| t.as_millis() as u64);
    driver.with_state(|s| {
        let job = s.job(task.job)?;
        let stage = job.stages.get(&task.stage)?;
        let attempt = stage.tasks.get(task.partition as usize)?.launches;
        let inputs = stage
            .spec
            .inputs
            .iter()
            .map(|input| StageInput {
                stage_id: input.0 as u32,
                outputs: s
                    .map_locations(task.job, *input)
                    .into_iter()
                    .map(|m| MapOutput {
                        map_partition: m.map_partition,
                        worker_id: m.worker,
                        flight_address: m.address,
                        partitions: m.partitions,
                        shuffle_root: m.shuffle_root,
                        shuffle_token: m.shuffle_token,
                    })
                    .collect(),
            })
            .collect();
        Some(WorkerOrder {
            order: Some(worker_order::Order::Task(TaskAssignment {
                key: Some(regatta_proto::TaskKey {
                    job_id: task.job.0,
                    stage_id: task.stage.0 as u32,
                    partition: task.partition,
                    attempt,
                }),
                plan: stage.spec.plan.clone(),
                inputs,
                term,
                timeout_ms,
                errors_url: job.row_errors.errors_url.clone().unwrap_or_default(),
                job_tag: commit_tag(task.job, &job.request_id),
                max_failed_rows: job.row_errors.budget.max_failed_rows,
            })),
        })
    })
}
