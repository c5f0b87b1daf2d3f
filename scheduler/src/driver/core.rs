//! [`Driver`]: the state machine plus what only the live process knows (worker
//! connections, heartbeats, results), and the loops that move jobs along.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use regatta_common::{JobId, StageId, WorkerId};
use regatta_proto::{worker_order, JobInfo, MapOutput, StageInput, TaskAssignment, WorkerOrder};
use regatta_shuffle::ShuffleFetcher;
use tokio::sync::{mpsc, Notify};

use super::DriverOptions;
use crate::job_state::{JobState, JobStatus};
use crate::{next_assignments, Command, DriverState, Result, SchedulerError, TaskKey};

/// Assignments made per scheduling round.
const ROUND_LIMIT: usize = 4096;

/// What the driver knows beyond its replicated state.
#[derive(Default)]
struct Live {
    orders: HashMap<WorkerId, mpsc::Sender<WorkerOrder>>,
    last_seen: HashMap<WorkerId, Instant>,
    reports: HashMap<WorkerId, WorkerReport>,
    started: HashMap<JobId, Instant>,
    finished: HashMap<JobId, Instant>,
    results: HashMap<JobId, Vec<RecordBatch>>,
    collecting: BTreeSet<JobId>,
}

/// What a worker said about itself at its last heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Models it has loaded over its life.
    pub model_builds: u64,
    /// Tasks it is running (aborted ones are gone from this count).
    pub running_tasks: u32,
}

/// The driver, shared by its services and loops.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

