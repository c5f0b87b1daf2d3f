//! The SDK's error type.

use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::EngineError;

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the engine: bad input, a failed row, I/O.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A caller mistake the SDK catches before running anything.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        // Surface row errors (with URL and row) directly rather than DataFusion's wrapping.
        if let Some(EngineError::Row {
            function,
            row,
            source_value,
            message,
        }) = EngineError::find_row_error(&e)
        {
            return Error::Engine(EngineError::Row {
                function,
                row: *row,
                source_value: source_value.clone(),
                message: message.clone(),
            });
        }
        Error::Engine(EngineError::DataFusion(e))
    }
}

impl From<regatta_engine::arrow::error::ArrowError> for Error {
    fn from(e: regatta_engine::arrow::error::ArrowError) -> Self {
        Error::Engine(EngineError::Arrow(e))
    }
}

/// The SDK's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
