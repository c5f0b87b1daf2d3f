//! [`JobClock`]: when each job started and ended and where its time went, per
//! stage, as this driver saw it (diagnostics: not replicated).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use regatta_common::{JobId, StageId};

use super::lock;
use crate::TaskKey;

/// Time a finished task reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskTime {
    pub task_nanos: u64,
    pub read_nanos: u64,
    pub write_nanos: u64,
}

#[derive(Debug, Default)]
struct JobTiming {
    planning: Duration,
    stages: BTreeMap<StageId, StageTiming>,
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

#[derive(Default)]
struct Clocks {
    started: HashMap<JobId, Instant>,
    finished: HashMap<JobId, Instant>,
    timings: HashMap<JobId, JobTiming>,
}

impl Clocks {
    fn stage(&mut self, task: TaskKey) -> &mut StageTiming {
        self.timings
            .entry(task.job)
            .or_default()
            .stages
            .entry(task.stage)
            .or_default()
    }
}

#[derive(Default)]
pub struct JobClock {
    clocks: Mutex<Clocks>,
}

impl JobClock {
    /// `job` was submitted after `planning` spent planning it.
    pub fn submitted(&self, job: JobId, planning: Duration) {
        let mut c = lock(&self.clocks);
        let start = Instant::now()
            .checked_sub(planning)
            .unwrap_or_else(Instant::now);
        c.started.insert(job, start);
        c.timings.entry(job).or_default().planning = planning;
    }

    /// `task` was placed (its stage's first placement is kept).
    pub fn placed(&self, task: TaskKey) {
        lock(&self.clocks)
            .stage(task)
            .first_placed
            .get_or_insert_with(Instant::now);
    }

    /// Notes a finished task's time for its stage's breakdown.
    pub fn task_done(&self, task: TaskKey, time: TaskTime) {
        let mut c = lock(&self.clocks);
        let s = c.stage(task);
        s.last_done = Some(Instant::now());
        s.tasks += 1;
        s.task_nanos += time.task_nanos;
        s.read_nanos += time.read_nanos;
        s.write_nanos += time.write_nanos;
    }

    /// `job` ended (succeeded, failed, cancelled or released) now.
    pub fn ended(&self, job: JobId) {
        lock(&self.clocks).finished.insert(job, Instant::now());
    }

    /// Whether this driver saw `job` end.
    pub fn has_ended(&self, job: JobId) -> bool {
        lock(&self.clocks).finished.contains_key(&job)
    }

    /// When this driver saw `job` start (the epoch when it does not know:
    /// a job of an earlier leader), to tell the job's files from older ones.
    pub fn started_at(&self, job: JobId) -> SystemTime {
        lock(&self.clocks)
            .started
            .get(&job)
            .and_then(|t| SystemTime::now().checked_sub(t.elapsed()))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Seconds from `job`'s start to its end (or to now while it runs).
    pub fn elapsed_seconds(&self, job: JobId) -> f64 {
        let c = lock(&self.clocks);
        match (c.started.get(&job), c.finished.get(&job)) {
            (Some(s), Some(f)) => f.duration_since(*s).as_secs_f64(),
            (Some(s), None) => s.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Where a job's time went, per stage, relative to its submission: the
    /// planning seconds and the stages' timings.
    pub fn timings_of(&self, job: JobId) -> (f64, Vec<regatta_proto::StageTiming>) {
        let c = lock(&self.clocks);
        let (Some(t), Some(start)) = (c.timings.get(&job), c.started.get(&job)) else {
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
}
