//! The driver's state: a deterministic state machine changed only by [`Command`]s.

use std::collections::{BTreeMap, BTreeSet};

use regatta_common::{JobId, RequestId, Resources, StageId, WorkerId};
use regatta_engine::{RowErrorPolicy, RowFailureCounts};
use regatta_shuffle::MapLocation;
use serde::{Deserialize, Serialize};

use crate::job_state::{FailureNote, JobState, JobStatus, StageState, TaskStatus};
use crate::{Command, Refusal, StageSpec, TaskKey, WorkerSpec};

mod task_failures;

/// Attempts a task may fail by its own fault before its job fails.
pub const DEFAULT_MAX_TASK_FAILURES: u32 = 4;
/// Attempts a task may lose to vanished inputs (recomputed, so capped higher).
const MAX_INPUT_FAILURES: u32 = 16;

/// One worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    pub spec: WorkerSpec,
    pub alive: bool,
    pub used: Resources,
    pub running: BTreeSet<TaskKey>,
    pub tasks_done: u64,
    /// Why it was declared lost (empty while alive).
    #[serde(default)]
    pub lost_reason: String,
}

impl WorkerState {
    /// What is left for more tasks.
    /// What a task demanding `demand` takes here: a worker with less memory than
    /// a task's share runs such tasks one at a time instead of never.
    pub fn share_of(&self, demand: Resources) -> Resources {
        Resources {
            memory: demand.memory.min(self.spec.resources.memory),
            ..demand
        }
    }

    pub fn free(&self) -> Resources {
        let t = self.spec.resources;
        Resources {
            cpus: (t.cpus - self.used.cpus).max(0.0),
            gpus: (t.gpus - self.used.gpus).max(0.0),
            memory: t.memory.saturating_sub(self.used.memory),
        }
    }
}

/// Every job and worker the driver knows, in id order (deterministic iteration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverState {
    jobs: BTreeMap<JobId, JobState>,
    workers: BTreeMap<WorkerId, WorkerState>,
    max_task_failures: u32,
    applied: u64,
    /// Finished jobs kept (`driver.history_jobs`); older ones whose results
    /// are gone are forgotten. The same on every replica (it is configuration).
    #[serde(default = "default_history")]
    history_jobs: u32,
}

/// Finished jobs kept unless configured otherwise.
pub const DEFAULT_HISTORY_JOBS: u32 = 100;

fn default_history() -> u32 {
    DEFAULT_HISTORY_JOBS
}

impl Default for DriverState {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TASK_FAILURES)
    }
}

fn add(a: Resources, b: Resources) -> Resources {
    Resources {
        cpus: a.cpus + b.cpus,
        gpus: a.gpus + b.gpus,
        memory: a.memory.saturating_add(b.memory),
    }
}

fn sub(a: Resources, b: Resources) -> Resources {
    Resources {
        cpus: (a.cpus - b.cpus).max(0.0),
        gpus: (a.gpus - b.gpus).max(0.0),
        memory: a.memory.saturating_sub(b.memory),
    }
}

impl DriverState {
    /// An empty state whose tasks may fail `max_task_failures` times each.
    pub fn new(max_task_failures: u32) -> Self {
        Self {
            jobs: BTreeMap::new(),
            workers: BTreeMap::new(),
            max_task_failures: max_task_failures.max(1),
            applied: 0,
            history_jobs: DEFAULT_HISTORY_JOBS,
        }
    }

    /// This state keeping `jobs` finished jobs (at least 1).
    pub fn with_history(mut self, jobs: u32) -> Self {
        self.history_jobs = jobs.max(1);
        self
    }