struct Inner {
    options: DriverOptions,
    state: Mutex<DriverState>,
    live: Mutex<Live>,
    next_job: AtomicU64,
    next_worker: AtomicU64,
    wake: Notify,
    /// Counts applied commands, so watchers wake on every change.
    changes: tokio::sync::watch::Sender<u64>,
    fetcher: ShuffleFetcher,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here (commands apply
    // whole or not at all), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Driver {
    pub fn new(options: DriverOptions) -> Self {
        let fetcher = ShuffleFetcher::remote(options.token.clone())
            .with_tls(options.tls.as_ref().map(|t| t.client()));
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(DriverState::new(options.max_task_failures)),
                options,
                live: Mutex::new(Live::default()),
                next_job: AtomicU64::new(1),
                next_worker: AtomicU64::new(1),
                wake: Notify::new(),
                changes: tokio::sync::watch::Sender::new(0),
                fetcher,
            }),
        }
    }

    pub fn options(&self) -> &DriverOptions {
        &self.inner.options
    }

    /// Applies `cmd` and wakes the scheduling loop.
    pub fn apply(&self, cmd: Command) -> Result<()> {
        lock(&self.inner.state).apply(&cmd)?;
        self.inner.wake.notify_one();
        self.inner.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Wakes on every change of the state.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Reads the state.
    pub fn with_state<R>(&self, f: impl FnOnce(&DriverState) -> R) -> R {
        f(&lock(&self.inner.state))
    }

    pub fn new_job_id(&self) -> JobId {
        JobId(self.inner.next_job.fetch_add(1, Ordering::SeqCst))
    }

    /// Records a newly planned job and its start time.
    pub fn submit(&self, cmd: Command) -> Result<()> {
        if let Command::SubmitJob { job, .. } = &cmd {
            lock(&self.inner.live).started.insert(*job, Instant::now());
        }
        self.apply(cmd)
    }

    // ------------------------------------------------------------ workers

    /// Registers a worker; returns its id.
    pub fn register_worker(&self, spec: crate::WorkerSpec) -> Result<WorkerId> {
        let worker = WorkerId(self.inner.next_worker.fetch_add(1, Ordering::SeqCst));
        self.apply(Command::WorkerJoined { worker, spec })?;
        lock(&self.inner.live)
            .last_seen
            .insert(worker, Instant::now());
        log::info!("{worker} joined");
        Ok(worker)
    }

    /// The channel the driver's orders to `worker` go through.
    pub fn connect_worker(&self, worker: WorkerId) -> Result<mpsc::Receiver<WorkerOrder>> {
        let alive = self.with_state(|s| s.worker(worker).is_some_and(|w| w.alive));
        if !alive {
            return Err(SchedulerError::UnknownWorker(worker));
        }
        let (tx, rx) = mpsc::channel(1024);
        lock(&self.inner.live).orders.insert(worker, tx);
        self.inner.wake.notify_one();
        Ok(rx)
    }

    /// A heartbeat; false when the worker is unknown or was declared lost.
    pub fn heartbeat(&self, worker: WorkerId, report: WorkerReport) -> bool {
        let alive = self.with_state(|s| s.worker(worker).is_some_and(|w| w.alive));
        if alive {
            let mut live = lock(&self.inner.live);
            live.last_seen.insert(worker, Instant::now());
            live.reports.insert(worker, report);
        }
        alive
    }

    /// Declares `worker` lost (its connection closed or it fell silent).
    pub fn lose_worker(&self, worker: WorkerId, reason: &str) {
        let alive = self.with_state(|s| s.worker(worker).is_some_and(|w| w.alive));
        if !alive {
            return;
        }
        log::warn!("{worker} lost: {reason}");
        lock(&self.inner.live).orders.remove(&worker);
        let _ = self.apply(Command::WorkerLost {
            worker,
            reason: reason.to_string(),
        });
    }

    /// What `worker` said at its last heartbeat.
    pub fn worker_report(&self, worker: WorkerId) -> WorkerReport {
        lock(&self.inner.live)
            .reports
            .get(&worker)
            .copied()
            .unwrap_or_default()
    }

    // ------------------------------------------------------------ jobs

    /// Cancels a running job and tells every worker to drop its work.
    pub fn cancel(&self, job: JobId) -> Result<()> {
        self.apply(Command::CancelJob { job })?;
        self.end_job_on_workers(job);
        Ok(())
    }

    fn end_job_on_workers(&self, job: JobId) {
        let senders: Vec<_> = {
            let mut live = lock(&self.inner.live);
            live.finished.insert(job, Instant::now());
            live.orders.values().cloned().collect()
        };
        for tx in senders {
            let _ = tx.try_send(WorkerOrder {
                order: Some(worker_order::Order::EndJob(job.0)),
            });
        }
    }

    /// A job's progress as clients see it.
    pub fn job_info(&self, job: JobId) -> Option<JobInfo> {
        let info = self.with_state(|s| s.job(job).map(|j| info_of(job, j)))?;
        let live = lock(&self.inner.live);
        let elapsed = match (live.started.get(&job), live.finished.get(&job)) {
            (Some(s), Some(f)) => f.duration_since(*s).as_secs_f64(),
            (Some(s), None) => s.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        Some(JobInfo {
            elapsed_seconds: elapsed,
            ..info
        })
    }

    /// Every job's progress.
    pub fn jobs(&self) -> Vec<JobInfo> {
        let ids: Vec<JobId> = self.with_state(|s| s.jobs().map(|(id, _)| *id).collect());
        ids.into_iter().filter_map(|j| self.job_info(j)).collect()
    }

    /// The result rows of a finished job.
    pub fn results(&self, job: JobId) -> Option<Vec<RecordBatch>> {
        lock(&self.inner.live).results.get(&job).cloned()
    }

    // ------------------------------------------------------------ loops

    /// Places tasks whenever something changes, until the driver is dropped.
    pub async fn schedule_loop(self) {
        loop {
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(200),
                self.inner.wake.notified(),
            )
            .await;
            self.schedule_round().await;
            self.collect_ready_results();
            self.end_failed_jobs();
        }
    }

    /// One round of placement: decide, record, send.
    pub async fn schedule_round(&self) -> usize {
        let connected: BTreeSet<WorkerId> = lock(&self.inner.live).orders.keys().copied().collect();
        let mut sent = 0;
        let picks = self.with_state(|s| next_assignments(s, ROUND_LIMIT));
        for (task, worker) in picks {
            if !connected.contains(&worker) {
                continue;
            }
            if self.apply(Command::TaskAssigned { task, worker }).is_err() {
                continue;
            }
            let Some(order) = self.assignment(task) else {
                continue;
            };
            let tx = lock(&self.inner.live).orders.get(&worker).cloned();
            let delivered = match tx {
                Some(tx) => tx.send(order).await.is_ok(),
                None => false,
            };
            if delivered {
                sent += 1;
            } else {
                self.lose_worker(worker, "its order stream closed");
            }
        }
        sent
    }

    /// The order that runs `task`: its stage plan and where its inputs are.
    fn assignment(&self, task: TaskKey) -> Option<WorkerOrder> {
        self.with_state(|s| {
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
                    term: 0,
                })),
            })
        })
    }

    /// Declares lost every worker silent for longer than the timeout.
    pub fn check_heartbeats(&self) {
        let timeout = self.inner.options.worker_timeout;
        let silent: Vec<WorkerId> = lock(&self.inner.live)
            .last_seen
            .iter()
            .filter(|(_, t)| t.elapsed() > timeout)
            .map(|(w, _)| *w)
            .collect();
        for w in silent {
            lock(&self.inner.live).last_seen.remove(&w);
            self.lose_worker(w, &format!("no heartbeat for {timeout:?}"));
        }
    }

    /// Tells workers to drop the files of jobs that failed (cancel does so itself).
    fn end_failed_jobs(&self) {
        let failed: Vec<JobId> = {
            let live = lock(&self.inner.live);
            self.with_state(|s| {
                s.jobs()
                    .filter(|(id, j)| {
                        matches!(j.status, JobStatus::Failed(_)) && !live.finished.contains_key(id)
                    })
                    .map(|(id, _)| *id)
                    .collect()
            })
        };
        for job in failed {
            self.end_job_on_workers(job);
        }
    }

    /// Starts fetching the rows of every job whose result stage is complete.
    fn collect_ready_results(&self) {
        let ready: Vec<JobId> = self.with_state(|s| {
            s.jobs()
                .filter(|(_, j)| j.results_ready())
                .map(|(id, _)| *id)
                .collect()
        });
        for job in ready {
            if !lock(&self.inner.live).collecting.insert(job) {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                let outcome = me.fetch_results(job).await;
                lock(&me.inner.live).collecting.remove(&job);
                match outcome {
                    Ok(batches) => {
                        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                        lock(&me.inner.live).results.insert(job, batches);
                        if me
                            .apply(Command::CompleteJob {
                                job,
                                rows,
                                result: Vec::new(),
                            })
                            .is_ok()
                        {
                            me.end_job_on_workers(job);
                        }
                    }
                    // A lost worker makes its outputs pending again; the next round
                    // recomputes them and collection starts over.
                    Err(e) => log::warn!("{job}: collecting results: {e}"),
                }
            });
        }
    }

    async fn fetch_results(&self, job: JobId) -> Result<Vec<RecordBatch>> {
        use futures::TryStreamExt;
        let (stage, maps) = self
            .with_state(|s| {
                let stage = s.job(job)?.final_stage;
                Some((stage, s.map_locations(job, stage)))
            })
            .ok_or(SchedulerError::UnknownJob(job))?;
        let mut out = Vec::new();
        for map in maps {
            if !map.partitions.contains(&map.map_partition) {
                continue;
            }
            let stream = self
                .inner
                .fetcher
                .fetch((job, stage), &map, map.map_partition)
                .await
                .map_err(|e| SchedulerError::Plan(e.to_string()))?;
            let batches: Vec<RecordBatch> = stream
                .try_collect()
                .await
                .map_err(|e| SchedulerError::Plan(e.to_string()))?;
            out.extend(batches);
        }
        Ok(out)
    }

    /// The final stage of `job`, for tests and tools.
    pub fn final_stage(&self, job: JobId) -> Option<StageId> {
        self.with_state(|s| s.job(job).map(|j| j.final_stage))
    }
}

/// Progress numbers of one job.
pub fn info_of(job: JobId, j: &JobState) -> JobInfo {
    JobInfo {
        job_id: job.0,
        name: j.name.clone(),
        status: j.status.word().to_string(),
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
    }
}
