//! Errors of the scheduler.

use crate::Refusal;

/// What the driver can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The state refused a command (the same on a lone driver and through Raft).
    #[error(transparent)]
    Refusal(#[from] Refusal),
    /// A plan or query the driver cannot run.
    #[error("{0}")]
    Plan(String),
    /// A listener (the driver's gRPC port, the dashboard) could not be opened.
    #[error("the {what} cannot listen on {address} ({setting}): {source}")]
    Listen {
        what: &'static str,
        address: String,
        /// The setting that names the address, so the user knows what to change.
        setting: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("TLS for the {what} (cluster.tls_cert/tls_key): {message}")]
    Tls { what: &'static str, message: String },
    /// A write job's staged output could not be published.
    #[error("output {path}: {message}")]
    Commit { path: String, message: String },
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
            SchedulerError::Refusal(r) => match r {
                Refusal::UnknownJob(_) | Refusal::UnknownWorker(_) => Status::not_found(message),
                Refusal::DuplicateJob(_)
                | Refusal::DuplicateRequest { .. }
                | Refusal::DuplicateWorker(_) => Status::already_exists(message),
                Refusal::InvalidTransition { .. } | Refusal::InvalidCommand(_) => {
                    Status::failed_precondition(message)
                }
            },
            SchedulerError::Plan(_)
            | SchedulerError::Engine(_)
            | SchedulerError::DataFusion(_)
            | SchedulerError::Config(_) => Status::invalid_argument(message),
            SchedulerError::Refused(_) => Status::permission_denied(message),
            SchedulerError::Storage { .. }
            | SchedulerError::Listen { .. }
            | SchedulerError::Tls { .. }
            | SchedulerError::Commit { .. }
            | SchedulerError::Launch(_)
            | SchedulerError::NotLeader { .. }
            | SchedulerError::Replication(_)
            | SchedulerError::Transport { .. } => Status::internal(message),
        }
    }
}
