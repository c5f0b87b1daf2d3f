//! How the driver's state counts failures: a task's failed attempt (retried
//! while its class is retryable and its attempts last), a worker lost with the
//! tasks it ran (each an attempt, so a poison input cannot kill worker after
//! worker), and a finished attempt's share of its worker given back.

use regatta_common::{Resources, StageId, WorkerId};

use super::{sub, DriverState, MAX_INPUT_FAILURES};
use crate::job_state::{FailureNote, JobStatus, TaskStatus};
use crate::{FailureClass, Refusal, TaskKey};

impl DriverState {
    /// Frees the worker's share of `task` if it is running there as `attempt`;
    /// false for a stale report (an older attempt, a lost worker, an ended job).
    pub(super) fn release(&mut self, task: TaskKey, worker: WorkerId, attempt: u32) -> bool {
        let Some(j) = self.jobs.get(&task.job) else {
            return false;
        };
        let Some(s) = j.stages.get(&task.stage) else {
            return false;
        };
        let current = matches!(
            s.tasks.get(task.partition as usize).map(|t| &t.status),
            Some(TaskStatus::Running { worker: w, attempt: a }) if *w == worker && *a == attempt
        );
        let demand = s.spec.demand;
        let running = j.is_active();
        if let Some(w) = self.workers.get_mut(&worker) {
            if current && w.running.remove(&task) {
                w.used = sub(w.used, w.share_of(demand));
            }
        }
        current && running
    }

    pub(super) fn fail_task(
        &mut self,
        task: TaskKey,
        worker: WorkerId,
        error: &str,
        lost_input: bool,
        class: FailureClass,
    ) {
        let max = self.max_task_failures;
        let Some(j) = self.jobs.get_mut(&task.job).filter(|j| j.is_active()) else {
            return;
        };
        let Some(t) = j
            .stages
            .get_mut(&task.stage)
            .and_then(|s| s.tasks.get_mut(task.partition as usize))
        else {
            return;
        };
        if lost_input {
            t.input_failures += 1;
        } else {
            t.failures += 1;
        }
        t.last_error = Some((worker, error.to_string()));
        let out_of_retries = t.failures >= max || t.input_failures >= MAX_INPUT_FAILURES;
        let tries = t.failures + t.input_failures;
        t.status = TaskStatus::Pending;
        let input = j
            .stages
            .get(&task.stage)
            .and_then(|s| s.spec.task_inputs.get(task.partition as usize))
            .map(|i| format!(" (input: {i})"))
            .unwrap_or_default();
        // A plan, data or user-function error would fail the same way again.
        let given_up = (!class.retryable()).then(|| {
            format!("task {task}{input} failed on {worker} ({class}, not retried): {error}")
        });
        if out_of_retries || given_up.is_some() {
            let reason = given_up.unwrap_or_else(|| {
                format!(
                    "task {task}{input} failed {tries} times ({class}); last on {worker}: {error}"
                )
            });
            if j.status == JobStatus::Succeeded {
                // Remaking a lost result partition failed: its rows are gone.
                j.released = Some(crate::job_state::Released::Lost(reason));
                self.drop_job_tasks(task.job);
                return;
            }
            let _ = self.end_job(task.job, JobStatus::Failed(reason), "failed");
            return;
        }
        j.retried_tasks += 1;
        if let Some(s) = j.stages.get_mut(&task.stage) {
            s.pending.insert(task.partition);
        }
    }

    pub(super) fn lose_worker(&mut self, worker: WorkerId, reason: &str) -> Result<(), Refusal> {
        let w = self
            .workers
            .get_mut(&worker)
            .ok_or(Refusal::UnknownWorker(worker))?;
        if !w.alive {
            return Ok(());
        }
        w.alive = false;
        w.lost_reason = reason.to_string();
        w.used = Resources::default();
        w.running.clear();
        // The tasks it was running: each counts as a failed attempt, since the
        // input may be what killed it (else one poison file would take down
        // worker after worker, for ever).
        let mut killed = Vec::new();
        for (&job, j) in self.jobs.iter_mut() {
            // A succeeded job whose result partitions are kept has the lost ones
            // made again, from lineage, like a running job's.
            if !j.is_active() {
                continue;
            }
            let ids: Vec<StageId> = j.stages.keys().rev().copied().collect();
            // Consumers first: a stage whose outputs are lost makes its inputs
            // needed again.
            for id in ids {
                let needed = id == j.final_stage
                    || j.stages
                        .values()
                        .any(|c| c.spec.inputs.contains(&id) && !c.is_done());
                let Some(s) = j.stages.get_mut(&id) else {
                    continue;
                };
                for (p, t) in s.tasks.iter_mut().enumerate() {
                    match &t.status {
                        TaskStatus::Running { worker: w, attempt } if *w == worker => {
                            let note = FailureNote {
                                stage: id,
                                partition: p as u32,
                                attempt: *attempt,
                                worker,
                                error: format!("lost with {worker}: {reason}"),
                            };
                            if j.failures.len() >= crate::FAILURES_KEPT {
                                j.failures.remove(0);
                            }
                            j.failures.push(note);
                            t.status = TaskStatus::Pending;
                            killed.push(TaskKey {
                                job,
                                stage: id,
                                partition: p as u32,
                            });
                        }
                        TaskStatus::Done { worker: w, .. } if *w == worker && needed => {
                            t.status = TaskStatus::Pending;
                            s.pending.insert(p as u32);
                            s.done -= 1;
                            j.recomputed_outputs += 1;
                        }
                        _ => {}
                    }
                }
            }
        }
        let why = format!("lost with {worker}: {reason}");
        for task in killed {
            self.fail_task(task, worker, &why, false, FailureClass::WorkerLost);
        }
        Ok(())
    }
}
