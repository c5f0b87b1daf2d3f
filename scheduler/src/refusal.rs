//! [`Refusal`]: why the state refused a command. Typed, and serialisable so a
//! replicated driver's Raft response carries the same refusal a lone driver's
//! state returns: a client sees the same gRPC status from either.

use regatta_common::{JobId, RequestId, WorkerId};
use serde::{Deserialize, Serialize};

/// Why the state refused a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("{0} does not exist")]
    UnknownJob(JobId),
    #[error("{0} already exists")]
    DuplicateJob(JobId),
    #[error("request {request_id:?} was already accepted as {job}")]
    DuplicateRequest { request_id: RequestId, job: JobId },
    #[error("{0} is not registered")]
    UnknownWorker(WorkerId),
    #[error("{0} is already registered")]
    DuplicateWorker(WorkerId),
    #[error("{job} is {status} and cannot be {action}")]
    InvalidTransition {
        job: JobId,
        status: String,
        action: String,
    },
    #[error("invalid command: {0}")]
    InvalidCommand(String),
}
