//! Errors of the actor layer.

use regatta_common::Resources;

/// What granting resources, building models and running batches can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActorError {
    /// The request exceeds the node's total: waiting would never help.
    #[error("request of {cpus} CPUs, {gpus} GPUs, {memory} bytes can never fit on this node, which has {have_cpus} CPUs, {have_gpus} GPUs, {have_memory} bytes in all", cpus = .request.cpus, gpus = .request.gpus, memory = .request.memory, have_cpus = .total.cpus, have_gpus = .total.gpus, have_memory = .total.memory)]
    NeverFits {
        request: Resources,
        total: Resources,
    },
    /// Whole-GPU requests above 1 must be integers; fractional ones must be below 1.
    #[error("invalid GPU request {0}: ask for a fraction below 1 or a whole number of GPUs")]
    BadGpuRequest(f64),
    /// A pool configuration that cannot work.
    #[error("model {model}: invalid pool configuration: {message}")]
    PoolConfig { model: String, message: String },
    /// A model that could not be built (its weights or files failed to load).
    #[error("model {model}: actor {actor} could not build the model: {message}")]
    Build {
        model: String,
        actor: u64,
        message: String,
    },
    /// A batch that failed on every attempt under `on_error = raise`.
    #[error("model {model} failed on a batch of {rows} rows after {attempts} attempts (max_retries = {max_retries}): {cause}")]
    BatchFailed {
        model: String,
        rows: usize,
        attempts: u32,
        max_retries: u32,
        cause: String,
    },
    /// A model name that resolves to no directory, or to one of the wrong kind.
    #[error("model {model:?}: {message}")]
    ModelNotFound { model: String, message: String },
    /// `regatta models pull` failed.
    #[error("pulling model {model}: {message}")]
    Pull { model: String, message: String },
    /// Model files that are missing or unreadable, with the path at fault.
    #[error("{path}: {message}")]
    ModelFiles { path: String, message: String },
    /// A resource override from the environment that is not a number.
    #[error("{name}={value:?} is not a valid number")]
    BadOverride { name: String, value: String },
    /// The actor system could not start or has stopped.
    #[error("actor system: {0}")]
    System(String),
}

/// Result alias of this crate.
pub type Result<T, E = ActorError> = std::result::Result<T, E>;
