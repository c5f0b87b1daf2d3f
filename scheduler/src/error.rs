//! Errors of the scheduler.

use regatta_common::JobId;

/// A command that does not apply to the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    #[error("{0} does not exist")]
    UnknownJob(JobId),
    #[error("{0} already exists")]
    DuplicateJob(JobId),
    #[error("{job} is {status} and cannot be {action}")]
    InvalidTransition {
        job: JobId,
        status: String,
        action: &'static str,
    },
}

/// Result alias of this crate.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;
