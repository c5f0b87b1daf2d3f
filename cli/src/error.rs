//! The CLI's error type.

/// What a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Sdk(#[from] regatta::Error),
    /// A command line that cannot run as written (exit status 2, as clap's).
    #[error("{0}")]
    Usage(String),
    /// The cluster file, the environment's settings or the TLS material.
    #[error(transparent)]
    Config(#[from] regatta_cluster_config::ConfigError),
    /// The driver could not start, serve or stop.
    #[error(transparent)]
    Driver(#[from] regatta_scheduler::SchedulerError),
    /// The worker could not start or serve.
    #[error(transparent)]
    Worker(#[from] regatta_worker::WorkerError),
    /// The Ray cluster failed or refused a call.
    #[error(transparent)]
    Ray(#[from] regatta_ray::RayError),
    /// A job run under Ray ended without success.
    #[error("{0}")]
    RayJob(String),
    #[error(transparent)]
    Model(#[from] regatta::models::ActorError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(String),
    #[error("writing output: {0}")]
    Output(String),
}

impl CliError {
    /// The process's exit status for this failure, after BSD's sysexits where
    /// one fits, so a script can tell a typo from a cluster that is down.
    pub fn exit_code(&self) -> i32 {
        const USAGE: i32 = 2;
        const UNAVAILABLE: i32 = 69; // EX_UNAVAILABLE
        const IO: i32 = 74; // EX_IOERR
        const CONFIG: i32 = 78; // EX_CONFIG
        use regatta_scheduler::SchedulerError as D;
        match self {
            CliError::Usage(_) => USAGE,
            CliError::Config(_) | CliError::Driver(D::Config(_) | D::Tls { .. }) => CONFIG,
            CliError::Driver(D::Listen { .. })
            | CliError::Sdk(regatta::Error::Unreachable { .. })
            | CliError::Worker(
                regatta_worker::WorkerError::Driver { .. }
                | regatta_worker::WorkerError::LostDriver { .. }
                | regatta_worker::WorkerError::Bind { .. },
            )
            | CliError::Ray(regatta_ray::RayError::Unreachable { .. }) => UNAVAILABLE,
            CliError::Io { .. } | CliError::Output(_) => IO,
            _ => 1,
        }
    }
}

/// The CLI's result alias.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl From<regatta::datafusion::error::DataFusionError> for CliError {
    fn from(e: regatta::datafusion::error::DataFusionError) -> Self {
        CliError::Sdk(e.into())
    }
}

impl From<regatta::arrow::error::ArrowError> for CliError {
    fn from(e: regatta::arrow::error::ArrowError) -> Self {
        CliError::Sdk(e.into())
    }
}
