//! The SDK's error type.

use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::EngineError;

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the engine: bad input, a failed row, I/O.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// From the model actors: a pool that cannot start, a batch that kept failing.
    #[error(transparent)]
    Actor(#[from] regatta_actors::ActorError),
    /// A caller mistake the SDK catches before running anything.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The driver cannot be reached at `address`.
    #[error("cannot reach the regatta driver at {address}: {message}")]
    Unreachable { address: String, message: String },
    /// The driver answered with an error.
    #[error("driver at {address}: {code:?}: {message}")]
    Cluster {
        address: String,
        code: tonic::Code,
        message: String,
    },
    /// A finished job's result rows are no longer kept.
    #[error("the results of job-{job} are gone: {why}")]
    ResultsGone { job: u64, why: String },
    /// A cluster job ended without results.
    #[error("job-{job} {status}: {message}")]
    JobFailed {
        job: u64,
        status: String,
        message: String,
    },
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
        if let Some(actor) = find_actor_error(&e) {
            return Error::Actor(actor.clone());
        }
        Error::Engine(EngineError::DataFusion(e))
    }
}

impl From<regatta_engine::arrow::error::ArrowError> for Error {
    fn from(e: regatta_engine::arrow::error::ArrowError) -> Self {
        Error::Engine(EngineError::Arrow(e))
    }
}

/// An actor error inside a DataFusion error chain, if there is one.
fn find_actor_error(e: &DataFusionError) -> Option<&regatta_actors::ActorError> {
    let mut cur: &dyn std::error::Error = e;
    loop {
        if let Some(found) = cur.downcast_ref::<regatta_actors::ActorError>() {
            return Some(found);
        }
        cur = match cur.downcast_ref::<DataFusionError>() {
            Some(DataFusionError::External(inner)) => inner.as_ref(),
            Some(DataFusionError::Context(_, inner)) => inner.as_ref(),
            Some(DataFusionError::Shared(inner)) => inner.as_ref(),
            _ => cur.source()?,
        };
    }
}

/// The SDK's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
