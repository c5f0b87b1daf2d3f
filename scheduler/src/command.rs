//! The commands that change driver state.

use regatta_common::JobId;
use serde::{Deserialize, Serialize};

/// One change to the driver's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// A client submitted a job.
    SubmitJob {
        job: JobId,
        name: String,
        tasks: u32,
    },
    /// A task of a running job finished.
    TaskFinished { job: JobId },
    /// A job failed for good.
    FailJob { job: JobId, reason: String },
    /// A client cancelled a job.
    CancelJob { job: JobId },
}