    /// Forgets the oldest finished jobs beyond `history_jobs`, keeping any
    /// whose result rows clients may still read.
    fn prune_history(&mut self) {
        let finished: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status.is_terminal())
            .map(|(id, _)| *id)
            .collect();
        let mut excess = finished.len().saturating_sub(self.history_jobs as usize);
        for id in finished {
            if excess == 0 {
                break;
            }
            let forgettable = self.jobs.get(&id).is_some_and(|j| !j.holds_results())
                && !self
                    .workers
                    .values()
                    .any(|w| w.running.iter().any(|t| t.job == id));
            if forgettable {
                self.jobs.remove(&id);
                excess -= 1;
            }
        }
    }

    /// Applies one command, or refuses it leaving the state unchanged.
    pub fn apply(&mut self, cmd: &Command) -> Result<(), Refusal> {
        match cmd {
            Command::SubmitJob {
                job,
                name,
                stages,
                output,
                request_id,
                submitted_unix_ms,
                row_errors,
            } => {
                self.submit(*job, name, stages, output.clone(), request_id)?;
                if let Some(j) = self.jobs.get_mut(job) {
                    j.submitted_unix_ms = *submitted_unix_ms;
                    j.row_errors = row_errors.clone();
                }
            }
            Command::FailJob { job, reason } => {
                self.end_job(*job, JobStatus::Failed(reason.clone()), "failed")?
            }
            Command::CancelJob { job } => self.end_job(*job, JobStatus::Cancelled, "cancelled")?,
            Command::CompleteJob {
                job,
                rows,
                finished_unix_ms,
            } => {
                let j = self.running_job(*job, "completed")?;
                if !j.results_ready() {
                    return Err(Refusal::InvalidCommand(format!(
                        "{job} cannot complete before its result stage"
                    )));
                }
                j.rows_out = *rows;
                j.finished_unix_ms = *finished_unix_ms;
                j.status = JobStatus::Succeeded;
            }
            Command::ReleaseResults { job, why } => {
                let j = self.jobs.get_mut(job).ok_or(Refusal::UnknownJob(*job))?;
                if !j.holds_results() {
                    return Err(Refusal::InvalidTransition {
                        job: *job,
                        status: j.status.to_string(),
                        action: "released (it holds no results)".into(),
                    });
                }
                j.released = Some(why.clone());
                self.drop_job_tasks(*job);
            }
            Command::WorkerJoined { worker, spec } => {
                if self.workers.contains_key(worker) {
                    return Err(Refusal::DuplicateWorker(*worker));
                }
                self.workers.insert(
                    *worker,
                    WorkerState {
                        spec: spec.clone(),
                        alive: true,
                        used: Resources::default(),
                        running: BTreeSet::new(),
                        tasks_done: 0,
                        lost_reason: String::new(),
                    },
                );
            }
            Command::WorkerLost { worker, reason } => self.lose_worker(*worker, reason)?,
            Command::TaskAssigned { task, worker } => self.assign(*task, *worker)?,
            Command::TaskFinished {
                task,
                worker,
                attempt,
                outputs,
                spilled_bytes,
                written,
                operators,
                row_failures,
            } => {
                if self.release(*task, *worker, *attempt) {
                    if let Some(w) = self.workers.get_mut(worker) {
                        w.tasks_done += 1;
                    }
                    if let Some(j) = self.jobs.get_mut(&task.job) {
                        j.shuffle_bytes += outputs.iter().map(|o| o.bytes).sum::<u64>();
                        j.spilled_bytes += spilled_bytes;
                        j.row_failures = j.row_failures + *row_failures;
                        if let Some(s) = j.stages.get_mut(&task.stage) {
                            if let Some(t) = s.tasks.get_mut(task.partition as usize) {
                                t.status = TaskStatus::Done {
                                    worker: *worker,
                                    outputs: outputs.clone(),
                                    written: written.clone(),
                                };
                                s.done += 1;
                            }
                            s.add_operators(operators);
                        }
                    }
                }
            }
            Command::TaskFailed {
                task,
                worker,
                attempt,
                error,
                lost_input,
                class,
            } => {
                if self.release(*task, *worker, *attempt) {
                    if let Some(j) = self.jobs.get_mut(&task.job) {
                        j.note_failure(FailureNote {
                            stage: task.stage,
                            partition: task.partition,
                            attempt: *attempt,
                            worker: *worker,
                            error: error.clone(),
                        });
                    }
                    self.fail_task(*task, *worker, error, lost_input.is_some(), *class);
                }
            }
            Command::TaskRequeued {
                task,
                worker,
                attempt,
            } => {
                if self.release(*task, *worker, *attempt) {
                    self.requeue(*task);
                }
            }
            Command::Batch(cmds) => {
                // Each command stands alone: one refused does not undo the others.
                self.apply_batch(cmds);
                return Ok(());
            }
        }
        self.prune_history();
        self.applied += 1;
        Ok(())
    }

    /// Applies a batch, saying for each command whether it was refused and why.
    pub fn apply_batch(&mut self, cmds: &[Command]) -> Vec<Option<Refusal>> {
        cmds.iter().map(|c| self.apply(c).err()).collect()
    }

    fn requeue(&mut self, task: TaskKey) {
        if let Some(j) = self.jobs.get_mut(&task.job) {
            if let Some(s) = j.stages.get_mut(&task.stage) {
                if let Some(t) = s.tasks.get_mut(task.partition as usize) {
                    t.status = TaskStatus::Pending;
                    s.pending.insert(task.partition);
                    j.retried_tasks += 1;
                }
            }
        }
    }

    fn submit(
        &mut self,
        job: JobId,
        name: &str,
        stages: &[StageSpec],
        output: Option<crate::JobOutput>,
        request_id: &RequestId,
    ) -> Result<(), Refusal> {
        if self.jobs.contains_key(&job) {
            return Err(Refusal::DuplicateJob(job));
        }
        if let Some(first) = self.job_for_request(request_id) {
            return Err(Refusal::DuplicateRequest {
                request_id: request_id.clone(),
                job: first,
            });
        }
        let Some(last) = stages.last() else {
            return Err(Refusal::InvalidCommand(format!("{job} has no stages")));
        };
        let mut seen = BTreeSet::new();
        for s in stages {
            if s.tasks == 0 {
                return Err(Refusal::InvalidCommand(format!(
                    "{job}/{} has no tasks",
                    s.stage
                )));
            }
            if let Some(i) = s.inputs.iter().find(|i| !seen.contains(*i)) {
                return Err(Refusal::InvalidCommand(format!(
                    "{job}/{} reads {i}, which is not an earlier stage",
                    s.stage
                )));
            }
            if !seen.insert(s.stage) {
                return Err(Refusal::InvalidCommand(format!(
                    "{job} has {} twice",
                    s.stage
                )));
            }
        }
        let final_stage = last.stage;
        self.jobs.insert(
            job,
            JobState {
                name: name.to_string(),
                status: JobStatus::Running,
                stages: stages
                    .iter()
                    .map(|s| (s.stage, StageState::new(s.clone())))
                    .collect(),
                final_stage,
                retried_tasks: 0,
                recomputed_outputs: 0,
                spilled_bytes: 0,
                shuffle_bytes: 0,
                rows_out: 0,
                output,
                finished_unix_ms: 0,
                released: None,
                request_id: request_id.clone(),
                failures: Vec::new(),
                submitted_unix_ms: 0,
                row_errors: RowErrorPolicy::default(),
                row_failures: RowFailureCounts::default(),
            },
        );
        Ok(())
    }

    fn running_job(&mut self, job: JobId, action: &'static str) -> Result<&mut JobState, Refusal> {
        let j = self.jobs.get_mut(&job).ok_or(Refusal::UnknownJob(job))?;
        if j.status != JobStatus::Running {
            return Err(Refusal::InvalidTransition {
                job,
                status: j.status.to_string(),
                action: action.into(),
            });
        }
        Ok(j)
    }

    fn end_job(
        &mut self,
        job: JobId,
        status: JobStatus,
        action: &'static str,
    ) -> Result<(), Refusal> {
        self.running_job(job, action)?.status = status;
        self.drop_job_tasks(job);
        Ok(())
    }

    /// Frees what `job`'s running tasks hold on their workers.
    fn drop_job_tasks(&mut self, job: JobId) {
        for w in self.workers.values_mut() {
            let gone: Vec<TaskKey> = w.running.iter().filter(|t| t.job == job).copied().collect();
            for t in gone {
                w.running.remove(&t);
                if let Some(s) = self.jobs.get(&job).and_then(|j| j.stages.get(&t.stage)) {
                    w.used = sub(w.used, w.share_of(s.spec.demand));
                }
            }
        }
    }

    fn assign(&mut self, task: TaskKey, worker: WorkerId) -> Result<(), Refusal> {
        let demand = {
            let j = self
                .jobs
                .get(&task.job)
                .ok_or(Refusal::UnknownJob(task.job))?;
            if !j.is_active() {
                return Err(Refusal::InvalidTransition {
                    job: task.job,
                    status: j.status.to_string(),
                    action: "assigned tasks".into(),
                });
            }
            let s = j
                .stages
                .get(&task.stage)
                .ok_or_else(|| Refusal::InvalidCommand(format!("no stage for {task}")))?;
            if !s.pending.contains(&task.partition) {
                return Err(Refusal::InvalidCommand(format!(
                    "{task} is not waiting for a worker"
                )));
            }
            if !j.is_runnable(s) {
                return Err(Refusal::InvalidCommand(format!(
                    "{task} waits for its input stages"
                )));
            }
            s.spec.demand
        };
        let w = self
            .workers
            .get_mut(&worker)
            .filter(|w| w.alive)
            .ok_or(Refusal::UnknownWorker(worker))?;
        let share = w.share_of(demand);
        if !share.fits_in(&w.free()) {
            return Err(Refusal::InvalidCommand(format!(
                "{task} does not fit on {worker}"
            )));
        }
        w.used = add(w.used, share);
        w.running.insert(task);
        if let Some(s) = self
            .jobs
            .get_mut(&task.job)
            .and_then(|j| j.stages.get_mut(&task.stage))
        {
            s.pending.remove(&task.partition);
            if let Some(t) = s.tasks.get_mut(task.partition as usize) {
                t.launches += 1;
                t.status = TaskStatus::Running {
                    worker,
                    attempt: t.launches,
                };
            }
        }
        Ok(())
    }

    /// A job by id.
    pub fn job(&self, job: JobId) -> Option<&JobState> {
        self.jobs.get(&job)
    }

    /// Every job, in id order.
    pub fn jobs(&self) -> impl Iterator<Item = (&JobId, &JobState)> {
        self.jobs.iter()
    }

    /// A worker by id.
    pub fn worker(&self, worker: WorkerId) -> Option<&WorkerState> {
        self.workers.get(&worker)
    }

    /// Where every finished task of `stage` of `job` left its output.
    pub fn map_locations(&self, job: JobId, stage: StageId) -> Vec<MapLocation> {
        let Some(j) = self.jobs.get(&job) else {
            return Vec::new();
        };
        j.map_outputs(stage)
            .into_iter()
            .map(|(map, worker, partitions)| {
                let spec = self.workers.get(&worker).map(|w| &w.spec);
                MapLocation {
                    map_partition: map,
                    worker: worker.0,
                    address: spec.map(|s| s.address.clone()).unwrap_or_default(),
                    partitions,
                    shuffle_root: spec.map(|s| s.shuffle_root.clone()).unwrap_or_default(),
                    shuffle_token: spec.map(|s| s.shuffle_token.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Every worker, in id order.
    pub fn workers(&self) -> impl Iterator<Item = (&WorkerId, &WorkerState)> {
        self.workers.iter()
    }

    /// The id after the highest job id ever used.
    /// The job a client's submission key was accepted as (never for an empty key).
    pub fn job_for_request(&self, request_id: &RequestId) -> Option<JobId> {
        if request_id.is_empty() {
            return None;
        }
        self.jobs
            .iter()
            .find(|(_, j)| &j.request_id == request_id)
            .map(|(id, _)| *id)
    }

    pub fn next_job_id(&self) -> JobId {
        JobId(self.jobs.keys().next_back().map_or(1, |j| j.0 + 1))
    }

    /// The id after the highest worker id ever used.
    pub fn next_worker_id(&self) -> WorkerId {
        WorkerId(self.workers.keys().next_back().map_or(1, |w| w.0 + 1))
    }

    /// Commands applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }
}
