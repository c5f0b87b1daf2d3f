//! Errors of the scheduler.

use regatta_common::{JobId, WorkerId};

/// What the driver can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("{0} does not exist")]
    UnknownJob(JobId),
    #[error("{0} already exists")]
    DuplicateJob(JobId),
    #[error("{0} is not registered")]
    UnknownWorker(WorkerId),
    #[error("{0} is already registered")]
    DuplicateWorker(WorkerId),
    #[error("{job} is {status} and cannot be {action}")]
    InvalidTransition {
        job: JobId,
        status: String,
        action: &'static str,
    },
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    /// A plan or query the driver cannot run.
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Engine(#[from] regatta_engine::EngineError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{context}: {source}")]
    Transport {
        context: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    Config(#[from] regatta_cluster_config::ConfigError),
}

/// Result alias of this crate.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;
