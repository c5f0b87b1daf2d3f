//! [`Driver`]: the state machine plus what only the live process knows (worker
//! connections, heartbeats), and the loops that move jobs along.
//!
//! Every change goes through [`Driver::propose`]: applied at once on a lone
//! driver, or committed through Raft on a replicated one, where only the leader
//! proposes, schedules and collects.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use regatta_common::{JobId, WorkerId};
use regatta_proto::{
    worker_order, JobInfo, MapOutput, ResultPartition, StageInput, TaskAssignment, WorkerInfo,
    WorkerOrder,
};
use tokio::sync::mpsc;
use tonic::Status;

use super::results::{commit_output, discard_output};
use super::DriverOptions;
use crate::job_state::{JobState, JobStatus, Released, TaskStatus};
use crate::raft::Replica;
use crate::{
    commit_tag, next_assignments, Command, DriverState, Result, SchedulerError, SharedState,
    TaskKey, WorkerSpec,
};

/// Assignments made per scheduling round.
const ROUND_LIMIT: usize = 4096;
/// How long a replicated command may wait for a quorum.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a worker call waits for a new leader to apply its predecessors' log.
const TAKE_UP_WAIT: Duration = Duration::from_secs(5);

/// What the driver knows beyond its replicated state.
#[derive(Default)]
struct Live {
    orders: HashMap<WorkerId, mpsc::Sender<WorkerOrder>>,
    last_seen: HashMap<WorkerId, Instant>,
    reports: HashMap<WorkerId, WorkerReport>,
    started: HashMap<JobId, Instant>,
    finished: HashMap<JobId, Instant>,
    /// Where each job's time went (diagnostics; not replicated).
    timings: HashMap<JobId, JobTiming>,
    /// The term this driver last led in; 0 while it does not lead.
    leading: u64,
    /// The last term this driver placed tasks in.
    placed_in: u64,
}

impl Live {
    /// The timing record of `task`'s stage, made on first use.
    fn stage_timing(&mut self, task: TaskKey) -> &mut StageTiming {
        self.timings
            .entry(task.job)
            .or_default()
            .stages
            .entry(task.stage)
            .or_default()
    }
}

/// Where one job's time went.
#[derive(Debug, Default)]
struct JobTiming {
    planning: Duration,
    stages: std::collections::BTreeMap<regatta_common::StageId, StageTiming>,
}

#[derive(Debug, Default)]
struct StageTiming {
    first_placed: Option<Instant>,
    last_done: Option<Instant>,
    tasks: u32,
    task_nanos: u64,
    read_nanos: u64,
    write_nanos: u64,
}

/// Time a finished task reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskTime {
    pub task_nanos: u64,
    pub read_nanos: u64,
    pub write_nanos: u64,
}

/// What a worker said about itself at its last heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerReport {
    /// Models it has loaded over its life.
    pub model_builds: u64,
    /// Tasks it is running (aborted ones are gone from this count).
    pub running_tasks: u32,
    /// The GPU devices its latest model actors hold.
    pub actor_devices: Vec<String>,
    /// Memory, spill, shuffle bytes and model pools.
    pub usage: regatta_proto::WorkerUsage,
}

/// How commands reach the state.
enum Consensus {
    /// One driver: applied at once, kept in memory.
    Local,
    /// Replicated through Raft.
    Raft(Replica),
}

/// The driver, shared by its services and loops.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

struct Inner {
    options: DriverOptions,
    shared: Arc<SharedState>,
    consensus: Consensus,
    live: Mutex<Live>,
    next_job: AtomicU64,
    next_worker: AtomicU64,
    /// Parts of running resumable jobs this driver committed (not
    /// replicated: each part's commit is found again if redone).
    committed_parts: Mutex<std::collections::HashSet<(JobId, u32)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here, so a poisoned
    // lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Driver {
    /// A lone driver, its state in memory.
    pub fn new(options: DriverOptions) -> Self {
        let shared = Arc::new(SharedState::new(
            DriverState::new(options.max_task_failures).with_history(options.history_jobs),
        ));
        Self::with(options, shared, Consensus::Local)
    }

