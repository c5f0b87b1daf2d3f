//! Errors of the actor layer.

use regatta_common::Resources;

/// What granting resources can fail with.
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
}

/// Result alias of this crate.
pub type Result<T, E = ActorError> = std::result::Result<T, E>;
