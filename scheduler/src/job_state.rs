//! One job's stages and tasks, as the driver state holds them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regatta_common::{StageId, WorkerId};
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

    /// The word clients see.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed(_) => "failed",
            Self::Cancelled => "cancelled",
        }
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
    },
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
        }
    }

    pub fn is_done(&self) -> bool {
        self.done == self.spec.tasks
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
    /// The result rows as Arrow IPC once the job succeeded (empty if written out).
    pub result: Vec<u8>,
    /// The client's submission key (empty: none).
    pub request_id: String,
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

    /// True when the result stage is complete and the rows await collection.
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
                TaskStatus::Done { worker, outputs } => Some((
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
