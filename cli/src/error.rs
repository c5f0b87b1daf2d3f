//! The CLI's error type.

/// What a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Sdk(#[from] regatta::Error),
    #[error("{0}")]
    Usage(String),
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
