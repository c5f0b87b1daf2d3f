//! Errors of a worker.

/// What a worker can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot reach the driver at {address}: {message}")]
    Driver { address: String, message: String },
    #[error("the driver at {address} refused this worker: {message}")]
    Refused { address: String, message: String },
    #[error("lost the driver at {address}: {message}")]
    LostDriver { address: String, message: String },
    #[error("the worker stopped: {0}")]
    Stopped(String),
    #[error("shuffle server cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// A listener that would be reachable beyond loopback without a token.
    #[error(transparent)]
    Unprotected(#[from] regatta_common::CommonError),
    #[error("the worker's metrics endpoint: {0}")]
    Metrics(String),
    #[error(transparent)]
    Engine(#[from] regatta_engine::EngineError),
    #[error(transparent)]
    Shuffle(#[from] regatta_shuffle::ShuffleError),
    #[error(transparent)]
    Actor(#[from] regatta_actors::ActorError),
}

/// Result alias of this crate.
pub type Result<T, E = WorkerError> = std::result::Result<T, E>;
