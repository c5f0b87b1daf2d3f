//! One job's stages and tasks, as the driver state holds them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regatta_common::{RequestId, StageId, WorkerId};
use regatta_engine::{RowErrorPolicy, RowFailureCounts};
use serde::{Deserialize, Serialize};

use crate::{OutputStats, StageSpec};

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed(String),
    Cancelled,
}

impl JobStatus {
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::Running)
    }

    /// The protocol's value.
    pub fn to_proto(&self) -> regatta_proto::JobStatus {
        match self {
            Self::Running => regatta_proto::JobStatus::Running,
            Self::Succeeded => regatta_proto::JobStatus::Succeeded,
            Self::Failed(_) => regatta_proto::JobStatus::Failed,
            Self::Cancelled => regatta_proto::JobStatus::Cancelled,
        }
    }

    /// The word people see (the protocol's, so it is spelled once).
    pub fn word(&self) -> &'static str {
        self.to_proto().word()
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(r) => write!(f, "failed ({r})"),
            other => f.write_str(other.word()),
        }
    }
}

/// Where one task stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskStatus {
    Pending,
    Running {
        worker: WorkerId,
        attempt: u32,
    },
    Done {
        worker: WorkerId,
        outputs: Vec<OutputStats>,
        /// A write task's staged output (JSON: part files or Lance fragments),
        /// committed by the leader once every task is done; empty otherwise.
        #[serde(default)]
        written: String,
    },
}

/// Why a succeeded job's result rows are gone from its workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Released {
    /// A client deleted the job.
    Deleted,
    /// `driver.result_retention_secs` ended.
    Expired { retention_secs: u64 },
    /// A partition was lost with its worker and could not be made again.
    Lost(String),
}

impl fmt::Display for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deleted => f.write_str("the job was deleted"),
            Self::Expired { retention_secs } => write!(
                f,
                "their retention of {retention_secs} s ended (driver.result_retention_secs)"
            ),
            Self::Lost(why) => write!(f, "a lost partition could not be made again: {why}"),
        }
    }
}

/// One task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    pub status: TaskStatus,
    /// Attempts launched so far.
    pub launches: u32,
    /// Attempts that failed by the task's own fault (capped).
    pub failures: u32,
    /// Attempts that failed for a lost input (capped separately and higher).
    pub input_failures: u32,
    pub last_error: Option<(WorkerId, String)>,
}

/// One stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    pub spec: StageSpec,
    pub tasks: Vec<TaskState>,
    /// Partitions waiting for a worker, in order.
    pub pending: BTreeSet<u32>,
    pub done: u32,
    /// Its operators, summed over its finished tasks.
    #[serde(default)]
    pub operators: Vec<regatta_common::OperatorSummary>,
}

