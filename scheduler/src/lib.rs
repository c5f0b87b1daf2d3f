//! The driver's state: a deterministic state machine changed only by [`Command`]s.
//!
//! Applying the same commands in the same order always gives the same state, so the
//! distributed driver can log the commands and replicas (the Raft issue) can replay
//! them. Stage planning, task assignment and the gRPC services build on this.

mod command;
mod error;
mod state;

pub use command::Command;
pub use error::{Result, SchedulerError};
pub use state::{DriverState, JobState, JobStatus};