    /// A driver replica: `shared` is the state `replica` applies commits to.
    pub fn replicated(options: DriverOptions, shared: Arc<SharedState>, replica: Replica) -> Self {
        Self::with(options, shared, Consensus::Raft(replica))
    }

    fn with(options: DriverOptions, shared: Arc<SharedState>, consensus: Consensus) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                options,
                consensus,
                live: Mutex::new(Live::default()),
                next_job: AtomicU64::new(1),
                next_worker: AtomicU64::new(1),
                committed_parts: Mutex::default(),
            }),
        }
    }

    /// Parts of running resumable jobs committed so far (see `resumable`).
    pub(super) fn committed_parts(
        &self,
    ) -> MutexGuard<'_, std::collections::HashSet<(JobId, u32)>> {
        lock(&self.inner.committed_parts)
    }

    pub fn options(&self) -> &DriverOptions {
        &self.inner.options
    }

    /// The Raft replica, when replicated.
    pub fn replica(&self) -> Option<&Replica> {
        match &self.inner.consensus {
            Consensus::Raft(r) => Some(r),
            Consensus::Local => None,
        }
    }

    /// True when this driver may schedule (always, for a lone one).
    pub fn is_leader(&self) -> bool {
        self.replica().is_none_or(Replica::is_leader)
    }

    /// The leader's term (0 for a lone driver); orders carry it.
    pub fn term(&self) -> u64 {
        self.replica().map_or(0, Replica::term)
    }

    /// Refuses a call on a replica that does not lead, naming the leader.
    pub fn require_leader(&self) -> std::result::Result<(), Status> {
        match self.replica() {
            Some(r) => r.require_leader(),
            None => Ok(()),
        }
    }

    /// Waits until this replica has taken up the leadership of its term, that
    /// is applied every command of earlier terms, so that a returning worker or
    /// a task report is reconciled against the whole state, not a stale one (a
    /// report or an adoption checked too early is lost and its task hangs). A
    /// lone driver has nothing to wait for; a follower fails at once.
    pub async fn taken_up(&self) -> Result<()> {
        let Some(replica) = self.replica() else {
            return Ok(());
        };
        let deadline = Instant::now() + TAKE_UP_WAIT;
        loop {
            let not_leader = || SchedulerError::NotLeader {
                leader: replica.leader_address(),
            };
            if !replica.is_leader() {
                return Err(not_leader());
            }
            let term = replica.term();
            if term != 0 && lock(&self.inner.live).leading == term {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(not_leader());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Applies `cmd` (through Raft when replicated); for each command in it, why
    /// it was refused, `None` where it was applied.
    pub async fn propose(&self, cmd: Command) -> Result<Vec<Option<String>>> {
        match &self.inner.consensus {
            Consensus::Local => Ok(self.inner.shared.apply_all(&cmd)),
            Consensus::Raft(r) => Ok(r.commit(cmd, COMMIT_TIMEOUT).await?.0),
        }
    }

    /// Applies one command; a refusal is an error.
    pub async fn apply(&self, cmd: Command) -> Result<()> {
        if let (Consensus::Local, false) = (&self.inner.consensus, matches!(cmd, Command::Batch(_)))
        {
            // Keeps the refusal's own error variant.
            return self.inner.shared.apply(&cmd);
        }
        match self.propose(cmd).await?.into_iter().flatten().next() {
            Some(refused) => Err(SchedulerError::InvalidCommand(refused)),
            None => Ok(()),
        }
    }

    /// Wakes on every change of the state.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.shared.subscribe()
    }

    /// Reads the state.
    pub fn with_state<R>(&self, f: impl FnOnce(&DriverState) -> R) -> R {
        self.inner.shared.read(f)
    }

    /// A job id never used before (ids live in the replicated state, so a new
    /// leader continues after the last one its predecessor handed out).
    pub fn new_job_id(&self) -> JobId {
        let floor = self.with_state(|s| s.next_job_id().0);
        self.inner.next_job.fetch_max(floor, Ordering::SeqCst);
        JobId(self.inner.next_job.fetch_add(1, Ordering::SeqCst))
    }

    fn new_worker_id(&self) -> WorkerId {
        let floor = self.with_state(|s| s.next_worker_id().0);
        self.inner.next_worker.fetch_max(floor, Ordering::SeqCst);
        WorkerId(self.inner.next_worker.fetch_add(1, Ordering::SeqCst))
    }

    /// Records a newly planned job, its start time and how long planning took.
    pub async fn submit(&self, cmd: Command, planning: Duration) -> Result<()> {
        if let Command::SubmitJob { job, .. } = &cmd {
            let mut live = lock(&self.inner.live);
            live.started.insert(
                *job,
                Instant::now()
                    .checked_sub(planning)
                    .unwrap_or_else(Instant::now),
            );
            live.timings.entry(*job).or_default().planning = planning;
        }
        self.apply(cmd).await
    }

    /// Notes a finished task's time for its stage's breakdown.
    pub fn note_task_done(&self, task: TaskKey, time: TaskTime) {
        let mut live = lock(&self.inner.live);
        let s = live.stage_timing(task);
        s.last_done = Some(Instant::now());
        s.tasks += 1;
        s.task_nanos += time.task_nanos;
        s.read_nanos += time.read_nanos;
        s.write_nanos += time.write_nanos;
    }

    /// Where a job's time went, per stage, relative to its submission.
    fn timings_of(&self, job: JobId) -> (f64, Vec<regatta_proto::StageTiming>) {
        let live = lock(&self.inner.live);
        let (Some(t), Some(start)) = (live.timings.get(&job), live.started.get(&job)) else {
            return (0.0, Vec::new());
        };
        let since = |i: Option<Instant>| {
            i.map_or(0.0, |i| i.saturating_duration_since(*start).as_secs_f64())
        };
        let secs = |n: u64| n as f64 / 1e9;
        let stages = t
            .stages
            .iter()
            .map(|(id, s)| regatta_proto::StageTiming {
                stage_id: id.0 as u32,
                tasks: s.tasks,
                started_seconds: since(s.first_placed),
                ended_seconds: since(s.last_done),
                task_seconds: secs(s.task_nanos),
                read_seconds: secs(s.read_nanos),
                write_seconds: secs(s.write_nanos),
            })
            .collect();
        (t.planning.as_secs_f64(), stages)
    }

    // ------------------------------------------------------------ workers

    /// Registers a worker; returns its id. A worker that was registered before
    /// (with a previous leader) keeps its id and its running tasks; tasks the
    /// state puts on it that it does not report are placed again.
    pub async fn register_worker(
        &self,
        spec: WorkerSpec,
        previous: Option<WorkerId>,
        running: &[(TaskKey, u32)],
    ) -> Result<WorkerId> {
        if let Some(worker) = previous {
            let known = self.with_state(|s| s.worker(worker).is_some_and(|w| w.alive));
            if known {
                let reported: BTreeSet<(TaskKey, u32)> = running.iter().copied().collect();
                let orphans: Vec<Command> = self.with_state(|s| {
                    s.worker(worker)
                        .map(|w| {
                            w.running
                                .iter()
                                .filter_map(|t| {
                                    let attempt = running_attempt(s, *t, worker)?;
                                    (!reported.contains(&(*t, attempt))).then_some(
                                        Command::TaskRequeued {
                                            task: *t,
                                            worker,
                                            attempt,
                                        },
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                });
                if !orphans.is_empty() {
                    log::info!(
                        "{worker} came back without {} of its tasks; placing them again",
                        orphans.len()
                    );
                    self.propose(Command::Batch(orphans)).await?;
                }
                lock(&self.inner.live)
                    .last_seen
                    .insert(worker, Instant::now());
                log::info!(
                    "{worker} registered again, adopting its {} running tasks",
                    running.len()
                );
                return Ok(worker);
            }
        }
        let worker = self.new_worker_id();
        self.apply(Command::WorkerJoined { worker, spec }).await?;
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
        self.inner.shared.wake();
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
    pub async fn lose_worker(&self, worker: WorkerId, reason: &str) {
        let alive = self.with_state(|s| s.worker(worker).is_some_and(|w| w.alive));
        if !alive || !self.is_leader() {
            return;
        }
        log::warn!("{worker} lost: {reason}");
        lock(&self.inner.live).orders.remove(&worker);
        let _ = self
            .apply(Command::WorkerLost {
                worker,
                reason: reason.to_string(),
            })
            .await;
    }

    /// A task could not reach `worker`'s shuffle data. If `worker` has also been
    /// silent for two heartbeats it is declared lost now, not at its timeout, so
    /// its outputs are recomputed before the reading task runs out of retries.
    pub async fn input_unreachable(&self, worker: WorkerId) {
        let grace = self.inner.options.heartbeat_interval * 2;
        let silent = lock(&self.inner.live)
            .last_seen
            .get(&worker)
            .is_some_and(|t| t.elapsed() > grace);
        if silent {
            lock(&self.inner.live).last_seen.remove(&worker);
            let reason = format!("its shuffle data is unreachable and it was silent for {grace:?}");
            self.lose_worker(worker, &reason).await;
        }
    }

    /// The node labels of the live workers (those a launcher started).
    pub fn live_node_labels(&self) -> std::collections::BTreeSet<String> {
        self.with_state(|s| {
            s.workers()
                .filter(|(_, w)| w.alive && !w.spec.node_label.is_empty())
                .map(|(_, w)| w.spec.node_label.clone())
                .collect()
        })
    }

    /// What `worker` said at its last heartbeat.
    pub fn worker_report(&self, worker: WorkerId) -> WorkerReport {
        lock(&self.inner.live)
            .reports
            .get(&worker)
            .cloned()
            .unwrap_or_default()
    }

    // ------------------------------------------------------------ jobs

    /// Cancels a running job and tells every worker to drop its work.
    pub async fn cancel(&self, job: JobId) -> Result<()> {
        self.apply(Command::CancelJob { job }).await?;
        self.end_job_on_workers(job);
        self.discard_outputs(&[job]).await;
        Ok(())
    }

    pub(super) fn end_job_on_workers(&self, job: JobId) {
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

    /// Every worker the driver knows, with what it said at its last heartbeat.
    pub fn workers_info(&self) -> Vec<WorkerInfo> {
        let workers: Vec<(WorkerId, WorkerInfo)> = self.with_state(|s| {
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
                let report = self.worker_report(id);
                w.model_builds = report.model_builds;
                w.reported_running = report.running_tasks;
                w.actor_devices = report.actor_devices;
                w.usage = Some(report.usage);
                w
            })
            .collect()
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
        drop(live);
        let (planning_seconds, stage_timings) = self.timings_of(job);
        Some(JobInfo {
            elapsed_seconds: elapsed,
            planning_seconds,
            stage_timings,
            ..info
        })
    }

    /// Every job's progress.
    pub fn jobs(&self) -> Vec<JobInfo> {
        let ids: Vec<JobId> = self.with_state(|s| s.jobs().map(|(id, _)| *id).collect());
        ids.into_iter().filter_map(|j| self.job_info(j)).collect()
    }

    // ------------------------------------------------------------ loops

    /// Places tasks whenever something changes, until the driver is dropped.
    pub async fn schedule_loop(self) {
        loop {
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                self.inner.shared.wait_for_change(),
            )
            .await;
            if !self.is_leader() {
                continue;
            }
            self.schedule_round().await;
            self.commit_finished_parts().await;
            self.complete_ready_jobs().await;
            let ended = self.end_failed_jobs();
            self.discard_outputs(&ended).await;
            self.expire_results().await;
        }
    }

    /// Follows this replica's leadership: on election, waits until every earlier
    /// command is applied and gives each known worker a fresh timeout to come back;
    /// when deposed, drops its worker streams so workers go find the new leader.
    pub async fn leadership_loop(self) {
        let Some(replica) = self.replica().cloned() else {
            return;
        };
        let mut metrics = replica.raft().metrics();
        loop {
            // Leadership proper, not the quorum's freshness: a busy leader whose
            // acks lag keeps its workers (it only pauses scheduling meanwhile).
            let leads = replica.holds_leadership();
            let term = replica.term();
            let was = lock(&self.inner.live).leading;
            if leads && was != term {
                match replica.raft().ensure_linearizable().await {
                    Ok(_) => {
                        let alive: Vec<WorkerId> = self.with_state(|s| {
                            s.workers()
                                .filter(|(_, w)| w.alive)
                                .map(|(id, _)| *id)
                                .collect()
                        });
                        let mut live = lock(&self.inner.live);
                        let now = Instant::now();
                        for w in alive {
                            live.last_seen.insert(w, now);
                        }
                        live.leading = term;
                        log::info!("driver {} leads in term {term}", replica.id());
                        self.inner.shared.wake();
                    }
                    Err(e) => log::info!("driver {}: not leading after all: {e}", replica.id()),
                }
            } else if !leads && was != 0 {
                log::info!("driver {} no longer leads", replica.id());
                let mut live = lock(&self.inner.live);
                live.leading = 0;
                live.orders.clear();
                live.last_seen.clear();
            }
            // Metrics change on every Raft event; the tick catches a lapsed quorum.
            let _ = tokio::time::timeout(Duration::from_millis(100), metrics.changed()).await;
        }
    }

    /// One round of placement: decide, commit, send.
    pub async fn schedule_round(&self) -> usize {
        let connected: BTreeSet<WorkerId> = lock(&self.inner.live).orders.keys().copied().collect();
        let picks: Vec<(TaskKey, WorkerId)> = self
            .with_state(|s| next_assignments(s, ROUND_LIMIT))
            .into_iter()
            .filter(|(_, w)| connected.contains(w))
            .collect();
        if picks.is_empty() {
            return 0;
        }
        let term = self.term();
        let batch = picks
            .iter()
            .map(|(task, worker)| Command::TaskAssigned {
                task: *task,
                worker: *worker,
            })
            .collect();
        let outcomes = match self.propose(Command::Batch(batch)).await {
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
            let Some(order) = self.assignment(task, term) else {
                continue;
            };
            let tx = lock(&self.inner.live).orders.get(&worker).cloned();
            let delivered = match tx {
                Some(tx) => tx.send(order).await.is_ok(),
                None => false,
            };
            if delivered {
                sent += 1;
                lock(&self.inner.live)
                    .stage_timing(task)
                    .first_placed
                    .get_or_insert_with(Instant::now);
            } else {
                self.lose_worker(worker, "its order stream closed").await;
            }
        }
        if sent > 0 {
            self.note_first_placement(term);
        }
        sent
    }

    /// Logs the first placement of a new leader's term (the failover benchmark
    /// reads it): the moment the cluster makes progress again.
    fn note_first_placement(&self, term: u64) {
        let Some(replica) = self.replica() else {
            return;
        };
        let first = std::mem::replace(&mut lock(&self.inner.live).placed_in, term) != term;
        if first {
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            log::info!(
                "driver {}: first tasks placed in term {term} at unix ms {unix_ms}",
                replica.id()
            );
        }
    }

    /// The order that runs `task`: its stage plan and where its inputs are.
    fn assignment(&self, task: TaskKey, term: u64) -> Option<WorkerOrder> {
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
                    timeout_ms: self
                        .inner
                        .options
                        .task_timeout
                        .map_or(0, |t| t.as_millis() as u64),
                    errors_url: job.row_errors.errors_url.clone().unwrap_or_default(),
                    job_tag: commit_tag(task.job, &job.request_id),
                    max_failed_rows: job.row_errors.budget.max_failed_rows,
                })),
            })
        })
    }

    /// Declares lost every worker silent for longer than the timeout.
    pub async fn check_heartbeats(&self) {
        if !self.is_leader() {
            return;
        }
        let timeout = self.inner.options.worker_timeout;
        let silent: Vec<WorkerId> = lock(&self.inner.live)
            .last_seen
            .iter()
            .filter(|(_, t)| t.elapsed() > timeout)
            .map(|(w, _)| *w)
            .collect();
        for w in silent {
            lock(&self.inner.live).last_seen.remove(&w);
            self.lose_worker(w, &format!("no heartbeat for {timeout:?}"))
                .await;
        }
    }

    /// Tells workers to drop the files of jobs that failed or were cancelled,
    /// or whose results were released, and that this leader has not ended yet
    /// (a new leader ends its predecessor's again, in case the order was lost).
    /// Returns them.
    fn end_failed_jobs(&self) -> Vec<JobId> {
        let ended: Vec<JobId> = {
            let live = lock(&self.inner.live);
            self.with_state(|s| {
                s.jobs()
                    .filter(|(id, j)| {
                        let gone = matches!(j.status, JobStatus::Failed(_) | JobStatus::Cancelled)
                            || j.released.is_some();
                        gone && !live.finished.contains_key(id)
                    })
                    .map(|(id, _)| *id)
                    .collect()
            })
        };
        for &job in &ended {
            self.end_job_on_workers(job);
        }
        ended
    }

    /// Completes every job whose result stage is done: a write job's staged
    /// output is committed once first; any other job's rows stay on the
    /// workers, and only their count is recorded.
    async fn complete_ready_jobs(&self) {
        let ready: Vec<JobId> = self.with_state(|s| {
            s.jobs()
                .filter(|(_, j)| j.results_ready())
                .map(|(id, _)| *id)
                .collect()
        });
        for job in ready {
            let outcome = self.complete_job(job).await;
            if let Err(e) = outcome {
                log::warn!("{job}: completing: {e}");
            }
        }
    }

    async fn complete_job(&self, job: JobId) -> Result<()> {
        // Rows given up on past the budget fail the job before anything is
        // committed.
        if self.fail_over_budget(job, true).await? {
            return Ok(());
        }
        let (rows, output, written) = self
            .with_state(|s| {
                let j = s.job(job)?;
                let stage = j.stages.get(&j.final_stage)?;
                let mut rows = 0;
                let mut written = Vec::new();
                for (p, t) in stage.tasks.iter().enumerate() {
                    if let TaskStatus::Done {
                        outputs,
                        written: w,
                        ..
                    } = &t.status
                    {
                        rows += outputs.iter().map(|o| o.rows).sum::<u64>();
                        written.push((p as u32, w.clone()));
                    }
                }
                Some((rows, j.output.clone(), written))
            })
            .ok_or(SchedulerError::UnknownJob(job))?;
        let mut rows = rows;
        if let Some(out) = output {
            if !self.is_leader() {
                return Err(SchedulerError::NotLeader { leader: None });
            }
            let tag = self.job_tag(job);
            let committed = if out.resume_key.is_some() {
                self.commit_resumable(job, &out).await.map(|()| None)
            } else {
                commit_output(&out, &tag, &written).await
            };
            match committed {
                Ok(committed) => rows = committed.unwrap_or(rows),
                Err(e) => {
                    let reason = format!("committing the output {}: {e}", out.path);
                    self.apply(Command::FailJob { job, reason }).await?;
                    self.end_job_on_workers(job);
                    return Ok(());
                }
            }
        }
        self.apply(Command::CompleteJob {
            job,
            rows,
            finished_unix_ms: unix_ms(),
        })
        .await?;
        lock(&self.inner.live).finished.insert(job, Instant::now());
        if self.with_state(|s| s.job(job).is_some_and(|j| j.output.is_some())) {
            // A written job keeps nothing on its workers.
            self.end_job_on_workers(job);
        }
        Ok(())
    }

    /// When this driver saw `job` start (the epoch when it does not know:
    /// a job of an earlier leader), to tell the job's files from older ones.
    fn job_started_at(&self, job: JobId) -> std::time::SystemTime {
        lock(&self.inner.live)
            .started
            .get(&job)
            .and_then(|t| std::time::SystemTime::now().checked_sub(t.elapsed()))
            .unwrap_or(std::time::UNIX_EPOCH)
    }

    /// The tag a job's output is committed under (see [`commit_tag`]).
    pub fn job_tag(&self, job: JobId) -> String {
        let request_id = self
            .with_state(|s| s.job(job).map(|j| j.request_id.clone()))
            .unwrap_or_default();
        commit_tag(job, &request_id)
    }

    /// Drops the results of succeeded jobs whose retention has ended.
    async fn expire_results(&self) {
        let retention = self.inner.options.result_retention;
        let now = unix_ms();
        let expired: Vec<JobId> = self.with_state(|s| {
            s.jobs()
                .filter(|(_, j)| {
                    j.holds_results()
                        && now.saturating_sub(j.finished_unix_ms) >= retention.as_millis() as u64
                })
                .map(|(id, _)| *id)
                .collect()
        });
        for job in expired {
            let why = Released::Expired {
                retention_secs: retention.as_secs(),
            };
            match self.apply(Command::ReleaseResults { job, why }).await {
                Ok(()) => {
                    log::info!("{job}: results dropped after {retention:?}");
                    self.end_job_on_workers(job);
                }
                Err(e) => log::warn!("{job}: dropping expired results: {e}"),
            }
        }
    }

    /// Drops a finished job's results from its workers now.
    pub async fn delete_job(&self, job: JobId) -> Result<()> {
        let holds = self.with_state(|s| s.job(job).map(JobState::holds_results));
        match holds {
            None => return Err(SchedulerError::UnknownJob(job)),
            Some(true) => {
                self.apply(Command::ReleaseResults {
                    job,
                    why: Released::Deleted,
                })
                .await?
            }
            // Failed, cancelled, written or already released: nothing is kept,
            // but the workers are told again in case a message was lost.
            Some(false) => {}
        }
        self.end_job_on_workers(job);
        Ok(())
    }

    /// Where a job's result partitions are: the result stage, its partition
    /// count, and the finished ones (partition, worker, address, rows, bytes).
    pub fn result_locations(&self, job: JobId) -> Option<ResultLocations> {
        self.with_state(|s| {
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
                            shuffle_token: spec
                                .map(|s| s.shuffle_token.clone())
                                .unwrap_or_default(),
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

    /// Cleans up what a failed or cancelled write job staged: part files, or
    /// Lance fragments no version references.
    async fn discard_outputs(&self, jobs: &[JobId]) {
        for &job in jobs {
            let output = self.with_state(|s| s.job(job).and_then(|j| j.output.clone()));
            let Some(out) = output else { continue };
            let since = self.job_started_at(job);
            if let Err(e) = discard_output(&out, &self.job_tag(job), since).await {
                log::warn!("{job}: removing what it staged in {}: {e}", out.path);
            }
        }
    }
}

/// Where a job's result partitions are.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLocations {
    pub stage: regatta_common::StageId,
    pub partitions: u32,
    pub done: Vec<ResultPartition>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The attempt `task` runs as on `worker`, if it runs there.
fn running_attempt(s: &DriverState, task: TaskKey, worker: WorkerId) -> Option<u32> {
    let t = s
        .job(task.job)?
        .stages
        .get(&task.stage)?
        .tasks
        .get(task.partition as usize)?;
    match t.status {
        TaskStatus::Running { worker: w, attempt } if w == worker => Some(attempt),
        _ => None,
    }
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
            .flat_map(|(id, s)| s.operators.iter().map(|o| o.to_proto(id.0 as u32)))
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
fn source_leaves(j: &JobState) -> impl Iterator<Item = &crate::OperatorStat> {
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
    use std::collections::BTreeMap;
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
