//! Errors of the scheduler.

use regatta_common::{JobId, RequestId, WorkerId};

/// What the driver can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
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
    /// This driver is not the leader; `leader` is its address when known.
    #[error("this driver is not the leader{}", leader.as_deref().map(|l| format!("; the leader is at {l}")).unwrap_or_else(|| "; no leader is elected yet".into()))]
    NotLeader { leader: Option<String> },
    /// The replicated log or snapshot could not be read or written.
    #[error("driver storage {path}: {message}")]
    Storage { path: String, message: String },
    /// Peers refused this driver (another cluster, another token).
    #[error("{0}")]
    Refused(String),
    /// A launcher could not start or stop workers.
    #[error("{0}")]
    Launch(String),
    /// Raft failed (quorum lost, shutting down).
    #[error("replication: {0}")]
    Replication(String),
}

/// Result alias of this crate.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;

impl SchedulerError {
    /// True when the same call may succeed later or at another replica (no
    /// leader, a leader change, a lost quorum); clients retry these.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::NotLeader { .. } | Self::Replication(_) | Self::Transport { .. }
        )
    }
}

/// The one mapping of driver errors to gRPC statuses.
impl From<SchedulerError> for tonic::Status {
    fn from(e: SchedulerError) -> Self {
        use tonic::Status;
        let message = e.to_string();
        if e.is_retryable() {
            return Status::unavailable(message);
        }
        match e {
            SchedulerError::UnknownJob(_) | SchedulerError::UnknownWorker(_) => {
                Status::not_found(message)
            }
            SchedulerError::DuplicateJob(_)
            | SchedulerError::DuplicateRequest { .. }
            | SchedulerError::DuplicateWorker(_) => Status::already_exists(message),
            SchedulerError::InvalidTransition { .. } | SchedulerError::InvalidCommand(_) => {
                Status::failed_precondition(message)
            }
            SchedulerError::Plan(_)
            | SchedulerError::Engine(_)
            | SchedulerError::DataFusion(_)
            | SchedulerError::Config(_) => Status::invalid_argument(message),
            SchedulerError::Refused(_) => Status::permission_denied(message),
            SchedulerError::Storage { .. }
            | SchedulerError::Launch(_)
            | SchedulerError::NotLeader { .. }
            | SchedulerError::Replication(_)
            | SchedulerError::Transport { .. } => Status::internal(message),
        }
    }
}
