//! The regatta driver: plans jobs into stages, places their tasks on workers by
//! free CPU, GPU and memory and by where their input lies, follows them, recovers
//! from lost workers, and serves clients over gRPC.
//!
//! Its state is a deterministic state machine ([`DriverState`]) changed only by
//! [`Command`]s: every decision is made first, recorded as a command, then applied,
//! so replicas that apply the same commands (the Raft issue) hold the same state.

mod assign;
mod command;
pub mod dashboard;
pub mod driver;
mod error;
mod failure_class;
mod job_state;
pub mod launcher;
pub mod raft;
mod refusal;
mod shared_state;
mod stage_planner;
mod state;
mod task_inputs;

pub use assign::next_assignments;

pub use command::{
    commit_tag, Command, JobOutput, OutputMode, OutputStats, StageSpec, TaskKey, WorkerSpec,
};
pub use error::{Result, SchedulerError};
pub use failure_class::FailureClass;
pub use job_state::{
    FailureNote, JobState, JobStatus, Released, StageState, TaskState, TaskStatus, FAILURES_KEPT,
};
pub use refusal::Refusal;
pub use regatta_common::unix_ms_now;
pub use shared_state::SharedState;
pub use stage_planner::{split_into_stages, PlannedStage};
pub use state::{DriverState, WorkerState, DEFAULT_HISTORY_JOBS, DEFAULT_MAX_TASK_FAILURES};

#[cfg(test)]
mod state_tests;