impl StageState {
    pub fn new(spec: StageSpec) -> Self {
        let tasks = (0..spec.tasks)
            .map(|_| TaskState {
                status: TaskStatus::Pending,
                launches: 0,
                failures: 0,
                input_failures: 0,
                last_error: None,
            })
            .collect();
        let pending = (0..spec.tasks).collect();
        Self {
            spec,
            tasks,
            pending,
            done: 0,
            operators: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done == self.spec.tasks
    }

    /// Adds a finished task's operators to the stage's sums (matched by their
    /// place in the plan, which every task of the stage shares).
    pub fn add_operators(&mut self, ops: &[regatta_common::OperatorSummary]) {
        for op in ops {
            match self.operators.iter_mut().find(|o| o.index == op.index) {
                Some(sum) => sum.add(op),
                None => self.operators.push(op.clone()),
            }
        }
        self.operators.sort_by_key(|o| o.index);
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub name: String,
    pub status: JobStatus,
    /// In dependency order; the last one produces the result.
    pub stages: BTreeMap<StageId, StageState>,
    pub final_stage: StageId,
    pub retried_tasks: u32,
    pub recomputed_outputs: u32,
    pub spilled_bytes: u64,
    pub shuffle_bytes: u64,
    pub rows_out: u64,
    /// Where the result is written, if anywhere.
    pub output: Option<crate::JobOutput>,
    /// When the job succeeded (the leader's clock, Unix ms); retention counts
    /// from here.
    pub finished_unix_ms: u64,
    /// Set once a succeeded job's result partitions are gone from its workers.
    pub released: Option<Released>,
    /// The client's submission key (empty: none).
    pub request_id: RequestId,
    /// The latest task failures, oldest first (at most [`FAILURES_KEPT`]).
    #[serde(default)]
    pub failures: Vec<FailureNote>,
    /// When it was submitted (the leader's clock, Unix ms; 0 if not known).
    #[serde(default)]
    pub submitted_unix_ms: u64,
    /// Where rows its functions give up on go, and how many may.
    #[serde(default)]
    pub row_errors: RowErrorPolicy,
    /// Rows its finished tasks gave up on, of the rows they read.
    #[serde(default)]
    pub row_failures: RowFailureCounts,
}

/// Failures kept per job for people to read (the count is in `retried_tasks`).
pub const FAILURES_KEPT: usize = 50;

/// One failed or lost task attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureNote {
    pub stage: StageId,
    pub partition: u32,
    pub attempt: u32,
    pub worker: WorkerId,
    pub error: String,
}

impl JobState {
    /// Keeps a failure for people to read, forgetting the oldest beyond the cap.
    pub fn note_failure(&mut self, note: FailureNote) {
        if self.failures.len() >= FAILURES_KEPT {
            self.failures.remove(0);
        }
        self.failures.push(note);
    }
}

impl JobState {
    pub fn tasks(&self) -> u32 {
        self.stages.values().map(|s| s.spec.tasks).sum()
    }

    pub fn tasks_done(&self) -> u32 {
        self.stages.values().map(|s| s.done).sum()
    }

    pub fn tasks_running(&self) -> u32 {
        self.stages
            .values()
            .flat_map(|s| &s.tasks)
            .filter(|t| matches!(t.status, TaskStatus::Running { .. }))
            .count() as u32
    }

    pub fn stages_done(&self) -> u32 {
        self.stages.values().filter(|s| s.is_done()).count() as u32
    }

    /// True when every input of `stage` is complete.
    pub fn is_runnable(&self, stage: &StageState) -> bool {
        stage
            .spec
            .inputs
            .iter()
            .all(|i| self.stages.get(i).is_some_and(StageState::is_done))
    }

    /// True while the job's tasks may be placed: it runs, or it succeeded and
    /// its kept result partitions are being made again after a lost worker.
    pub fn is_active(&self) -> bool {
        match self.status {
            JobStatus::Running => true,
            JobStatus::Succeeded => self.holds_results(),
            _ => false,
        }
    }

    /// True when the job's result rows live on its workers for clients to read.
    pub fn holds_results(&self) -> bool {
        self.status == JobStatus::Succeeded && self.released.is_none() && self.output.is_none()
    }

    /// True when the result stage is complete and the job can complete.
    pub fn results_ready(&self) -> bool {
        self.status == JobStatus::Running
            && self
                .stages
                .get(&self.final_stage)
                .is_some_and(StageState::is_done)
    }

    /// Workers holding a task's output, per output partition of `stage`.
    pub fn map_outputs(&self, stage: StageId) -> Vec<(u32, WorkerId, Vec<u32>)> {
        let Some(s) = self.stages.get(&stage) else {
            return Vec::new();
        };
        s.tasks
            .iter()
            .enumerate()
            .filter_map(|(p, t)| match &t.status {
                TaskStatus::Done {
                    worker, outputs, ..
                } => Some((
                    p as u32,
                    *worker,
                    outputs
                        .iter()
                        .filter(|o| o.rows > 0)
                        .map(|o| o.partition)
                        .collect(),
                )),
                _ => None,
            })
            .collect()
    }
}
